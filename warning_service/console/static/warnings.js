/* 预警列表: the region filter by Chinese name — suggestions from /api/v1/regions/search (the user's scope only). */
"use strict";
(function () {
  const input = document.getElementById("region-q"), code = document.getElementById("region-code");
  const out = document.getElementById("region-results");
  const LEVEL_NAME = {province: "省", city: "市", county: "县(市、区)", town: "乡镇(街道)", village: "村(社区)", grid: "网格"};
  let timer = null;
  input.addEventListener("input", () => {
    code.value = "";  // a typed name is resolved by the server unless a suggestion is picked
    clearTimeout(timer);
    const q = input.value.trim();
    if (!q) { out.hidden = true; out.replaceChildren(); return; }
    timer = setTimeout(async () => {
      const found = await api(`/api/v1/regions/search?q=${encodeURIComponent(q)}&limit=10`);
      out.replaceChildren(...(found.length ? found.map((r) => el("li", {},
        el("button", {type: "button", "data-code": r.code, onclick: () => {
          code.value = r.code; input.value = r.full_name; out.hidden = true; input.form.submit();
        }}, r.full_name), " ", el("span", {class: "muted"}, LEVEL_NAME[r.level] || ""))) : [el("li", {class: "muted"}, "没有找到(仅搜索您管辖范围内的区域)")]));
      out.hidden = false;
    }, 200);
  });
})();
