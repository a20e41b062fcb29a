/* 待审核: 批准签发 (sends at once, after a confirmation naming area and count) or 退回 with a reason. */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let current = null, busy = false;
  document.querySelectorAll("dialog [data-close]").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
  document.querySelectorAll("section.approval").forEach((sec) => {
    const approve = sec.querySelector("button.approve"), reject = sec.querySelector("button.reject");
    if (approve) approve.addEventListener("click", () => {
      current = sec;
      $("approve-text").textContent = `向 ${sec.dataset.area} 发布${sec.dataset.name},共 ${sec.dataset.count} 人。批准后立即发送,不能撤回(只能更新或解除)。`;
      $("approve-error").textContent = "";
      $("approve-dialog").showModal();
    });
    if (reject) reject.addEventListener("click", () => {
      current = sec;
      $("reject-text").textContent = `${sec.dataset.name} · ${sec.dataset.area}:退回后不发送任何消息。`;
      $("reject-reason").value = ""; $("reject-error").textContent = "";
      $("reject-dialog").showModal();
    });
  });
  $("approve-yes").addEventListener("click", async () => {
    if (busy || !current) return;
    busy = true; $("approve-yes").disabled = true;
    try {
      const r = await postJSON(`/api/v1/warnings/${current.dataset.id}/approve`, {});
      location.href = `/console/warnings/${r.id}?issued=${r.recipient_count}`;
    } catch (err) {
      $("approve-error").textContent = err.message;
      busy = false; $("approve-yes").disabled = false;
    }
  });
  $("reject-yes").addEventListener("click", async () => {
    if (busy || !current) return;
    const reason = $("reject-reason").value.trim();
    if (!reason) { $("reject-error").textContent = "退回原因:请填写退回原因"; return; }
    busy = true; $("reject-yes").disabled = true;
    try {
      await postJSON(`/api/v1/warnings/${current.dataset.id}/reject`, {reason});
      location.reload();
    } catch (err) {
      $("reject-error").textContent = err.message;
      busy = false; $("reject-yes").disabled = false;
    }
  });
})();
