/* 叫应看板: live figures, the unanswered list with tap-to-call and proxy answers, escalations, and the warning's actions. */
"use strict";
(function () {
  const B = jsonData("board-data");
  const $ = (id) => document.getElementById(id);
  const STATE_ZH = {pending: "待叫应", delivered: "已送达", timed_out: "超时未叫应", acknowledged: "已叫应", closed: "已关闭"};
  const ROLE_ZH = Object.assign({}, ROLE_ZH_DEFAULT, B.role_zh || {});
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
  let proxyNotice = null, updateMode = "update";
  const text = (id, v) => { const e = $(id); if (e) e.textContent = v; };

  function phoneCell(n) {
    if (!n.phone) return el("span", {class: "late"}, "无电话");
    return el("a", {href: "tel:" + n.phone.replace(/[^\d+]/g, ""), class: "tel"}, readablePhone(n.phone));
  }
  function row(n) {
    const tr = el("tr", {"data-notice": n.id},
      el("td", {"data-label": "姓名"}, n.name), el("td", {"data-label": "电话"}, phoneCell(n)),
      el("td", {"data-label": "角色"}, ROLE_ZH[n.role] || n.role), el("td", {"data-label": "区域"}, n.region_path),
      el("td", {"data-label": "状态", class: n.state === "timed_out" ? "late" : ""}, STATE_ZH[n.state] || n.state),
      el("td", {"data-label": "呼叫次数"}, n.attempts), el("td", {"data-label": "截止"}, bjTime(n.deadline)));
    if (B.can_act && B.state === "active") {
      tr.append(el("td", {class: "act"}, el("button", {type: "button", class: "primary proxy", onclick: () => openProxy(n)}, "代确认")));
    }
    return tr;
  }
  function escalations(items) {
    const groups = new Map();
    for (const e of items) { if (!groups.has(e.escalation_of)) groups.set(e.escalation_of, []); groups.get(e.escalation_of).push(e); }
    text("esc-total", items.length);
    const box = $("escalations");
    if (!items.length) { box.className = "muted"; box.textContent = "暂无上报。"; return; }
    box.className = "";
    box.replaceChildren(...[...groups].map(([subject, list]) => {
      const s = list[0].subject || {};
      return el("div", {class: "card esc-group", "data-subject": subject},
        el("b", {}, `${s.name || "#" + subject}(${ROLE_ZH[s.role] || s.role || ""},${s.region_path || ""}) `),
        s.phone ? phoneCell(s) : "", " 未叫应,已逐级上报给:",
        el("ul", {}, ...list.map((e) => el("li", {}, `${e.name}(${ROLE_ZH[e.role] || e.role},${e.region_path}) `, phoneCell(e),
          ` · ${STATE_ZH[e.state] || e.state}`))));
    }));
  }
  async function refresh() {
    const [w, page, esc] = await Promise.all([api(`/api/v1/warnings/${B.id}`),
      api(`/api/v1/warnings/${B.id}/notices?state=unanswered&reason=primary&limit=500`),
      api(`/api/v1/warnings/${B.id}/notices?reason=escalation&limit=500`)]);
    const p = (w.notices && w.notices.primary) || {};
    const reached = sum(p), acked = (p.acknowledged || 0) + (p.feedback || 0);
    text("k-reached", reached); text("k-acked", acked); text("k-delivered", p.delivered || 0);
    text("k-pending", p.pending || 0); text("k-timeout", p.timed_out || 0); text("k-esc", sum(w.notices && w.notices.escalation));
    const rate = reached ? acked / reached : 0;
    text("rate", (rate * 100).toFixed(1) + "%");
    $("rate-bar").style.width = (rate * 100) + "%";
    const d = (w.delivery && w.delivery.total) || {};
    text("delivery", `已送达 ${d.delivered || 0} · 已发送 ${d.sent || 0} · 排队 ${d.queued || 0} · 失败 ${(d.failed || 0) + (d.undelivered || 0)}`);
    text("eta", w.delivery && w.delivery.eta_seconds ? ` · 预计 ${Math.ceil(w.delivery.eta_seconds)} 秒发完` : "");
    text("updated", bjTime(new Date()));
    text("missing-total", page.total);
    $("missing").replaceChildren(...page.items.map(row));
    escalations(esc.items);
    if (w.state !== B.state) location.reload();  // lifted or expired elsewhere: show the final figures
  }

  /* --- dialogs ----------------------------------------------------------------------------------------- */
  document.querySelectorAll("dialog [data-close]").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
  function openProxy(n) {
    proxyNotice = n;
    text("proxy-name", `${n.name}(${readablePhone(n.phone)})`);
    $("proxy-note").value = ""; text("err-note", "");
    $("proxy-dialog").showModal();
  }
  if ($("proxy-save")) $("proxy-save").addEventListener("click", async () => {
    const note = $("proxy-note").value.trim();
    const method = document.querySelector("#proxy-form input[name=method]:checked").value;
    if (!note) { text("err-note", "说明:请写明如何联系到本人"); return; }
    const btn = $("proxy-save"); btn.disabled = true;
    try {
      await postJSON(`/api/v1/notices/${proxyNotice.id}/acknowledge`, {method, note});
      $("proxy-dialog").close();
      await refresh();
    } catch (err) { text("err-note", err.message); } finally { btn.disabled = false; }
  });
  const RANK = {blue: 1, yellow: 2, orange: 3, red: 4};
  const HEADINGS = {update: "更新预警内容", upgrade: "升级预警", downgrade: "降级预警", extend: "延长预警"};
  document.querySelectorAll("[data-open]").forEach((b) => b.addEventListener("click", () => {
    const dlg = $(b.dataset.open);
    if (b.dataset.mode) {
      updateMode = b.dataset.mode;
      text("update-heading", HEADINGS[updateMode]);
      $("f-level").hidden = !(updateMode === "upgrade" || updateMode === "downgrade");
      $("f-expires").hidden = updateMode !== "extend";
      $("f-description").hidden = updateMode !== "update" && updateMode !== "upgrade" && updateMode !== "downgrade";
      const sel = $("u-level");
      for (const o of sel.options) o.disabled = updateMode === "upgrade" ? RANK[o.value] <= RANK[B.level] : updateMode === "downgrade" ? RANK[o.value] >= RANK[B.level] : false;
      const first = [...sel.options].find((o) => !o.disabled); if (first && sel.selectedOptions[0].disabled) sel.value = first.value;
      text("err-update", "");
    }
    dlg.showModal();
  }));
  if ($("update-save")) $("update-save").addEventListener("click", async () => {
    const reason = $("u-reason").value.trim();
    if (!reason) { text("err-update", "原因:请填写更新原因"); return; }
    const body = {reason};
    if (updateMode === "upgrade" || updateMode === "downgrade") body.level = $("u-level").value;
    if (updateMode === "extend") {
      if (!$("u-expires").value) { text("err-update", "失效时间:请填写新的失效时间"); return; }
      body.expires_at = `${$("u-expires").value}:00+08:00`;
    }
    if (!$("f-description").hidden) body.description = $("u-description").value.trim();
    const btn = $("update-save"); btn.disabled = true;
    try { await postJSON(`/api/v1/warnings/${B.id}/update`, body); location.reload(); }
    catch (err) { text("err-update", err.message); btn.disabled = false; }
  });
  if ($("lift-save")) $("lift-save").addEventListener("click", async () => {
    const reason = $("lift-reason").value.trim();
    if (!reason) { text("err-lift", "解除原因:请填写解除原因"); return; }
    const btn = $("lift-save"); btn.disabled = true;
    try { await postJSON(`/api/v1/warnings/${B.id}/lift`, {reason}); location.reload(); }
    catch (err) { text("err-lift", err.message); btn.disabled = false; }
  });

  if (B.state === "active") { refresh(); setInterval(() => refresh().catch(() => {}), 3000); }
  else if (B.state === "pending") {
    // Held for sign-off: nothing to show until a leader decides; then the page becomes the live board.
    setInterval(() => api(`/api/v1/warnings/${B.id}`).then((w) => { if (w.state !== B.state) location.reload(); }).catch(() => {}), 3000);
  } else if (B.state !== "rejected") {
    // Lifted or expired: the final list of who never answered, and the escalations made.
    Promise.all([api(`/api/v1/warnings/${B.id}/notices?state=closed,timed_out&reason=primary&limit=500`),
      api(`/api/v1/warnings/${B.id}/notices?reason=escalation&limit=500`)]).then(([m, e]) => {
      $("missing").replaceChildren(...m.items.filter((n) => n.acknowledged_at === null).map(row));
      escalations(e.items);
    });
  }
})();
