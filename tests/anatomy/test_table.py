"""A table top the body lies on with (almost) no air between is cut from the body mask.

With a gap under a pixel the gap's partial volume is above the air level, the table joins
the body, and the whole table top used to be taken for skin (its noise above 130 HU then
gave cutaneous findings)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from calcinosis.anatomy.body import find_body
from calcinosis.anatomy.table import apply_coarse, find_table, joined_slices
from calcinosis.errors import InputError
from calcinosis.phantom import make_ct_phantom

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ct"))
from accuracy import match_lesions  # noqa: E402


def _mask(ph) -> np.ndarray:
    b = find_body(ph.volume.array, ph.volume.spacing_zyx)
    m = np.zeros(ph.volume.shape, bool)
    m[b.crop] = b.mask
    return m


@pytest.mark.parametrize("part, gap, slice_mm, noise", [
    ("trunk", 0.6, 2.0, 25.0),   # joined on the full grid only (gap's partial volume ~ -450 HU)
    ("thighs", 0.6, 0.6, 10.0),  # two contacts, thin slices
    ("elbow", 0.3, 3.0, 30.0),
    ("trunk", 0.0, 2.0, 25.0),   # lying on it: joined on the coarse blocks too
    ("thighs", 0.0, 3.0, 30.0),
])
def test_body_on_the_table_is_the_body_without_the_table(part, gap, slice_mm, noise):
    kw = dict(seed=5, noise_hu=noise, slice_thickness_mm=slice_mm, length_mm=12.0, table_gap_mm=gap,
              keep_noiseless=False)
    on_table = make_ct_phantom(part, **kw)
    alone = make_ct_phantom(part, table=False, **kw)  # the same body, noise and objects
    got, want = _mask(on_table), _mask(alone)
    assert want.sum() > 20_000
    # Nothing of the table (about 10 mm x the field's width per slice) is in the body.
    assert (got & ~want).sum() <= 1e-4 * want.sum()
    # What the cut takes from the body lies at the contact: within 3 mm of the lowest body
    # voxel of its column (a few voxels elsewhere may differ where the skin is drawn by the
    # opening in one case and by growth in the other).
    removed = want & ~got
    lowest = want.shape[1] - 1 - np.argmax(want[:, ::-1, :], axis=1)  # per [z, x]
    z, y, x = np.nonzero(removed)
    at_contact = y >= lowest[z, x] - round(3.0 / on_table.volume.spacing_zyx[1])
    assert removed.sum() <= 2e-3 * want.sum()
    assert (~at_contact).sum() <= 1e-4 * want.sum()


def _slice_stack(down: bool, gap: int = 0, with_plate: bool = True) -> np.ndarray:
    """Non-air voxels (1 mm grid, 20 slices): a 70 mm disk lying on a 10 mm plate (flat,
    180 mm wide) that it joins over a few columns (``gap`` rows of air between them);
    upside down when not ``down``."""
    ny, nx = 130, 200
    yy, xx = np.mgrid[:ny, :nx]
    body = (yy - 50) ** 2 + (xx - 100) ** 2 <= 35 ** 2  # lowest row 85
    plate = (yy >= 86 + gap) & (yy <= 95 + gap) & (xx >= 10) & (xx <= 189)
    sl = body | (plate & with_plate)
    sl = sl if down else sl[::-1]
    return np.repeat(sl[None], 20, axis=0)


@pytest.mark.parametrize("down", [True, False])
def test_plate_and_its_join_found_and_cut_either_way_up(down):
    tissue = _slice_stack(down)
    table = find_table(tissue, (1.0, 1.0))
    assert table is not None and table.down == down
    assert table.rows == 10
    (a, b), = table.spans
    assert 85 <= a <= 100 <= b <= 115  # the columns where the disk touches the plate
    far = 95 if down else 130 - 1 - 95
    assert np.allclose(table.far(np.arange(20, 180)), far, atol=0.5)
    assert joined_slices(tissue, table).all()
    cut = tissue.copy()
    apply_coarse(cut, table)
    # The body and the plate are apart now, and nothing but plate (and the gap row) was cut.
    removed = tissue & ~cut
    rows = np.nonzero(removed)[1]
    assert rows.min() >= (85 if down else 34) and rows.max() <= (95 if down else 44)
    import cc3d
    _, n = cc3d.connected_components(cut[0], connectivity=8, return_N=True)
    assert n >= 2


def test_no_plate_nothing_found_and_a_plate_apart_has_no_join():
    assert find_table(_slice_stack(True, with_plate=False), (1.0, 1.0)) is None
    table = find_table(_slice_stack(True, gap=5), (1.0, 1.0))
    assert table is not None and table.spans == ()
    # A thin body part alone (a 20 mm thick slab of tissue) is not a table.
    slab = np.zeros((5, 60, 200), bool)
    slab[:, 20:40, 30:170] = True
    assert find_table(slab, (1.0, 1.0)) is None or not find_table(slab, (1.0, 1.0)).spans


@pytest.mark.parametrize("part, seed", [("trunk", 10), ("thighs", 13)])
def test_no_false_findings_from_a_table_the_body_lies_on(part, seed):
    # A 155-165 HU table top joined to the body: its noise above 130 HU gave two false
    # cutaneous or subcutaneous findings in each of these scans before the table was cut.
    ph = make_ct_phantom(part, seed=seed, noise_hu=25.0, slice_thickness_mm=2.0, length_mm=30.0,
                         table_gap_mm=0.6, keep_noiseless=False)
    assert ph.table["hu"] < 170
    from calcinosis.pipeline import analyze
    a = analyze(ph.volume)
    matched, false = match_lesions(ph, a.lesions, a.labels)
    assert not false, [(f.y_mm, f.compartment) for f in false]
    assert "table" in {e.reason for e in a.detection.excluded}


def test_phantom_table_gap_is_checked_and_kept_in_the_truth():
    ph = make_ct_phantom("thighs", seed=1, length_mm=20.0, slice_thickness_mm=3.0, table_gap_mm=0.0,
                         keep_noiseless=False)
    assert ph.table["air_gap_mm"] == 0.0 and ph.settings.table_gap_mm == 0.0
    with pytest.raises(InputError, match="table_gap_mm"):
        make_ct_phantom("thighs", seed=1, length_mm=8.0, table_gap_mm=-1.0)
    with pytest.raises(InputError, match="no room for deposits"):
        make_ct_phantom("thighs", seed=1, length_mm=3.0, slice_thickness_mm=3.0)


@pytest.mark.parametrize("part, gap", [("trunk", 0.6), ("thighs", 0.0)])
def test_image_stored_upside_down_gives_the_same_body(part, gap):
    # The table above the body (rows reversed): found from the other end of the columns.
    ph = make_ct_phantom(part, seed=5, noise_hu=25.0, slice_thickness_mm=2.0, length_mm=12.0, table_gap_mm=gap,
                         keep_noiseless=False)
    hu = ph.volume.array
    flipped = np.ascontiguousarray(hu[:, ::-1, :])
    b = find_body(flipped, ph.volume.spacing_zyx)
    got = np.zeros(hu.shape, bool)
    got[b.crop] = b.mask
    want = _mask(ph)
    np.testing.assert_array_equal(got[:, ::-1, :], want)
    # ... and that body has no table in it: nothing below the lowest row of the body alone.
    alone = _mask(make_ct_phantom(part, seed=5, noise_hu=25.0, slice_thickness_mm=2.0, length_mm=12.0,
                                  table_gap_mm=gap, keep_noiseless=False, table=False))
    lowest = np.flatnonzero(alone.any(axis=(0, 2)))[-1]
    assert not want[:, lowest + 1:, :].any()
