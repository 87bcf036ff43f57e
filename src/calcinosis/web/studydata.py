"""One study loaded for viewing: the CT (if available), the label map, the lesions and summary.

Loading reads fixed file names inside the study's output folder (``lesions.csv``,
``lesions.nii.gz``, ``summary.json``) and the CT the catalog names for it; nothing
else. :class:`StudyStore` keeps the last few studies in memory (LRU); each loads once,
in background threads (outlines and CT in parallel), starting when the page is asked for.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from calcinosis.errors import InputError
from calcinosis.web.catalog import StudySource, without_path
from calcinosis.volume import Volume
from calcinosis.web.orientation import ViewOrientation, view_spacing, view_to_lps_affine

logger = logging.getLogger(__name__)

# summary.json sections shown on the study page; "input" only keeps grid facts
# and whatever the user asked to keep at analysis time (identifiers, source name).
SUMMARY_KEYS = ("schema_version", "software", "input", "totals", "by_compartment", "by_region", "by_side",
                "low_confidence_count", "pattern", "excluded", "warnings", "run_time_s")


@dataclass(frozen=True, eq=False)
class LoadedStudy:
    """A study's outlines, lesions and geometry; arrays are views ``[vz, vy, vx]`` (see orientation).

    Attributes
    ----------
    labels : numpy.ndarray
        Label map view (value = lesion_id).
    orientation : ViewOrientation
        How the analysed grid maps onto the view.
    spacing_mm : tuple of float
        Voxel size along ``(vx, vy, vz)``.
    view_to_lps : numpy.ndarray
        4 x 4 homogeneous matrix, view index -> LPS mm.
    lesions : tuple of dict
        lesions.csv rows (NaN -> None), each with ``view_index`` ``[vx, vy, vz]``: a voxel of the
        deposit nearest its centroid, so that the slices through it show its outline.
    summary : dict
        The summary.json sections in :data:`SUMMARY_KEYS`.
    image_expected : bool
        Whether a CT is known for the study (it loads separately, see :class:`StudyHandle`).
    """

    key: str
    labels: np.ndarray
    orientation: ViewOrientation
    spacing_xyz: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    view_to_lps: np.ndarray
    lesions: tuple[dict[str, Any], ...]
    summary: dict[str, Any]
    image_expected: bool

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.labels.shape)

    def describe(self) -> dict[str, Any]:
        """The JSON the study page starts from (no arrays, no paths, no identifiers unless kept)."""
        return {
            "key": self.key, "has_image": self.image_expected,
            "image_note": "" if self.image_expected else NO_IMAGE_NOTE,
            "shape_zyx": list(self.shape), "spacing_mm": list(self.spacing_mm),
            "view_to_lps": [[round(float(v), 6) for v in row] for row in self.view_to_lps],
            "lps_to_view": [[round(float(v), 8) for v in row] for row in np.linalg.inv(self.view_to_lps)],
            "lesions": list(self.lesions), "summary": self.summary,
        }


NO_IMAGE_NOTE = "the CT image was not given (serve --image, or a registry with its input paths); outlines only"


@dataclass(frozen=True, eq=False)
class StudyImage:
    """The CT as a view ``[vz, vy, vx]`` of int16 HU, or None with the reason."""

    view: np.ndarray | None
    note: str


def load_study(source: StudySource) -> LoadedStudy:
    """Read a study's output folder: label map, lesions, summary (not the CT).

    Raises
    ------
    InputError
        The folder is not a complete ``analyze`` output (no summary.json, lesions.nii.gz or
        lesions.csv), one of them cannot be read, or the label map does not hold the deposits
        of lesions.csv (their ids and voxel counts): outlines drawn from it would sit on other
        deposits, or on none. The message names no folder (names can hold a patient's).
    """
    from calcinosis.report.tables import read_lesions_csv

    out = source.output_dir
    if out is None or not (out / "summary.json").is_file() or not (out / "lesions.nii.gz").is_file():
        raise InputError(f"study {source.key} has no complete analysis output")
    if not (out / "lesions.csv").is_file():
        raise InputError(f"study {source.key} has no lesions.csv beside its summary.json; "
                         "run calcinosis analyze again")
    name = "summary.json"
    try:
        summary_doc = json.loads((out / name).read_text(encoding="utf-8"))
        if not isinstance(summary_doc, dict):
            raise ValueError("not a JSON object")
        name = "lesions.nii.gz"
        labels, spacing, origin, direction = read_label_map(out / name)
        name = "lesions.csv"
        rows = read_lesions_csv(out / name)
        if any(not isinstance(row.get("lesion_id"), int) for row in rows):
            raise ValueError("a row has no lesion_id")
    except (InputError, OSError, ValueError, TypeError, RuntimeError) as exc:
        reason = str(exc).replace(str(out / name), name).replace(str(out) + "/", "")
        raise InputError(f"study {source.key}: its {name} cannot be read ({reason}); "
                         "run calcinosis analyze again") from None
    orientation = ViewOrientation.of(direction, labels.shape)
    jump, counts = _jump_points(labels, orientation, rows, spacing, origin, direction)
    mismatch = _label_mismatch(counts, rows)
    if mismatch:
        raise InputError(f"study {source.key}: its lesions.nii.gz does not match its lesions.csv ({mismatch}); "
                         "run calcinosis analyze again")
    lesions = []
    for row in rows:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        clean["view_index"] = jump.get(int(row["lesion_id"]))
        lesions.append(clean)
    return LoadedStudy(
        key=source.key, labels=orientation.view(labels), orientation=orientation,
        spacing_xyz=tuple(float(s) for s in spacing), spacing_mm=view_spacing(orientation, spacing),
        view_to_lps=view_to_lps_affine(orientation, spacing, origin, direction), lesions=tuple(lesions),
        summary={k: summary_doc[k] for k in SUMMARY_KEYS if k in summary_doc},
        image_expected=source.image_path is not None)


def read_label_map(path) -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...], np.ndarray]:
    """A label map (``lesions.nii.gz``) as uint16 ``[z, y, x]`` with its spacing and origin
    ``(x, y, z)`` and 3 x 3 direction.

    Its voxels are read with :mod:`calcinosis.io.integrity`'s checks: SimpleITK reads a NIfTI
    cut short as zeros, without a word (the viewer then drew no outline for the deposits
    past the cut). Raises :class:`InputError` for a file cut short or damaged, and for one
    that is not a 3-D map of non-negative integer ids (a 2-D one ended in a server error).
    """
    import SimpleITK as sitk

    from calcinosis.io.integrity import check_nifti_complete, read_nifti_voxels

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        check_nifti_complete(path, finite=False)  # a damaged file says so
        raise InputError("not a NIfTI image") from None
    size, dimension = reader.GetSize(), reader.GetDimension()
    if dimension != 3 or reader.GetNumberOfComponents() != 1:
        raise InputError(f"a {dimension}-D image of size {' x '.join(map(str, size))}, not a 3-D label map")
    voxels = read_nifti_voxels(path)
    if voxels is None or voxels[1] is not None:  # a layout or a scaling left to ITK
        check_nifti_complete(path, finite=False)
        array = sitk.GetArrayFromImage(reader.Execute())
    else:
        array = voxels[0]
    if array.dtype.kind not in "iu" or (array.size and (int(array.min()) < 0 or int(array.max()) > 65535)):
        raise InputError(f"its voxels ({array.dtype}) are not lesion ids 0..65535")
    direction = np.asarray(reader.GetDirection(), float).reshape(3, 3)
    return array.astype(np.uint16, copy=False), reader.GetSpacing(), reader.GetOrigin(), direction


def read_image_array(source: StudySource) -> Volume | str:
    """The CT (int16 ``[z, y, x]`` with its geometry), or why it cannot be shown.

    Read by :func:`calcinosis.io.read_volume`, with its checks: the image given to the viewer
    need not be the one the analysis checked (a truncated copy was shown as flat grey
    slices, with no word).
    """
    from calcinosis.io import read_volume

    if source.image_path is None:
        return NO_IMAGE_NOTE
    try:
        volume = read_volume(source.image_path, series_uid=source.series_uid if source.image_path.is_dir() else None)
    except (InputError, OSError, RuntimeError) as exc:
        logger.warning("study %s: cannot read its CT: %s", source.key, exc)
        # No path in what the browser sees (folder names can hold a patient's name).
        return f"the CT image could not be read ({without_path(str(exc), str(source.image_path))}); outlines only"
    return volume


def _jump_points(labels: np.ndarray, orientation: ViewOrientation, rows, spacing, origin,
                 direction) -> tuple[dict[int, list[int]], dict[int, int]]:
    """View index of the voxel of each lesion nearest (in mm) to its centroid in lesions.csv
    (the voxels' own centroid where the row gives none), and each label's voxel count.

    The CSV's centroid picks the slice: the voxels' mean, with the nearest voxel taken in
    storage order, put the jump on either of two slices for a deposit whose voxels lie
    evenly on both, by how the volume was stored, though its centroid was on one of them.
    """
    from scipy import ndimage

    centroids = {}
    for row in rows:
        xyz = [row.get(k) for k in ("x_mm", "y_mm", "z_mm")]
        if all(isinstance(v, float) and math.isfinite(v) for v in xyz):
            centroids[int(row["lesion_id"])] = np.array(xyz)
    index_to_lps = np.asarray(direction, float) @ np.diag(np.asarray(spacing, float))
    jump: dict[int, list[int]] = {}
    counts: dict[int, int] = {}
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        zyx = np.argwhere(labels[box] == i) + np.array([s.start for s in box])
        counts[i] = len(zyx)
        lps = zyx[:, ::-1] @ index_to_lps.T + np.asarray(origin, float)
        target = centroids.get(i, lps.mean(axis=0))
        nearest = zyx[np.argmin(((lps - target) ** 2).sum(axis=1))]
        view = orientation.to_view(nearest[::-1])
        jump[i] = [int(round(v)) for v in view]
    return jump, counts


def _label_mismatch(counts: dict[int, int], rows) -> str:
    """What differs between the label map's ids and voxel counts and lesions.csv's ('' when nothing)."""
    listed = {int(row["lesion_id"]): row.get("n_voxels") for row in rows}
    problems = [f"lesion {i} is not in the label map" for i in sorted(set(listed) - set(counts))]
    problems += [f"label {i} is not in lesions.csv" for i in sorted(set(counts) - set(listed))]
    problems += [f"lesion {i} has {counts[i]} voxels in the label map, {n} in lesions.csv"
                 for i, n in sorted(listed.items()) if i in counts and n is not None and n != counts[i]]
    if len(problems) > 3:
        problems = problems[:3] + [f"{len(problems) - 3} more"]
    return "; ".join(problems)


class StudyHandle:
    """One study loading in the background: outlines and CT load in parallel."""

    def __init__(self, source: StudySource, pool: ThreadPoolExecutor) -> None:
        self.source = source
        self.stamp = files_stamp(source)  # what was on disk when it was loaded
        self._meta = pool.submit(load_study, source)
        self._raw = pool.submit(read_image_array, source)
        self._image: StudyImage | None = None
        self._lock = threading.Lock()

    def failed(self) -> bool:
        return self._meta.done() and self._meta.exception() is not None

    def meta(self) -> LoadedStudy:
        """Outlines, lesions, geometry; waits for them. Raises what loading raised."""
        return self._meta.result()

    def image(self) -> StudyImage:
        """The CT on the analysed grid (waits for it), or None with the reason."""
        with self._lock:
            if self._image is None:
                meta, raw = self.meta(), self._raw.result()
                if isinstance(raw, str):
                    self._image = StudyImage(None, raw)
                else:
                    self._image = _image_on_grid(raw, meta)
            return self._image


def _image_on_grid(volume: Volume, meta: LoadedStudy) -> StudyImage:
    """The CT as a view on the label map's view grid, or why not.

    Its voxels must lie where the label map's lie (each view corner within a tenth of a
    voxel), whichever way each file is stored. Shape and spacing alone let through the same
    scan stored mirrored, or another scan of the same matrix (the other visit), each shown
    under outlines that were not its own.
    """
    orientation = ViewOrientation.of(volume.direction, volume.array.shape)
    if orientation.view_shape != meta.shape or not np.allclose(
            view_spacing(orientation, volume.spacing), meta.spacing_mm, rtol=1e-3):
        return StudyImage(None, "the CT image does not match the analysed grid; outlines only")
    affine = view_to_lps_affine(orientation, volume.spacing, volume.origin, volume.direction)
    corners = np.array([[x, y, z, 1.0] for x in (0, 1) for y in (0, 1) for z in (0, 1)])
    corners[:, :3] *= np.array(meta.shape[::-1]) - 1
    off_mm = float(np.linalg.norm((corners @ (affine - meta.view_to_lps).T)[:, :3], axis=1).max())
    if off_mm > 0.1 * min(meta.spacing_mm):
        return StudyImage(None, f"the CT image lies up to {off_mm:.1f} mm away from the analysed grid "
                                "(another scan?); outlines only")
    return StudyImage(orientation.view(volume.array), "")


def files_stamp(source: StudySource) -> tuple:
    """Size and modification time of the files a study is loaded from (its output's summary
    and label map, its CT): a change means the loaded study is out of date."""
    paths = [source.image_path]
    if source.output_dir is not None:
        paths += [source.output_dir / "summary.json", source.output_dir / "lesions.nii.gz"]
    stamp = []
    for path in paths:
        try:
            st = path.stat() if path is not None else None
        except OSError:
            st = None
        stamp.append(None if st is None else (st.st_size, st.st_mtime_ns))
    return tuple(stamp)


class StudyStore:
    """The last ``max_studies`` loaded studies (LRU), each loaded once even when asked twice at once."""

    def __init__(self, max_studies: int = 4) -> None:
        self._max = max(1, int(max_studies))
        self._loaded: OrderedDict[str, StudyHandle] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="calcinosis-load")

    def handle(self, source: StudySource) -> StudyHandle:
        """The study's handle, loading (or loaded); a failed load is tried again."""
        with self._lock:
            handle = self._loaded.get(source.key)
            # A study redone (or deleted) since it was loaded is loaded again: the detail view
            # kept showing the old result while the list showed the new one.
            if handle is not None and not handle.failed() and handle.stamp == files_stamp(source):
                self._loaded.move_to_end(source.key)
                return handle
            handle = StudyHandle(source, self._pool)
            self._loaded[source.key] = handle
            while len(self._loaded) > self._max:
                self._loaded.popitem(last=False)
            return handle

    def prefetch(self, source: StudySource) -> None:
        """Start loading ``source`` in the background (no-op when loaded or loading)."""
        self.handle(source)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
