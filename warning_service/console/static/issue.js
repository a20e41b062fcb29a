/* 预警发布: region picker (tree + search, scope-limited), guidance and policy by hazard × level, preview, confirm. */
"use strict";
(function () {
  const form = document.getElementById("issue-form");
  const POLICIES = jsonData("policies"), GUIDANCE = jsonData("guidance"), ROLE_ZH = jsonData("role-zh");
  const LEVEL_ZH = jsonData("level-zh"), HAZARD_ZH = jsonData("hazard-zh");
  const CHANNEL_ZH = {sms: "短信", voice: "语音电话", email: "电子邮件", broadcast: "大喇叭"};
  const LEVEL_NAME = {province: "省", city: "市", county: "县(市、区)", town: "乡镇(街道)", village: "村(社区)", grid: "网格"};
  const chosen = new Map();  // code -> name
  const $ = (id) => document.getElementById(id);
  let guidanceEdited = false, lastPreview = null, issuing = false;

  /* --- region picker ------------------------------------------------------------------------------------ */
  function renderChosen() {
    const box = $("chosen");
    box.replaceChildren();
    if (!chosen.size) box.append(el("span", {class: "muted", id: "none-chosen"}, "尚未选择区域"));
    for (const [code, name] of chosen) {
      box.append(el("span", {class: "chip", "data-code": code}, name,
        el("button", {type: "button", title: "移除", "aria-label": "移除 " + name, onclick: () => toggle(code, name, false)}, "×")));
    }
    document.querySelectorAll("#tree input[type=checkbox]").forEach((c) => { c.checked = chosen.has(c.value); });
    invalidatePreview();
  }
  function toggle(code, name, on) { if (on) chosen.set(code, name); else chosen.delete(code); renderChosen(); }
  function node(r) {
    const li = el("li", {"data-code": r.code});
    const leaf = r.level === "grid";
    const btn = el("button", {type: "button", class: "toggle", "aria-label": "展开 " + r.name, "aria-expanded": "false"}, leaf ? "·" : "▸");
    const box = el("input", {type: "checkbox", value: r.code, id: "r-" + r.code});
    box.checked = chosen.has(r.code);
    box.addEventListener("change", () => toggle(r.code, r.name, box.checked));
    li.append(btn, box, el("label", {for: "r-" + r.code}, ` ${r.name} `), el("span", {class: "muted"}, LEVEL_NAME[r.level] || ""));
    if (!leaf) btn.addEventListener("click", async () => {
      const open = btn.getAttribute("aria-expanded") === "true";
      const sub = li.querySelector(":scope > ul");
      if (open) { if (sub) sub.hidden = true; btn.textContent = "▸"; btn.setAttribute("aria-expanded", "false"); return; }
      if (sub) sub.hidden = false;
      else {
        const kids = await api(`/api/v1/regions/${encodeURIComponent(r.code)}/children`);
        li.append(el("ul", {}, ...kids.map(node)));
      }
      btn.textContent = "▾"; btn.setAttribute("aria-expanded", "true");
    });
    return li;
  }
  const tree = $("tree");
  tree.append(el("ul", {}, node({code: tree.dataset.root, name: tree.dataset.rootName, level: tree.dataset.rootLevel})));
  let searchTimer = null;
  $("region-search").addEventListener("input", (ev) => {
    clearTimeout(searchTimer);
    const q = ev.target.value.trim(), out = $("search-results");
    if (!q) { out.hidden = true; out.replaceChildren(); return; }
    searchTimer = setTimeout(async () => {
      const found = await api(`/api/v1/regions/search?q=${encodeURIComponent(q)}&limit=20`);
      out.replaceChildren(...(found.length ? found.map((r) => el("li", {},
        el("button", {type: "button", "data-code": r.code, onclick: () => toggle(r.code, r.name, true)}, "加入"),
        ` ${r.full_name} `, el("span", {class: "muted"}, LEVEL_NAME[r.level] || ""))) : [el("li", {class: "muted"}, "没有找到(仅搜索您管辖范围内的区域)")]));
      out.hidden = false;
    }, 200);
  });

  /* --- guidance and policy ---------------------------------------------------------------------------- */
  function key() { return `${$("hazard").value}.${$("level").value}`; }
  function minutes(s) { return s >= 60 ? `${Math.round(s / 60)} 分钟` : `${s} 秒`; }
  function showPolicy() {
    const p = POLICIES[key()];
    const rows = [
      ["叫应对象", p.roles.map((r) => ROLE_ZH[r] || r).join("、")],
      ["发送渠道", p.channels.map((c) => CHANNEL_ZH[c] || c).join("、")],
      ["是否要求叫应", p.ack_required ? `要求,${minutes(p.ack_deadline)}内确认` : "不要求回复确认"],
      ["未应答重呼", p.ack_required && p.recall_count && p.recall_channel ? `${CHANNEL_ZH[p.recall_channel]} ${p.recall_count} 次,每 ${minutes(p.recall_interval)}` : "不重呼"],
      ["B岗(副责任人)", p.ack_required && p.call_deputy ? "主责任人未应答时呼叫" : "不呼叫"],
      ["逐级上报", p.ack_required && p.escalate ? `超时未叫应逐级上报,最高至${LEVEL_NAME[p.escalate_until] || p.escalate_until}` : "不上报"],
      ["审核签发", p.sign_off ? "须经带班领导审核签发后才发送" : "不需要,确认后立即发送"],
    ];
    $("policy-body").replaceChildren(el("table", {}, el("tbody", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))))),
      el("p", {class: "muted"}, `规则来源:${p.source}`));
    if (!guidanceEdited) $("instruction").value = GUIDANCE[key()];
    // 审核签发: the same form submits for a leader's approval instead of sending.
    $("confirm-button").textContent = p.sign_off ? "提交审核…" : "发布…";
    $("confirm-heading").textContent = p.sign_off ? "提交带班领导审核?" : "确认发布?";
    $("confirm-yes").textContent = p.sign_off ? "确认提交审核" : "确认发布";
    $("signoff-note").hidden = !p.sign_off;
    invalidatePreview();
  }
  $("instruction").addEventListener("input", () => { guidanceEdited = true; invalidatePreview(); });
  $("hazard").addEventListener("change", showPolicy);
  $("level").addEventListener("change", showPolicy);
  ["description", "expires"].forEach((id) => $(id).addEventListener("input", invalidatePreview));
  form.querySelectorAll("input[name=status]").forEach((r) => r.addEventListener("change", invalidatePreview));
  showPolicy();

  /* --- preview and issue ------------------------------------------------------------------------------- */
  function invalidatePreview() { lastPreview = null; $("preview").hidden = true; }
  function clearErrors() { form.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; }); }
  function showError(err) {
    const slot = $("err-" + (err.field || "form")) || $("err-form");
    slot.textContent = err.message;
    slot.scrollIntoView({block: "center"});
  }
  function body() {
    const expires = $("expires").value;
    return {hazard: $("hazard").value, level: $("level").value,
      status: form.querySelector("input[name=status]:checked").value,
      description: $("description").value.trim(), instruction: $("instruction").value.trim() || null,
      targets: [...chosen.keys()], expires_at: expires ? `${expires}:00+08:00` : null};
  }
  function check(b) {
    if (!b.targets.length) return Object.assign(new Error("预警区域:请至少选择一个区域"), {field: "targets"});
    if (!b.description) return Object.assign(new Error("预警内容:请填写预警内容"), {field: "description"});
    return null;
  }
  $("preview-button").addEventListener("click", async () => {
    clearErrors();
    const b = body(), bad = check(b);
    if (bad) return showError(bad);
    const button = $("preview-button");
    button.disabled = true;
    try {
      const p = await postJSON("/api/v1/warnings/preview", b);
      lastPreview = {body: b, preview: p};
      $("preview-count").textContent = p.recipient_count;
      $("preview-area").textContent = p.area;
      $("preview-roles").tBodies[0].replaceChildren(...p.by_role.map((r) => el("tr", {}, el("td", {}, r.role_zh), el("td", {class: "num"}, r.count))));
      $("preview-towns").tBodies[0].replaceChildren(...p.by_town.map((t) => el("tr", {}, el("td", {}, t.name), el("td", {class: "num"}, t.count))));
      const t = Object.fromEntries(p.texts.map((x) => [x.channel, x]));
      $("text-sms").textContent = t.sms ? t.sms.body : "(没有收件人)";
      $("sms-meta").textContent = t.sms ? `${t.sms.chars} 字 · ${t.sms.segments} 条计费短信` : "";
      $("text-voice").textContent = t.voice ? t.voice.body : "";
      $("text-broadcast").textContent = t.broadcast ? t.broadcast.body : "";
      $("email-subject").textContent = t.email ? "主题:" + t.email.subject : "";
      $("text-email").textContent = t.email ? t.email.body : "";
      $("preview").hidden = false;
      $("preview").scrollIntoView({block: "start"});
    } catch (err) { showError(err); } finally { button.disabled = false; }
  });
  $("confirm-button").addEventListener("click", () => {
    if (!lastPreview) return;
    const b = lastPreview.body, p = lastPreview.preview;
    const held = POLICIES[`${b.hazard}.${b.level}`].sign_off;
    $("confirm-text").textContent = held
      ? `向 ${p.area} 发布${HAZARD_ZH[b.hazard]}${LEVEL_ZH[b.level]}预警,共 ${p.recipient_count} 人。本级预警须经带班领导审核签发,批准前不会发送任何消息。`
      : `向 ${p.area} 发布${HAZARD_ZH[b.hazard]}${LEVEL_ZH[b.level]}预警,共 ${p.recipient_count} 人。发布后立即发送,不能撤回(只能更新或解除)。`;
    $("confirm-error").textContent = "";
    $("confirm-dialog").showModal();
  });
  $("confirm-no").addEventListener("click", () => $("confirm-dialog").close());
  $("confirm-yes").addEventListener("click", async () => {
    if (issuing || !lastPreview) return;
    issuing = true;
    const yes = $("confirm-yes");
    yes.disabled = true;
    try {
      // The key was made when the form was served: a double click or a resent request issues at most once.
      const r = await postJSON("/api/v1/warnings", lastPreview.body, {"Idempotency-Key": form.dataset.idempotencyKey});
      location.href = r.state === "pending" ? `/console/warnings/${r.id}` : `/console/warnings/${r.id}?issued=${r.recipient_count}`;
    } catch (err) {
      $("confirm-error").textContent = err.message;
      issuing = false; yes.disabled = false;
    }
  });
})();
