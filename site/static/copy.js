// One-click copy: the Clipboard API where allowed, a selection + execCommand fallback otherwise.
(function () {
  "use strict";
  function sourceText(el) {
    return el.value !== undefined && el.tagName === "INPUT" ? el.value : el.textContent.trim();
  }
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(function () { return "clipboard"; },
        function () { return fallbackCopy(text) ? "fallback" : ""; });
    }
    return Promise.resolve(fallbackCopy(text) ? "fallback" : "");
  }
  window.vouchCopy = copy;
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    var status = document.getElementById("copy-status");
    if (!source) { return; }
    copy(sourceText(source)).then(function (how) {
      button.setAttribute("data-copied", how || "no");
      if (status) { status.textContent = how ? button.getAttribute("data-done") : button.getAttribute("data-failed"); }
      if (!how && source.select) { source.select(); }
      document.dispatchEvent(new CustomEvent("vouch:copied", { detail: { how: how, target: source.id } }));
    });
  });
})();
