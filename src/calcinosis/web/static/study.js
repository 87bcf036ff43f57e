// Study page: viewer, summary with the pattern sentence, lesion table (click -> jump).
"use strict";

(async function () {
  const { Viewer, getJSON, fmt, el } = window.Calcinosis;
  const key = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  const COLUMNS = [
    ["lesion_id", "#", 0], ["compartment", "Compartment"], ["region", "Region"], ["side", "Side"],
    ["volume_mm3", "Volume mm³", 1], ["mass_mg", "Mass mg", 2], ["agatston", "Agatston", 1],
    ["peak_hu", "Peak HU", 0], ["depth_mm", "Depth mm", 1], ["confidence", "Confidence"],
  ];
  document.getElementById("title").textContent = key;
  let info;
  try {
    info = await getJSON(`/api/studies/${encodeURIComponent(key)}`);
  } catch (err) {
    const e = document.getElementById("error");
    e.hidden = false; e.textContent = "Cannot open this study: " + err.message;
    return;
  }
  const low = new Set(info.lesions.filter((l) => l.confidence && l.confidence !== "high").map((l) => l.lesion_id));
  const viewer = new Viewer(document.getElementById("viewer"), {
    key, info, colourOf: (id) => (low.has(id) ? "#ff9f1a" : "#ffd400"),
  });
  window.calcinosisViewers.push(viewer);
  const link = document.getElementById("report-link");
  link.href = `/api/studies/${encodeURIComponent(key)}/report`; link.hidden = false;

  // Summary
  const s = info.summary || {}, t = s.totals || {};
  const box = document.getElementById("summary");
  box.append(el("h2", { text: "Summary" }));
  const dl = el("dl", { class: "totals" });
  for (const [label, v] of [["Deposits", t.count], ["Volume (mm³)", fmt(t.volume_mm3, 1)],
    ["Mass (mg)", fmt(t.mass_mg, 2)], ["Agatston", fmt(t.agatston, 1)],
    ["Low confidence", s.low_confidence_count]]) {
    dl.append(el("dt", { text: label }), el("dd", { text: v === undefined ? "" : String(v) }));
  }
  box.append(dl);
  const pattern = typeof s.pattern === "string" ? s.pattern : (s.pattern && (s.pattern.sentence || s.pattern.text)) || "";
  if (pattern) box.append(el("p", { class: "pattern", id: "pattern", text: pattern }));
  const ids = (s.input || {}).identifiers;
  if (ids) {  // only present when kept at analysis time (--keep-identifiers)
    box.append(el("p", { class: "identifiers", text: Object.entries(ids).map(([k, v]) => `${k}: ${v}`).join("; ") }));
  }
  if (s.by_compartment) {
    const tb = el("table", { class: "data small" });
    tb.append(el("tr", {}, el("th", { text: "Compartment" }), el("th", { text: "n" }), el("th", { text: "mass mg" })));
    for (const [name, b] of Object.entries(s.by_compartment)) {
      if (!b || !b.count) continue;
      tb.append(el("tr", {}, el("td", { text: name }), el("td", { text: String(b.count) }), el("td", { text: fmt(b.mass_mg, 2) })));
    }
    box.append(tb);
  }
  for (const w of s.warnings || []) box.append(el("p", { class: "warning", text: "⚠ " + (typeof w === "string" ? w : JSON.stringify(w)) }));

  // Lesion table
  const table = document.getElementById("lesions");
  const head = el("tr");
  for (const [, label] of COLUMNS) head.append(el("th", { text: label }));
  table.tHead.append(head);
  const body = table.tBodies[0];
  for (const les of info.lesions) {
    const tr = el("tr", { "data-lesion": String(les.lesion_id) });
    for (const [k, , nd] of COLUMNS) tr.append(el("td", { text: nd === undefined ? (les[k] ?? "") : fmt(les[k], nd) }));
    if (!les.view_index) tr.classList.add("disabled");
    tr.addEventListener("click", () => {
      if (!les.view_index) return;
      for (const r of body.rows) r.classList.toggle("selected", r === tr);
      viewer.jumpTo(les);
    });
    body.append(tr);
  }
  if (!info.lesions.length) body.append(el("tr", {}, el("td", { colspan: String(COLUMNS.length), text: "No deposits found." })));
  document.body.dataset.loaded = "1";
})();
