"""Find DICOM files under a folder and group them by series.

Only headers are read here (pydicom, ``stop_before_pixels``). Files are found
recursively whatever the folder layout; hidden files (name starting with
``.``), DICOMDIR files and files that are not DICOM are skipped.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import threading
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info

from calcinosis.errors import InputError

logger = logging.getLogger(__name__)

_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
#: A whole UID: numbers joined by dots (a header cut short ends one with a dot).
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


@dataclass(frozen=True)
class DicomSeriesInfo:
    """One DICOM series found under a folder.

    Attributes
    ----------
    series_uid : str
        SeriesInstanceUID.
    modality : str
        Modality of the series (``"CT"``, ``"MR"``, ``"SEG"`` ...; ``""`` if absent).
    n_files : int
        Number of files in the series.
    files : tuple of str
        File paths, sorted by name.
    study_uid : str
        StudyInstanceUID (``""`` if absent).
    description : str
        SeriesDescription (``""`` if absent).
    """

    series_uid: str
    modality: str
    n_files: int
    files: tuple[str, ...]
    study_uid: str
    description: str


@dataclass(frozen=True)
class SliceHeader:
    """The header facts of one DICOM file that series reading needs."""

    path: str
    series_uid: str
    study_uid: str
    modality: str
    description: str
    sop_uid: str
    is_image: bool
    n_frames: int
    is_localizer: bool
    rows: int | None
    columns: int | None
    position: tuple[float, ...] | None  # ImagePositionPatient, LPS mm
    orientation: tuple[float, ...] | None  # ImageOrientationPatient: row then column cosines
    pixel_spacing: tuple[float, ...] | None  # (between rows, between columns) in mm
    slope: float
    intercept: float
    transfer_syntax: str
    samples_per_pixel: int
    photometric: str
    # The frame of a multi-frame (enhanced) file this slice is (0-based); None: a single-frame file.
    frame: int | None = None
    # Pixel Padding Value and Range Limit (the value again when there is no limit), as stored
    # values; None: no padding declared (see :mod:`calcinosis.io.padding`).
    padding: tuple[int, int] | None = None
    bits_stored: int = 16
    signed: bool = False  # PixelRepresentation 1


def iter_candidate_files(root: Path) -> Iterator[Path]:
    """All non-hidden files under ``root``, in a deterministic (sorted) order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if is_candidate_file(path):
                yield path


def is_candidate_file(path: Path) -> bool:
    """Whether a file a folder walk found may be a study's: not hidden, not a DICOMDIR, not a
    pipe, socket or device (:func:`is_special_file`)."""
    return not path.name.startswith(".") and path.name.upper() != "DICOMDIR" and not is_special_file(path)


def is_special_file(path: Path) -> bool:
    """Whether ``path`` exists but is not a regular file (a named pipe, socket or device):
    reading one may block for ever, so folder walks skip it. A broken link is not special:
    reading it fails with a reason."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    if stat.S_ISREG(mode):
        return False
    logger.info("skipping %s: not a regular file (a pipe, socket or device)", path)
    return True


def looks_like_dicom(path: Path) -> bool:
    """Cheap test: the ``DICM`` marker at byte 128, or a bare data set starting with group 2 or 8."""
    try:
        return _marked_dicom(_head(path))
    except OSError:
        return False


def _head(path: Path) -> bytes:
    """The first 132 bytes of ``path`` (fewer in a shorter file); raises ``OSError``."""
    with open(path, "rb") as fh:
        return fh.read(132)


def _marked_dicom(head: bytes) -> bool:
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    # Old files without preamble start directly with a (0002,xxxx) or (0008,xxxx) tag.
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[3] == 0


@contextmanager
def quiet_pydicom() -> Iterator[list[warnings.WarningMessage]]:
    """Hold back what pydicom says of odd data: it logs each remark (a failed decoder plugin
    with its traceback) and also warns of most, once per file, several lines on stderr
    through the CLI's logging. Inside, its logger is silent and its warnings are collected
    in the list yielded, for the caller to sum up in one line or to drop."""
    if threading.current_thread() is not threading.main_thread():
        # The logger's level and the warnings filters belong to the whole process, and
        # catch_warnings is not thread-safe: other threads (the web viewer's) leave them alone.
        yield []
        return
    pydicom_logger = logging.getLogger("pydicom")
    level = pydicom_logger.level
    pydicom_logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
    finally:
        pydicom_logger.setLevel(level)


def is_dicomdir(path: Path) -> bool:
    """Whether ``path`` is a DICOMDIR (the index of a CD or an export, no image), by its name
    or its file meta's SOP class."""
    if path.name.upper() == "DICOMDIR":
        return True
    if not looks_like_dicom(path):
        return False
    try:
        with quiet_pydicom():
            meta = read_file_meta_info(path)
    except Exception:  # noqa: BLE001 - not a readable file meta: not a DICOMDIR either
        return False
    return str(meta.get("MediaStorageSOPClassUID", "") or "") == _DICOMDIR_SOP_CLASS


