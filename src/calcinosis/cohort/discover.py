"""Find the studies under a folder: one per image file, one per DICOM series.

Rules
-----
* Every NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``) and MetaImage
  (``.mha``, ``.mhd``) file is one study.
* Every DICOM series (files grouped by SeriesInstanceUID, whatever the folder
  layout) is one study, read from the deepest folder that holds all its files.
* A DICOM series of images that is not CT (MR, PT, CR ...) is still a study: it is
  recorded as *failed* with the reason (``not CT: modality MR``), so that it shows
  in ``calcinosis cohort status``. Series without images or of non-image
  modalities (SEG, SR, RTSTRUCT, PR, KO ...) are *skipped* and listed in
  :attr:`Discovery.skipped`: they accompany CT series, they are not studies. So are
  series whose images are all LOCALIZER (scouts).
* Hidden files and folders (name starting with ``.``) and the folders given in
  ``exclude`` (the batch's own output folder) are not searched.

Study keys are stable and filesystem-safe: a slug of the path relative to the root
plus 8 hex digits of a hash of that path (files) or of the SeriesInstanceUID
(DICOM), e.g. ``patient01_thigh-3f2a9c1d``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from calcinosis.errors import InputError
from calcinosis.io.dicom_scan import SliceHeader, group_series, is_candidate_file, read_header, slice_header
from calcinosis.paths import earlier_output

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
# Objects that accompany images rather than being images to analyse.
NON_IMAGE_MODALITIES = frozenset({"SEG", "SR", "RTSTRUCT", "RTPLAN", "RTRECORD", "PR", "KO",
                                  "REG", "DOC", "PLAN", "FID", "RWV"})
_SLUG_MAX = 64


@dataclass(frozen=True)
class Study:
    """One study found under the batch root.

    Attributes
    ----------
    key : str
        Stable, filesystem-safe identifier; the name of the study's output folder.
    kind : str
        ``"file"`` (NIfTI/NRRD/MetaImage) or ``"dicom"``.
    input_path : str
        The file, or for DICOM the folder to read (with ``series_uid``).
    series_uid : str or None
        SeriesInstanceUID of a DICOM study.
    files : tuple of str
        Every file the study's result depends on (checksummed), sorted.
    modality : str
        ``"CT"`` for image files (assumed), the DICOM Modality otherwise.
    n_voxels : int or None
        Voxel count from the headers, for the memory estimate (None when unknown).
    problem : str or None
        Why the study cannot be analysed, known without reading the images
        (``"not CT: modality MR"``); such a study is recorded as failed.
    """

    key: str
    kind: str
    input_path: str
    series_uid: str | None
    files: tuple[str, ...]
    modality: str
    n_voxels: int | None
    problem: str | None = None


@dataclass(frozen=True)
class Discovery:
    """Studies found (sorted by key) and the DICOM series skipped, as ``"folder: reason"``."""

    studies: tuple[Study, ...]
    skipped: tuple[str, ...]


def slugify(text: str) -> str:
    """A filesystem-safe slug: runs of characters outside ``[A-Za-z0-9_-]`` become ``_``.

    No dots, so a key never looks like the batch's ``<key>.partial-*`` work folders.
    """
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-")
    return slug[:_SLUG_MAX].rstrip("_-") or "study"


def study_key(relative_path: str, identity: str) -> str:
    """``<slug of relative_path>-<8 hex of sha1(identity)>``; stable across runs and machines."""
    digest = hashlib.sha1(identity.encode("utf-8")).hexdigest()[:8]
    return f"{slugify(relative_path.replace('/', '_'))}-{digest}"


def image_suffix(name: str) -> str | None:
    lower = name.lower()
    return next((s for s in IMAGE_SUFFIXES if lower.endswith(s)), None)


def discover_studies(root: str | os.PathLike[str], *,
                     exclude: tuple[str | os.PathLike[str], ...] = ()) -> Discovery:
    """All studies under ``root`` (see the module docstring for the rules).

    Raises
    ------
    InputError
        ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give the folder that holds the studies")
    root = root.resolve()
    excluded = {Path(p).resolve() for p in exclude}
    studies: list[Study] = []
    headers: list[SliceHeader] = []
    for path in _walk(root, excluded):
        suffix = image_suffix(path.name)
        if suffix is not None:
            studies.append(_file_study(root, path, suffix))
            continue
        ds = read_header(path)
        if ds is not None:
            headers.append(slice_header(path, ds))
    by_series: dict[str, list[SliceHeader]] = {}
    for h in headers:
        by_series.setdefault(h.series_uid, []).append(h)
    skipped: list[str] = []
    for series in group_series(headers):
        members = by_series[series.series_uid]
        # The folder holding its files (a series of one multi-frame file: that file's folder).
        folder = Path(os.path.commonpath([os.path.dirname(f) for f in series.files]))
        rel = folder.relative_to(root).as_posix()
        images = [h for h in members if h.is_image]
        modality = series.modality or "unknown"
        if not images or modality in NON_IMAGE_MODALITIES:
            reason = f"{rel or '.'}: series {series.series_uid} ({modality}, {series.n_files} files) holds no image to analyse"
            logger.info("skipping %s", reason)
            skipped.append(reason)
            continue
        if all(h.is_localizer for h in images):
            # A scout beside each patient's CT: analysed as a volume, its projection gave the
            # patient a second study (failed, or done with lesions of no slice at all).
            reason = (f"{rel or '.'}: series {series.series_uid} ({modality}, {series.n_files} files) "
                      "holds only LOCALIZER (scout) images, no volume to analyse")
            logger.info("skipping %s", reason)
            skipped.append(reason)
            continue
        problem = None if modality == "CT" else f"not CT: modality {modality}"
        n_voxels = sum((h.rows or 0) * (h.columns or 0) * max(h.n_frames, 1) for h in images) or None
        studies.append(Study(
            key=study_key(rel if rel != "." else "dicom", series.series_uid), kind="dicom",
            input_path=str(folder), series_uid=series.series_uid, files=series.files,
            modality=modality, n_voxels=n_voxels, problem=problem))
    studies.sort(key=lambda s: s.key)
    _check_unique(studies)
    return Discovery(tuple(studies), tuple(skipped))


