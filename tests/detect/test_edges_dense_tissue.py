"""Findings cut by the scan's edge, bone fringe on thick slices, faint resolved tissue."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from calcinosis.detect.edges import scan_limited_findings
from calcinosis.detect.trunk import WALL_ONLY_REASONS
from calcinosis.detect.dense_tissue import is_dense_soft_tissue
from calcinosis.measure.lesion import Lesion


def _lesion(i, peak_hu=600.0, background_hu=40.0, n_voxels=20, bone_distance_mm=30.0):
    return Lesion(i, 0.0, 0.0, 0.0, 10.0, 5.0, 10.0, peak_hu, 300.0, 3.0, "intramuscular", "left",
                  "thigh", 20.0, bone_distance_mm, background_hu, n_voxels, "high", "")


def _labels():
    labels = np.zeros((10, 20, 20), np.uint16)
    labels[0:2, 8:10, 8:10] = 1  # on the first slice
    labels[5, 8:10, 8:10] = 2  # in the middle
    labels[5, 18:20, 8:10] = 3  # at the in-plane border (last row)
    return labels


def _cut(lesions, labels, body, spacing, hu, offset=(0, 0, 0), full_shape=None):
    return scan_limited_findings(lesions, labels, offset, full_shape or labels.shape, body, spacing, 130.0,
                                 hu=hu, noise_hu=20.0)


def _hu(labels, peak_hu=600.0, background_hu=40.0):
    """Each lesion's voxels at its peak, the rest at the background."""
    return np.where(labels > 0, peak_hu, background_hu).astype(np.float32)


def test_cut_by_the_scan_edge_only_where_the_body_runs_on():
    labels = _labels()
    body = np.ones(labels.shape, bool)
    hu = _hu(labels)
    lesions = [_lesion(i) for i in (1, 2, 3)]
    # The crop is the whole image and the body fills it: the scan cuts it at every face.
    out = _cut(lesions, labels, body, (1.0, 1.0, 1.0), hu)
    assert out == {1: "scan_edge", 3: "scan_edge"}
    # The crop lies inside a larger image: its faces are not the scan's edge.
    out = _cut(lesions, labels, body, (1.0, 1.0, 1.0), hu, (5, 5, 5), (30, 40, 40))
    assert out == {}
    # The body stops before the image's in-plane border: the lesion there is not cut.
    body[:, 15:, :] = False
    out = _cut(lesions, labels, body, (1.0, 1.0, 1.0), hu)
    assert out == {1: "scan_edge"}


def test_cut_only_where_the_dense_part_reaches_the_edge():
    # A deposit in the middle slices whose component reaches the last slice through a chain
    # of noise voxels just over the threshold (noise 20 HU: 132 and 138 HU are less than 5
    # sigma over the 40 HU background) is whole; one whose dense core lies on the last slice is cut, and
    # so is one whose faint end there (150 HU) is more than noise, and a faint finding whose
    # voxels there are noise-level but not faint beside its own peak.
    labels = np.zeros((8, 20, 20), np.uint16)
    body = np.ones(labels.shape, bool)
    hu = np.full(labels.shape, 40.0, np.float32)
    labels[3:6, 8:12, 8:12] = 1
    hu[3:6, 8:12, 8:12] = 1000.0
    labels[6, 11, 12] = labels[7, 12, 12] = 1  # the noise chain to the last slice
    hu[6, 11, 12], hu[7, 12, 12] = 132.0, 138.0
    labels[5:8, 2:5, 2:5] = 2
    hu[5:8, 2:5, 2:5] = 900.0
    labels[7, 15:18, 15:18] = 3  # a faint partial-volume end on the last slice
    hu[7, 15:18, 15:18] = 150.0
    hu[6, 15:18, 15:18] = 700.0
    labels[6, 15:18, 15:18] = 3
    labels[5:8, 15:18, 2:5] = 4  # a faint finding (160 HU) whose voxels are all near noise
    hu[5:7, 15:18, 2:5] = 160.0
    hu[7, 15:18, 2:5] = 135.0
    lesions = [_lesion(1, peak_hu=1000.0), _lesion(2, peak_hu=900.0), _lesion(3, peak_hu=700.0),
               _lesion(4, peak_hu=160.0)]
    out = _cut(lesions, labels, body, (3.0, 0.8, 0.8), hu)
    assert out == {2: "scan_edge", 3: "scan_edge", 4: "scan_edge"}
    # Dense on the edge slice, the first lesion is cut too.
    hu[7, 12, 12] = 900.0
    out = _cut(lesions, labels, body, (3.0, 0.8, 0.8), hu)
    assert out == {1: "scan_edge", 2: "scan_edge", 3: "scan_edge", 4: "scan_edge"}


