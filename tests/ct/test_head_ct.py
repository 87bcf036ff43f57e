"""A real head CT (issue 3): no cutaneous or subcutaneous deposit, and the skull is bone.

The scan is InVesalius' example project ``Cranium.inv3`` from the Debian package
``invesalius-examples`` (GPL-2; installed by ``.ci/setup-invesalius.sh``, never copied
into the repository). An ``.inv3`` file is a gzipped tar holding ``main.plist`` (shape,
dtype, spacing, scalar range) and ``matrix.dat``: the raw HU volume, ``[z, y, x]``,
108 x 256 x 256 int16, 0.957 x 0.957 x 1.5 mm. It runs from the upper teeth to the
vertex; a head holder arc lies behind the head. No soft-tissue calcinosis is visible.
"""

from __future__ import annotations

import plistlib
import tarfile
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.pipeline import analyze
from calcinosis.report.summary import build_summary
from calcinosis.volume import Volume

CRANIUM = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


class _Head(tuple):
    """(volume, analysis, summary), with a short repr so a failure does not print the volume."""

    def __repr__(self) -> str:
        return f"<head CT {self[0].shape}, {len(self[1].lesions)} lesions>"


def read_inv3(path: Path) -> Volume:
    """The CT volume of an InVesalius ``.inv3`` project, in HU, identity direction.

    The byte order is not written in the project: of little and big endian, the one
    whose values match the stored ``scalar_range`` is taken. InVesalius keeps the
    slices' rows flipped (its VTK display has the origin at the bottom left), so the
    row index grows to the patient's anterior; it is flipped back here so that the
    identity direction is true (x to the patient's left, y posterior, z superior): the
    teeth and orbits then lie at low y and the head holder at high y.
    """
    with tarfile.open(path, "r:gz") as tar:
        members = {PurePosixPath(m.name).name: m for m in tar.getmembers() if m.isfile()}
        meta = plistlib.loads(tar.extractfile(members["main.plist"]).read())
        matrix = meta["matrix"]
        raw = tar.extractfile(members[matrix["filename"]]).read()
    shape = tuple(int(n) for n in matrix["shape"])
    low, high = (int(v) for v in meta["scalar_range"])
    for order in "<>":
        array = np.frombuffer(raw, dtype=np.dtype(matrix["dtype"]).newbyteorder(order)).reshape(shape)
        if low <= array.min() and array.max() <= high:
            break
    else:
        raise ValueError(f"{path}: no byte order gives values inside scalar_range {low}..{high}")
    array = np.ascontiguousarray(array[:, ::-1, :], dtype=np.int16)
    spacing = tuple(float(s) for s in meta["spacing"])  # InVesalius keeps (x, y, z)
    return Volume(array, spacing, metadata={"modality": meta.get("modality", "CT"),
                                            "source_format": "inv3"})


@pytest.fixture(scope="module")
def head():
    if not CRANIUM.exists():
        pytest.skip(f"real head CT not found at {CRANIUM}: install the Debian package "
                    "invesalius-examples (.ci/setup-invesalius.sh does so where it can)")
    volume = read_inv3(CRANIUM)
    analysis = analyze(volume)
    return _Head((volume, analysis, build_summary(analysis)))


def _head_outline(hu: np.ndarray) -> np.ndarray:
    """The head's outline: the largest 3-D piece above -400 HU, filled slice by slice."""
    labels, n = ndi.label(hu > -400)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    outline = labels == int(np.argmax(sizes))
    return np.stack([ndi.binary_fill_holes(s) for s in outline])


def _bone_full(analysis, shape) -> np.ndarray:
    """The detection's bone mask (on the body crop) placed on the input grid."""
    bone = np.zeros(shape, bool)
    crop = analysis.detection.bone
    z, y, x = analysis.facts["crop_offset"]
    bone[z:z + crop.shape[0], y:y + crop.shape[1], x:x + crop.shape[2]] = crop
    return bone


def test_head_ct_reads_as_hu_in_lps(head):
    volume, _, _ = head
    hu = volume.array
    assert volume.shape == (108, 256, 256)
    assert volume.spacing == pytest.approx((0.957, 0.957, 1.5), abs=1e-3)
    assert np.percentile(hu, 25) < -950  # air round the head
    assert 0 <= np.median(hu[_head_outline(hu)]) <= 80  # brain and scalp
    # Teeth (enamel, >= 2000 HU) are in the lowest slices and at the front: the flip is right.
    teeth = np.argwhere(hu >= 2000)
    assert teeth[:, 0].max() < 10
    assert teeth[:, 1].mean() < 0.4 * hu.shape[1]


