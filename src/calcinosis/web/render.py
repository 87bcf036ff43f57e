"""Slices as PNG: windowed CT images and label slices, with a byte-bounded LRU cache.

Planes, in view coordinates (see :mod:`calcinosis.web.orientation`):

* ``axial`` slice ``vz``: rows ``vy`` (anterior at the top), columns ``vx`` (patient right on the left);
* ``coronal`` slice ``vy``: rows ``vz`` from superior down, columns ``vx``;
* ``sagittal`` slice ``vx``: rows ``vz`` from superior down, columns ``vy`` (anterior on the left).

Images are rendered at the native pixel grid; the page scales them by the pixel
size in mm, so the server never resamples.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from enum import Enum

import numpy as np


class Plane(str, Enum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


class Preset(str, Enum):
    """Window presets: (level, width) in HU."""

    SOFT = "soft"
    BONE = "bone"

    @property
    def level_width_hu(self) -> tuple[float, float]:
        return {"soft": (40.0, 400.0), "bone": (400.0, 1800.0)}[self.value]


# Which view axis a plane cuts: axial -> vz (array axis 0), coronal -> vy (1), sagittal -> vx (2).
PLANE_AXIS = {Plane.AXIAL: 0, Plane.CORONAL: 1, Plane.SAGITTAL: 2}


def plane_size(shape_zyx: tuple[int, int, int], plane: Plane) -> int:
    """Number of slices of ``plane`` in a view of shape ``(nvz, nvy, nvx)``."""
    return int(shape_zyx[PLANE_AXIS[Plane(plane)]])


def extract_slice(view: np.ndarray, plane: Plane, index: int) -> np.ndarray:
    """The 2-D slice ``index`` of ``plane``, oriented for display (see module docstring)."""
    plane = Plane(plane)
    if plane is Plane.AXIAL:
        return view[index]
    if plane is Plane.CORONAL:
        return view[::-1, index, :]
    return view[::-1, :, index]


def window_to_uint8(hu: np.ndarray, level_hu: float, width_hu: float) -> np.ndarray:
    """Linear window: ``level - width/2`` -> 0, ``level + width/2`` -> 255."""
    lo = level_hu - width_hu / 2.0
    scaled = (hu.astype(np.float32) - lo) * (255.0 / width_hu)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    """PNG of a 2-D uint8 (grey) or 3-D uint8 RGB array; fast compression, no colour profile."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def image_png(view: np.ndarray, plane: Plane, index: int, level_hu: float, width_hu: float) -> bytes:
    """The windowed CT slice as a grey PNG."""
    return png_bytes(window_to_uint8(extract_slice(view, plane, index), level_hu, width_hu))


def label_png(labels: np.ndarray, plane: Plane, index: int) -> bytes:
    """The label slice as an RGB PNG: red = lesion_id % 256, green = lesion_id // 256, blue = 0.

    PNG is lossless and written without gamma or colour profile, so the page reads the
    ids back exactly from the pixels.
    """
    sl = extract_slice(labels, plane, index).astype(np.uint16)
    rgb = np.zeros(sl.shape + (3,), np.uint8)
    rgb[..., 0] = sl & 0xFF
    rgb[..., 1] = sl >> 8
    return png_bytes(rgb)


class ByteLRU:
    """A thread-safe LRU cache of ``bytes`` bounded by their total size."""

    def __init__(self, max_bytes: int = 256 * 1024**2) -> None:
        self._max = int(max_bytes)
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_make(self, key: tuple, make) -> bytes:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return data
            self.misses += 1
        data = make()  # outside the lock: rendering runs in parallel
        with self._lock:
            if key not in self._items and len(data) <= self._max:
                self._items[key] = data
                self._size += len(data)
                while self._size > self._max:
                    _, old = self._items.popitem(last=False)
                    self._size -= len(old)
        return data

    def drop(self, prefix: str) -> None:
        """Forget every entry whose key starts with ``prefix`` (a study reloaded)."""
        with self._lock:
            for key in [k for k in self._items if k[0] == prefix]:
                self._size -= len(self._items.pop(key))
