"""Write a radiograph result: deposits.csv, summary.json, overlay.png, report.html."""

from __future__ import annotations

import base64
import contextlib
import csv
import html
import io
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from scipy import ndimage

from calcinosis.atomic import write_bytes, write_json, write_text
from calcinosis.errors import InputError
from calcinosis.paths import earlier_output, make_out_dir
from calcinosis.radiograph.analysis import RadiographResult

CSV_COLUMNS = (
    "deposit_id", "row_px", "col_px", "y_mm", "x_mm", "area_px", "area_mm2", "peak_contrast",
    "relative_density", "over_bone", "area", "detection_z",
)  # fmt: skip


def deposits_csv(result: RadiographResult) -> str:
    """CSV text, one row per deposit; empty mm cells when the pixel spacing is unknown."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for d in result.deposits:
        row = [getattr(d, c) for c in CSV_COLUMNS]
        w.writerow(["" if v is None else (str(v).lower() if isinstance(v, bool) else v) for v in row])
    return buf.getvalue()


def overlay_png(result: RadiographResult, max_side: int = 1400) -> bytes:
    """PNG of the radiograph with deposits outlined and numbered, excluded objects boxed."""
    from PIL import Image, ImageDraw

    img = result.radiograph.image.astype(np.float32)
    lo, hi = np.percentile(img[result.segmentation.field_mask] if result.segmentation.field_mask.any() else img, [0.5, 99.5])
    grey = (np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)
    rgb = np.stack([grey] * 3, axis=-1)
    labels = result.label_map
    edge = (labels > 0) & ~ndimage.binary_erosion(labels > 0, iterations=1)
    edge = ndimage.binary_dilation(edge, iterations=max(1, int(max(img.shape) / 1000)))
    rgb[edge] = (255, 40, 40)
    scale = min(1.0, max_side / max(img.shape))
    im = Image.fromarray(rgb)
    if scale < 1.0:
        # at least a pixel: a long thin image (32 x 30000) scaled to 0 rows
        size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
        im = im.resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(im)
    for d in result.deposits:
        draw.text((d.col_px * scale + 6, d.row_px * scale - 14), str(d.deposit_id), fill=(255, 255, 0))
    for o in result.segmentation.excluded:
        r0, c0, r1, c1 = (v * scale for v in o.bbox_px)
        draw.rectangle((c0, r0, c1, r1), outline=(80, 160, 255))
        draw.text((c0, max(r0 - 12, 0)), f"excluded {o.kind}", fill=(80, 160, 255))
    out = io.BytesIO()
    im.save(out, format="PNG")
    return out.getvalue()


def render_radiograph_section_html(result: RadiographResult) -> str:
    """A self-contained HTML section (inline overlay image, score table, deposits, warnings)."""
    s = result.summary
    esc = html.escape
    png = base64.b64encode(overlay_png(result, max_side=900)).decode("ascii")
    unit = "mm²" if result.radiograph.pixel_spacing_mm else "px (no spacing)"
    rows = "".join(
        f"<tr><td>{d.deposit_id}</td><td>{esc(d.area)}</td>"
        f"<td>{d.area_mm2 if d.area_mm2 is not None else d.area_px}</td>"
        f"<td>{'' if d.relative_density is None else d.relative_density}</td>"
        f"<td>{'yes' if d.over_bone else 'no'}</td></tr>"
        for d in result.deposits
    )
    areas = "".join(
        f"<tr><td>{esc(name)}</td><td>{a['count']}</td><td>{a['total_area_mm2']}</td>"
        f"<td>{a['extent_grade']}</td><td>{a['density_grade']}</td><td>{a['score']}</td></tr>"
        for name, a in s["score"]["by_area"].items()
    )
    warns = "".join(f"<li>{esc(w)}</li>" for w in s["warnings"])
    excluded = "".join(f"<li>{esc(o['kind'])}: {esc(o['reason'])}</li>" for o in s["excluded"])
    desc = "".join(f"<li>{esc(k)}: {esc(str(v))}</li>" for k, v in s["score"]["description"].items())
    return (
        '<section class="radiograph">'
        f"<h2>Radiograph: {esc(_heading(s))}</h2>"
        f"<p>Deposits: <b>{s['totals']['count']}</b> ({s['totals']['count_over_bone']} over bone); "
        f"total area {s['totals']['total_area_mm2']} mm²; image score <b>{s['score']['image_score']}</b>.</p>"
        f'<img alt="overlay" style="max-width:100%" src="data:image/png;base64,{png}">'
        "<h3>Score by anatomical area</h3><table border=1><tr><th>area</th><th>deposits</th>"
        f"<th>total mm²</th><th>extent</th><th>density</th><th>score</th></tr>{areas}</table>"
        f"<ul>{desc}</ul>"
        f"<h3>Deposits</h3><table border=1><tr><th>#</th><th>area</th><th>size ({unit})</th>"
        f"<th>density vs cortex</th><th>over bone</th></tr>{rows}</table>"
        f"<h3>Excluded objects</h3><ul>{excluded or '<li>none</li>'}</ul>"
        f"<h3>Warnings</h3><ul>{warns or '<li>none</li>'}</ul>"
        "</section>"
    )


def _heading(summary: dict) -> str:
    """The report's name for the image: its format, modality and area ("DICOM DX, hand"), not
    its file name, which can be the patient's (see ``analysis.IDENTIFYING_INPUT_KEYS``)."""
    inp = summary.get("input", {})
    words = [str(inp.get(k)) for k in ("format", "modality") if inp.get(k)]
    area = summary.get("anatomical_area")
    return " ".join(words or ["image"]) + (f", {area}" if area and area != "unknown" else "")


