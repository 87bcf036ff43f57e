"""Figures of ``report.html``: body map, MIPs and per-deposit axial thumbnails.

Every figure is drawn with matplotlib (Agg backend, no display) and returned as
a ``(caption, "data:image/png;base64,...")`` pair, so the report embeds it.

Matplotlib is used through bare ``Figure`` objects (Agg canvas, no pyplot state).

Display convention (radiological): images are reoriented so that the
patient's right is on the viewer's left in frontal and axial views, superior is
up, anterior is up in axial views and on the left in the lateral view. The
reorientation picks, for each patient axis, the array axis closest to it, so it
is exact for axial, sagittal or coronal acquisitions and approximate for
oblique ones.

Speed: projections are one pass over the volume each, then reduced in 2-D
(block maximum, so a small deposit never vanishes); thumbnails read only a
small crop around each deposit and are capped at :data:`MAX_THUMBNAILS`.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Polygon, Rectangle
from scipy import ndimage as ndi

from calcinosis.measure.lesion import CALCINOSIS_COMPARTMENTS

MAX_THUMBNAILS = 24
MAX_NUMBERED = 40
MIP_MAX_PIXELS = 700
WINDOW_HU = (-300.0, 700.0)  # thumbnails: soft tissue grey, calcification white
MIP_WINDOW_HU = (-100.0, 1200.0)
OUTLINE = "#ff5a1f"
COMPARTMENT_COLOURS = {
    "cutaneous": "#d62728", "subcutaneous": "#ff7f0e", "intramuscular": "#9467bd",
    "juxta_osseous": "#1f77b4", "vascular": "#2ca02c", "visceral": "#8c564b",
}
DPI = 110
# why: a white letter or a yellow number on bone (white in the MIP window) cannot be read; a
# dark box behind the orientation letters and a dark rim round the numbers keep them legible
LETTER_BOX = {"boxstyle": "square,pad=0.15", "facecolor": "black", "edgecolor": "none", "alpha": 0.75}
NUMBER_RIM = [patheffects.withStroke(linewidth=2.0, foreground="black")]
RADIOLOGICAL = "patient's right on the viewer's left"


@dataclass(frozen=True, eq=False)
class CanonicalView:
    """Array views (no copies) indexed ``[superior->inferior, anterior->posterior, right->left]``."""

    hu: np.ndarray
    labels: np.ndarray
    spacing_mm: tuple[float, float, float]
    perm: tuple[int, int, int]  # canonical axis k is array axis perm[k]
    flip: tuple[bool, bool, bool]
    shape_zyx: tuple[int, int, int]

    def index_of(self, index_zyx: np.ndarray) -> np.ndarray:
        """Canonical fractional index of array indices ``(..., 3)``."""
        idx = np.asarray(index_zyx, float)[..., list(self.perm)]
        n = np.array([self.shape_zyx[a] for a in self.perm], float)
        return np.where(self.flip, n - 1 - idx, idx)


def canonical_view(volume, labels: np.ndarray) -> CanonicalView:
    """Reorient ``volume.array`` and ``labels`` for display (see module docstring)."""
    dirs = volume.axis_lps_directions()  # rows: array axes (z, y, x); columns: L, P, S
    # canonical axes: S (index 0 = most superior), P (0 = most anterior), L (0 = most right)
    want = ((2, -1.0), (1, 1.0), (0, 1.0))
    perm, flip, used = [], [], set()
    for lps_axis, sign in want:
        order = np.argsort(-np.abs(dirs[:, lps_axis]))
        axis = next(int(a) for a in order if int(a) not in used)
        used.add(axis)
        perm.append(axis)
        flip.append(bool(np.sign(dirs[axis, lps_axis]) != sign))
    hu, lab = volume.array.transpose(perm), labels.transpose(perm)
    for k, f in enumerate(flip):
        if f:
            hu, lab = np.flip(hu, k), np.flip(lab, k)
    sp = volume.spacing_zyx
    return CanonicalView(hu, lab, tuple(float(sp[a]) for a in perm), tuple(perm), tuple(flip),
                         tuple(volume.shape))


def report_figures(analysis) -> list[tuple[str, str]]:
    """``(caption, PNG data URI)`` of the body map, the two MIPs and the thumbnails."""
    lesions = list(analysis.lesions)
    view = canonical_view(analysis.volume, analysis.labels)
    centres = _lesion_centres(analysis, view)
    figures = [body_map(analysis, view, centres)]
    figures += mips(view, lesions, centres)
    if lesions:
        figures.append(thumbnails(view, lesions))
    return figures


def _lesion_centres(analysis, view: CanonicalView) -> dict[int, np.ndarray]:
    if not analysis.lesions:
        return {}
    lps = np.array([[les.x_mm, les.y_mm, les.z_mm] for les in analysis.lesions], float)
    idx = view.index_of(analysis.volume.lps_to_index(lps))
    return {les.lesion_id: idx[i] for i, les in enumerate(analysis.lesions)}


def to_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    # why: a bare Figure (no pyplot) renders with the Agg canvas and never touches a display
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _block_max(img: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return img
    pad = np.pad(img, ((0, (-img.shape[0]) % factor), (0, (-img.shape[1]) % factor)), mode="edge")
    return pad.reshape(pad.shape[0] // factor, factor, pad.shape[1] // factor, factor).max(axis=(1, 3))


def _projection(view: CanonicalView, axis: int):
    """MIP of HU and of the deposit mask along a canonical axis, cropped to the body, reduced."""
    mip = view.hu.max(axis=axis)
    mask = (view.labels > 0).any(axis=axis)
    rows_sp = view.spacing_mm[0]
    cols_sp = view.spacing_mm[2 if axis == 1 else 1]
    body = mip > -400
    if body.any():
        r = np.flatnonzero(body.any(axis=1))
        c = np.flatnonzero(body.any(axis=0))
        m = 5
        r0, r1 = max(r[0] - m, 0), min(r[-1] + m + 1, mip.shape[0])
        c0, c1 = max(c[0] - m, 0), min(c[-1] + m + 1, mip.shape[1])
    else:
        r0, r1, c0, c1 = 0, mip.shape[0], 0, mip.shape[1]
    mip, mask = mip[r0:r1, c0:c1], mask[r0:r1, c0:c1]
    factor = max(1, int(np.ceil(max(mip.shape) / MIP_MAX_PIXELS)))
    mip, mask = _block_max(mip, factor), _block_max(mask, factor)
    return mip, mask, (r0, c0), factor, (rows_sp * factor, cols_sp * factor)


def mips(view: CanonicalView, lesions, centres) -> list[tuple[str, str]]:
    """Frontal and lateral maximum-intensity projections with deposits outlined and numbered."""
    numbered = _numbered(lesions)
    out = []
    for axis, name, col_axis, labels_lr in ((1, "Frontal", 2, ("R", "L")), (2, "Lateral", 1, ("A", "P"))):
        mip, mask, (r0, c0), f, (sr, sc) = _projection(view, axis)
        h, w = mip.shape[0] * sr, mip.shape[1] * sc
        wide = w > 1.5 * h  # why: a short scan gives a flat strip; give it the page width
        width_in = (7.5 if wide else 4.6) if axis == 1 else (5.5 if wide else 3.6)
        fig = Figure(figsize=(width_in, float(np.clip(width_in * h / max(w, 1e-6), 0.6, 7.5))))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(mip, cmap="gray", vmin=MIP_WINDOW_HU[0], vmax=MIP_WINDOW_HU[1],
                  extent=(0, w, h, 0), interpolation="antialiased")
        if mask.any():
            ax.contour(np.linspace(sc / 2, w - sc / 2, mask.shape[1]), np.linspace(sr / 2, h - sr / 2, mask.shape[0]),
                       mask.astype(np.uint8), levels=[0.5], colors=OUTLINE, linewidths=0.9)
        for lid, c in centres.items():
            if lid not in numbered:
                continue
            y = (c[0] - r0) / f * sr
            x = (c[col_axis] - c0) / f * sc
            ax.annotate(str(lid), (x, y), xytext=(4, 4), textcoords="offset points", color="#ffd54f",
                        fontsize=7, fontweight="bold", path_effects=NUMBER_RIM)
        for text, ha, xpos in ((labels_lr[0], "left", 0.02), (labels_lr[1], "right", 0.98)):
            ax.text(xpos, 0.98, text, transform=ax.transAxes, ha=ha, va="top", color="white", fontsize=9,
                    fontweight="bold", bbox=LETTER_BOX)
        _scale_bar(ax, w, h)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_axis_off()
        more = "" if len(lesions) <= MAX_NUMBERED else f" (the {MAX_NUMBERED} largest numbered)"
        view_words = (f"seen from the front, {RADIOLOGICAL} (R, L)" if axis == 1
                      else "seen as a sagittal image from the patient's left, anterior (A) on the left")
        out.append((f"{name} maximum-intensity projection, {view_words}; deposits outlined and numbered{more}",
                    to_data_uri(fig)))
    return out


def _numbered(lesions) -> set[int]:
    """The deposits whose number is written on the MIPs and the body map: the largest ones."""
    return {les.lesion_id for les in sorted(lesions, key=lambda x: -x.volume_mm3)[:MAX_NUMBERED]}


def _scale_bar(ax, w: float, h: float) -> None:
    length = 50.0 if w > 150 else 10.0
    x0, y0 = w * 0.04, h * 0.96
    ax.plot([x0, x0 + length], [y0, y0], color="white", lw=2)
    ax.text(x0 + length / 2, y0 - h * 0.015, f"{length:g} mm", color="white", fontsize=7, ha="center", va="bottom",
            path_effects=NUMBER_RIM)


def thumbnails(view: CanonicalView, lesions) -> tuple[str, str]:
    """Axial crop through each deposit's largest cross-section, outlined (largest ones if many)."""
    chosen = sorted(sorted(lesions, key=lambda x: -x.volume_mm3)[:MAX_THUMBNAILS], key=lambda x: x.lesion_id)
    boxes = ndi.find_objects(view.labels, max_label=max(les.lesion_id for les in chosen))
    ncol = min(6, len(chosen))
    nrow = int(np.ceil(len(chosen) / ncol))
    fig = Figure(figsize=(1.45 * ncol, 1.62 * nrow))
    _, sp_r, sp_c = view.spacing_mm
    for k, lesion in enumerate(chosen):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        ax.set_axis_off()
        box = boxes[lesion.lesion_id - 1]
        if box is None:
            continue
        sub = view.labels[box] == lesion.lesion_id
        s = box[0].start + int(np.argmax(sub.sum(axis=(1, 2))))
        half = max(15.0, 1.5 * lesion.max_diameter_mm)
        rc = (box[1].start + box[1].stop - 1) / 2.0, (box[2].start + box[2].stop - 1) / 2.0
        r0, r1 = _window(rc[0], half / sp_r, view.hu.shape[1])
        c0, c1 = _window(rc[1], half / sp_c, view.hu.shape[2])
        img = view.hu[s, r0:r1, c0:c1]
        lab = view.labels[s, r0:r1, c0:c1] == lesion.lesion_id
        ext = (0, img.shape[1] * sp_c, img.shape[0] * sp_r, 0)
        ax.imshow(img, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], extent=ext, interpolation="nearest")
        if lab.any():
            ax.contour((np.arange(lab.shape[1]) + 0.5) * sp_c, (np.arange(lab.shape[0]) + 0.5) * sp_r,
                       lab.astype(np.uint8), levels=[0.5], colors=OUTLINE, linewidths=1.0)
        ax.plot([ext[1] * 0.06, ext[1] * 0.06 + 10.0], [ext[2] * 0.92] * 2, color="white", lw=1.5)
        side = {"left": "L", "right": "R", "midline": "mid"}.get(lesion.side, "")
        ax.set_title(f"#{lesion.lesion_id} · {lesion.volume_mm3:.0f} mm³ · {side}", fontsize=7.5, pad=2)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93 if nrow == 1 else 0.96,
                        wspace=0.05, hspace=0.22)
    more = f"; the {MAX_THUMBNAILS} largest of {len(lesions)} shown" if len(lesions) > MAX_THUMBNAILS else ""
    others = sorted({les.compartment for les in chosen} - set(CALCINOSIS_COMPARTMENTS))
    if others:  # why: on a chest CT these panels can all be aortic or cardiac calcification
        more += f"; {' and '.join(others)} findings among them are not calcinosis (compartment in the table)"
    return (f"Axial view through each deposit's largest cross-section, outlined (bar 10 mm; {RADIOLOGICAL}, "
            f"anterior up; R, L or mid: the deposit's side){more}",
            to_data_uri(fig))


