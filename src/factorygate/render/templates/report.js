// The findings table of a factorygate HTML report: rows come from the JSON block #table-data and
// every string is set with textContent (never parsed as HTML). Filters and search hide rows by
// rebuilding the table body from the rows that match.
(function () {
  "use strict";
  var source = document.getElementById("table-data");
  var body = document.getElementById("table-body");
  if (!source || !body) {
    return;
  }
  var table = JSON.parse(source.textContent);
  var form = document.getElementById("table-controls");
  var search = document.getElementById("table-search");
  var count = document.getElementById("table-count");
  var showAll = document.getElementById("show-all");
  var selects = table.filters.map(function (f) {
    return document.getElementById("filter-" + f.key);
  });
  var built = new Array(table.rows.length);
  var haystacks = table.rows.map(function (row) {
    return row.cells
      .map(function (cell) {
        return cell
          .map(function (seg) {
            return seg[1];
          })
          .join(" ");
      })
      .join(" ")
      .toLowerCase();
  });
  var unlimited = false;

  function build(row) {
    var tr = document.createElement("tr");
    Object.keys(row.f).forEach(function (key) {
      tr.setAttribute("data-" + key, [].concat(row.f[key]).join(" "));
    });
    row.cells.forEach(function (cell, i) {
      var td = document.createElement("td");
      td.setAttribute("data-label", table.columns[i]);
      cell.forEach(function (seg) {
        var span = document.createElement("span");
        if (seg[0]) {
          span.className = seg[0];
        }
        span.textContent = seg[1];
        td.appendChild(span);
      });
      tr.appendChild(td);
    });
    return tr;
  }

  function wanted() {
    return table.filters.map(function (f, i) {
      var value = selects[i] ? selects[i].value : "";
      return { key: f.key, values: value ? value.split("|") : null };
    });
  }

  function matches(row, index, filters, terms) {
    for (var i = 0; i < filters.length; i++) {
      var f = filters[i];
      if (!f.values) {
        continue;
      }
      var have = [].concat(row.f[f.key]);
      var hit = have.some(function (v) {
        return f.values.indexOf(v) >= 0;
      });
      if (!hit) {
        return false;
      }
    }
    return terms.every(function (t) {
      return haystacks[index].indexOf(t) >= 0;
    });
  }

  function apply() {
    var filters = wanted();
    var terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var rows = document.createDocumentFragment();
    var matched = 0;
    var shown = 0;
    table.rows.forEach(function (row, i) {
      if (!matches(row, i, filters, terms)) {
        return;
      }
      matched += 1;
      if (!unlimited && shown >= table.limit) {
        return;
      }
      shown += 1;
      rows.appendChild(built[i] || (built[i] = build(row)));
    });
    if (matched === 0) {
      var tr = document.createElement("tr");
      tr.className = "empty";
      var td = document.createElement("td");
      td.colSpan = table.columns.length;
      td.textContent = table.rows.length ? "No " + table.noun + " match these filters." : "No " + table.noun + ".";
      tr.appendChild(td);
      rows.appendChild(tr);
    }
    body.replaceChildren(rows);
    count.textContent =
      "Showing " + shown + " of " + matched + " matching " + table.noun + " (" + table.rows.length + " in total).";
    showAll.hidden = shown >= matched;
    showAll.textContent = "Show all " + matched + " matching " + table.noun;
  }

  selects.forEach(function (s) {
    if (s) {
      s.addEventListener("change", apply);
    }
  });
  search.addEventListener("input", apply);
  form.addEventListener("submit", function (e) {
    e.preventDefault();
  });
  form.addEventListener("reset", function () {
    // After the browser has reset the controls to their defaults.
    window.setTimeout(apply, 0);
  });
  showAll.addEventListener("click", function () {
    unlimited = true;
    apply();
  });
  form.hidden = false;
  apply();
})();
