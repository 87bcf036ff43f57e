"""CT anatomy: compartments of trunk findings, distractors, pattern sentence, real chest CT."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi
from accuracy import match_lesions

from calcinosis.cli import main
from calcinosis.io import read_volume
from calcinosis.measure.lesion import Lesion
from calcinosis.phantom import make_ct_phantom
from calcinosis.pipeline import analyze
from calcinosis.report.pattern import describe_pattern
from calcinosis.report.summary import build_summary
from calcinosis.volume import Volume

SOFT = ("cutaneous", "subcutaneous", "intramuscular")
DISTRACTORS = ("vessels", "bowel", "cartilage", "necklace", "ecg_leads")


@pytest.fixture(scope="module", params=[0, 1])
def distracted(request):
    ph = make_ct_phantom("trunk", seed=request.param, length_mm=60, distractors=DISTRACTORS)
    analysis = analyze(ph.volume)
    return ph, analysis


def _lesion_at(ph, analysis, point):
    idx = np.round(ph.volume.lps_to_index(np.asarray(point))).astype(int)
    lab = int(analysis.labels[tuple(idx)])
    return next((l for l in analysis.lesions if l.lesion_id == lab), None)


def test_deposit_compartments_95pct_with_distractors(distracted):
    ph, analysis = distracted
    matches, _ = match_lesions(ph, analysis.lesions, analysis.labels)
    found = [m for m in matches if m.lesion is not None]
    right = sum(m.lesion.compartment == m.truth.compartment for m in found)
    assert len(found) >= 0.8 * len(matches)  # detection itself is tested in test_phantom_accuracy
    assert right >= 0.95 * len(found), [(m.truth.id, m.truth.compartment, m.lesion.compartment)
                                         for m in found if m.lesion.compartment != m.truth.compartment]
    assert all(m.lesion.side == m.truth.side for m in found)


def test_metal_on_the_skin_is_never_a_lesion(distracted):
    ph, analysis = distracted
    for d in ph.distractors:
        if d.kind in ("necklace_bead", "ecg_electrode", "ecg_wire"):
            assert _lesion_at(ph, analysis, d.centroid_lps) is None, d.kind
    assert "external_metal" in {e.reason for e in analysis.detection.excluded}


def test_vessel_wall_calcification_is_vascular(distracted):
    ph, analysis = distracted
    vessels = [d for d in ph.distractors if d.kind == "vessel_wall_calcification"]
    assert vessels
    for d in vessels:
        lesion = _lesion_at(ph, analysis, d.centroid_lps)
        if lesion is None:  # the plaque's centroid may fall in the lumen: nearest lesion
            lesion = min(analysis.lesions, key=lambda l: np.linalg.norm(
                np.array([l.x_mm, l.y_mm, l.z_mm]) - d.centroid_lps))
        assert lesion.compartment in ("vascular", "visceral"), lesion


def test_no_distractor_reported_in_the_soft_tissues(distracted):
    """Vessel plaques, bowel content and costal cartilage are never wall deposits. Seed 1
    puts bowel content in front of the rib hull's front chord, below the (absent) sternum:
    the cavity there starts inside the abdominal wall, not at the chord."""
    ph, analysis = distracted
    seen = 0
    for d in ph.distractors:
        lesion = _lesion_at(ph, analysis, d.centroid_lps)
        if lesion is not None:
            seen += 1
            assert lesion.compartment not in SOFT, (d.kind, d.centroid_lps, lesion.compartment)
    assert seen >= 3  # the bowel pieces are found (as visceral findings)


def test_bowel_content_lies_in_front_of_the_kidneys(distracted):
    """Phantom anatomy: bowel is peritoneal, in front of the vertebral bodies' mid-plane."""
    ph, _ = distracted
    bowel = [d for d in ph.distractors if d.kind == "bowel_contrast"]
    assert bowel
    img = ph.noiseless
    mid_col = int(round(img.lps_to_index(np.zeros(3))[2]))
    dy = img.spacing[1]
    # The vertebral body's mid-plane: the middle of the first long run of bone met going back
    # along the midline (a vertebral body, 32 mm deep, not a disc slice).
    mids = []
    for z in range(img.array.shape[0]):
        bone = img.array[z, :, mid_col] > 150
        runs = np.flatnonzero(np.diff(np.concatenate([[0], bone.astype(int), [0]])))
        if runs.size and (runs[1] - runs[0]) * dy >= 25.0:
            mids.append(0.5 * (runs[0] + runs[1] - 1))
    assert mids
    spine_mid_y = img.index_to_lps(np.array([0.0, float(np.median(mids)), mid_col]))[1]
    for d in bowel:
        c = np.round(img.lps_to_index(np.asarray(d.centroid_lps))).astype(int)
        blob, _ = ndi.label(img.array[c[0]] > 200)
        rows = np.flatnonzero((blob == blob[c[1], c[2]]).any(axis=1))
        back_y = img.index_to_lps(np.array([c[0], float(rows[-1]), c[2]]))[1]
        assert back_y <= spine_mid_y + dy, (d.centroid_lps, back_y, spine_mid_y)


