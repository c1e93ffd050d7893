// Resumable uploads through the hub's chunked upload routes (/app/api/v1/uploads), the same
// routes the CLI uses: init, parts in any order (3 at a time, each with its SHA-256), complete.
// The hub records a part only once its bytes are stored, so after a reload or a dropped
// connection GET /uploads/{id} says exactly which parts are still missing.
// Files are read one part at a time (File.slice), never whole.
"use strict";

const ImputeHubUploads = (() => {
  // Tests (and curious users) may change these before an upload starts.
  const options = {
    parallel: 3,
    partSize: null, // null: the hub chooses (8 MiB by default)
    maxBackoffMs: 30000,
  };
  const BASE = "/app/api/v1/uploads";

  // --- what this browser remembers of unfinished uploads (per signed-in user) -------------

  function storeKey() {
    const who = document.querySelector(".site-header .who");
    return "imputehub.uploads." + (who ? who.textContent.trim() : "");
  }

  function remembered() {
    try {
      const data = JSON.parse(window.localStorage.getItem(storeKey()) || "{}");
      return data && typeof data === "object" ? data : {};
    } catch (e) {
      return {};
    }
  }

  function save(all) {
    try {
      window.localStorage.setItem(storeKey(), JSON.stringify(all));
    } catch (e) {
      // Storage full or disabled: the upload still works, it just cannot resume after a reload.
    }
  }

  function remember(entry) {
    const all = remembered();
    all[entry.upload_id] = entry;
    save(all);
  }

  function forget(uploadId) {
    const all = remembered();
    delete all[uploadId];
    save(all);
  }

  // --- one part over the wire --------------------------------------------------------------

  // SubtleCrypto exists only in secure contexts (https, or http on localhost/127.0.0.1).
  // Elsewhere (plain http to another host) parts go without X-Part-SHA256: the hub still
  // checks each part's length, and the file's own SHA-256 is shown when it has arrived.
  const canDigest = Boolean(window.isSecureContext && window.crypto && window.crypto.subtle);

  async function sha256Hex(buffer) {
    const digest = await window.crypto.subtle.digest("SHA-256", buffer);
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function partError(message, status, retryable, problem) {
    const error = new Error(message);
    error.status = status;
    error.retryable = retryable;
    error.problem = problem || null;
    return error;
  }

  // XMLHttpRequest rather than fetch: it reports upload progress within a part.
  function putPart(uploadId, index, body, digest, onProgress) {
    const xhr = new XMLHttpRequest();
    const done = new Promise((resolve, reject) => {
      xhr.open("PUT", `${BASE}/${encodeURIComponent(uploadId)}/part/${index}`);
      xhr.setRequestHeader("X-CSRF-Token", window.ImputeHub ? window.ImputeHub.csrf() : "");
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      if (digest) xhr.setRequestHeader("X-Part-SHA256", digest);
      xhr.upload.onprogress = (event) => onProgress(event.loaded);
      xhr.onload = () => {
        let data = null;
        try { data = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch (e) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve(data);
          return;
        }
        const detail = (data && data.detail) || `the hub answered ${xhr.status}`;
        const retryable = xhr.status >= 500 || xhr.status === 429 || xhr.status === 408;
        reject(partError(detail, xhr.status, retryable, data));
      };
      xhr.onerror = () => reject(partError("the connection to the hub was lost", 0, true));
      xhr.ontimeout = () => reject(partError("the hub did not answer in time", 0, true));
      xhr.onabort = () => reject(partError("paused", -1, false));
      xhr.send(body);
    });
    return { xhr, done };
  }

  const wait = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

  // --- an upload ---------------------------------------------------------------------------

  // States: starting, uploading, retrying, paused, completing, done, failed, cancelled.
  class Upload {
    constructor(file, { uploadId = null, onChange = () => {} } = {}) {
      this.file = file;
      this.uploadId = uploadId;
      this.onChange = onChange;
      this.state = "starting";
      this.message = "";
      this.record = null; // the file record (with its `validation` report) once complete
      this.partSize = 0;
      this.partCount = 0;
      this.queue = [];
      this.confirmed = 0; // bytes of parts the hub has stored
      this.inFlight = new Map(); // index -> {xhr, loaded}
      this.samples = []; // [time ms, bytes sent] for the speed over the last seconds
      this.run = 0; // bumped by pause/cancel: workers of an older run stop
      this.checksums = canDigest;
    }

    get sentBytes() {
      let loaded = this.confirmed;
      for (const part of this.inFlight.values()) loaded += part.loaded;
      return Math.min(loaded, this.file.size);
    }

    // Bytes per second over the last 10 s (null until there is something to measure).
    get speed() {
      const now = performance.now();
      this.samples = this.samples.filter(([t]) => now - t <= 10000);
      if (this.samples.length < 2) return null;
      const [t0, b0] = this.samples[0];
      const [t1, b1] = this.samples[this.samples.length - 1];
      return t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : null;
    }

    get secondsLeft() {
      const speed = this.speed;
      return speed && speed > 0 ? (this.file.size - this.sentBytes) / speed : null;
    }

    changed(state, message) {
      if (state) this.state = state;
      if (message !== undefined) this.message = message;
      this.samples.push([performance.now(), this.sentBytes]);
      this.onChange(this);
    }

    async start() {
      const run = ++this.run;
      this.changed("starting", "");
      try {
        if (this.uploadId) {
          if (!(await this.loadState(run))) return;
        } else {
          const body = { filename: this.file.name, size: this.file.size };
          if (options.partSize) body.part_size = options.partSize;
          const made = await window.ImputeHub.api("POST", "/uploads/init", body);
          this.uploadId = made.upload_id;
          this.partSize = made.part_size;
          this.partCount = made.part_count;
          this.queue = Array.from({ length: made.part_count }, (_, i) => i);
          remember({
            upload_id: made.upload_id,
            name: this.file.name,
            size: this.file.size,
            lastModified: this.file.lastModified,
            startedAt: new Date().toISOString(),
          });
        }
        if (run !== this.run) {
          // Cancelled while the hub was starting the upload: drop what it started.
          if (this.state === "cancelled") this.cancel();
          return;
        }
        await this.sendParts(run);
      } catch (error) {
        if (run === this.run) this.fail(error);
      }
    }

    // What the hub already has; false when there is nothing left to do here.
    async loadState(run) {
      let state;
      try {
        state = await window.ImputeHub.api("GET", `/uploads/${encodeURIComponent(this.uploadId)}`);
      } catch (error) {
        if (error.status === 404 || error.status === 410) {
          forget(this.uploadId);
          this.uploadId = null;
          throw partError(
            error.status === 410
              ? "the unfinished upload expired on the hub; remove this file and add it again to start anew"
              : "the hub no longer has this unfinished upload; remove this file and add it again to start anew",
            error.status, false, error.problem);
        }
        throw error;
      }
      if (run !== this.run) return false;
      if (state.size !== this.file.size) {
        throw partError("this is not the file that upload began with (its size differs)", 0, false);
      }
      this.partSize = state.part_size;
      this.partCount = state.part_count;
      this.confirmed = state.received_bytes;
      if (state.status === "completed" && state.file_id) {
        this.record = await window.ImputeHub.api("GET", `/files/${encodeURIComponent(state.file_id)}`);
        forget(this.uploadId);
        this.changed("done", "");
        return false;
      }
      this.queue = state.missing.slice();
      return true;
    }

    async sendParts(run) {
      this.changed("uploading", "");
      const workers = [];
      for (let i = 0; i < Math.max(1, options.parallel); i += 1) workers.push(this.worker(run));
      await Promise.all(workers);
      if (run !== this.run) return;
      await this.complete(run);
    }

    async worker(run) {
      while (run === this.run && this.queue.length > 0) {
        const index = this.queue.shift();
        const ok = await this.sendPart(run, index);
        if (!ok) return;
      }
    }

    // One part, retried with backoff while the connection is the problem.
    async sendPart(run, index) {
      const start = index * this.partSize;
      const end = Math.min(start + this.partSize, this.file.size);
      let attempt = 0;
      while (run === this.run) {
        const body = await this.file.slice(start, end).arrayBuffer();
        const digest = this.checksums ? await sha256Hex(body) : null;
        if (run !== this.run) return false;
        const entry = { xhr: null, loaded: 0 };
        const { xhr, done } = putPart(this.uploadId, index, body, digest, (loaded) => {
          entry.loaded = loaded;
          this.changed();
        });
        entry.xhr = xhr;
        this.inFlight.set(index, entry);
        try {
          await done;
          this.inFlight.delete(index);
          this.confirmed += end - start;
          if (this.state === "retrying") this.state = "uploading";
          this.changed(undefined, this.state === "uploading" ? "" : this.message);
          return true;
        } catch (error) {
          this.inFlight.delete(index);
          if (run !== this.run) {
            this.queue.unshift(index); // paused or cancelled mid-part: sent again on resume
            return false;
          }
          if (!error.retryable) {
            this.run += 1; // stop the other workers too
            this.abortInFlight();
            this.fail(error);
            return false;
          }
          attempt += 1;
          const delay = Math.min(options.maxBackoffMs, 1000 * 2 ** Math.min(attempt - 1, 5));
          const jitter = Math.random() * 0.2 * delay;
          this.changed("retrying",
            `${error.message}; trying again in ${Math.round((delay + jitter) / 1000)} s (attempt ${attempt + 1})`);
          await wait(delay + jitter);
        }
      }
      this.queue.unshift(index);
      return false;
    }

    async complete(run) {
      this.changed("completing", "Checking the file…");
      try {
        this.record = await window.ImputeHub.api(
          "POST", `/uploads/${encodeURIComponent(this.uploadId)}/complete`);
      } catch (error) {
        if (run !== this.run) return;
        if (error.status === 0 || error.status >= 500 || error.status === undefined) {
          // The answer was lost; the hub may have finished: ask it, then go on from there.
          await wait(2000);
          if (run === this.run) await this.start();
          return;
        }
        const code = error.problem && error.problem.code;
        if (error.status === 409 && (code === "upload_completing" || code === "upload_incomplete")) {
          // Another tab is completing it, or parts went missing: look again and go on.
          await wait(code === "upload_completing" ? 1000 : 0);
          if (run === this.run) await this.start();
          return;
        }
        // Refused for good (e.g. not a VCF): the hub kept nothing of it.
        forget(this.uploadId);
        this.uploadId = null;
        throw error;
      }
      if (run !== this.run) return;
      forget(this.uploadId);
      this.changed("done", "");
    }

    abortInFlight() {
      for (const part of this.inFlight.values()) {
        if (part.xhr) part.xhr.abort();
      }
    }

    pause() {
      if (!["uploading", "retrying", "starting"].includes(this.state)) return;
      this.run += 1;
      this.abortInFlight();
      this.changed("paused", "Paused. The parts that arrived stay on the hub.");
    }

    resume() {
      if (!["paused", "failed"].includes(this.state) || !this.uploadId) {
        if (this.state === "failed" && !this.uploadId) this.start();
        return;
      }
      this.confirmed = 0;
      this.start();
    }

    async cancel() {
      this.run += 1;
      this.abortInFlight();
      const id = this.uploadId;
      this.changed("cancelled", "Cancelled.");
      if (id) {
        forget(id);
        try {
          await window.ImputeHub.api("DELETE", `/uploads/${encodeURIComponent(id)}`);
        } catch (error) {
          // Already gone (404), or complete (409): nothing is left to free here.
        }
      }
    }

    fail(error) {
      if (error && error.status === 401) {
        this.changed("paused", "Your session ended. Sign in again in another tab, then resume.");
        return;
      }
      this.changed("failed", (error && error.message) || String(error));
    }
  }

  return { options, Upload, remembered, forget, canDigest };
})();
window.ImputeHubUploads = ImputeHubUploads;
