// FlowStudio dashboard: copy buttons and confirmations (keys are revealed by <details>, without script). Same-origin file, no inline script.
"use strict";
(function () {
  // textOf is what a copy button copies: an input's value, or an element's text with
  // the key put in place of its placeholder (data-key names the key's input), since
  // the page holds each key once.
  function textOf(el) {
    if (el.tagName === "INPUT") { return el.value; }
    var text = el.textContent;
    var key = el.dataset.key && document.getElementById(el.dataset.key);
    if (key && el.dataset.placeholder) { text = text.split(el.dataset.placeholder).join(key.value); }
    return text;
  }

  function selectAll(el) {
    if (el.tagName === "INPUT") {
      var reveal = el.closest("details");
      if (reveal) { reveal.open = true; } // a masked key must show to be selected
      el.focus(); el.select(); return;
    }
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function announce(button, message) {
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = message;
    button.classList.add("done");
    setTimeout(function () { button.textContent = label; button.classList.remove("done"); }, 2000);
  }

  function copy(button) {
    var el = document.getElementById(button.dataset.copy);
    if (!el) { return; }
    var text = textOf(el);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { announce(button, "Copied"); },
        function () { selectAll(el); announce(button, "Press Ctrl+C"); });
      return;
    }
    selectAll(el);
    announce(button, document.execCommand && document.execCommand("copy") ? "Copied" : "Press Ctrl+C");
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.createElement("div");
    live.className = "sr-only";
    live.setAttribute("aria-live", "polite");
    document.body.appendChild(live);

    document.querySelectorAll("button[data-copy]").forEach(function (b) {
      b.hidden = false;
      b.addEventListener("click", function () {
        copy(b);
        live.textContent = "Copied to the clipboard";
      });
    });
    document.querySelectorAll("input[readonly]").forEach(function (i) {
      i.addEventListener("focus", function () { i.select(); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) {
        if (!window.confirm(f.dataset.confirm)) { e.preventDefault(); }
      });
    });
  });
})();
