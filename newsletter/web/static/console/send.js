// A send's page, live: the counts, status, progress bar and rate chart follow the
// server's event stream (/console/sends/{id}/events). Without JavaScript the page shows
// the numbers at load and a Refresh link.
(function () {
  "use strict";
  var root = document.getElementById("send");
  if (!root || !root.dataset.events || !window.EventSource) return;
  var number = new Intl.NumberFormat("en");
  var counts = ["queued", "sent", "deferred", "bounced", "complained", "failed", "done", "total"];
  var live = root.querySelector("[data-live]");
  var source = new EventSource(root.dataset.events);

  function field(name) { return root.querySelector('[data-field="' + name + '"]'); }
  function setText(name, value) { var el = field(name); if (el) el.textContent = value; }

  function apply(data) {
    counts.forEach(function (name) { if (name in data) setText(name, number.format(data[name])); });
    setText("percent", Number(data.percent).toFixed(1));
    setText("rate", data.rate);
    setText("bounce_rate", data.bounce_rate);
    var over = field("over_threshold");
    if (over) over.hidden = !data.over_threshold;
    var status = field("label");
    if (status && status.textContent !== data.label) {
      status.textContent = data.label;
      status.className = "status status-" + data.status;
    }
    var reason = field("pause_reason");
    if (reason) {
      reason.hidden = !data.pause_reason;
      if (data.pause_reason) {
        reason.textContent = "";
        var strong = document.createElement("strong");
        strong.textContent = "Paused:";
        reason.append(strong, " " + data.pause_reason);
      }
    }
    var bar = document.getElementById("progress");
    if (bar) {
      bar.max = Math.max(data.total, 1);
      bar.value = data.done;
      bar.textContent = data.percent + "%";
    }
    root.querySelectorAll("[data-when]").forEach(function (el) {
      el.hidden = el.dataset.when.split(" ").indexOf(data.status) < 0;
    });
    // The chart is drawn by the server (the same SVG as at page load), sent when it changes.
    if (data.chart) {
      var chart = document.getElementById("rate-chart");
      if (chart) chart.innerHTML = data.chart;
    }
  }

  source.addEventListener("open", function () { if (live) live.hidden = false; });
  source.addEventListener("progress", function (event) { apply(JSON.parse(event.data)); });
  source.addEventListener("end", function () {
    source.close();
    if (live) live.hidden = true;
    root.dataset.final = "true";
  });
  source.addEventListener("error", function () { if (live) live.hidden = true; });
})();
