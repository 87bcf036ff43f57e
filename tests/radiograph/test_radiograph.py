"""Radiograph path: reader, score, phantom detection, real CR images, CLI.

Phantom radiographs come from :mod:`calcinosis.phantom.radiograph` (exact ground
truth); real images from pydicom's test data and the pydicom-data package.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from calcinosis.cli import main
from calcinosis.errors import InputError
from calcinosis.phantom.radiograph import make_radiograph_phantom, write_phantom_dicom
from calcinosis.radiograph import analyze_radiograph, radiograph_from_array, read_radiograph
from calcinosis.radiograph.score import classify_change, extent_grade, score_areas


def _real(name: str):
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    try:
        return get_testdata_file(name, download=False)
    except Exception:  # pydicom-data not installed
        pytest.skip(f"{name} not available")


@pytest.fixture(scope="module")
def thigh():
    return make_radiograph_phantom("thigh", seed=1)


@pytest.fixture(scope="module")
def thigh_result(thigh):
    return analyze_radiograph(radiograph_from_array(thigh.image, thigh.pixel_spacing_mm))


def _match(truth, found, spacing):
    out = {}
    for t in truth:
        near = [d for d in found if np.hypot(d.row_px - t.row_px, d.col_px - t.col_px) * spacing < max(2.0, t.diameter_mm / 2 + 1)]
        if near:
            out[t.deposit_id] = near[0]
    return out


def test_monochrome1_dicom_is_inverted_and_spacing_read(tmp_path, thigh):
    path = write_phantom_dicom(thigh, tmp_path / "thigh.dcm", photometric="MONOCHROME1")
    rg = read_radiograph(path)
    assert rg.pixel_spacing_mm == pytest.approx(thigh.pixel_spacing_mm)
    # bright = dense after inversion: the femur is brighter than the air beside the thigh
    femur = rg.image[400, int(100 / 0.25)]
    air = rg.image[400, int(12 / 0.25)]
    assert femur > air
    assert np.corrcoef(rg.image.ravel(), thigh.image.ravel().astype(float))[0, 1] > 0.999
    no_spacing = read_radiograph(write_phantom_dicom(thigh, tmp_path / "ns.dcm", with_spacing=False))
    assert no_spacing.pixel_spacing_mm is None
    assert any("pixel spacing" in w for w in no_spacing.warnings)


def test_score_bands_and_25_percent_rule():
    assert [extent_grade(a) for a in (0, 5, 10, 49, 50, 200, 400)] == [0, 1, 2, 2, 3, 4, 5]
    areas = score_areas([("hand", 30.0, 0.8), ("hand", 25.0, 0.2), ("fingers", 4.0, 0.3)])
    assert areas["hand"]["extent_grade"] == 3 and areas["hand"]["density_grade"] == 2
    assert areas["hand"]["score"] == 6 and areas["fingers"]["score"] == 1
    assert classify_change(10, 12.5) == "stable"
    assert classify_change(10, 12.6) == "progression"
    assert classify_change(10, 7.4) == "improvement"
    assert classify_change(0, 1) == "progression" and classify_change(0, 0) == "stable"


def test_area_density_grade_is_its_densest_deposits():
    # A deposit with no bone near to compare with is graded dense (2); a faint one measured
    # against bone (grade 1) in the same area must not lower the area's grade.
    areas = score_areas([("thigh", 30.0, None), ("thigh", 20.0, 0.3)])
    assert areas["thigh"]["density_grade"] == 2 and areas["thigh"]["score"] == 6
    assert score_areas([("thigh", 30.0, 0.3), ("thigh", 20.0, 0.2)])["thigh"]["density_grade"] == 1


def test_thigh_phantom_scores_as_its_truth(thigh, thigh_result):
    # The thigh's deposits beside the femur lie over 25 mm from it (no bone to compare with:
    # dense), the two over it are measured against it (faint); the image score is the one
    # the true footprints give, dense deposits being dense.
    rel = {d.deposit_id: d.relative_density for d in thigh_result.deposits}
    assert None in rel.values() and any(r is not None and r < 0.5 for r in rel.values())
    truth = score_areas([("thigh", t.footprint_area_mm2, None) for t in thigh.deposits])
    assert thigh_result.summary["score"]["image_score"] == truth["thigh"]["score"] == 6


def test_exact_25_percent_change_is_stable_at_any_scale():
    # Areas are stored to 0.01 mm²: 1.2 -> 1.5 is exactly +25 % (0.25000000000000006 in floats).
    for before, after in ((1.2, 1.5), (0.3, 0.375), (2.4, 3.0), (0.4, 0.3)):
        assert classify_change(before, after) == "stable", (before, after)
    assert classify_change(1.2, 1.51) == "progression" and classify_change(0.4, 0.29) == "improvement"


@pytest.fixture(scope="module")
def limbs(thigh, thigh_result):
    """Phantom and analysis for each limb (hand, elbow, thigh), built once per module."""
    out = {"thigh": (thigh, thigh_result)}
    for kind in ("hand", "elbow"):
        ph = make_radiograph_phantom(kind, seed=1)
        out[kind] = (ph, analyze_radiograph(radiograph_from_array(ph.image, ph.pixel_spacing_mm)))
    return out


@pytest.mark.parametrize("kind", ["thigh", "elbow", "hand"])
def test_phantom_soft_tissue_deposits_found_and_measured(limbs, kind):
    phantom, result = limbs[kind]
    sp = phantom.pixel_spacing_mm[0]
    matches = _match(phantom.deposits, result.deposits, sp)
    soft = [t for t in phantom.deposits if not t.over_bone and t.diameter_mm >= 2.0]
    assert len(soft) >= 5
    assert sum(t.deposit_id in matches for t in soft) >= 0.9 * len(soft)
    for t in soft:
        if t.deposit_id in matches:
            assert not matches[t.deposit_id].over_bone
            if t.diameter_mm >= 4.0:
                assert matches[t.deposit_id].area_mm2 == pytest.approx(t.footprint_area_mm2, rel=0.2)
    false = [d for d in result.deposits if d.deposit_id not in {m.deposit_id for m in matches.values()}]
    assert len(false) <= 1
    assert any(o.kind == "marker" for o in result.segmentation.excluded)


def test_phantom_deposits_over_bone_found(limbs):
    # Pooled over two noise realisations: one seed alone can land on either side of 60 %.
    runs = list(limbs.values())
    for kind in ("thigh", "elbow", "hand"):
        ph = make_radiograph_phantom(kind, seed=2)
        runs.append((ph, analyze_radiograph(radiograph_from_array(ph.image, ph.pixel_spacing_mm))))
    found = total = 0
    for phantom, result in runs:
        matches = _match(phantom.deposits, result.deposits, phantom.pixel_spacing_mm[0])
        bone = [t for t in phantom.deposits if t.over_bone and t.diameter_mm >= 2.0]
        found += sum(t.deposit_id in matches for t in bone)
        total += len(bone)
    assert found >= 0.6 * total


def test_hand_phantom_deposits_over_bone_mostly_found(limbs):
    # Where contrast allows (thin hand bones, little scatter) deposits over bone are found
    # and marked over bone by the blob detector alone; the pooled target is the test above.
    phantom, result = limbs["hand"]
    matches = _match(phantom.deposits, result.deposits, phantom.pixel_spacing_mm[0])
    bone = [t for t in phantom.deposits if t.over_bone and t.diameter_mm >= 2.0]
    hits = [matches[t.deposit_id] for t in bone if t.deposit_id in matches]
    assert len(hits) >= 0.6 * len(bone) and all(d.over_bone for d in hits)


def test_hand_phantom_deposits_over_bone_measured_near_their_footprint(limbs):
    # Over a metacarpal shaft, the carpals and the radius the background is fitted on the bone
    # round the deposit (it reached into the soft tissue beside the bone: 2-2.5 times the area).
    phantom, result = limbs["hand"]
    matches = _match(phantom.deposits, result.deposits, phantom.pixel_spacing_mm[0])
    ratios = {t.deposit_id: matches[t.deposit_id].area_mm2 / t.footprint_area_mm2
              for t in phantom.deposits if t.over_bone and t.deposit_id in matches}
    assert len(ratios) >= 4
    big = [r for i, r in ratios.items() if phantom.deposits[i - 1].diameter_mm >= 4.0]
    assert len(big) == 3 and all(0.75 <= r <= 1.25 for r in big), ratios
    assert all(r <= 1.6 for r in ratios.values()), ratios


def test_bone_ends_and_joints_are_not_deposits_at_high_scatter():
    # Scatter 0.3 (no grid) lowers contrast and noise: the fingertip tufts' caps and the
    # plates either side of the finger joints then passed as nine deposits over bone.
    phantom = make_radiograph_phantom("hand", seed=0, scatter_fraction=0.3)
    result = analyze_radiograph(radiograph_from_array(phantom.image, phantom.pixel_spacing_mm))
    matches = _match(phantom.deposits, result.deposits, phantom.pixel_spacing_mm[0])
    matched = {m.deposit_id for m in matches.values()}
    assert [d for d in result.deposits if d.deposit_id not in matched] == []
    wanted = [t for t in phantom.deposits if t.diameter_mm >= 2.0]
    assert all(t.deposit_id in matches for t in wanted)


def test_thigh_deposits_over_the_femur_found_whatever_the_noise_draw():
    # The 6 mm deposit over the femur is a broad dome; its along-axis contrast is 17 noise
    # units, but the small blob scales alone saw it at 5.0-6.2 (gate 5.2): missed on seed 0.
    for seed in (0, 3):
        phantom = make_radiograph_phantom("thigh", seed=seed)
        result = analyze_radiograph(radiograph_from_array(phantom.image, phantom.pixel_spacing_mm))
        matches = _match(phantom.deposits, result.deposits, phantom.pixel_spacing_mm[0])
        bone = [t for t in phantom.deposits if t.over_bone]
        assert len(bone) == 2 and all(t.deposit_id in matches for t in bone), seed
        assert all(matches[t.deposit_id].over_bone for t in bone)


def test_compare_follows_deposits_grown_or_shrunk_by_a_known_factor():
    # Follow-ups with new noise whose deposits are 1.0x, 1.2x (area +44 %) and 0.85x (area
    # -28 %) the baseline's diameters: the total area's status is the truth's.
    from calcinosis.radiograph.compare import compare_summaries

    def summary(seed, scale):
        ph = make_radiograph_phantom("thigh", seed=seed, deposit_scale=scale)
        return analyze_radiograph(radiograph_from_array(ph.image, ph.pixel_spacing_mm)).summary

    base = summary(0, 1.0)
    for scale, status in ((1.0, "stable"), (1.2, "progression"), (0.85, "improvement")):
        area = compare_summaries(base, summary(2, scale))["total_area_mm2"]
        assert area["status"] == status, (scale, area)
        assert area["change_percent"] == pytest.approx(100 * (scale**2 - 1), abs=8), (scale, area)


def test_phantom_over_bone_runs_have_no_false_deposit(limbs):
    # The along-axis detector over shafts must not turn bone ends, joints or carpals into deposits.
    for phantom, result in limbs.values():
        matches = _match(phantom.deposits, result.deposits, phantom.pixel_spacing_mm[0])
        assert len(result.deposits) - len({m.deposit_id for m in matches.values()}) <= 1


def test_axial_contrast_sees_a_deposit_on_a_shaft_not_the_bone_end():
    from calcinosis.radiograph.axial import axial_contrast

    # A vertical shaft (a projected tube: bright rim, darker marrow) ending at row 150,
    # with an 8-pixel-radius (2 mm) focus at row 60.
    rr, cc = np.mgrid[0:200, 0:120].astype(float)
    x = cc - 60.0
    shaft = (np.sqrt(np.clip(20**2 - x**2, 0, None)) - 0.6 * np.sqrt(np.clip(12**2 - x**2, 0, None))) * (rr < 150)
    focus = 15.0 * np.clip(1 - ((rr - 60) ** 2 + x**2) / 64.0, 0, None)
    bone = (np.abs(x) <= 20) & (rr < 150)
    contrast, valid = axial_contrast(shaft + focus, bone, (0.25, 0.25))
    assert valid[60, 60] and contrast[60, 60] > 8.0
    assert valid[100, 45] and abs(contrast[100, 45]) < 0.5  # cortex along the shaft: no contrast
    assert not valid[145, 60]  # within reach of the bone end: not judged


def test_phantom_overlapping_tissue_is_not_counted_twice():
    from calcinosis.phantom.radiograph import MU_SOFT_TISSUE, _Capsule, _union_line_integral

    xs = ys = np.arange(0.0, 40.0, 0.5)
    a = _Capsule((10.0, 20.0), (25.0, 20.0), 6.0, MU_SOFT_TISSUE)
    b = _Capsule((20.0, 20.0), (32.0, 20.0), 6.0, MU_SOFT_TISSUE)
    one = _union_line_integral([a], xs, ys, (ys.size, xs.size))
    both = _union_line_integral([a, b], xs, ys, (ys.size, xs.size))
    row, col = 40, 44  # (x 22, y 20) on the shared axis, inside both capsules
    assert both[row, col] == pytest.approx(one[row, col]) == pytest.approx(12.0 * MU_SOFT_TISSUE)
    # x 35: beyond a's rounded end, 3 mm inside b's: only b's chord
    assert one[row, 70] == 0.0 and both[row, 70] == pytest.approx(2 * np.sqrt(27.0) * MU_SOFT_TISSUE)


def test_real_rg3_marker_excluded_and_spacing_warned():
    rg = read_radiograph(_real("RG3_UNCR.dcm"))
    assert rg.pixel_spacing_mm is None
    result = analyze_radiograph(rg)
    assert any("pixel spacing" in w for w in result.summary["warnings"])
    markers = [o for o in result.summary["excluded"] if o["kind"] == "marker"]
    assert len(markers) == 1
    # the lead "R" sits right of the ankle, about rows 1380-1480, columns 1140-1215
    assert 1350 < markers[0]["row_px"] < 1500 and 1120 < markers[0]["col_px"] < 1240
    # a leg with no soft-tissue calcification: no deposit at all (ankle bone ends included)
    assert result.deposits == () and result.summary["totals"]["count"] == 0


def test_bad_inputs_exit_2(tmp_path, capsys):
    from PIL import Image

    colour = tmp_path / "colour.png"
    rgb = np.zeros((40, 40, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(colour)
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((300, 300), 80, dtype=np.uint8)).save(grey)
    truncated_png = tmp_path / "trunc.png"
    truncated_png.write_bytes(grey.read_bytes()[:60])
    dcm = write_phantom_dicom(make_radiograph_phantom("thigh", pixel_spacing_mm=1.0), tmp_path / "t.dcm")
    truncated_dcm = tmp_path / "trunc.dcm"
    truncated_dcm.write_bytes(dcm.read_bytes()[:5000])
    for bad in (colour, truncated_png, truncated_dcm, _real("CT_small.dcm"), tmp_path / "missing.dcm"):
        assert main(["radiograph", str(bad), "--out", str(tmp_path / "o")]) == 2, bad
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "error" in err
    with pytest.raises(InputError, match="colour"):
        read_radiograph(colour)
    # A pixel size no detector has (it crashed the filters, whose sizes are in mm): refused
    # from the command line, ignored with a warning from a header.
    for spacing in ("1e-30", "1000"):
        assert main(["radiograph", str(grey), "--pixel-spacing", spacing, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "pixel size" in err
    import pydicom

    ds = pydicom.dcmread(dcm)
    ds.ImagerPixelSpacing = ["1e-30", "1e-30"]
    ds.PixelSpacing = ["1e-30", "1e-30"]
    ds.save_as(tmp_path / "tiny.dcm")
    rg = read_radiograph(tmp_path / "tiny.dcm")
    assert rg.pixel_spacing_mm is None and any("not a detector's pixel size" in w for w in rg.warnings)


def test_real_rg1_chest_is_refused_not_read_as_calcinosis(tmp_path, capsys):
    # A real chest CR without calcinosis: the limb detector read 15 lung vessels and hilar
    # shadows as deposits (score 8). A trunk radiograph is refused in one line.
    assert main(["radiograph", str(_real("RG1_UNCR.dcm")), "--out", str(tmp_path / "rg1")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "chest" in err and "limb" in err
    assert not (tmp_path / "rg1" / "summary.json").exists()
    assert main(["radiograph-compare", str(_real("RG1_UNCR.dcm")), str(_real("RG1_UNCR.dcm")),
                 "--out", str(tmp_path / "cmp")]) == 2
    # The same pixels with the body part a limb's (or none): analysed as before, without error.
    rg = read_radiograph(_real("RG1_UNCR.dcm"))
    rg_limb = radiograph_from_array(rg.image[::4, ::4], None, description={"body_part_examined": "HAND"})
    assert analyze_radiograph(rg_limb).summary["schema_version"]


def test_cli_outputs_and_compare(tmp_path, thigh):
    from PIL import Image

    png = tmp_path / "thigh.png"
    Image.fromarray((thigh.image // 16).astype(np.uint8)).save(png)
    out = tmp_path / "a"
    assert main(["radiograph", str(png), "--pixel-spacing", "0.25", "--out", str(out)]) == 0
    for name in ("deposits.csv", "summary.json", "overlay.png", "report.html"):
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    rows = (out / "deposits.csv").read_text().strip().splitlines()
    assert len(rows) - 1 == summary["totals"]["count"] >= 4
    assert "extent_grade" in summary["score"]["description"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<section" in html
    # the same image twice: stable
    assert main(["radiograph-compare", str(out), str(out), "--out", str(tmp_path / "c")]) == 0
    comp = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert comp["status"] == "stable" and comp["score"]["change_percent"] == 0.0
    # a summary with half the area and score: improvement
    half = dict(summary, score=dict(summary["score"], image_score=summary["score"]["image_score"] // 2 - 1))
    half["totals"] = dict(summary["totals"], total_area_mm2=summary["totals"]["total_area_mm2"] / 2)
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "summary.json").write_text(json.dumps(half))
    assert main(["radiograph-compare", str(out), str(tmp_path / "h"), "--out", str(tmp_path / "c2")]) == 0
    comp2 = json.loads((tmp_path / "c2" / "comparison.json").read_text())
    assert comp2["total_area_mm2"]["status"] == "improvement"


# --- Inputs the reader used to misread, hang on or crash on ----------------------------------


@pytest.fixture(scope="module")
def small():
    """A small thigh phantom (1 mm pixels, 200 x 200): fast to write and analyse."""
    return make_radiograph_phantom("thigh", pixel_spacing_mm=1.0)


def _grey8(phantom) -> np.ndarray:
    return (phantom.image // 16).astype(np.uint8)


def test_greyscale_stored_as_cmyk_or_with_alpha_reads_the_image(tmp_path, small):
    # A greyscale CMYK file keeps the image in K: channel C, which was used, is all 0.
    from PIL import Image

    g8 = _grey8(small)
    for name in ("cmyk.tif", "cmyk.jpg"):
        Image.fromarray(g8).convert("CMYK").save(tmp_path / name)
        rg = read_radiograph(tmp_path / name)
        assert np.corrcoef(rg.image.ravel(), g8.ravel())[0, 1] > 0.99, name
    assert np.array_equal(read_radiograph(tmp_path / "cmyk.tif").image, g8)
    # Grey with alpha (LA) was refused as a colour image: the grey is the image.
    Image.fromarray(g8).convert("LA").save(tmp_path / "la.png")
    rg = read_radiograph(tmp_path / "la.png")
    assert np.array_equal(rg.image, g8) and any("alpha" in w for w in rg.warnings)


def _bad_bitmap(kind: str, tmp_path, phantom, png_declaring):
    """A PNG/TIFF the reader must refuse (what the old reader did in comments)."""
    from PIL import Image

    g8 = _grey8(phantom)
    path = tmp_path / {"multi": "multi.tif", "nan": "nan.tif", "inf": "inf.tif"}.get(kind, f"{kind}.png")
    if kind == "multi":  # page 0 blank, page 1 the radiograph: page 0 was analysed
        Image.fromarray(np.zeros_like(g8)).save(path, save_all=True, append_images=[Image.fromarray(g8)])
    elif kind in ("nan", "inf"):  # ValueError from the filters
        f = phantom.image.astype(np.float32)
        f[50:60, 50:60] = np.nan if kind == "nan" else np.inf
        Image.fromarray(f).save(path)
    elif kind == "short":  # rows 60-199 were read as 0
        png_declaring(path, g8[:60], 200, 200)
    elif kind == "huge":  # analysed for minutes
        png_declaring(path, np.zeros((1, 12000), np.uint8), 12000, 12000)
    else:  # "bomb": Pillow's DecompressionBombError, exit 1
        png_declaring(path, np.zeros((1, 60000), np.uint8), 60000, 60000)
    return path


@pytest.mark.parametrize("kind,words", [
    ("multi", "2 pages"), ("nan", "NaN or infinite"), ("inf", "NaN or infinite"),
    ("short", "ends before the last row"), ("huge", "million pixels"), ("bomb", "million pixels"),
])
def test_multi_page_nan_truncated_and_oversized_images_are_refused(tmp_path, small, kind, words, png_declaring):
    with pytest.raises(InputError, match=words):
        read_radiograph(_bad_bitmap(kind, tmp_path, small, png_declaring))


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no named pipes here")
def test_named_pipe_is_refused_not_waited_on(tmp_path, capsys):
    import os

    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)  # reading it blocked for ever
    assert main(["radiograph", str(pipe), "--out", str(tmp_path / "o")]) == 2
    assert "not a regular file" in capsys.readouterr().err


def _dicom_variant(tmp_path, phantom, name, **elements):
    """The phantom's DICOM with header elements set: ``keyword=(tag, VR, value)`` or None to delete."""
    import pydicom

    ds = pydicom.dcmread(write_phantom_dicom(phantom, tmp_path / "base.dcm", photometric="MONOCHROME2"))
    for keyword, spec in elements.items():
        if spec is None:
            del ds[keyword]
        else:
            ds.add_new(*spec)
    ds.save_as(tmp_path / name)
    return tmp_path / name


