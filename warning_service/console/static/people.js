/* 人员名册: upload a roster; every bad row is listed at once and nothing is imported until all are fixed. */
"use strict";
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const result = document.getElementById("upload-result"), table = document.getElementById("upload-errors");
  const FIELD = {region_code: "区划代码", name: "姓名", role: "角色", phone: "手机", email: "电子邮箱", header: "表头", file: "文件"};
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true; result.textContent = "正在导入…"; result.className = ""; table.hidden = true;
    try {
      const r = await fetch("/api/v1/people/import", {method: "POST", credentials: "same-origin", body: new FormData(form)});
      if (r.status === 401) return toLogin();
      const body = await r.json();
      if (r.ok) {
        result.className = "ok";
        result.textContent = `已导入 ${body.rows} 人(新增 ${body.inserted},更新 ${body.updated})。`;
        setTimeout(() => location.reload(), 1500);
        return;
      }
      const d = body.detail || {};
      const errors = d.errors || [{line: d.line, field: d.field, message_zh: d.message_zh}];
      result.className = "error";
      result.textContent = `未导入任何数据:共 ${d.error_count || errors.length} 处错误,请修改后重新上传。`;
      table.tBodies[0].replaceChildren(...errors.map((e) => el("tr", {}, el("td", {}, e.line || ""),
        el("td", {}, FIELD[e.field] || e.field || ""), el("td", {}, e.message_zh || e.message || ""))));
      table.hidden = false;
    } finally { button.disabled = false; }
  });
})();
