"""``report.html`` of a comparison: the verdict, burden then and now, and the two scans side by side.

Self-contained: the pictures are inline PNG data URIs (matplotlib, Agg); no
external URL is referenced.
"""

from __future__ import annotations

import base64
import io
from html import escape
from typing import Any

import numpy as np
import SimpleITK as sitk

from calcinosis.follow.compare import Comparison
from calcinosis.follow.features import grid_image
from calcinosis.follow.matching import Status
from calcinosis.follow.tables import CHANGES_COLUMNS, change_row
from calcinosis.io import volume_to_sitk

STATUS_COLOURS = {
    Status.STABLE: "#4a78b5", Status.GROWN: "#d62728", Status.SHRUNK: "#2ca02c",
    Status.NEW: "#ff7f0e", Status.RESOLVED: "#9467bd", Status.NOT_COVERED: "#8c8c8c",
}
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;
max-width:1150px;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.4em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.2em .45em;text-align:right}th{background:#f0f0f0}
td.t,th.t{text-align:left}.warn{color:#8a4b00}.muted{color:#666;font-size:.85em}
.call{font-size:1.2em;background:#f6f8fa;padding:.6em .8em;border-left:4px solid #4a78b5}
img{max-width:100%}.dot{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.3em}
"""


def side_by_side_png(cmp: Comparison) -> bytes:
    """Axial and coronal maximum-intensity projections, baseline left and registered follow-up right.

    The follow-up is resampled onto the baseline grid, so a deposit sits at the same
    place in both columns when the registration is right; markers are coloured by status
    and labelled with the track id.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = cmp.baseline.volume
    moved = sitk.GetArrayFromImage(sitk.Resample(volume_to_sitk(cmp.followup.volume), grid_image(base),
                                                 cmp.registration.sitk_transform(), sitk.sitkLinear, -1000.0,
                                                 sitk.sitkInt16))
    order, flips = display_axes(base)
    sz, sy, sx = np.asarray(base.spacing_zyx)[list(order)]
    shape = np.asarray(base.shape)[list(order)]
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.5), dpi=80,
                             gridspec_kw={"height_ratios": [shape[1] * sy, max(shape[0] * sz, 40.0)]})
    for col, (array, title, side) in enumerate(((base.array, "baseline", "b"), (moved, "follow-up (registered)", "f"))):
        array = display_array(array, order, flips)
        axial = np.clip(array.max(axis=0), -200, 1200)
        coronal = np.clip(array.max(axis=1), -200, 1200)[::-1]  # superior at the top
        ax = axes[0, col]
        ax.imshow(axial, cmap="gray", aspect=sy / sx, interpolation="nearest")
        ax.set_title(f"{title}: axial MIP", fontsize=10)
        ax2 = axes[1, col]
        ax2.imshow(coronal, cmap="gray", aspect=sz / sx, interpolation="nearest")
        ax2.set_title(f"{title}: coronal MIP", fontsize=10)
        for change in cmp.changes:
            present = change.baseline_ids if side == "b" else change.followup_ids
            if not present:
                continue
            z, y, x = display_index(base, order, flips, (change.x_mm, change.y_mm, change.z_mm))
            colour = STATUS_COLOURS[change.status]
            for a, (u, v) in ((ax, (x, y)), (ax2, (x, shape[0] - 1 - z))):
                a.plot(u, v, "o", mfc="none", mec=colour, ms=9, mew=1.5)
                a.annotate(str(change.track_id), (u, v), xytext=(5, 5), textcoords="offset points",
                           color=colour, fontsize=7)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def display_axes(volume) -> tuple[tuple[int, int, int], np.ndarray]:
    """How to show ``volume``'s array as the pictures assume: axes in the order (head-foot,
    front-back, left-right) (:func:`~calcinosis.pipeline.axial_order`), and which of them to
    reverse so that the index runs toward superior, posterior and the patient's left. The
    projections took the stored axes as they came: a baseline stored as coronal slices showed
    a coronal projection titled "axial MIP" and an axial one, upside down, titled "coronal MIP";
    one stored top-down had its coronal projection upside down."""
    from calcinosis.pipeline import axial_order

    order = axial_order(volume)
    dirs = volume.axis_lps_directions()  # rows: array axes (z, y, x); columns: L, P, S
    flips = np.array([dirs[axis, 2 - k] < 0 for k, axis in enumerate(order)])
    return order, flips


def display_array(array: np.ndarray, order, flips: np.ndarray) -> np.ndarray:
    """``array`` (stored order) with the axes of :func:`display_axes`."""
    out = np.transpose(array, order)
    return out[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]


def display_index(volume, order, flips: np.ndarray, lps) -> np.ndarray:
    """The (fractional) index of the LPS point ``lps`` in :func:`display_array` of ``volume``."""
    idx = volume.lps_to_index(np.asarray(lps, float))[list(order)]
    shape = np.asarray(volume.shape)[list(order)]
    return np.where(flips, shape - 1 - idx, idx)


def render_comparison_html(cmp: Comparison, doc: dict[str, Any], *, figure_png: bytes | None = None,
                           analysis_links: dict[str, str] | None = None) -> str:
    """The comparison report page (``doc`` is the ``comparison.json`` document)."""
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<title>calcinosis follow-up comparison</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>Calcinosis follow-up: baseline vs follow-up</h1>"]
    ov = doc["overall"]
    pct = "n/a" if ov["mass_change_pct"] is None else f"{ov['mass_change_pct']:+.1f} %"
    parts.append(f"<p class='call'>Overall: <b>{escape(ov['call'])}</b> (total mass in the common field "
                 f"of view {pct}, {escape(_mg_change(ov))}; {escape(ov['rule'])}).</p>")
    parts.append("<p class='muted'>± is one standard deviation of the image noise alone (each deposit's "
                 "mass SD, added in quadrature); differences in slice thickness, scanner and registration "
                 "between the visits come on top of it.</p>")
    # The comparison's warnings, then each analysis's own (a deposit the analysis could not
    # report there is a change the comparison cannot see).
    warnings = [*doc["warnings"], *(f"baseline analysis: {w}" for w in doc.get("baseline_warnings", ())),
                *(f"follow-up analysis: {w}" for w in doc.get("followup_warnings", ()))]
    if warnings:
        parts.append("<ul>" + "".join(f"<li class='warn'>{escape(w)}</li>" for w in warnings) + "</ul>")
    counts = ", ".join(f"<span class='dot' style='background:{STATUS_COLOURS[Status(k)]}'></span>{k}: {v}"
                       for k, v in doc["status_counts"].items())
    parts.append(f"<p>{counts}</p>")
    parts.append("<h2>Burden then and now</h2>")
    parts.append(_burden_table({"all deposits": doc["totals"], "common field of view": doc["totals_common_fov"]},
                               "scope"))
    if doc["totals"]["call"] == "not_comparable":
        parts.append("<p class='muted'>All deposits: some were measured by one scan only (not_covered), so "
                     "their totals are not compared; the common field of view is.</p>")
    parts.append("<p class='muted'>By region and compartment: in the common field of view.</p>")
    parts.append(_burden_table(doc["by_region"], "region"))
    parts.append(_burden_table(doc["by_compartment"], "compartment"))
    parts.append("<h2>Side by side</h2>")
    if figure_png:
        data = base64.b64encode(figure_png).decode("ascii")
        parts.append(f"<img alt='baseline and registered follow-up, maximum-intensity projections' "
                     f"src='data:image/png;base64,{data}'>")
        parts.append("<p class='muted'>Markers: deposit track ids, coloured by status. The follow-up is "
                     "shown after registration onto the baseline grid.</p>")
    reg = doc["registration"]
    parts.append("<h2>Registration</h2><table>" + "".join(
        f"<tr><th class='t'>{escape(k)}</th><td class='t'>{escape(str(reg[k]))}</td></tr>"
        for k in ("kind", "initialisation", "final_metric_mean_squares", "bone_dice", "body_dice",
                  "fov_overlap_fraction", "rotation_deg", "deposit_refinement_mm", "matched_deposits",
                  "matched_distance_mm_mean")) + "</table>")
    parts.append("<h2>Deposit by deposit</h2><table><thead><tr>"
                 + "".join(f"<th class='t'>{escape(c)}</th>" for c in CHANGES_COLUMNS) + "</tr></thead><tbody>")
    for change in cmp.changes:
        row = change_row(change)
        colour = STATUS_COLOURS[change.status]
        parts.append("<tr>" + "".join(
            f"<td class='t' style='color:{colour}'>{escape(row[c])}</td>" if c == "status"
            else f"<td>{escape(row[c])}</td>" for c in CHANGES_COLUMNS) + "</tr>")
    parts.append("</tbody></table>")
    if analysis_links:
        parts.append("<p>Analyses: " + ", ".join(f"<a href='{escape(href)}'>{escape(name)}</a>"
                                                 for name, href in analysis_links.items()) + "</p>")
    parts.append(f"<p class='muted'>calcinosis {escape(doc['software']['version'])}; baseline "
                 f"{escape(doc['baseline']['source'])}, follow-up {escape(doc['followup']['source'])}. "
                 "Research software: not a medical device.</p></body></html>")
    return "\n".join(parts)


def _mg_change(g: dict[str, Any]) -> str:
    """``+12.3 ± 1.4 mg`` (1 SD of image noise), or without the SD when it is unknown."""
    if g.get("mass_change_mg") is None:
        return "n/a"
    sd = g.get("mass_change_sd_mg")
    return f"{g['mass_change_mg']:+.1f} ± {sd:.1f} mg" if sd is not None else f"{g['mass_change_mg']:+.1f} mg"


def _burden_table(groups: dict[str, Any], label: str) -> str:
    rows = [(f"<table><thead><tr><th class='t'>{escape(label)}</th><th>count then</th><th>count now</th>"
             "<th>mass then (mg)</th><th>mass now (mg)</th><th>change (mg, ± 1 SD)</th><th>change</th>"
             "<th class='t'>call</th></tr></thead><tbody>")]
    for name, g in groups.items():
        if g["baseline"]["count"] == 0 and g["followup"]["count"] == 0:
            continue
        pct = "" if g["mass_change_pct"] is None else f"{g['mass_change_pct']:+.1f} %"
        rows.append(f"<tr><td class='t'>{escape(name)}</td><td>{g['baseline']['count']}</td>"
                    f"<td>{g['followup']['count']}</td><td>{g['baseline']['mass_mg']:.1f}</td>"
                    f"<td>{g['followup']['mass_mg']:.1f}</td><td>{escape(_mg_change(g))}</td><td>{pct}</td>"
                    f"<td class='t'>{escape(g['call'])}</td></tr>")
    rows.append("</tbody></table>")
    return "".join(rows)
