// imputehub pages: what every page shares. No inline scripts (the pages' CSP forbids them).
"use strict";

const ImputeHub = (() => {
  const csrf = () => document.body.dataset.csrf || "";

  // Say something to screen readers (the page's polite live region).
  function announce(text) {
    const region = document.getElementById("live-status");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(() => { region.textContent = text; }, 50);
  }

  // The pages' JSON door (/app/api/v1): the session cookie, and the CSRF token on writes.
  async function api(method, path, body, extraHeaders) {
    const headers = Object.assign({ "X-CSRF-Token": csrf() }, extraHeaders || {});
    let payload = body;
    if (body !== undefined && !(body instanceof Blob) && !(body instanceof ArrayBuffer)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await fetch("/app/api/v1" + path, {
      method, headers, body: payload, credentials: "same-origin",
    });
    if (response.status === 401) {
      window.location.assign("/login?expired=1&next=" + encodeURIComponent(location.pathname + location.search));
      throw new Error("signed out");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
    if (!response.ok) {
      const error = new Error((data && data.detail) || response.statusText);
      error.status = response.status;
      error.problem = data;
      throw error;
    }
    return data;
  }

  // Follow a server-sent event stream (the same events as the REST API's), with the cookie.
  // handlers: { "job.progress": fn(data), ... }; reconnects are EventSource's own.
  // The user's own stream (/events) is opened once per page and shared by every script on
  // it (the header badge, the page's lists): each user may hold only a few streams at once.
  const shared = new Map();
  function follow(path, handlers) {
    let source = shared.get(path);
    if (!source || source.readyState === EventSource.CLOSED) {
      source = new EventSource("/app/api/v1" + path);
      if (path === "/events") shared.set(path, source);
    }
    for (const [name, handler] of Object.entries(handlers)) {
      source.addEventListener(name, (event) => {
        let data = null;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        handler(data, event);
      });
    }
    source.addEventListener("stream.closed", () => source.close());
    return source;
  }

  // Forms that ask first: <form data-confirm="Cancel this job?">.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  return { announce, api, follow, csrf };
})();
window.ImputeHub = ImputeHub;
