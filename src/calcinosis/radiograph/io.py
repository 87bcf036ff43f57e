"""Read a plain radiograph (DICOM CR/DX, or PNG/JPEG/TIFF) into a :class:`Radiograph`.

Convention: the returned image is float32 ``[row, col]`` with *bright = dense*
(the MONOCHROME2 sense: more attenuation, higher value), after the DICOM Modality
LUT and a VOI LUT (not a window: see :func:`_apply_voi`). MONOCHROME1 images are inverted. Pixel spacing is
``(row_mm, col_mm)`` on the detector (``ImagerPixelSpacing``, else
``PixelSpacing``); when neither is usable the spacing is ``None`` and a warning
says that sizes are in pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calcinosis.errors import InputError
from calcinosis.paths import check_regular_file
from calcinosis.radiograph.bitmap import load_frame, open_image, short

log = logging.getLogger(__name__)

#: DICOM modalities that are projection radiographs.
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "DR", "RG", "RF", "XA", "PX", "IO", "MG"})
#: Modalities that are certainly not a plain radiograph (cross-sectional or ultrasound).
NOT_RADIOGRAPH_MODALITIES = frozenset({"CT", "MR", "PT", "NM", "US", "OCT", "SEG", "SR", "RTDOSE"})
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
#: Most pixels a radiograph may have: the largest detectors (43 x 43 cm at 0.1 mm, or a
#: mammogram at 0.05 mm) have under 30 million; a larger size is a corrupt or hostile header,
#: and analysing it would take many minutes (a blank 4000 x 4000 image takes over a minute).
MAX_PIXELS = 50_000_000
#: Pillow modes of colour models whose grey content Pillow's RGB conversion recovers (a
#: greyscale CMYK file keeps the image in K, the first three channels are blank).
_CONVERT_TO_RGB_MODES = frozenset({"CMYK", "YCbCr", "LAB", "HSV"})
#: Pillow modes of grey with an alpha channel: the grey is the image, the alpha is dropped.
_GREY_ALPHA_MODES = frozenset({"LA", "La"})
_GIVE = "a radiograph file (DICOM, PNG, JPEG or TIFF)"


@dataclass(frozen=True)
class Radiograph:
    """One 2-D projection radiograph.

    Attributes
    ----------
    image : ndarray, float32, shape (rows, cols)
        Pixel values, bright = dense. Read-only.
    pixel_spacing_mm : tuple of float or None
        ``(row_mm, col_mm)`` at the detector; ``None`` when unknown (sizes in pixels).
    saturated_value : float or None
        The top of the stored value range, where burned-in labels and blanked
        collimation sit; ``None`` when the image does not reach it.
    description : dict
        Input description for ``summary.json`` (path, format, modality, photometric, ...).
    warnings : tuple of str
        Things the reader had to assume.
    """

    image: np.ndarray
    pixel_spacing_mm: tuple[float, float] | None
    saturated_value: float | None = None
    description: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.image.ndim != 2:
            raise ValueError(f"image must be 2-D, got shape {self.image.shape}")
        if self.pixel_spacing_mm is not None and min(self.pixel_spacing_mm) <= 0:
            raise ValueError(f"pixel_spacing_mm must be positive, got {self.pixel_spacing_mm}")
        self.image.setflags(write=False)


def radiograph_from_array(
    image: np.ndarray,
    pixel_spacing_mm: float | tuple[float, float] | None,
    *,
    description: dict[str, Any] | None = None,
) -> Radiograph:
    """Wrap an in-memory array (bright = dense) as a :class:`Radiograph`."""
    arr = np.asarray(image, dtype=np.float32).copy()
    spacing = _spacing_tuple(pixel_spacing_mm)
    warnings_: list[str] = []
    if spacing is None:
        warnings_.append(_NO_SPACING)
    desc = {"format": "array", "rows": int(arr.shape[0]), "columns": int(arr.shape[1])}
    desc.update(description or {})
    return Radiograph(arr, spacing, _saturation(arr), desc, tuple(warnings_))


#: A detector's pixel (mm): a spacing outside this range is a header's wrong units or a
#: placeholder (the analysis's millimetre-sized kernels would span millions of such pixels).
PIXEL_MM_RANGE = (0.01, 5.0)

_NO_SPACING = (
    "no pixel spacing (ImagerPixelSpacing/PixelSpacing) in the input: positions and areas are "
    "in pixels and mm columns are empty; give --pixel-spacing MM to get millimetres"
)


def read_radiograph(
    path: str | Path,
    *,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    invert: bool = False,
) -> Radiograph:
    """Read a radiograph file.

    Parameters
    ----------
    path : path-like
        A DICOM file (CR, DX, DR...), or a PNG/JPEG/TIFF greyscale image.
    pixel_spacing_mm : float or (float, float), optional
        Detector pixel spacing; overrides the DICOM header, required for
        pixel-based formats to get millimetres.
    invert : bool
        For PNG/JPEG/TIFF only: the file is a negative (bright = air); ignored, with a
        warning, for DICOM, whose PhotometricInterpretation says which way round it is.

    Raises
    ------
    InputError
        Missing, unreadable or truncated file; not a regular file (a named pipe...);
        colour image; a modality that is not a projection radiograph (e.g. a CT slice);
        multi-frame data (a cine DICOM, a multi-page TIFF); more than :data:`MAX_PIXELS`
        pixels; NaN or infinite pixel values; a damaged header field the pixels depend on.
    """
    p = Path(path)
    if check_regular_file(p, "radiograph", f"give {_GIVE}") == 0:
        raise InputError(f"{p}: empty file; give {_GIVE}")
    override = _spacing_tuple(pixel_spacing_mm)
    if _looks_like_dicom(p):
        return _read_dicom(p, override, invert)
    if p.suffix.lower() in _IMAGE_SUFFIXES or _looks_like_bitmap(p):
        return _read_pillow(p, override, invert)
    if p.suffix.lower() in {".dcm", ".dicom", ""}:
        return _read_dicom(p, override, invert)
    return _read_pillow(p, override, invert)


def _spacing_tuple(value: float | tuple[float, float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    if np.isscalar(value):
        value = (float(value), float(value))  # type: ignore[arg-type]
    row, col = (float(v) for v in value)  # type: ignore[union-attr]
    if not (np.isfinite(row) and np.isfinite(col) and row > 0 and col > 0):
        raise InputError(f"pixel spacing must be positive millimetres, got {value}")
    if not _plausible(row, col):
        raise InputError(f"pixel spacing {row:g} x {col:g} mm is not a radiograph's: give the detector's pixel size "
                         f"in mm ({PIXEL_MM_RANGE[0]:g}-{PIXEL_MM_RANGE[1]:g})")
    return (row, col)


def _plausible(row: float, col: float) -> bool:
    return all(PIXEL_MM_RANGE[0] <= v <= PIXEL_MM_RANGE[1] for v in (row, col))


def _looks_like_dicom(p: Path) -> bool:
    try:
        with p.open("rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror or exc})") from exc
    return len(head) == 132 and head[128:132] == b"DICM"


#: First bytes of PNG, JPEG and TIFF (both byte orders) files: such a file named x.dcm, or
#: with no suffix, was read as DICOM and refused with pydicom's message ("... Use force=True").
_BITMAP_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")


def _looks_like_bitmap(p: Path) -> bool:
    with p.open("rb") as fh:
        head = fh.read(8)
    return head.startswith(_BITMAP_SIGNATURES)


def _read_dicom(p: Path, override: tuple[float, float] | None, invert: bool = False) -> Radiograph:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(p)
    except pydicom.errors.InvalidDicomError:  # its message tells a programmer to use force=True
        raise InputError(f"{p}: neither a DICOM file (no 'DICM' marker at byte 128) nor a PNG, JPEG or TIFF "
                         f"image; give {_GIVE}") from None
    except Exception as exc:  # pydicom raises many types for a bad file
        raise InputError(f"{p}: not a readable DICOM file ({short(exc)})") from exc
    modality = str(ds.get("Modality", "") or "").upper()
    if modality in NOT_RADIOGRAPH_MODALITIES:
        raise InputError(
            f"{p}: Modality {modality} is not a projection radiograph; "
            "use 'calcinosis analyze' for CT and 'calcinosis ultrasound' for ultrasound"
        )
    if "PixelData" not in ds:
        raise InputError(f"{p}: DICOM file without pixel data; give an image file")
    photometric = _check_layout(p, ds)
    _check_decoder(p, ds)
    try:
        raw = ds.pixel_array
    except Exception as exc:
        raise InputError(f"{p}: pixel data cannot be decoded, the file may be truncated ({short(exc)})") from exc
    if raw.ndim != 2:
        raise InputError(f"{p}: expected a 2-D greyscale image, got pixel array shape {raw.shape}")
    warnings_: list[str] = []
    if not modality:
        warnings_.append("no Modality in the DICOM header; assumed a projection radiograph")
    elif modality not in RADIOGRAPH_MODALITIES:
        warnings_.append(f"Modality {modality} is not a usual radiograph modality; analysed as one")
    if invert:
        warnings_.append("--invert ignored: a DICOM file's PhotometricInterpretation says which way round it is")
    try:
        values = apply_modality_lut(raw, ds).astype(np.float64)
    except Exception as exc:  # a damaged RescaleSlope/Intercept or Modality LUT
        raise InputError(f"{p}: the header's rescale (RescaleSlope/Intercept or Modality LUT) cannot be applied "
                         f"({short(exc)})") from exc
    _require_finite(p, values, "after the header's rescale (RescaleSlope/RescaleIntercept)")
    values, voi = _apply_voi(ds, values, warnings_)
    if photometric == "MONOCHROME1":  # bright = air in the file; turn to bright = dense
        values = values.max() + values.min() - values
    image = values.astype(np.float32)

    spacing, source = override, "command line" if override else None
    if spacing is None:
        for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
            spacing = _header_spacing(ds, keyword, warnings_)
            if spacing is not None and not _plausible(*spacing):
                warnings_.append(f"{keyword} {spacing[0]:g} x {spacing[1]:g} mm is not a detector's pixel size "
                                 f"({PIXEL_MM_RANGE[0]:g}-{PIXEL_MM_RANGE[1]:g} mm): ignored")
                spacing = None
            if spacing is not None:
                source = keyword
                break
        if spacing is None:
            warnings_.append(_NO_SPACING)
    desc = {
        "path": str(p),
        "format": "DICOM",
        "modality": modality or None,
        "photometric_interpretation": photometric,
        "rows": int(image.shape[0]),
        "columns": int(image.shape[1]),
        "voi": voi,
        "body_part_examined": str(ds.get("BodyPartExamined", "") or "") or None,
        "processing_description": str(ds.get("AcquisitionDeviceProcessingDescription", "") or "").strip(" []")
        or None,
        "view_position": str(ds.get("ViewPosition", "") or "") or None,
        "laterality": str(ds.get("Laterality", "") or ds.get("ImageLaterality", "") or "") or None,
        "study_instance_uid": str(ds.get("StudyInstanceUID", "") or "") or None,
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "") or "") or None,
        "pixel_spacing_source": source,
    }
    return Radiograph(image, spacing, _saturation(image), desc, tuple(warnings_))


def _check_decoder(p: Path, ds: Any) -> None:
    """Refuse compressed pixel data that no installed decoder reads, naming what to install:
    it was called "cannot be decoded, the file may be truncated", with pydicom's message cut
    before the missing package's name."""
    from pydicom.pixels import get_decoder

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise InputError(f"{p}: pixel data compressed as {syntax.name}, which pydicom cannot decode; give an "
                         "uncompressed copy (e.g. 'dcmdjpeg' or 'gdcmconv --raw')") from None
    if decoder.is_available:
        return
    needs = [d.split(" - requires ", 1)[-1] for d in decoder.missing_dependencies]
    raise InputError(f"{p}: pixel data compressed as {syntax.name}, which needs a decoder not installed "
                     f"({' or '.join(needs)}); install one (pip) or give an uncompressed copy")