def _window(centre: float, half: float, n: int) -> tuple[int, int]:
    lo = int(np.floor(centre - half))
    hi = int(np.ceil(centre + half)) + 1
    return max(lo, 0), min(hi, n)


# --- body map -----------------------------------------------------------------------------

#: Region -> (lateral offset of its centre from the midline, height, box width, box height),
#: in body-map units (figure height ~100); limbs are mirrored for the two sides.
REGION_BOXES = {
    "head_neck": (0.0, 90.0, 7.0, 12.0), "shoulder": (13.0, 78.0, 5.0, 4.0),
    "chest": (5.5, 70.0, 8.0, 8.0), "upper_arm": (17.5, 67.0, 3.0, 10.0),
    "elbow": (19.0, 58.5, 3.5, 4.0), "forearm": (20.5, 50.0, 3.0, 9.0),
    "wrist_hand": (22.0, 40.0, 3.5, 6.0), "abdomen": (5.0, 57.0, 8.0, 8.0),
    "back": (5.5, 63.0, 8.0, 20.0), "pelvis": (5.0, 47.5, 8.0, 4.0),
    "hip_gluteal": (7.5, 46.0, 5.0, 5.0), "thigh": (6.0, 33.0, 4.5, 13.0),
    "knee": (6.0, 23.0, 3.5, 4.0), "leg": (6.0, 13.0, 3.5, 12.0), "ankle_foot": (6.0, 3.0, 4.0, 3.5),
}
_MIDLINE_REGIONS = {"head_neck", "chest", "abdomen", "back", "pelvis"}
_POSTERIOR_REGIONS = {"back"}


