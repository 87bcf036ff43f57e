"""Where a finding lies decides what it is: in a bone's marrow (bone, not a lesion), or deep
in the neck round the airway (visceral or vascular, not a muscle's calcinosis); and a piece
the bone split parted from a bone that is a rod or a plate is bone.

Synthetic slices built by hand, each rule with the case it must leave alone: the spinal
canal (a hole of the bone whose contents are fluid), a hole larger than a marrow cavity,
a finding in the subcutaneous fat, one in the neck's muscle far from the airway.
"""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.anatomy.cavity import find_cavity
from calcinosis.detect.trunk import (
    BONE_PIECE_MIN_ELONGATION,
    BONE_PIECE_MIN_VOXELS,
    MARROW_MAX_HOLE_MM2,
    NECK_VISCERA_MM,
    classify_trunk_findings,
    in_plane_elongation,
)
from calcinosis.measure.lesion import Lesion

SP = (2.0, 0.5, 0.5)  # mm: z, y, x


def _lesion(comp: str, region: str, volume: float = 20.0, diameter: float = 3.0, flags: str = "",
            n_voxels: int = 20) -> Lesion:
    return Lesion(1, 0.0, 0.0, 0.0, volume, 5.0, 10.0, 400.0, 300.0, diameter, comp, "left", region,
                  40.0, 0.0 if comp == "juxta_osseous" else 12.0, 40.0, n_voxels, "low" if flags else "high", flags)


def _classify(hu, labels, bone, body, lesion, at):
    cavity = find_cavity(body, bone, SP, np.zeros(hu.shape[0], bool), hu=hu)
    return classify_trunk_findings([lesion], labels, cavity, lambda _lesion: at, SP, hu=hu, body=body,
                                   bone=bone, threshold_hu=130.0)


def _bone_ring(shape, centre, radius_px, cortex_px):
    """A disk of ``radius_px`` on every slice (the bone's outline, filled as detection
    fills a bone's holes), and its cortex: the outer ``cortex_px``."""
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    r = np.hypot(yy - centre[0], xx - centre[1])
    outline = np.broadcast_to(r <= radius_px, shape).copy()
    cortex = np.broadcast_to((r <= radius_px) & (r > radius_px - cortex_px), shape).copy()
    return outline, cortex


def _marrow_scene(hole_hu: float, radius_px: int = 40):
    shape = (5, 140, 140)
    centre = (70, 70)
    hu = np.full(shape, 40.0, np.float32)  # muscle
    outline, cortex = _bone_ring(shape, centre, radius_px, 4)
    hu[outline] = hole_hu
    hu[cortex] = 900.0
    labels = np.zeros(shape, np.uint16)
    island = np.zeros(shape, bool)
    island[1:4, 66:74, 66:74] = True  # 4 mm across, in the middle of the hole
    hu[island] = 300.0
    labels[island] = 1
    body = np.ones(shape, bool)
    return hu, labels, outline, body, (2, 70, 70)


@pytest.mark.parametrize("hole_hu", [100.0, -80.0])
def test_island_in_red_or_fatty_marrow_is_bone(hole_hu):
    # A vertebral body's marrow (~100 HU in the old, lung2 of pyradiomics: median 98) or a
    # long bone's fatty marrow: the dense island inside the cortex is the bone's own.
    hu, labels, bone, body, at = _marrow_scene(hole_hu)
    kept, excluded, lut = _classify(hu, labels, bone, body, _lesion("juxta_osseous", "back"), at)
    assert kept == [] and [e.reason for e in excluded] == ["bone"] and lut[1] == 0


def test_deposit_in_the_spinal_canal_is_kept():
    # The canal's contents (fluid, cord: 20 HU here) are a hole of the bone too: not marrow.
    hu, labels, bone, body, at = _marrow_scene(20.0)
    kept, excluded, _ = _classify(hu, labels, bone, body, _lesion("juxta_osseous", "back"), at)
    assert [k.compartment for k in kept] == ["juxta_osseous"] and excluded == []


