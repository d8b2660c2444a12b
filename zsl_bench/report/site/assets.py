"""The site's style sheet and its one script (table sorting), inlined into every page so a page opened alone, from
``file://`` or any static host, needs nothing else."""

from __future__ import annotations

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 78rem;
       padding: 0 1rem; color: #1d232a; background: #fff; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; } h3 { font-size: 1.05rem; }
a { color: #0b5cad; }
p.header-line, p.note { color: #4a5560; margin: .25rem 0; }
nav a { margin-right: .8rem; }
table { border-collapse: collapse; margin: .6rem 0 1.4rem; }
caption { caption-side: top; text-align: left; padding: .3rem 0; color: #4a5560; max-width: 70rem; }
caption strong { color: #1d232a; display: block; }
th, td { border-bottom: 1px solid #dde2e7; padding: .3rem .6rem; text-align: right; vertical-align: top; }
th:first-child, td:first-child, td.source, td[data-key="source"], td.text { text-align: left; }
table.board th[data-key], table.board td[data-value] { white-space: nowrap; }
table.board th[data-key] { cursor: pointer; user-select: none; }
table.board th[data-sort="asc"]::after { content: " \\25B2"; }
table.board th[data-sort="desc"]::after { content: " \\25BC"; }
td.best { font-weight: bold; }
tr.reported { background: #f6f3ea; color: #5b5140; font-style: italic; }
span.badge { font-size: .75rem; font-style: normal; border-radius: .6rem; padding: 0 .45rem; margin-left: .35rem;
             background: #e4dcc4; color: #5b5140; }
span.badge.search { background: #dde8f3; color: #28496b; }
span.badge.per-sample { background: #f1dede; color: #6b2828; }
p.missing { color: #8a4b00; background: #fff6e8; border-left: 3px solid #e0a040; padding: .4rem .7rem; }
img.plot { max-width: 100%; border: 1px solid #dde2e7; margin: .4rem 0; }
pre { background: #f5f7f9; padding: .5rem .7rem; overflow-x: auto; font-size: 12px; }
tr.chosen td { background: #eef6ee; }
code { font-size: 12.5px; }
"""

JS = """
(function () {
  function valueOf(row, key) {
    var cell = row.querySelector('td[data-key="' + key + '"]');
    return cell ? cell.getAttribute("data-value") || "" : "";
  }
  function compare(a, b, sign) {
    if (a === "" || b === "") { return (a === "") - (b === ""); }
    var x = Number(a), y = Number(b);
    var order = isNaN(x) || isNaN(y) ? a.localeCompare(b) : x - y;
    return sign * order;
  }
  function sortBy(table, th) {
    var key = th.getAttribute("data-key");
    var dir = th.getAttribute("data-sort") === "asc" ? "desc" : "asc";
    table.querySelectorAll("th[data-key]").forEach(function (h) { h.removeAttribute("data-sort"); });
    th.setAttribute("data-sort", dir);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r, s) { return compare(valueOf(r, key), valueOf(s, key), dir === "asc" ? 1 : -1); });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.board").forEach(function (table) {
    table.querySelectorAll("th[data-key]").forEach(function (th) {
      th.addEventListener("click", function () { sortBy(table, th); });
    });
  });
})();
"""