def _lesion(i, comp, side, region, diameter=5.0):
    return Lesion(i, 0.0, 0.0, 0.0, 40.0, 10.0, 30.0, 600.0, 400.0, diameter, comp, side, region,
                  8.0, 30.0, -100.0, 20, "high", "")


def test_pattern_sentence_follows_the_table():
    thighs = [_lesion(i, "subcutaneous", "left" if i % 2 else "right", "thigh") for i in range(1, 7)]
    text = describe_pattern(thighs)
    assert "6" in text and "subcutaneous" in text and "both thighs" in text and "injection" in text
    back = [_lesion(i, "juxta_osseous", "left" if i % 2 else "right", "back") for i in range(1, 4)]
    text = describe_pattern(back)
    assert "both sides of the back" in text and "paraspinal" in text
    elbow = [_lesion(1, "juxta_osseous", "left", "elbow", 2.0)]
    assert describe_pattern(elbow).startswith("A single punctate")
    assert "left elbow" in describe_pattern(elbow)
    assert describe_pattern([]).startswith("No soft-tissue")
    mixed = describe_pattern(thighs, others=[_lesion(9, "vascular", "left", "thigh")])
    assert "1 vascular calcification (not calcinosis)" in mixed


def test_pattern_sentence_does_not_depend_on_the_lesions_order():
    # Lesion ids follow the stored voxel order: the same scan stored feet first lists its
    # deposits in another order. With compartments (or regions) tied, the sentence named
    # whichever came first "predominant".
    four = [_lesion(1, "cutaneous", "left", "thigh"), _lesion(2, "subcutaneous", "left", "knee"),
            _lesion(3, "intramuscular", "left", "thigh"), _lesion(4, "juxta_osseous", "left", "knee")]
    texts = {describe_pattern(order) for order in (four, four[::-1], four[1:] + four[:1])}
    assert len(texts) == 1, texts
    text = texts.pop()
    assert "predominantly" not in text
    assert "cutaneous, subcutaneous, intramuscular and juxta-osseous" in text
    five = four + [_lesion(5, "subcutaneous", "left", "thigh")]
    pair = [_lesion(1, "cutaneous", "left", "thigh"), _lesion(2, "cutaneous", "left", "thigh"),
            _lesion(3, "subcutaneous", "left", "thigh"), _lesion(4, "subcutaneous", "left", "thigh"),
            _lesion(5, "intramuscular", "left", "thigh")]
    assert describe_pattern(five) == describe_pattern(five[::-1])
    assert "predominantly subcutaneous (2 of 5" in describe_pattern(five)
    tied = describe_pattern(pair[::-1])
    assert tied == describe_pattern(pair)
    assert "cutaneous and subcutaneous (2 each of 5; also intramuscular)" in tied and "injection" not in tied


