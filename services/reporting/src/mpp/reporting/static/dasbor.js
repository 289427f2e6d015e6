// Dashboard behaviour: sortable tables, a text filter on table rows and kab/kota choices that follow the
// chosen province. Served by the reporting service; no external script.
(function () {
  "use strict";
  function value(cell) {
    var raw = cell.getAttribute("data-value");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (raw === "") { return null; }
    var n = Number(raw);
    return isNaN(n) ? raw.toLowerCase() : n;
  }
  function sortBy(table, index, th) {
    var body = table.tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a.cells[index]), y = value(b.cells[index]);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var order = x < y ? -1 : 1;
      return ascending ? order : -order;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.urut").forEach(function (table) {
    if (!table.tHead) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.tabIndex = 0;
      th.addEventListener("click", function (e) {
        if (e.target.closest("a")) { return; }  // the definition link of the column
        sortBy(table, index, th);
      });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(table, index, th); } });
    });
  });
  document.querySelectorAll("input[data-saring]").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-saring"));
    input.addEventListener("input", function () {
      var term = input.value.trim().toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        row.hidden = term !== "" && row.textContent.toLowerCase().indexOf(term) < 0;
      });
    });
  });
  var province = document.querySelector("select[name=province]");
  var kabkota = document.querySelector("select[name=kabkota]");
  function followProvince() {
    var chosen = province.value;
    Array.prototype.forEach.call(kabkota.options, function (o) {
      var p = o.getAttribute("data-province");
      o.hidden = Boolean(chosen && p && p !== chosen);
    });
    var selected = kabkota.options[kabkota.selectedIndex];
    if (selected && selected.hidden) { kabkota.value = ""; }
  }
  if (province && kabkota) {
    province.addEventListener("change", followProvince);
    followProvince();
  }
})();