def test_faint_piece_near_bone_on_thick_slices():
    labels = _labels()
    body = np.zeros(labels.shape, bool)
    body[2:8, 2:17, 2:17] = True  # the body does not reach the image edge
    faint_near = _lesion(2, peak_hu=150.0, bone_distance_mm=5.0)
    hu = _hu(labels)
    out = _cut([faint_near], labels, body, (5.0, 0.6, 0.6), hu)
    assert out == {2: "bone_partial_volume"}
    # 3 mm slices of 3 mm pixels (too coarse for the bone split): the pixel averages the
    # bone's edge in-plane; 3 mm slices of 0.6 mm pixels are not coarse.
    assert _cut([faint_near], labels, body, (3.0, 3.0, 3.0), hu) == {2: "bone_partial_volume"}
    assert _cut([faint_near], labels, body, (3.0, 0.6, 0.6), hu) == {}
    for spacing, lesion in (((1.5, 0.6, 0.6), faint_near),  # thin slices: not this rule
                            ((5.0, 0.6, 0.6), _lesion(2, peak_hu=400.0, bone_distance_mm=5.0)),  # dense
                            ((5.0, 0.6, 0.6), _lesion(2, peak_hu=150.0, bone_distance_mm=20.0))):  # far
        assert _cut([lesion], labels, body, spacing, hu) == {}


def test_small_faint_speck_next_to_bone_is_noise_on_the_bones_blur():
    # Thin slices: a speck flagged small and low-contrast within 2 mm of bone is excluded; not
    # one that is only small, only faint, or further from the bone.
    labels = _labels()
    body = np.zeros(labels.shape, bool)
    body[2:8, 2:17, 2:17] = True
    hu = _hu(labels)

    def speck(flags, bone_distance_mm=1.2):
        return replace(_lesion(2, peak_hu=150.0, n_voxels=2, bone_distance_mm=bone_distance_mm), flags=flags,
                       confidence="low")

    assert _cut([speck("small;low_contrast")], labels, body, (0.6, 0.8, 0.8), hu) == {2: "bone_blur_noise"}
    assert _cut([speck("small;low_contrast;split_from_bone")], labels, body, (0.6, 0.8, 0.8), hu) \
        == {2: "bone_blur_noise"}
    for lesion in (speck("small"), speck("low_contrast"), speck("small;low_contrast", bone_distance_mm=3.0)):
        assert _cut([lesion], labels, body, (0.6, 0.8, 0.8), hu) == {}


def test_point_sized_faint_speck_in_tissue_denser_than_muscle_is_noise():
    # An enhanced liver (100 HU; the scan's soft tissue 60 HU): a speck of one to three voxels
    # flagged low-contrast is excluded, in the cavity too (the rule is not wall-only); not in
    # muscle, not when it stands out of the liver, not when larger than a point's blur, and
    # not without the soft-tissue level.
    labels = _labels()
    body = np.zeros(labels.shape, bool)
    body[2:8, 2:17, 2:17] = True
    hu = _hu(labels)

    def speck(flags="low_contrast", background_hu=100.0, n_voxels=3):
        return replace(_lesion(2, peak_hu=150.0, background_hu=background_hu, n_voxels=n_voxels), flags=flags,
                       confidence="low" if flags else "high")

    def cut(lesion, level=60.0):
        return scan_limited_findings([lesion], labels, (0, 0, 0), labels.shape, body, (2.0, 0.8, 0.8), 130.0,
                                     hu=hu, noise_hu=16.0, tissue_level_hu=level)

    assert cut(speck()) == {2: "dense_tissue_noise"}
    assert cut(speck("small;low_contrast", n_voxels=1)) == {2: "dense_tissue_noise"}
    assert "dense_tissue_noise" not in WALL_ONLY_REASONS
    for lesion, level in ((speck(background_hu=60.0), 60.0),  # in muscle
                          (speck(background_hu=80.0), 60.0),  # less than 25 HU above it
                          (speck(flags=""), 60.0),  # 4 noise SDs or more above the liver
                          (speck(n_voxels=4), 60.0),  # resolved: dense_soft_tissue's to judge
                          (speck(), None)):
        assert cut(lesion, level) == {}


def test_dense_soft_tissue_is_resolved_and_faint():
    assert is_dense_soft_tissue(_lesion(1, peak_hu=185.0, background_hu=40.0, n_voxels=20), 1.5)
    # A dense deposit, a point-like faint speck, and thick slices are not.
    assert not is_dense_soft_tissue(_lesion(1, peak_hu=400.0, background_hu=40.0, n_voxels=20), 1.5)
    assert not is_dense_soft_tissue(_lesion(1, peak_hu=185.0, background_hu=40.0, n_voxels=2), 1.5)
    assert not is_dense_soft_tissue(_lesion(1, peak_hu=185.0, background_hu=40.0, n_voxels=20), 5.0)
    # Contrast is over the local background: 185 HU in fat (-100) is 285 HU above it.
    assert not is_dense_soft_tissue(_lesion(1, peak_hu=185.0, background_hu=-100.0, n_voxels=20), 1.5)
