"""NIfTI / NRRD / MetaImage reading and writing through calcinosis.io."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from calcinosis.errors import InputError
from calcinosis.io import read_volume, sitk_to_volume, volume_to_sitk, write_label_map, write_volume

REAL_CT = Path("/work/shared/data/real-ct/chest-ct-lung1.nrrd")
# NIfTI keeps geometry in float32; NRRD and MetaImage in full double precision.
GEOMETRY_TOL = {".nii.gz": 1e-5, ".nii": 1e-5, ".nrrd": 1e-12, ".mha": 1e-12}
FORMAT = {".nii.gz": "nifti", ".nii": "nifti", ".nrrd": "nrrd", ".mha": "metaimage"}


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_round_trip_keeps_array_and_geometry(tmp_path, make_phantom, directions, mark, suffix):
    vol = make_phantom(directions["oblique35z_20x"])
    path = write_volume(vol, tmp_path / f"ct{suffix}")
    back = read_volume(path)
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, vol.array)
    tol = GEOMETRY_TOL[suffix]
    np.testing.assert_allclose(back.spacing, vol.spacing, rtol=tol, atol=tol)
    np.testing.assert_allclose(back.origin, vol.origin, rtol=tol, atol=tol)
    np.testing.assert_allclose(back.direction, vol.direction, atol=tol)
    index, _ = mark
    np.testing.assert_allclose(back.index_to_lps(index), vol.index_to_lps(index), atol=1e-4)
    assert back.metadata == {"modality": "CT", "source_format": FORMAT[suffix], "source_path": str(path)}
    assert not list(tmp_path.glob(".*")), "atomic writer left a temporary file"


@pytest.mark.parametrize("name", ["flip_x", "flip_yz", "oblique20x", "flip_z_oblique"])
def test_nifti_keeps_lps_of_marked_voxel_for_flips_and_oblique(tmp_path, make_phantom, directions, mark, name):
    index, value = mark
    vol = make_phantom(directions[name])
    back = read_volume(write_volume(vol, tmp_path / "ct.nii.gz"))
    found = np.argwhere(back.array == value)
    assert len(found) == 1
    np.testing.assert_allclose(back.index_to_lps(found[0]), vol.index_to_lps(index), atol=1e-4)


def test_writers_are_deterministic(tmp_path, make_phantom, tree_hash):
    vol = make_phantom()
    for suffix in (".nii.gz", ".nrrd", ".mha"):
        first = tree_hash(write_volume(vol, tmp_path / f"a{suffix}"))
        second = tree_hash(write_volume(vol, tmp_path / f"b{suffix}"))
        assert list(first.values()) == list(second.values())


def test_float_image_with_plausible_hu_is_rounded_to_int16(tmp_path):
    values = np.full((4, 5, 6), -1000.4, dtype=np.float32)
    values[1, 2, 3] = 1500.6
    values[2, 2, 3] = -0.4
    path = tmp_path / "float.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(values), str(path))
    back = read_volume(path)
    assert back.array.dtype == np.int16
    assert back.array[1, 2, 3] == 1501 and back.array[0, 0, 0] == -1000 and back.array[2, 2, 3] == 0


def _write_raw(path: Path, array: np.ndarray) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def _raw_stored():
    a = np.full((5, 6, 7), 24, dtype=np.uint16)  # air stored without intercept -1024
    a[:, 2:4, 2:5] = 1064
    a[2, 3, 3] = 3000
    return a


def _with_nan():
    a = np.full((5, 6, 7), -1000.0, dtype=np.float32)
    a[1, 1, 1] = np.nan
    return a


def _too_large_float():
    a = np.full((5, 6, 7), -1000.0, dtype=np.float32)
    a[2, 2, 2] = 1.0e5
    return a


def _too_low_float():
    return np.linspace(-9000.0, 500.0, 5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)


def _normalised():
    return np.linspace(-2.5, 3.1, 5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)


def _unit_range():
    return np.linspace(0.0, 1.0, 5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)


@pytest.mark.parametrize(
    "make_array",
    [_raw_stored, _with_nan, _too_large_float, _too_low_float, _normalised, _unit_range],
)
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_values_that_cannot_be_hu_are_rejected_and_file_untouched(tmp_path, tree_hash, make_array, suffix):
    path = _write_raw(tmp_path / f"bad{suffix}", make_array())
    before = tree_hash(path)
    with pytest.raises(InputError, match="values cannot be HU"):
        read_volume(path)
    assert tree_hash(path) == before


def test_padding_below_air_is_accepted(tmp_path):
    a = np.full((5, 6, 7), -3024, dtype=np.int16)  # outside the scanner's field of view
    a[:, 1:5, 1:6] = -1000
    a[:, 2:4, 2:5] = 40
    back = read_volume(_write_raw(tmp_path / "pad.nii.gz", a))
    np.testing.assert_array_equal(back.array, a)


@pytest.mark.parametrize("shape", [(20, 24), (1, 20, 24), (12, 1, 24), (12, 20, 1)])
def test_two_d_image_or_single_slice_needs_a_volume(tmp_path, tree_hash, shape):
    a = np.full(shape, -1000, dtype=np.int16)
    a.flat[0] = 50
    path = _write_raw(tmp_path / "flat.nii.gz", a)
    before = tree_hash(path)
    with pytest.raises(InputError, match="3-D volume is needed"):
        read_volume(path)
    assert tree_hash(path) == before


def test_colour_image_is_rejected(tmp_path):
    rgb = sitk.GetImageFromArray(np.zeros((4, 5, 6, 3), dtype=np.uint8), isVector=True)
    path = tmp_path / "rgb.nrrd"
    sitk.WriteImage(rgb, str(path))
    with pytest.raises(InputError, match="values per voxel"):
        read_volume(path)


def test_missing_unknown_and_corrupt_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="unknown file type"):
        read_volume(tmp_path / "notes.txt")
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti file at all")
    with pytest.raises(InputError, match="cannot read|truncated or corrupt"):
        read_volume(tmp_path / "broken.nii.gz")


@pytest.mark.parametrize("name, compress", [("cut.mha", True), ("cut.mha", False), ("cut.nrrd", False)])
def test_truncated_metaimage_and_nrrd_say_their_voxel_data_are_cut(tmp_path, make_phantom, name, compress):
    # An interrupted copy: the header is whole, the voxel data cut short. ITK's MetaImage reader
    # says only "No such file or directory" (compressed) for it.
    path = tmp_path / name
    sitk.WriteImage(volume_to_sitk(make_phantom()), str(path), useCompression=compress)
    with open(path, "r+b") as fh:
        fh.truncate(int(path.stat().st_size * 0.9))
    with pytest.raises(InputError, match="cannot read the voxel data of .*truncated or damaged|"
                                         "compressed voxel data of .* are cut short") as info:
        read_volume(path)
    assert "\n" not in str(info.value)


def test_sitk_helpers_round_trip_exact_geometry(make_phantom, directions):
    vol = make_phantom(directions["oblique35z_20x"])
    image = volume_to_sitk(vol)
    assert image.GetSize() == tuple(reversed(vol.shape))
    # The physical point ITK computes for an index equals Volume.index_to_lps.
    np.testing.assert_allclose(
        image.TransformIndexToPhysicalPoint((7, 5, 3)), vol.index_to_lps((3, 5, 7)), atol=1e-9
    )
    back = sitk_to_volume(image, {"modality": "CT"})
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.spacing == vol.spacing and back.origin == vol.origin
    np.testing.assert_array_equal(back.direction, vol.direction)
    assert back.metadata == {"modality": "CT"}


@pytest.mark.parametrize("max_label,dtype", [(7, np.uint8), (300, np.uint16)])
def test_label_map_keeps_grid_and_values(tmp_path, make_phantom, directions, mark, max_label, dtype):
    like = make_phantom(directions["oblique20x"])
    labels = np.zeros(like.shape, dtype=np.int32)
    labels[2:5, 4:8, 6:9] = max_label
    index, _ = mark
    labels[index] = 1
    path = write_label_map(labels, like, tmp_path / "labels.nii.gz")
    image = sitk.ReadImage(str(path))
    assert image.GetPixelID() == (sitk.sitkUInt8 if dtype is np.uint8 else sitk.sitkUInt16)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), labels)
    np.testing.assert_allclose(image.GetOrigin(), like.origin, atol=1e-5)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), like.direction, atol=1e-5)
    np.testing.assert_allclose(
        image.TransformIndexToPhysicalPoint(index[::-1]), like.index_to_lps(index), atol=1e-4
    )


def test_label_map_rejects_wrong_shape_and_negative_labels(tmp_path, make_phantom):
    like = make_phantom()
    with pytest.raises(ValueError, match="shape"):
        write_label_map(np.zeros((2, 3, 4), np.uint8), like, tmp_path / "l.nii.gz")
    with pytest.raises(ValueError, match="0..65535"):
        write_label_map(np.full(like.shape, -1, np.int16), like, tmp_path / "l.nii.gz")
    with pytest.raises(ValueError, match="end with"):
        write_volume(like, tmp_path / "l.png")
    assert not list(tmp_path.iterdir())


def test_real_chest_ct_reads_as_hu():
    if not REAL_CT.exists():
        pytest.skip(f"real scan {REAL_CT} is not on this machine")
    vol = read_volume(REAL_CT)
    assert vol.shape == (48, 512, 512)
    assert vol.array.dtype == np.int16
    np.testing.assert_allclose(vol.spacing, (0.5703125, 0.5703125, 5.0), rtol=1e-4)
    # Air around the patient: the corner of every slice is near -1000 HU.
    corners = vol.array[:, :20, :20]
    assert -1100 < float(np.median(corners)) < -900
    # Soft tissue in the middle of the body is near water.
    centre = vol.array[24, 236:276, 236:276]
    assert -200 < float(np.median(centre)) < 200
    assert vol.metadata["source_format"] == "nrrd"


def test_time_series_is_rejected_and_single_time_point_is_read(tmp_path, make_phantom):
    vol = make_phantom()
    frame = sitk.GetImageFromArray(vol.array)
    sitk.WriteImage(sitk.JoinSeries([frame]), str(tmp_path / "one.nii.gz"))
    np.testing.assert_array_equal(read_volume(tmp_path / "one.nii.gz").array, vol.array)
    sitk.WriteImage(sitk.JoinSeries([frame, frame]), str(tmp_path / "two.nii.gz"))
    with pytest.raises(InputError, match="4-D .*3-D volume is needed"):
        read_volume(tmp_path / "two.nii.gz")


def test_a_volume_of_nothing_but_air_is_refused(tmp_path, make_phantom):
    # No tissue at all: it was "analysed" (no body found, nothing done) with exit 0.
    vol = make_phantom()
    path = write_volume(vol.with_array(np.full(vol.shape, -1000, np.int16)), tmp_path / "air.nii.gz")
    with pytest.raises(InputError, match="nothing denser than air"):
        read_volume(path)


def _with_scaling(path, slope: float, inter: float) -> None:
    import gzip
    import struct

    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[112:120] = struct.pack("<2f", slope, inter)
    path.write_bytes(gzip.compress(bytes(raw)))


@pytest.mark.parametrize("dtype, offset, scaling", [
    (np.int16, 0, None),
    (np.int16, 0, (0.5, -1024.0)),
    (np.uint16, 1024, (1.0, -1024.0)),  # stored without negatives, shifted back by scl_inter
    (np.int16, 0, (0.0, -1024.0)),  # ITK takes a slope of 0 as 1 and keeps the intercept
    (np.int16, 0, (float("nan"), 5.0)),  # ... and a slope that is no number as 1
    (np.float32, 0, None),
    (np.int32, 0, (0.1, -3.0)),
    (np.uint8, 0, (10.0, -1000.0)),
])
def test_nifti_voxels_read_in_one_pass_equal_itks(tmp_path, dtype, offset, scaling):
    # The voxels are read here (one decompression that also checks the stream); the values
    # must be what ITK's own read gives, scaling included.
    rng = np.random.default_rng(3)
    data = rng.integers(-1000, 2000, size=(6, 20, 24)) + offset
    if dtype == np.uint8:
        data = data % 200 + 20
    image = sitk.GetImageFromArray(data.astype(dtype))
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((1.0, -2.0, 3.0))
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(image, str(path))
    if scaling is not None:
        _with_scaling(path, *scaling)
    ours = read_volume(path)
    ref = sitk_to_volume(sitk.ReadImage(str(path)), source=str(path))
    np.testing.assert_array_equal(ours.array, ref.array)
    assert ours.spacing == pytest.approx(ref.spacing) and ours.origin == pytest.approx(ref.origin)
    np.testing.assert_allclose(ours.direction, ref.direction)
