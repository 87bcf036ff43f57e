"""Synthetic B-mode ultrasound images of skin, fat, fascia, muscle and bone with calcified deposits.

The image is formed the way a scanner forms one, in a simplified way: an echogenicity map
of the tissue layers is multiplied by spatially correlated Rayleigh speckle (the envelope of
a complex Gaussian field blurred by an anisotropic point-spread function), deposits multiply
everything beneath them by ``1 - shadow_strength`` (the acoustic shadow), and the envelope is
log-compressed to 8-bit grey levels. The ground truth of every deposit (position, depth from
the skin surface, width, thickness, shadow strength) and the rows of the skin line, the
fascia and the bone cortex are known exactly.

Conventions: arrays are ``[row, column]`` = ``[depth, lateral]``; row 0 is the transducer
face; ``pixel_mm`` is the same along both axes; positions in mm are measured from the
top-left pixel centre.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "UsPhantom",
    "UsPhantomDeposit",
    "make_us_phantom",
    "make_us_cine_phantom",
    "write_us_dicom",
]

_DYNAMIC_RANGE_DB = 40.0
_ECHO_REF = 1.6  # echogenicity that maps to grey level 255


@dataclass(frozen=True)
class UsPhantomDeposit:
    """Ground truth of one deposit.

    ``x_px``/``y_px`` are the centre (column, row); ``depth_mm`` runs from the skin surface
    (upper edge of the skin line) to the deposit's superficial edge, straight down the beam;
    ``width_mm`` is the lateral extent and ``thickness_mm`` the axial extent.
    """

    deposit_id: int
    x_px: float
    y_px: float
    x_mm: float
    y_mm: float
    depth_mm: float
    width_mm: float
    thickness_mm: float
    shadow_strength: float


@dataclass(frozen=True)
class UsPhantom:
    """A phantom B-mode image (or cine loop) and its ground truth.

    ``image`` is uint8 ``[rows, cols]`` (single frame) or ``[frames, rows, cols]``; the
    ``*_row`` arrays give, per column, the row of the upper edge of that interface in the
    first frame; ``shift_px_per_frame`` is the lateral motion of the anatomy between frames.
    """

    image: np.ndarray
    pixel_mm: float
    deposits: tuple[UsPhantomDeposit, ...]
    skin_row: np.ndarray
    fascia_row: np.ndarray
    bone_row: np.ndarray
    shift_px_per_frame: int = 0


def _smooth_profile(rng: np.random.Generator, n: int, base: float, amp: float, scale: float) -> np.ndarray:
    """A slowly varying row profile (pixels) across ``n`` columns."""
    x = np.arange(n) / max(n - 1, 1)
    phase = rng.uniform(0, 2 * np.pi, 2)
    return base + amp * (np.sin(2 * np.pi * x * scale + phase[0]) + 0.4 * np.sin(2 * np.pi * x * 2.3 * scale + phase[1]))


def _draw_band(echo: np.ndarray, top: np.ndarray, thickness_px: float, value: float) -> None:
    rows = np.arange(echo.shape[0])[:, None]
    inside = (rows >= top[None, :]) & (rows < top[None, :] + thickness_px)
    echo[inside] = value


def _draw_segment(echo: np.ndarray, r0: float, c0: float, length: float, angle: float, thick: float, value: float) -> None:
    n = int(max(length, 2) * 2)
    t = np.linspace(-length / 2, length / 2, n)
    rr = r0 + t * np.sin(angle)
    cc = c0 + t * np.cos(angle)
    for dr in np.arange(-thick / 2, thick / 2 + 1e-6, 0.5):
        r = np.round(rr + dr).astype(int)
        c = np.round(cc).astype(int)
        ok = (r >= 0) & (r < echo.shape[0]) & (c >= 0) & (c < echo.shape[1])
        echo[r[ok], c[ok]] = np.maximum(echo[r[ok], c[ok]], value)


def _anatomy(rng: np.random.Generator, rows: int, cols: int, pixel_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Echogenicity map, shadow factor from the bone, and the skin/fascia/bone rows."""
    mm = 1.0 / pixel_mm
    echo = np.full((rows, cols), 0.004, dtype=np.float64)  # coupling gel: anechoic
    skin = _smooth_profile(rng, cols, 1.0 * mm, 0.25 * mm, 0.6)
    fascia = skin + _smooth_profile(rng, cols, rng.uniform(11, 14) * mm, 0.8 * mm, 0.8)
    bone = _smooth_profile(rng, cols, rng.uniform(0.78, 0.85) * rows, 2.0 * mm, 0.4)
    r = np.arange(rows)[:, None]
    # Layers from deep to superficial so that each overwrites what lies below it.
    echo[r >= skin[None, :]] = 0.30  # dermis
    echo[r >= skin[None, :] + 1.8 * mm] = 0.06  # subcutaneous fat
    muscle = r >= fascia[None, :]
    echo[muscle] = 0.15
    # Muscle fibres: thin, nearly horizontal bright striations.
    for _ in range(int(cols * pixel_mm * 1.2)):
        rr = rng.uniform(fascia.min() + 1 * mm, rows)
        _draw_segment(echo, rr, rng.uniform(0, cols), rng.uniform(4, 12) * mm,
                      rng.normal(0, 0.08), 0.3 * mm, rng.uniform(0.25, 0.35))
    echo[~muscle & (r >= skin[None, :] + 1.8 * mm)] = 0.06
    # Fat septa: short thin oblique bright lines in the fat.
    for _ in range(int(cols * pixel_mm / 5)):
        c = rng.uniform(0, cols)
        top = skin[int(min(c, cols - 1))] + 2.5 * mm
        bottom = fascia[int(min(c, cols - 1))] - 1.0 * mm
        if bottom > top:
            _draw_segment(echo, rng.uniform(top, bottom), c, rng.uniform(3, 9) * mm,
                          rng.normal(0, 0.35), 0.25 * mm, rng.uniform(0.3, 0.45))
    _draw_band(echo, skin, 0.4 * mm, 0.8)  # entry echo of the skin
    _draw_band(echo, fascia, 0.5 * mm, 0.7)
    _draw_band(echo, bone, 1.2 * mm, 1.5)  # bone cortex
    shadow = np.ones((rows, cols))
    shadow[r >= bone[None, :] + 1.2 * mm] = 0.06  # the cortex reflects nearly everything
    return echo, shadow, skin, fascia, bone


