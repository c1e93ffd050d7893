// The console's self-test page: while the shown self-test runs, follow its job's events
// and reload the page when its state changes (the server renders the report).
"use strict";

(() => {
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);

  document.addEventListener("DOMContentLoaded", () => {
    const report = document.getElementById("self-test-report");
    if (!report || report.dataset.active !== "true") return;
    const id = report.dataset.jobId;
    let status = report.dataset.status;
    const source = ImputeHub.follow(`/jobs/${encodeURIComponent(id)}/events`, {
      "job.progress": (data) => {
        const next = (data.payload || {}).status;
        if (!next || next === status) return;
        status = next;
        const shown = document.getElementById("self-test-status");
        if (shown) shown.textContent = next;
        ImputeHub.announce(`Self-test ${next}.`);
        // The report (steps, results, verdict) is the server's: fetch it anew.
        window.setTimeout(() => window.location.reload(), TERMINAL.has(next) ? 500 : 1500);
      },
    });
    // The job's stream ends after its final state; EventSource would reconnect and replay.
    source.addEventListener("error", () => {
      if (TERMINAL.has(status)) source.close();
    });
  });
})();
