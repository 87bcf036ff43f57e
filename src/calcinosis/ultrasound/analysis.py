"""Run the deposit detector over every B-mode region of every frame and follow deposits across frames."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from calcinosis.ultrasound.config import UltrasoundConfig
from calcinosis.ultrasound.detect import MIN_VALID_PIXELS, Focus, detect_foci
from calcinosis.ultrasound.io import UltrasoundImage
from calcinosis.ultrasound.masks import FrameMasks, frame_masks, grey_of

__all__ = ["UsDeposit", "UltrasoundResult", "analyze_ultrasound", "link_tracks", "MAX_MISSED_FRAMES", "SCHEMA_VERSION"]

SCHEMA_VERSION = "1.0"
#: Share of the echo field at full white (grey 254-255) beyond which the gain is too high for a
#: deposit to stand out. Phantom (seed 4, 3 deposits): 1 % as made, 5 % at +60 grey levels; its
#: grey levels times 1.25: 4 %, 3 found; times 1.5: 9 %, 2 found; times 2: 28 %, none.
MAX_SATURATED_SHARE = 0.08
#: Grey level the brightest echoes (99th percentile of the echo field) must reach. The same
#: phantom reaches 254; its grey levels divided by 3: 84, 3 found; by 4: 63, 2 found; by 6: 42,
#: none (the shadow test needs 20 grey levels beside a deposit, ``min_beside_level``).
MIN_BRIGHT_ECHO = 64


@dataclass(frozen=True)
class UsDeposit:
    """One deposit seen on one frame.

    Image positions ``x_px`` (column) and ``y_px`` (row) are on the whole screen; ``x_mm`` and
    ``y_mm`` are measured from the top-left pixel of the B-mode region (``y_mm`` = depth below
    the transducer face). Lengths in mm are ``None`` where the image has no physical scale;
    the ``*_px`` lengths are always given (rows for depth and thickness, columns for width).
    ``shadow_ratio`` is the mean grey beneath the focus over that beside it (1 = no shadow);
    ``shadow_strength`` is ``1 - shadow_ratio``. ``track_id`` is shared by the detections of
    one deposit on consecutive frames.
    """

    deposit_id: int
    frame: int
    track_id: int
    region: int
    x_px: float
    y_px: float
    x_mm: float | None
    y_mm: float | None
    depth_mm: float | None
    width_mm: float | None
    thickness_mm: float | None
    depth_px: float
    width_px: float
    thickness_px: float
    shadow_ratio: float
    shadow_strength: float
    confidence: float
    bbox: tuple[int, int, int, int]  # row0, col0, row1, col1 on the screen, inclusive
    mask_rows: np.ndarray = field(repr=False, compare=False)
    mask_cols: np.ndarray = field(repr=False, compare=False)
    hidden_share: float = 0.0  # share of the outline under burned-in marks (calipers), not drawn


@dataclass(frozen=True)
class UltrasoundResult:
    """Everything one analysis found, with the image it was found on (for the overlay)."""

    image: UltrasoundImage = field(repr=False, compare=False)
    deposits: tuple[UsDeposit, ...]
    config: UltrasoundConfig
    warnings: tuple[str, ...]
    skin_lines: tuple[tuple[int, int, np.ndarray, np.ndarray], ...] = field(repr=False, compare=False)
    frame0_masks: FrameMasks | None = field(default=None, repr=False, compare=False)

    @property
    def n_tracks(self) -> int:
        return len({d.track_id for d in self.deposits})

    @property
    def has_physical_scale(self) -> bool:
        return self.image.has_physical_scale


def analyze_ultrasound(image: UltrasoundImage, config: UltrasoundConfig | None = None) -> UltrasoundResult:
    """Find and measure calcified deposits on every frame of ``image``.

    Each declared B-mode region is analysed on its own (its own skin line and scale); the
    annotation masks of :func:`~calcinosis.ultrasound.masks.frame_masks` keep text, graphics
    and colour out. Multi-frame input is linked into tracks with :func:`link_tracks`.
    """
    config = config or UltrasoundConfig()
    warnings = list(image.warnings)
    per_frame: list[list[UsDeposit]] = []
    skin_lines = []
    masks0 = None
    blank_frames = []
    for f in range(image.n_frames):
        masks = frame_masks(image, f)
        if not any(masks.valid[r.slices()].sum() >= MIN_VALID_PIXELS for r in image.tissue_regions):
            blank_frames.append(f)
        if f == 0:
            masks0 = masks
        grey = grey_of(image.rgb[f])
        found: list[UsDeposit] = []
        for ri, region in enumerate(image.tissue_regions):
            sl = region.slices()
            scaled = region.row_mm is not None
            row_mm = region.row_mm if scaled else config.nominal_pixel_mm
            col_mm = region.col_mm if scaled else config.nominal_pixel_mm
            foci, skin = detect_foci(grey[sl], masks.valid[sl], row_mm, col_mm, config, masks.border[sl])
            if f == 0:
                skin_lines.append((f, ri, np.arange(region.x0, region.x1 + 1), skin + region.y0))
            found.extend(_to_deposit(fc, f, ri, region.x0, region.y0, row_mm, col_mm, scaled) for fc in foci)
        found.sort(key=lambda d: (d.y_px, d.x_px))
        per_frame.append(found)
    if masks0 is not None and len(blank_frames) < image.n_frames and masks0.valid.sum() >= MIN_VALID_PIXELS:
        field_grey = grey_of(image.rgb[0])[masks0.valid]
        saturated = float(np.mean(field_grey >= 254))
        if saturated > MAX_SATURATED_SHARE:
            warnings.append(f"{saturated:.0%} of the echo field is at full white: the gain is too high for a "
                            "deposit to stand out, so deposits may be missed; use an image taken with lower gain")
        brightest = float(np.percentile(field_grey, 99))
        if brightest < MIN_BRIGHT_ECHO:
            warnings.append(f"the echo field is dark (its brightest echoes reach grey level {brightest:.0f} of 255): "
                            "shadows cannot be judged, so deposits may be missed; use an image taken with higher gain")
    # A blank, one-grey or tiny image gave "0 deposit(s)" and no word that nothing was searched.
    if len(blank_frames) == image.n_frames:
        warnings.append("nothing was analysed: no echo field (the image is blank, of one grey level, or too "
                        "small) on any frame; 0 deposits here does not mean that there are none")
    elif blank_frames:
        warnings.append(f"frame(s) {', '.join(map(str, blank_frames))} (numbered from 0) hold no echo field "
                        "(blank or of one grey level): not analysed")
    if not any(r.row_mm is not None for r in image.tissue_regions):
        warnings.append(f"filter sizes assume {config.nominal_pixel_mm} mm pixels because the image has no physical scale")
    deposits = link_tracks(per_frame, config.max_track_gap_mm / config.nominal_pixel_mm
                           if not image.has_physical_scale else None, config)
    under_marks = [d.deposit_id for d in deposits if d.hidden_share > 0]
    if under_marks:
        warnings.append(f"deposit(s) {', '.join(map(str, under_marks))} lie partly under burned-in marks "
                        "(calipers, text): the hidden part is estimated from the echoes around it, so "
                        "width and thickness may read short; an image without calipers measures better")
    return UltrasoundResult(image=image, deposits=tuple(deposits), config=config, warnings=tuple(warnings),
                            skin_lines=tuple(skin_lines), frame0_masks=masks0)


def _to_deposit(fc: Focus, frame: int, region: int, x0: int, y0: int, row_mm: float, col_mm: float,
                scaled: bool) -> UsDeposit:
    width_px = fc.width_mm / col_mm
    thickness_px = fc.thickness_mm / row_mm
    depth_px = fc.depth_mm / row_mm
    r0, c0, r1, c1 = fc.bbox
    return UsDeposit(
        deposit_id=0, frame=frame, track_id=0, region=region,
        x_px=round(fc.col + x0, 2), y_px=round(fc.row + y0, 2),
        x_mm=round(fc.col * col_mm, 2) if scaled else None,
        y_mm=round(fc.row * row_mm, 2) if scaled else None,
        depth_mm=round(fc.depth_mm, 2) if scaled else None,
        width_mm=round(fc.width_mm, 2) if scaled else None,
        thickness_mm=round(fc.thickness_mm, 2) if scaled else None,
        depth_px=round(depth_px, 1), width_px=round(width_px, 1), thickness_px=round(thickness_px, 1),
        shadow_ratio=round(fc.shadow_ratio, 3), shadow_strength=round(1.0 - fc.shadow_ratio, 3),
        confidence=fc.confidence, bbox=(r0 + y0, c0 + x0, r1 + y0, c1 + x0),
        mask_rows=fc.mask_rows + y0, mask_cols=fc.mask_cols + x0, hidden_share=fc.hidden_share)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


#: Frames in a row on which a deposit may go unseen and still keep its track: one frame blurred by
#: a probe movement or lost to speckle split every deposit in two (a 5-frame cine of 3 deposits
#: whose middle frame showed none counted 6).
MAX_MISSED_FRAMES = 2


def link_tracks(per_frame: list[list[UsDeposit]], max_gap_px: float | None,
                config: UltrasoundConfig) -> list[UsDeposit]:
    """Number deposits and give detections of one deposit on nearby frames one track id.

    A detection is linked to a track of the same region last seen up to
    :data:`MAX_MISSED_FRAMES` + 1 frames before when their outlines' boxes overlap or their
    centres lie within ``config.max_track_gap_mm`` per frame between them (``max_gap_px``
    pixels when the image has no scale); pairs are taken closest first, one-to-one.
    """
    out: list[UsDeposit] = []
    next_track = 1
    last_seen: dict[int, tuple[int, UsDeposit]] = {}  # track -> (frame, its latest detection)
    for f, frame in enumerate(per_frame):
        assigned: dict[int, int] = {}
        pairs = []
        for i, d in enumerate(frame):
            for track, (seen_at, p) in last_seen.items():
                apart = f - seen_at
                if p.region != d.region or apart > MAX_MISSED_FRAMES + 1:
                    continue
                if d.x_mm is not None and p.x_mm is not None and max_gap_px is None:
                    dist = float(np.hypot(d.x_mm - p.x_mm, d.y_mm - p.y_mm))
                    near = dist <= config.max_track_gap_mm * apart
                else:
                    dist = float(np.hypot(d.x_px - p.x_px, d.y_px - p.y_px))
                    near = max_gap_px is not None and dist <= max_gap_px * apart
                if near or _overlap(d.bbox, p.bbox):
                    pairs.append((apart, dist, i, track))
        used_tracks: set[int] = set()
        for _, _, i, track in sorted(pairs):  # the latest, then the closest, first
            if i in assigned or track in used_tracks:
                continue
            assigned[i] = track
            used_tracks.add(track)
        current = []
        for i, d in enumerate(frame):
            track = assigned.get(i)
            if track is None:
                track, next_track = next_track, next_track + 1
            current.append(dataclasses.replace(d, track_id=track, deposit_id=len(out) + len(current) + 1))
        out.extend(current)
        last_seen.update({d.track_id: (f, d) for d in current})
    return out
