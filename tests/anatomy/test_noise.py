"""The noise estimate: its exact median equals np.median bit for bit, a shared sample gives
the same estimate as the mask it was made from, and a known white noise is measured."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy.noise import estimate_noise_hu, median_exact, noise_sample


def reference_noise_hu(hu: np.ndarray, tissue: np.ndarray, max_slices: int = 24) -> float:
    """The estimate the slow way: binary erosion per slice and np.median."""
    nz = hu.shape[0]
    zs = np.unique(np.linspace(0, nz - 1, min(nz, max_slices)).round().astype(int))
    resid = []
    for z in zs:
        ok = ndi.binary_erosion(tissue[z], np.ones((5, 5), bool), border_value=0)
        if ok.sum() < 50:
            continue
        sl = hu[z].astype(np.float32)
        resid.append((sl - ndi.uniform_filter(sl, size=(5, 5)))[ok])
    if not resid:
        return float("nan")
    r = np.concatenate(resid)
    return 1.4826 * float(np.median(np.abs(r - np.median(r)))) / np.sqrt(1.0 - 1.0 / 25.0)


@pytest.mark.parametrize("n", [1, 2, 3, 1000, 1001, 54321])
@pytest.mark.parametrize("kind", ["residual", "ties", "wide", "float64"])
def test_median_exact_is_np_median_bit_for_bit(n, kind):
    rng = np.random.default_rng(n)
    if kind == "residual":  # whole HU minus a 5 x 5 mean: near multiples of 1/25
        a = (rng.normal(0, 15, n).round() - rng.integers(-300, 300, n) / 25).astype(np.float32)
    elif kind == "ties":
        a = rng.integers(-3, 4, n).astype(np.float32) / np.float32(7)
    elif kind == "wide":  # key range too wide for buckets: np.median itself
        a = (rng.standard_cauchy(n) * 1e6).astype(np.float32)
    else:
        a = rng.normal(0, 40, n)
    got, want = median_exact(a), np.median(a)
    assert got.dtype == want.dtype
    assert got.tobytes() == want.tobytes()


def test_median_exact_with_nan_is_nan():
    a = np.array([1.0, np.nan, 3.0], np.float32)
    assert np.isnan(median_exact(a))


@pytest.fixture(scope="module")
def noisy():
    """A slab of soft tissue (40 HU + white noise of 20 HU) with an air hole and a bone bar."""
    rng = np.random.default_rng(3)
    hu = (40 + rng.normal(0, 20, (30, 90, 100))).round().astype(np.int16)
    hu[:, 30:50, 20:45] = -900
    hu[:, 60:70, 50:95] = 700
    tissue = (hu > -200) & (hu < 120)
    return hu, tissue


def test_noise_estimate_equals_the_slow_reference_and_the_white_noise(noisy):
    hu, tissue = noisy
    got = estimate_noise_hu(hu, tissue)
    assert got == reference_noise_hu(hu, tissue)
    assert got == pytest.approx(20.0, rel=0.05)


def test_shared_sample_gives_the_same_estimate_for_image_and_smoothed_image(noisy):
    hu, tissue = noisy
    smooth = ndi.uniform_filter(hu.astype(np.float32), size=(1, 3, 3)).round().astype(np.int16)
    sample = noise_sample(hu.shape[0], lambda z: tissue[z], max_slices=7)
    assert len(sample.zs) == 7
    for image in (hu, smooth):
        assert estimate_noise_hu(image, sample) == estimate_noise_hu(image, tissue, max_slices=7)
        assert estimate_noise_hu(image, sample) == reference_noise_hu(image, tissue, max_slices=7)
    # smoothing by 3 x 3 leaves about a third of the noise
    assert estimate_noise_hu(smooth, sample) < 0.5 * estimate_noise_hu(hu, sample)


def test_too_little_tissue_gives_nan(noisy):
    hu, _ = noisy
    tissue = np.zeros(hu.shape, bool)
    tissue[:, 10:15, 10:15] = True  # one 5 x 5 patch: a single voxel survives the erosion
    assert np.isnan(estimate_noise_hu(hu, tissue))
    assert noise_sample(hu.shape[0], tissue).zs == ()


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.float64])
def test_box_reads_equal_whole_slice_reads(dtype):
    """Tissue in a small part of each slice (near its edge too): the estimate read on the
    boxes round the tissue (whole-number images) or on whole slices (others) equals the
    whole-slice reference, bit for bit."""
    rng = np.random.default_rng(5)
    hu = (rng.normal(30, 18, (12, 120, 140)) + rng.normal(0, 300, (12, 1, 140))).astype(dtype)
    yy, xx = np.mgrid[0:120, 0:140]
    tissue = np.zeros(hu.shape, bool)
    tissue[:, (yy - 40) ** 2 + (xx - 50) ** 2 < 20 ** 2] = True
    tissue[:, 100:, 120:] = True  # a corner piece: its box is clipped by the slice edge
    sample = noise_sample(hu.shape[0], tissue)
    y0, y1, x0, x1 = sample.boxes[0]
    assert (y1 - y0) * (x1 - x0) < hu.shape[1] * hu.shape[2] and y1 == 120 and x1 == 140
    assert estimate_noise_hu(hu, sample) == reference_noise_hu(hu, tissue)


def _noise_field(shape, sd_hu: float, sigma_px: float, seed: int) -> np.ndarray:
    """Gaussian noise of SD ``sd_hu``, correlated in-plane by a Gaussian of ``sigma_px``, and the
    factor by which it widens a large sum (the sum of its normalised autocorrelation)."""
    from calcinosis.phantom.render import add_noise

    field = add_noise(np.zeros(shape, np.float32), sd_hu, sigma_px * 0.8, 0.8, np.random.default_rng(seed))
    return field


def _true_sum_factor(sigma_px: float) -> float:
    """Sum over all offsets of the in-plane autocorrelation of add_noise's correlated noise."""
    if sigma_px == 0:
        return 1.0
    impulse = np.zeros((41, 41))
    impulse[20, 20] = 1.0
    kernel = ndi.gaussian_filter(impulse, sigma_px, mode="constant")
    return float(kernel.sum() ** 2 / (kernel ** 2).sum())


