"""DICOM Pixel Padding Value: the pixels outside a CT's reconstruction circle.

Many CT scanners fill the corners of the square image, outside the circle they reconstruct,
with a Pixel Padding Value (0028,0120) (GE and Philips: -2000 or -3024 HU), sometimes a
range up to a Pixel Padding Range Limit (0028,0121). Those pixels hold no measurement. The
standard gives the padding value as a stored value, and a scanner may write one that lies
outside Bits Stored (0xF830, -2000 in 16 bits, in a 12-bit unsigned image): a reader that
masks the unused bits, as PS3.5 8.1.1 asks (pydicom, GDCM), then turns the padding into
0x830 = 2096, 1072 HU after the usual -1024 intercept, a ring of "bone" round the image;
and a 16-bit unsigned 0xF830 is 62512 HU, which no int16 volume holds. So the padding is
found in the stored values, with all their bits when it lies outside Bits Stored, and read
as air (:data:`PADDING_HU`), what a scanner without padding writes there.
"""

from __future__ import annotations

import numpy as np

#: HU given to padding pixels: air as the lowest value of the usual 12-bit range (stored 0,
#: intercept -1024), what scanners that do not pad write outside the reconstruction circle.
PADDING_HU = -1024


def stored_range(bits_stored: int, signed: bool) -> tuple[int, int]:
    """The smallest and largest value ``bits_stored`` bits hold (two's complement if ``signed``)."""
    if signed:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def padding_fits(padding: tuple[int, int], bits_stored: int, signed: bool) -> bool:
    """Whether the padding range lies within the values ``bits_stored`` bits hold, so that it
    can be compared with the decoded (unused bits masked) values."""
    lo, hi = stored_range(bits_stored, signed)
    return lo <= min(padding) and max(padding) <= hi


def padding_mask(raw: np.ndarray, padding: tuple[int, int], bits_stored: int, signed: bool) -> np.ndarray:
    """Where the stored cells ``raw`` (all ``raw.dtype`` bits, the unused ones not masked) are
    padding: equal to the Pixel Padding Value, or between it and the Pixel Padding Range Limit.

    A padding value within Bits Stored is compared with the cells' Bits Stored value (whatever
    the unused bits hold, as a masking reader sees it); one outside Bits Stored, with the whole
    cell, the padding value taken modulo the cell's width (a US 63536 and an SS -2000 are then
    the same 16 bits).
    """
    bits = raw.dtype.itemsize * 8
    if padding_fits(padding, bits_stored, signed):
        shift = bits - bits_stored
        values = raw if shift == 0 else (raw << shift) >> shift  # sign-extends a signed type
        lo, hi = min(padding), max(padding)
        return (values >= lo) & (values <= hi)
    lo, hi = sorted(_as_cell(v, bits, signed) for v in padding)
    return (raw >= lo) & (raw <= hi)


def _as_cell(value: int, bits: int, signed: bool) -> int:
    """``value``'s low ``bits`` bits read as a cell of that width (two's complement if ``signed``)."""
    value &= (1 << bits) - 1
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value
