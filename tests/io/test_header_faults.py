"""Files SimpleITK reads without complaint but wrongly: damaged compressed data, a header with
no voxel size, a data offset inside the header; and path names it cannot take."""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np
import pytest
import SimpleITK as sitk

from calcinosis.errors import InputError
from calcinosis.io import read_volume, write_volume
from calcinosis.io.itk import volume_to_sitk


def _flip_byte(path, share: float) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * share)] ^= 0x10
    path.write_bytes(bytes(data))


def test_nifti_gz_with_a_damaged_middle_is_refused(tmp_path, make_phantom):
    # The gzip trailer's length stays right; ITK reads zeros from the damage on, with no error.
    path = write_volume(make_phantom(shape=(40, 40, 40)), tmp_path / "scan.nii.gz")
    _flip_byte(path, 0.5)
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_volume(path)


def test_metaimage_compressed_without_its_size_is_refused(tmp_path, make_phantom):
    # ITK says "Uncompress failed" and returns whatever memory held.
    vol = make_phantom()
    header = ("ObjectType = Image\nNDims = 3\nDimSize = 24 20 12\nElementType = MET_SHORT\n"
              "ElementSpacing = 2.5 0.8 0.7\nCompressedData = True\nElementDataFile = LOCAL\n")
    (tmp_path / "scan.mha").write_bytes(header.encode() + zlib.compress(vol.array.astype("<i2").tobytes()))
    with pytest.raises(InputError, match="no CompressedDataSize"):
        read_volume(tmp_path / "scan.mha")


def test_metaimage_with_gzip_wrapped_data_is_read(tmp_path, make_phantom):
    # ITK's MetaIO reads gzip as well as zlib streams; the check took only zlib and refused it.
    vol = make_phantom()
    data = gzip.compress(vol.array.astype("<i2").tobytes())
    header = ("ObjectType = Image\nNDims = 3\nDimSize = 24 20 12\nElementType = MET_SHORT\n"
              f"ElementSpacing = 2.5 0.8 0.7\nCompressedData = True\nCompressedDataSize = {len(data)}\n"
              "ElementDataFile = LOCAL\n")
    (tmp_path / "scan.mha").write_bytes(header.encode() + data)
    np.testing.assert_array_equal(read_volume(tmp_path / "scan.mha").array, vol.array)


def test_compressed_metaimage_with_a_damaged_middle_is_refused(tmp_path, make_phantom):
    # ITK prints "Uncompress failed" and returns zeros for the rest.
    path = tmp_path / "scan.mha"
    sitk.WriteImage(volume_to_sitk(make_phantom(shape=(40, 40, 40))), str(path), useCompression=True)
    _flip_byte(path, 0.6)
    with pytest.raises(InputError, match="compressed voxel data of .* are (damaged|cut short)") as info:
        read_volume(path)
    assert "\n" not in str(info.value)


def _nrrd(path, spacing_line: str, shape=(6, 7, 8)) -> None:
    data = np.arange(np.prod(shape), dtype=np.int16).reshape(shape) % 300 - 100
    data[0] = -1000
    header = (f"NRRD0004\ntype: short\ndimension: 3\nsizes: {shape[2]} {shape[1]} {shape[0]}\n"
              f"endian: little\nencoding: raw\n{spacing_line}").rstrip("\n")
    path.write_bytes(header.encode() + b"\n\n" + data.astype("<i2").tobytes())


@pytest.mark.parametrize("line", ["", "spacings: nan 0.8 2", "spacings: 0 0 0",
                                  "space: left-posterior-superior\nspace directions: none (0,0.8,0) (0,0,2)"])
def test_nrrd_without_a_voxel_size_is_refused(tmp_path, line):
    # ITK takes 1 mm for a missing or unusable spacing, so every volume would be off.
    _nrrd(tmp_path / "scan.nrrd", line)
    with pytest.raises(InputError, match="no usable voxel size"):
        read_volume(tmp_path / "scan.nrrd")


def test_nrrd_with_a_negative_spacing_is_a_flipped_axis(tmp_path):
    _nrrd(tmp_path / "scan.nrrd", "spacings: -0.7 0.8 2")
    vol = read_volume(tmp_path / "scan.nrrd")
    assert vol.spacing == pytest.approx((0.7, 0.8, 2.0))
    assert vol.direction[0, 0] == -1.0


DIRECTIONS_LINE = "space directions: (0.7,0,0) (0,0.8,0) (0,0,2)\nspace origin: (1,2,3)"


