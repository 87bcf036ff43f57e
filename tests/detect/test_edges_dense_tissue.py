"""Findings cut by the scan's edge, bone fringe on thick slices, faint resolved tissue."""

from __future__ import annotations

import numpy as np

from calcinosis.detect.edges import scan_limited_findings
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


def test_cut_by_the_scan_edge_only_where_the_body_runs_on():
    labels = _labels()
    body = np.ones(labels.shape, bool)
    lesions = [_lesion(i) for i in (1, 2, 3)]
    # The crop is the whole image and the body fills it: the scan cuts it at every face.
    out = scan_limited_findings(lesions, labels, (0, 0, 0), labels.shape, body, (1.0, 1.0, 1.0), 130.0)
    assert out == {1: "scan_edge", 3: "scan_edge"}
    # The crop lies inside a larger image: its faces are not the scan's edge.
    out = scan_limited_findings(lesions, labels, (5, 5, 5), (30, 40, 40), body, (1.0, 1.0, 1.0), 130.0)
    assert out == {}
    # The body stops before the image's in-plane border: the lesion there is not cut.
    body[:, 15:, :] = False
    out = scan_limited_findings(lesions, labels, (0, 0, 0), labels.shape, body, (1.0, 1.0, 1.0), 130.0)
    assert out == {1: "scan_edge"}


def test_faint_piece_near_bone_on_thick_slices():
    labels = _labels()
    body = np.zeros(labels.shape, bool)
    body[2:8, 2:17, 2:17] = True  # the body does not reach the image edge
    faint_near = _lesion(2, peak_hu=150.0, bone_distance_mm=5.0)
    out = scan_limited_findings([faint_near], labels, (0, 0, 0), labels.shape, body, (5.0, 0.6, 0.6), 130.0)
    assert out == {2: "bone_partial_volume"}
    for spacing, lesion in (((1.5, 0.6, 0.6), faint_near),  # thin slices: not this rule
                            ((5.0, 0.6, 0.6), _lesion(2, peak_hu=400.0, bone_distance_mm=5.0)),  # dense
                            ((5.0, 0.6, 0.6), _lesion(2, peak_hu=150.0, bone_distance_mm=20.0))):  # far
        assert scan_limited_findings([lesion], labels, (0, 0, 0), labels.shape, body, spacing, 130.0) == {}


def test_dense_soft_tissue_is_resolved_and_faint():
    assert is_dense_soft_tissue(_lesion(1, peak_hu=185.0, background_hu=40.0, n_voxels=20), 1.5)
    # A dense deposit, a point-like faint speck, and thick slices are not.
    assert not is_dense_soft_tissue(_lesion(1, peak_hu=400.0, background_hu=40.0, n_voxels=20), 1.5)
    assert not is_dense_soft_tissue(_lesion(1, peak_hu=185.0, background_hu=40.0, n_voxels=2), 1.5)
    assert not is_dense_soft_tissue(_lesion(1, peak_hu=185.0, background_hu=40.0, n_voxels=20), 5.0)
    # Contrast is over the local background: 185 HU in fat (-100) is 285 HU above it.
    assert not is_dense_soft_tissue(_lesion(1, peak_hu=185.0, background_hu=-100.0, n_voxels=20), 1.5)
