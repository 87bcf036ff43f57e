"""One study loaded for viewing: the CT (if available), the label map, the lesions and summary.

Loading reads fixed file names inside the study's output folder (``lesions.csv``,
``lesions.nii.gz``, ``summary.json``) and the CT the catalog names for it; nothing
else. :class:`StudyStore` keeps the last few loaded studies in memory (LRU) and loads
each at most once at a time, in a background thread when asked to prefetch.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calcinosis.errors import InputError
from calcinosis.web.catalog import StudySource
from calcinosis.web.orientation import ViewOrientation, view_spacing, view_to_lps_affine

logger = logging.getLogger(__name__)

# summary.json sections shown on the study page; "input" only keeps grid facts
# and whatever the user asked to keep at analysis time (identifiers, source name).
SUMMARY_KEYS = ("schema_version", "software", "input", "totals", "by_compartment", "by_region", "by_side",
                "low_confidence_count", "pattern", "excluded", "warnings", "run_time_s")


@dataclass(frozen=True, eq=False)
class LoadedStudy:
    """A study ready for slicing; arrays are views indexed ``[vz, vy, vx]`` (see orientation).

    Attributes
    ----------
    image : numpy.ndarray or None
        HU (int16) view of the CT, or None when the CT is not available.
    labels : numpy.ndarray
        Label map view (value = lesion_id).
    spacing_mm : tuple of float
        Voxel size along ``(vx, vy, vz)``.
    view_to_lps : numpy.ndarray
        4 x 4 homogeneous matrix, view index -> LPS mm.
    lesions : tuple of dict
        lesions.csv rows (NaN -> None), each with ``view_index`` ``[vx, vy, vz]``: a voxel of the
        deposit nearest its centroid, so that the slices through it show its outline.
    summary : dict
        The summary.json sections in :data:`SUMMARY_KEYS`.
    image_note : str
        Why the CT is missing (empty when it is present).
    """

    key: str
    image: np.ndarray | None
    labels: np.ndarray
    spacing_mm: tuple[float, float, float]
    view_to_lps: np.ndarray
    lesions: tuple[dict[str, Any], ...]
    summary: dict[str, Any]
    image_note: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.labels.shape)

    def describe(self) -> dict[str, Any]:
        """The JSON the study page starts from (no arrays, no paths, no identifiers unless kept)."""
        return {
            "key": self.key, "has_image": self.image is not None, "image_note": self.image_note,
            "shape_zyx": list(self.shape), "spacing_mm": list(self.spacing_mm),
            "view_to_lps": [[round(float(v), 6) for v in row] for row in self.view_to_lps],
            "lps_to_view": [[round(float(v), 8) for v in row] for row in np.linalg.inv(self.view_to_lps)],
            "lesions": list(self.lesions), "summary": self.summary,
        }


def load_study(source: StudySource) -> LoadedStudy:
    """Read a study's output folder (and its CT when known).

    Raises
    ------
    InputError
        The folder is not a complete ``analyze`` output (no summary.json / lesions.nii.gz).
    """
    import SimpleITK as sitk

    from calcinosis.report.tables import read_lesions_csv

    out = source.output_dir
    if out is None or not (out / "summary.json").is_file() or not (out / "lesions.nii.gz").is_file():
        raise InputError(f"study {source.key} has no complete analysis output")
    summary_doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    label_img = sitk.ReadImage(str(out / "lesions.nii.gz"))
    labels = sitk.GetArrayViewFromImage(label_img).astype(np.uint16, copy=True)
    direction = np.asarray(label_img.GetDirection(), float).reshape(3, 3)
    spacing, origin = label_img.GetSpacing(), label_img.GetOrigin()
    orientation = ViewOrientation.of(direction, labels.shape)
    rows = read_lesions_csv(out / "lesions.csv") if (out / "lesions.csv").is_file() else []
    image, note = _load_image(source, labels.shape, spacing)
    jump = _jump_points(labels, orientation)
    lesions = []
    for row in rows:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        clean["view_index"] = jump.get(int(row["lesion_id"]))
        lesions.append(clean)
    return LoadedStudy(
        key=source.key, image=None if image is None else orientation.view(image),
        labels=orientation.view(labels), spacing_mm=view_spacing(orientation, spacing),
        view_to_lps=view_to_lps_affine(orientation, spacing, origin, direction), lesions=tuple(lesions),
        summary={k: summary_doc[k] for k in SUMMARY_KEYS if k in summary_doc}, image_note=note)


def _load_image(source: StudySource, shape_zyx, spacing_xyz) -> tuple[np.ndarray | None, str]:
    from calcinosis.io import read_volume

    if source.image_path is None:
        return None, "the CT image was not given (serve --image, or a registry with its input paths)"
    try:
        volume = read_volume(source.image_path, series_uid=source.series_uid)
    except (InputError, OSError) as exc:
        logger.warning("study %s: cannot read its CT: %s", source.key, exc)
        return None, "the CT image could not be read; outlines only"
    if volume.shape != tuple(shape_zyx) or not np.allclose(volume.spacing, spacing_xyz, rtol=1e-3):
        return None, "the CT image does not match the analysed grid; outlines only"
    return np.asarray(volume.array), ""


def _jump_points(labels: np.ndarray, orientation: ViewOrientation) -> dict[int, list[int]]:
    """View index of the voxel of each lesion nearest to its voxel centroid."""
    from scipy import ndimage

    out: dict[int, list[int]] = {}
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        zyx = np.argwhere(labels[box] == i)
        nearest = zyx[np.argmin(((zyx - zyx.mean(axis=0)) ** 2).sum(axis=1))]
        zyx_full = nearest + np.array([s.start for s in box])
        view = orientation.to_view(zyx_full[::-1])
        out[i] = [int(round(v)) for v in view]
    return out


class StudyStore:
    """The last ``max_studies`` loaded studies (LRU), each loaded once even when asked twice at once."""

    def __init__(self, max_studies: int = 4) -> None:
        self._max = max(1, int(max_studies))
        self._loaded: OrderedDict[str, Future] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="calcinosis-load")

    def _future(self, source: StudySource) -> Future:
        with self._lock:
            fut = self._loaded.get(source.key)
            if fut is not None and not (fut.done() and fut.exception() is not None):
                self._loaded.move_to_end(source.key)
                return fut
            fut = self._pool.submit(load_study, source)
            self._loaded[source.key] = fut
            while len(self._loaded) > self._max:
                self._loaded.popitem(last=False)
            return fut

    def prefetch(self, source: StudySource) -> None:
        """Start loading ``source`` in the background (no-op when loaded or loading)."""
        self._future(source)

    def get(self, source: StudySource) -> LoadedStudy:
        """The loaded study; waits for a load in progress. Raises what loading raised."""
        return self._future(source).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
