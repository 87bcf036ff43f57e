"""Detection's first steps, which need no noise estimate: the dense voxels' components, and
the bones among them with what their split reads (mask, smoothed box).

A bone's split (:func:`calcinosis.anatomy.bone.split_bone`) is the longest step of
detection. :func:`start_detection` labels the dense voxels and prepares the bones in a
worker thread while the caller estimates the noise (which the split's valley depth and the
seed rules need), so that the splits can start as soon as
:func:`calcinosis.detect.candidates.detect_lesions` is called.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from calcinosis.anatomy.components import Components, label_components
from calcinosis.anatomy.morphology import grow_box, margin_voxels
from calcinosis.config import AnalysisConfig
from calcinosis.detect.smoothing import SmoothedHU
from calcinosis.sparse_zeros import sparse_zeros
from calcinosis.threads import n_threads

# A bone-sized structure with fewer voxels than this share at metal level is bone with
# enamel (teeth) or a few saturated voxels, not metal.
TOOTH_METAL_FRACTION = 0.02
# Deposits are split from bone only on slices up to this thick (mm) and pixels up to this
# wide (mm): the split's valleys, shoulders and blur profile are read a voxel or two from the
# bone, which coarser pixels average with it (a real CT resampled to 3 mm voxels: 41 of its 58
# findings were pieces parted from its bones).
MAX_SPLIT_SLICE_MM = 3.5
MAX_SPLIT_PIXEL_MM = 1.5


def coarse_pixels(spacing_zyx) -> bool:
    """Whether the pixels are wider than ``MAX_SPLIT_PIXEL_MM``: too coarse for what is read a
    voxel or two from a bone."""
    return max(float(spacing_zyx[1]), float(spacing_zyx[2])) > MAX_SPLIT_PIXEL_MM


def splits_bone(spacing_zyx) -> bool:
    """Whether deposits are split from bone on this grid (slices and pixels fine enough)."""
    return float(spacing_zyx[0]) <= MAX_SPLIT_SLICE_MM and not coarse_pixels(spacing_zyx)
# A bone's box is read with this margin (mm): the deposits lying on it and their blur.
BONE_MARGIN_MM = 4.0

Box = tuple[slice, slice, slice]


@dataclass(frozen=True, eq=False)
class BonePrep:
    """One bone (component ``label``) ready for its split: its voxels (``piece``) and the
    smoothed HU (``smooth_hu``) on ``box``, its bounding box grown by ``BONE_MARGIN_MM``."""

    label: int
    box: Box
    piece: np.ndarray
    smooth_hu: np.ndarray


@dataclass(frozen=True, eq=False)
class DetectionStart:
    """What :func:`start_detection` computes ahead: futures of the components of
    ``hu >= config.threshold_hu`` and of the bones' :class:`BonePrep` (in label order;
    empty on slices too thick to split), for ``config`` and ``spacing_zyx``."""

    config: AnalysisConfig
    spacing_zyx: tuple[float, float, float]
    shape: tuple[int, int, int]
    components: Future
    bones: Future


def bone_boxes(comps: Components, hu: np.ndarray, body: np.ndarray, spacing_zyx, config: AnalysisConfig,
               ) -> list[tuple[int, Box]]:
    """Labels (ascending) of the structures that detection takes as bone: large (by volume or
    extent), mostly in the body, not metal; with their boxes grown by ``BONE_MARGIN_MM``.

    The rules of :func:`~calcinosis.detect.candidates.detect_lesions`, read from the voxels of
    the components with enough voxels to be large only (a component spans at least one voxel
    per index along each axis), before the statistics of all are gathered.
    """
    return [(label, box) for label, box, _ in _bones_with_voxels(comps, hu, body, spacing_zyx, config)]


def _bones_with_voxels(comps: Components, hu: np.ndarray, body: np.ndarray, spacing_zyx, config: AnalysisConfig):
    """:func:`bone_boxes`, each bone with its voxels' ``(z, y, x)`` indices (for its mask)."""
    vv = float(np.prod(spacing_zyx))
    counts = comps.counts
    min_voxels = min(int(config.bone_min_extent_mm / float(s)) for s in spacing_zyx)
    margin = margin_voxels(spacing_zyx, BONE_MARGIN_MM)
    body_flat = body.reshape(-1)
    out = []
    for label in np.flatnonzero((counts >= min_voxels) | (counts * vv >= config.bone_min_volume_mm3)):
        if label == 0:
            continue
        voxels = comps.voxels(int(label))
        n = max(int(counts[label]), 1)
        if float(np.count_nonzero(body_flat[voxels])) / n < 0.5:
            continue  # outside the body: table or external object
        where = np.unravel_index(voxels, comps.shape)
        box = tuple(slice(int(w.min()), int(w.max()) + 1) for w in where)
        extent = max((s.stop - s.start) * sp for s, sp in zip(box, spacing_zyx))
        if counts[label] * vv < config.bone_min_volume_mm3 and extent < config.bone_min_extent_mm:
            continue
        values = hu[where]
        if values.max() >= config.metal_hu and \
                float(np.count_nonzero(values >= config.metal_hu)) / n >= TOOTH_METAL_FRACTION:
            continue  # metal
        out.append((int(label), grow_box(box, margin, hu.shape), where))
    return out