@pytest.mark.parametrize("sigma_px", [0.0, 0.6])
def test_noise_structure_recovers_voxel_sd_and_sum_factor(sigma_px):
    # Muscle (50 HU) and fat (-100 HU) halves with noise of SD 20 HU: white, or correlated as a
    # reconstruction kernel correlates it (neighbours 0.5 apart by 0.6 px). The per-voxel SD
    # comes from differences past the correlation; the sum's factor from the nearer ones.
    from calcinosis.anatomy.noise import noise_structure

    shape = (12, 160, 160)
    hu = np.full(shape, 50.0, np.float32)
    hu[:, :, 80:] = -100.0
    hu = _noise_field(shape, 20.0, sigma_px, 3).astype(np.float32) + hu
    hu = np.rint(hu).astype(np.int16)
    tissue = np.ones(shape, bool)
    tissue[:, :4] = tissue[:, -4:] = False
    structure = noise_structure(hu, noise_sample(shape[0], tissue), (2.0, 0.8, 0.8))
    assert structure is not None
    assert structure.voxel_sd_hu == pytest.approx(20.0, rel=0.05)
    truth = _true_sum_factor(sigma_px)
    assert structure.sum_factor == pytest.approx(truth, rel=0.2, abs=0.25), truth
    if sigma_px:
        assert truth > 3.0  # a sum's SD about twice what independent voxels give
        # The 5 x 5 residual the detection uses sees less of correlated noise.
        assert estimate_noise_hu(hu, noise_sample(shape[0], tissue)) < 0.96 * structure.voxel_sd_hu


def test_noise_structure_needs_tissue():
    from calcinosis.anatomy.noise import noise_structure

    hu = np.zeros((4, 20, 20), np.int16)
    assert noise_structure(hu, noise_sample(4, np.zeros(hu.shape, bool)), (1.0, 1.0, 1.0)) is None


def test_sum_factor_over_a_region_grows_with_its_size_to_the_large_regions():
    # A region's own factor counts the pairs it holds at each read offset: 1 for one voxel, the
    # whole factor for a region much larger than the correlation, in between for a small one
    # (its edge voxels miss partners).
    from calcinosis.anatomy.noise import NoiseStructure

    rho = {(0, 1): 0.5, (1, 0): 0.5, (1, 1): 0.25, (1, -1): 0.25, (0, 2): 0.1, (2, 0): 0.1}
    full = (1.0 + 2.0 * sum(rho.values())) * (1.0 + 2.0 * 0.3)
    structure = NoiseStructure(10.0, {**rho, (1, 0, 0): 0.3})
    assert structure.sum_factor == pytest.approx(full)
    one = np.zeros((3, 9, 9), bool)
    one[1, 4, 4] = True
    assert structure.factor_over(one) == pytest.approx(1.0)
    pair = one.copy()
    pair[1, 4, 5] = True  # two neighbours along x: (2 + 2 * 0.5) / 2
    assert structure.factor_over(pair) == pytest.approx(1.5)
    big = np.zeros((60, 60, 60), bool)
    big[5:55, 5:55, 5:55] = True
    small = np.zeros((3, 9, 9), bool)
    small[1, 3:6, 3:6] = True
    assert 1.0 < structure.factor_over(small) < structure.factor_over(big)
    assert structure.factor_over(big) == pytest.approx(full, rel=0.1)