def read_header(path: Path, problems: list[tuple[Path, str]] | None = None) -> Dataset | None:
    """The header of ``path`` without pixel data, or None if it is not a DICOM data set.

    ``problems``, where given, gets ``(path, why)`` for a file that cannot be opened (its
    permissions, a broken link) or is marked DICOM but cannot be parsed (damaged): such a
    file may be one of the series' slices, which a reader must not silently do without.
    """
    try:
        head = _head(path)
    except OSError as exc:
        if problems is not None:
            why = "a link to a file that does not exist" if path.is_symlink() and not path.exists() else (
                exc.strerror or type(exc).__name__)
            problems.append((path, why))
        return None
    if not _marked_dicom(head):
        return None
    try:
        with quiet_pydicom():  # odd values: the series checks say what matters, in one line
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt files
        # Skipped here; a series reader that was given ``problems`` refuses the folder (a
        # damaged first or last slice left no gap for the series checks to see).
        level = logging.WARNING if not isinstance(exc, InvalidDicomError) else logging.DEBUG
        logger.log(level, "skipping %s: not readable as DICOM (%s: %s)", path, type(exc).__name__, exc)
        if problems is not None and not isinstance(exc, InvalidDicomError):
            problems.append((path, f"marked DICOM but damaged: {type(exc).__name__}: {exc}"))
        return None
    sop_class = str(ds.get("SOPClassUID", "") or "")
    meta = getattr(ds, "file_meta", None)
    if not sop_class and meta is not None:
        sop_class = str(meta.get("MediaStorageSOPClassUID", "") or "")
    if sop_class == _DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        return None
    if "SeriesInstanceUID" not in ds:
        # A CT image's file meta and nothing after it, or not even a whole SOP class UID: a copy
        # cut short within the header (pydicom stops at the end without a word). Objects that
        # belong to no series (of a valid other class) are skipped.
        if problems is not None and head[128:132] == b"DICM" and (sop_class in CT_IMAGE_CLASSES
                                                                  or not _UID.fullmatch(sop_class)):
            whole = _UID.fullmatch(str(ds.get("SOPInstanceUID", "") or "")) and "Rows" in ds
            problems.append((path, "a CT image with no SeriesInstanceUID (removed by an anonymiser?)" if whole else
                                   f"marked DICOM but damaged: {'a CT image ' if sop_class else ''}with no "
                                   f"SeriesInstanceUID ({path.stat().st_size} bytes: cut short?)"))
        return None
    return ds


#: ImageType values of scout views: DICOM's LOCALIZER, and the vendors' own names that some
#: write in its place (Siemens' topogram, Philips' surview, the generic scout).
SCOUT_IMAGE_TYPES = frozenset({"LOCALIZER", "TOPOGRAM", "SURVIEW", "SCOUT"})

#: SOP classes of CT images: CT, enhanced CT, legacy converted enhanced CT.
CT_IMAGE_CLASSES = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")


def slice_header(path: Path, ds: Dataset) -> SliceHeader:
    # pydicom warns (on stderr) of a malformed value when it converts it: the checks on the
    # values read here say what is wrong in one line instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _slice_header(path, ds)