def _draw_outline(ax) -> None:
    style = {"facecolor": "#eef1f5", "edgecolor": "#6b7a8f", "lw": 1.0}
    ax.add_patch(Circle((0, 92), 5.0, **style))
    ax.add_patch(Rectangle((-2.0, 84), 4.0, 4.0, **style))
    torso = [(-12, 82), (12, 82), (11, 62), (10, 48), (12, 43), (-12, 43), (-10, 48), (-11, 62)]
    ax.add_patch(Polygon(torso, closed=True, **style))
    for s in (-1, 1):
        arm = [(s * 12, 82), (s * 16, 80), (s * 23, 44), (s * 24, 36), (s * 20.5, 36), (s * 19.5, 44), (s * 14, 64)]
        ax.add_patch(Polygon(arm, closed=True, **style))
        leg = [(s * 0.8, 43), (s * 12, 43), (s * 9, 22), (s * 8.5, 4), (s * 9.5, 0.5), (s * 3, 0.5), (s * 3.5, 4),
               (s * 2.5, 22)]
        ax.add_patch(Polygon(leg, closed=True, **style))


def _anterior_posterior(analysis, view: CanonicalView, centres) -> dict[int, bool]:
    """True where a deposit lies behind the centre of its body part's cross-section (posterior)."""
    out: dict[int, bool] = {}
    cache: dict[int, tuple[np.ndarray, list]] = {}
    step = max(1, int(np.ceil(max(view.hu.shape[1:]) / 256)))
    for lesion in analysis.lesions:
        if lesion.region in _POSTERIOR_REGIONS:
            out[lesion.lesion_id] = True
            continue
        c = centres[lesion.lesion_id]
        s = int(np.clip(round(c[0]), 0, view.hu.shape[0] - 1))
        if s not in cache:
            lab, n = ndi.label(view.hu[s, ::step, ::step] > -400)
            cache[s] = (lab, ndi.center_of_mass(np.ones_like(lab), lab, range(1, n + 1)) if n else [])
        lab, coms = cache[s]
        r, col = (int(np.clip(round(c[k] / step), 0, lab.shape[k - 1] - 1)) for k in (1, 2))
        part = lab[r, col]
        centre_r = coms[part - 1][0] * step if part > 0 else view.hu.shape[1] / 2.0
        out[lesion.lesion_id] = bool(c[1] > centre_r)
    return out