def _place_deposits(rng, n, widths_mm, strengths, skin, fascia, bone, cols, pixel_mm, depths_mm=None):
    """One deposit per lateral slot (in random order), so that no shadow falls on another.

    ``depths_mm``: each deposit's superficial edge this far under the skin surface (default:
    at random between 2.5 mm under the skin and 5 mm under the fascia).
    """
    mm = 1.0 / pixel_mm
    placed: list[tuple[float, float, float, float, float]] = []  # (c, r_top, w, t, s)
    lo_all, hi_all = 4 * mm, cols - 4 * mm
    slot = (hi_all - lo_all) / max(n, 1)
    order = rng.permutation(n)
    for i in range(n):
        w = float(widths_mm[i])
        t = float(np.clip(w * rng.uniform(0.35, 0.65), 1.0, 4.0))
        s_lo = lo_all + order[i] * slot + w * mm / 2 + 2.5 * mm
        s_hi = lo_all + (order[i] + 1) * slot - w * mm / 2 - 2.5 * mm
        if s_hi < s_lo:
            raise ValueError("phantom too narrow for the requested deposits; pass fewer n_deposits or a larger width_mm")
        c = rng.uniform(s_lo, s_hi)
        ci = int(c)
        lo = skin[ci] + 2.5 * mm
        hi = min(fascia[ci] + 5 * mm, bone[ci] - 9 * mm - t * mm)
        r_top = rng.uniform(lo, max(hi, lo + 1))
        if depths_mm is not None:
            r_top = skin[ci] + float(depths_mm[i]) * mm
        placed.append((c, r_top, w, t, float(strengths[i])))
    return placed


