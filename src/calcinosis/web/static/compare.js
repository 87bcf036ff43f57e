// Comparison page: baseline and follow-up viewers linked through the registration,
// outlines coloured by change status, the changes table (click -> both viewers jump).
"use strict";

(async function () {
  const { Viewer, getJSON, fmt, el, mul } = window.Calcinosis;
  const STATUS_COLOURS = { new: "#ff3b30", grown: "#ff9500", stable: "#ffd400", shrunk: "#34c759",
    resolved: "#30b0ff", not_covered: "#9e9e9e" };
  const key = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  document.getElementById("title").textContent = key;
  let cmp, infos;
  try {
    cmp = await getJSON(`/api/comparisons/${encodeURIComponent(key)}`);
    infos = await Promise.all([cmp.baseline_key, cmp.followup_key].map((k) => getJSON(`/api/studies/${encodeURIComponent(k)}`)));
  } catch (err) {
    const e = document.getElementById("error"); e.hidden = false; e.textContent = "Cannot open this comparison: " + err.message;
    return;
  }
  const o = cmp.overall || {};
  document.getElementById("overall").textContent =
    `Overall: ${o.call || "?"} (${fmt(o.mass_change_pct, 1)} % mass). ${o.rule || ""}`;
  const legend = document.getElementById("legend");
  for (const [s, c] of Object.entries(STATUS_COLOURS)) {
    const sw = el("span", { class: "swatch" }); sw.style.background = c;  // inline style attr is blocked by the CSP
    legend.append(sw, document.createTextNode(" " + s + "  "));
  }
  const reg = cmp.registration || {};
  const M = reg.matrix || [1, 0, 0, 0, 1, 0, 0, 0, 1], t = reg.offset_mm || [0, 0, 0];
  const forward = [[M[0], M[1], M[2], t[0]], [M[3], M[4], M[5], t[1]], [M[6], M[7], M[8], t[2]]];
  const inverse = invertAffine(forward);
  const linkBox = document.getElementById("link");
  let syncing = false;
  const viewers = [];
  const statusOf = [cmp.baseline_status, cmp.followup_status];
  ["baseline", "followup"].forEach((name, i) => {
    const v = new Viewer(document.getElementById("viewer-" + name), {
      key: [cmp.baseline_key, cmp.followup_key][i], info: infos[i],
      colourOf: (id) => STATUS_COLOURS[statusOf[i][String(id)]] || "#ffffff",
      onChange: (src, what) => sync(i, what),
    });
    viewers.push(v);
    window.calcinosisViewers.push(v);
  });

  function mapPoint(from, to, p) {
    const lps = mul(infos[from].view_to_lps, p);
    const other = mul(from === 0 ? forward : inverse, lps);
    return mul(infos[to].lps_to_view, other);
  }

  function sync(i, what) {
    if (syncing || !linkBox.checked) return;
    syncing = true;
    const src = viewers[i], dst = viewers[1 - i];
    if (what === "plane") dst.setPlane(src.plane);
    if (what === "preset") dst.setPreset(src.preset);
    if (what === "zoom") { dst.zoom = src.zoom; dst.draw(); }
    if (what === "point") dst.setPoint(mapPoint(i, 1 - i, src.point), src.centre !== null, true);
    syncing = false;
  }

  // Changes table
  const cols = [["track_id", "Track"], ["status", "Status"], ["baseline_id", "Baseline #"], ["followup_id", "Follow-up #"],
    ["baseline_mass_mg", "Mass then mg"], ["followup_mass_mg", "Mass now mg"], ["mass_change_pct", "Change %"],
    ["region", "Region"], ["compartment", "Compartment"], ["detail", "Detail"]];
  const table = document.getElementById("changes");
  table.tHead.append(el("tr", {}, ...cols.map(([, l]) => el("th", { text: l }))));
  const lesionById = infos.map((info) => new Map(info.lesions.map((l) => [String(l.lesion_id), l])));
  for (const row of cmp.changes) {
    const tr = el("tr", { "data-track": row.track_id }, ...cols.map(([k]) => el("td", { text: row[k] ?? "" })));
    const sw = el("span", { class: "swatch" }); sw.style.background = STATUS_COLOURS[row.status] || "#fff";
    tr.cells[1].prepend(sw);
    tr.addEventListener("click", () => {
      for (const r of table.tBodies[0].rows) r.classList.toggle("selected", r === tr);
      const b = lesionById[0].get((row.baseline_id || "").split(";")[0]);
      const f = lesionById[1].get((row.followup_id || "").split(";")[0]);
      syncing = true;
      if (b && b.view_index) viewers[0].jumpTo(b);
      if (f && f.view_index) viewers[1].jumpTo(f);
      syncing = false;
      if (b && !f) { syncing = true; viewers[1].zoom = viewers[0].zoom; viewers[1].setPoint(mapPoint(0, 1, b.view_index), true, true); syncing = false; }
      if (f && !b) { syncing = true; viewers[0].zoom = viewers[1].zoom; viewers[0].setPoint(mapPoint(1, 0, f.view_index), true, true); syncing = false; }
    });
    table.tBodies[0].append(tr);
  }
  document.body.dataset.loaded = "1";

  function invertAffine(a) {
    const m = [[a[0][0], a[0][1], a[0][2]], [a[1][0], a[1][1], a[1][2]], [a[2][0], a[2][1], a[2][2]]];
    const det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
      m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    const inv = [
      [(m[1][1] * m[2][2] - m[1][2] * m[2][1]) / det, (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det, (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det],
      [(m[1][2] * m[2][0] - m[1][0] * m[2][2]) / det, (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det, (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det],
      [(m[1][0] * m[2][1] - m[1][1] * m[2][0]) / det, (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det, (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det]];
    const tt = [0, 1, 2].map((r) => -(inv[r][0] * a[0][3] + inv[r][1] * a[1][3] + inv[r][2] * a[2][3]));
    return inv.map((row, r) => [...row, tt[r]]);
  }
})();