def prepare_bones(comps: Components, hu: np.ndarray, body: np.ndarray, spacing_zyx, config: AnalysisConfig,
                  smooth) -> list[BonePrep]:
    """The bones of :func:`bone_boxes` ready for their split (mask and smoothed box, read from
    ``smooth``); none where nothing is split (:func:`splits_bone`)."""
    if not splits_bone(spacing_zyx):
        return []
    preps = []
    for label, box, where in _bones_with_voxels(comps, hu, body, spacing_zyx, config):
        # The mask from the indices the rules read (Components.mask_in's, without a second
        # unravelling of a skeleton's million voxels).
        piece = np.zeros(tuple(s.stop - s.start for s in box), bool)
        piece[tuple(w - s.start for w, s in zip(where, box))] = True
        del where
        preps.append(BonePrep(label, box, piece, smooth[box]))
    return preps


def start_detection(hu: np.ndarray, body: np.ndarray | Future, spacing_zyx,
                    config: AnalysisConfig) -> DetectionStart:
    """Label ``hu >= config.threshold_hu`` and prepare its bones for their split, in a worker
    thread (ITK and ``scipy.ndimage`` release the GIL) while the caller goes on; in this
    thread with ``CALCINOSIS_THREADS=1``. Pass the result to ``detect_lesions(start=...)``.
    ``hu`` and ``body`` must not change meanwhile.

    ``body`` may be a :class:`~concurrent.futures.Future` of the body mask that the caller
    resolves later: the labelling reads only ``hu``, so it starts at once, and the bones
    (which read the body) are prepared when the mask is there (with one thread: in the
    caller's ``set_result``). Resolve it before ``detect_lesions`` waits for the bones.
    """
    spacing = tuple(float(s) for s in spacing_zyx)
    smooth = SmoothedHU(hu, spacing)  # type: ignore[arg-type]
    if not isinstance(body, Future):
        body_done: Future = Future()
        body_done.set_result(body)
        body = body_done

    def components() -> Components:
        # The mask on ordinary memory pages: numpy's huge-page-advised array for it may stall
        # at its first writes while the kernel compacts memory (see calcinosis.sparse_zeros);
        # measured in the analysis of the bench trunk: 0.03-0.17 s, against a steady 0.06 s.
        dense = sparse_zeros(hu.shape, bool)
        np.greater_equal(hu, config.threshold_hu, out=dense)
        return label_components(dense)

    def bones(comps: Components, body_mask: np.ndarray) -> list[BonePrep]:
        return prepare_bones(comps, hu, body_mask, spacing, config, smooth)

    if n_threads() == 1:
        comps_done: Future = Future()
        comps_done.set_result(components())
        bones_done: Future = Future()

        def prepare(mask: Future) -> None:  # runs in the thread that resolves ``body``
            try:
                bones_done.set_result(bones(comps_done.result(), mask.result()))
            except BaseException as error:  # noqa: BLE001 - handed to whoever reads the bones
                bones_done.set_exception(error)

        body.add_done_callback(prepare)
        return DetectionStart(config, spacing, hu.shape,  # type: ignore[arg-type]
                              comps_done, bones_done)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        comps_future = pool.submit(components)
        bones_future = pool.submit(lambda: bones(comps_future.result(), body.result()))
    finally:
        pool.shutdown(wait=False)  # the thread ends with these two jobs
    return DetectionStart(config, spacing, hu.shape,  # type: ignore[arg-type]
                          comps_future, bones_future)
