/* 演练: schedule a drill or number check (Beijing time in the form, an aware instant to the API); cancel one. */
"use strict";
(function () {
  const form = document.getElementById("drill-form"), result = document.getElementById("drill-result");
  function showKind() {
    const check = form.kind.value === "number_check";
    form.querySelectorAll(".for-exercise").forEach((e) => { e.hidden = check; });
    form.querySelectorAll(".for-check").forEach((e) => { e.hidden = !check; });
  }
  if (form) {
    form.kind.addEventListener("change", showKind);
    showKind();
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true; result.className = ""; result.textContent = "正在安排…";
      const check = form.kind.value === "number_check";
      const data = {kind: form.kind.value, region_code: form.region_code.value.trim(), hazard: form.hazard.value,
                    due_at: form.due_at.value + ":00+08:00", description: form.description.value.trim() || null};
      if (check) data.answer_minutes = parseInt(form.answer_minutes.value, 10);
      else {
        data.level = form.level.value; data.announced = !form.surprise.checked;
        if (data.announced) data.notice_hours = parseFloat(form.notice_hours.value || "0");
      }
      try {
        await postJSON("/api/v1/drills", data);
        result.className = "ok"; result.textContent = "已安排。";
        setTimeout(() => location.reload(), 800);
      } catch (e) {
        result.className = "error"; result.textContent = e.message;
      } finally { button.disabled = false; }
    });
  }
  document.querySelectorAll("button.cancel").forEach((b) => b.addEventListener("click", async () => {
    if (!confirm("取消这次演练?")) return;
    b.disabled = true;
    try { await postJSON(`/api/v1/drills/${b.dataset.id}/cancel`, {}); location.reload(); }
    catch (e) { b.disabled = false; alert(e.message); }
  }));
})();
