"""``report.html``: a self-contained page a clinician can read (no network access needed)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from calcinosis.measure.lesion import CSV_COLUMNS, Lesion
from calcinosis.report.tables import _fmt

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;
max-width:1100px;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.4em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.2em .45em;text-align:right}th{background:#f0f0f0;cursor:pointer}
td.t,th.t{text-align:left}.muted{color:#666;font-size:.85em}.warn{color:#8a4b00}
.pattern{font-size:1.05em;background:#f6f8fa;padding:.6em .8em;border-left:4px solid #4a78b5}
figure{display:inline-block;margin:.3em}figure img{max-width:100%}
@media print{body{max-width:none;margin:0}th{cursor:auto}}
"""

_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
    rows.sort(function(a, b){
      var x = a.cells[col].textContent, y = b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def _burden_table(title: str, groups: dict[str, dict]) -> str:
    rows = "".join(
        f"<tr><td class=t>{escape(name)}</td><td>{g['count']}</td><td>{g['volume_mm3']:.1f}</td>"
        f"<td>{g['mass_mg']:.2f}</td><td>{g['agatston']:.1f}</td></tr>"
        for name, g in groups.items() if g["count"]
    )
    if not rows:
        return ""
    return (f"<table><thead><tr><th class=t>{escape(title)}</th><th>count</th><th>volume mm³</th>"
            f"<th>mass mg</th><th>Agatston</th></tr></thead><tbody>{rows}</tbody></table>")


def lesion_table_html(lesions: Sequence[Lesion]) -> str:
    head = "".join(f"<th{' class=t' if c in ('compartment', 'side', 'region', 'confidence', 'flags') else ''}>"
                   f"{escape(c)}</th>" for c in CSV_COLUMNS)
    body = []
    for lesion in lesions:
        row = lesion.row()
        cells = "".join(
            f"<td{' class=t' if isinstance(row[c], str) else ''}>{escape(_fmt(c, row[c]))}</td>"
            for c in CSV_COLUMNS)
        body.append(f"<tr>{cells}</tr>")
    return (f"<table class=sortable id=lesions><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def render_report(summary: dict[str, Any], lesions: Sequence[Lesion], *,
                  figures: Sequence[tuple[str, str]] = (), extra_sections: Sequence[str] = ()) -> str:
    """The full HTML page. ``figures`` are ``(caption, data-URI)`` pairs embedded as images."""
    inp = summary["input"]
    t = summary["totals"]
    facts = [f"{k.replace('_', ' ')}: {escape(str(inp[k]))}" for k in
             ("modality", "study_date", "kvp", "slice_thickness_mm", "convolution_kernel",
              "contrast_agent") if inp.get(k) is not None]
    facts.append("voxels: " + " × ".join(str(v) for v in inp["size_voxels"]))
    facts.append("spacing mm: " + " × ".join(f"{v:g}" for v in inp["spacing_mm"]))
    warnings = "".join(f"<li class=warn>{escape(w)}</li>" for w in summary["warnings"]) or "<li>none</li>"
    excl = summary["excluded"]["counts"]
    excluded = ", ".join(f"{escape(k.replace('_', ' '))}: {v}" for k, v in excl.items()) or "none"
    figs = "".join(f'<figure><img alt="{escape(c)}" src="{uri}"><figcaption class=muted>'
                   f"{escape(c)}</figcaption></figure>" for c, uri in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Calcinosis report</title><style>{_STYLE}</style></head><body>
<h1>Calcinosis CT report</h1>
<p class=muted>{' · '.join(facts)}<br>calcinosis {escape(summary['software']['version'])} ·
schema {escape(summary['schema_version'])} · threshold {summary['settings']['threshold_hu']:g} HU ·
image noise {summary['image']['noise_hu']} HU</p>
<h2>Burden</h2>
<p><b>{t['count']}</b> deposits · volume <b>{t['volume_mm3']:.1f} mm³</b> ·
mass <b>{t['mass_mg']:.2f} mg</b> HA-equivalent · Agatston <b>{t['agatston']:.1f}</b>
· low-confidence: {summary['low_confidence_count']}</p>
<p class=pattern>{escape(summary['pattern'])}</p>
{_burden_table('compartment', summary['by_compartment'])}
{_burden_table('region', summary['by_region'])}
{_burden_table('side', summary['by_side'])}
{figs}
<h2>Deposits</h2>
{lesion_table_html(lesions)}
<p class=muted>Positions are patient LPS millimetres (x to the patient's left, y posterior, z superior).
Click a column header to sort.</p>
{''.join(extra_sections)}
<h2>Excluded objects</h2><p>{excluded}</p>
<h2>Warnings</h2><ul>{warnings}</ul>
<p class=muted>Decision support for a clinician: the numbers are measurements, not a diagnosis.</p>
<script>{_SORT_JS}</script>
</body></html>
"""
