"""Read ultrasound images: DICOM US (single/multi-frame; grey, palette, RGB, YBR) and PNG/JPEG.

Every input becomes an :class:`UltrasoundImage`: RGB frames ``[frame, row, col, 3]`` (uint8),
the B-mode regions to analyse with their pixel size in mm, the regions that must never be
analysed (Doppler, colour bars, traces), a short description and warnings.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calcinosis.errors import InputError
from calcinosis.paths import check_regular_file
from calcinosis.radiograph.bitmap import load_frame, open_image, short

__all__ = ["UltrasoundImage", "UsRegion", "read_ultrasound", "RegionDataType"]

log = logging.getLogger(__name__)

_PNG_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
#: An ultrasound pixel (mm), from (inclusive) to (exclusive): outside it a scale is a header's
#: wrong units or a placeholder (the analysis's millimetre-sized kernels would span millions
#: of such pixels).
PIXEL_MM_RANGE = (0.01, 10.0)
#: Most pixels one frame of a PNG/JPEG/TIFF or DICOM may have: an 8K screen capture has 33 million,
#: scanners' frames are under 2 million; a larger size is a corrupt or hostile header.
MAX_FRAME_PIXELS = 40_000_000
#: Pillow modes that hold more than 8 bits of grey; they are scaled to 8 bits, not clipped.
_WIDE_GREY_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
#: Full scale of a 16-bit grey sample, and its ratio to an 8-bit one (65535 / 255).
_UINT16_TOP, _UINT16_PER_UINT8 = 65535, 257
_GIVE = "the path of a DICOM US, PNG or JPEG image"
_EXIF_ORIENTATION = 0x0112  # EXIF/TIFF tag: how the stored pixels are turned for display
#: Volume formats the CT command reads: named as such, not as "neither DICOM nor PNG".
_VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


class RegionDataType:
    """DICOM RegionDataType (0018,6014) values this package cares about."""

    TISSUE = 1  # B-mode
    COLOR_FLOW = 2


@dataclass(frozen=True)
class UsRegion:
    """A rectangle of the image (inclusive pixel bounds, x = column, y = row).

    ``row_mm``/``col_mm`` are the pixel size in mm, or ``None`` when the image carries no
    physical scale; ``data_type`` is the DICOM RegionDataType (1 = tissue/B-mode).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    data_type: int
    row_mm: float | None
    col_mm: float | None

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1 + 1), slice(self.x0, self.x1 + 1)


