"""Outputs of an ultrasound analysis: deposits.csv, summary.json, overlay.png, report.html."""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from calcinosis import __version__
from calcinosis.atomic import write_bytes, write_json, write_text
from calcinosis.ultrasound.analysis import SCHEMA_VERSION, UltrasoundResult, UsDeposit

__all__ = ["CSV_COLUMNS", "OUTPUT_FILES", "check_out_dir", "deposits_csv", "summary_dict", "render_overlay_png",
           "render_ultrasound_section_html", "render_report_html", "write_ultrasound_outputs"]

CSV_COLUMNS = ("deposit_id", "frame", "track_id", "region", "x_px", "y_px", "x_mm", "y_mm", "depth_mm",
               "width_mm", "thickness_mm", "depth_px", "width_px", "thickness_px", "shadow_ratio",
               "shadow_strength", "confidence")
_MAX_PANELS = 24
#: The files an analysis writes, in the order written (the summary last: a whole result).
OUTPUT_FILES = ("deposits.csv", "overlay.png", "report.html", "summary.json")


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if v == v else ""
    return str(v)


def deposits_csv(result: UltrasoundResult) -> str:
    """One row per deposit per frame, columns :data:`CSV_COLUMNS`; mm columns empty without scale."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for d in result.deposits:
        w.writerow([_fmt(getattr(d, c)) for c in CSV_COLUMNS])
    return buf.getvalue()


def summary_dict(result: UltrasoundResult) -> dict:
    """The summary.json content (deterministic: no run time, no absolute paths)."""
    frames = result.image.n_frames
    per_frame = [sum(1 for d in result.deposits if d.frame == f) for f in range(frames)]
    tracks = {}
    for d in result.deposits:
        tracks.setdefault(d.track_id, []).append(d)
    track_rows = []
    for tid, ds in sorted(tracks.items()):
        best = max(ds, key=lambda d: d.confidence)
        track_rows.append({
            "track_id": tid, "frames": [d.frame for d in ds], "best_deposit_id": best.deposit_id,
            "depth_mm": best.depth_mm, "width_mm": best.width_mm, "thickness_mm": best.thickness_mm,
            "shadow_strength": best.shadow_strength, "confidence": best.confidence})
    return {
        "schema_version": SCHEMA_VERSION,
        "software": {"name": "calcinosis", "version": __version__, "path": "ultrasound"},
        "input": result.image.description,
        "units": "mm" if result.has_physical_scale else "px",
        "settings": dataclasses.asdict(result.config),
        "count": len(tracks),
        "detections": len(result.deposits),
        "frames": frames,
        "detections_per_frame": per_frame,
        "deposits": track_rows,
        "warnings": list(result.warnings),
    }


def _outline_pixels(d: UsDeposit, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage as ndi
    r0, c0, r1, c1 = d.bbox
    m = np.zeros((r1 - r0 + 3, c1 - c0 + 3), bool)
    m[d.mask_rows - r0 + 1, d.mask_cols - c0 + 1] = True
    edge = m & ~ndi.binary_erosion(m)
    rr, cc = np.nonzero(edge)
    rr, cc = rr + r0 - 1, cc + c0 - 1
    ok = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
    return rr[ok], cc[ok]


def _frame_panel(result: UltrasoundResult, frame: int) -> Image.Image:
    rgb = result.image.rgb[frame]
    deposits = [d for d in result.deposits if d.frame == frame]
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default()
    for r in result.image.tissue_regions if result.image.declared_regions else ():
        draw.rectangle([r.x0, r.y0, r.x1, r.y1], outline=(0, 160, 255))
    if frame == 0:
        for _, _, cols, rows in result.skin_lines:
            pts = [(int(c), int(round(r))) for c, r in zip(cols[::4], rows[::4])]
            draw.point(pts, fill=(0, 255, 255))
    for d in deposits:
        r0, c0, r1, c1 = d.bbox
        label = str(d.track_id if result.image.n_frames > 1 else d.deposit_id)
        x, y = c1 + 3, max(r0 - 10, 0)
        draw.rectangle([x - 1, y, x + 6 * len(label) + 1, y + 10], fill=(0, 0, 0))
        draw.text((x, y - 1), label, fill=(255, 220, 0), font=font)
    if result.image.n_frames > 1:
        draw.text((4, 2), f"frame {frame}", fill=(255, 255, 255), font=font)
    # Outlines last, so that no label or line hides a finding.
    out = np.asarray(im).copy()
    for d in deposits:
        rr, cc = _outline_pixels(d, out.shape[:2])
        out[rr, cc] = (255, 220, 0)
    return Image.fromarray(out)


def render_overlay_png(result: UltrasoundResult) -> bytes:
    """PNG of the image with every deposit outlined and numbered (deposit id; track id for cine).

    A cine loop gives a grid of the frames that carry deposits (the first frame if none),
    at most 24 panels.
    """
    n = result.image.n_frames
    frames = sorted({d.frame for d in result.deposits}) or [0]
    if n == 1 or len(frames) == 1:
        im = _frame_panel(result, frames[0] if n > 1 else 0)
    else:
        frames = frames[:_MAX_PANELS]
        panels = [_frame_panel(result, f) for f in frames]
        cols = min(4, len(panels))
        rows = (len(panels) + cols - 1) // cols
        w, h = panels[0].size
        scale = 0.5 if len(panels) > 4 else 1.0
        w2, h2 = int(w * scale), int(h * scale)
        im = Image.new("RGB", (cols * w2, rows * h2))
        for i, p in enumerate(panels):
            if scale != 1.0:
                p = p.resize((w2, h2), Image.Resampling.BILINEAR)
            im.paste(p, ((i % cols) * w2, (i // cols) * h2))
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def render_ultrasound_section_html(result: UltrasoundResult) -> str:
    """A self-contained HTML ``<section>`` (overlay embedded as a data URI) for a report."""
    s = summary_dict(result)
    unit = s["units"]
    esc = html.escape
    png = base64.b64encode(render_overlay_png(result)).decode("ascii")
    rows = []
    for d in result.deposits:
        size = (f"{_fmt(d.width_mm)} x {_fmt(d.thickness_mm)} mm" if d.width_mm is not None
                else f"{_fmt(d.width_px)} x {_fmt(d.thickness_px)} px")
        depth = f"{_fmt(d.depth_mm)} mm" if d.depth_mm is not None else f"{_fmt(d.depth_px)} px"
        rows.append(f"<tr><td>{d.deposit_id}</td><td>{d.frame}</td><td>{d.track_id}</td><td>{esc(depth)}</td>"
                    f"<td>{esc(size)}</td><td>{d.shadow_strength:.2f}</td><td>{d.confidence:.2f}</td></tr>")
    table = ("<table><thead><tr><th>#</th><th>frame</th><th>track</th><th>depth from skin</th>"
             "<th>width x thickness</th><th>shadow strength</th><th>confidence</th></tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>") if rows else "<p>No calcified deposit (hyperechoic focus with an acoustic shadow) was found.</p>"
    warn = "".join(f"<li>{esc(w)}</li>" for w in s["warnings"])
    desc = s["input"]
    return (
        '<section class="calcinosis-ultrasound">\n'
        "<h2>Ultrasound: calcified deposits</h2>\n"
        f"<p>Input: {esc(str(desc.get('format', '')))} image, "
        f"{desc.get('columns')} x {desc.get('rows')} px, {desc.get('frames')} frame(s); units: {unit}.</p>\n"
        f"<p><strong>{s['count']}</strong> deposit(s); {s['detections']} detection(s) over {s['frames']} frame(s).</p>\n"
        f"{table}\n"
        + (f"<h3>Warnings</h3><ul>{warn}</ul>\n" if warn else "")
        + f'<figure><img alt="B-mode image with deposits outlined and numbered" src="data:image/png;base64,{png}">'
        "<figcaption>Deposits outlined in yellow and numbered; skin line dotted cyan; declared B-mode regions in blue.</figcaption></figure>\n"
        "</section>\n"
    )


def render_report_html(result: UltrasoundResult) -> str:
    """A full, self-contained report.html around :func:`render_ultrasound_section_html`."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>calcinosis: ultrasound report</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:1em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:2px 6px;text-align:right}img{max-width:100%}</style>"
        "</head><body>\n"
        + render_ultrasound_section_html(result)
        + f"<footer><p>calcinosis {__version__}. Research software; a person must judge every finding on the image.</p></footer>\n"
        "</body></html>\n"
    )


