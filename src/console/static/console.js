// authd console: the one script (served from the binary; the CSP allows no inline script).
// Live tail of the audit log: while "Live tail" is checked, fetch the rows for the current
// filter every few seconds and put them in place. The server renders (and escapes) the rows.
"use strict";
(function () {
  const log = document.getElementById("audit-log");
  const live = document.getElementById("live");
  if (!log || !live) return;
  let timer = null;
  async function poll() {
    try {
      const response = await fetch(log.dataset.rows, { credentials: "same-origin" });
      if (!response.ok) {
        stop();
        return;
      }
      const html = await response.text();
      const fresh = new DOMParser().parseFromString(html, "text/html").body;
      log.replaceChildren(...fresh.childNodes);
    } catch (e) {
      // A network hiccup: try again next time.
    }
  }
  function start() {
    if (timer === null) timer = window.setInterval(poll, 3000);
  }
  function stop() {
    if (timer !== null) window.clearInterval(timer);
    timer = null;
  }
  live.addEventListener("change", function () {
    if (live.checked) {
      poll();
      start();
    } else {
      stop();
    }
  });
  if (live.checked) start();
})();
