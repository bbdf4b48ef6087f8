// Draws the timing report's timeline from the embedded record (embedded by report.rs).
(function () {
  "use strict";
  var rec = JSON.parse(document.getElementById("record").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var ran = rec.tasks.filter(function (t) { return t.start_us !== null && t.end_us !== null; });
  var crit = {};
  rec.critical_path.forEach(function (id) { crit[id] = true; });
  var slots = 0;
  ran.forEach(function (t) { slots = Math.max(slots, (t.slot || 0) + 1); });
  var end = rec.wall_us;
  ran.forEach(function (t) { end = Math.max(end, t.end_us); });
  end = Math.max(end, 1);
  var left = 70, width = 1100, rowH = 22, top = 24;
  var svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", left + width + 20);
  svg.setAttribute("height", top + slots * rowH + 10);
  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    svg.appendChild(e);
    return e;
  }
  for (var i = 0; i <= 10; i++) {
    var x = left + width * i / 10;
    el("line", { x1: x, x2: x, y1: top - 4, y2: top + slots * rowH, stroke: "#eee" });
    el("text", { x: x, y: 14, "font-size": 11, "text-anchor": "middle" }, (end * i / 10 / 1e6).toFixed(2) + "s");
  }
  for (var s = 0; s < slots; s++) {
    el("text", { x: 4, y: top + s * rowH + 15, "font-size": 12 }, "slot " + s);
  }
  var tip = document.getElementById("tip");
  ran.forEach(function (t) {
    var x = left + width * t.start_us / end;
    var w = Math.max(1, width * (t.end_us - t.start_us) / end);
    var cls = "bar o-" + t.outcome + (crit[t.id] ? " crit" : "");
    var r = el("rect", { x: x, y: top + (t.slot || 0) * rowH + 2, width: w, height: rowH - 4, "class": cls, "data-id": t.id });
    var text = t.label + " - " + t.outcome + " - " + ((t.end_us - t.start_us) / 1e6).toFixed(3) + "s" +
      (crit[t.id] ? " (critical path)" : "") + (t.why ? "\n" + t.why : "");
    el("title", {}, text);
    r.appendChild(svg.lastChild);
    r.addEventListener("mousemove", function (ev) {
      tip.textContent = text; tip.style.display = "block";
      tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px";
    });
    r.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  });
  document.getElementById("timeline").appendChild(svg);
  document.body.setAttribute("data-rendered", String(ran.length));
})();