@dataclass(frozen=True)
class UltrasoundImage:
    """An ultrasound image ready for analysis.

    ``rgb`` is uint8 ``[frames, rows, cols, 3]``; ``description`` is what summary.json tells
    of the input (never the file's name nor a patient identifier); ``tissue_regions`` are the B-mode regions
    to analyse (``declared_regions`` says whether they come from the file or cover the whole
    image by default); ``excluded_regions`` are declared non-B-mode regions.
    """

    rgb: np.ndarray
    tissue_regions: tuple[UsRegion, ...]
    excluded_regions: tuple[UsRegion, ...]
    declared_regions: bool
    description: dict
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_frames(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def has_physical_scale(self) -> bool:
        return all(r.row_mm is not None for r in self.tissue_regions)


def read_ultrasound(path: str | os.PathLike[str], pixel_spacing_mm: float | None = None) -> UltrasoundImage:
    """Read a DICOM US file or a PNG/JPEG screenshot.

    Parameters
    ----------
    path : path-like
        The image file; DICOM is recognised by content, PNG/JPEG by suffix or content.
    pixel_spacing_mm : float, optional
        Pixel size in mm for PNG/JPEG (and for DICOM without ultrasound regions); ignored,
        with a warning, when the DICOM file declares its own physical scale.

    Raises
    ------
    InputError
        The file is missing, unreadable, truncated, or not an ultrasound image.
    """
    p = Path(path)
    if check_regular_file(p, "image", f"give {_GIVE}") == 0:
        raise InputError(f"{p}: the file is empty; give {_GIVE}")
    if pixel_spacing_mm is not None and not _plausible(pixel_spacing_mm):
        raise InputError(f"--pixel-spacing {pixel_spacing_mm:g}: must be a pixel size in mm between "
                         f"{PIXEL_MM_RANGE[0]:g} and {PIXEL_MM_RANGE[1]:g}")
    name = p.name.lower()
    if name.endswith(_VOLUME_SUFFIXES):
        raise InputError(f"{p}: a 3-D volume file, not an ultrasound image; for CT use `calcinosis analyze`, "
                         f"here give {_GIVE}")
    with p.open("rb") as fh:
        head = fh.read(132)
    if head[128:132] == b"DICM" or p.suffix.lower() in {".dcm", ".dicom"}:
        return _read_dicom(p, pixel_spacing_mm)
    if p.suffix.lower() in _PNG_SUFFIXES or head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff":
        return _read_bitmap(p, pixel_spacing_mm)
    return _read_dicom(p, pixel_spacing_mm)  # DICOM without preamble, or a clear error


def _plausible(mm: float) -> bool:
    return bool(np.isfinite(mm)) and PIXEL_MM_RANGE[0] <= mm < PIXEL_MM_RANGE[1]


def _default_region(rows: int, cols: int, pixel_mm: float | None, col_mm: float | None = None) -> UsRegion:
    """The whole image as one B-mode region; ``col_mm`` defaults to ``pixel_mm`` (square pixels)."""
    return UsRegion(0, 0, cols - 1, rows - 1, RegionDataType.TISSUE, pixel_mm,
                    pixel_mm if col_mm is None else col_mm)


def _read_bitmap(p: Path, pixel_spacing_mm: float | None) -> UltrasoundImage:
    with open_image(p, max_pixels=MAX_FRAME_PIXELS, what="ultrasound frame") as im:
        first, frames = im.size, []
        for i in range(getattr(im, "n_frames", 1)):
            try:
                im.seek(i)
            except (EOFError, OSError, ValueError) as exc:
                raise InputError(f"{p}: page {i + 1} cannot be read, the file may be truncated ({short(exc)})") from None
            if im.size != first:  # also keeps every page under the size limit checked on page 1
                raise InputError(f"{p}: page {i + 1} is {im.size[0]} x {im.size[1]} pixels and page 1 "
                                 f"{first[0]} x {first[1]}: a cine loop's frames are all one size; give one "
                                 "image, or frames of one size")
            load_frame(p, im)
            frames.append(_frame_rgb(p, _upright(im)))
    rgb = np.stack(frames)
    rows, cols = rgb.shape[1:3]
    warnings = []
    if pixel_spacing_mm is None:
        warnings.append("no pixel size given (--pixel-spacing MM): positions and sizes are in pixels only")
    # No file name: it can hold the patient's name (as the CT summary, which keeps it only on
    # request), and summary.json and report.html are made to be shared.
    desc = {"format": p.suffix.lower().lstrip(".") or "bitmap", "modality": "US",
            "rows": int(rows), "columns": int(cols), "frames": int(rgb.shape[0]),
            "pixel_spacing_mm": pixel_spacing_mm, "scale_source": "--pixel-spacing" if pixel_spacing_mm else None}
    return UltrasoundImage(rgb=rgb, tissue_regions=(_default_region(rows, cols, pixel_spacing_mm),),
                           excluded_regions=(), declared_regions=False, description=desc, warnings=tuple(warnings))


def _upright(im):
    """The frame as a viewer shows it: turned by its EXIF orientation (a photo or capture of
    the screen stored sideways or upside down, with the turn in its header). Read as stored,
    a JPEG turned 180 degrees gave 0 of 3 deposits (the shadows fell upwards)."""
    from PIL import ImageOps

    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: the pixels as stored
        return im
    return ImageOps.exif_transpose(im) if orientation not in (None, 1) else im


def _frame_rgb(p: Path, im) -> np.ndarray:
    """One Pillow frame as uint8 RGB. Grey of more than 8 bits is scaled to 8 bits (Pillow's
    RGB conversion clips it at 255, which turns a 16-bit image white): 16-bit modes by their
    full scale; 32-bit integer or float grey by the 8- or 16-bit range its values fit in, and
    float grey of 0-1 by that range."""
    if im.mode not in _WIDE_GREY_MODES:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    grey = np.asarray(im, dtype=np.float64)
    if not np.isfinite(grey).all():
        raise InputError(f"{p}: pixel values that are NaN or infinite; give an image of finite values")
    low, high = float(grey.min()), float(grey.max())
    if low < 0 or high > _UINT16_TOP:
        raise InputError(f"{p}: grey values from {low:g} to {high:g} are not 8- or 16-bit image values; "
                         "save the image as 8- or 16-bit greyscale or as RGB")
    if im.mode.startswith("I;16") or high > 255:
        grey = grey / _UINT16_PER_UINT8
    elif im.mode == "F" and high <= 1.0:
        # A float image on 0-1 (as image-processing tools save one) was rounded to 0 and 1:
        # black, "nothing was analysed". A float image of 0-255 values all under 1 is black anyway.
        grey = grey * 255.0
    return np.repeat(np.round(grey).astype(np.uint8)[..., None], 3, axis=-1)


def _read_dicom(p: Path, pixel_spacing_mm: float | None) -> UltrasoundImage:
    """:func:`_read_dicom_file` with pydicom's remarks held back: it logged and warned of each
    malformed value (NumberOfFrames '1.5': four lines on stderr, two with its source code),
    before the one-line error or the analysis. They become one warning of the result."""
    import dataclasses

    from calcinosis.io.dicom_scan import quiet_pydicom

    with quiet_pydicom() as caught:
        image = _read_dicom_file(p, pixel_spacing_mm)
    remarks = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    if not remarks:
        return image
    first = remarks[0].split(". Please see")[0][:100]
    return dataclasses.replace(image, warnings=(*image.warnings, f"the DICOM file holds {len(remarks)} malformed "
                                                f"value(s), read as pydicom repairs them (first: {first})"))


def _read_dicom_file(p: Path, pixel_spacing_mm: float | None) -> UltrasoundImage:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(p)
    except InvalidDicomError:
        # pydicom's own words ("... Use force=True to force reading") name its API, not the fix.
        raise InputError(f"{p}: neither a DICOM file (no DICOM header) nor a PNG or JPEG image; give {_GIVE}") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{p}: not a readable DICOM file ({' '.join(str(exc).split())[:120]}); give {_GIVE}") from None
    modality = str(ds.get("Modality", "")).upper()
    if not modality and "PixelData" not in ds:
        raise InputError(f"{p}: the DICOM header holds neither Modality nor pixel data: the file is truncated "
                         "or not an image; give a complete DICOM ultrasound (Modality US) image")
    if modality != "US":
        what = f"a {modality} image" if modality else "not marked as ultrasound (no Modality US)"
        hint = "use `calcinosis analyze` for CT" if modality == "CT" else "give a DICOM ultrasound (Modality US) image"
        raise InputError(f"{p}: {what}, not ultrasound; {hint}")
    if "PixelData" not in ds:
        raise InputError(f"{p}: DICOM file without pixel data; give an ultrasound image")
    try:  # before decoding: the bitmaps' limit holds for DICOM frames too
        size = int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError):
        size = 0  # left to the decoder, which names the damage
    if size > MAX_FRAME_PIXELS:
        raise InputError(f"{p}: frames of {ds.Columns} x {ds.Rows} pixels are more than "
                         f"{MAX_FRAME_PIXELS / 1e6:g} million pixels, more than any ultrasound frame has "
                         "(the header may be corrupt)")
    rgb = _dicom_rgb(p, ds)
    rows, cols = rgb.shape[1:3]
    tissue, excluded, warnings = _dicom_regions(ds, rows, cols)
    declared = bool(tissue)
    scale_source = "SequenceOfUltrasoundRegions" if declared and tissue[0].row_mm is not None else None
    if declared and tissue[0].row_mm is not None and pixel_spacing_mm is not None:
        warnings.append("--pixel-spacing ignored: the file declares its physical scale in its ultrasound regions")
    if not declared:
        mm = col_mm = pixel_spacing_mm
        spacing = _pixel_spacing(ds, warnings) if mm is None else None
        if spacing is not None:
            # Both values: PixelSpacing is (row, column); the column's was dropped and an image
            # of 0.1 x 0.2 mm pixels measured every width and lateral position at half.
            if all(_plausible(v) for v in spacing):
                mm, col_mm = spacing
                scale_source = "PixelSpacing"
            else:
                warnings.append("PixelSpacing {:g}\\{:g} mm is not an ultrasound pixel size ".format(*spacing)
                                + f"({PIXEL_MM_RANGE[0]:g}-{PIXEL_MM_RANGE[1]:g} mm): ignored")
        elif mm is not None:
            scale_source = "--pixel-spacing"
            header = _pixel_spacing(ds, [])  # the option wins; say so where the file disagrees
            if header is not None and not np.allclose(header, (mm, mm), rtol=0.01):
                warnings.append(f"--pixel-spacing {mm:g} used instead of the file's PixelSpacing "
                                "{:g}\\{:g} mm".format(*header))
        missing = ("no usable B-mode region in the Sequence of Ultrasound Regions"
                   if ds.get("SequenceOfUltrasoundRegions") else "no Sequence of Ultrasound Regions")
        if mm is None:
            warnings.append(f"{missing} and no pixel size: the whole image is searched "
                            "and positions and sizes are in pixels only (give --pixel-spacing MM)")
        else:
            warnings.append(f"{missing}: the whole image is searched")
        tissue = [_default_region(rows, cols, mm, col_mm)]
    elif tissue[0].row_mm is None and pixel_spacing_mm is not None:
        tissue = [UsRegion(r.x0, r.y0, r.x1, r.y1, r.data_type, pixel_spacing_mm, pixel_spacing_mm) for r in tissue]
        scale_source = "--pixel-spacing"
    desc = {  # no file name: see _read_bitmap
        "format": "dicom", "modality": "US",
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "manufacturer": str(ds.get("Manufacturer", "")),
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")),
        "rows": int(rows), "columns": int(cols), "frames": int(rgb.shape[0]),
        # pixel_spacing_mm is the row's (depth); the column's differs on anisotropic pixels.
        "pixel_spacing_mm": tissue[0].row_mm, "column_spacing_mm": tissue[0].col_mm, "scale_source": scale_source,
        "tissue_regions": [[r.x0, r.y0, r.x1, r.y1] for r in tissue],
        "excluded_regions": [[r.x0, r.y0, r.x1, r.y1, r.data_type] for r in excluded],
        "study_instance_uid": str(ds.get("StudyInstanceUID", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
    }
    return UltrasoundImage(rgb=rgb, tissue_regions=tuple(tissue), excluded_regions=tuple(excluded),
                           declared_regions=declared, description=desc, warnings=tuple(warnings))


def _pixel_spacing(ds, warnings: list[str]) -> tuple[float, float] | None:
    """The (row, column) spacing of a usable PixelSpacing (two positive numbers), else None; a
    present but damaged one (one value, text) is ignored with a warning: sizes are then in pixels."""
    from pydicom.multival import MultiValue

    value = ds.get("PixelSpacing")
    if value is None or value == "":
        return None
    items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 2 or not all(np.isfinite(v) and v > 0 for v in numbers):
        text = "\\".join(str(v) for v in items)
        warnings.append(f"PixelSpacing '{text[:40]}' is not two positive numbers: ignored")
        return None
    return numbers[0], numbers[1]

def _dicom_rgb(p: Path, ds) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for truncated or undecodable pixel data
        raise InputError(f"{p}: cannot decode the pixel data ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); "
                         "the file may be truncated or use an unsupported compression") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1))
    if samples == 1 and frames == 1:
        arr = arr[None]
    elif samples == 3 and frames == 1:
        arr = arr[None]
    if photometric == "PALETTE COLOR":
        try:
            arr = apply_color_lut(arr, ds)
        except Exception as exc:
            raise InputError(f"{p}: palette colour image with an unusable lookup table ({exc}); re-export it as RGB") from None
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        arr = (arr.astype(np.float64) / (2**bits - 1) * 255.0).round().astype(np.uint8)
    elif samples == 3:
        # pydicom's decoder already converts YBR_FULL / YBR_FULL_422 / YBR_ICT/RCT to RGB.
        arr = _to_uint8(arr, ds)
    elif samples == 1:
        grey = _to_uint8(arr, ds)
        if photometric == "MONOCHROME1":
            grey = 255 - grey
        arr = np.repeat(grey[..., None], 3, axis=-1)
    else:
        raise InputError(f"{p}: {samples} samples per pixel is not an ultrasound image layout this tool reads")
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise InputError(f"{p}: unexpected pixel array shape {arr.shape}; give a 2-D ultrasound image or cine loop")
    return np.ascontiguousarray(arr)


