"""Every bad DICOM input raises a one-line InputError naming the problem, and is left untouched."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_decoder

from calcinosis.errors import InputError
from calcinosis.io import read_volume, write_dicom_series, write_volume
from calcinosis.volume import Volume


def _edit(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


def _series(folder: Path, make_phantom: Callable[..., Volume], **kw: object) -> list[Path]:
    return write_dicom_series(make_phantom(), folder, series_uid="1.2.826.0.1.99", **kw)  # type: ignore[arg-type]


def empty(folder, make):
    pass


def non_dicom_only(folder, make):
    (folder / "notes.txt").write_text("a CT would be here")
    (folder / "scan.nii.gz").write_bytes(b"\x1f\x8b" + b"\0" * 400)
    (folder / "fake.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 10)  # marker, then garbage


def mr_series(folder, make):
    _series(folder, make, modality="MR")


def duplicated_slice(folder, make):
    # Another image at slice 5's position (a second acquisition in the series): which one
    # belongs cannot be told. (A copy of the same image, same SOPInstanceUID, is read once.)
    files = _series(folder, make)
    shutil.copy(files[4], folder / "again_slice5.dcm")
    _edit(folder / "again_slice5.dcm", SOPInstanceUID="1.2.826.0.1.99.5.2")


def missing_slice(folder, make):
    files = _series(folder, make)
    files[6].unlink()


def unequal_spacing(folder, make):
    files = _series(folder, make)
    ds = pydicom.dcmread(files[5])
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    _edit(files[5], ImagePositionPatient=[x, y, z + 0.4])  # gaps 2.9 and 2.1 mm around a 2.5 mm median


def single_slice(folder, make):
    files = _series(folder, make)
    for f in files[1:]:
        f.unlink()


def missing_position(folder, make):
    files = _series(folder, make)
    _edit(files[3], ImagePositionPatient=None)


def missing_orientation(folder, make):
    files = _series(folder, make)
    _edit(files[3], ImageOrientationPatient=None)


def inconsistent_orientation(folder, make):
    files = _series(folder, make)
    _edit(files[7], ImageOrientationPatient=[1, 0, 0, 0, 0.9961947, 0.0871557])


def inconsistent_size(folder, make):
    _series(folder, make)
    other = make(shape=(4, 10, 24), origin=(0.0, 0.0, 900.0))
    write_dicom_series(other, folder, series_uid="1.2.826.0.1.99", file_prefix="B")


def gantry_tilt(folder, make):
    files = _series(folder, make)
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        _edit(f, ImagePositionPatient=[x, y + 0.5 * k, z])


def raw_values_without_intercept(folder, make):
    vol = make()
    write_dicom_series(vol.with_array((vol.array + 1024).astype(np.int16)), folder, rescale_intercept=0.0)


def truncated_slice(folder, make):
    files = _series(folder, make)
    size = files[4].stat().st_size
    with open(files[4], "r+b") as fh:
        fh.truncate(size - 300)  # an interrupted copy: the pixel data cut short


def _not_jpeg_ls(path: Path, n_frames: int = 1, transfer_syntax: str = "1.2.840.10008.1.2.4.80") -> None:
    """Mark ``path`` JPEG-LS (or ``transfer_syntax``) and give it pixel data that are not: no
    decoder takes them."""
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.PixelData = encapsulate([b"\xff\xd8not an image"] * n_frames)
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)


def damaged_compressed_slice(folder, make):
    _not_jpeg_ls(_series(folder, make)[4])


def zero_pixel_spacing(folder, make):
    _edit(_series(folder, make)[3], PixelSpacing=[0, 0])  # was an internal error (Volume's check)


def zero_rescale_slope(folder, make):
    for f in _series(folder, make):
        _edit(f, RescaleSlope=0)  # every pixel the intercept: was analysed as a blank image


def nan_rescale_slope(folder, make):
    _edit(_series(folder, make)[2], RescaleSlope="nan")  # was an internal error, and a pydicom warning


def slice_without_rows(folder, make):
    _edit(_series(folder, make)[2], Rows=None)  # was "missing slices" (not counted as an image)


def hidden_files_only(folder, make):
    for f in _series(folder, make):
        f.rename(f.with_name("." + f.name))  # skipped as hidden: "no DICOM files found" said no more


def falsely_big_endian(folder, make):
    for f in _series(folder, make):
        data = f.read_bytes()  # marked big-endian (same length of UID), the data little-endian
        f.write_bytes(data.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.2\x00", 1))


def text_rescale_intercept(folder, make):
    for f in _series(folder, make):
        ds = pydicom.dcmread(f)
        ds["RescaleIntercept"] = pydicom.DataElement(0x00281052, "LO", "minus1024")  # was "raw stored values"
        ds.save_as(f)


def negative_rescale_slope(folder, make):
    for f in _series(folder, make):
        _edit(f, RescaleSlope=-1)  # every value -1024 or less: was analysed, no body, exit 0


def negative_rescale_slope_on_one_slice(folder, make):
    files = _series(folder, make)
    _edit(files[2], RescaleSlope=-5)  # that slice -12000..-1024 "HU": read without a word


def seg_only(folder, make):
    files = _series(folder, make)
    for f in files:
        _edit(f, Modality="SEG")


def broken_link_last_slice(folder, make):
    # A folder of links into a store (a PACS cache, a datalad/git-annex data set) whose last
    # slice was never fetched: read as 11 slices, without a word.
    files = _series(folder.parent / "store", make)
    for f in files:
        (folder / f.name).symlink_to(f)
    files[-1].unlink()


def _cut_last_slice(folder, make, size: int) -> None:
    files = _series(folder, make)
    files[-1].write_bytes(files[-1].read_bytes()[:size])


def header_cut_last_slice(folder, make):
    _cut_last_slice(folder, make, 300)  # within the data set's header: skipped as "no series"


def series_uid_removed(folder, make):
    # By an anonymiser: called "marked DICOM but could not be read (damaged, or a transfer syntax ...)".
    for f in _series(folder, make):
        _edit(f, SeriesInstanceUID=None)


def meta_cut_last_slice(folder, make):
    _cut_last_slice(folder, make, 150)  # within the file meta: not even its SOP class whole


def uid_per_file(folder, make):
    # A naive anonymiser gave every file a series of its own: "series ... has a single slice".
    for k, f in enumerate(_series(folder, make)):
        _edit(f, SeriesInstanceUID=f"1.2.826.0.1.99.{k + 1}")


CASES = [
    (empty, "no DICOM files found"),
    (non_dicom_only, "no DICOM files found"),
    (mr_series, "found MR"),
    (seg_only, "found SEG"),
    (duplicated_slice, "duplicated slice positions"),
    (missing_slice, "missing slices"),
    (unequal_spacing, r"unequal slice spacing.*tolerance 0\.050 mm"),
    (single_slice, "single slice"),
    (uid_per_file, r"holds 12 CT series of one slice each: each file has a SeriesInstanceUID of its own"),
    (missing_position, "lacks a valid ImagePositionPatient"),
    (missing_orientation, "lacks a valid ImageOrientationPatient"),
    (zero_pixel_spacing, "lacks a valid PixelSpacing"),
    (zero_rescale_slope, "RescaleSlope 0 .*cannot be turned into HU"),
    (nan_rescale_slope, "RescaleSlope nan .*cannot be turned into HU"),
    (negative_rescale_slope, r"IM00001\.dcm has RescaleSlope -1 .*the slope above zero"),
    (negative_rescale_slope_on_one_slice, r"IM00003\.dcm has RescaleSlope -5 .*cannot be turned into HU"),
    (falsely_big_endian, "marked DICOM but could not be read"),
    (hidden_files_only, "hidden files and folders"),
    (slice_without_rows, r"IM00003\.dcm lacks a valid Rows or Columns"),  # was "no DICOM files found"
    (text_rescale_intercept, "RescaleIntercept nan: its values cannot be turned into HU"),
    (inconsistent_orientation, "different ImageOrientationPatient"),
    (inconsistent_size, "differ in size"),
    (gantry_tilt, "shifted in-plane"),
    (raw_values_without_intercept, "values cannot be HU"),
    (truncated_slice, r"IM00005\.dcm: its pixel data cannot be read \(ValueError: .*truncated or damaged"),
    (damaged_compressed_slice, r"IM00005\.dcm: its pixel data cannot be read \(RuntimeError: .*export the series"),
    (broken_link_last_slice, r"cannot read .*IM00012\.dcm under .* \(a link to a file that does not exist\); "
                             "it may hold a slice"),
    (header_cut_last_slice, r"IM00012\.dcm under .*marked DICOM but damaged: a CT image with no SeriesInstanceUID "
                            r"\(300 bytes: cut short\?\)"),
    (series_uid_removed, r"IM00001\.dcm under .*\(a CT image with no SeriesInstanceUID \(removed by an anonymiser\?\)\) "
                         r"\(and 11 more such files\)"),
    (meta_cut_last_slice, r"IM00012\.dcm under .*marked DICOM but damaged: with no SeriesInstanceUID"),
]


@pytest.mark.parametrize("build,message", CASES, ids=[c[0].__name__ for c in CASES])
def test_bad_series_is_rejected_and_left_unchanged(tmp_path, make_phantom, tree_hash, build, message):
    folder = tmp_path / "in"
    folder.mkdir()
    build(folder, make_phantom)
    before = tree_hash(folder)
    with pytest.raises(InputError, match=message) as info:
        read_volume(folder)
    assert "\n" not in str(info.value)
    assert tree_hash(folder) == before


def test_unknown_series_uid_lists_the_available_ones(tmp_path, make_phantom, tree_hash):
    _series(tmp_path, make_phantom)
    before = tree_hash(tmp_path)
    with pytest.raises(InputError, match=r"series 9\.9\.9 not found.*available: 1\.2\.826\.0\.1\.99 \(CT, 12 files\)"):
        read_volume(tmp_path, series_uid="9.9.9")
    assert tree_hash(tmp_path) == before


def test_choosing_a_non_ct_series_by_uid_names_its_modality(tmp_path, make_phantom):
    write_dicom_series(make_phantom(), tmp_path / "mr", series_uid="1.5", modality="MR")
    write_dicom_series(make_phantom(), tmp_path / "ct", series_uid="1.6")
    assert read_volume(tmp_path).metadata["series_uid"] == "1.6"
    with pytest.raises(InputError, match="modality MR, not CT"):
        read_volume(tmp_path, series_uid="1.5")


def test_of_several_ct_series_the_most_slices_is_read_and_the_others_are_named(tmp_path, make_phantom):
    # Two reconstructions in one folder: the one with the most slices is read, the other named
    # in the metadata and in a warning of the analysis (with how to choose it).
    from calcinosis.pipeline import _acquisition_warnings

    write_dicom_series(make_phantom(), tmp_path / "thin", series_uid="1.10")
    write_dicom_series(make_phantom(shape=(5, 20, 24)), tmp_path / "thick", series_uid="1.11")
    vol = read_volume(tmp_path)
    assert vol.metadata["series_uid"] == "1.10" and vol.shape[0] == 12
    assert vol.metadata["other_ct_series"] == [{"series_uid": "1.11", "slices": 5,
                                                "description": "calcinosis phantom"}]
    (line,) = [w for w in _acquisition_warnings(vol) if "CT series" in w]
    assert "holds 2 CT series: analysed 1.10" in line and "--series UID" in line
    assert "1.11 (5 slices, calcinosis phantom)" in line
    chosen = read_volume(tmp_path, series_uid="1.11")
    assert chosen.shape[0] == 5 and "other_ct_series" not in chosen.metadata
    assert not [w for w in _acquisition_warnings(chosen) if "CT series" in w]


def test_missing_slice_message_gives_the_gap(tmp_path, make_phantom):
    missing_slice(tmp_path, make_phantom)
    with pytest.raises(InputError, match=r"gap of 5\.000 mm.*median spacing is 2\.500 mm"):
        read_volume(tmp_path)


def test_small_spacing_jitter_within_tolerance_is_accepted(tmp_path, make_phantom):
    files = _series(tmp_path, make_phantom)
    ds = pydicom.dcmread(files[5])
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    _edit(files[5], ImagePositionPatient=[x, y, z + 0.02])  # below max(1 % of 2.5, 0.05) mm
    vol = read_volume(tmp_path)
    assert vol.spacing[2] == pytest.approx(2.5)
    np.testing.assert_array_equal(vol.array, make_phantom().array)


@pytest.mark.parametrize("kind", ["TOPOGRAM", "SURVIEW"])
def test_a_scout_typed_by_its_vendor_name_is_ignored(tmp_path, make_phantom, kind):
    # Only LOCALIZER was known: the series was refused for its scout's other orientation.
    files = _series(tmp_path, make_phantom)
    scout = tmp_path / "scout.dcm"
    shutil.copy(files[0], scout)
    _edit(scout, ImageType=["ORIGINAL", "PRIMARY", kind], SOPInstanceUID="1.2.3.998",
          ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    vol = read_volume(tmp_path)
    assert vol.shape == (12, 20, 24) and str(scout) not in vol.metadata["dicom_files"]


def test_localizer_in_the_series_is_ignored(tmp_path, make_phantom):
    files = _series(tmp_path, make_phantom)
    scout = tmp_path / "scout.dcm"
    shutil.copy(files[0], scout)
    _edit(scout, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"], SOPInstanceUID="1.2.3.999",
          ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    vol = read_volume(tmp_path)
    assert vol.shape == (12, 20, 24) and str(scout) not in vol.metadata["dicom_files"]


def _scout_series(folder: Path, make_phantom) -> None:
    """Five scout views (ImageType LOCALIZER; frontal and lateral in turn) in a series of their own."""
    files = write_dicom_series(make_phantom(np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]), shape=(6, 20, 24)),
                               folder, series_uid="1.2.826.0.1.98", file_prefix="SC")
    files[5].unlink()
    for k, f in enumerate(files[:5]):
        _edit(f, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"],
              **({"ImageOrientationPatient": [0, 1, 0, 0, 0, -1]} if k % 2 else {}))


def test_a_folder_of_scout_views_only_says_so(tmp_path, make_phantom):
    # Was "slices of series ... have different ImageOrientationPatient".
    _scout_series(tmp_path / "scout", make_phantom)
    with pytest.raises(InputError, match=r"series 1\.2\.826\.0\.1\.98 holds only LOCALIZER images \(5 scout "
                                         r"view\(s\)\), not a CT volume; give the folder of the axial series"):
        read_volume(tmp_path)


def test_the_axial_series_is_chosen_over_more_scout_views(tmp_path, make_phantom):
    # The series with the most images was the scout series (5 against 4), and refused.
    _scout_series(tmp_path / "scout", make_phantom)
    axial = make_phantom(shape=(4, 20, 24))
    write_dicom_series(axial, tmp_path / "axial", series_uid="1.2.826.0.1.99")
    vol = read_volume(tmp_path)
    assert vol.metadata["series_uid"] == "1.2.826.0.1.99"
    np.testing.assert_array_equal(vol.array, axial.array)


def test_folder_of_non_image_objects_and_their_uid(tmp_path, make_phantom):
    files = write_dicom_series(make_phantom(), tmp_path, series_uid="1.7")
    for f in files:
        ds = pydicom.dcmread(f)
        for keyword in ("Rows", "Columns", "PixelData"):
            delattr(ds, keyword)
        ds.Modality = "SR"
        ds.save_as(f)
    with pytest.raises(InputError, match=r"no DICOM image .*found only SR"):
        read_volume(tmp_path)
    write_dicom_series(make_phantom(), tmp_path / "ct", series_uid="1.8")
    assert read_volume(tmp_path).metadata["series_uid"] == "1.8"
    with pytest.raises(InputError, match=r"series 1\.7 .*holds no image \(SR\)"):
        read_volume(tmp_path, series_uid="1.7")


def _enhanced(folder: Path, files, enhanced_ct) -> Path:
    path = enhanced_ct(files, folder / "multi" / "ct.dcm")
    for f in files:
        f.unlink()
    return path


def enhanced_without_frame_positions(folder, make, enhanced_ct):
    path = _enhanced(folder, _series(folder / "single", make), enhanced_ct)
    ds = pydicom.dcmread(path)
    del ds.PerFrameFunctionalGroupsSequence
    ds.save_as(path)


def enhanced_with_a_missing_frame(folder, make, enhanced_ct):
    files = _series(folder / "single", make)
    files[6].unlink()
    _enhanced(folder, files[:6] + files[7:], enhanced_ct)


def enhanced_undecodable(folder, make, enhanced_ct):
    # No decoder takes it, and pydicom's message about that is several lines long.
    path = _enhanced(folder, _series(folder / "single", make), enhanced_ct)
    _not_jpeg_ls(path, int(pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames))


def enhanced_with_a_wrong_number_of_frames(folder, make, enhanced_ct):
    # Was "holds 13 frames without a position for each (no per-frame functional groups)".
    path = _enhanced(folder, _series(folder / "single", make), enhanced_ct)
    _edit(path, NumberOfFrames=13)


def enhanced_frame_without_position(folder, make, enhanced_ct):
    # Named the file only: which of its 12 frames?
    path = _enhanced(folder, _series(folder / "single", make), enhanced_ct)
    ds = pydicom.dcmread(path)
    del ds.PerFrameFunctionalGroupsSequence[4].PlanePositionSequence
    ds.save_as(path)


ENHANCED_CASES = [
    (enhanced_without_frame_positions, "holds 12 frames without a position for each"),
    (enhanced_with_a_missing_frame, "missing slices"),
    (enhanced_with_a_wrong_number_of_frames, r"ct\.dcm says it holds 13 frames \(NumberOfFrames\) but has per-frame "
                                             r"functional groups for 12: the file is damaged"),
    (enhanced_frame_without_position, r"ct\.dcm \(frame 5\) lacks a valid ImagePositionPatient"),
    (enhanced_undecodable, "multi-frame pixel data cannot be decoded.*decompress it"),
]


@pytest.mark.parametrize("build,message", ENHANCED_CASES, ids=[c[0].__name__ for c in ENHANCED_CASES])
def test_bad_enhanced_ct_is_rejected_and_left_unchanged(tmp_path, make_phantom, tree_hash, enhanced_ct, build,
                                                        message):
    def with_converter(folder, make):
        build(folder, make, enhanced_ct)

    test_bad_series_is_rejected_and_left_unchanged(tmp_path, make_phantom, tree_hash, with_converter, message)


JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


@pytest.mark.skipif(get_decoder(JPEG_LOSSLESS_SV1).is_available, reason="a JPEG Lossless decoder is installed")
def test_enhanced_ct_without_its_decoder_names_the_package_to_install(tmp_path, make_phantom, enhanced_ct):
    # JPEG Lossless, the commonest compression of PACS exports, needs a pydicom plugin; the
    # message said only "... because all plugins are missing dependencies:".
    path = _enhanced(tmp_path, _series(tmp_path / "single", make_phantom), enhanced_ct)
    _not_jpeg_ls(path, int(pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames), JPEG_LOSSLESS_SV1)
    with pytest.raises(InputError, match=r"JPEG Lossless.*no decoder .*pip install 'pylibjpeg>=2\.0' "
                                         r"'pylibjpeg-libjpeg>=[0-9.]+'") as info:
        read_volume(path)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not get_decoder(JPEG_BASELINE).is_available, reason="no JPEG Baseline decoder (Pillow)")
def test_undecodable_enhanced_ct_gives_one_line_on_stderr(tmp_path, make_phantom, enhanced_ct):
    # pydicom logged each failed plugin's traceback through the CLI's logging: many lines.
    path = _enhanced(tmp_path, _series(tmp_path / "single", make_phantom), enhanced_ct)
    _not_jpeg_ls(path, int(pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames), JPEG_BASELINE)
    done = subprocess.run([sys.executable, "-m", "calcinosis.cli", "analyze", str(path), "--out",
                           str(tmp_path / "out"), "--no-report"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cannot be decoded (RuntimeError: Unable to decode as exceptions were raised by all available " \
           "plugins: pillow: cannot identify image file" in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its permissions")
def test_unreadable_slice_or_file_is_named(tmp_path, make_phantom):
    # A slice without read permission was skipped as "not DICOM" (the last one: 11 slices read);
    # an unreadable .nii.gz ended in an internal error (PermissionError, exit 1).
    files = _series(tmp_path / "ct", make_phantom)
    files[-1].chmod(0)
    with pytest.raises(InputError, match=r"cannot read .*IM00012\.dcm under .*\(Permission denied\)"):
        read_volume(tmp_path / "ct")
    nifti = write_volume(make_phantom(), tmp_path / "scan.nii.gz")
    nifti.chmod(0)
    with pytest.raises(InputError, match=r"cannot read .*scan\.nii\.gz \(Permission denied\); check its permissions"):
        read_volume(nifti)


def test_damaged_compressed_slice_gives_one_line_on_stderr(tmp_path, make_phantom):
    # GDCM's JPEG codec printed "Corrupt JPEG data: ..." and "Invalid JPEG file structure: ..."
    # (five times each) straight to descriptor 2 before the one-line error.
    from pydicom.encaps import encapsulate

    files = _series(tmp_path / "ct", make_phantom)
    ds = pydicom.dcmread(files[4])
    ds.file_meta.TransferSyntaxUID = JPEG_LOSSLESS_SV1
    ds.PixelData = encapsulate([b"\xff\xd8garbage" * 10])  # start-of-image markers amid junk
    ds["PixelData"].is_undefined_length = True
    ds.save_as(files[4], enforce_file_format=True)
    done = subprocess.run([sys.executable, "-m", "calcinosis.cli", "analyze", str(tmp_path / "ct"), "--out",
                           str(tmp_path / "out"), "--no-report"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "IM00005.dcm: its pixel data cannot be read (RuntimeError: " in done.stderr
    assert "; the decoder said: Corrupt JPEG data" in done.stderr


def test_copies_of_the_same_images_are_read_once(tmp_path, make_phantom, caplog):
    # An export copied twice into one tree ("DICOM" and "copy"): every image twice, by its
    # SOPInstanceUID the same; refused as "duplicated slice positions (12 repeated)".
    vol = make_phantom()
    files = write_dicom_series(vol, tmp_path / "export" / "DICOM")
    shutil.copytree(tmp_path / "export" / "DICOM", tmp_path / "export" / "copy")
    back = read_volume(tmp_path / "export")
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.metadata["dicom_files"] == [str(f) for f in files]
    assert "ignoring 12 file(s)" in caplog.text and "copy an image already read" in caplog.text


def _remarkable_series(folder: Path, make_phantom, *, bad_uid: bool) -> None:
    """A readable series with bytes after each slice's pixel data (allowed: removed) and, with
    ``bad_uid``, a malformed FrameOfReferenceUID: things pydicom remarks on, once per file."""
    for f in _series(folder, make_phantom):
        ds = pydicom.dcmread(f)
        ds.PixelData = ds.PixelData + b"\0" * 100
        if bad_uid:
            ds.FrameOfReferenceUID = "1.2.3.abc"
        ds.save_as(f)


def test_pydicom_remarks_on_a_readable_series_are_summed_up_once(tmp_path, make_phantom, caplog):
    # pydicom warned and logged each remark, once per file: 36 and more lines on stderr.
    _remarkable_series(tmp_path, make_phantom, bad_uid=True)
    caplog.clear()  # pydicom's remark on writing the malformed UID
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_volume(tmp_path)
    assert [str(w.message) for w in caught] == []
    assert [r.name for r in caplog.records if r.levelno >= logging.WARNING] == ["calcinosis.io.dicom_read"]
    assert "pydicom says: The pixel data is 1060 bytes long, which indicates it contains 100 bytes of excess " \
           "padding to be removed (12 time(s))" in caplog.text


def test_pydicom_remarks_come_as_one_line_on_stderr(tmp_path, make_phantom):
    _remarkable_series(tmp_path / "ct", make_phantom, bad_uid=False)
    done = subprocess.run([sys.executable, "-m", "calcinosis.cli", "analyze", str(tmp_path / "ct"), "--out",
                           str(tmp_path / "out"), "--no-report"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("WARNING: reading series 1.2.826.0.1.99, pydicom says: The pixel data is ")


def test_a_dicomdir_given_as_input_points_to_its_folder(tmp_path, make_phantom):
    # The index of a CD or export (by name or, renamed, by its SOP class) was "unknown file type".
    from pydicom.fileset import FileSet

    vol = make_phantom()
    cd = FileSet()
    for f in write_dicom_series(vol, tmp_path / "ct"):
        cd.add(f)
    cd.write(tmp_path / "cd")
    shutil.copy(tmp_path / "cd" / "DICOMDIR", tmp_path / "index.dcm")
    for path in (tmp_path / "cd" / "DICOMDIR", tmp_path / "index.dcm"):
        with pytest.raises(InputError, match=r"is a DICOMDIR \(the index of a CD or an export\), not an image: give "
                                             r"the folder that holds the series"):
            read_volume(path)
    np.testing.assert_array_equal(read_volume(tmp_path / "cd").array, vol.array)


def test_the_ct_volume_is_chosen_over_a_longer_colour_capture(tmp_path, make_phantom):
    # A screen capture of a rotating 3-D rendering (Modality CT, RGB) with more images than the
    # volume was chosen for having the most, and refused as "not a greyscale image (RGB)".
    vol = make_phantom()
    write_dicom_series(vol, tmp_path / "axial", series_uid="1.2.826.0.1.99")
    capture = write_dicom_series(make_phantom(shape=(14, 20, 24)), tmp_path / "vr", series_uid="1.2.826.0.1.97")
    for f in capture:
        ds = pydicom.dcmread(f)
        grey = ds.pixel_array.astype(np.uint8)
        ds.PixelData = np.stack([grey] * 3, axis=-1).tobytes()
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.save_as(f)
    back = read_volume(tmp_path)
    assert back.metadata["series_uid"] == "1.2.826.0.1.99"
    np.testing.assert_array_equal(back.array, vol.array)


JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"


@pytest.mark.skipif(not get_decoder(JPEG_EXTENDED).is_available or get_decoder(JPEG_EXTENDED).missing_dependencies == [],
                    reason="needs Pillow as the only JPEG Extended decoder")
def test_enhanced_ct_pillow_cannot_decode_names_other_decoders_in_one_line(tmp_path, make_phantom, enhanced_ct):
    # 12-bit JPEG (as CT is compressed): Pillow, the one decoder pydicom had, cannot; the message
    # said only to decompress the file, not that another decoder (a pip install away) can.
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate, generate_frames

    twelve_bits = pydicom.dcmread(get_testdata_file("JPGExtended.dcm"))
    frame = next(generate_frames(twelve_bits.PixelData, number_of_frames=1))
    path = _enhanced(tmp_path, _series(tmp_path / "single", make_phantom), enhanced_ct)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEG_EXTENDED
    ds.PixelData = encapsulate([frame] * int(ds.NumberOfFrames))
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    done = subprocess.run([sys.executable, "-m", "calcinosis.cli", "analyze", str(path), "--out",
                           str(tmp_path / "out"), "--no-report"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "multi-frame pixel data cannot be decoded" in done.stderr
    assert "another decoder may read them (pip install 'pylibjpeg>=" in done.stderr


def test_a_malformed_number_of_frames_is_one_frame(tmp_path, make_phantom):
    # NumberOfFrames written with two values ("1\2"): int() of it was an internal error (exit 1).
    vol = make_phantom()
    for f in write_dicom_series(vol, tmp_path):
        ds = pydicom.dcmread(f)
        ds.NumberOfFrames = ["1", "2"]
        ds.save_as(f)
    np.testing.assert_array_equal(read_volume(tmp_path).array, vol.array)