def _header_int(p: Path, ds: Any, keyword: str, default: int) -> int:
    """A whole-number header field the pixel layout depends on; a damaged one is refused."""
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"{p}: {keyword} {str(value)[:40]!r} in the header is not a whole number; "
                         "the header is damaged") from None


def _check_layout(p: Path, ds: Any) -> str:
    """The PhotometricInterpretation of a single-frame greyscale image of a sane size; anything
    else (colour, no photometric, several frames, a size no detector has) is refused."""
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    samples = _header_int(p, ds, "SamplesPerPixel", 1)
    if samples != 1:
        raise InputError(f"{p}: colour image (SamplesPerPixel {samples}); a radiograph must be greyscale "
                         "(MONOCHROME1 or MONOCHROME2)")
    if not photometric:
        raise InputError(f"{p}: no PhotometricInterpretation in the header, so bright = dense (MONOCHROME2) cannot "
                         "be told from bright = air (MONOCHROME1); set it in the file")
    if photometric not in {"MONOCHROME1", "MONOCHROME2"}:
        raise InputError(f"{p}: colour image ({photometric[:40]}); a radiograph must be greyscale "
                         "(MONOCHROME1 or MONOCHROME2)")
    if _header_int(p, ds, "NumberOfFrames", 1) > 1:
        raise InputError(f"{p}: multi-frame image; give a single-frame radiograph")
    rows, cols = _header_int(p, ds, "Rows", 0), _header_int(p, ds, "Columns", 0)
    if rows * cols > MAX_PIXELS:
        raise InputError(f"{p}: {cols} x {rows} pixels is more than {MAX_PIXELS / 1e6:g} million pixels, more than "
                         "any radiograph has (the header may be corrupt)")
    return photometric