def _to_uint8(arr: np.ndarray, ds) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    bits = int(ds.get("BitsStored", 8))
    a = arr.astype(np.float64)
    top = float(2**bits - 1) if bits > 8 else 255.0
    return np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)


def _dicom_regions(ds, rows: int, cols: int) -> tuple[list[UsRegion], list[UsRegion], list[str]]:
    tissue: list[UsRegion] = []
    excluded: list[UsRegion] = []
    warnings: list[str] = []
    for item in ds.get("SequenceOfUltrasoundRegions", []) or []:
        try:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
        except (AttributeError, TypeError, ValueError):
            warnings.append("an ultrasound region without location was ignored")
            continue
        dtype = _region_number(item, "RegionDataType", int)
        if dtype is None:  # unknown kind: masked out like a Doppler region, never analysed
            warnings.append("an ultrasound region's RegionDataType is not a number: the region is not analysed")
            dtype = 0
        declared = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        x0, x1 = max(0, declared[0]), min(cols - 1, declared[2])
        y0, y1 = max(0, declared[1]), min(rows - 1, declared[3])
        if x1 - x0 < 8 or y1 - y0 < 8:  # outside the image, or a line: nothing to analyse or mask
            if dtype == RegionDataType.TISSUE:
                warnings.append("a B-mode ultrasound region at ({}, {})-({}, {}) ".format(*declared)
                                + f"has under 8 pixels across inside the {cols} x {rows} image: ignored, "
                                "with its scale")
            continue
        row_mm, col_mm = _region_scale(item, warnings)
        region = UsRegion(x0, y0, x1, y1, dtype, row_mm, col_mm)
        (tissue if dtype == RegionDataType.TISSUE else excluded).append(region)
    tissue = _without_overlaps(tissue, warnings)
    if tissue and any(r.row_mm is None for r in tissue):
        warnings.append("a B-mode region declares no physical scale in cm: positions and sizes are in pixels only")
        tissue = [UsRegion(r.x0, r.y0, r.x1, r.y1, r.data_type, None, None) for r in tissue]
    return tissue, excluded, warnings