@pytest.mark.parametrize("line, why", [
    ("spacings: 0.7 0.8 2", "names no space"),
    (f"space dimension: 3\n{DIRECTIONS_LINE}", "names no space"),
    (f"space: scanner-xyz\n{DIRECTIONS_LINE}", "space is 'scanner-xyz', which names no patient axes"),
    (f"space: 3D-right-handed\n{DIRECTIONS_LINE}", "space is '3D-right-handed'"),
    (f"space: left-posterior-superior\n{DIRECTIONS_LINE}", None),
    (f"space: RAS\n{DIRECTIONS_LINE}", None),
], ids=["spacings", "space_dimension", "scanner", "right_handed", "lps", "ras"])
def test_nrrd_without_patient_axes_says_its_orientation_is_unknown(tmp_path, line, why):
    # ITK reads all of these as LPS without a word: left and right were then a guess.
    _nrrd(tmp_path / "scan.nrrd", line)
    vol = read_volume(tmp_path / "scan.nrrd")
    assert vol.spacing == pytest.approx((0.7, 0.8, 2.0))
    if why is None:
        assert "orientation_unknown" not in vol.metadata
    else:
        assert why in vol.metadata["orientation_unknown"]


@pytest.mark.parametrize("codes, unknown", [((0, 0), True), ((1, 0), False), ((0, 2), False), ((1, 1), False)])
def test_nifti_without_qform_and_sform_says_its_orientation_is_unknown(tmp_path, make_phantom, codes, unknown):
    path = write_volume(make_phantom(), tmp_path / "scan.nii.gz")
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[252:256] = struct.pack("<2h", *codes)
    path.write_bytes(gzip.compress(bytes(raw)))
    meta = read_volume(path).metadata
    assert ("neither a qform nor an sform" in meta.get("orientation_unknown", "")) == unknown


def _metaimage(path, *fields: str) -> None:
    shape = (6, 7, 8)
    data = np.full(shape, -1000, np.int16)
    data[2:4, 2:5, 2:6] = 40
    lines = ["ObjectType = Image", "NDims = 3", f"DimSize = {shape[2]} {shape[1]} {shape[0]}",
             "ElementType = MET_SHORT", "ElementByteOrderMSB = False", *fields, "ElementDataFile = LOCAL"]
    path.write_bytes(("\n".join(lines) + "\n").encode() + data.tobytes())


@pytest.mark.parametrize("spacing", [None, "0 0 0", "nan 1 1"])
def test_metaimage_without_a_voxel_size_is_refused(tmp_path, spacing):
    _metaimage(tmp_path / "scan.mha", *([] if spacing is None else [f"ElementSpacing = {spacing}"]))
    with pytest.raises(InputError, match="no usable voxel size"):
        read_volume(tmp_path / "scan.mha")


@pytest.mark.parametrize("field, word", [
    ("Offset = nan 0 0", "origin"),  # ITK read it as 0
    ("TransformMatrix = 0 0 0 0 0 0 0 0 0", "axes"),  # ITK said only "(0 0 0)"
    ("TransformMatrix = nan 0 0 0 1 0 0 0 1", "axes"),
])
def test_metaimage_with_an_unusable_origin_or_axes_is_refused(tmp_path, field, word):
    _metaimage(tmp_path / "scan.mha", "ElementSpacing = 0.8 0.8 2", field)
    with pytest.raises(InputError, match=f"header's {word}"):
        read_volume(tmp_path / "scan.mha")


def _nifti_with(path, *, pixdim=None, vox_offset=None, sform=None) -> None:
    """Rewrite fields of a NIfTI-1 header (little-endian, as ITK writes it)."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    if pixdim is not None:
        raw[80:92] = struct.pack("<3f", *pixdim)
    if vox_offset is not None:
        raw[108:112] = struct.pack("<f", vox_offset)
    if sform is not None:
        raw[252:256] = struct.pack("<2h", 0, sform)  # qform_code, sform_code
    path.write_bytes(gzip.compress(bytes(raw)))


@pytest.mark.parametrize("sform", [0, 1])
def test_nifti_with_zero_pixdim_is_refused_with_or_without_an_sform(tmp_path, make_phantom, sform):
    # ITK takes the voxel size from pixdim even where an sform gives one: 1 mm for a 0.
    path = write_volume(make_phantom(), tmp_path / "scan.nii.gz")
    _nifti_with(path, pixdim=(0.0, 0.0, 0.0), sform=sform)
    with pytest.raises(InputError, match="no usable voxel size"):
        read_volume(path)


def test_nifti_whose_sform_and_pixdim_disagree_is_refused(tmp_path, make_phantom):
    # ITK warns "unexpected scales in sform" and reads the pixdim: every volume off by their ratio.
    path = write_volume(make_phantom(spacing=(0.7, 0.8, 2.5)), tmp_path / "scan.nii.gz")
    _nifti_with(path, pixdim=(1.0, 1.0, 1.0))  # the sform keeps 0.7 x 0.8 x 2.5
    with pytest.raises(InputError, match=r"sform gives voxels of 0\.7 x 0\.8 x 2\.5 mm but its pixdim 1 x 1 x 1"):
        read_volume(path)


def _rotate_sform(path, degrees: float, *, flip_x: bool = False, codes: tuple[int, int] | None = None) -> None:
    """Turn the sform of the ITK-written NIfTI-1 ``path`` about the image's first voxel by
    ``degrees`` about z (and mirror its x axis), leaving the qform; set (qform_code, sform_code)."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    rows = np.array(struct.unpack("<12f", raw[280:328]), dtype=float).reshape(3, 4)
    t = np.deg2rad(degrees)
    turn = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    rows[:, :3] = turn @ rows[:, :3]
    if flip_x:
        rows[:, 0] = -rows[:, 0]
    raw[280:328] = struct.pack("<12f", *rows.ravel())
    if codes is not None:
        raw[252:256] = struct.pack("<2h", *codes)
    path.write_bytes(gzip.compress(bytes(raw)))