def test_display_window_is_not_applied_usable_or_not(tmp_path, small):
    # A window is a display setting: applied, it clipped what lay outside it, and a bone window
    # (2800/1600 on this phantom's 0-4095) left 2 of its 5 deposits. A damaged one is not read.
    plain_path = write_phantom_dicom(small, tmp_path / "plain.dcm", photometric="MONOCHROME2")
    plain = read_radiograph(plain_path)
    for name, vr, center, width in (("bone.dcm", "DS", "2800", "1600"), ("w0.dcm", "LO", "2000", "0"),
                                    ("wneg.dcm", "LO", "2000", "-5"), ("wtext.dcm", "LO", "abc", "def")):
        path = _dicom_variant(tmp_path, small, name, WindowCenter=(0x00281050, vr, center),
                              WindowWidth=(0x00281051, vr, width))
        rg = read_radiograph(path)
        assert np.array_equal(rg.image, plain.image), name
        assert rg.description["voi"] == "none" and rg.warnings == plain.warnings, name
    found = analyze_radiograph(read_radiograph(tmp_path / "bone.dcm")).summary["totals"]["count"]
    assert found == analyze_radiograph(plain).summary["totals"]["count"] == 5


def test_damaged_dicom_layout_fields_are_refused_in_one_line(tmp_path, small, capsys):
    cases = (
        (_dicom_variant(tmp_path, small, "frames.dcm", NumberOfFrames=(0x00280008, "LO", "abc")), "NumberOfFrames"),
        (_dicom_variant(tmp_path, small, "nophoto.dcm", PhotometricInterpretation=None),
         "no PhotometricInterpretation"),  # was called a colour image (SamplesPerPixel > 1)
        (_dicom_variant(tmp_path, small, "huge.dcm", Rows=(0x00280010, "US", 60000),
                        Columns=(0x00280011, "US", 60000)), "million pixels"),
    )
    for path, words in cases:
        assert main(["radiograph", str(path), "--out", str(tmp_path / "o")]) == 2, path
        err = capsys.readouterr().err.strip()
        assert words in err and err.count("\n") == 0, err