def _apply_voi(ds: Any, values: np.ndarray, warnings_: list[str]) -> tuple[np.ndarray, str]:
    """The header's VOI LUT applied (it can be the image's tone curve); an unusable one is left
    out with a warning. A window (WindowCenter/Width) is not applied: it is a display setting,
    a linear map (nothing the detector needs) that clips everything outside it; a bone window
    on the hand phantom (900/1400 of 0-4095) flattened the thin soft tissue and the skin and
    5 of 13 deposits were found, with no warning."""
    from pydicom.pixels import apply_voi_lut

    if "VOILUTSequence" not in ds:
        return values, "none"
    try:
        out = np.asarray(apply_voi_lut(values, ds, index=0, prefer_lut=True), dtype=np.float64)
    except Exception as exc:  # pydicom raises ValueError, TypeError, IndexError... on a bad field
        warnings_.append(f"the header's VOI LUT cannot be applied ({short(exc, 100)}): ignored, values used as stored")
        return values, "none"
    if not np.isfinite(out).all():
        warnings_.append("the header's VOI LUT gives values that are not finite: ignored, values used as stored")
        return values, "none"
    return out, "VOI LUT"


def _require_finite(p: Path, values: np.ndarray, where: str) -> None:
    """NaN or infinite pixels have no density; the filters would spread them over the image."""
    if not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise InputError(f"{p}: {bad} pixel value(s) are NaN or infinite {where}; give an image of finite values")


