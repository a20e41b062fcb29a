/* Shared helpers for the console's pages. Times are always shown in Beijing time, whatever the browser's zone. */
"use strict";
const TZ = "Asia/Shanghai";
const FIELD_ZH = {targets: "预警区域", description: "预警内容", instruction: "防御指南", hazard: "灾种", level: "预警等级",
  status: "类别", expires_at: "失效时间", title: "标题", note: "说明", method: "确认方式", reason: "原因",
  "Idempotency-Key": "提交编号", state: "状态", body: "内容"};
const ROLE_ZH_DEFAULT = {grid_responsible: "网格责任人", village_responsible: "村级防汛责任人", town_responsible: "乡镇防汛责任人",
  county_responsible: "县级防汛责任人", disaster_info_officer: "灾害信息员", geo_hazard_monitor: "地灾群测群防员",
  torrent_warner: "山洪预警员", shelter_manager: "避灾安置场所管理员"};

function bjTime(t, withDate) {
  if (!t) return "";
  const opts = {timeZone: TZ, hour12: false, hour: "2-digit", minute: "2-digit", second: "2-digit"};
  if (withDate) Object.assign(opts, {month: "2-digit", day: "2-digit"});
  return new Date(t).toLocaleString("zh-CN", opts);
}
function readablePhone(p) {
  if (!p) return "";
  let d = p.replace(/\D/g, "");
  if (d.length === 13 && d.startsWith("86")) d = d.slice(2);
  return d.length === 11 && d[0] === "1" ? `${d.slice(0, 3)} ${d.slice(3, 7)} ${d.slice(7)}` : p;
}
function toLogin() { location.href = "/console/login?next=" + encodeURIComponent(location.pathname + location.search); }
/* fetch JSON; a 401 (session expired) returns to the login page, which brings the user back here. */
async function api(url, options) {
  const r = await fetch(url, Object.assign({credentials: "same-origin", headers: {accept: "application/json"}}, options || {}));
  if (r.status === 401) { toLogin(); throw new Error("登录已过期"); }
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const d = (body && body.detail) || {};
    const field = d.field ? (FIELD_ZH[d.field] || d.field) : "";
    const err = new Error((field ? field + ":" : "") + (d.message_zh || d.message || ("请求失败 " + r.status)));
    err.field = d.field; err.status = r.status;
    throw err;
  }
  return body;
}
function postJSON(url, data, extraHeaders) {
  return api(url, {method: "POST", credentials: "same-origin",
    headers: Object.assign({"content-type": "application/json", accept: "application/json"}, extraHeaders || {}),
    body: JSON.stringify(data)});
}
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}
function jsonData(id) { return JSON.parse(document.getElementById(id).textContent); }
