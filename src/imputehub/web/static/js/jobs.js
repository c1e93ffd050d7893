// Jobs pages: the list's statuses and one job's page follow the hub's server-sent events.
// No polling: the job page re-reads itself once after events arrive (debounced), so step
// messages, results and explanations appear as the server renders them (autoescaped).
"use strict";

(() => {
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const JOB_EVENTS = ["job.queued", "job.running", "job.completed", "job.failed",
    "job.cancelled", "job.results_ready"];

  function setStatus(badge, status) {
    if (!badge || badge.textContent === status) return false;
    badge.textContent = status;
    badge.className = badge.className.replace(/\bstatus-[a-z_]+/g, "").trim() + " status-" + status;
    return true;
  }

  function setProgress(bar, label, progress) {
    if (typeof progress !== "number") return;
    if (bar) bar.value = progress;
    if (label) label.textContent = Math.round(progress) + " %";
  }

  // Buttons that ask first (the bulk form has two, each with its own question).
  document.addEventListener("submit", (event) => {
    const button = event.submitter;
    const form = event.target;
    if (!(button instanceof HTMLElement) || !button.dataset.confirm) return;
    if (form.id === "bulk-form" && !form.querySelector("input[name=job_id]:checked")) {
      event.preventDefault();
      ImputeHub.announce("Choose at least one job first.");
      window.alert("Choose at least one job first.");
      return;
    }
    if (!window.confirm(button.dataset.confirm)) event.preventDefault();
  });

  // --- the list -------------------------------------------------------------------------
  function followList(table) {
    const onEvent = (data) => {
      const payload = data.payload || {};
      const id = data.job_id || payload.job_id;
      const row = id && table && table.querySelector(`tr[data-job-id="${CSS.escape(id)}"]`);
      // A federated job's targets are listed under it, not as jobs of their own.
      if (!row && id && data.kind === "job.queued" && !payload.parent_id) newJobs(id);
      if (!row || !payload.status) return;
      if (setStatus(row.querySelector("[data-role=status]"), payload.status)) {
        ImputeHub.announce(`${payload.job_name || "A job"}: ${payload.status}`);
      }
      const progress = payload.status === "completed" ? 100 : payload.progress;
      setProgress(row.querySelector("[data-role=progress]"), row.querySelector("[data-role=percent]"), progress);
    };
    const handlers = {};
    for (const kind of JOB_EVENTS) handlers[kind] = onEvent;
    ImputeHub.follow("/events", handlers);
  }

  // A job started elsewhere (another tab, the CLI): the list says so rather than reshuffling
  // a filtered, paged table under the reader's eyes.
  const arrived = new Set();
  function newJobs(id) {
    const notice = document.getElementById("new-jobs");
    if (!notice || arrived.has(id)) return;
    arrived.add(id);
    const text = arrived.size === 1 ? "A new job has started." : `${arrived.size} new jobs have started.`;
    notice.querySelector("[data-role=text]").textContent = text + " ";
    notice.hidden = false;
    ImputeHub.announce(text);
  }

  // --- one job --------------------------------------------------------------------------
  function followJob(article) {
    const id = article.dataset.jobId;
    let status = article.dataset.status;
    let timer = null;

    async function refresh() {
      timer = null;
      let response;
      try {
        response = await fetch(location.pathname, { credentials: "same-origin" });
      } catch (e) { return; }
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of fresh.querySelectorAll("[data-live]")) {
        const here = document.querySelector(`[data-live="${region.dataset.live}"]`);
        if (!here || here.innerHTML === region.innerHTML) continue;
        const focused = here.contains(document.activeElement) ? document.activeElement.id : "";
        here.replaceChildren(...Array.from(region.childNodes).map((n) => document.importNode(n, true)));
        if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
      }
      const freshStatus = fresh.getElementById("job-status");
      if (freshStatus) update(freshStatus.textContent.trim(), null);
    }

    function later() {
      if (timer === null) timer = window.setTimeout(refresh, 1000);
    }

    function update(next, progress) {
      if (next && setStatus(document.getElementById("job-status"), next)) {
        status = next;
        article.dataset.status = next;
        ImputeHub.announce(`Job ${next}` + (next === "completed" ? ": results are ready below." : "."));
      }
      setProgress(document.getElementById("job-progress"), document.getElementById("job-percent"),
        next === "completed" ? 100 : progress);
    }

    const handlers = {
      "job.progress": (data) => {
        const payload = data.payload || {};
        const moved = payload.status !== status;
        update(payload.status, payload.progress);
        if (moved || !TERMINAL.has(payload.status)) later();
      },
      "stream.closed": () => later(),
    };
    for (const kind of JOB_EVENTS) handlers[kind] = () => later();
    const source = ImputeHub.follow(`/jobs/${encodeURIComponent(id)}/events`, handlers);
    // A federated job: its targets' events (they name it as parent) redraw their rows. The
    // user's stream is the page's shared one (the header's badge): it stays open.
    if (article.dataset.federated === "true") {
      const mine = {};
      for (const kind of JOB_EVENTS) {
        mine[kind] = (data) => { if ((data.payload || {}).parent_id === id) later(); };
      }
      ImputeHub.follow("/events", mine);
    }
    // The job's stream ends after its final state; EventSource would reconnect and replay.
    source.addEventListener("error", () => {
      if (TERMINAL.has(status)) source.close();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const article = document.getElementById("job");
    if (article && article.dataset.active === "true") followJob(article);
    // An empty list follows too: a job started elsewhere is announced there as well.
    const table = document.querySelector(".jobs-table");
    if (table || document.getElementById("new-jobs")) followList(table);
    if (table) selectAll(table);
  });

  // The header's box ticks or clears every row on the page, and shows "some" when mixed.
  function selectAll(table) {
    const all = document.getElementById("select-all");
    if (!all) return;
    const rows = () => [...table.querySelectorAll('input[name="job_id"]')];
    all.addEventListener("change", () => {
      for (const box of rows()) box.checked = all.checked;
    });
    table.addEventListener("change", (event) => {
      if (event.target === all) return;
      const ticked = rows().filter((box) => box.checked).length;
      all.checked = ticked > 0 && ticked === rows().length;
      all.indeterminate = ticked > 0 && ticked < rows().length;
    });
  }
})();