def _header_spacing(ds: Any, keyword: str, warnings_: list[str]) -> tuple[float, float] | None:
    """The header's (row, column) spacing; one value (a writer's slip for a square pixel, which
    was taken as no spacing at all: areas in pixels) is used for both, with a warning."""
    value = ds.get(keyword)
    if value is None:
        return None
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else [value]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if len(numbers) == 1:
        numbers = numbers * 2
        if np.isfinite(numbers[0]) and numbers[0] > 0:
            warnings_.append(f"{keyword} has one value ({numbers[0]:g}), not two (row, column): taken as "
                             f"{numbers[0]:g} x {numbers[0]:g} mm")
    if len(numbers) != 2:
        return None
    row, col = numbers
    if not (np.isfinite(row) and np.isfinite(col) and row > 0 and col > 0):
        return None  # e.g. "0\0" as in some CR headers: unusable
    return (row, col)


def _read_pillow(p: Path, override: tuple[float, float] | None, invert: bool) -> Radiograph:
    from PIL import Image

    with open_image(p, max_pixels=MAX_PIXELS, what="radiograph") as im:
        pages = getattr(im, "n_frames", 1)
        if pages > 1:  # page 0 alone may be a blank or a thumbnail: which page is the radiograph?
            raise InputError(f"{p}: {pages} pages or frames in one {im.format} file; save the radiograph "
                             "as a single-page image")
        load_frame(p, im)
        mode, kind = im.mode, im.format  # by content: a PNG named x.dcm was "DCM"
        if mode in _CONVERT_TO_RGB_MODES:
            im = im.convert("RGB")
        arr = np.asarray(im)
    warnings_: list[str] = []
    if mode in _GREY_ALPHA_MODES:
        arr = arr[..., 0]
        warnings_.append(f"greyscale with an alpha channel ({mode}); the alpha channel is ignored")
    elif arr.ndim == 3:
        channels = arr[..., :3].astype(np.int64)
        if arr.shape[2] < 3 or not (
            np.array_equal(channels[..., 0], channels[..., 1]) and np.array_equal(channels[..., 0], channels[..., 2])
        ):
            raise InputError(f"{p}: colour image (mode {mode}); a radiograph must be greyscale")
        arr = arr[..., 0]
        warnings_.append(f"greyscale stored as {mode}; used one channel")
    elif mode == "P":
        raise InputError(f"{p}: palette (colour) image; save the radiograph as greyscale")
    _require_finite(p, arr, "in the image")
    image = arr.astype(np.float32)
    if invert:
        image = image.max() + image.min() - image
    if override is None:
        warnings_.append(_NO_SPACING)
    desc = {
        "path": str(p),
        "format": (kind or Image.registered_extensions().get(p.suffix.lower()) or p.suffix.lstrip(".")).upper(),
        "modality": None,
        "photometric_interpretation": "inverted" if invert else "bright = dense",
        "rows": int(image.shape[0]),
        "columns": int(image.shape[1]),
        "pixel_spacing_source": "command line" if override else None,
    }
    return Radiograph(image, override, _saturation(image), desc, tuple(warnings_))


def _saturation(image: np.ndarray) -> float | None:
    """The top value when a noticeable number of pixels sit exactly on it (clipping/blanking)."""
    top = float(image.max())
    return top if np.count_nonzero(image == top) >= 20 else None