def _without_overlaps(tissue: list[UsRegion], warnings: list[str]) -> list[UsRegion]:
    """The B-mode regions less each that shares over half its area with a larger one kept: a
    region nested in another (a zoom box declared as tissue) had every deposit in it found
    and counted twice (a 3-deposit phantom with a nested region counted 6)."""
    def area(r: UsRegion) -> int:
        return (r.x1 - r.x0 + 1) * (r.y1 - r.y0 + 1)

    kept: list[UsRegion] = []
    keep: set[int] = set()
    for i in sorted(range(len(tissue)), key=lambda i: area(tissue[i]), reverse=True):
        r = tissue[i]
        shared = max((max(0, min(r.x1, k.x1) - max(r.x0, k.x0) + 1) * max(0, min(r.y1, k.y1) - max(r.y0, k.y0) + 1)
                      for k in kept), default=0)
        if shared > area(r) / 2:
            warnings.append(f"a B-mode region at ({r.x0}, {r.y0})-({r.x1}, {r.y1}) lies mostly inside another: "
                            "ignored, so that its deposits are not counted twice")
        else:
            kept.append(r)
            keep.add(i)
    return [r for i, r in enumerate(tissue) if i in keep]  # in the file's order (an exact copy too)


def _region_scale(item, warnings: list[str]) -> tuple[float | None, float | None]:
    """A region's pixel size (row_mm, col_mm) when both directions are in cm and plausible."""
    units = [_region_number(item, k, int) for k in ("PhysicalUnitsXDirection", "PhysicalUnitsYDirection")]
    deltas = [_region_number(item, k, float) for k in ("PhysicalDeltaX", "PhysicalDeltaY")]
    if None in units or None in deltas:
        warnings.append("an ultrasound region's physical units or pixel size is not a number: its scale is ignored")
        return None, None
    (ux, uy), (dx, dy) = units, deltas
    if not (ux == 3 and uy == 3 and dx > 0 and dy > 0):  # 3 = cm
        return None, None
    col_mm, row_mm = abs(dx) * 10.0, abs(dy) * 10.0
    if not (_plausible(col_mm) and _plausible(row_mm)):
        warnings.append(f"an ultrasound region's pixel of {row_mm:g} x {col_mm:g} mm is not an ultrasound "
                        "pixel size: its scale is ignored")
        return None, None
    return row_mm, col_mm


def _region_number(item, keyword: str, cast: type[int] | type[float]) -> int | float | None:
    """A region attribute as a number: 0 when absent, None when present but not a number."""
    value = item.get(keyword, 0)
    if value is None or value == "":
        return 0
    try:
        return cast(value)
    except (TypeError, ValueError):
        return None
