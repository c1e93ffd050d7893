// The dashboard, live: the user's event stream says when jobs change status (and when new
// ones appear); each shown active job's own stream carries its progress. Text only: every
// value from the hub goes in through textContent.
"use strict";

(() => {
  const table = document.getElementById("active-jobs");
  if (!table) return;
  const tbody = table.tBodies[0];
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  // The hub allows a user 10 open streams per process; every page already holds one (the
  // header's badge) and this page one more for the user's events: leave room for other tabs.
  const MAX_JOB_STREAMS = 3;
  const jobStreams = new Map();

  function rowOf(id) {
    for (const row of tbody.rows) {
      if (row.dataset.jobId === id) return row;
    }
    return null;
  }

  function bumpCount(status, delta) {
    const figure = document.querySelector(`[data-count="${CSS.escape(status)}"]`);
    if (figure) figure.textContent = String(Math.max(0, Number(figure.textContent) + delta));
  }

  function showActiveTable() {
    document.getElementById("active-wrap").hidden = false;
    document.getElementById("active-empty").hidden = true;
    const noJobs = document.getElementById("no-jobs");
    if (noJobs) noJobs.hidden = true;
  }

  function setProgress(row, progress) {
    if (typeof progress !== "number" || Number.isNaN(progress)) return;
    const bar = row.querySelector("progress");
    const percent = row.querySelector('[data-role="percent"]');
    const shown = Math.round(progress);
    bar.value = Math.min(100, Math.max(0, progress));
    bar.textContent = `${shown} %`;
    percent.textContent = `${shown} %`;
  }

  function jobName(row) {
    return row.querySelector("th").textContent.trim();
  }

  // The row takes `status`; true when that changed something.
  function setStatus(row, status) {
    const before = row.dataset.status;
    if (!status || before === status) return false;
    row.dataset.status = status;
    const badge = row.querySelector('[data-role="status"]');
    badge.className = `status status-${status}`;
    badge.textContent = status;
    if (before) bumpCount(before, -1);
    bumpCount(status, 1);
    if (TERMINAL.has(status)) finish(row, status);
    ImputeHub.announce(`Job ${jobName(row)}: ${status}`);
    return true;
  }

  function addResult(id, name) {
    const list = document.getElementById("recent-results");
    for (const link of list.querySelectorAll("a")) {
      if (link.getAttribute("href") === `/jobs/${id}`) return;
    }
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/jobs/${encodeURIComponent(id)}`;
    link.textContent = name;
    const badge = document.createElement("span");
    badge.className = "status status-completed";
    badge.textContent = "completed";
    const when = document.createElement("span");
    when.className = "hint";
    when.textContent = "just now";
    item.append(link, " ", badge, " ", when);
    list.prepend(item);
    list.hidden = false;
    document.getElementById("results-empty").hidden = true;
  }

  function finish(row, status) {
    row.classList.add("finished");
    const note = document.createElement("span");
    note.className = "hint";
    note.dataset.role = "finished";
    note.textContent = status === "completed" ? " finished: see Recent results" : " finished";
    if (!row.querySelector('[data-role="finished"]')) {
      row.querySelector('[data-role="status"]').after(note);
    }
    if (status === "completed") {
      setProgress(row, 100);
      addResult(row.dataset.jobId, jobName(row));
    }
    const source = jobStreams.get(row.dataset.jobId);
    if (source) source.close();
  }

  function serviceName(serviceId) {
    for (const row of document.querySelectorAll("tr[data-service-id]")) {
      if (row.dataset.serviceId === serviceId) return row.querySelector("th").textContent.trim();
    }
    return serviceId || "";
  }

  function cell(tag, text, label) {
    const element = document.createElement(tag);
    if (text !== undefined) element.textContent = text;
    if (label) element.dataset.label = label;
    return element;
  }

  // A job that started after the page was drawn (in another tab, by the CLI...).
  function newRow(id, payload) {
    const name = String(payload.job_name || id);
    const row = document.createElement("tr");
    row.dataset.jobId = id;
    const head = cell("th");
    head.scope = "row";
    const link = cell("a", name);
    link.href = `/jobs/${encodeURIComponent(id)}`;
    head.append(link);
    const statusCell = cell("td", undefined, "Status");
    const badge = cell("span");
    badge.dataset.role = "status";
    statusCell.append(badge);
    const progressCell = cell("td", undefined, "Progress");
    progressCell.className = "progress-cell";
    const bar = cell("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", `Progress of ${name}`);
    const percent = cell("span", "0 %");
    percent.dataset.role = "percent";
    progressCell.append(bar, " ", percent);
    const created = new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC";
    row.append(head, cell("td", serviceName(String(payload.service_id || "")), "Service"),
      statusCell, progressCell, cell("td", created, "Created"));
    tbody.prepend(row);
    showActiveTable();
    bumpCount("total", 1);
    return row;
  }

  function followJob(id) {
    if (jobStreams.has(id) || jobStreams.size >= MAX_JOB_STREAMS) return;
    // Only the progress messages: they carry the job's current status too, while the
    // stream's first events replay its history (which would flicker the row backwards).
    const source = ImputeHub.follow(`/jobs/${encodeURIComponent(id)}/events`, {
      "job.progress": (data) => {
        const row = rowOf(id);
        const payload = (data && data.payload) || {};
        if (!row) return;
        setProgress(row, payload.progress);
        setStatus(row, payload.status);
        if (TERMINAL.has(payload.status)) source.close();
      },
    });
    jobStreams.set(id, source);
  }

  function onJobEvent(data) {
    const payload = (data && data.payload) || {};
    const id = String(data.job_id || payload.job_id || "");
    const status = payload.status;
    // A federated job's targets show on its page; the dashboard shows the federated job.
    if (!id || !status || payload.parent_id) return;
    let row = rowOf(id);
    if (!row) {
      if (TERMINAL.has(status)) {
        if (status === "completed") addResult(id, String(payload.job_name || id));
        return;
      }
      row = newRow(id, payload);
    }
    if (typeof payload.progress === "number") setProgress(row, payload.progress);
    setStatus(row, status);
    if (!TERMINAL.has(status)) followJob(id);
  }

  const handlers = {};
  for (const kind of ["job.queued", "job.running", "job.completed", "job.failed",
    "job.cancelled", "job.results_ready"]) {
    handlers[kind] = onJobEvent;
  }
  ImputeHub.follow("/events", handlers);
  for (const row of tbody.rows) followJob(row.dataset.jobId);

  // The header's badge follows the unread count (notifications.js); when it grows, say here
  // that there is more to read than the list drawn with the page.
  const badge = document.getElementById("unread-count");
  const more = document.getElementById("unread-arrived");
  if (badge && more) {
    const drawn = Number(badge.dataset.count || "0");
    new MutationObserver(() => {
      if (Number(badge.dataset.count || "0") > drawn) more.hidden = false;
    }).observe(badge, { attributes: true, attributeFilter: ["data-count"] });
  }
})();