@pytest.mark.parametrize("degrees,flip_x,codes", [(10.0, False, None), (0.0, True, None), (10.0, False, (1, 2))],
                         ids=["turned", "mirrored", "sform_aligned"])
def test_nifti_whose_qform_and_sform_disagree_is_refused(tmp_path, make_phantom, directions, degrees, flip_x, codes):
    # ITK reads the sform when its code is 1 but the qform when it is 2 ("aligned"), nibabel
    # the sform: the same file placed each deposit elsewhere (mirrored: on the other side).
    path = write_volume(make_phantom(directions["oblique35z_20x"]), tmp_path / "scan.nii.gz")
    _rotate_sform(path, degrees, flip_x=flip_x, codes=codes)
    before = path.read_bytes()
    with pytest.raises(InputError, match=r"its qform and sform place the image differently \(its corners up to "
                                         r"[0-9.]+ mm apart\)") as info:
        read_volume(path)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("codes", [(1, 1), (0, 1)], ids=["with_qform", "sform_only"])
def test_nifti_with_a_sheared_sform_says_so(tmp_path, make_phantom, codes):
    # A gantry-tilted series converted without correcting the tilt: the slice axis leans 15
    # degrees. It was refused for a pixdim disagreeing with the sform, for a qform and sform
    # disagreeing, or with ITK's "only supports orthonormal direction cosines": never the cause.
    path = write_volume(make_phantom(), tmp_path / "scan.nii.gz")
    raw = bytearray(gzip.decompress(path.read_bytes()))
    rows = np.array(struct.unpack("<12f", raw[280:328]), dtype=float).reshape(3, 4)
    rows[1, 2] = rows[2, 2] * np.tan(np.deg2rad(15.0))
    raw[280:328] = struct.pack("<12f", *rows.ravel())
    raw[88:92] = struct.pack("<f", float(np.linalg.norm(rows[:, 2])))  # pixdim[3] as the sform's
    raw[252:256] = struct.pack("<2h", *codes)
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(InputError, match=r"its sform's axes are not at right angles .*gantry-tilted.*resample it"):
        read_volume(path)


@pytest.mark.parametrize("degrees,codes", [(0.01, None), (10.0, (0, 1)), (10.0, (1, 0))],
                         ids=["rounding", "sform_only", "qform_only"])
def test_nifti_with_one_placement_or_agreeing_ones_is_read(tmp_path, make_phantom, directions, degrees, codes):
    # A hundredth of a degree moves the corners of this 24 x 20 x 12 image well under half a voxel.
    vol = make_phantom(directions["oblique35z_20x"])
    path = write_volume(vol, tmp_path / "scan.nii.gz")
    _rotate_sform(path, degrees, codes=codes)
    back = read_volume(path)
    np.testing.assert_array_equal(back.array, vol.array)
    if codes == (1, 0):  # the qform, as written
        np.testing.assert_allclose(back.direction, vol.direction, atol=1e-5)


def test_nifti_data_offset_inside_the_header_is_refused(tmp_path, make_phantom):
    # ITK reads such a file from byte 348: the image shifted by two voxels.
    path = write_volume(make_phantom(), tmp_path / "scan.nii.gz")
    _nifti_with(path, vox_offset=0.0)
    with pytest.raises(InputError, match="inside the header"):
        read_volume(path)


def test_a_path_that_is_not_utf8_is_refused_not_a_crash(tmp_path, make_phantom):
    # SimpleITK's C++ aborts the whole process on such a name (exit 134, no message).
    good = write_volume(make_phantom(), tmp_path / "scan.nii.gz")
    bad = os.path.join(os.fsencode(tmp_path), b"lat\xe9.nii.gz")
    os.rename(good, bad)
    with pytest.raises(InputError, match=r"lat\\xe9.nii.gz is not valid UTF-8"):
        read_volume(os.fsdecode(bad))


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_an_uncompressed_nifti_named_nii_gz_is_read(tmp_path, make_phantom, dtype):
    # ITK reads it as it is; the completeness check called it "truncated or corrupt", and the
    # NaN scan of a float one opened it as gzip by its name (an internal error).
    vol = make_phantom()
    packed = write_volume(vol.with_array(vol.array.astype(dtype)), tmp_path / "packed.nii.gz")
    plain = tmp_path / "plain.nii.gz"
    plain.write_bytes(gzip.decompress(packed.read_bytes()))
    np.testing.assert_array_equal(read_volume(plain).array, vol.array)


