/* tv2ib dashboard: live updates without reloading (no library, no build step).
 *
 * Listens to the server-sent events at <body data-events> (the worker's fills, order and alert
 * status changes, pause/resume). On each burst of events it fetches this same page and swaps in
 * every element marked data-live (status bar, charts, alerts, positions, orders, one alert's
 * details), so what is shown always comes from the server's own rendering. Forms the user is
 * typing in are outside those regions. When the stream ends (the server closes streams
 * periodically) EventSource reconnects by itself and the page is refreshed once to catch up.
 */
(function () {
  "use strict";
  var url = document.body.getAttribute("data-events");
  if (!url || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var KINDS = ["fill", "order_status", "alert_status", "order_rejected", "alert_rejected", "paused"];
  var FALLBACK_MS = 15000; // worker heartbeats and queue depths change without an event
  var DEBOUNCE_MS = 120;
  var state = document.getElementById("live-state");
  var timer = null;
  var busy = false;
  var again = false;
  var opened = false;

  function show(text, cls) {
    if (state) {
      state.textContent = text;
      state.className = "pill " + cls;
    }
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var regions = document.querySelectorAll("[data-live]");
    for (var i = 0; i < regions.length; i++) {
      var old = regions[i];
      var next = old.id ? fresh.getElementById(old.id) : null;
      if (next) {
        old.replaceWith(document.adoptNode(next));
      }
    }
    document.body.setAttribute("data-refreshed", String(Date.now()));
  }

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live-Refresh": "1" } })
      .then(function (response) {
        if (response.redirected || response.status === 401) {
          window.location.reload(); // signed out: show the login form
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html) {
          swap(html);
        }
      })
      .catch(function () {
        show("offline", "st-bad");
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          schedule();
        }
      });
  }

  function schedule() {
    if (timer === null) {
      timer = window.setTimeout(function () {
        timer = null;
        refresh();
      }, DEBOUNCE_MS);
    }
  }

  var source = new EventSource(url);
  for (var k = 0; k < KINDS.length; k++) {
    source.addEventListener(KINDS[k], schedule);
  }
  source.addEventListener("open", function () {
    show("live", "st-ok");
    if (opened) {
      schedule(); // events may have happened while reconnecting
    }
    opened = true;
  });
  source.addEventListener("error", function () {
    show("reconnecting", "st-pending");
  });
  window.setInterval(schedule, FALLBACK_MS);
})();
