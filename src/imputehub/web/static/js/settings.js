// Settings pages: focus where the user must look, and copy a secret shown once.
"use strict";

(() => {
  // A form came back with mistakes: the first one gets the focus (its message is read out
  // through aria-describedby). A secret just made: its heading, so it is seen and heard.
  const firstError = document.querySelector('[aria-invalid="true"], .error[tabindex="-1"]');
  const shownOnce = document.querySelector(".shown-once h2");
  if (firstError) {
    firstError.focus();
  } else if (shownOnce) {
    shownOnce.focus();
  }

  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      if (!field) return;
      field.select();
      let copied = false;
      try {
        await navigator.clipboard.writeText(field.value);
        copied = true;
      } catch (e) {
        // No clipboard access (plain http, permissions): the text is selected for Ctrl+C.
      }
      const said = copied ? "Copied to the clipboard." : "Selected: press Ctrl+C (or ⌘C) to copy.";
      button.textContent = copied ? "Copied" : "Copy";
      if (window.ImputeHub) window.ImputeHub.announce(said);
    });
  }
})();
