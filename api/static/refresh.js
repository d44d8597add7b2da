/* Linkwatch status page: refresh the live part of the page without reloading it.
   Every data-refresh-s seconds, fetch this same URL with ?fragment=1 (the server renders only
   the page's <main>) and swap it in. Skipped while the tab is hidden or while someone is
   typing in a form on the page. A 401 (the session ended) reloads the page, which then shows
   the login form. With JavaScript off, a <noscript> meta refresh reloads the whole page.
   No library, nothing from another origin. */
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch || !window.URL) { return; }
  var seconds = parseInt(live.getAttribute("data-refresh-s"), 10);
  if (!(seconds > 0)) { return; }

  function busy() {
    var active = document.activeElement;
    if (active && live.contains(active) && /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(active.tagName)) {
      return true;
    }
    var fields = live.querySelectorAll("textarea, input[type=text], input:not([type])");
    for (var i = 0; i < fields.length; i += 1) {
      if (fields[i].value) { return true; }
    }
    return false;
  }

  function schedule() { window.setTimeout(tick, seconds * 1000); }

  function tick() {
    if (document.hidden || busy()) { schedule(); return; }
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    url.searchParams.delete("lang");
    window.fetch(url.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          live.innerHTML = html;
          live.setAttribute("data-refreshed-at", String(Date.now()));
        }
      })
      .catch(function () { /* the server is unreachable: keep what is shown, try again */ })
      .then(schedule);
  }

  schedule();
}());