def _slice_header(path: Path, ds: Dataset) -> SliceHeader:
    image_type = [str(v).upper() for v in as_list(ds.get("ImageType", []))]
    return SliceHeader(
        path=str(path),
        series_uid=str(ds.SeriesInstanceUID),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        modality=str(ds.get("Modality", "") or "").upper(),
        description=str(ds.get("SeriesDescription", "") or ""),
        sop_uid=str(ds.get("SOPInstanceUID", "") or ""),
        # A CT image whose header lost Rows or Columns is still an image (a damaged one, refused
        # by name), not a non-image object whose absence looked like a missing slice.
        is_image=("Rows" in ds and "Columns" in ds) or (str(ds.get("SOPClassUID", "")) in CT_IMAGE_CLASSES
                                                        and str(ds.get("Modality", "")).upper() == "CT"),
        n_frames=_int_or_none(ds.get("NumberOfFrames")) or 1,  # malformed (several values): one frame
        is_localizer=not SCOUT_IMAGE_TYPES.isdisjoint(image_type),
        rows=_int_or_none(ds.get("Rows")),
        columns=_int_or_none(ds.get("Columns")),
        position=floats_or_none(ds, "ImagePositionPatient", 3),
        orientation=floats_or_none(ds, "ImageOrientationPatient", 6),
        pixel_spacing=floats_or_none(ds, "PixelSpacing", 2),
        # Present but not a number: NaN, which the reader refuses by name (taken as absent, a
        # text intercept such as "minus1024" read as 0 and was called raw stored values).
        slope=float_or(ds, "RescaleSlope", 1.0, malformed=math.nan),
        intercept=float_or(ds, "RescaleIntercept", 0.0, malformed=math.nan),
        transfer_syntax=str(getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID", "") or ""),
        samples_per_pixel=_int_or_none(ds.get("SamplesPerPixel")) or 1,
        photometric=str(ds.get("PhotometricInterpretation", "") or "").upper(),
        padding=_padding(ds),
        bits_stored=_int_or_none(ds.get("BitsStored")) or _int_or_none(ds.get("BitsAllocated")) or 16,
        signed=_int_or_none(ds.get("PixelRepresentation")) == 1,
    )


def _padding(ds: Dataset) -> tuple[int, int] | None:
    """``(PixelPaddingValue, PixelPaddingRangeLimit)`` (the value twice without a limit), or
    None when the header declares no padding (or not as one integer)."""
    value = _int_or_none(ds.get("PixelPaddingValue"))
    if value is None:
        return None
    limit = _int_or_none(ds.get("PixelPaddingRangeLimit"))
    return value, value if limit is None else limit


def _int_or_none(value: object) -> int | None:
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def floats_or_none(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    """``n`` finite floats from a multi-valued DS element, or None if absent or malformed."""
    try:
        values = tuple(float(v) for v in as_list(ds.get(keyword)))
    except (TypeError, ValueError):
        return None
    if len(values) != n or not all(math.isfinite(v) for v in values):
        return None
    return values


def float_or(ds: Dataset, keyword: str, default: float, *, malformed: float | None = None) -> float:
    """``keyword``'s value as a float; ``default`` when absent or empty, and when malformed
    too unless ``malformed`` is given."""
    try:
        value = ds.get(keyword)
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default if malformed is None else malformed


def as_list(value: object) -> list[object]:
    """A DICOM element's value as a list: its values, ``[value]``, or ``[]`` when empty."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)  # type: ignore[arg-type]
    return [value] if value not in (None, "") else []


def scan_headers(root: Path, problems: list[tuple[Path, str]] | None = None) -> list[SliceHeader]:
    """Headers of all DICOM files under ``root`` (a folder), in sorted path order; files that
    cannot be read go to ``problems`` where given (see :func:`read_header`).

    Only the small :class:`SliceHeader` is kept per file, so large trees stay cheap.
    """
    found = []
    for path in iter_candidate_files(root):
        ds = read_header(path, problems)
        if ds is not None:
            found.append(slice_header(path, ds))
    return found


def group_series(headers: list[SliceHeader]) -> list[DicomSeriesInfo]:
    """Group file headers by SeriesInstanceUID; sorted by (study UID, series UID)."""
    by_series: dict[str, list[SliceHeader]] = defaultdict(list)
    for h in headers:
        by_series[h.series_uid].append(h)
    infos = []
    for uid, members in by_series.items():
        first = members[0]
        modality = next((m.modality for m in members if m.modality), "")
        files = tuple(sorted(m.path for m in members))
        infos.append(DicomSeriesInfo(uid, modality, len(files), files, first.study_uid, first.description))
    return sorted(infos, key=lambda s: (s.study_uid, s.series_uid))


def list_dicom_series(root: str | os.PathLike[str]) -> list[DicomSeriesInfo]:
    """All DICOM series under ``root``, found recursively whatever the folder layout.

    Every DICOM file (image or not) is grouped by its SeriesInstanceUID; files that
    are not DICOM, DICOMDIR files and hidden files are skipped. Returns the series
    sorted by (StudyInstanceUID, SeriesInstanceUID); an empty list when none is found.
    Raises :class:`InputError` when ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give the folder that holds the DICOM files")
    return group_series(scan_headers(root))
