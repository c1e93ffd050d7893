// The console's panel import page: upload a panel VCF with the hub's resumable uploader
// (upload.js, the same routes the CLI uses), then come back to the form with that file chosen.
"use strict";

(() => {
  const control = document.querySelector("[data-panel-upload]");
  const Uploads = window.ImputeHubUploads;
  if (!control || !Uploads) return;
  const input = control.querySelector("#panel-upload");
  const status = control.querySelector("#panel-upload-status");
  control.hidden = false;

  function percent(upload) {
    return upload.file.size ? Math.floor((100 * upload.sentBytes) / upload.file.size) : 100;
  }

  function onChange(upload) {
    if (upload.state === "done" && upload.record) {
      status.textContent = `${upload.file.name} is uploaded; choosing it below.`;
      window.location.assign(`/console/panels/import?file=${encodeURIComponent(upload.record.id)}`);
      return;
    }
    if (upload.state === "failed" || upload.state === "cancelled") {
      status.textContent = `The upload stopped: ${upload.message}`;
      input.disabled = false;
      return;
    }
    const detail = upload.message ? ` ${upload.message}` : "";
    status.textContent = `Uploading ${upload.file.name}: ${percent(upload)} %.${detail}`;
  }

  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    if (!file) return;
    input.disabled = true;
    // A file whose upload stopped part way (same name and size) resumes where it was.
    const match = Object.values(Uploads.remembered()).find(
      (item) => item.name === file.name && item.size === file.size,
    );
    const upload = new Uploads.Upload(file, { uploadId: match ? match.upload_id : null, onChange });
    upload.start();
  });
})();