def prepare_out_dir(out_dir: str | Path) -> Path:
    """The output folder, created if missing; a path that is a file, or that cannot be created
    (no permission, a read-only or virtual file system), is bad input
    (:func:`calcinosis.paths.make_out_dir`)."""
    return make_out_dir(out_dir)


def write_outputs_into(out: Path, writers: dict[str, Callable[[Path], Path]],
                       inputs: Iterable[str | Path | None] = ()) -> dict[str, Path]:
    """Refuse to write over an input file (``inputs``: a radiograph named overlay.png in the
    output folder was replaced by the overlay), then call each ``name -> writer(path)`` for
    ``out / name``, in order (the summary last: a folder holding one holds a whole result); a
    folder that refuses the files (permission, full disk) is reported in one line rather than
    as a crash. When one fails (or Ctrl-C),
    those already written are removed: a summary.json without its overlay and report was left.
    An earlier run's files of these names (when its summary, the last name, is calcinosis's)
    are removed first, its summary first: never a new file beside an old summary."""
    names = list(writers)
    for given in inputs:
        for name in names:
            if given is not None and _same_file(out / name, Path(given)):
                raise InputError(f"--out {out}: {name} would be written over the input {given}; choose another --out")
    if names and earlier_output(out, names[-1]):
        for name in (names[-1], *names[:-1]):
            try:
                (out / name).unlink(missing_ok=True)
            except OSError as exc:
                raise InputError(f"--out {out}: cannot remove {name} of an earlier run ({exc.strerror or exc}); "
                                 "give a writable folder") from None
    paths: dict[str, Path] = {}
    try:
        for name, write in writers.items():
            try:
                paths[name] = write(out / name)
            except OSError as exc:
                raise InputError(f"--out {out}: cannot write {name} there ({exc.strerror or exc}); "
                                 "give a writable folder") from None
    except BaseException:
        for path in paths.values():
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return paths


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_radiograph_outputs(result: RadiographResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the four outputs (atomically) into ``out_dir``; returns their paths."""
    out = prepare_out_dir(out_dir)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>calcinosis radiograph report</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 6px}</style></head><body>"
        "<h1>Calcinosis on a radiograph</h1>" + render_radiograph_section_html(result) + "</body></html>\n"
    )
    return write_outputs_into(out, {
        "deposits.csv": lambda f: write_text(f, deposits_csv(result)),
        "overlay.png": lambda f: write_bytes(f, overlay_png(result)),
        "report.html": lambda f: write_text(f, page),
        "summary.json": lambda f: write_json(f, result.summary),
    }, inputs=[result.radiograph.description.get("path")])