def make_us_phantom(
    seed: int = 0,
    n_deposits: int = 4,
    widths_mm: Sequence[float] | None = None,
    shadow_strengths: Sequence[float] | None = None,
    pixel_mm: float = 0.1,
    depth_mm: float = 40.0,
    width_mm: float = 60.0,
    n_frames: int = 1,
    shift_mm_per_frame: float = 0.0,
    depths_mm: Sequence[float] | None = None,
) -> UsPhantom:
    """Make a B-mode phantom with ``n_deposits`` calcified deposits of known size and depth.

    Parameters
    ----------
    seed : int
        Random seed; the same arguments give the same image, byte for byte.
    n_deposits : int
        Number of deposits, placed laterally apart so their shadows do not overlap.
    widths_mm : sequence of float, optional
        Lateral width of each deposit in mm (default: uniform in 1.5-8 mm).
    shadow_strengths : sequence of float, optional
        Fraction (0-1) of echo amplitude removed beneath each deposit (default 0.45-0.9).
    pixel_mm : float
        Pixel size in mm, both axes.
    depth_mm, width_mm : float
        Field of view in mm (rows = depth).
    n_frames : int
        Frames of a cine loop; the anatomy moves ``shift_mm_per_frame`` sideways per frame
        and the speckle is new in every frame.
    depths_mm : sequence of float, optional
        Depth of each deposit's superficial edge under the skin surface, mm (default: at
        random, 2.5 mm under the skin to 5 mm under the fascia); under 1.8 mm is in the dermis.

    Returns
    -------
    UsPhantom
        Ground truth refers to the first frame.
    """
    if pixel_mm <= 0 or depth_mm <= 10 or width_mm <= 10:
        raise ValueError("pixel_mm must be > 0 and the field of view at least 10 x 10 mm")
    if n_frames < 1:
        raise ValueError("n_frames must be >= 1")
    rng = np.random.default_rng(seed)
    rows, cols = int(round(depth_mm / pixel_mm)), int(round(width_mm / pixel_mm))
    shift_px = int(round(shift_mm_per_frame / pixel_mm))
    pad = abs(shift_px) * (n_frames - 1)
    wide = cols + pad
    echo, bone_shadow, skin, fascia, bone = _anatomy(rng, rows, wide, pixel_mm)
    widths = np.asarray(widths_mm if widths_mm is not None else rng.uniform(1.5, 8.0, n_deposits), float)
    strengths = np.asarray(shadow_strengths if shadow_strengths is not None else rng.uniform(0.45, 0.9, n_deposits), float)
    if len(widths) != n_deposits or len(strengths) != n_deposits:
        raise ValueError("widths_mm and shadow_strengths must have n_deposits entries")
    if np.any(widths <= 0) or np.any((strengths < 0) | (strengths > 1)):
        raise ValueError("widths_mm must be > 0 and shadow_strengths within [0, 1]")
    if depths_mm is not None and (len(depths_mm) != n_deposits or min(depths_mm, default=0) < 0):
        raise ValueError("depths_mm must have n_deposits entries, none negative")
    off0 = pad if shift_px > 0 else 0  # first column of frame 0 in the wide anatomy
    window = slice(off0, off0 + cols)
    placed = _place_deposits(rng, n_deposits, widths, strengths, skin[window], fascia[window], bone[window], cols, pixel_mm,
                             depths_mm)
    placed = [(c0 + off0, r_top, w, t, s) for c0, r_top, w, t, s in placed]
    mm = 1.0 / pixel_mm
    r, c = np.mgrid[0:rows, 0:wide]
    shadow = bone_shadow.copy()
    truth = []
    for k, (c0, r_top, w, t, s) in enumerate(placed, start=1):
        a, b = w * mm / 2, t * mm / 2
        rc = r_top + b
        inside = ((c - c0) / a) ** 2 + ((r - rc) / b) ** 2 <= 1.0
        echo[inside] = rng.uniform(1.3, 1.6)
        # Shadow: everything beneath the deposit, across (nearly) its full width.
        below = (np.abs(c - c0) <= a * 0.95) & (r > rc + b * 0.3) & ~inside
        shadow[below] *= 1.0 - s
        ci = int(c0)
        x0 = c0 - off0
        truth.append(UsPhantomDeposit(
            deposit_id=k, x_px=float(x0), y_px=float(rc), x_mm=float(x0 * pixel_mm), y_mm=float(rc * pixel_mm),
            depth_mm=float((r_top - skin[ci]) * pixel_mm), width_mm=float(w), thickness_mm=float(t),
            shadow_strength=float(s)))
    frames = []
    for f in range(n_frames):
        off = pad - f * shift_px if shift_px > 0 else -f * shift_px
        e = echo[:, off:off + cols]
        sh = shadow[:, off:off + cols]
        frames.append(_form_image(rng, e, sh, pixel_mm))
    image = frames[0] if n_frames == 1 else np.stack(frames)
    return UsPhantom(image=image, pixel_mm=pixel_mm, deposits=tuple(truth), skin_row=skin[window].copy(),
                     fascia_row=fascia[window].copy(), bone_row=bone[window].copy(), shift_px_per_frame=shift_px)


