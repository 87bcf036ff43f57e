"""Checks that an image holds Hounsfield units, and conversion to int16 HU.

A CT volume in HU spans air (about -1000) to bone and metal (up to a few
thousand). Files that hold something else — raw stored values without the
rescale intercept, normalised intensities, MR or PET data — must be rejected
rather than analysed, because every threshold downstream is in HU.
"""

from __future__ import annotations

import numpy as np

from calcinosis.errors import InputError

#: Values an int16 HU array can hold.
INT16_MIN = -32768
INT16_MAX = 32767
#: Lowest value accepted in float data. Real HU never go below about -1024 (air);
#: scanners pad outside the field of view with -2000, -2048 or -3024, so the
#: bound sits just below the common padding values.
FLOAT_HU_MIN = -4096.0
#: Raw 12-bit stored values (0..4095) with no negative value suggest a missing
#: rescale intercept: a CT in HU always has something below 0 (air, fat, padding).
RAW_STORED_MAX = 4095
#: Float data whose magnitude never exceeds this is normalised intensity, not HU.
NORMALISED_ABS_MAX = 10.0
#: A CT whose every value is at most this (HU) holds no tissue at all: only air, or stored
#: values put through a wrong rescale (a negative slope made a real scan -4984..-1024).
AIR_ONLY_MAX_HU = -500.0


def check_hu_range(vmin: float, vmax: float, *, is_float: bool, has_fraction: bool, source: str) -> None:
    """Raise :class:`InputError` when values in ``[vmin, vmax]`` cannot be HU.

    Parameters
    ----------
    vmin, vmax : float
        Smallest and largest value in the image (NaN if any value is NaN).
    is_float : bool
        Whether the image is stored as floating point.
    has_fraction : bool
        Whether any value is not a whole number (only meaningful for float data).
    source : str
        What to name in the message (usually the file or folder).

    Notes
    -----
    Rejected: NaN or infinite values; anything outside the int16 range; float
    data below ``FLOAT_HU_MIN`` (-4096); data with minimum >= 0 and maximum <=
    4095 (raw stored values, no air); data with maximum <= ``AIR_ONLY_MAX_HU``
    (nothing but air); non-integer float data within +-10 (normalised intensities).
    """
    if not (np.isfinite(vmin) and np.isfinite(vmax)):
        raise InputError(f"values cannot be HU in {source}: the image holds NaN or infinite values")
    lo = FLOAT_HU_MIN if is_float else INT16_MIN
    if vmin < lo or vmax > INT16_MAX:
        raise InputError(
            f"values cannot be HU in {source}: range {vmin:g}..{vmax:g} lies outside "
            f"{lo:g}..{INT16_MAX}; give a CT image in Hounsfield units"
        )
    if vmin >= 0 and vmax <= RAW_STORED_MAX:
        raise InputError(
            f"values cannot be HU in {source}: range {vmin:g}..{vmax:g} has no air or fat "
            "(looks like raw stored values without the rescale intercept); "
            "convert to HU (value * slope + intercept) first"
        )
    if vmax <= AIR_ONLY_MAX_HU:
        raise InputError(
            f"values cannot be a CT of a body in {source}: range {vmin:g}..{vmax:g} holds nothing denser "
            "than air; check the image (or its rescale slope and intercept)"
        )
    if is_float and has_fraction and max(abs(vmin), abs(vmax)) <= NORMALISED_ABS_MAX:
        raise InputError(
            f"values cannot be HU in {source}: range {vmin:g}..{vmax:g} looks like normalised "
            "intensities; give the CT in Hounsfield units"
        )


def to_int16_hu(array: np.ndarray, *, source: str) -> np.ndarray:
    """Validate ``array`` as HU and return it as a C-contiguous int16 array.

    Float data are rounded to the nearest integer slice by slice, so no float64
    copy of the whole volume is ever made. Raises :class:`InputError` when the
    values cannot be HU (see :func:`check_hu_range`).
    """
    if array.dtype.kind not in "biuf":
        raise InputError(f"cannot read {source}: pixel type {array.dtype} is not a scalar number type")
    if array.size == 0:
        raise InputError(f"cannot read {source}: the image is empty")
    is_float = array.dtype.kind == "f"
    vmin = float(np.min(array))
    vmax = float(np.max(array))
    has_fraction = False
    if is_float and np.isfinite(vmin) and np.isfinite(vmax):
        # Only needed for the narrow normalised-intensity rule; cheap enough per slice.
        has_fraction = any(bool(np.any(np.modf(plane)[0])) for plane in array)
    check_hu_range(vmin, vmax, is_float=is_float, has_fraction=has_fraction, source=source)
    if array.dtype == np.int16:
        return np.ascontiguousarray(array)  # no copy when it already is one
    out = np.empty(array.shape, dtype=np.int16)
    if is_float:
        for k in range(array.shape[0]):
            np.rint(array[k], out=out[k], casting="unsafe")
    else:
        out[...] = array
    return out
