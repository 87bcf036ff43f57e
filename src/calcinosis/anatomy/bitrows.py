"""In-plane erosion and dilation of one slice with rows packed 64 pixels to a word.

The same pixels as :func:`calcinosis.anatomy.disk.erode_disk` and
:func:`~calcinosis.anatomy.disk.dilate_disk` on a 2-D slice (the disk as the same union
of centred rectangles, :func:`~calcinosis.anatomy.disk.disk_rectangles`; a run along x
then along y per rectangle; outside the image left out of each run, i.e. inside the
mask for the erosion and outside it for the dilation), on an eighth of the bytes: a
shift along x is a shift of the words with the bits carried across them, a shift along
y a shift of the rows of words. For slices of a few hundred pixels across, where the
boolean version's passes over the slice are what costs.

Packed rows: pixel ``x`` of a row is bit ``x % 64`` of word ``x // 64`` (little-endian
words, so the same on any machine); the bits past the last column are padding.
"""

from __future__ import annotations

import numpy as np

WORD = np.dtype("<u8")
_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


def pack_rows(mask: np.ndarray, fill: bool = False) -> np.ndarray:
    """A mask's rows (its last axis: a 2-D slice ``[y, x]`` or a stack ``[z, y, x]``) as
    bits of 64-bit words, the padding bits past the last column set to ``fill``."""
    bits = np.packbits(mask, axis=-1, bitorder="little")
    words = -(-bits.shape[-1] // 8)
    out = np.zeros((*mask.shape[:-1], words * 8), np.uint8)
    out[..., :bits.shape[-1]] = bits
    packed = out.view(WORD)
    if fill:
        _set_padding(packed, mask.shape[-1], True)
    return packed


def unpack_rows(packed: np.ndarray, width: int) -> np.ndarray:
    """The boolean mask of packed rows (``width`` columns; the padding dropped)."""
    return np.unpackbits(packed.view(np.uint8), axis=-1, count=width, bitorder="little").view(bool)


def grow_packed(packed: np.ndarray) -> np.ndarray:
    """:func:`~calcinosis.anatomy.morphology.grow_one` with corners of packed rows: each
    pixel ORed with its left and right neighbours (bits carried across words), then each
    row with the rows above and below. Bits may spill into the padding: an AND with packed
    rows whose padding is 0 clears them."""
    one, top = np.uint64(1), np.uint64(63)
    left = packed << one  # pixel x takes x - 1
    left[:, 1:] |= packed[:, :-1] >> top
    right = packed >> one  # pixel x takes x + 1
    right[:, :-1] |= packed[:, 1:] << top
    rows = left
    rows |= right
    rows |= packed
    out = rows.copy()
    out[1:] |= rows[:-1]
    out[:-1] |= rows[1:]
    return out


def popcount(words: np.ndarray) -> int:
    """The number of set bits in an array of words."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return int(np.bitwise_count(words).sum(dtype=np.int64))
    return int(np.count_nonzero(np.unpackbits(np.ascontiguousarray(words).view(np.uint8))))


def _padding(width: int) -> np.uint64:
    """The padding bits of a row's last word."""
    used = width % 64
    return np.uint64(0) if used == 0 else _ONES << np.uint64(used)


def _set_padding(packed: np.ndarray, width: int, value: bool) -> None:
    pad = _padding(width)
    if pad:
        if value:
            packed[..., -1] |= pad
        else:
            packed[..., -1] &= ~pad


def _shift_x(packed: np.ndarray, s: int, towards_start: bool, fill: bool) -> np.ndarray:
    """Each pixel ``x`` takes pixel ``x + s`` (``towards_start``) or ``x - s``, for
    ``0 < s < 64``; pixels from past the row's ends are ``fill``."""
    up, down = np.uint64(s), np.uint64(64 - s)
    edge = _ONES if fill else np.uint64(0)
    if towards_start:
        out = packed >> up
        out[..., :-1] |= packed[..., 1:] << down
        out[..., -1] |= edge << down
    else:
        out = packed << up
        out[..., 1:] |= packed[..., :-1] >> down
        out[..., 0] |= edge >> down
    return out


def _run_x(packed: np.ndarray, k: int, width: int, erode: bool) -> np.ndarray:
    """AND (``erode``) or OR of each pixel's row over ``[x - k, x + k]``, what lies past the
    row's ends left out (the padding must hold the neutral value; it does again after)."""
    if k == 0:
        return packed.copy()
    op = np.bitwise_and if erode else np.bitwise_or
    ahead, behind = packed, packed
    cover = 1
    while cover < k + 1:  # by doubling: ahead covers [x, x + cover - 1], behind [x - cover + 1, x]
        step = min(cover, k + 1 - cover)
        ahead = op(ahead, _shift_x(ahead, step, True, erode))
        behind = op(behind, _shift_x(behind, step, False, erode))
        cover += step
    out = op(ahead, behind)
    _set_padding(out, width, erode)
    return out


def _run_y(packed: np.ndarray, k: int, erode: bool) -> np.ndarray:
    """AND (``erode``) or OR over rows ``[y - k, y + k]`` (rows: the second-last axis, each
    slice of a stack on its own), rows past the ends left out."""
    out = packed.copy()
    if k == 0:
        return out
    op = np.bitwise_and if erode else np.bitwise_or
    n = packed.shape[-2]

    def rows(a: int | None, b: int | None) -> tuple:
        return (Ellipsis, slice(a, b), slice(None))

    ahead = packed.copy()
    cover = 1
    while cover < k + 1:
        step = min(cover, k + 1 - cover)
        if step < n:
            op(ahead[rows(None, -step)], ahead[rows(step, None)].copy(), out=ahead[rows(None, -step)])
        cover += step
    behind = np.empty_like(ahead)
    if k < n:
        behind[rows(k, None)] = ahead[rows(None, -k)]
    behind[rows(0, 1)] = packed[rows(0, 1)]
    for p in range(1, min(k, n)):  # the first k rows: a running prefix
        op(behind[rows(p - 1, p)], packed[rows(p, p + 1)], out=behind[rows(p, p + 1)])
    op(ahead, behind, out=out)
    return out


def disk_op_packed(packed: np.ndarray, width: int, rects, erode: bool) -> np.ndarray:
    """Erode (``erode``) or dilate packed rows (``width`` columns; the padding bits are not
    read; a slice ``[y, words]`` or a stack of slices ``[z, y, words]``, each on its own) with the union of centred rectangles ``rects`` (``(half_height, half_width)`` in
    pixels, half-widths ascending, as :func:`~calcinosis.anatomy.disk.disk_rectangles`
    gives them). A new array, its padding bits 0."""
    out = None
    along_x = packed.copy()
    _set_padding(along_x, width, erode)  # the neutral value: left out of the runs
    done_w = 0
    for hy, w in rects:  # each x run grows the last one
        along_x = _run_x(along_x, w - done_w, width, erode)
        done_w = w
        piece = _run_y(along_x, hy, erode)
        if out is None:
            out = piece
        elif erode:
            out &= piece
        else:
            out |= piece
    _set_padding(out, width, False)
    return out
