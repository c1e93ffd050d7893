// The new-job page: files (uploads via upload.js, or earlier uploads), each file's pre-flight
// report and its fit with every panel on offer, the catalogue and options, the review with
// the same job as CLI and curl commands, and the submit. DOM is built with textContent only.
// "Send to several services" turns the one service/panel choice into a list of targets
// (service, panel, population): a federated job, posted with `targets`.
"use strict";

(() => {
  const form = document.getElementById("new-job");
  if (!form) return;
  const data = JSON.parse(document.getElementById("new-job-data").textContent);
  const catalogue = data.catalogue || [];
  const start = data.start || {};
  const phasingLabels = data.phasing_labels || {};
  const maxTargets = data.max_targets || 5;
  const api = (...args) => window.ImputeHub.api(...args);
  const announce = (text) => window.ImputeHub.announce(text);
  const Uploads = window.ImputeHubUploads;

  const byId = (id) => document.getElementById(id);
  const fileList = byId("file-list");
  const fileInput = byId("file-input");
  const dropzone = byId("dropzone");
  const phasingSelect = byId("phasing");
  const populationSelect = byId("population");
  const r2Input = byId("r2_filter");
  const nameInput = byId("job-name");
  const descriptionInput = byId("description");
  const submitButton = byId("submit-job");
  const submitStatus = byId("submit-status");
  const severalBox = byId("several-targets");
  const targetsSection = byId("targets-section");
  const targetList = byId("target-list");
  const addTargetButton = byId("add-target");
  const notifyEach = byId("notify-each");

  const panels = new Map(); // panel id -> {panel, service}
  for (const service of catalogue) {
    for (const panel of service.panels) panels.set(panel.id, { panel, service });
  }

  // --- small helpers -------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function size(bytes) {
    if (bytes === null || bytes === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    for (const unit of units) {
      if (value < 1024 || unit === "TiB") return unit === "B" ? `${value} B` : `${value.toFixed(1)} ${unit}`;
      value /= 1024;
    }
    return `${bytes} B`;
  }

  function seconds(value) {
    if (value === null || !Number.isFinite(value)) return "–";
    const s = Math.round(value);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function percent(share) {
    return share === null || share === undefined ? "–" : `${Math.round(share * 1000) / 10} %`;
  }

  let nextKey = 1;
  const entries = new Map(); // key -> entry {key, name, upload, record, card parts}

  function chosenPanel() {
    const checked = form.querySelector('input[name="reference_panel_id"]:checked');
    return checked ? panels.get(checked.value) || null : null;
  }

  function several() {
    return Boolean(severalBox && severalBox.checked);
  }

  // --- targets of a federated job ------------------------------------------------------------

  let nextTarget = 1;
  const targetRows = []; // {key, row, heading, panelSelect, populationSelect, remove, error}

  function rowPanel(target) {
    return panels.get(target.panelSelect.value) || null;
  }

  // The panels chosen: each target's (several), else the one radio's.
  function chosenPanels() {
    if (!several()) {
      const chosen = chosenPanel();
      return chosen ? [chosen] : [];
    }
    return targetRows.map(rowPanel).filter(Boolean);
  }

  function fillPopulations(target, keep) {
    const chosen = rowPanel(target);
    const select = target.populationSelect;
    const previous = keep !== undefined ? keep : select.value;
    select.replaceChildren(el("option", { value: "", text: "Not stated (the service decides)" }));
    for (const population of chosen ? chosen.panel.populations : []) {
      select.append(el("option", { value: population, text: population,
        selected: Boolean(previous) && previous.toLowerCase() === population.toLowerCase() }));
    }
  }

  function renumberTargets() {
    targetRows.forEach((target, index) => {
      const number = index + 1;
      target.heading.textContent = `Target ${number}`;
      target.remove.setAttribute("aria-label", `Remove target ${number}`);
      target.remove.hidden = targetRows.length <= 2;
    });
    if (addTargetButton) {
      addTargetButton.disabled = targetRows.length >= maxTargets;
      addTargetButton.textContent = targetRows.length >= maxTargets
        ? `Add another target (at most ${maxTargets})` : "Add another target";
    }
  }

  function addTarget(preset) {
    const key = `t${nextTarget++}`;
    const heading = el("h4", { id: `${key}-title`, class: "target-title" });
    const panelSelect = el("select", { id: `${key}-panel`, class: "target-panel",
      "aria-describedby": `${key}-error` });
    panelSelect.append(el("option", { value: "", text: "Choose a service and panel…" }));
    for (const service of catalogue) {
      const group = el("optgroup", { label: service.name });
      for (const panel of service.panels) {
        group.append(el("option", { value: panel.id, text: `${service.name} · ${panel.name} (${panel.build})`,
          selected: Boolean(preset) && preset.reference_panel_id === panel.id }));
      }
      panelSelect.append(group);
    }
    const populationSelect = el("select", { id: `${key}-population`, class: "target-population" });
    const remove = el("button", { type: "button", class: "small", text: "Remove" });
    const error = el("p", { id: `${key}-error`, class: "field-error target-error", role: "alert", hidden: true });
    const row = el("li", { class: "target-row", "aria-labelledby": `${key}-title` },
      heading,
      el("div", { class: "field" }, el("label", { for: `${key}-panel`, text: "Service and reference panel" }), panelSelect),
      el("div", { class: "field" }, el("label", { for: `${key}-population`, text: "Population" }), populationSelect),
      el("div", { class: "actions" }, remove),
      error);
    const target = { key, row, heading, panelSelect, populationSelect, remove, error };
    targetRows.push(target);
    targetList.append(row);
    fillPopulations(target, preset ? preset.population || "" : "");
    panelSelect.addEventListener("change", () => {
      clearErrors();
      fillPopulations(target);
      onTargetsChange();
    });
    populationSelect.addEventListener("change", renderReview);
    remove.addEventListener("click", () => {
      const index = targetRows.indexOf(target);
      if (index < 0) return;
      targetRows.splice(index, 1);
      row.remove();
      renumberTargets();
      onTargetsChange();
      const next = targetRows[Math.min(index, targetRows.length - 1)];
      if (next) next.panelSelect.focus();
      announce(`Target ${index + 1} was removed; ${targetRows.length} targets are left.`);
    });
    renumberTargets();
    return target;
  }

  // Phasing: the methods every chosen service offers (all when none says, or they share none).
  function offeredPhasing(chosen) {
    const all = Object.keys(phasingLabels);
    let offered = null;
    for (const item of chosen) {
      if (!item.service.phasing.length) continue;
      offered = offered === null ? item.service.phasing.slice()
        : offered.filter((value) => item.service.phasing.includes(value));
    }
    return offered && offered.length ? offered : all;
  }

  function setPhasing(chosen) {
    const offered = offeredPhasing(chosen);
    const current = phasingSelect.value;
    const preferred = offered.includes(current) ? current : (offered.includes("eagle") ? "eagle" : offered[0]);
    setOptions(phasingSelect, offered, (v) => phasingLabels[v] || v, preferred);
  }

  function onTargetsChange() {
    const chosen = chosenPanels();
    for (const card of form.querySelectorAll(".service-card")) card.classList.remove("chosen");
    setPhasing(chosen);
    for (const entry of entries.values()) renderFits(entry);
    renderReview();
  }

  function setSeveral(on, presets) {
    targetsSection.hidden = !on;
    byId("population-field").hidden = on;
    byId("phasing-hint").textContent = on
      ? "Only the methods every chosen service offers are listed; each target's job uses this one."
      : "Only the methods the chosen service offers are listed.";
    for (const radio of form.querySelectorAll('input[name="reference_panel_id"]')) radio.disabled = on;
    if (on && !targetRows.length) {
      const chosen = chosenPanel();
      const starting = presets && presets.length ? presets
        : [chosen ? { reference_panel_id: chosen.panel.id, population: populationSelect.value } : null, null];
      for (const preset of starting.slice(0, maxTargets)) addTarget(preset);
    }
    if (on) onTargetsChange();
    else onPanelChange();
  }

  if (severalBox) {
    severalBox.addEventListener("change", () => {
      clearErrors();
      setSeveral(severalBox.checked);
      announce(severalBox.checked
        ? "Several targets: choose each service and panel in the list of targets."
        : "One service and panel: choose it among the cards.");
      if (severalBox.checked && targetRows.length) targetRows[0].panelSelect.focus();
    });
  }
  if (notifyEach) notifyEach.addEventListener("change", () => renderReview());
  if (addTargetButton) {
    addTargetButton.addEventListener("click", () => {
      if (targetRows.length >= maxTargets) return;
      const target = addTarget(null);
      onTargetsChange();
      target.panelSelect.focus();
    });
  }

  function chosenMode() {
    const checked = form.querySelector('input[name="mode"]:checked');
    return checked ? checked.value : "imputation";
  }

  // --- field errors, shown next to what they concern -----------------------------------------

  const FIELD_INPUTS = {
    name: nameInput,
    description: descriptionInput,
    phasing: phasingSelect,
    population: populationSelect,
    r2_filter: r2Input,
    mode: byId("mode-imputation"),
    build: null,
    service_id: null,
    reference_panel_id: null,
    input_file_ids: fileInput,
  };

  function clearErrors() {
    for (const node of form.querySelectorAll(".field-error")) {
      node.textContent = "";
      node.hidden = true;
    }
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    byId("form-error").hidden = true;
  }

  // A refusal naming targets: each reason next to its target (`index` counts from 0).
  function showTargetProblems(problem) {
    const shown = [];
    for (const item of problem.targets) {
      const target = targetRows[item.index];
      const message = item.message || problem.detail;
      if (!target) {
        shown.push(showError("targets", `Target ${item.index + 1}: ${message}`));
        continue;
      }
      target.error.textContent = target.error.hidden ? message : `${target.error.textContent} ${message}`;
      target.error.hidden = false;
      target.panelSelect.setAttribute("aria-invalid", "true");
      shown.push(target.panelSelect);
    }
    showError("targets", `The job was not created: ${problem.targets.length === 1 ? "one target was" : `${problem.targets.length} targets were`} refused; see the reasons next to them.`);
    return shown;
  }

  // Show `message` next to `field`; returns the element to move the focus to.
  function showError(field, message) {
    field = String(field).split(".")[0];
    // With several targets the service and panel are the targets' (its slot is hidden).
    if (several() && (field === "reference_panel_id" || field === "service_id" || field === "build"
      || field === "population")) field = "targets";
    const slot = byId(`error-${field}`);
    if (!slot) {
      const general = byId("form-error");
      general.textContent = general.hidden ? message : `${general.textContent} ${message}`;
      general.hidden = false;
      return general;
    }
    slot.textContent = slot.hidden ? message : `${slot.textContent} ${message}`;
    slot.hidden = false;
    let target = FIELD_INPUTS[field];
    if (field === "targets" && targetRows.length) target = targetRows[0].panelSelect;
    if (field === "reference_panel_id" || field === "service_id" || field === "build") {
      target = form.querySelector('input[name="reference_panel_id"]:checked')
        || form.querySelector('input[name="reference_panel_id"]');
    }
    if (target) target.setAttribute("aria-invalid", "true");
    return target || slot;
  }

  function showProblem(error) {
    const problem = error.problem || {};
    let shown = [];
    if (several() && Array.isArray(problem.targets) && problem.targets.length) {
      shown = showTargetProblems(problem);
    } else if (Array.isArray(problem.errors) && problem.errors.length) {
      for (const item of problem.errors) {
        shown.push(showError(item.field || "", item.message || problem.detail || error.message));
      }
    } else {
      shown.push(showError(problem.field || "", problem.detail || error.message));
    }
    const first = shown.find((node) => node && typeof node.focus === "function");
    if (first) {
      if (first.classList && first.classList.contains("error")) first.setAttribute("tabindex", "-1");
      first.focus();
    }
    announce(`The job was not submitted: ${problem.detail || error.message}`);
  }

  // --- files ---------------------------------------------------------------------------------

  function updateEmpty() {
    byId("no-files").hidden = entries.size > 0;
  }

  function makeCard(name, fileSize) {
    const key = `f${nextKey++}`;
    const title = el("h4", { id: `${key}-name`, class: "file-name", text: name });
    const progress = el("progress", { max: "100", value: "0", "aria-labelledby": `${key}-name` });
    const line = el("p", { class: "upload-text", id: `${key}-text` });
    const message = el("p", { class: "upload-message", role: "status" });
    // Each card has these buttons: their names (visible text first) say which file they act on.
    const pause = el("button", { type: "button", class: "small", text: "Pause", "aria-label": `Pause: ${name}` });
    const cancel = el("button", { type: "button", class: "small danger", text: "Cancel upload",
      "aria-label": `Cancel upload: ${name}` });
    const remove = el("button", { type: "button", class: "small", text: "Remove from this job",
      "aria-label": `Remove from this job: ${name}`, hidden: true });
    const buttons = el("div", { class: "actions" }, pause, cancel, remove);
    const report = el("div", { class: "report" });
    const fits = el("div", { class: "fits" });
    const facts = el("p", { class: "hint file-facts", text: size(fileSize) });
    const card = el("li", { class: "file-card", "aria-labelledby": `${key}-name` },
      title, facts, progress, line, message, buttons, report, fits);
    fileList.append(card);
    const entry = { key, name, size: fileSize, card, facts, progress, line, message, pause, cancel, remove, report, fits,
      upload: null, record: null, fit: null };
    entries.set(key, entry);
    pause.addEventListener("click", () => {
      if (!entry.upload) return;
      if (entry.upload.state === "paused" || entry.upload.state === "failed") entry.upload.resume();
      else entry.upload.pause();
    });
    cancel.addEventListener("click", async () => {
      if (entry.upload) await entry.upload.cancel();
      dropEntry(entry);
      announce(`The upload of ${name} was cancelled.`);
    });
    remove.addEventListener("click", () => {
      dropEntry(entry);
      announce(`${name} was removed from this job; it stays in your files.`);
    });
    updateEmpty();
    return entry;
  }

  // The stored file's SHA-256, to compare with `sha256sum` of the file on disk.
  function showStored(entry) {
    entry.facts.textContent = `${size(entry.record.size)} · SHA-256 ${entry.record.sha256}`;
  }

  function dropEntry(entry) {
    entries.delete(entry.key);
    entry.card.remove();
    if (entry.record) {
      const box = byId(`earlier-${entry.record.id}`);
      if (box) box.checked = false;
    }
    updateEmpty();
    renderReview();
  }

  function onUploadChange(entry, upload) {
    const done = upload.state === "done";
    const total = upload.file.size;
    const sent = done ? total : upload.sentBytes;
    const share = total ? sent / total : 1;
    entry.progress.value = Math.round(share * 1000) / 10;
    const bits = [`${size(sent)} of ${size(total)} (${Math.floor(share * 100)} %)`];
    if (upload.state === "uploading" || upload.state === "retrying") {
      const speed = upload.speed;
      if (speed) bits.push(`${size(Math.round(speed))}/s`, `${seconds(upload.secondsLeft)} left`);
    }
    const words = {
      starting: "Starting…", uploading: "Uploading", retrying: "Connection trouble",
      paused: "Paused", completing: "Checking the file", done: "Arrived and checked",
      failed: "Stopped", cancelled: "Cancelled",
    };
    entry.line.textContent = `${words[upload.state] || upload.state}: ${bits.join(" · ")}`;
    if (upload.state === "failed") {
      entry.message.className = "upload-message error";
      entry.message.textContent = upload.message;
    } else {
      entry.message.className = "upload-message hint";
      entry.message.textContent = upload.message;
    }
    const verb = upload.state === "paused" || upload.state === "failed" ? "Resume" : "Pause";
    entry.pause.textContent = verb;
    entry.pause.setAttribute("aria-label", `${verb}: ${entry.name}`);
    entry.pause.hidden = done || upload.state === "cancelled" || upload.state === "completing";
    entry.cancel.hidden = done || upload.state === "cancelled";
    entry.remove.hidden = !done;
    if (upload.state !== entry.lastState) {
      entry.lastState = upload.state;
      if (upload.state === "failed") announce(`The upload of ${entry.name} stopped: ${upload.message}`);
      if (upload.state === "paused") announce(`The upload of ${entry.name} is paused.`);
      if (done && !entry.record) {
        entry.record = upload.record;
        entry.progress.hidden = true;
        showStored(entry);
        announce(`${entry.name} has arrived and was checked.`);
        loadFits([entry]);
        renderUnfinished();
      }
    }
    renderReview();
  }

  function addUpload(file, uploadId) {
    const entry = makeCard(file.name, file.size);
    entry.upload = new Uploads.Upload(file, {
      uploadId: uploadId || null,
      onChange: (upload) => onUploadChange(entry, upload),
    });
    entry.upload.start();
    return entry;
  }

  function activeUploadIds() {
    const ids = new Set();
    for (const entry of entries.values()) {
      if (entry.upload && entry.upload.uploadId) ids.add(entry.upload.uploadId);
    }
    return ids;
  }

  // A file picked again that an unfinished upload began with resumes it.
  function addFiles(files) {
    const active = activeUploadIds();
    for (const file of files) {
      const match = Object.values(Uploads.remembered()).find((item) =>
        !active.has(item.upload_id) && item.name === file.name && item.size === file.size
        && item.lastModified === file.lastModified);
      addUpload(file, match ? match.upload_id : null);
    }
    renderUnfinished();
  }

  fileInput.addEventListener("change", () => {
    addFiles(Array.from(fileInput.files || []));
    fileInput.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    dropzone.addEventListener(type, (event) => {
      event.preventDefault();
      dropzone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    dropzone.addEventListener(type, () => dropzone.classList.remove("dragging"));
  }
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = Array.from((event.dataTransfer && event.dataTransfer.files) || []);
    if (files.length) addFiles(files);
  });

  // --- unfinished uploads from before a reload ----------------------------------------------

  function renderUnfinished() {
    const section = byId("unfinished");
    const list = byId("unfinished-list");
    const active = activeUploadIds();
    const waiting = Object.values(Uploads.remembered()).filter((item) => !active.has(item.upload_id));
    list.replaceChildren();
    for (const item of waiting) {
      const inputId = `resume-${item.upload_id}`;
      const note = el("span", { class: "hint" });
      const picker = el("input", { type: "file", id: inputId, class: "file-input" });
      const label = el("label", { for: inputId, class: "button", text: `Choose ${item.name} again` });
      const discard = el("button", { type: "button", class: "small danger", text: "Discard" });
      const problem = el("p", { class: "field-error", hidden: true });
      const row = el("li", { class: "unfinished-item" },
        el("strong", { text: item.name }), " ", el("span", { class: "hint", text: `(${size(item.size)})` }), " ", note,
        el("div", { class: "actions" }, label, picker, discard), problem);
      list.append(row);
      api("GET", `/uploads/${encodeURIComponent(item.upload_id)}`).then((state) => {
        note.textContent = `${size(state.received_bytes)} of ${size(state.size)} have arrived; ${state.missing.length} of ${state.part_count} parts to send.`;
      }).catch((error) => {
        if (error.status === 404 || error.status === 410) {
          Uploads.forget(item.upload_id);
          row.remove();
          if (!list.children.length) section.hidden = true;
        }
      });
      picker.addEventListener("change", () => {
        const file = picker.files && picker.files[0];
        if (!file) return;
        if (file.name !== item.name || file.size !== item.size) {
          problem.textContent = `That is ${file.name} (${size(file.size)}), not ${item.name} (${size(item.size)}). Choose the same file.`;
          problem.hidden = false;
          picker.value = "";
          return;
        }
        if (file.lastModified !== item.lastModified) {
          // Changed since the upload began: its stored parts may not match, so start anew.
          Uploads.forget(item.upload_id);
          api("DELETE", `/uploads/${encodeURIComponent(item.upload_id)}`).catch(() => {});
          addUpload(file, null);
          announce(`${file.name} changed since its upload began; it is uploaded anew.`);
        } else {
          addUpload(file, item.upload_id);
          announce(`Resuming the upload of ${file.name}.`);
        }
        renderUnfinished();
      });
      discard.addEventListener("click", () => {
        Uploads.forget(item.upload_id);
        api("DELETE", `/uploads/${encodeURIComponent(item.upload_id)}`).catch(() => {});
        renderUnfinished();
        announce(`The unfinished upload of ${item.name} was discarded.`);
      });
    }
    section.hidden = waiting.length === 0;
  }

  // --- files uploaded earlier -----------------------------------------------------------------

  async function addStored(fileId) {
    for (const entry of entries.values()) {
      if (entry.record && entry.record.id === fileId) return;
    }
    let record;
    try {
      record = await api("GET", `/files/${encodeURIComponent(fileId)}`);
    } catch (error) {
      showError("input_file_ids", `File ${fileId}: ${error.message}`);
      return;
    }
    const entry = makeCard(record.filename, record.size);
    entry.record = record;
    entry.progress.hidden = true;
    showStored(entry);
    entry.line.textContent = "Uploaded earlier";
    entry.pause.hidden = true;
    entry.cancel.hidden = true;
    entry.remove.hidden = false;
    loadFits([entry]);
    renderReview();
  }

  for (const box of form.querySelectorAll(".earlier-file")) {
    box.addEventListener("change", () => {
      if (box.checked) {
        addStored(box.value);
      } else {
        for (const entry of entries.values()) {
          if (entry.record && entry.record.id === box.value) dropEntry(entry);
        }
      }
    });
  }

  // --- pre-flight report and fit with each panel ----------------------------------------------

  function renderReport(entry, fit) {
    const report = fit.validation;
    entry.report.replaceChildren();
    entry.report.append(el("h5", { text: "Pre-flight report" }));
    if (!report) {
      entry.report.append(el("p", { class: "warning", text: "This file was not checked; upload it again." }));
      return;
    }
    const build = report.build
      ? `${report.build} (from ${{ contig_lengths: "its ##contig lengths", assembly: "the assembly its header names", positions: "its positions" }[report.build_source] || "its contents"})`
      : "not known";
    const rows = [
      ["Samples", report.samples],
      ["Variants", `${report.variants} (${report.snps} SNPs, ${report.indels} indels, ${report.multiallelic} multi-allelic)`],
      ["Chromosomes", (report.chromosomes || []).join(", ") || "–"],
      ["Build (guess)", build],
      ["Phased genotypes", percent(report.phased_share)],
      ["Missing genotypes", percent(report.missing_share)],
      ["Format", report.format],
    ];
    const facts = el("dl", { class: "facts compact" });
    for (const [term, value] of rows) facts.append(el("dt", { text: term }), el("dd", { text: value }));
    entry.report.append(facts);
    const problems = report.problems || [];
    if (!problems.length) {
      entry.report.append(el("p", { class: "ok", text: "No problems found." }));
    } else {
      const list = el("ul", { class: "problems" });
      for (const problem of problems) {
        const fix = (fit.fixes || {})[problem.code];
        list.append(el("li", { class: problem.severity === "error" ? "problem-error" : "problem-warning" },
          el("strong", { text: problem.severity === "error" ? "Error: " : "Warning: " }),
          problem.message,
          fix ? el("span", { class: "fix", text: ` What to do: ${fix}` }) : null));
      }
      entry.report.append(list);
    }
  }

  function renderFits(entry) {
    const fit = entry.fit;
    entry.fits.replaceChildren();
    if (!fit) return;
    entry.fits.append(el("h5", { text: "Fit with each service and panel" }));
    const chosenIds = new Set(chosenPanels().map((item) => item.panel.id));
    const list = el("ul", { class: "fit-list" });
    for (const item of fit.candidates) {
      const mark = el("span", { class: item.fits ? "mark ok" : "mark bad", "aria-hidden": "true", text: item.fits ? "✓" : "✗" });
      const words = el("span", { class: "visually-hidden", text: item.fits ? "Fits: " : "Does not fit: " });
      const line = el("li", { class: `fit ${item.fits ? "fits" : "misfit"}${chosenIds.has(item.panel_id) ? " chosen" : ""}` },
        mark, " ", words, el("span", { class: "fit-target", text: `${item.service_name} · ${item.panel_name} (${item.build})` }));
      if (!item.fits) line.append(el("span", { class: "fit-reason", text: ` — ${item.reasons.join("; ")}` }));
      list.append(line);
    }
    if (!fit.candidates.length) list.append(el("li", { text: "No service or panel is on offer right now." }));
    entry.fits.append(list);
  }

  async function loadFits(list) {
    const targets = list.filter((entry) => entry.record);
    if (!targets.length) return;
    const body = {
      input_file_ids: targets.map((entry) => entry.record.id),
      mode: chosenMode(),
      phasing: phasingSelect.value || null,
    };
    try {
      const answer = await api("POST", "/jobs/compatibility", body);
      for (const fit of answer.files) {
        for (const entry of targets) {
          if (entry.record.id === fit.file_id && entries.has(entry.key)) {
            entry.fit = fit;
            renderReport(entry, fit);
            renderFits(entry);
          }
        }
      }
      const chosenIds = new Set(chosenPanels().map((item) => item.panel.id));
      const misfits = answer.files.filter((fit) =>
        fit.candidates.some((c) => chosenIds.has(c.panel_id) && !c.fits));
      if (misfits.length) announce(`${misfits.length} file(s) do not fit ${several() ? "a chosen target" : "the chosen panel"}; see the reasons under each file.`);
    } catch (error) {
      for (const entry of targets) {
        entry.fits.replaceChildren(el("p", { class: "error", text: `Could not check this file against the panels: ${error.message}` }));
      }
    }
  }

  let refitTimer = null;
  function refitAll() {
    window.clearTimeout(refitTimer);
    refitTimer = window.setTimeout(() => loadFits(Array.from(entries.values())), 250);
  }

  // --- catalogue and options -----------------------------------------------------------------

  function setOptions(select, values, labelOf, keep) {
    select.replaceChildren();
    for (const value of values) {
      select.append(el("option", { value, text: labelOf(value), selected: value === keep }));
    }
  }

  function onPanelChange(keepPopulation) {
    if (several()) { onTargetsChange(); return; }
    const chosen = chosenPanel();
    for (const card of form.querySelectorAll(".service-card")) card.classList.remove("chosen");
    if (!chosen) { renderReview(); return; }
    const radio = byId(`panel-${chosen.panel.id}`);
    const card = radio && radio.closest(".service-card");
    if (card) card.classList.add("chosen");
    // Phasing: what the service offers (all methods when it does not say).
    setPhasing([chosen]);
    // Population: the panel's list.
    const previous = keepPopulation !== undefined ? keepPopulation : populationSelect.value;
    populationSelect.replaceChildren(el("option", { value: "", text: "Not stated (the service decides)" }));
    for (const population of chosen.panel.populations) {
      populationSelect.append(el("option", { value: population, text: population,
        selected: Boolean(previous) && previous.toLowerCase() === population.toLowerCase() }));
    }
    // r² filter: the values the service offers, as suggestions.
    const datalist = byId("r2-choices");
    datalist.replaceChildren();
    for (const value of chosen.service.r2_filters) datalist.append(el("option", { value: String(value) }));
    for (const entry of entries.values()) renderFits(entry);
    renderReview();
  }

  for (const radio of form.querySelectorAll('input[name="reference_panel_id"]')) {
    radio.addEventListener("change", () => { clearErrors(); onPanelChange(); refitAll(); });
  }
  for (const radio of form.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => { renderReview(); refitAll(); });
  }
  phasingSelect.addEventListener("change", () => { renderReview(); refitAll(); });
  for (const input of [populationSelect, r2Input, nameInput, descriptionInput]) {
    input.addEventListener("input", renderReview);
    input.addEventListener("change", renderReview);
  }

  // --- review: the job, as the hub will get it and as commands --------------------------------

  function targetsBody() {
    return targetRows.map((target) => {
      const chosen = rowPanel(target);
      const item = {
        service_id: chosen ? chosen.service.id : "",
        reference_panel_id: chosen ? chosen.panel.id : "",
      };
      if (target.populationSelect.value) item.population = target.populationSelect.value;
      return item;
    });
  }

  function jobBody() {
    if (several()) {
      const chosen = chosenPanels();
      const body = {
        name: nameInput.value.trim(),
        build: chosen.length ? chosen[0].panel.build : "",
        phasing: phasingSelect.value || null,
        mode: chosenMode(),
        input_file_ids: Array.from(entries.values()).filter((e) => e.record).map((e) => e.record.id),
        targets: targetsBody(),
      };
      if (descriptionInput.value.trim()) body.description = descriptionInput.value.trim();
      if (r2Input.value.trim() !== "") body.r2_filter = Number(r2Input.value);
      if (notifyEach && notifyEach.checked) body.notify_each_target = true;
      return body;
    }
    const chosen = chosenPanel();
    const body = {
      name: nameInput.value.trim(),
      service_id: chosen ? chosen.service.id : "",
      reference_panel_id: chosen ? chosen.panel.id : "",
      build: chosen ? chosen.panel.build : "",
      phasing: phasingSelect.value || null,
      mode: chosenMode(),
      input_file_ids: Array.from(entries.values()).filter((e) => e.record).map((e) => e.record.id),
    };
    if (descriptionInput.value.trim()) body.description = descriptionInput.value.trim();
    if (populationSelect.value) body.population = populationSelect.value;
    if (r2Input.value.trim() !== "") body.r2_filter = Number(r2Input.value);
    return body;
  }

  // A word for a POSIX shell: as it is when safe, else in single quotes.
  function shellWord(value) {
    const text = String(value);
    return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
  }

  function cliCommand(body, chosen, names) {
    const words = [["imputehub", "submit", ...names.map(shellWord)].join(" ")];
    const add = (flag, value) => { if (value !== undefined && value !== null && value !== "") words.push(`${flag} ${shellWord(value)}`); };
    if (body.targets) {
      // Several targets: one --target SERVICE:PANEL[:POPULATION] each.
      for (const target of targetRows) {
        const found = rowPanel(target);
        const where = found ? `${found.service.slug}:${found.panel.slug}` : "SERVICE:PANEL";
        add("--target", target.populationSelect.value ? `${where}:${target.populationSelect.value}` : where);
      }
      if (body.notify_each_target) words.push("--notify-each-target");
    } else {
      add("--service", chosen ? chosen.service.slug : "SERVICE");
      add("--panel", chosen ? chosen.panel.slug : "PANEL");
    }
    add("--build", body.build || "BUILD");
    add("--phasing", body.phasing);
    add("--population", body.population);
    if (body.mode !== "imputation") add("--mode", body.mode);
    add("--r2-filter", body.r2_filter);
    add("--name", body.name || "NAME");
    return `imputehub login --url ${shellWord(window.location.origin)}\n${words.join(" \\\n    ")}`;
  }

  function curlLines(body) {
    const origin = window.location.origin;
    const lines = [];
    const pending = Array.from(entries.values()).filter((e) => !e.record);
    const ids = body.input_file_ids.slice();
    for (const entry of pending) {
      lines.push(`# ${entry.name} is still uploading; or upload it yourself and use the "id" it answers:`);
      lines.push(`curl -sS -H "Authorization: Bearer $IMPUTEHUB_TOKEN" -F ${shellWord(`file=@${entry.name}`)} ${shellWord(`${origin}/api/v1/files`)}`);
      ids.push(`<id of ${entry.name}>`);
    }
    // Slugs read better than ids in a command, and POST /jobs takes either.
    const chosen = chosenPanel();
    let named = chosen ? { service_id: chosen.service.slug, reference_panel_id: chosen.panel.slug } : {};
    if (body.targets) {
      named = { targets: body.targets.map((item) => {
        const found = panels.get(item.reference_panel_id);
        return found ? { ...item, service_id: found.service.slug, reference_panel_id: found.panel.slug } : item;
      }) };
    }
    const json = JSON.stringify({ ...body, ...named, input_file_ids: ids });
    lines.push(`curl -sS -X POST ${shellWord(`${origin}/api/v1/jobs`)} \\`);
    lines.push('    -H "Authorization: Bearer $IMPUTEHUB_TOKEN" \\');
    lines.push('    -H "Content-Type: application/json" \\');
    lines.push(`    --data-binary ${shellWord(json)}`);
    return lines.join("\n");
  }

  function renderReview() {
    const body = jobBody();
    const chosen = chosenPanel();
    const names = Array.from(entries.values()).map((e) => e.name);
    const pending = Array.from(entries.values()).filter((e) => !e.record).length;
    const summary = byId("review-summary");
    summary.replaceChildren();
    const files = ["Files", names.length ? names.join(", ") + (pending ? ` (${pending} still uploading)` : "") : "none yet"];
    const rows = body.targets ? [
      files,
      ["Targets", body.targets.length ? targetRows.map((target, index) => {
        const found = rowPanel(target);
        const where = found ? `${found.service.name} · ${found.panel.name} (${found.panel.build})` : "not chosen";
        return `${index + 1}. ${where}, population ${target.populationSelect.value || "not stated"}`;
      }).join("; ") : "none yet"],
    ] : [
      files,
      ["Service", chosen ? chosen.service.name : "not chosen"],
      ["Reference panel", chosen ? `${chosen.panel.name} (${chosen.panel.build})` : "not chosen"],
      ["What to run", body.mode === "qc_only" ? "Quality control only" : "Imputation"],
      ["Phasing", phasingLabels[body.phasing] || body.phasing || "–"],
      ...(body.targets ? [] : [["Population", body.population || "not stated"]]),
      ["r² filter", body.r2_filter !== undefined ? String(body.r2_filter) : "the service's default"],
      ["Name", body.name || "not given"],
    ];
    if (body.description) rows.push(["Description", body.description]);
    for (const [term, value] of rows) summary.append(el("dt", { text: term }), el("dd", { text: value }));
    byId("cli-command").textContent = cliCommand(body, chosen, names.length ? names : ["FILE.vcf.gz"]);
    byId("curl-lines").textContent = curlLines(body);
  }

  // --- submit --------------------------------------------------------------------------------

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const body = jobBody();
    const uploading = Array.from(entries.values()).filter((e) => !e.record);
    const shown = [];
    if (!entries.size) shown.push(showError("input_file_ids", "Add at least one VCF file."));
    else if (uploading.length) {
      shown.push(showError("input_file_ids",
        `Wait until every file has arrived: ${uploading.map((e) => e.name).join(", ")} ${uploading.length === 1 ? "is" : "are"} still uploading or stopped.`));
    }
    if (body.targets) {
      for (const target of targetRows) {
        if (target.panelSelect.value) continue;
        target.error.textContent = "Choose a service and panel for this target, or remove it.";
        target.error.hidden = false;
        target.panelSelect.setAttribute("aria-invalid", "true");
        shown.push(target.panelSelect);
      }
      if (targetRows.length < 2) shown.push(showError("targets", "Add a second target, or untick “Send to several services”."));
    } else if (!body.reference_panel_id) shown.push(showError("reference_panel_id", "Choose a reference panel (it also chooses the service)."));
    if (!body.name) shown.push(showError("name", "Give the job a name."));
    if (shown.length) {
      shown[0].focus();
      announce("The job was not submitted: see the messages next to the fields.");
      return;
    }
    submitButton.disabled = true;
    submitStatus.textContent = "Submitting…";
    try {
      const job = await api("POST", "/jobs", body);
      submitStatus.textContent = "Submitted. Opening the job…";
      window.location.assign(`/jobs/${encodeURIComponent(job.id)}`);
    } catch (error) {
      submitStatus.textContent = "";
      submitButton.disabled = false;
      showProblem(error);
    }
  });

  // --- start ---------------------------------------------------------------------------------

  if (several()) setSeveral(true, start.targets || []);
  else onPanelChange(start.population || undefined);
  if (start.phasing && Array.from(phasingSelect.options).some((o) => o.value === start.phasing)) {
    phasingSelect.value = start.phasing;
  }
  for (const fileId of start.input_file_ids || []) {
    const box = byId(`earlier-${fileId}`);
    if (box) box.checked = true;
    addStored(fileId);
  }
  renderUnfinished();
  updateEmpty();
  renderReview();
})();