def test_no_cutaneous_or_subcutaneous_deposit(head):
    _, analysis, summary = head
    wall = [(les.lesion_id, les.compartment, les.region, round(les.volume_mm3), les.peak_hu)
            for les in analysis.lesions if les.compartment in ("cutaneous", "subcutaneous")]
    assert not wall, f"found {len(wall)} skin/subcutaneous lesions on a scan with none: {wall}"
    assert summary["by_compartment"].get("cutaneous", {}).get("count", 0) == 0
    assert summary["by_compartment"].get("subcutaneous", {}).get("count", 0) == 0


def test_no_calcinosis_and_intracranial_findings_are_visceral(head):
    """No soft-tissue calcinosis is in this scan: dural, pineal or plexus calcification in
    the cranial cavity (the brain is not bone, so it lies far from bone) is visceral."""
    volume, analysis, summary = head
    assert summary["calcinosis_totals"]["count"] == 0, [
        (les.lesion_id, les.compartment) for les in analysis.lesions]
    deep = [les for les in analysis.lesions if les.depth_mm > 40.0]  # well inside the skull
    assert deep
    assert all(les.compartment == "visceral" and les.bone_distance_mm > 5.0 for les in deep)
    assert "inside the skull" in summary["excluded"]["skeletal_and_visceral_policy"]
    # The skull's bone mask is the skull, not the brain inside it.
    centre = tuple(n // 2 for n in analysis.detection.bone.shape)
    assert not analysis.detection.bone[centre]


def test_nasal_cavity_is_inside_the_body(head):
    """The nose opens through the nostrils: its air is inside the body, so the nasal bones
    and the mucosa round them are not on the skin."""
    volume, analysis, _ = head
    from calcinosis.anatomy.air import add_internal_air
    from calcinosis.anatomy.body import find_body

    body = find_body(volume.array, volume.spacing_zyx)
    with_air = add_internal_air(body.mask, volume.spacing_zyx)
    hu = volume.array[body.crop]
    added = with_air & ~body.mask
    # Air that was outside and is now inside, in the face (front third, low y), is the nose.
    assert (added & (hu < -500)).sum() * volume.voxel_volume_mm3 > 5_000.0
    ys = np.argwhere(added)[:, 1] + body.crop[1].start
    assert np.median(ys) < 0.45 * volume.shape[1]
    # Nothing is taken from the body, and the air round the head stays outside.
    assert not (body.mask & ~with_air).any()
    assert (~with_air & (hu < -500)).sum() > 10 * added.sum()


def test_skull_base_not_split_into_deposits(head):
    """The face and skull base are thin plates of the one skull: none is a finding of its own
    (the findings left are a handful of small pieces, not the scores of plates)."""
    _, analysis, _ = head
    assert len(analysis.lesions) <= 12, len(analysis.lesions)


def test_skull_is_bone(head):
    volume, analysis, summary = head
    objects = summary["excluded"]["objects"]
    big = [(o["reason"], o["volume_mm3"], o["peak_hu"]) for o in objects if o["volume_mm3"] >= 100_000.0]
    # The skull is several hundred mL of bone; it must not be called metal or an external object.
    assert big and all(reason == "bone" for reason, _, _ in big), f"objects of 100 mL or more: {big}"
    dense = (volume.array >= 700) & _head_outline(volume.array)
    bone = _bone_full(analysis, volume.shape)
    covered = float((bone & dense).sum()) / float(dense.sum())
    assert covered >= 0.90, f"the bone mask covers {covered:.1%} of the head's voxels >= 700 HU"


def test_field_of_view_is_head_neck(head):
    _, analysis, _ = head
    assert analysis.facts["anatomy"]["field_of_view"] == "head_neck"
    # The face and the skull's cap are head too (not abdomen, not a knee), and so is every
    # finding; no limb is in view.
    shares = analysis.facts["anatomy"]["regions"]
    assert {r for r, share in shares.items() if share > 0} == {"head_neck"}, shares
    assert all(lesion.region == "head_neck" for lesion in analysis.lesions)
    marks = analysis.facts["anatomy"]["landmarks"]
    assert marks["upper_limb"] == marks["lower_limb"] == marks["pelvic_bones"] == 0


def test_report_counts_by_compartment(head):
    """Every lesion is counted once in the summary's compartments."""
    _, analysis, summary = head
    counts = Counter(les.compartment for les in analysis.lesions)
    assert summary["totals"]["count"] == len(analysis.lesions)
    assert {k: v["count"] for k, v in summary["by_compartment"].items() if v["count"]} == dict(counts)
