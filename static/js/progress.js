// Live progress on the request page: polls the progress endpoint while the request runs.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box) return;
  var live = ["planning", "approved", "running"];
  if (live.indexOf(box.dataset.status) < 0) return;
  var bar = document.getElementById("progress-bar");
  var text = document.getElementById("progress-text");
  var badge = document.getElementById("status-badge");
  function tick() {
    fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        bar.className = "w" + p.percent;
        box.querySelector(".progress").setAttribute("aria-valuenow", p.percent);
        var s = p.done + " of " + p.total + " operations finished";
        if (p.failed) s += ", " + p.failed + " failed";
        if (p.current_device && p.status === "running") s += " · now: " + p.current_device;
        text.textContent = s;
        badge.textContent = p.label;
        badge.className = "badge " + p.status;
        if (p.status !== box.dataset.status && live.indexOf(p.status) < 0) {
          window.location.reload();
          return;
        }
        box.dataset.status = p.status;
        setTimeout(tick, 2000);
      })
      .catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 1500);
})();