def test_invert_on_dicom_says_it_is_ignored(tmp_path, small):
    path = write_phantom_dicom(small, tmp_path / "t.dcm", photometric="MONOCHROME2")
    rg = read_radiograph(path, invert=True)
    assert np.array_equal(rg.image, read_radiograph(path).image)
    assert any("--invert ignored" in w for w in rg.warnings)


def test_out_that_is_a_file_or_cannot_be_created_exits_2(tmp_path, small, capsys):
    from PIL import Image

    png = tmp_path / "t.png"
    Image.fromarray(_grey8(small)).save(png)
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for out, words in ((afile, "not a folder"), (afile / "sub", "cannot create")):
        assert main(["radiograph", str(png), "--pixel-spacing", "1", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and err.count("\n") == 0, err
        assert main(["radiograph-compare", str(png), str(png), "--pixel-spacing", "1", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and err.count("\n") == 0, err
    assert afile.read_text() == "keep me"


@pytest.fixture(scope="module")
def small_out(tmp_path_factory, small):
    """A 'calcinosis radiograph' output folder of the small phantom (calibrated)."""
    out = tmp_path_factory.mktemp("small") / "out"
    assert main(["radiograph", str(write_phantom_dicom(small, out.parent / "s.dcm")), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("content", [
    '"score totals"', '{"score": [1], "totals": {}}', '{"score": {}, "totals": {}}',
    '{"score": {"image_score": "8", "by_area": {}}, "totals": {"total_area_mm2": 1}}',
    '{"score": {"image_score": null, "by_area": {}}, "totals": {"total_area_mm2": 1}}',
    '{"score": {"image_score": NaN, "by_area": {}}, "totals": {"total_area_mm2": 1}}',
    '{"score": {"image_score": 3, "by_area": {"hand": {"score": "x"}}}, "totals": {"total_area_mm2": 1}}',
])
def test_compare_refuses_a_summary_that_is_not_one(tmp_path, small_out, capsys, content):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text(content)
    assert main(["radiograph-compare", str(small_out), str(bad), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a radiograph summary" in err and err.count("\n") == 0, err


def test_compare_refuses_calibrated_against_uncalibrated(tmp_path, small, small_out, capsys):
    # The same radiograph without its spacing read as +158 % "progression": detection ran
    # under an assumed 0.2 mm pixel.
    bare = write_phantom_dicom(small, tmp_path / "bare.dcm", with_spacing=False)
    assert main(["radiograph-compare", str(small_out), str(bare), "--out", str(tmp_path / "c")]) == 2
    assert "not comparable" in capsys.readouterr().err
    # --pixel-spacing gives the bare image its spacing and leaves the calibrated input's alone.
    assert main(["radiograph-compare", str(small_out), str(bare), "--pixel-spacing", "1",
                 "--out", str(tmp_path / "c")]) == 0
    comp = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert comp["status"] == "stable" and comp["score"]["change_percent"] == 0.0


def test_a_run_stopped_while_writing_leaves_no_part_of_a_result(tmp_path, thigh, monkeypatch):
    # summary.json was written second: a failure (or Ctrl-C) on overlay.png or report.html left
    # a summary without them, and over an earlier result, this run's summary beside its report.
    from PIL import Image

    import calcinosis.radiograph.outputs as outputs

    png = tmp_path / "thigh.png"
    Image.fromarray((thigh.image // 16).astype(np.uint8)).save(png)
    out = tmp_path / "a"
    argv = ["radiograph", str(png), "--pixel-spacing", "0.25", "--out", str(out)]
    assert main(argv) == 0 and (out / "summary.json").is_file()
    write_text = outputs.write_text

    def fail_on_the_report(path, text):
        if path.name == "report.html":
            raise KeyboardInterrupt
        return write_text(path, text)

    monkeypatch.setattr(outputs, "write_text", fail_on_the_report)
    assert main(argv) == 130
    assert sorted(p.name for p in out.iterdir()) == []


def test_outputs_hold_no_patient_identifier(tmp_path, small):
    # The file's path (its folder is the patient's name here) and the header's free-text
    # processing description were copied into summary.json and report.html.
    import re

    folder = tmp_path / "Doe_Jane_MRN4242"
    folder.mkdir()
    path = _dicom_variant(tmp_path, small, "x.dcm", PatientName=(0x00100010, "PN", "Doe^Jane"),
                          PatientID=(0x00100020, "LO", "MRN4242"),
                          AcquisitionDeviceProcessingDescription=(0x00181400, "LO", "THIGH AP Jane Doe"))
    path = path.rename(folder / "Doe_Jane.dcm")
    out = tmp_path / "out"
    assert main(["radiograph", str(path), "--out", str(out)]) == 0
    html = re.sub(r"base64,[A-Za-z0-9+/=]+", "", (out / "report.html").read_text())
    for text in (html, (out / "summary.json").read_text(), (out / "deposits.csv").read_text()):
        assert not re.search("doe|jane|mrn4242", text, re.IGNORECASE)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["anatomical_area"] == "thigh" and summary["input"]["modality"] == "DX"


def test_an_input_named_like_an_output_is_not_written_over(tmp_path, small, capsys):
    # A radiograph saved as overlay.png in the output folder was replaced by the overlay.
    from PIL import Image

    image = tmp_path / "overlay.png"
    Image.fromarray(_grey8(small)).save(image)
    before = image.read_bytes()
    assert main(["radiograph", str(image), "--pixel-spacing", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "overlay.png would be written over the input" in err and err.count("\n") == 0
    assert image.read_bytes() == before and not (tmp_path / "summary.json").exists()
    named = tmp_path / "comparison.json"
    named.write_bytes(before)
    assert main(["radiograph-compare", str(image), str(named), "--pixel-spacing", "1", "--out", str(tmp_path)]) == 2
    assert named.read_bytes() == before


def test_warnings_go_to_stderr_and_into_the_comparison(tmp_path, small, small_out, capsys):
    from PIL import Image

    image = tmp_path / "s.png"
    Image.fromarray(_grey8(small)).save(image)
    assert main(["radiograph", str(image), "--out", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    # stdout is the result line alone; the warnings were printed there too
    assert out.count("\n") == 1 and "pixel spacing" not in out and "no pixel spacing" in err
    # radiograph-compare: each image's warnings and a part that differs, in comparison.json and on stderr
    summary = json.loads((small_out / "summary.json").read_text())
    assert summary["anatomical_area"] == "thigh"
    other = dict(summary, anatomical_area="hand", warnings=["no body part found in the image; nothing was analysed"])
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "summary.json").write_text(json.dumps(other))
    assert main(["radiograph-compare", str(small_out), str(tmp_path / "h"), "--out", str(tmp_path / "c")]) == 0
    out, err = capsys.readouterr()
    warnings = json.loads((tmp_path / "c" / "comparison.json").read_text())["warnings"]
    assert "after: no body part found in the image; nothing was analysed" in warnings
    assert any("of the thigh, the after of the hand" in w for w in warnings)
    assert "nothing was analysed" in err and "after of the hand" in err and "warning" not in out.lower()
    sides = [dict(summary, input=dict(summary["input"], laterality=side)) for side in ("L", "R")]
    from calcinosis.radiograph.compare import compare_summaries

    assert any("left side, the after of the right" in w for w in compare_summaries(*sides)["warnings"])
    assert compare_summaries(summary, summary)["warnings"] == []


def test_messages_name_the_file_kind_and_the_option_typed(tmp_path, small, capsys):
    from PIL import Image

    png = tmp_path / "s.png"
    Image.fromarray(_grey8(small)).save(png)
    # A PNG named .dcm or without a suffix was read as DICOM and refused with pydicom's
    # "... Use force=True to force reading."
    for name in ("s.dcm", "IM0001"):
        (tmp_path / name).write_bytes(png.read_bytes())
        renamed = read_radiograph(tmp_path / name)
        assert np.array_equal(renamed.image, read_radiograph(png).image), name
        assert renamed.description["format"] == "PNG", name
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.dcm").write_text("not an image\n")
    for bad, words in (("empty.png", "empty file"), ("notes.dcm", "neither a DICOM file")):
        assert main(["radiograph", str(tmp_path / bad), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and "force" not in err and err.count("\n") == 0, err
    # --pixel-spacing 0 said "pixel spacing must be positive millimetres, got (0.0, 0.0)"
    for command in (["radiograph", str(png)], ["radiograph-compare", str(png), str(png)]):
        for value in ("0", "nan", "abc"):
            assert main([*command, "--pixel-spacing", value, "--out", str(tmp_path / "o")]) == 2
            err = capsys.readouterr().err.strip()
            assert f"argument --pixel-spacing: {value}" in err.replace("'", "") and "got (" not in err, err


def test_too_small_an_image_is_refused_and_a_thin_one_has_an_overlay(tmp_path, capsys):
    # A 1 x 1000 image crashed the report's overlay (exit 1); a 3 x 3 one was "analysed".
    import io

    from PIL import Image

    from calcinosis.radiograph.outputs import overlay_png

    for shape in ((1, 1000), (3, 3), (31, 400)):
        Image.fromarray(np.full(shape, 90, dtype=np.uint8)).save(tmp_path / "s.png")
        assert main(["radiograph", str(tmp_path / "s.png"), "--out", str(tmp_path / "o")]) == 2, shape
        err = capsys.readouterr().err.strip()
        assert "too small to be a radiograph" in err and err.count("\n") == 0
    result = analyze_radiograph(radiograph_from_array(np.full((32, 400), 90.0), 0.5))
    png = overlay_png(result, max_side=10)  # 32 rows scaled by 1/40: 0 rows
    assert Image.open(io.BytesIO(png)).size == (10, 1)


def test_a_negative_read_as_a_positive_is_warned(tmp_path, small):
    # A negative (bright = air) without --invert gave 26-44 false deposits, silently.
    warned = "as in a negative"
    positive = analyze_radiograph(radiograph_from_array(small.image, 1.0)).summary["warnings"]
    negative = analyze_radiograph(radiograph_from_array(4095.0 - small.image, 1.0)).summary["warnings"]
    assert not any(warned in w for w in positive) and any(warned in w and "--invert" in w for w in negative)
    # a DICOM whose PhotometricInterpretation says the opposite of its pixels
    path = _dicom_variant(tmp_path, small, "m1.dcm", PhotometricInterpretation=(0x00280004, "CS", "MONOCHROME1"))
    summary = analyze_radiograph(read_radiograph(path)).summary
    assert any(warned in w and "PhotometricInterpretation" in w for w in summary["warnings"])


def test_a_header_spacing_of_one_value_is_a_square_pixel(tmp_path, small):
    # ImagerPixelSpacing "1" (one value, not two) was taken as no spacing: areas in pixels.
    path = _dicom_variant(tmp_path, small, "one.dcm", ImagerPixelSpacing=(0x00181164, "DS", "1"))
    rg = read_radiograph(path)
    assert rg.pixel_spacing_mm == (1.0, 1.0) and rg.description["pixel_spacing_source"] == "ImagerPixelSpacing"
    assert any("has one value (1)" in w for w in rg.warnings)


def test_compressed_pixels_without_a_decoder_name_what_to_install(tmp_path, capsys):
    # It said "cannot be decoded, the file may be truncated (... all plugins are missing de...)".
    import pydicom
    from pydicom.pixels import get_decoder

    ds = pydicom.dcmread(_real("JPGLosslessP14SV1_1s_1f_8b.dcm"))
    if get_decoder(ds.file_meta.TransferSyntaxUID).is_available:
        pytest.skip("a JPEG Lossless decoder is installed here")
    ds.Modality = "DX"
    ds.save_as(tmp_path / "jpeg.dcm")
    assert main(["radiograph", str(tmp_path / "jpeg.dcm"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a decoder not installed" in err and "pylibjpeg" in err and "truncated" not in err
    assert err.count("\n") == 0


def test_a_collimator_turned_to_the_limb_does_not_hide_it():
    # The field turned by 20 degrees (its shadow blank, as a DR system shows it): the line
    # medians left the shadow's corners in the field, the body threshold took them for the
    # tissue and 3 of the hand's 14 deposits were found (30 degrees: none, "no body part").
    from scipy import ndimage

    hand = make_radiograph_phantom("hand", pixel_spacing_mm=0.5)
    turned = ndimage.rotate(hand.image.astype(float), 20, reshape=True, order=0, cval=4095.0)
    marks = np.zeros(hand.image.shape)
    for t in hand.deposits:  # 3 x 3 marks: a single pixel may be lost by the turn
        r, c = round(t.row_px), round(t.col_px)
        marks[r - 1:r + 2, c - 1:c + 2] = t.deposit_id
    marks = ndimage.rotate(marks, 20, reshape=True, order=0, cval=0.0)
    truth = [np.argwhere(marks == t.deposit_id).mean(axis=0) for t in hand.deposits if (marks == t.deposit_id).any()]
    result = analyze_radiograph(radiograph_from_array(turned, 0.5))
    near = [[np.hypot(d.row_px - r, d.col_px - c) * 0.5 < 2.0 for d in result.deposits] for r, c in truth]
    assert sum(map(any, near)) >= 12 and all(any(column) for column in zip(*near))  # found; none false
    # A dense object that reaches the border over its own width (a bone, a nail) is no shadow:
    # the field of an image cropped inside its collimation stays whole.
    from calcinosis.radiograph.segment import find_collimation

    cropped = hand.image.astype(float)[20:-20, 20:-30]
    cropped[:200, 170:186] = 4095.0
    assert find_collimation(cropped, (0.5, 0.5))[0].all()


def test_compare_refuses_two_patients_or_dates_in_reverse(tmp_path, small, capsys):
    # Two patients' radiographs were compared without a word (calcinosis compare refuses them).
    def variant(name, patient, date):
        return str(_dicom_variant(tmp_path, small, name, PatientID=(0x00100020, "LO", patient),
                                  StudyDate=(0x00080020, "DA", date)))

    a_2022, a_2024, b_2025 = variant("a22.dcm", "A1", "20220105"), variant("a24.dcm", "A1", "20240105"), \
        variant("b25.dcm", "B2", "20250101")
    for before, after, words in ((a_2022, b_2025, "different patient IDs"), (a_2024, a_2022, "taken before")):
        assert main(["radiograph-compare", before, after, "--out", str(tmp_path / "c")]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and "--any-patients" in err and "A1" not in err and err.count("\n") == 0
    assert main(["radiograph-compare", a_2022, b_2025, "--any-patients", "--out", str(tmp_path / "c")]) == 0
    assert main(["radiograph-compare", a_2022, a_2024, "--out", str(tmp_path / "c")]) == 0
