"""``report.html``: one self-contained page a clinician can read (no network access needed).

Everything is inline: CSS, the table-sorting script and the figures (PNG data
URIs from :mod:`calcinosis.report.figures`); the page names no external URL.
The header carries no patient identifier (only when the summary holds
``input.identifiers``, i.e. the user asked to keep them). Layout: a screen
column of at most 1100 px, and an A4 print style (smaller type, figures never
split across pages).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from calcinosis.measure.lesion import CSV_COLUMNS, LOW_CONTRAST_NOISE_SDS, SMALL_MAX_MM3, Lesion
from calcinosis.report.tables import _fmt

#: Column headers of the lesion table (the CSV name is kept as the header's title).
HEADERS = {
    "lesion_id": "#", "x_mm": "x mm", "y_mm": "y mm", "z_mm": "z mm", "volume_mm3": "volume mm³",
    "mass_mg": "mass mg", "agatston": "Agatston", "peak_hu": "peak HU", "mean_hu": "mean HU",
    "max_diameter_mm": "max diam. mm", "compartment": "compartment", "side": "side", "region": "region",
    "depth_mm": "depth mm", "bone_distance_mm": "to bone mm", "background_hu": "backgr. HU",
    "n_voxels": "voxels", "confidence": "confidence", "flags": "flags",
    "volume_sd_mm3": "± volume mm³ (noise SD)", "mass_sd_mg": "± mass mg (noise SD)",
}
TEXT_COLUMNS = ("compartment", "side", "region", "confidence", "flags")
#: Columns left out of the printed table so that it fits an A4 page (they stay in the CSV).
PRINT_HIDDEN = ("background_hu", "n_voxels", "volume_sd_mm3", "mass_sd_mg")

_STYLE = """
:root{--ink:#1d232b;--muted:#5d6773;--line:#d5dae0;--accent:#3a6ea5;--warn:#8a4b00}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:1.2em auto;
max-width:1100px;color:var(--ink);line-height:1.4;padding:0 1em;font-size:15px}
h1{font-size:1.45em;margin:.1em 0 .2em}h2{font-size:1.12em;border-bottom:1px solid var(--line);
margin:1.3em 0 .5em;padding-bottom:.15em}
.muted{color:var(--muted);font-size:.86em}.warn{color:var(--warn)}
.facts{display:flex;flex-wrap:wrap;gap:.2em 1.2em;margin:.3em 0;font-size:.88em;color:var(--muted)}
.facts b{color:var(--ink);font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:.6em;margin:.4em 0 .8em}
.card{border:1px solid var(--line);border-radius:6px;padding:.45em .8em;min-width:8.5em;background:#fafbfc}
.card .v{font-size:1.35em;font-weight:650}.card .k{font-size:.8em;color:var(--muted)}
.card .s{font-size:.75em;color:var(--muted)}.notice{margin:.3em 0;font-size:.92em}
.pattern{font-size:1.04em;background:#f3f6fa;padding:.6em .8em;border-left:4px solid var(--accent);margin:.6em 0}
.groups{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}
table{border-collapse:collapse;font-size:.84em;margin:.3em 0}
th,td{border:1px solid var(--line);padding:.2em .4em;text-align:right;white-space:nowrap}
#lesions{font-size:.78em}#lesions th{white-space:normal;vertical-align:bottom}
th{background:#eef1f5;font-weight:600}td.t,th.t{text-align:left}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2";font-size:.7em}
table.sortable th[aria-sort=descending]::after{content:" \\25BC";font-size:.7em}
tr.low td{background:#fff8e6}
.scroll{overflow-x:auto;max-width:100%}
.figs{display:flex;flex-wrap:wrap;gap:.8em;align-items:flex-start}
figure{margin:0;max-width:100%}figure img{max-width:100%;height:auto;display:block;border:1px solid var(--line)}
figcaption{font-size:.82em;color:var(--muted);max-width:60em;margin-top:.2em}
ul.warnings li{margin:.15em 0}
@page{size:A4;margin:12mm}
@media print{body{max-width:none;margin:0;padding:0;font-size:10pt}
table{font-size:7pt}th,td{padding:.1em .2em}.noprint{display:none}
#lesions{font-size:6.3pt}#lesions .minor{display:none}#lesions td.t{white-space:normal}
figure,table.groups,.cards{break-inside:avoid}h2{break-after:avoid}
.scroll{overflow:visible}}
"""

_SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function(h){ h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      rows.sort(function(a, b){
        var x = a.cells[col].textContent, y = b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y), c;
        if (!isNaN(nx) && !isNaN(ny)) { c = nx - ny; }
        else if (isNaN(nx) !== isNaN(ny)) { c = isNaN(nx) ? 1 : -1; }
        else { c = x.localeCompare(y); }
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def _burden_table(title: str, groups: dict[str, dict]) -> str:
    rows = "".join(
        f"<tr><td class=t>{escape(name.replace('_', ' '))}</td><td>{g['count']}</td><td>{g['volume_mm3']:.1f}</td>"
        f"<td>{g['mass_mg']:.2f}</td><td>{g['agatston']:.1f}</td></tr>"
        for name, g in groups.items() if g["count"]
    )
    if not rows:
        return ""
    return (f"<table><thead><tr><th class=t>{escape(title)}</th><th>count</th><th>volume mm³</th>"
            f"<th>mass mg</th><th>Agatston</th></tr></thead><tbody>{rows}</tbody></table>")


def lesion_table_html(lesions: Sequence[Lesion]) -> str:
    """The sortable lesion table (``id="lesions"``), one row per deposit, CSV values and decimals;
    a sentence instead of an empty table when nothing was found."""
    if not lesions:
        return "<p>No calcified finding in this scan (lesions.csv has no rows).</p>"
    head = "".join(f"<th{_cls(c)} title=\"{escape(c)}\">{escape(HEADERS.get(c, c))}</th>" for c in CSV_COLUMNS)
    body = []
    for lesion in lesions:
        row = lesion.row()
        cells = "".join(f"<td{_cls(c)}>{escape(_fmt(c, row[c]).replace('_', ' ').replace(';', '; '))}</td>"
                        for c in CSV_COLUMNS)
        cls = " class=low" if lesion.confidence == "low" else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return (f"<div class=scroll><table class=sortable id=lesions><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _cls(column: str) -> str:
    names = [n for n, on in (("t", column in TEXT_COLUMNS), ("minor", column in PRINT_HIDDEN)) if on]
    return f' class="{" ".join(names)}"' if names else ""


def _facts(summary: dict[str, Any]) -> str:
    inp = summary["input"]
    items = [("study date", _date(inp.get("study_date"))), ("modality", inp.get("modality")),
             ("scanner", inp.get("manufacturer")), ("tube voltage", _unit(inp.get("kvp"), "kVp")),
             ("slice thickness", _unit(inp.get("slice_thickness_mm"), "mm")),
             ("kernel", inp.get("convolution_kernel")), ("contrast", inp.get("contrast_agent")),
             ("voxels", " × ".join(str(v) for v in inp.get("size_voxels", ()))),
             ("spacing", " × ".join(f"{v:g}" for v in inp.get("spacing_mm", ())) + " mm")]
    ident = inp.get("identifiers") or {}
    if ident:  # only present when the user asked to keep identifiers
        items.insert(0, ("patient", " · ".join(str(v) for v in ident.values() if v)))
    return "".join(f"<span>{escape(k)} <b>{escape(str(v))}</b></span>" for k, v in items if v not in (None, ""))


def _date(value) -> str | None:
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else (text or None)


def _unit(value, unit: str) -> str | None:
    return None if value is None else f"{float(value):g} {unit}"


def _sd(sd: float | None, nd: int) -> str:
    """`` ± SD`` (the image noise's, see ``volume_sd_mm3``) when known and not nil."""
    return f" ± {sd:.{nd}f}" if sd is not None and round(sd, nd) > 0 else ""


def _cards(summary: dict[str, Any]) -> str:
    """The headline figures: the calcinosis burden (cutaneous, subcutaneous, intramuscular,
    juxta-osseous), how many of its findings are of high confidence and their burden, and how
    many vascular or visceral calcifications are reported beside it (not calcinosis)."""
    t = summary.get("calcinosis_totals") or summary["totals"]
    high = summary.get("calcinosis_totals_high_confidence")
    others = summary["totals"]["count"] - t["count"]
    cards = [(str(t["count"]), "calcinosis deposits", ""),
             (f"{t['volume_mm3']:.1f}{_sd(t.get('volume_sd_mm3'), 1)} mm³", "calcinosis volume", ""),
             (f"{t['mass_mg']:.2f}{_sd(t.get('mass_sd_mg'), 2)} mg", "HA-equivalent mass", ""),
             (f"{t['agatston']:.1f}", "Agatston score", "coronary score, used by analogy")]
    if high is not None:
        # why: the conservative burden (findings flagged for a check left out) is a number a
        # trial or a follow-up may quote; it was only in summary.json
        cards.append((str(high["count"]), "of high confidence",
                      f"{high['volume_mm3']:.1f}{_sd(high.get('volume_sd_mm3'), 1)} mm³ · "
                      f"{high['mass_mg']:.2f}{_sd(high.get('mass_sd_mg'), 2)} mg"))
    cards.append((str(others), "vascular / visceral (not calcinosis)", ""))
    return "".join(f"<div class=card><div class=v>{escape(v)}</div><div class=k>{escape(k)}</div>"
                   + (f"<div class=s>{escape(s)}</div>" if s else "") + "</div>"
                   for v, k, s in cards)


def _groups_note(summary: dict[str, Any]) -> str:
    """Says that the tables by compartment, region and side count every finding, when some are
    not calcinosis (the cards above count the calcinosis alone)."""
    total = summary["totals"]["count"]
    calcinosis = (summary.get("calcinosis_totals") or summary["totals"])["count"]
    if total == calcinosis:
        return ""
    others = f"{total - calcinosis} vascular or visceral calcification{'s' if total - calcinosis > 1 else ''}"
    if not calcinosis:
        return f"<p class=muted>The tables below count the {others}: not calcinosis.</p>"
    return (f"<p class=muted>The tables below count all {total} findings: the {calcinosis} of calcinosis and "
            f"the {others} (not calcinosis) alike.</p>")


def _warnings_notice(warnings: Sequence[str]) -> str:
    """One line under the header: the warnings are listed at the end of the page, after the table."""
    if not warnings:
        return ""
    n = len(warnings)
    return (f'<p class="warn notice">{n} warning{"s" if n > 1 else ""} about what this analysis could not do '
            f'or may have got wrong for this scan: <a href="#warnings">see Warnings</a>.</p>')


def _excluded_html(excluded: dict[str, Any]) -> str:
    """Each kind of excluded object with its count and what it means, then the policy on skeletal,
    vascular and visceral calcification."""
    counts = excluded.get("counts", {})
    reasons = excluded.get("reasons", {})
    items = "".join(f"<li>{escape(k.replace('_', ' '))}: {v}"
                    + (f" <span class=muted>({escape(reasons[k])})</span>" if reasons.get(k) else "") + "</li>"
                    for k, v in counts.items())
    listed = f"<ul class=excluded>{items}</ul>" if items else "<p>none</p>"
    policy = excluded.get("skeletal_and_visceral_policy")
    return listed + (f"<p class=muted>Not calcinosis: {escape(policy)}.</p>" if policy else "")


def _figures_html(figures: Sequence[tuple[str, str]]) -> str:
    if not figures:
        return ""
    figs = "".join(f'<figure><img alt="{escape(c)}" src="{uri}"><figcaption>{escape(c)}</figcaption></figure>'
                   for c, uri in figures)
    return f"<h2>Where the deposits are</h2><div class=figs>{figs}</div>"


def render_report(summary: dict[str, Any], lesions: Sequence[Lesion], *,
                  figures: Sequence[tuple[str, str]] = (), extra_sections: Sequence[str] = ()) -> str:
    """The full HTML page.

    Parameters
    ----------
    summary : dict
        The ``summary.json`` document (:func:`calcinosis.report.summary.build_summary`).
    lesions : sequence of Lesion
    figures : sequence of (caption, data URI)
        Images embedded in order (data URIs only: the page must open offline).
    extra_sections : sequence of str
        Trusted HTML fragments (e.g. the clinical work-up) placed after the lesion table.
    """
    for _, uri in figures:
        if not str(uri).startswith("data:"):
            raise ValueError("figures must be data: URIs so that the report is self-contained")
    warnings = "".join(f"<li class=warn>{escape(w)}</li>" for w in summary["warnings"]) or "<li>none</li>"
    settings = summary["settings"]
    image = summary["image"]
    noise = "" if image.get("noise_hu") is None else f" · image noise {image['noise_hu']:g} HU"
    structure = image.get("noise_structure")
    if structure:
        # What the ± SDs rest on: one voxel's noise, and how much its correlation widens a sum.
        noise += (f" (one voxel {structure['voxel_sd_hu']:g} HU; correlated noise widens the variance "
                  f"of a sum up to {structure['sum_factor']:g}×)")
    groups = "".join(_burden_table(title, summary[key]) for title, key in
                     (("compartment", "by_compartment"), ("region", "by_region"), ("side", "by_side")))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Calcinosis CT report</title><style>{_STYLE}</style></head><body>
<h1>Calcinosis CT report</h1>
<div class=facts>{_facts(summary)}</div>
<p class=muted>calcinosis {escape(summary['software']['version'])} · schema {escape(summary['schema_version'])}
· threshold {settings.get('threshold_hu', float('nan')):g} HU{noise}</p>
{_warnings_notice(summary['warnings'])}
<h2>Burden</h2>
<div class=cards>{_cards(summary)}</div>
<p class=pattern>{escape(summary['pattern'])}</p>
{_groups_note(summary)}
<div class=groups>{groups}</div>
<p class=muted>Volume: voxels at or above the threshold (the blurred rim counts, so a small deposit reads
larger than it is). Mass: hydroxyapatite-equivalent milligrams, corrected for the background and the blur.
Agatston: the coronary calcium score's rule (area &times; density weight per slice), used here by analogy;
no coronary reference values apply. &plusmn;: one SD that image noise alone gives, not the accuracy.</p>
{_figures_html(figures)}
<h2>Findings</h2>
{lesion_table_html(lesions)}
<p class=muted>Positions in patient LPS millimetres (x to the patient's left, y posterior, z superior);
mass is hydroxyapatite-equivalent; compartment <i>vascular</i> or <i>visceral</i>: calcification of a vessel
wall or an organ, listed but not calcinosis; shaded rows are low-confidence (see flags: <i>small</i> under
{SMALL_MAX_MM3:g} mm&sup3; or a single voxel, <i>low_contrast</i> peak less than {LOW_CONTRAST_NOISE_SDS:g} noise SDs above its surroundings, <i>touches_bone</i>,
<i>split_from_bone</i> parted from a bone at the threshold: check it, a bone's process or edge can look alike).
<span class=noprint>Click a column header to sort.</span></p>
{''.join(extra_sections)}
<h2>Excluded objects</h2>{_excluded_html(summary['excluded'])}
<h2 id=warnings>Warnings</h2><ul class=warnings>{warnings}</ul>
<p class=muted>Decision support for a clinician: the numbers are measurements, not a diagnosis.</p>
<script>{_SORT_JS}</script>
</body></html>
"""


#: Where Debian (and the CI setup script) puts Chromium; other names are looked up on PATH.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of a headless-capable Chromium, or None."""
    import shutil

    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_args(chromium: str, profile_dir: str) -> list[str]:
    """Chromium flags for an offline, headless run that leaves nothing behind but ``profile_dir``."""
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}"]


def print_pdf(html_path, pdf_path, *, chromium: str | None = None, timeout_s: float = 120.0):
    """Print ``html_path`` to ``pdf_path`` (A4, the page's print style) with headless Chromium.

    Raises
    ------
    InputError
        No Chromium found, or Chromium failed to write the PDF.
    """
    import subprocess
    import tempfile
    from pathlib import Path

    from calcinosis import atomic
    from calcinosis.errors import InputError

    chromium = chromium or find_chromium()
    if chromium is None:
        raise InputError("--report pdf needs Chromium (Debian: apt-get install chromium); "
                         "use --report html instead")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="calcinosis-chromium-") as profile, \
            atomic.atomic_path(pdf_path) as tmp:
        cmd = [*chromium_args(chromium, profile), "--no-pdf-header-footer", f"--print-to-pdf={tmp}", url]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InputError(f"Chromium could not print the report to PDF ({exc}); use --report html") from exc
        if proc.returncode != 0 or not Path(tmp).exists() or Path(tmp).stat().st_size == 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise InputError(f"Chromium could not print the report to PDF ({last}); use --report html")
    return Path(pdf_path)
