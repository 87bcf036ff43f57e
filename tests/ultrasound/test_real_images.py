"""Real ultrasound images from the pydicom-data package (issue 10 acceptance).

``gdcm-US-ALOKA-16.dcm``: dual-panel palette-colour B-mode of the pelvis with burned-in
text, tick marks, a grey bar and calipers; it declares two B-mode regions in cm.
``US1_UNCR.dcm``: RGB power-Doppler of a lymph node, with colour boxes, colour bars, text and
a scale bar and no ultrasound regions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from calcinosis.cli import main
from calcinosis.ultrasound import UltrasoundConfig, analyze_ultrasound, frame_masks, read_ultrasound
from calcinosis.ultrasound.masks import grey_of
from calcinosis.ultrasound.report import render_overlay_png

pytest.importorskip("data_store", reason="pydicom-data is a test dependency")
from pydicom.data import get_testdata_file  # noqa: E402

# Loose settings, so that the detector does report something on these images and the
# "never on text or colour" checks below have findings to check.
LOOSE = UltrasoundConfig(max_shadow_ratio=0.99, peak_percentile=80, bright_percentile=80, contrast_sd=0.5)


def _path(name: str) -> str:
    return get_testdata_file(name, download=False)


@pytest.fixture(scope="module", params=["gdcm-US-ALOKA-16.dcm", "US1_UNCR.dcm"])
def real(request):
    image = read_ultrasound(_path(request.param))
    return request.param, image, analyze_ultrasound(image, LOOSE)


def test_real_images_run_through_the_cli(tmp_path):
    for name in ("gdcm-US-ALOKA-16.dcm", "US1_UNCR.dcm"):
        out = tmp_path / name
        assert main(["ultrasound", _path(name), "--out", str(out)]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["count"] == len((out / "deposits.csv").read_text().splitlines()) - 1
    aloka = json.loads((tmp_path / "gdcm-US-ALOKA-16.dcm" / "summary.json").read_text())
    assert aloka["units"] == "mm" and aloka["input"]["pixel_spacing_mm"] == pytest.approx(0.3827, abs=1e-3)
    assert len(aloka["input"]["tissue_regions"]) == 2 and aloka["input"]["excluded_regions"]
    us1 = json.loads((tmp_path / "US1_UNCR.dcm" / "summary.json").read_text())
    assert us1["units"] == "px" and us1["warnings"]


def test_findings_only_on_b_mode_tissue(real):
    name, image, result = real
    assert result.deposits, "loose settings should give something to check"
    rgb = image.rgb[0].astype(np.int16)
    # Colour, judged independently of the package's mask: channels apart by > 30 levels.
    coloured = ndi.binary_dilation(np.ptp(rgb, axis=-1) > 30, iterations=2)
    masks = frame_masks(image, 0)
    for d in result.deposits:
        rr, cc = d.mask_rows, d.mask_cols
        region = image.tissue_regions[d.region]
        assert ((rr >= region.y0) & (rr <= region.y1) & (cc >= region.x0) & (cc <= region.x1)).all()
        if image.declared_regions:
            assert region.data_type == 1
        assert not coloured[rr, cc].any(), f"{name}: finding on colour at {d.x_px, d.y_px}"
        assert not masks.annotation[rr, cc].any(), f"{name}: finding on text/graphics at {d.x_px, d.y_px}"
        for ex in image.excluded_regions:
            assert not ((rr >= ex.y0) & (rr <= ex.y1) & (cc >= ex.x0) & (cc <= ex.x1)).any()


def test_every_finding_is_drawn_on_the_overlay(real, tmp_path):
    _, image, result = real
    png = tmp_path / "overlay.png"
    png.write_bytes(render_overlay_png(result))
    overlay = np.asarray(Image.open(png).convert("RGB")).astype(int)
    yellow = (overlay[..., 0] == 255) & (overlay[..., 1] == 220) & (overlay[..., 2] == 0)
    for d in result.deposits:
        r0, c0, r1, c1 = d.bbox
        assert yellow[r0:r1 + 1, c0:c1 + 1].sum() >= 4, f"deposit {d.deposit_id} not outlined"


def test_burned_in_text_and_colour_are_masked():
    aloka = read_ultrasound(_path("gdcm-US-ALOKA-16.dcm"))
    m = frame_masks(aloka, 0)
    grey = grey_of(aloka.rgb[0])
    # "127/128" and "20Hz" lie inside the first B-mode region, on black.
    box = (slice(30, 62), slice(245, 334))
    glyphs = grey[box] >= 120
    assert glyphs.sum() > 100 and m.annotation[box][glyphs].mean() > 0.95
    us1 = read_ultrasound(_path("US1_UNCR.dcm"))
    m1 = frame_masks(us1, 0)
    rgb = us1.rgb[0].astype(np.int16)
    assert m1.annotation[np.ptp(rgb, axis=-1) > 40].all()
    # The white Doppler box lines and text (R = G = B >= 240) are graphics.
    white = rgb.min(axis=-1) >= 240
    assert white.sum() > 1000 and m1.annotation[white].mean() > 0.95
    assert not m1.valid[:100].any()  # the text block above the image is not tissue


def test_default_settings_report_nothing_on_these_images():
    # Neither image shows a calcification; the defaults must not invent one.
    for name in ("gdcm-US-ALOKA-16.dcm", "US1_UNCR.dcm"):
        assert analyze_ultrasound(read_ultrasound(_path(name))).deposits == ()