def body_map_positions(analysis, view: CanonicalView, centres) -> dict[int, tuple[int, float, float]]:
    """Where each deposit is drawn: ``lesion_id -> (panel, x, y)``.

    Panel 0 is the front view, 1 the back view (both in body-map units, x to the
    viewer's right), 2 the scan-extent panel for deposits whose region is not
    known (x, y in mm, before any height stretch).
    """
    posterior = _anterior_posterior(analysis, view, centres) if analysis.lesions else {}
    n_sl, _, n_rl = view.hu.shape
    out = {}
    for les in analysis.lesions:
        c = centres[les.lesion_id]
        if les.region not in REGION_BOXES:
            h = n_sl * view.spacing_mm[0]
            out[les.lesion_id] = (2, float(c[2] * view.spacing_mm[2]), float(h - c[0] * view.spacing_mm[0]))
            continue
        dx, cy, bw, bh = REGION_BOXES[les.region]
        if les.side == "midline" and les.region in _MIDLINE_REGIONS:
            x = (c[2] / max(n_rl - 1, 1) - 0.5) * 0.3 * bw
        else:
            x = (-1.0 if les.side == "right" else 1.0) * dx  # front view: patient's right on the viewer's left
        x += _offset(les, bw)
        y = cy + (0.5 - c[0] / max(n_sl - 1, 1)) * bh
        back = posterior.get(les.lesion_id, False)
        out[les.lesion_id] = (1, -x, y) if back else (0, x, y)  # from behind, the patient's left is on the left
    return out


