"""Pixel Padding Value: the corners outside a CT's reconstruction circle read as air, whatever
bits the scanner wrote there, and no real value is mistaken for padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from calcinosis.errors import InputError
from calcinosis.io import read_volume, write_dicom_series
from calcinosis.io.padding import PADDING_HU

#: A real voxel whose 12-bit stored value (2096, intercept -1024) is the low 12 bits of the
#: padding 0xF830: a reader that compared masked values would take it for padding.
LOOKALIKE_HU = 2096 - 1024
LOOKALIKE_ZYX = (5, 10, 12)


def _outside_circle(rows: int, columns: int) -> np.ndarray:
    """The corners of a slice outside the inscribed reconstruction circle (they cut the phantom's
    tissue block too, as a circle cuts a large patient)."""
    yy, xx = np.mgrid[:rows, :columns]
    return (yy - (rows - 1) / 2) ** 2 + (xx - (columns - 1) / 2) ** 2 > (min(rows, columns) / 2 + 1.5) ** 2


def _padded_series(folder: Path, make_phantom, *, cell: int, padding: int, padding_vr: str, bits_stored: int,
                   signed: bool, limit: int | None = None, cells=None, intercept: float = -1024.0):
    """A phantom series (``intercept``) whose corners hold the stored bits ``cell`` (or, per
    corner pixel, one of ``cells``), declared padding ``padding`` (VR ``padding_vr``), with
    ``bits_stored`` and PixelRepresentation ``signed``. Returns (files, the expected HU)."""
    vol = make_phantom()
    array = vol.array.copy()
    array[LOOKALIKE_ZYX] = LOOKALIKE_HU
    files = write_dicom_series(vol.with_array(array), folder, series_uid="1.2.826.0.1.7", rescale_intercept=intercept)
    corners = _outside_circle(*array.shape[1:])
    dtype = np.int16 if signed else np.uint16
    for f in files:
        ds = pydicom.dcmread(f)
        stored = (ds.pixel_array.astype(np.int64) & 0xFFFF).astype(np.uint16).view(dtype)
        values = np.full(int(corners.sum()), cell) if cells is None else np.resize(cells, int(corners.sum()))
        stored[corners] = (values & 0xFFFF).astype(np.uint16).view(dtype)
        ds.PixelData = stored.tobytes()
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, int(signed)
        ds.add_new(0x00280120, padding_vr, padding)
        if limit is not None:
            ds.add_new(0x00280121, padding_vr, limit)
        ds.save_as(f)
    expected = array.copy()
    expected[:, corners] = PADDING_HU
    return files, expected


# Each scanner habit: (cell bits written in the corners, PixelPaddingValue, its VR, BitsStored, signed,
# RescaleIntercept).
HABITS = {
    # -2000 in 16 bits in a 12-bit unsigned image: masked to 2096, it read as 1072 HU ("bone").
    "outside_12_bits_unsigned": (0xF830, 0xF830, "US", 12, False, -1024.0),
    # The same 16 bits with all 16 stored: 63536 - 1024 HU, refused as beyond int16.
    "unsigned_16_bits": (0xF830, 0xF830, "US", 16, False, -1024.0),
    # GE's habit: signed, -2000 (-3024 HU after the intercept).
    "signed_16_bits": (-2000, -2000, "SS", 16, True, -1024.0),
    # Signed 12 bits (HU stored as they are) whose unused high bits are left 0: -2000 only once
    # sign-extended.
    "signed_12_bits_high_bits_clear": (0x0830, -2000, "SS", 12, True, 0.0),
    # A signed image whose header writes its padding as the unsigned 16 bits.
    "signed_padding_written_unsigned": (-2000, 0xF830, "US", 16, True, -1024.0),
}


@pytest.mark.parametrize("habit", HABITS.values(), ids=HABITS)
def test_padding_reads_as_air_and_nothing_else_does(tmp_path, make_phantom, tree_hash, habit):
    cell, padding, vr, bits_stored, signed, intercept = habit
    _, expected = _padded_series(tmp_path, make_phantom, cell=cell, padding=padding, padding_vr=vr,
                                 bits_stored=bits_stored, signed=signed, intercept=intercept)
    before = tree_hash(tmp_path)
    back = read_volume(tmp_path)
    np.testing.assert_array_equal(back.array, expected)
    assert back.array[LOOKALIKE_ZYX] == LOOKALIKE_HU
    assert tree_hash(tmp_path) == before


def test_padding_range_limit_covers_every_value_between(tmp_path, make_phantom):
    _, expected = _padded_series(tmp_path, make_phantom, cell=-2000, cells=np.array([-2000, -1800, -1500]),
                                 padding=-2000, limit=-1500, padding_vr="SS", bits_stored=16, signed=True)
    np.testing.assert_array_equal(read_volume(tmp_path).array, expected)


def test_padding_of_a_compressed_series_reads_as_air(tmp_path, make_phantom):
    # Compressed slices are decoded (and rescaled) by GDCM: the padding is found by its HU.
    files, expected = _padded_series(tmp_path, make_phantom, cell=-2000, padding=-2000, padding_vr="SS",
                                     bits_stored=16, signed=True)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.compress(RLELossless)
        ds.save_as(f)
    np.testing.assert_array_equal(read_volume(tmp_path).array, expected)


def test_padding_of_an_enhanced_ct_reads_as_air(tmp_path, make_phantom, enhanced_ct):
    files, expected = _padded_series(tmp_path / "single", make_phantom, cell=0xF830, padding=0xF830,
                                     padding_vr="US", bits_stored=12, signed=False)
    path = enhanced_ct(files, tmp_path / "multi" / "ct.dcm")
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.add_new(0x00280120, "US", 0xF830)
    ds.save_as(path)
    np.testing.assert_array_equal(read_volume(path).array, expected)


def test_raw_stored_values_are_refused_whatever_their_padding(tmp_path, make_phantom):
    # Without its RescaleIntercept the series holds stored values 24..2258, refused as "no air";
    # once its padding read as -1024 HU, that air let the whole scan pass, 1024 HU too dense.
    files, _ = _padded_series(tmp_path, make_phantom, cell=0xF830, padding=0xF830, padding_vr="US",
                              bits_stored=12, signed=False)
    for f in files:
        ds = pydicom.dcmread(f)
        del ds.RescaleIntercept, ds.RescaleSlope
        ds.save_as(f)
    with pytest.raises(InputError, match=r"range 24\.\.2258 has no air or fat"):
        read_volume(tmp_path)