def _walk(root: Path, excluded: set[Path]):
    """The candidate files under ``root``, sorted: through links to folders too (a study
    folder linked into the root was skipped without a word), each real folder once (a link
    loop ends there); hidden entries, DICOMDIR, pipes and devices left out, and so are
    calcinosis's own output folders (a batch output inside the root would be read as studies:
    its label maps failed as "values cannot be HU")."""
    seen: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        real = here.resolve()
        if real in seen or (here != root and _is_output_folder(here, filenames)):
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and (here / d).resolve() not in excluded)
        for name in sorted(filenames):
            if is_candidate_file(here / name):
                yield here / name


def _is_output_folder(folder: Path, names: list[str]) -> bool:
    """Whether ``folder`` is an ``analyze`` or ``compare`` output (its summary.json or
    comparison.json written by calcinosis)."""
    if any(name in names and earlier_output(folder, name) for name in ("summary.json", "comparison.json")):
        logger.info("skipping %s: a calcinosis output folder", folder)
        return True
    return False


def _file_study(root: Path, path: Path, suffix: str) -> Study:
    rel = path.relative_to(root).as_posix()
    files = [str(path)]
    if suffix in (".nhdr", ".mhd"):
        # Detached headers: the voxels live in a sibling data file (.raw, .raw.gz ...).
        stem = path.name[: -len(suffix)]
        files += [str(p) for p in sorted(path.parent.glob(f"{glob_escape(stem)}.*"))
                  if p != path and image_suffix(p.name) is None]
    return Study(key=study_key(rel[: -len(suffix)], rel), kind="file", input_path=str(path),
                 series_uid=None, files=tuple(sorted(files)), modality="CT",
                 n_voxels=_image_voxels(path))


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _image_voxels(path: Path) -> int | None:
    """Voxel count from the image header (cheap); None when the header cannot be read."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None  # a damaged file: reading it in the batch says what is wrong
    n = 1
    for size in reader.GetSize():
        n *= int(size)
    return n


def _check_unique(studies: list[Study]) -> None:
    seen: dict[str, Study] = {}
    for s in studies:
        if s.key in seen:  # a hash collision of 32 bits: say so rather than mix two studies
            raise InputError(f"studies {seen[s.key].input_path} and {s.input_path} have the same key "
                             f"{s.key}; rename one of them")
        seen[s.key] = s
