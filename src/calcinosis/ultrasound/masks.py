"""Where on a screen capture the B-mode echoes are, and where the burned-in graphics are.

Scanners burn text, scale bars, calipers, colour bars, colour Doppler and panel borders into
the pixels. None of it is tissue, so none of it may become a finding. Graphics are told from
echoes by their shape: strokes one or two pixels wide that a 3 x 3 grey opening removes
(echoes are blurred by the point-spread function over several pixels), and colour, where the
red, green and blue channels differ markedly (B-mode is grey).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from calcinosis.ultrasound.io import UltrasoundImage

__all__ = ["FrameMasks", "frame_masks", "grey_of", "coloured_mask", "graphics_mask", "tint_gains"]

COLOUR_SPREAD = 40  # grey levels between the largest and smallest channel that mean "colour"
#: A B-mode tint must bring this share of the mid-grey pixels within TINT_FIT grey levels of
#: grey (channels apart): the tinted phantoms (sepia, blue) fit all of theirs.
TINT_SHARE, TINT_FIT = 0.8, 12.0
#: Widest (screen pixels) an annotation may be and still be a mark drawn over the echoes rather
#: than a block hiding them: a one- or two-pixel stroke dilated by the colour mask's 3-pixel
#: safety margin on each side is 7-9 pixels wide; 15 leaves room for a bold stroke or a glyph
#: row, and a colour box, a colour bar or a text block is wider.
MAX_MARK_WIDTH_PX = 15


@dataclass(frozen=True)
class FrameMasks:
    """Boolean masks ``[rows, cols]`` of one frame.

    ``valid`` is where echoes may be analysed (inside a B-mode region and the echo area,
    outside every annotation); ``annotation`` is burned-in text, lines, colour and declared
    non-B-mode regions (dilated by a safety margin); ``coloured`` is the raw colour mask;
    ``border`` is what a deposit may not touch, because what lies beyond it is unseen: all
    outside the echo field, and the annotation blocks (colour boxes, colour bars, declared
    non-B-mode regions, blocks of text), but not the thin marks drawn over the echoes
    (calipers, a caliper's dotted line, a short label), which hide a few pixels of a
    deposit and leave the rest measurable.
    """

    valid: np.ndarray
    annotation: np.ndarray
    coloured: np.ndarray
    border: np.ndarray


def grey_of(rgb: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R BT.601) of uint8 RGB ``[..., 3]`` as float32 0-255."""
    rgb = rgb.astype(np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def tint_gains(rgb: np.ndarray) -> np.ndarray:
    """Each channel's ratio to the luminance on the B-mode echoes: 1, 1, 1 on grey B-mode;
    others where the scanner displays B-mode in a tint (sepia, blue "chroma" maps).

    The median over mid-grey pixels (luminance 30-220, no channel clipped) is the echoes'
    tint: colour Doppler, colour bars and graphics cover a minority of an image. A tint is
    taken only where it makes most of those pixels grey again (within ``TINT_FIT``); an image
    that a colour Doppler box fills has no single tint, and keeps 1, 1, 1.
    """
    rgb = rgb.astype(np.float32)
    lum = grey_of(rgb)
    mid = (lum >= 30) & (lum <= 220) & (rgb.max(axis=-1) < 255)
    ones = np.ones(3, np.float32)
    if mid.sum() < 100:
        return ones
    gains = np.median(rgb[mid] / lum[mid][:, None], axis=0).astype(np.float32)
    fits = np.ptp(rgb[mid] / gains, axis=-1) <= TINT_FIT
    return gains if fits.mean() >= TINT_SHARE else ones


def coloured_mask(rgb: np.ndarray, spread: int = COLOUR_SPREAD, gains: np.ndarray | None = None) -> np.ndarray:
    """Pixels whose channels differ by more than ``spread`` grey levels (colour Doppler, graphics),
    after each channel is divided by its ``gains`` (:func:`tint_gains`): on a tinted B-mode
    image the echoes themselves are not colour."""
    if gains is None or np.allclose(gains, 1.0, atol=0.02):
        return np.ptp(rgb.astype(np.int16), axis=-1) > spread
    return np.ptp(rgb.astype(np.float32) / gains, axis=-1) > spread


def graphics_mask(grey: np.ndarray, clipped: np.ndarray | None = None) -> np.ndarray:
    """Burned-in graphics: thin bright strokes (text, calipers, scale marks, box and panel
    lines) and flat filled boxes; not dilated. ``clipped``: pixels with a channel at full
    white (by default grey 250 or more), whose flat plateaus are saturated echoes, not boxes."""
    opened = ndi.grey_opening(grey, size=(3, 3))
    thin = ((grey - opened) > 110) & (grey >= 140)
    # Filled glyph boxes and bars are perfectly flat, which speckle never is (saturated
    # echoes at 255 excepted, so a bright deposit is not mistaken for a label).
    if clipped is None:
        clipped = grey >= 250
    flat = (ndi.maximum_filter(grey, size=3) == ndi.minimum_filter(grey, size=3)) & (grey >= 100) & ~clipped
    thin |= ndi.binary_dilation(flat, structure=np.ones((3, 3)))
    # A lone bright speckle grain can pass the test; a glyph or a line has several pixels.
    labels, n = ndi.label(thin, structure=np.ones((3, 3)))
    if n == 0:
        return thin
    sizes = ndi.sum_labels(thin, labels, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= 4
    return keep[labels]


def _solid_colour_boxes(coloured: np.ndarray, margin: int) -> np.ndarray:
    """Bounding boxes (grown by ``margin``) of solid colour blocks: colour bars and legends."""
    out = np.zeros_like(coloured)
    labels, n = ndi.label(coloured)
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        box = labels[sl] == k
        if box.size >= 30 and box.mean() > 0.6:
            r0, r1 = max(sl[0].start - margin, 0), sl[0].stop + margin
            c0, c1 = max(sl[1].start - margin, 0), sl[1].stop + margin
            out[r0:r1, c0:c1] = True
    return out


def _echo_area(grey: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """The image's echo field: convex hull of the large areas of echo texture.

    The hull keeps anechoic structures (bladder, cysts, vessels) and a dim near field inside
    the field, while the black frame and the corners beside a sector stay outside.
    """
    from skimage.morphology import convex_hull_image

    g = np.where(blocked, 0.0, grey)
    smooth = ndi.uniform_filter(g, size=15)
    area = (smooth > 8) & ~blocked
    labels, n = ndi.label(area)
    if n == 0:
        return np.zeros_like(area)
    sizes = ndi.sum_labels(area, labels, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= max(0.05 * sizes.max(), 500)
    if not keep.any():  # no bright area large enough (scikit-image would warn on stderr)
        return np.zeros_like(area)
    field = convex_hull_image(keep[labels])
    return ndi.binary_erosion(field, iterations=3)


def frame_masks(image: UltrasoundImage, frame: int = 0) -> FrameMasks:
    """Valid-analysis and annotation masks of one frame of ``image``."""
    rgb = image.rgb[frame]
    grey = grey_of(rgb)
    # A tinted B-mode display (sepia: red 1.0, green 0.85, blue 0.65 of the grey) made every
    # echo brighter than grey 115 "colour", and its saturated echoes flat "boxes": the phantom's
    # 3 deposits were all masked and none found, without a word.
    coloured = coloured_mask(rgb, gains=tint_gains(rgb))
    graphics = graphics_mask(grey, clipped=(grey >= 250) | (rgb.max(axis=-1) >= 254))
    annotation = ndi.binary_dilation(graphics, structure=np.ones((3, 3)), iterations=2)
    annotation |= ndi.binary_dilation(coloured, structure=np.ones((3, 3)), iterations=3)
    annotation |= _solid_colour_boxes(coloured, margin=10)
    for r in image.excluded_regions:
        annotation[r.slices()] = True
    inside = np.zeros(grey.shape, bool)
    for r in image.tissue_regions:
        inside[r.slices()] = True
    # The sector of a curved or phased array leaves black corners inside its region, and a
    # screen capture without regions has a black frame: neither is tissue.
    inside &= _echo_area(grey, annotation | ~inside)
    valid = inside & ~annotation
    # A caliper cross on a deposit's edge (the radiologist measured it) used to reject the
    # deposit as cut off by the edge of the analysable area: three of three phantom deposits
    # with yellow calipers on their edges were lost. Thin marks (strokes of graphics or of one
    # colour, one or two pixels wide, with their safety margin) are no border; colour areas
    # (Doppler), boxes, declared non-B-mode regions and blocks wider than a mark are.
    thin_colour = coloured & ~ndi.binary_opening(coloured, structure=np.ones((3, 3)))
    marks = ndi.binary_dilation(graphics | thin_colour, structure=np.ones((3, 3)), iterations=3)
    blocks = (annotation & ~marks) | ndi.binary_opening(
        annotation, structure=np.ones((MAX_MARK_WIDTH_PX, MAX_MARK_WIDTH_PX)))
    border = ~inside | blocks
    return FrameMasks(valid=valid, annotation=annotation, coloured=coloured, border=border)