def test_hole_larger_than_a_marrow_cavity_is_not_marrow():
    radius_px = 70  # 35 mm: a ring round 3800 mm2, more than any marrow cavity
    assert np.pi * ((radius_px - 4) * SP[1]) ** 2 > MARROW_MAX_HOLE_MM2
    hu, labels, bone, body, at = _marrow_scene(100.0, radius_px=radius_px)
    hu = np.pad(hu, ((0, 0), (10, 10), (10, 10)), constant_values=40.0)
    labels, bone = (np.pad(a, ((0, 0), (10, 10), (10, 10))) for a in (labels, bone))
    body = np.ones(hu.shape, bool)
    kept, excluded, _ = _classify(hu, labels, bone, body, _lesion("juxta_osseous", "back"),
                                  (at[0], at[1] + 10, at[2] + 10))
    assert len(kept) == 1 and excluded == []


def test_finding_only_partly_inside_the_bone_is_not_marrow():
    hu, labels, bone, body, at = _marrow_scene(100.0)
    labels[1:4, 66:74, 66:74] = 0
    labels[1:4, 66:74, 100:120] = 1  # across the cortex, out into the muscle
    kept, excluded, _ = _classify(hu, labels, bone, body, _lesion("juxta_osseous", "back"), (2, 70, 110))
    assert len(kept) == 1 and excluded == []


def _neck_scene(offset_mm: float):
    """A neck: soft tissue with an airway (a 16 mm air tube) in the middle, and a 3 mm
    finding ``offset_mm`` from the airway's wall."""
    shape = (5, 240, 240)
    hu = np.full(shape, 40.0, np.float32)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    airway = np.hypot(yy - 60, xx - 120) <= 16  # radius 8 mm
    hu[:, airway] = -1000.0
    labels = np.zeros(shape, np.uint16)
    x = 120 + 16 + int(round(offset_mm / SP[2]))
    labels[1:4, 57:63, x - 3:x + 3] = 1
    hu[labels > 0] = 500.0
    body = np.ones(shape, bool)
    bone = np.zeros(shape, bool)
    return hu, labels, bone, body, (2, 60, x)


@pytest.mark.parametrize("offset_mm", [14.0, 24.0])
def test_neck_finding_near_the_airway_is_visceral(offset_mm):
    # Thyroid, nodal or carotid calcification 12-26 mm from the trachea (lung2 of
    # pyradiomics: four such, once reported as intramuscular). Nodule-shaped: visceral.
    assert offset_mm < NECK_VISCERA_MM
    hu, labels, bone, body, at = _neck_scene(offset_mm)
    kept, _, _ = _classify(hu, labels, bone, body, _lesion("intramuscular", "head_neck"), at)
    assert [k.compartment for k in kept] == ["visceral"]


@pytest.mark.parametrize("comp, region, offset_mm", [
    ("intramuscular", "head_neck", NECK_VISCERA_MM + 8.0),  # in a muscle of the neck, away from the airway
    ("subcutaneous", "head_neck", 14.0),  # in the fat under the skin: stays subcutaneous
    ("intramuscular", "shoulder", 14.0),  # the rule is the neck's
])
def test_neck_rule_leaves_other_findings(comp, region, offset_mm):
    hu, labels, bone, body, at = _neck_scene(offset_mm)
    kept, _, _ = _classify(hu, labels, bone, body, _lesion(comp, region), at)
    assert [k.compartment for k in kept] == [comp]


