"""A CT of the fingers: calcinosis of the finger pads and beside the interphalangeal joints.

Systemic sclerosis (the CREST case in ``../shared/seeds/``) calcifies the fingers first. A
scan of the fingers alone has no body piece as thick as a limb: each finger is a piece of
its own, every bone is small (the phalanges, parted at their joints), and nearly every
deposit lies within 5 mm of one (juxta-osseous) or in the skin. The phantom's ``fingers``
body part lies palm down with the arm overhead, the fingers along z, on the table.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accuracy import match_lesions
from calcinosis.anatomy.body import find_body
from calcinosis.phantom import make_ct_phantom
from calcinosis.pipeline import analyze


def _ideal_volume(ph, d):
    return ((ph.labels == d.id) & (ph.noiseless.array >= 130.0)).sum() * ph.volume.voxel_volume_mm3


@pytest.fixture(scope="module")
def fingers():
    ph = make_ct_phantom("fingers", seed=0, noise_hu=20.0, slice_thickness_mm=1.0, pixel_mm=0.4)
    analysis = analyze(ph.volume)
    return ph, analysis, *match_lesions(ph, analysis.lesions, analysis.labels)


def test_each_finger_is_a_body_piece_and_the_table_is_not(fingers):
    # Before, with no piece 24 mm thick, the biggest piece was taken for the body: the table
    # top. The fingers' bones were then objects outside the body and nothing was found.
    ph, analysis, _, _ = fingers
    body = find_body(ph.volume.array, ph.volume.spacing_zyx)
    assert body.n_parts == 4 and body.small_part
    assert analysis.facts["body_parts"] == 4
    rows = np.flatnonzero(body.mask.any(axis=(0, 2))) + body.crop[1].start
    below = ph.volume.index_to_lps(np.array([0.0, float(rows.max()), 0.0]))[1]
    assert below < ph.table["top_y_mm"] - 5.0  # the table top (at its middle) and below: not body
    assert not [e for e in analysis.detection.excluded if e.reason == "external_object"]


def test_every_deposit_found_none_false_in_its_compartment_and_side(fingers):
    ph, analysis, matches, false = fingers
    assert len(ph.deposits) >= 10
    assert {d.compartment for d in ph.deposits} == {"cutaneous", "juxta_osseous"}
    assert not [m.truth.id for m in matches if m.lesion is None], "deposits missed"
    # No phalanx reported: a little finger's middle phalanx, parted from the proximal one at
    # the joint, was a 714 mm3 "deposit" (its marrow blurred over on the smoothed image).
    assert not false, [(f.volume_mm3, f.peak_hu) for f in false]
    for m in matches:
        assert m.lesion.compartment == m.truth.compartment, (m.truth.id, m.lesion.compartment)
        # The fingers' median x is not the patient's midline: the fingers on either side of it
        # were given opposite sides.
        assert m.lesion.side == m.truth.side == "left"
        assert m.lesion.region == "wrist_hand"
        ideal = _ideal_volume(ph, m.truth)
        if "split_from_bone" in m.lesion.flags:
            # Parted from a phalanx, a deposit may keep a fringe of the bone's blur: deposit 11
            # (1.9 mm, 0.4 mm from the bone) counts 46 voxels against 35 (noted on the core issue).
            assert 0.7 * ideal <= m.lesion.volume_mm3 <= 1.4 * ideal, m.truth.id
        else:
            # Within 15 % of the noiseless count, or within 3 of its stated noise SDs.
            assert abs(m.lesion.volume_mm3 - ideal) <= max(0.15 * ideal, 3.0 * m.lesion.volume_sd_mm3), m.truth.id


def test_deposits_pressed_on_a_phalanx_are_split_off_it():
    # Seed 6 on 0.8 mm slices: deposit 2 (2.0 mm, 851 HU) lies 0.5 mm from a phalanx and joins
    # it at the threshold. A phalanx is a bone piece (hollow, small), and the rules for pieces
    # of ribs cut by the slices missed it; a phalanx along the slices is split as a large bone
    # is (calcinosis.detect.candidates.along_slices).
    ph = make_ct_phantom("fingers", seed=6, noise_hu=15.0, slice_thickness_mm=0.8, pixel_mm=0.4)
    analysis = analyze(ph.volume)
    matches, false = match_lesions(ph, analysis.lesions, analysis.labels)
    pressed = [m for m in matches if m.truth.id == 2]
    assert all(m.truth.compartment == "juxta_osseous" and m.truth.bone_gap_mm < 1.0 for m in pressed)
    assert all(m.lesion is not None and m.lesion.compartment == "juxta_osseous" for m in pressed)
    assert not [m.truth.id for m in matches if m.lesion is None and m.truth.equivalent_diameter_mm >= 2.0]
    assert not false


def test_the_right_hand_is_right():
    ph = make_ct_phantom("fingers", seed=1, noise_hu=20.0, slice_thickness_mm=1.5, pixel_mm=0.5, length_mm=40.0,
                         limb_side="right")
    analysis = analyze(ph.volume)
    assert len(analysis.lesions) >= 5
    assert {les.side for les in analysis.lesions} == {"right"}


def test_fingers_on_a_gel_pad():
    # Fingers laid on a 20 mm gel pad (30 HU) on the table: the pad and the fingers resting
    # on it were a piece thicker than 24 mm, the only body part; the fingers were dropped as
    # objects beside it and nothing was found. A body part holds bone deep in it; the pad
    # does not (the table top under it is dense, but at its surface).
    ph = make_ct_phantom("fingers", seed=0, noise_hu=20.0, slice_thickness_mm=1.0, pixel_mm=0.4)
    hu = ph.volume.array
    top = int(round((ph.table["top_y_mm"] - ph.volume.origin[1]) / ph.volume.spacing_zyx[1]))
    rows = int(round(20.0 / ph.volume.spacing_zyx[1]))
    pad = 30.0 + np.random.default_rng(0).normal(0.0, 20.0, (hu.shape[0], rows, hu.shape[2]))
    # The table is moved down under the pad; the fingers keep their rows (and their truth).
    padded = np.concatenate([hu[:, :top], pad.astype(hu.dtype), hu[:, top:hu.shape[1] - rows]], axis=1)
    volume = dataclasses.replace(ph.volume, array=np.ascontiguousarray(padded))
    body = find_body(volume.array, volume.spacing_zyx)
    assert body.small_part and body.n_parts == 4
    analysis = analyze(volume)
    matches, false = match_lesions(ph, analysis.lesions, analysis.labels)
    assert not [m.truth.id for m in matches if m.lesion is None], "deposits missed"
    assert not false
    assert {les.side for les in analysis.lesions} == {"left"}