def body_map(analysis, view: CanonicalView, centres) -> tuple[str, str]:
    """Front and back outline with each deposit placed by region and side, area ~ volume."""
    lesions = list(analysis.lesions)
    unknown = [les for les in lesions if les.region not in REGION_BOXES]
    positions = body_map_positions(analysis, view, centres)
    ratios = [1.0, 1.0, 1.5] if unknown else [1.0, 1.0]
    fig = Figure(figsize=(2.3 * sum(ratios) + 0.2, 4.4))
    grid = fig.add_gridspec(1, len(ratios), width_ratios=ratios)
    axes = [fig.add_subplot(grid[0, k]) for k in range(len(ratios))]
    vmax = max((les.volume_mm3 for les in lesions), default=1.0) or 1.0
    size = lambda v: 12.0 + 230.0 * v / vmax
    n_sl, _, n_rl = view.hu.shape
    for k, (ax, title) in enumerate(zip(axes[:2], ("Front", "Back"))):
        _draw_outline(ax)
        ax.set_title(title, fontsize=9)
        ax.text(-25, 97, "R" if k == 0 else "L", fontsize=8, color="#555")
        ax.text(25, 97, "L" if k == 0 else "R", fontsize=8, color="#555", ha="right")
        ax.set_xlim(-27, 27)
        ax.set_ylim(-2, 100)
        ax.set_aspect("equal")
        ax.set_axis_off()
    stretch = 1.0
    if unknown:
        ax = axes[2]
        h = n_sl * view.spacing_mm[0]
        w = n_rl * view.spacing_mm[2]
        stretch = max(1.0, 0.4 * w / max(h, 1e-6))  # why: a short scan would be a thin strip
        ax.set_title("Region not determined:\nposition in the scan, front view"
                     + (f"\n(height × {stretch:.1f})" if stretch > 1 else ""), fontsize=8)
        ax.add_patch(Rectangle((0, 0), w, h * stretch, facecolor="#f6f7f9", edgecolor="#999", lw=0.8))
        ax.text(0, h * stretch, " R", va="top", fontsize=7, color="#555")
        ax.text(w, h * stretch, "L ", va="top", ha="right", fontsize=7, color="#555")
        ax.set_xlim(-0.05 * w, 1.05 * w)
        ax.set_ylim(-0.05 * h * stretch, 1.12 * h * stretch)  # room for labels above the top
        ax.set_aspect("equal")
        ax.set_axis_off()
    numbered = _numbered(lesions)
    for les in lesions:
        panel, x, y = positions[les.lesion_id]
        _marker(axes[panel], x, y * (stretch if panel == 2 else 1.0), les, size, les.lesion_id in numbered)
    present = sorted({les.compartment for les in lesions})
    handles = [Line2D([], [], marker="o", ls="", color=COMPARTMENT_COLOURS.get(c, "#777"),
                      label=legend_label(c)) for c in present]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.9, bottom=0.12 if handles else 0.02, wspace=0.05)
    caption = ("Body map: deposits placed by body region, side and front/back, marker area proportional "
               f"to volume, colour by compartment; front view with the {RADIOLOGICAL}, back view as seen "
               "from behind (R, L mark the patient's sides)")
    if len(lesions) > MAX_NUMBERED:
        caption += f"; the {MAX_NUMBERED} largest numbered"
    return caption, to_data_uri(fig)


def legend_label(compartment: str) -> str:
    """The body map's legend entry of a compartment; vascular and visceral say they are not calcinosis."""
    return compartment.replace("_", "-") + ("" if compartment in CALCINOSIS_COMPARTMENTS else " (not calcinosis)")


def _offset(lesion, box_w: float) -> float:
    """A small deterministic spread so deposits in one region do not sit on top of each other."""
    return ((lesion.lesion_id * 0.618) % 1.0 - 0.5) * 0.8 * box_w


def _marker(ax, x: float, y: float, lesion, size, numbered: bool = True) -> None:
    colour = COMPARTMENT_COLOURS.get(lesion.compartment, "#777777")
    ax.scatter([x], [y], s=size(lesion.volume_mm3), c=colour, alpha=0.75, edgecolors="black", linewidths=0.4,
               zorder=3)
    if numbered:  # why: a hundred aortic and cardiac specks on a chest CT made one unreadable smudge of numbers
        ax.annotate(str(lesion.lesion_id), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6, zorder=4)


__all__ = ["CanonicalView", "body_map", "body_map_positions", "canonical_view", "mips", "report_figures", "thumbnails"]