@pytest.mark.parametrize("tail", [b"garbage\n", b"\0" * 64, "second member"])
def test_nifti_gz_with_what_gzip_tolerates_after_its_data_is_read(tmp_path, make_phantom, tail):
    # Junk after the stream (gzip -d and ITK ignore it) was refused as "not a gzipped file";
    # a second gzip member is part of the file.
    vol = make_phantom()
    path = write_volume(vol, tmp_path / "scan.nii.gz")
    raw = gzip.decompress(path.read_bytes())
    if tail == "second member":
        path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    else:
        path.write_bytes(path.read_bytes() + tail)
    np.testing.assert_array_equal(read_volume(path).array, vol.array)


def test_nifti_whose_bitpix_disagrees_with_its_data_type_is_read(tmp_path, make_phantom):
    # The data type sizes the voxels (as ITK's nifti1_io reads them); bitpix 32 for int16 data
    # made the check call the file truncated at half its size.
    vol = make_phantom()
    path = write_volume(vol, tmp_path / "scan.nii")
    raw = bytearray(path.read_bytes())
    raw[72:74] = struct.pack("<h", 32)
    path.write_bytes(bytes(raw))
    np.testing.assert_array_equal(read_volume(path).array, vol.array)


@pytest.mark.parametrize("name", ["scan.nii", "scan.nii.gz"])
def test_float_nifti_with_nan_is_refused(tmp_path, make_phantom, name):
    vol = make_phantom()
    data = vol.array.astype(np.float32)
    data[5, 6, 7] = np.nan
    path = write_volume(vol.with_array(data), tmp_path / name)
    with pytest.raises(InputError, match="NaN or infinite"):
        read_volume(path)


def test_a_folder_holding_a_nifti_points_to_it(tmp_path, make_phantom):
    write_volume(make_phantom(), tmp_path / "scan.nii.gz")
    with pytest.raises(InputError, match="holds scan.nii.gz: give that file itself"):
        read_volume(tmp_path)


@pytest.mark.parametrize("offset, name", [(280, "sform"), (268, "qform")])
def test_nifti_whose_placement_holds_nan_is_refused(tmp_path, make_phantom, offset, name):
    # A NaN in the sform was refused as "a sheared grid" after VNL printed an 8-line matrix; in
    # the qform's offset, ITK read it.
    path = write_volume(make_phantom(), tmp_path / "scan.nii")
    raw = bytearray(path.read_bytes())
    raw[offset:offset + 4] = struct.pack("<f", float("nan"))
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=f"its {name} holds values that are not numbers"):
        read_volume(path)


def test_what_the_nifti_library_prints_ends_in_the_one_line(tmp_path, make_phantom):
    # niftilib printed "** ERROR: nifti_convert_nhdr2nim: bad datatype" on stderr beside the error.
    import subprocess
    import sys

    path = write_volume(make_phantom(), tmp_path / "scan.nii")
    raw = bytearray(path.read_bytes())
    raw[70:72] = struct.pack("<h", 3)  # no NIfTI data type
    path.write_bytes(bytes(raw))
    done = subprocess.run([sys.executable, "-m", "calcinosis.cli", "analyze", str(path), "--out",
                           str(tmp_path / "out"), "--no-report"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "the reader said: ** ERROR: nifti_convert_nhdr2nim: bad datatype" in done.stderr


@pytest.mark.parametrize("ndims", ["-1 -1 -1", "99", "three"])
def test_metaimage_with_an_impossible_ndims_is_refused_not_a_crash(tmp_path, ndims):
    # ITK's MetaImage reader crashed the process on "-1 -1 -1" (SIGSEGV) and on 99 (SIGABRT):
    # no message, no exit code of ours. Run apart, so that a crash fails the test, not the run.
    import subprocess
    import sys

    _metaimage(tmp_path / "scan.mha", "ElementSpacing = 1 1 1")
    path = tmp_path / "scan.mha"
    path.write_bytes(path.read_bytes().replace(b"NDims = 3", f"NDims = {ndims}".encode()))
    done = subprocess.run([sys.executable, "-m", "calcinosis.cli", "analyze", str(path), "--out",
                           str(tmp_path / "out"), "--no-report"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"its header's NDims '{ndims}' is not a number of dimensions" in done.stderr
