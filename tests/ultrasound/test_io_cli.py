"""Reading DICOM US / PNG, the CLI and its outputs, cine tracking and bad inputs."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
from PIL import Image

from calcinosis.cli import main
from calcinosis.errors import InputError
from calcinosis.phantom.ultrasound import make_us_cine_phantom, make_us_phantom, write_us_dicom
from calcinosis.ultrasound import analyze_ultrasound, read_ultrasound, render_ultrasound_section_html


@pytest.fixture(scope="module")
def phantom():
    return make_us_phantom(seed=4, n_deposits=3, widths_mm=[3.0, 4.5, 6.0], shadow_strengths=[0.8, 0.75, 0.85])


def _near_truth(dep, ph, tol_px=15):
    return any(abs(dep.x_px - d.x_px) < tol_px and abs(dep.y_px - d.y_px) < tol_px for d in ph.deposits)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "RGB", "PALETTE COLOR"])
def test_dicom_photometric_variants_read_the_same(tmp_path, phantom, photometric):
    path = tmp_path / "us.dcm"
    write_us_dicom(path, phantom.image, pixel_mm=0.1, photometric=photometric)
    img = read_ultrasound(path)
    assert img.rgb.shape == (1, 400, 600, 3)
    assert np.array_equal(img.rgb[0, ..., 1], phantom.image)
    assert img.tissue_regions[0].row_mm == pytest.approx(0.1) and img.declared_regions
    result = analyze_ultrasound(img)
    assert len(result.deposits) == 3 and all(_near_truth(d, phantom) for d in result.deposits)
    truth = sorted(phantom.deposits, key=lambda d: d.x_px)
    for d, t in zip(sorted(result.deposits, key=lambda d: d.x_px), truth):
        assert abs(d.depth_mm - t.depth_mm) <= 1.0 and abs(d.width_mm / t.width_mm - 1) <= 0.25


def test_cli_png_with_pixel_spacing_writes_all_outputs(tmp_path, phantom):
    png = tmp_path / "scan.png"
    Image.fromarray(phantom.image).save(png)
    out = tmp_path / "out"
    assert main(["ultrasound", str(png), "--out", str(out), "--pixel-spacing", "0.1"]) == 0
    rows = list(csv.DictReader((out / "deposits.csv").open()))
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == 3 == summary["count"]
    assert summary["schema_version"] and summary["units"] == "mm" and summary["input"]["format"] == "png"
    for row in rows:
        t = min(phantom.deposits, key=lambda d: abs(d.x_px - float(row["x_px"])))
        assert abs(float(row["depth_mm"]) - t.depth_mm) <= 1.0
        assert abs(float(row["width_mm"]) / t.width_mm - 1) <= 0.25
        assert 0 < float(row["shadow_strength"]) <= 1 and 0 <= float(row["confidence"]) <= 1
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html and "<section" in html
    assert Image.open(out / "overlay.png").size == (600, 400)
    # Same input, same output, byte for byte.
    out2 = tmp_path / "out2"
    assert main(["ultrasound", str(png), "--out", str(out2), "--pixel-spacing", "0.1"]) == 0
    for name in ("deposits.csv", "summary.json", "overlay.png", "report.html"):
        assert (out / name).read_bytes() == (out2 / name).read_bytes()


def test_png_without_pixel_spacing_reports_pixels_with_warning(tmp_path, phantom):
    png = tmp_path / "scan.png"
    Image.fromarray(phantom.image).save(png)
    out = tmp_path / "out"
    assert main(["ultrasound", str(png), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["units"] == "px" and any("pixel" in w for w in summary["warnings"])
    rows = list(csv.DictReader((out / "deposits.csv").open()))
    assert rows and all(r["width_mm"] == "" and float(r["width_px"]) > 10 for r in rows)


def test_cine_deposits_are_followed_across_frames(tmp_path):
    ph = make_us_cine_phantom(seed=6, n_frames=3, shift_mm_per_frame=0.6, n_deposits=3,
                              widths_mm=[3.0, 4.0, 5.0], shadow_strengths=[0.85, 0.85, 0.85])
    path = tmp_path / "cine.dcm"
    write_us_dicom(path, ph.image, pixel_mm=0.1)
    img = read_ultrasound(path)
    assert img.n_frames == 3
    result = analyze_ultrasound(img)
    assert result.n_tracks == 3
    for track in {d.track_id for d in result.deposits}:
        dets = sorted((d for d in result.deposits if d.track_id == track), key=lambda d: d.frame)
        assert [d.frame for d in dets] == [0, 1, 2]
        shifts = np.diff([d.x_px for d in dets])
        assert np.allclose(shifts, ph.shift_px_per_frame, atol=3)  # the anatomy moves by 6 px/frame
    html = render_ultrasound_section_html(result)
    assert html.count("<tr>") == 1 + len(result.deposits)


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
    return err


def test_ct_given_as_ultrasound_is_refused(tmp_path, capsys):
    from pydicom.data import get_testdata_file

    assert main(["ultrasound", get_testdata_file("CT_small.dcm"), "--out", str(tmp_path / "o")]) == 2
    assert "CT" in _one_line_error(capsys)


def test_truncated_dicom_is_refused(tmp_path, phantom, capsys):
    path = tmp_path / "us.dcm"
    write_us_dicom(path, phantom.image, pixel_mm=0.1)
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["ultrasound", str(cut), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys)
    assert path.read_bytes() == data  # the input is never modified


@pytest.mark.parametrize("name,content", [("bad.png", b"\x89PNG\r\n\x1a\nnot really a png"), ("bad.jpg", b"")])
def test_unreadable_bitmap_is_refused(tmp_path, capsys, name, content):
    bad = tmp_path / name
    bad.write_bytes(content)
    assert main(["ultrasound", str(bad), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys)


def test_missing_file_and_bad_spacing_are_refused(tmp_path, capsys):
    assert main(["ultrasound", str(tmp_path / "none.dcm"), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys)
    with pytest.raises(InputError):
        read_ultrasound(__file__, pixel_spacing_mm=-1)
    # A pixel size no scanner has (1e-30 mm crashed the filters, whose sizes are in mm).
    from PIL import Image

    png = tmp_path / "speckle.png"
    Image.fromarray((np.random.default_rng(0).random((200, 200)) * 80).astype(np.uint8)).save(png)
    assert main(["ultrasound", str(png), "--out", str(tmp_path / "o"), "--pixel-spacing", "1e-30"]) == 2
    assert "pixel size" in _one_line_error(capsys)


def test_image_without_an_echo_field_says_nothing_on_stderr(tmp_path, capsys):
    # Bright spots only, none of them 500 pixels large: no echo field. scikit-image's convex
    # hull of nothing warned on stderr ("Input image is entirely zero").
    from PIL import Image

    grey = np.zeros((400, 400), np.uint8)
    for r in range(20, 400, 60):
        for c in range(20, 400, 60):
            grey[r:r + 6, c:c + 6] = 255  # each under 500 pixels once smoothed
    png = tmp_path / "specks.png"
    Image.fromarray(grey).save(png)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["ultrasound", str(png), "--out", str(tmp_path / "o"), "--pixel-spacing", "0.2"]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err.lower() and err.count("\n") <= 1  # the one summary line


# --- Inputs the reader used to misread, hang on or crash on ----------------------------------


def test_16_bit_png_is_scaled_not_clipped(tmp_path, phantom):
    # Pillow's RGB conversion clipped 16-bit grey at 255: the image went white, 1 deposit of 3.
    png = tmp_path / "scan16.png"
    Image.fromarray(phantom.image.astype(np.uint16) * 257).save(png)
    assert Image.open(png).mode == "I;16"
    img = read_ultrasound(png, pixel_spacing_mm=0.1)
    assert np.array_equal(img.rgb[0, ..., 1], phantom.image)
    assert len(analyze_ultrasound(img).deposits) == 3


def _bad_bitmap(kind: str, tmp_path, phantom, png_declaring):
    """A PNG/TIFF the reader must refuse (what the old reader did in comments)."""
    import os

    path = tmp_path / ("multi.tif" if kind == "multi" else f"{kind}.png")
    if kind == "multi":  # pages of two sizes: "all input arrays must have the same shape"
        Image.fromarray(phantom.image).save(path, save_all=True,
                                            append_images=[Image.fromarray(phantom.image[:100, :100])])
    elif kind == "short":  # rows 100-399 were read as 0
        png_declaring(path, phantom.image[:100], 600, 400)
    elif kind == "huge":  # Pillow's DecompressionBombError, exit 1
        png_declaring(path, np.zeros((1, 60000), np.uint8), 60000, 60000)
    else:  # "pipe": was "no such file"
        if not hasattr(os, "mkfifo"):
            pytest.skip("no named pipes here")
        os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind,words", [
    ("multi", "one size"), ("short", "ends before the last row"), ("huge", "million pixels"),
    ("pipe", "not a regular file"),
])
def test_bad_bitmaps_are_refused_in_one_line(tmp_path, phantom, capsys, kind, words, png_declaring):
    path = _bad_bitmap(kind, tmp_path, phantom, png_declaring)
    assert main(["ultrasound", str(path), "--out", str(tmp_path / "o")]) == 2
    assert words in _one_line_error(capsys)


def _dicom_variant(tmp_path, phantom, name, edit, pixel_mm=0.1):
    import pydicom

    write_us_dicom(tmp_path / "base.dcm", phantom.image, pixel_mm=pixel_mm)
    ds = pydicom.dcmread(tmp_path / "base.dcm")
    edit(ds)
    ds.save_as(tmp_path / name)
    return tmp_path / name


def test_damaged_optional_scale_fields_are_ignored_with_a_warning(tmp_path, phantom):
    def region(keyword_tag, vr, value):
        return lambda ds: ds.SequenceOfUltrasoundRegions[0].add_new(keyword_tag, vr, value)

    cases = {
        "dx.dcm": (region(0x0018602C, "LO", "abc"), "not a number"),  # PhysicalDeltaX: ValueError
        "units.dcm": (region(0x00186024, "LO", "cm"), "not a number"),  # PhysicalUnitsXDirection
    }
    for name, (edit, words) in cases.items():
        img = read_ultrasound(_dicom_variant(tmp_path, phantom, name, edit))
        assert img.declared_regions and not img.has_physical_scale, name
        assert any(words in w for w in img.warnings), name
    for value, vr in (("0.1", "DS"), ("abc\\0.1", "LO")):  # one value: TypeError; text: ValueError
        path = _dicom_variant(tmp_path, phantom, "ps.dcm", lambda ds: ds.add_new(0x00280030, vr, value), pixel_mm=None)
        img = read_ultrasound(path)
        assert not img.has_physical_scale and any("PixelSpacing" in w for w in img.warnings), value


def test_region_of_unknown_kind_is_masked_not_analysed(tmp_path, phantom):
    path = _dicom_variant(tmp_path, phantom, "rdt.dcm",
                          lambda ds: ds.SequenceOfUltrasoundRegions[0].add_new(0x00186014, "LO", "x"))
    img = read_ultrasound(path)  # was ValueError: invalid literal for int()
    assert img.excluded_regions and img.excluded_regions[0].data_type == 0
    assert any("RegionDataType" in w for w in img.warnings)


def test_region_outside_the_image_is_named_in_the_warning(tmp_path, phantom):
    path = _dicom_variant(tmp_path, phantom, "out.dcm",
                          lambda ds: setattr(ds.SequenceOfUltrasoundRegions[0], "RegionLocationMinX0", 5000))
    img = read_ultrasound(path)
    assert not img.declared_regions
    assert any("600 x 400 image: ignored, with its scale" in w for w in img.warnings)
    assert not any(w.startswith("no Sequence of Ultrasound Regions") for w in img.warnings)  # it has one


def test_truncated_dicom_header_is_called_truncated(tmp_path, phantom, capsys):
    path = tmp_path / "us.dcm"
    write_us_dicom(path, phantom.image, pixel_mm=0.1)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(path.read_bytes()[:400])  # ends inside the header, before Modality
    assert main(["ultrasound", str(cut), "--out", str(tmp_path / "o")]) == 2
    assert "the file is truncated" in _one_line_error(capsys)  # was "not marked as ultrasound"


def test_out_that_cannot_be_created_exits_2(tmp_path, phantom, capsys):
    png = tmp_path / "scan.png"
    Image.fromarray(phantom.image).save(png)
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(["ultrasound", str(png), "--out", str(afile / "sub")]) == 2  # was NotADirectoryError, exit 1
    assert "cannot create" in _one_line_error(capsys)
    assert afile.read_text() == "keep me"


# --- Probing round h23c: calipers, anisotropic pixels, blank images, cine gaps, messages --------


def _with_calipers(phantom, colour=(255, 255, 0)):
    """The phantom as a screen capture on which the radiologist measured every deposit: a
    caliper cross (9 pixels, one pixel wide) on each lateral edge, as scanners burn them in."""
    from PIL import ImageDraw

    im = Image.fromarray(phantom.image).convert("RGB")
    draw = ImageDraw.Draw(im)
    for d in phantom.deposits:
        y = int(d.y_px)
        for x in (d.x_px - d.width_mm / 0.2, d.x_px + d.width_mm / 0.2):
            x = int(x)
            draw.line([(x - 4, y), (x + 4, y)], fill=colour)
            draw.line([(x, y - 4), (x, y + 4)], fill=colour)
    return im


def test_deposits_measured_with_calipers_are_found(tmp_path, phantom):
    # Yellow calipers on a deposit's edges made it touch the masked annotation, which rejected
    # it as cut off: 0 of 3 deposits found. The calipers hide a few pixels of each.
    png = tmp_path / "calipers.png"
    _with_calipers(phantom).save(png)
    result = analyze_ultrasound(read_ultrasound(png, pixel_spacing_mm=0.1))
    assert len(result.deposits) == 3 and all(_near_truth(d, phantom, tol_px=5) for d in result.deposits)
    truth = sorted(phantom.deposits, key=lambda d: d.x_px)
    for d, t in zip(sorted(result.deposits, key=lambda d: d.x_px), truth):
        assert 0.8 <= d.width_mm / t.width_mm <= 1.2 and abs(d.depth_mm - t.depth_mm) <= 0.6
        assert 0 < d.hidden_share <= 0.4
    assert any("under burned-in marks" in w for w in result.warnings)
    # The outline is drawn on the visible echoes only, never on the calipers.
    coloured = np.ptp(np.asarray(Image.open(png)).astype(int), axis=-1) > 40
    assert not any(coloured[d.mask_rows, d.mask_cols].any() for d in result.deposits)


def test_anisotropic_pixel_spacing_measures_widths_on_the_column_spacing(tmp_path, phantom):
    # Every other column of a 0.1 mm image: 0.1 mm rows, 0.2 mm columns. PixelSpacing's column
    # value was dropped (the row's used for both): widths and lateral positions read half.
    path = tmp_path / "aniso.dcm"
    write_us_dicom(path, phantom.image[:, ::2], pixel_mm=None)
    import pydicom

    ds = pydicom.dcmread(path)
    ds.PixelSpacing = [0.1, 0.2]
    ds.save_as(path)
    img = read_ultrasound(path)
    assert (img.tissue_regions[0].row_mm, img.tissue_regions[0].col_mm) == (0.1, 0.2)
    assert img.description["column_spacing_mm"] == 0.2
    result = analyze_ultrasound(img)
    truth = sorted(phantom.deposits, key=lambda d: d.x_mm)
    found = sorted(result.deposits, key=lambda d: d.x_mm)
    assert len(found) == 3
    for d, t in zip(found, truth):
        assert abs(d.x_mm - t.x_mm) <= 0.5 and 0.8 <= d.width_mm / t.width_mm <= 1.2
        assert abs(d.depth_mm - t.depth_mm) <= 0.6
    # --pixel-spacing wins over the header, and says so where they disagree (it was silent).
    img = read_ultrasound(path, pixel_spacing_mm=0.1)
    assert img.tissue_regions[0].col_mm == 0.1
    assert any("--pixel-spacing 0.1 used instead of the file's PixelSpacing 0.1\\0.2" in w for w in img.warnings)


def test_a_deposit_unseen_on_one_cine_frame_keeps_its_track(tmp_path):
    # The middle frame of five shows only speckle (the probe lifted for a moment): the tracks
    # were cut there and the 3 deposits counted 6.
    ph = make_us_cine_phantom(seed=6, n_frames=5, shift_mm_per_frame=0.6, n_deposits=3,
                              widths_mm=[3.0, 4.0, 5.0], shadow_strengths=[0.85, 0.85, 0.85])
    frames = ph.image.copy()
    frames[2] = np.random.default_rng(1).integers(30, 90, frames[2].shape)
    path = tmp_path / "cine.dcm"
    write_us_dicom(path, frames, pixel_mm=0.1)
    result = analyze_ultrasound(read_ultrasound(path))
    assert result.n_tracks == 3
    for track in {d.track_id for d in result.deposits}:
        dets = sorted((d for d in result.deposits if d.track_id == track), key=lambda d: d.frame)
        assert [d.frame for d in dets] == [0, 1, 3, 4]
        assert np.allclose(np.diff([d.x_px for d in dets]) / np.diff([d.frame for d in dets]),
                           ph.shift_px_per_frame, atol=3)


def test_outputs_name_neither_the_patient_nor_the_file(tmp_path, phantom):
    # A scanner export named after the patient: summary.json ("source") and report.html
    # ("Input: ...") copied the file's name, which the CT path keeps only on request.
    import pydicom

    path = tmp_path / "MASUDA_HIROKI_thigh.dcm"
    write_us_dicom(path, phantom.image, pixel_mm=0.1)
    ds = pydicom.dcmread(path)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Masuda^Hiroki", "MRN-4711", "19640101"
    ds.save_as(path)
    out = tmp_path / "out"
    assert main(["ultrasound", str(path), "--out", str(out)]) == 0
    for f in out.iterdir():
        text = f.read_bytes().decode("latin-1").lower()
        for word in ("masuda", "hiroki", "mrn-4711", "19640101"):
            assert word not in text, f"{f.name} holds {word!r}"


@pytest.mark.parametrize("value", ["1.5", "0", "nan"])
def test_bad_max_shadow_ratio_is_named_as_typed(tmp_path, capsys, value):
    # Was "--max-shadow-ratio: UltrasoundConfig.max_shadow_ratio must be in (0, 1), got 1.5".
    png = tmp_path / "speckle.png"
    Image.fromarray((np.random.default_rng(0).random((60, 60)) * 80).astype(np.uint8)).save(png)
    assert main(["ultrasound", str(png), "--out", str(tmp_path / "o"), "--max-shadow-ratio", value]) == 2
    err = _one_line_error(capsys)
    assert f"--max-shadow-ratio {value}: must be a ratio between 0 and 1" in err and "UltrasoundConfig" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind,words", [
    ("black", "nothing was analysed"), ("one_grey", "nothing was analysed"), ("tiny", "nothing was analysed"),
    ("bright", "at full white"), ("dark", "the echo field is dark"),
])
def test_an_image_that_cannot_show_a_deposit_says_so(tmp_path, phantom, kind, words):
    # Each gave "0 deposit(s)" (or fewer than the phantom's 3) with no warning at all.
    grey = {"black": np.zeros((400, 600)), "one_grey": np.full((400, 600), 128), "tiny": np.full((5, 5), 200),
            "bright": phantom.image * 2.0, "dark": phantom.image / 6.0}[kind]
    png = tmp_path / f"{kind}.png"
    Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).save(png)
    out = tmp_path / "o"
    assert main(["ultrasound", str(png), "--out", str(out), "--pixel-spacing", "0.1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] < 3 and any(words in w for w in summary["warnings"])


def test_the_phantom_as_made_gets_no_gain_warning(tmp_path, phantom):
    png = tmp_path / "ok.png"
    Image.fromarray(phantom.image).save(png)
    result = analyze_ultrasound(read_ultrasound(png, pixel_spacing_mm=0.1))
    assert len(result.deposits) == 3 and result.warnings == ()


@pytest.mark.parametrize("name,content,words", [
    ("empty.dcm", b"", "the file is empty"),
    ("notes.txt", b"thigh scan, left\n", "neither a DICOM file (no DICOM header) nor a PNG or JPEG image"),
    ("scan.dcm", b"not dicom at all" * 20, "neither a DICOM file"),
    ("ct.nii.gz", b"\x1f\x8b" + b"\0" * 60, "a 3-D volume file"),
])
def test_files_that_are_no_image_are_named_for_what_they_are(tmp_path, capsys, name, content, words):
    # Each said "not a readable DICOM file (File is missing DICOM File Meta Information header
    # or the 'DICM' prefix is missing from the header. Use force=True to fo)".
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["ultrasound", str(path), "--out", str(tmp_path / "o")]) == 2
    err = _one_line_error(capsys)
    assert words in err and "force" not in err
    assert path.read_bytes() == content


@pytest.mark.parametrize("pad_mm", [8, 15])
def test_depth_is_measured_from_the_skin_under_a_stand_off_pad(tmp_path, phantom, pad_mm):
    # A gel stand-off pad of faint echoes (grey 15) over the phantom: the skin lay beyond the
    # 6 mm searched below the top of the echo field, so depths were read from the pad's top
    # (an 8 mm pad: 13.9 mm for a deposit 5.1 mm under the skin).
    pad = np.random.default_rng(0).normal(15, 5, (int(pad_mm / 0.1), phantom.image.shape[1]))
    png = tmp_path / "pad.png"
    Image.fromarray(np.vstack([np.clip(pad, 0, 255).astype(np.uint8), phantom.image])).save(png)
    result = analyze_ultrasound(read_ultrasound(png, pixel_spacing_mm=0.1))
    assert len(result.deposits) == 3
    truth = sorted(phantom.deposits, key=lambda d: d.x_px)
    for d, t in zip(sorted(result.deposits, key=lambda d: d.x_px), truth):
        assert abs(d.depth_mm - t.depth_mm) <= 0.6


def test_a_folder_holding_another_analysis_is_refused_untouched(tmp_path, phantom, capsys):
    # A CT analysis's folder given as --out: its summary.json and report.html were replaced by
    # the ultrasound's, and its lesions.csv left beside them.
    png = tmp_path / "scan.png"
    Image.fromarray(phantom.image).save(png)
    ct = tmp_path / "ct"
    ct.mkdir()
    files = {"summary.json": json.dumps({"software": {"name": "calcinosis", "version": "0"}, "totals": {}}),
             "report.html": "<html>CT</html>", "lesions.csv": "lesion_id\n"}
    for name, text in files.items():
        (ct / name).write_text(text)
    assert main(["ultrasound", str(png), "--out", str(ct), "--pixel-spacing", "0.1"]) == 2
    assert "holds a CT analysis" in _one_line_error(capsys)
    assert {f.name: f.read_text() for f in ct.iterdir()} == files
    # An earlier ultrasound run's folder is still simply replaced.
    out = tmp_path / "us"
    assert main(["ultrasound", str(png), "--out", str(out), "--pixel-spacing", "0.1"]) == 0
    assert main(["ultrasound", str(png), "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["units"] == "px"


def test_an_output_never_replaces_the_input(tmp_path, phantom, capsys):
    # An earlier run's overlay.png analysed into its own folder was overwritten by the new one.
    png = tmp_path / "scan.png"
    Image.fromarray(phantom.image).save(png)
    out = tmp_path / "out"
    assert main(["ultrasound", str(png), "--out", str(out), "--pixel-spacing", "0.1"]) == 0
    overlay = (out / "overlay.png").read_bytes()
    capsys.readouterr()
    assert main(["ultrasound", str(out / "overlay.png"), "--out", str(out), "--pixel-spacing", "0.1"]) == 2
    assert "would replace the input image" in _one_line_error(capsys)
    assert (out / "overlay.png").read_bytes() == overlay


def test_a_dicom_frame_larger_than_any_scanner_makes_is_refused_before_decoding(tmp_path, phantom, capsys):
    # PNG/JPEG frames were held to MAX_FRAME_PIXELS, DICOM ones not: a 6400 x 6400 frame was
    # decoded and searched (a blank one: 21 s and 1.5 GB), a larger one ran out of memory.
    import pydicom

    path = _dicom_variant(tmp_path, phantom, "big.dcm", lambda ds: None)
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 6400
    ds.PixelData = bytes(6400 * 6400)
    ds.save_as(path)
    assert main(["ultrasound", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "more than 40 million pixels" in _one_line_error(capsys)


def test_pydicom_remarks_on_malformed_values_do_not_reach_stderr(tmp_path, phantom, capsys):
    # NumberOfFrames "1.5" put four lines of pydicom's (two of its source code) on stderr
    # before the one-line error; "0" put one beside the analysis and none in summary.json.
    from pydicom import config

    mode = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        half = _dicom_variant(tmp_path, phantom, "half.dcm", lambda ds: ds.add_new(0x00280008, "IS", "1.5"))
        zero = _dicom_variant(tmp_path, phantom, "zero.dcm", lambda ds: ds.add_new(0x00280008, "IS", "0"))
    finally:
        config.settings.writing_validation_mode = mode
    capsys.readouterr()
    assert main(["ultrasound", str(half), "--out", str(tmp_path / "o1")]) == 2
    assert "cannot decode the pixel data" in _one_line_error(capsys)
    img = read_ultrasound(zero)
    assert img.n_frames == 1 and any("malformed value" in w and "Number of Frames" in w for w in img.warnings)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("tint", [(1.0, 0.85, 0.65), (0.8, 0.9, 1.0)])
def test_b_mode_shown_in_a_tint_is_analysed_as_grey(tmp_path, phantom, tint):
    # Scanners' sepia or blue "chroma" B-mode: every echo brighter than about grey 115 was
    # masked as colour (and saturated echoes as flat boxes): 0 of 3 deposits, no warning.
    rgb = np.clip(phantom.image[..., None].astype(float) * np.array(tint), 0, 255).astype(np.uint8)
    path = tmp_path / "tinted.dcm"
    write_us_dicom(tmp_path / "grey.dcm", phantom.image, pixel_mm=0.1, photometric="RGB")
    import pydicom

    ds = pydicom.dcmread(tmp_path / "grey.dcm")
    ds.PixelData = rgb.tobytes()
    ds.save_as(path)
    result = analyze_ultrasound(read_ultrasound(path))
    assert len(result.deposits) == 3 and all(_near_truth(d, phantom, tol_px=5) for d in result.deposits)
    assert result.warnings == ()


@pytest.mark.parametrize("orientation,turn", [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_90)])
def test_a_jpeg_turned_by_its_exif_orientation_is_read_as_shown(tmp_path, phantom, orientation, turn):
    # The pixels stored turned, with the EXIF tag that turns them back for display (phones and
    # some viewers save so): read as stored, the 180-degree one gave 0 of 3 deposits.
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(phantom.image).transpose(turn).save(path, quality=95, exif=exif)
    img = read_ultrasound(path, pixel_spacing_mm=0.1)
    assert img.rgb.shape[1:3] == phantom.image.shape
    result = analyze_ultrasound(img)
    assert len(result.deposits) == 3 and all(_near_truth(d, phantom, tol_px=5) for d in result.deposits)


@pytest.mark.parametrize("box", [(50, 20, 550, 380), (0, 0, 599, 399)])
def test_a_b_mode_region_inside_another_does_not_count_deposits_twice(tmp_path, phantom, box):
    # A second B-mode region nested in the first (or an exact copy): every deposit was found in
    # both and the 3 deposits counted 6.
    import copy

    def nest(ds):
        region = copy.deepcopy(ds.SequenceOfUltrasoundRegions[0])
        (region.RegionLocationMinX0, region.RegionLocationMinY0,
         region.RegionLocationMaxX1, region.RegionLocationMaxY1) = box
        ds.SequenceOfUltrasoundRegions.append(region)

    img = read_ultrasound(_dicom_variant(tmp_path, phantom, "nested.dcm", nest))
    assert len(img.tissue_regions) == 1 and any("mostly inside another" in w for w in img.warnings)
    assert analyze_ultrasound(img).n_tracks == 3


def test_a_float_image_of_0_to_1_is_scaled_not_rounded(tmp_path, phantom):
    # A 32-bit float TIFF on 0-1 (as processing tools save one) was rounded to 0 and 1: black.
    path = tmp_path / "float.tif"
    Image.fromarray(phantom.image.astype(np.float32) / 255, mode="F").save(path)
    img = read_ultrasound(path, pixel_spacing_mm=0.1)
    assert np.abs(img.rgb[0, ..., 0].astype(int) - phantom.image).max() <= 1
    assert len(analyze_ultrasound(img).deposits) == 3