def make_us_cine_phantom(seed: int = 0, n_frames: int = 4, shift_mm_per_frame: float = 0.5, **kwargs) -> UsPhantom:
    """A cine loop: the same anatomy sliding sideways by ``shift_mm_per_frame`` per frame."""
    return make_us_phantom(seed=seed, n_frames=n_frames, shift_mm_per_frame=shift_mm_per_frame, **kwargs)


def _form_image(rng: np.random.Generator, echo: np.ndarray, shadow: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Speckle, point-spread function and log compression to uint8."""
    sigma = (0.12 / pixel_mm, 0.3 / pixel_mm)  # axial resolution is finer than lateral
    field = rng.standard_normal(echo.shape) + 1j * rng.standard_normal(echo.shape)
    field = ndi.gaussian_filter(field.real, sigma) + 1j * ndi.gaussian_filter(field.imag, sigma)
    speckle = np.abs(field)
    speckle /= np.sqrt(np.mean(speckle**2))
    amplitude = ndi.gaussian_filter(echo, sigma) * shadow * speckle
    amplitude += 0.003 * np.abs(rng.standard_normal(echo.shape))  # electronic noise floor
    db = 20 * np.log10(np.maximum(amplitude, 1e-6) / _ECHO_REF)
    grey = (db + _DYNAMIC_RANGE_DB) / _DYNAMIC_RANGE_DB * 255.0
    return np.clip(np.round(grey), 0, 255).astype(np.uint8)


def write_us_dicom(
    path: str | os.PathLike[str],
    image: np.ndarray,
    pixel_mm: float | None,
    photometric: str = "MONOCHROME2",
    seed: int = 0,
) -> None:
    """Write a phantom image as a DICOM Ultrasound Image (or Multi-frame) file.

    ``image`` is uint8 ``[rows, cols]`` or ``[frames, rows, cols]``. ``photometric`` is
    ``MONOCHROME2``, ``RGB`` or ``PALETTE COLOR`` (a grey palette). When ``pixel_mm`` is
    given a single B-mode region covering the image is declared in the Sequence of
    Ultrasound Regions (PhysicalDelta in cm, as the standard has it).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    image = np.asarray(image, dtype=np.uint8)
    multi = image.ndim == 3
    rows, cols = image.shape[-2:]
    meta = FileMetaDataset()
    sop_class = "1.2.840.10008.5.1.4.1.1.3.1" if multi else "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPClassUID = sop_class
    uid_rng = np.random.default_rng(seed)
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(seed), "sop"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[str(seed), "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(seed), "series"])
    ds.Modality = "US"
    ds.PatientName = "Phantom^Ultrasound"
    ds.PatientID = f"US-PHANTOM-{int(uid_rng.integers(1e6))}"
    ds.Manufacturer = "calcinosis phantom"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if multi:
        ds.NumberOfFrames = image.shape[0]
    if photometric == "RGB":
        data = np.repeat(image[..., None], 3, axis=-1)
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    elif photometric in ("MONOCHROME2", "PALETTE COLOR"):
        data = image
        ds.SamplesPerPixel = 1
        if photometric == "PALETTE COLOR":
            lut = (np.arange(256, dtype=np.uint16) * 257).tobytes()
            for colour in ("Red", "Green", "Blue"):
                setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
                setattr(ds, f"{colour}PaletteColorLookupTableData", lut)
    else:
        raise ValueError(f"photometric must be MONOCHROME2, RGB or PALETTE COLOR, not {photometric!r}")
    ds.PhotometricInterpretation = photometric
    if pixel_mm is not None:
        region = Dataset()
        region.RegionSpatialFormat = 1
        region.RegionDataType = 1
        region.RegionFlags = 0
        region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
        region.RegionLocationMaxX1, region.RegionLocationMaxY1 = cols - 1, rows - 1
        region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3
        region.PhysicalDeltaX = region.PhysicalDeltaY = pixel_mm / 10.0
        ds.SequenceOfUltrasoundRegions = [region]
    ds.PixelData = np.ascontiguousarray(data).tobytes()
    ds.save_as(path, enforce_file_format=True)