@pytest.fixture(scope="module")
def chest(real_ct_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("chest-anatomy")
    assert main(["analyze", str(real_ct_path), "--out", str(out), "--no-report"]) == 0
    return json.loads((out / "summary.json").read_text())


def test_real_chest_is_chest_with_vascular_aortic_calcification(chest):
    """The scan spans heart to neck; the aortic root and arch are calcified."""
    assert chest["anatomy"]["field_of_view"] == "chest"
    assert chest["by_region"]["chest"]["count"] >= 0.7 * chest["totals"]["count"]
    assert chest["by_compartment"]["vascular"]["count"] >= 1
    assert chest["by_compartment"]["cutaneous"]["count"] == 0
    # Ribs and costal cartilage cut across by the 5 mm slices are skeletal, and said so.
    assert "rib_cage" in chest["excluded"]["reasons"]
    assert chest["by_region_compartment"]["chest"]
    # Findings inside the thorax are in the chest (or, at the top, the neck), not in the
    # back's soft tissues and never in a pelvis (the shoulder girdle is not one).
    found = {name for name, group in chest["by_region"].items() if group["count"]}
    assert found <= {"chest", "head_neck"}, chest["by_region"]


def test_real_chest_has_no_soft_tissue_calcinosis(chest):
    assert chest["calcinosis_totals"]["count"] == 0
    for compartment in SOFT:
        assert chest["by_compartment"].get(compartment, {}).get("count", 0) == 0, compartment
    # The findings cut by the scan's edge (the chin on the top slice, the back at the image's
    # lower border) are listed as such, not dropped unseen.
    assert chest["excluded"]["counts"].get("scan_edge", 0) >= 1


def test_real_chest_trabecular_island_is_bone(real_ct_path):
    """A dense island of trabecular bone inside a vertebral body's cortex (the lowest slices,
    LPS about (5, -98, -767.5) mm) is part of the bone: excluded as bone, not a finding."""
    analysis = analyze(read_volume(real_ct_path))
    island = np.array([5.1, -98.0, -767.5])
    assert all(np.linalg.norm(np.array([les.x_mm, les.y_mm, les.z_mm]) - island) > 3.0 for les in analysis.lesions)
    offset = np.asarray(analysis.facts["crop_offset"], float)
    near = [e.reason for e in analysis.detection.excluded
            if np.linalg.norm(analysis.volume.index_to_lps(np.asarray(e.centroid_index) + offset) - island) < 3.0]
    assert near == ["bone"], near


def test_real_chest_on_thin_slices_scapula_blade_pieces_are_bone(real_ct_path):
    """The real chest CT's slices relabelled 3 mm apart (a stand-in for a thinner scan, as in
    bench/real_thin_slices.py: on its real 5 mm slices nothing is split off a bone): the bone
    split parts two pieces of the scapulae's thin blades (about 2.3 cm3 each, plates, LPS about
    (107, -88, -695) and (-84, -58, -693) mm) from the rest of the bone. They are pieces of
    the bone (excluded as ``bone_piece`` and listed one by one in summary.json), not
    juxta-osseous findings."""
    real = read_volume(real_ct_path)
    sx, sy, _ = real.spacing
    thin = Volume(real.array, (sx, sy, 3.0), real.origin, real.direction, real.metadata)
    analysis = analyze(thin)
    offset = np.asarray(analysis.facts["crop_offset"], float)
    for piece in ([107.2, -88.4, -695.1], [-83.9, -58.1, -693.4]):
        at = np.array(piece)
        near = [les for les in analysis.lesions if np.linalg.norm([les.x_mm - at[0], les.y_mm - at[1],
                                                                    les.z_mm - at[2]]) < 5.0]
        assert not near, [(les.lesion_id, les.compartment, les.volume_mm3) for les in near]
        excluded = [e for e in analysis.detection.excluded
                    if np.linalg.norm(thin.index_to_lps(np.asarray(e.centroid_index) + offset) - at) < 3.0]
        assert [e.reason for e in excluded] == ["bone_piece"] and excluded[0].volume_mm3 > 1000.0
        listed = [o for o in build_summary(analysis)["excluded"]["objects"] if o["reason"] == "bone_piece"
                  and np.linalg.norm([o["x_mm"] - at[0], o["y_mm"] - at[1], o["z_mm"] - at[2]]) < 3.0]
        assert len(listed) == 1