def _beside_bone_scene(rows: int, cols: int):
    """A finding of ``rows`` x ``cols`` pixels on 3 slices in muscle beside (not inside) a
    bone's outline."""
    hu, labels, bone, body, _ = _marrow_scene(100.0)
    labels[:] = 0
    labels[1:4, 70 - rows // 2:70 - rows // 2 + rows, 112:112 + cols] = 1
    hu[labels > 0] = 400.0
    return hu, labels, bone, body, (2, 70, 112 + cols // 2)


@pytest.mark.parametrize("rows, cols, flags, n_voxels, is_bone", [
    (4, 24, "split_from_bone", BONE_PIECE_MIN_VOXELS, True),  # a rod 2 x 12 mm parted from the bone: a process's tip
    (8, 8, "split_from_bone", BONE_PIECE_MIN_VOXELS, False),  # a blob 4 mm across parted from the bone: a deposit
    (4, 24, "", BONE_PIECE_MIN_VOXELS, False),  # the same rod apart from any bone: the rule is the bone split's
    (4, 24, "small", BONE_PIECE_MIN_VOXELS, False),
    (4, 24, "split_from_bone", BONE_PIECE_MIN_VOXELS - 1, False),  # too few voxels for the shape to tell
])
def test_rod_parted_from_a_bone_is_bone(rows, cols, flags, n_voxels, is_bone):
    hu, labels, bone, body, at = _beside_bone_scene(rows, cols)
    lesion = _lesion("juxta_osseous", "back", flags=flags, n_voxels=n_voxels)
    kept, excluded, lut = _classify(hu, labels, bone, body, lesion, at)
    if is_bone:
        assert kept == [] and [e.reason for e in excluded] == ["bone_piece"] and lut[1] == 0
    else:
        assert [k.compartment for k in kept] == ["juxta_osseous"] and excluded == []


def test_in_plane_elongation_of_a_blob_a_rod_and_a_column():
    yy, xx = np.mgrid[:60, :60]
    disk = np.hypot(yy - 30, xx - 30) <= 12  # 12 mm across at 0.5 mm
    blob = np.broadcast_to(disk, (5, 60, 60))
    assert in_plane_elongation(blob, SP) == pytest.approx(1.0, abs=0.1)
    rod = np.zeros((5, 60, 60), bool)
    rod[2, 28:32, 5:53] = True  # 2 x 24 mm: the circle of its area is 7.8 mm across
    assert in_plane_elongation(rod, SP) == pytest.approx(23.5 / np.sqrt(4 * 48 / np.pi), rel=0.01)
    assert in_plane_elongation(rod, SP) >= BONE_PIECE_MIN_ELONGATION > in_plane_elongation(blob, SP)
    # Long along z only (a deposit's partial volume on thick slices): not elongated in-plane.
    column = np.zeros((5, 60, 60), bool)
    column[:, 28:36, 28:36] = True
    assert in_plane_elongation(column, SP) < BONE_PIECE_MIN_ELONGATION


def _wall_scene(in_pocket: bool):
    """A trunk section (0.5 mm pixels): a disk of body with 10 mm of subcutaneous fat under
    the skin, muscle inside it, and deep in the muscle a pocket of fat (20 mm across, 40 mm
    from the skin: the fat beside a vertebral body). A 3 mm deposit in the pocket, or in the
    subcutaneous fat; no bone, so no cavity is modelled."""
    shape = (5, 200, 200)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    r = np.hypot(yy - 100, xx - 100)
    body = np.broadcast_to(r <= 95, shape).copy()
    hu = np.where(body, np.where(r > 75, -100.0, 45.0), -1000.0).astype(np.float32)
    pocket = np.hypot(yy - 100, xx - 100) <= 20  # the middle: 75 px = 37 mm under the fat
    hu[:, pocket] = -90.0
    centre = (100, 100) if in_pocket else (100, 15)  # in the subcutaneous fat: 5-10 mm deep
    deposit = np.zeros(shape, bool)
    deposit[1:4, centre[0] - 3:centre[0] + 3, centre[1] - 3:centre[1] + 3] = True
    hu[deposit] = 600.0
    labels = deposit.astype(np.uint16)
    return hu, labels, np.zeros(shape, bool), body, (2, *centre)


@pytest.mark.parametrize("region", ["abdomen", "back"])
def test_deposit_in_deep_fat_of_the_trunk_is_not_subcutaneous(region):
    # The real abdominal series' 4.5 mm finding in the fat beside the vertebral body, 64 mm
    # deep, was "subcutaneous" (fat round it): subcutaneous fat lies between the skin and the
    # muscle fascia, and fat enclosed by muscle deep in the trunk is the retroperitoneum's or
    # the mediastinum's (nodes, vessels).
    hu, labels, bone, body, at = _wall_scene(in_pocket=True)
    kept, excluded, _ = _classify(hu, labels, bone, body, _lesion("subcutaneous", region), at)
    assert [k.compartment for k in kept] == ["visceral"] and excluded == []


def test_deposit_in_the_fat_under_the_skin_stays_subcutaneous():
    hu, labels, bone, body, at = _wall_scene(in_pocket=False)
    kept, _, _ = _classify(hu, labels, bone, body, _lesion("subcutaneous", "abdomen"), at)
    assert [k.compartment for k in kept] == ["subcutaneous"]
    # A limb's deposit is not looked at (the rule is the trunk's).
    hu, labels, bone, body, at = _wall_scene(in_pocket=True)
    kept, _, _ = _classify(hu, labels, bone, body, _lesion("subcutaneous", "thigh"), at)
    assert [k.compartment for k in kept] == ["subcutaneous"]


class _CavityAnswers:
    """A cavity that answers every point the same: in it, taken for its depth alone or not,
    inside the bones' hull or not."""

    def __init__(self, by_depth_only: bool, in_bone_hull: bool = False):
        self._depth_only = by_depth_only
        self._in_hull = in_bone_hull

    def in_cavity(self, _idx):
        return True

    def by_depth_only(self, _idx):
        return self._depth_only

    def in_bone_hull(self, _idx):
        return self._in_hull

    def beside_spine(self, _idx):
        return False

    def in_rib_cage(self, _idx):
        return False

    def in_front_wall(self, _idx):
        return False


@pytest.mark.parametrize("by_depth_only", [True, False])
def test_fat_under_the_skin_in_a_cavity_taken_for_depth_alone_stays_subcutaneous(by_depth_only):
    # Below the ribs the cavity is also what lies 60 mm or more from the skin; an obese
    # wall's fat reaches that deep, and a deposit in it (joined to the fat under the skin)
    # stays subcutaneous. Where the cavity is the place itself (inside the rib cage's hull,
    # or under the wall), fat there is the cavity's whatever it joins.
    hu, labels, bone, body, at = _wall_scene(in_pocket=False)
    kept, _, _ = classify_trunk_findings([_lesion("subcutaneous", "abdomen")], labels, _CavityAnswers(by_depth_only),
                                         lambda _lesion: at, SP, hu=hu, body=body, bone=bone, threshold_hu=130.0)
    assert [k.compartment for k in kept] == (["subcutaneous"] if by_depth_only else ["visceral"])


@pytest.mark.parametrize("in_bone_hull", [True, False])
def test_a_hip_finding_inside_the_pelvic_bones_hull_is_the_pelvis(in_bone_hull):
    # The regions call "hip_gluteal" what lies outside the hull of the pelvis's bone plates on
    # a coarse grid; the cavity's hull takes in the sacrum too. A finding inside it (an iliac
    # vessel's calcification on TotalSegmentator's 3 mm-voxel abdomen) is in the pelvis, not a
    # gluteal muscle. The cavity under the abdominal wall alone (in front of the hip joints:
    # the groin's muscles) does not take it.
    hu, labels, bone, body, at = _wall_scene(in_pocket=False)
    kept, _, _ = classify_trunk_findings([_lesion("intramuscular", "hip_gluteal")], labels,
                                         _CavityAnswers(False, in_bone_hull), lambda _lesion: at, SP, hu=hu,
                                         body=body, bone=bone, threshold_hu=130.0)
    assert [(k.compartment in ("visceral", "vascular"), k.region) for k in kept] == (
        [(True, "pelvis")] if in_bone_hull else [(False, "hip_gluteal")])
