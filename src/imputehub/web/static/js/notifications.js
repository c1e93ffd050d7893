// The header's unread badge, live on every page: the user's event stream says something
// happened; the unread count is then read again, since the hub makes the in-app
// notification from the event a moment later (the relay). No polling while nothing happens.
"use strict";

(() => {
  const badge = document.getElementById("unread-count");
  if (!badge || !window.ImputeHub || !window.EventSource) return;
  const hub = window.ImputeHub;
  // domain/notifications.py EventKind (tests/integration/web/test_settings_pages.py checks).
  const KINDS = [
    "job.queued", "job.running", "job.completed", "job.failed", "job.cancelled",
    "job.results_ready", "credential.expiring",
  ];
  // After an event: look again a few times, as the relay runs every few seconds.
  const LOOKS_MS = [1000, 3000, 7000, 15000];
  let timers = [];
  let shown = Number(badge.dataset.count || "0");

  function show(count) {
    // The number is the badge's first text; "unread" after it is for screen readers.
    const text = badge.firstChild;
    if (text && text.nodeType === Node.TEXT_NODE) text.nodeValue = String(count);
    else badge.prepend(String(count));
    badge.dataset.count = String(count);
    badge.hidden = count === 0;
    // app.css gives .badge a display that beats [hidden]; say it here too (CSSOM, CSP-safe).
    badge.style.display = count === 0 ? "none" : "";
    if (count > shown) {
      hub.announce(count === 1 ? "1 unread notification" : `${count} unread notifications`);
      const arrived = document.getElementById("new-arrived");
      if (arrived) arrived.hidden = false;
    }
    shown = count;
  }

  async function refresh() {
    try {
      const page = await hub.api("GET", "/notifications?unread=true&limit=1");
      if (page && typeof page.unread === "number") show(page.unread);
    } catch (e) {
      // Offline for a moment: the next event or look tries again.
    }
  }

  function soon() {
    for (const timer of timers) window.clearTimeout(timer);
    timers = LOOKS_MS.map((ms) => window.setTimeout(refresh, ms));
  }

  show(shown);

  const handlers = {};
  for (const kind of KINDS) handlers[kind] = soon;
  hub.follow("/events", handlers);
  // Back to a tab left in the background (or from the back-forward cache): catch up.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  window.addEventListener("pageshow", (event) => { if (event.persisted) refresh(); });
})();
