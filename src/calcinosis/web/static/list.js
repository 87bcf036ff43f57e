// Study list: search, status filter, sort (burden by default), failures with their reasons.
"use strict";

(async function () {
  const { getJSON, fmt, el } = window.Calcinosis;
  let data;
  try {
    data = await getJSON("/api/studies");
  } catch (err) {
    const e = document.getElementById("error"); e.hidden = false; e.textContent = "Cannot list studies: " + err.message;
    return;
  }
  const rows = data.studies;
  let sortKey = "mass_mg", sortDir = -1;
  const warmed = new Set();
  const body = document.querySelector("#studies tbody");
  const search = document.getElementById("search"), status = document.getElementById("status");

  function value(r, k) { const v = r[k]; return v === null || v === undefined ? -Infinity : v; }

  function show() {
    const q = search.value.trim().toLowerCase(), st = status.value;
    const shown = rows.filter((r) => (!st || r.status === st) &&
      (!q || [r.key, r.status, r.pattern, r.error].some((v) => v && String(v).toLowerCase().includes(q))));
    shown.sort((a, b) => {
      const x = value(a, sortKey), y = value(b, sortKey);
      return (x < y ? -1 : x > y ? 1 : a.key < b.key ? -1 : 1) * sortDir;
    });
    body.innerHTML = "";
    for (const r of shown) {
      const name = r.status === "done"
        ? el("a", { href: `/study/${encodeURIComponent(r.key)}`, text: r.key }) : document.createTextNode(r.key);
      if (r.status === "done") {  // start loading the CT on hover: it is ready when the page opens
        const warm = () => { if (!warmed.has(r.key)) { warmed.add(r.key); fetch(`/api/studies/${encodeURIComponent(r.key)}/prefetch`, { credentials: "same-origin" }); } };
        name.addEventListener("mouseenter", warm); name.addEventListener("focus", warm);
      }
      const tr = el("tr", { "data-key": r.key, class: "status-" + r.status },
        el("td", {}, name), el("td", { text: r.status }),
        el("td", { class: "num", text: r.lesion_count ?? "" }), el("td", { class: "num", text: fmt(r.mass_mg, 2) }),
        el("td", { class: "num", text: fmt(r.volume_mm3, 1) }), el("td", { class: "num", text: fmt(r.agatston, 1) }),
        el("td", { class: r.status === "failed" ? "reason" : "", text: r.status === "failed" ? (r.error || "failed") : (r.pattern || "") }));
      body.append(tr);
    }
    const failed = rows.filter((r) => r.status === "failed").length;
    document.getElementById("counts").textContent = `${shown.length} of ${rows.length} studies; ${failed} failed`;
    for (const th of document.querySelectorAll("#studies th[data-sort]")) {
      th.classList.toggle("sorted", th.dataset.sort === sortKey);
      th.dataset.dir = th.dataset.sort === sortKey ? (sortDir > 0 ? "asc" : "desc") : "";
    }
  }

  for (const th of document.querySelectorAll("#studies th[data-sort]")) {
    th.addEventListener("click", () => {
      if (sortKey === th.dataset.sort) sortDir = -sortDir;
      else { sortKey = th.dataset.sort; sortDir = th.classList.contains("num") ? -1 : 1; }
      show();
    });
  }
  search.addEventListener("input", show);
  status.addEventListener("change", show);
  show();

  if (data.comparisons.length) {
    document.getElementById("comparisons-section").hidden = false;
    const cb = document.querySelector("#comparisons tbody");
    for (const c of data.comparisons) {
      const counts = Object.entries(c.status_counts || {}).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(", ");
      cb.append(el("tr", { "data-key": c.key },
        el("td", {}, el("a", { href: `/compare/${encodeURIComponent(c.key)}`, text: c.key })),
        el("td", { text: c.call || "" }), el("td", { class: "num", text: fmt(c.mass_change_pct, 1) }),
        el("td", { text: counts })));
    }
  }
  document.body.dataset.loaded = "1";
})();
