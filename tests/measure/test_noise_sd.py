"""The noise SDs of a lesion's volume and mass against their spread over many noise draws.

A blurred deposit of known density is given fresh white Gaussian noise again and again; the
lesion is cut at the threshold and measured each time, as the pipeline measures it. The
SD that :func:`measure_lesions` states for one draw must match the spread of the volumes
and masses across the draws.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.config import AnalysisConfig
from calcinosis.measure.lesion import LesionContext, mass_sd_mg, measure_lesions, volume_sd_mm3

SPACING = (2.0, 0.7, 0.7)
BACKGROUND_HU = 40.0


def _noiseless(diameter_mm: float, density_hu: float) -> np.ndarray:
    shape = (15, 31, 31)
    grid = np.indices(shape).astype(float) - np.array([7.0, 15.0, 15.0])[:, None, None, None]
    r = np.sqrt(sum((g * s) ** 2 for g, s in zip(grid, SPACING)))
    image = np.where(r <= diameter_mm / 2, density_hu, 0.0)
    image = ndi.gaussian_filter(image, sigma=[0.6 / s for s in SPACING])  # scanner blur, 0.6 mm
    return image + BACKGROUND_HU


def _measure(hu: np.ndarray, noise_hu: float, structure=None):
    """The lesion at the centre: the 26-connected piece at the threshold holding it."""
    config = AnalysisConfig()
    pieces, _ = ndi.label(hu >= config.threshold_hu, structure=np.ones((3, 3, 3)))
    labels = (pieces == pieces[7, 15, 15]).astype(np.int32)
    ctx = LesionContext(hu=hu, labels=labels, body=np.ones(hu.shape, bool), bone=np.zeros(hu.shape, bool),
                        depth_mm=None, bone_distance_mm=None, spacing_zyx=SPACING, offset_zyx=(0, 0, 0))
    (lesion,) = measure_lesions(ctx, lambda idx: np.asarray(idx, float)[..., ::-1] * np.array(SPACING[::-1]),
                                config, midline_x_mm=0.0, noise_hu=noise_hu, noise_structure=structure)
    return lesion


@pytest.mark.parametrize("diameter_mm, density_hu, noise_hu", [(3.0, 600.0, 25.0), (5.0, 400.0, 20.0)])
def test_stated_sds_match_the_spread_over_noise_draws(diameter_mm, density_hu, noise_hu):
    clean = _noiseless(diameter_mm, density_hu)
    rng = np.random.default_rng(7)
    lesions = [_measure(clean + rng.normal(0.0, noise_hu, clean.shape), noise_hu) for _ in range(150)]
    volumes = np.array([les.volume_mm3 for les in lesions])
    masses = np.array([les.mass_mg for les in lesions])
    volume_sds = np.array([les.volume_sd_mm3 for les in lesions])
    mass_sds = np.array([les.mass_sd_mg for les in lesions])
    assert volumes.std() > 0 and masses.std() > 0
    # 150 draws: the spread's own SD is about 6 %. The volume's SD errs on the wide side where
    # the edge is sharp (noise spreads the voxels read near the threshold over more values than
    # the noiseless ones: 1.16-1.24 here, 0.9-1.05 for the 8 mm and the faint 2.5 mm deposit).
    assert 0.85 * volumes.std() < np.median(volume_sds) < 1.35 * volumes.std()
    assert np.median(mass_sds) == pytest.approx(masses.std(), rel=0.2)


def test_no_noise_no_sd_and_edge_voxels_count_by_their_distance_to_the_threshold():
    assert volume_sd_mm3(np.array([500.0, 900.0]), np.array([0.0]), 130.0, 0.0, 1.0) == 0.0
    assert mass_sd_mg(50, 20, 0.0, 1.0, 0.8) == 0.0
    # A voxel right at the threshold is a coin toss (variance 1/4); one 5 noise SDs off adds nothing.
    at = volume_sd_mm3(np.array([130.0]), np.array([]), 130.0, 20.0, 2.0)
    assert at == pytest.approx(0.5 * 2.0)
    far = volume_sd_mm3(np.array([130.0, 230.0]), np.array([30.0]), 130.0, 20.0, 2.0)
    assert far == pytest.approx(at, rel=1e-5)
    # The mass SD grows with the noise and with the region, and with a smaller background ring.
    assert mass_sd_mg(100, 50, 20.0, 1.0, 0.8) == pytest.approx(2 * mass_sd_mg(100, 50, 10.0, 1.0, 0.8))
    assert mass_sd_mg(100, 20, 20.0, 1.0, 0.8) > mass_sd_mg(100, 200, 20.0, 1.0, 0.8) > mass_sd_mg(50, 200, 20.0, 1.0, 0.8)


def test_mass_sd_with_correlated_noise_takes_the_measured_sum_factor():
    # Real CT noise is correlated over a few pixels, so a deposit's summed excess varies more
    # than independent voxels would make it. The noise here is correlated in-plane as a
    # reconstruction kernel does (neighbours about 0.5 apart); its structure is measured on a
    # noise-only scan of the same kind (calcinosis.anatomy.noise.noise_structure), and the mass
    # SD then matches the spread over 150 draws; without the structure it is far too narrow.
    from calcinosis.anatomy.noise import noise_sample, noise_structure
    from calcinosis.phantom.render import add_noise

    clean = _noiseless(5.0, 400.0)
    rng = np.random.default_rng(11)
    sigma_mm = 0.6 * SPACING[1]

    def draw(shape, base):
        return add_noise(base.astype(np.float32), 20.0, sigma_mm, SPACING[1], rng).astype(np.float32)

    blank = draw((10, 120, 120), np.full((10, 120, 120), BACKGROUND_HU))
    structure = noise_structure(np.rint(blank).astype(np.int16), noise_sample(10, np.ones(blank.shape, bool)),
                                SPACING)
    assert structure is not None and structure.sum_factor > 3.0
    noisy = [draw(clean.shape, clean) for _ in range(150)]
    with_structure = [_measure(hu, 20.0, structure) for hu in noisy]
    white = [_measure(hu, 20.0) for hu in noisy]
    spread = np.std([les.mass_mg for les in with_structure])
    assert np.median([les.mass_sd_mg for les in with_structure]) == pytest.approx(spread, rel=0.25)
    assert np.median([les.mass_sd_mg for les in white]) < 0.7 * spread


def test_without_fat_or_muscle_to_read_the_sds_say_they_assume_independent_noise():
    # A body of dense soft tissue (110 HU: neither fat nor muscle by its local mean) round a
    # deposit: the noise's correlation cannot be read, the SDs fall back on independent voxels
    # and a warning says they may be too narrow.
    from calcinosis.pipeline import analyze
    from calcinosis.volume import Volume

    rng = np.random.default_rng(5)
    shape = (20, 96, 96)
    z, y, x = np.indices(shape)
    hu = np.full(shape, -1000.0)
    hu[(y - 48) ** 2 + (x - 48) ** 2 <= 40 ** 2] = 110.0
    hu[(z - 10) ** 2 * 4 + (y - 48) ** 2 + (x - 60) ** 2 <= 16] = 800.0
    hu = np.rint(ndi.gaussian_filter(hu, 0.7) + rng.normal(0, 12, shape)).astype(np.int16)
    analysis = analyze(Volume(hu, (0.8, 0.8, 1.0)))
    assert analysis.lesions and all(les.mass_sd_mg > 0 for les in analysis.lesions)
    assert analysis.facts["noise_structure"] is None
    assert any("noise SDs" in w and "too narrow" in w for w in analysis.warnings), analysis.warnings


def test_detection_reads_raw_hu_against_one_voxels_noise_where_noise_is_correlated():
    # Noise correlated over a few pixels (as on real scans) hides from the 5 x 5 residual the
    # noise estimate is: detection's raw-HU rules then take one voxel's measured SD, the larger.
    # With white noise the two agree and the 5 x 5 estimate stays.
    from calcinosis.phantom.render import add_noise
    from calcinosis.pipeline import analyze
    from calcinosis.volume import Volume

    shape = (16, 96, 96)
    _, y, x = np.indices(shape)
    base = np.full(shape, -1000.0, np.float32)
    body = (y - 48) ** 2 + (x - 48) ** 2 <= 40 ** 2
    base[body] = 50.0
    base[:, 30:66, 60:72] = -100.0  # a band of fat
    out = {}
    for sigma_px in (0.0, 1.0):
        hu = add_noise(base, 15.0, sigma_px * 0.8, 0.8, np.random.default_rng(2))
        analysis = analyze(Volume(hu, (0.8, 0.8, 2.0)))
        structure = analysis.facts["noise_structure"]
        out[sigma_px] = (analysis.noise_hu, structure["voxel_sd_hu"], analysis.facts["raw_noise_hu"])
    white, correlated = out[0.0], out[1.0]
    assert white[2] == pytest.approx(max(white[0], white[1]), abs=0.01) and white[1] == pytest.approx(15.0, rel=0.1)
    assert correlated[0] < 0.8 * correlated[1]  # the 5 x 5 residual sees part of it
    assert correlated[2] == pytest.approx(correlated[1], abs=0.01) and correlated[1] == pytest.approx(15.0, rel=0.1)
