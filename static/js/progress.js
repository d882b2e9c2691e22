// Live status on the request page: polls /requests/<ref>/progress while something is happening,
// updates the badge, bar and counts in place, and reloads the page once when the status moves
// on (the plan, downloads and timeline then come from the server). A final status stops it.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !window.fetch) return;
  // status -> milliseconds between polls; statuses not listed wait on people (or are final).
  var POLL = { planning: 2000, approved: 2000, running: 2000, awaiting_approval: 10000 };
  var shown = box.dataset.status;
  if (!POLL[shown]) return;
  var badge = document.getElementById("status-badge");
  var failures = 0;

  function n(value) {
    return Number(value).toLocaleString("en");
  }

  function set(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  function update(p) {
    var bar = document.getElementById("progress-bar");
    if (bar) {
      bar.className = "w" + p.percent;
      bar.parentNode.setAttribute("aria-valuenow", p.percent);
    }
    var s = n(p.done) + " of " + n(p.total) + " operations finished";
    if (p.failed) s += ", " + p.failed + " failed";
    if (p.current_device && p.status === "running") s += " · now: " + p.current_device;
    if (p.left && p.status === "running") s += " · " + p.left;
    set("progress-text", s);
    badge.textContent = p.label;
    badge.className = "badge " + p.status;
  }

  function tick() {
    fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status);
        return r.json();
      })
      .then(function (p) {
        failures = 0;
        // approved -> running only fills the bar in: no reload needed for that.
        var inPlace = p.status === shown || (shown === "approved" && p.status === "running");
        if (!inPlace) {
          window.location.reload();
          return;
        }
        update(p);
        if (shown === "approved" && p.status === "running") {
          set("next-step", "Running. This page updates itself; the downloads appear when it finishes.");
        }
        shown = p.status;
        if (p.final || !POLL[p.status]) return;
        setTimeout(tick, document.hidden ? POLL[p.status] * 3 : POLL[p.status]);
      })
      .catch(function () {
        failures += 1;
        if (failures < 20) setTimeout(tick, 5000);
      });
  }
  setTimeout(tick, Math.min(POLL[shown], 1500));
})();
