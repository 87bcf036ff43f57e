"""One time point of a follow-up: the CT, its lesions and their label map.

A :class:`Visit` comes either from a fresh :class:`~calcinosis.pipeline.Analysis`
or from a folder written earlier by ``calcinosis analyze`` (``summary.json``,
``lesions.csv``, ``lesions.nii.gz``) together with the CT it was made from: the
folder gives the lesions, the CT is needed for registration and pictures.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from calcinosis.errors import InputError
from calcinosis.measure.lesion import Lesion
from calcinosis.volume import Volume

ANALYSIS_FILES = ("summary.json", "lesions.csv", "lesions.nii.gz")
# Columns a lesions.csv must hold; the noise SDs (added later) are read when present.
_LESION_FIELDS = tuple(f.name for f in fields(Lesion) if f.default is MISSING)
_OPTIONAL_FIELDS = tuple(f.name for f in fields(Lesion) if f.default is not MISSING)


@dataclass(frozen=True, eq=False)
class Visit:
    """A CT with its deposits. ``labels`` (uint16, value = ``lesion_id``) is on ``volume``'s grid."""

    volume: Volume
    lesions: tuple[Lesion, ...]
    labels: np.ndarray
    name: str
    summary: dict[str, Any] | None = None
    analysis: Any = None  # the Analysis when this run made it, else None

    def __post_init__(self) -> None:
        if self.labels.shape != self.volume.shape:
            raise InputError(f"{self.name}: label map shape {self.labels.shape} differs from the CT's "
                             f"{self.volume.shape}; give the CT the analysis was made from")
        ids = [lesion.lesion_id for lesion in self.lesions]
        if len(set(ids)) != len(ids):
            raise InputError(f"{self.name}: lesion ids are not unique; re-run calcinosis analyze")

    @property
    def lesion_by_id(self) -> dict[int, Lesion]:
        return {lesion.lesion_id: lesion for lesion in self.lesions}


def visit_from_analysis(analysis, name: str) -> Visit:
    """A :class:`Visit` of an :class:`~calcinosis.pipeline.Analysis` (no copy of the arrays)."""
    return Visit(analysis.volume, tuple(analysis.lesions), analysis.labels, name, None, analysis)


