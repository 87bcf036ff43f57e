"""Open PNG/JPEG/TIFF files with Pillow, with the checks Pillow leaves to its caller.

Shared by the radiograph and the ultrasound readers (which refuse a named pipe first,
:func:`calcinosis.paths.check_regular_file`). Pillow warns, or raises its own error type,
on an image it thinks a decompression bomb; and reads a PNG whose compressed data ends
cleanly before the last row without complaint, leaving the missing rows black. Each of
these becomes a one-line :class:`~calcinosis.errors.InputError` here.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

from calcinosis.errors import InputError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type -> samples per pixel (grey, RGB, palette, grey + alpha, RGBA).
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 interlace passes: (first column, first row, column step, row step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def open_image(p: Path, *, max_pixels: int, what: str):
    """``PIL.Image.open(p)``, refusing an image of more than ``max_pixels`` pixels (per frame)
    before any pixel is decoded: such a size is a corrupt or hostile header, and decoding it
    would take minutes or all the memory. ``what`` names the expected image in messages."""
    from PIL import Image, UnidentifiedImageError

    too_big = (f"more than {max_pixels / 1e6:g} million pixels, more than any {what} has "
               "(the header may be corrupt)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(p)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InputError(f"{p}: image of {too_big}") from None
        except UnidentifiedImageError:
            raise InputError(f"{p}: not a readable image (PNG, JPEG or TIFF expected)") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"{p}: image cannot be read ({short(exc)})") from None
    width, height = im.size
    if width * height > max_pixels:
        im.close()
        raise InputError(f"{p}: {width} x {height} pixels is {too_big}")
    return im


def load_frame(p: Path, im) -> None:
    """Decode the current frame of ``im``; a file that ends early is refused as truncated,
    including a PNG whose compressed data ends cleanly before the last row (Pillow keeps
    those rows black and says nothing)."""
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as exc:
        raise InputError(f"{p}: image cannot be decoded, the file may be truncated ({short(exc)})") from None
    if im.format == "PNG" and png_data_short(p):
        raise InputError(f"{p}: the image data ends before the last row: the file is truncated or damaged")


def png_data_short(p: Path) -> bool:
    """Whether the PNG's decompressed image data (its IDAT chunks) is shorter than its
    header's size, bit depth, colour type and interlacing need."""
    data = p.read_bytes()
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return False
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if colour not in _PNG_SAMPLES:
        return False  # Pillow has refused it already
    need = _png_data_bytes(width, height, depth * _PNG_SAMPLES[colour], interlaced=bool(interlace))
    inflate, got, pos = zlib.decompressobj(), 0, 8
    try:
        while pos + 8 <= len(data) and got < need:
            length, kind = struct.unpack(">I4s", data[pos:pos + 8])
            if kind == b"IDAT":
                got += len(inflate.decompress(data[pos + 8:pos + 8 + length], need - got))
            pos += 12 + length
    except zlib.error:
        return True
    return got < need


def _png_data_bytes(width: int, height: int, bits_per_pixel: int, *, interlaced: bool) -> int:
    """Bytes of filtered scanlines (one filter byte per row) in a PNG of this layout."""
    total = 0
    for x0, y0, dx, dy in _ADAM7 if interlaced else ((0, 0, 1, 1),):
        cols, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if cols > 0 and rows > 0:
            total += rows * (1 + -(-cols * bits_per_pixel // 8))
    return total


def short(exc: BaseException, limit: int = 160) -> str:
    """An exception's text on one line, cut to ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
