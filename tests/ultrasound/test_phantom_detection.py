"""Detection on B-mode phantoms whose answer is known exactly (issue 10 acceptance)."""

from __future__ import annotations

import numpy as np
import pytest
from us_truth import match_focus

from calcinosis.phantom.ultrasound import make_us_phantom
from calcinosis.ultrasound.config import UltrasoundConfig
from calcinosis.ultrasound.detect import detect_foci

SEEDS = range(6)
PIXEL_MM = 0.1


def _detect(image: np.ndarray, pixel_mm: float = PIXEL_MM):
    valid = np.ones(image.shape, bool)
    return detect_foci(image.astype(np.float32), valid, pixel_mm, pixel_mm, UltrasoundConfig())


def _match(focus, deposits, pixel_mm=PIXEL_MM):
    """The ground-truth deposit whose box (grown by 1 mm) holds the focus centre."""
    return match_focus(focus, deposits, pixel_mm)


@pytest.fixture(scope="module")
def runs():
    out = []
    for seed in SEEDS:
        ph = make_us_phantom(seed=seed, n_deposits=4, pixel_mm=PIXEL_MM)
        foci, skin = _detect(ph.image)
        out.append((ph, foci, skin))
    return out


def test_phantom_is_deterministic_and_truth_is_consistent():
    a = make_us_phantom(seed=3, n_deposits=3)
    b = make_us_phantom(seed=3, n_deposits=3)
    assert np.array_equal(a.image, b.image) and a.deposits == b.deposits
    assert a.image.dtype == np.uint8 and a.image.shape == (400, 600)
    for d in a.deposits:
        skin = a.skin_row[int(d.x_px)]
        top = d.y_px - d.thickness_mm / a.pixel_mm / 2
        assert d.depth_mm == pytest.approx((top - skin) * a.pixel_mm, abs=0.15)
        assert 1.5 <= d.width_mm <= 8.0
        # Hyperechoic focus, dark shadow beneath it.
        r, c = int(d.y_px), int(d.x_px)
        below = a.image[r + 40:r + 80, c - 3:c + 4].mean()
        assert a.image[r - 2:r + 3, c - 2:c + 3].mean() > 180 > below + 20 * d.shadow_strength


def test_sensitivity_false_findings_depth_and_width(runs):
    found = total = 0
    for ph, foci, _ in runs:
        matched = {}
        false = 0
        for f in foci:
            d = _match(f, ph.deposits)
            if d is None:
                false += 1
            else:
                matched.setdefault(d.deposit_id, f)
        assert false <= 1, f"more than one false finding per image: {false}"
        for d in ph.deposits:
            if d.width_mm >= 2.0:
                total += 1
                if d.deposit_id in matched:
                    found += 1
                    f = matched[d.deposit_id]
                    assert abs(f.depth_mm - d.depth_mm) <= 1.0, (d, f.depth_mm)
                    assert abs(f.width_mm / d.width_mm - 1) <= 0.25, (d, f.width_mm)
    assert total >= 15
    assert found / total >= 0.9, (found, total)


def test_fascia_and_bone_cortex_never_reported(runs):
    for ph, foci, _ in runs:
        for f in foci:
            if _match(f, ph.deposits) is not None:
                continue
            c = int(round(f.col))
            assert abs(f.row - ph.fascia_row[c]) > 10, "fascia reported as a deposit"
            assert abs(f.row - ph.bone_row[c]) > 15, "bone cortex reported as a deposit"


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_no_deposit_no_finding(seed):
    ph = make_us_phantom(seed=seed, n_deposits=0)
    foci, skin = _detect(ph.image)
    assert foci == []
    # The skin line is found within 0.5 mm.
    assert np.median(np.abs(skin - ph.skin_row)) * PIXEL_MM < 0.5


def test_bright_focus_without_shadow_is_not_a_deposit():
    ph = make_us_phantom(seed=5, n_deposits=2, widths_mm=[4.0, 4.0], shadow_strengths=[0.0, 0.85])
    foci, _ = _detect(ph.image)
    ids = {getattr(_match(f, ph.deposits), "deposit_id", None) for f in foci}
    assert ids == {2}


def test_shadow_strength_is_measured_in_order():
    ph = make_us_phantom(seed=8, n_deposits=2, widths_mm=[5.0, 5.0], shadow_strengths=[0.55, 0.9])
    foci, _ = _detect(ph.image)
    by_id = {_match(f, ph.deposits).deposit_id: f for f in foci}
    assert set(by_id) == {1, 2}
    assert by_id[2].shadow_ratio < by_id[1].shadow_ratio < 0.8


def test_coarser_pixels_still_measure_in_mm():
    ph = make_us_phantom(seed=2, n_deposits=3, widths_mm=[3.0, 5.0, 7.0], shadow_strengths=[0.8, 0.8, 0.8],
                         pixel_mm=0.2)
    foci, _ = _detect(ph.image, pixel_mm=0.2)
    matched = {_match(f, ph.deposits, 0.2).deposit_id: f for f in foci if _match(f, ph.deposits, 0.2)}
    assert len(matched) == 3
    for d in ph.deposits:
        assert abs(matched[d.deposit_id].width_mm / d.width_mm - 1) <= 0.25
        assert abs(matched[d.deposit_id].depth_mm - d.depth_mm) <= 1.0


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_deposits_in_the_dermis_are_found(seed):
    # A deposit 0.6-1.2 mm under the skin surface joins the skin's entry echo; its outline
    # started on the skin line and the whole focus was taken for the skin (8 of 18 missed).
    ph = make_us_phantom(seed=seed, n_deposits=3, widths_mm=[2.5, 4.0, 6.0], shadow_strengths=[0.8] * 3,
                         depths_mm=[0.6, 0.9, 1.2])
    foci, _ = _detect(ph.image)
    matched = {getattr(_match(f, ph.deposits), "deposit_id", None): f for f in foci}
    assert set(matched) == {1, 2, 3}
    for d in ph.deposits:
        assert abs(matched[d.deposit_id].depth_mm - d.depth_mm) <= 0.7


def test_skin_echo_is_not_a_deposit_at_low_gain():
    # The cut-off rest of the skin's echo (dermis) must not pass for a deposit in the dermis,
    # also with the gain turned down (a dark fat layer beneath reads as a shadow).
    for seed in (0, 11, 12):
        ph = make_us_phantom(seed=seed, n_deposits=0)
        dim = np.clip(ph.image.astype(int) - 40, 0, 255)
        assert _detect(dim)[0] == []


@pytest.mark.parametrize("seed", [5, 6])
def test_moderate_shadow_under_a_deposit_in_muscle_counts(seed):
    # Deposit 3 of these phantoms (5.2 and 7.4 mm wide) removes 45-49 % of the echo beneath
    # it; in bright tissue that is a grey ratio of 0.80-0.84 (missed) but a drop of 18-22
    # grey levels, which on the log display is the shadow's size whatever the tissue.
    ph = make_us_phantom(seed=seed, n_deposits=4)
    foci, _ = _detect(ph.image)
    ids = [getattr(_match(f, ph.deposits), "deposit_id", None) for f in foci]
    assert 3 in ids and None not in ids
    assert ph.deposits[2].shadow_strength < 0.5