def is_analysis_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder written by ``calcinosis analyze`` (it has ``summary.json``)."""
    p = Path(path)
    return p.is_dir() and (p / "summary.json").is_file()


def load_analysis_folder(folder: str | os.PathLike[str], image: Volume, name: str) -> Visit:
    """A :class:`Visit` from an ``analyze`` output folder and the CT it was made from.

    Raises :class:`InputError` when a file is missing or unreadable, or when ``image``
    is not on the grid the analysis describes (a different CT).
    """
    folder = Path(folder)
    missing = [f for f in ANALYSIS_FILES if not (folder / f).is_file()]
    if missing:
        raise InputError(f"{name}: analysis folder {folder} lacks {', '.join(missing)}; "
                         "re-run calcinosis analyze into it")
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{name}: cannot read {folder / 'summary.json'} ({exc}); re-run calcinosis analyze") from exc
    _check_same_grid(summary, image, name)
    _check_settings(summary, name)
    lesions = read_lesions(folder / "lesions.csv", name)
    try:
        label_image = sitk.ReadImage(str(folder / "lesions.nii.gz"))
    except RuntimeError as exc:
        raise InputError(f"{name}: cannot read {folder / 'lesions.nii.gz'}; re-run calcinosis analyze") from exc
    labels = sitk.GetArrayFromImage(label_image)
    if labels.shape != image.shape:
        raise InputError(f"{name}: lesions.nii.gz is {labels.shape[::-1]} voxels but the CT is "
                         f"{image.shape[::-1]}; give the CT this analysis was made from")
    if labels.min() < 0 or labels.max() > 65535:
        raise InputError(f"{name}: lesions.nii.gz is not a label map")
    labels = labels.astype(np.uint16, copy=False)
    present = set(np.unique(labels).tolist()) - {0}
    known = {lesion.lesion_id for lesion in lesions}
    if not present <= known:
        raise InputError(f"{name}: lesions.nii.gz holds labels missing from lesions.csv "
                         f"({sorted(present - known)[:5]}); the files are from different runs")
    return Visit(image, lesions, labels, name, summary, None)


def read_lesions(path: Path, name: str) -> tuple[Lesion, ...]:
    """The lesions of a ``lesions.csv`` as :class:`Lesion` records."""
    from calcinosis.report.tables import read_lesions_csv

    try:
        rows = read_lesions_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: cannot read {path} ({exc}); re-run calcinosis analyze") from exc
    out = []
    for k, row in enumerate(rows, start=2):
        absent = [f for f in _LESION_FIELDS if f not in row]
        if absent:
            raise InputError(f"{name}: {path} lacks the columns {', '.join(absent)}; it is not a lesions.csv")
        try:
            values = {f: row[f] for f in _LESION_FIELDS}
            values.update({f: float(row[f]) for f in _OPTIONAL_FIELDS if row.get(f) is not None})
            values["lesion_id"] = int(values["lesion_id"])
            values["n_voxels"] = int(values["n_voxels"])
            for f in ("compartment", "side", "region", "confidence", "flags"):
                values[f] = "" if values[f] is None else str(values[f])
            out.append(Lesion(**values))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name}: {path} line {k} is malformed ({exc})") from exc
    return tuple(out)


def _check_settings(summary: dict, name: str) -> None:
    """Refuse settings that the comparison reads and that are not numbers (an edited
    summary.json): the threshold, read only when a deposit is resolved or new, stopped the
    comparison there with an internal error."""
    settings = summary.get("settings")
    if settings is None:
        return
    if not isinstance(settings, dict):
        raise InputError(f"{name}: summary.json's settings are not a table of settings; re-run calcinosis analyze")
    for key in ("threshold_hu", "mass_calibration_mg_per_hu_cm3", "shell_mm"):
        value = settings.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not np.isfinite(value)):
            raise InputError(f"{name}: summary.json's {key} is not a number ({str(value)[:20]!r}); "
                             "re-run calcinosis analyze")


def _check_same_grid(summary: dict, image: Volume, name: str) -> None:
    inp = summary.get("input") if isinstance(summary, dict) else None
    if not isinstance(inp, dict):
        raise InputError(f"{name}: summary.json has no input section; it is not an analyze output")
    size = inp.get("size_voxels")
    spacing = inp.get("spacing_mm")
    origin = inp.get("origin_mm")
    want = (int(image.shape[2]), int(image.shape[1]), int(image.shape[0]))
    try:
        size = None if size is None else tuple(int(s) for s in size)
    except (TypeError, ValueError):
        raise InputError(f"{name}: summary.json's size_voxels is not three voxel counts; "
                         "re-run calcinosis analyze") from None
    if size is not None and size != want:
        raise InputError(f"{name}: the CT is {want} voxels but the analysis was of a {tuple(size)} image; "
                         "give the CT this analysis was made from")
    # The axes' directions too: the same voxels from the same origin, mirrored or turned (an
    # image whose orientation was written or read differently), put the label map on other
    # anatomy, and the comparison ran on it (a mirrored baseline: 6 new, 22 not covered).
    direction = inp.get("direction")
    for label, have, ref in (("spacing", image.spacing, spacing), ("origin", image.origin, origin),
                             ("orientation", np.asarray(image.direction, float).ravel(), direction)):
        try:
            same = ref is None or np.allclose(np.asarray(have), np.asarray(ref, float), atol=1e-3, rtol=1e-5)
        except (TypeError, ValueError):  # not numbers, or another length
            same = False
        if not same:
            raise InputError(f"{name}: the CT's {label} differs from the analysed image's; "
                             "give the CT this analysis was made from")