def check_out_dir(out_dir: str | os.PathLike[str], image: str | os.PathLike[str] | None = None) -> None:
    """Refuse (:class:`~calcinosis.errors.InputError`) an output folder that holds another
    calcinosis command's analysis, or where an output would replace the input ``image``
    (an earlier run's overlay.png analysed into the same folder was overwritten); nothing is
    created. Called before the input is read, so that a long analysis does not end in the
    refusal, and again before writing."""
    from calcinosis.errors import InputError

    for name in OUTPUT_FILES:
        target = Path(out_dir) / name
        try:
            same = image is not None and target.exists() and os.path.samefile(target, image)
        except OSError:
            same = False
        if same:
            raise InputError(f"--out {out_dir}: its {name} would replace the input image {image}; "
                             "give another output folder")
    other = _other_analysis(Path(out_dir))
    if other:
        raise InputError(f"--out {out_dir}: the folder holds {other} (its summary.json and report.html would be "
                         "replaced); give a folder of its own to the ultrasound analysis")


def _other_analysis(out: Path) -> str | None:
    """What another calcinosis command left in ``out`` (its summary.json), or None when the
    folder holds no calcinosis summary or an ultrasound one."""
    import json

    from calcinosis.paths import earlier_output

    if not out.is_dir() or not earlier_output(out, "summary.json"):
        return None
    try:
        software = json.loads((out / "summary.json").read_text(encoding="utf-8"))["software"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    path = software.get("path") if isinstance(software, dict) else None
    return None if path == "ultrasound" else f"a {path} analysis" if path else "a CT analysis"


def write_ultrasound_outputs(result: UltrasoundResult, out_dir: str | os.PathLike[str],
                             image: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Write deposits.csv, summary.json, overlay.png and report.html atomically into ``out_dir``.

    A folder holding another command's analysis is refused: its summary.json and report.html
    were replaced, and its other files (a CT's lesions.csv) left beside an ultrasound summary;
    so is one where an output would replace the input file ``image``.
    """
    from calcinosis.radiograph.outputs import prepare_out_dir, write_outputs_into

    out = prepare_out_dir(out_dir)
    check_out_dir(out, image)
    return write_outputs_into(out, {
        "deposits.csv": lambda f: write_text(f, deposits_csv(result)),
        "overlay.png": lambda f: write_bytes(f, render_overlay_png(result)),
        "report.html": lambda f: write_text(f, render_report_html(result)),
        "summary.json": lambda f: write_json(f, summary_dict(result)),  # last: a whole result
    })
