/* 应急广播: the terminal upload (every bad row listed, nothing imported until all are fixed), and on the
   warning board the villages whose loudspeakers did not play, refreshed while the warning is on. */
"use strict";
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const result = document.getElementById("upload-result"), table = document.getElementById("upload-errors");
  const FIELD = {code: "终端编号", name: "终端名称", region_code: "区划代码", platform_id: "平台终端编号", online: "在线状态",
                 note: "备注", header: "表头", file: "文件"};
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true; result.textContent = "正在导入…"; result.className = ""; table.hidden = true;
    try {
      const r = await fetch(form.dataset.url, {method: "POST", credentials: "same-origin", body: new FormData(form)});
      if (r.status === 401) return toLogin();
      const body = await r.json();
      if (r.ok) {
        result.className = "ok";
        result.textContent = `已导入 ${body.rows} 台终端(新增 ${body.inserted},更新 ${body.updated})。`;
        setTimeout(() => location.reload(), 1500);
        return;
      }
      const d = body.detail || body || {};
      const errors = d.errors || [{line: d.line, field: d.field, message_zh: d.message_zh}];
      result.className = "error";
      result.textContent = `未导入任何数据:共 ${d.error_count || errors.length} 处错误,请修改后重新上传。`;
      table.tBodies[0].replaceChildren(...errors.map((e) => el("tr", {}, el("td", {}, e.line || ""),
        el("td", {}, FIELD[e.field] || e.field || ""), el("td", {}, e.message_zh || e.message || ""))));
      table.hidden = false;
    } finally { button.disabled = false; }
  });
})();
(function () {
  const box = document.getElementById("broadcast-playback");
  if (!box) return;
  async function refresh() {
    const p = await api(`/api/v1/broadcast/warnings/${box.dataset.warning}/playback`);
    document.getElementById("bp-villages").textContent = p.villages;
    document.getElementById("bp-missing").textContent = p.villages_not_played;
    document.getElementById("bp-terminals").textContent = `${p.terminals_played} / ${p.terminals}`;
    const missing = p.items.filter((v) => v.not_played);
    document.getElementById("bp-list").replaceChildren(...(missing.length ? missing.map((v) => el("li", {"data-village": v.village_code},
      el("b", {}, `${v.town_name} ${v.village_name}`), ` 已播 ${v.played}/${v.terminals.length} 台`,
      el("span", {class: "muted"}, v.terminals.length ? ":" + v.terminals.filter((t) => t.state !== "finished")
        .map((t) => `${t.name}(${t.state_zh}${t.error ? "," + t.error_zh : ""})`).join("、")
        : ":本村未登记广播终端"))) : [el("li", {class: "ok"}, p.villages ? "各村广播均已播放。" : "本预警没有应急广播。")]));
  }
  refresh().catch(() => {});
  if (box.dataset.live === "1") setInterval(() => refresh().catch(() => {}), 10000);
})();
