"""Shared builders for the io tests: small phantoms whose geometry is known exactly."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from calcinosis.volume import Volume

#: Array index (z, y, x) of the one bright voxel in every phantom.
MARK_ZYX = (3, 5, 7)
MARK_HU = 1234
SHAPE = (12, 20, 24)
SPACING = (0.7, 0.8, 2.5)
ORIGIN = (-10.25, 20.5, 30.0)


def rotation_x(degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])


def rotation_z(degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


DIRECTIONS = {
    "identity": np.eye(3),
    "oblique20x": rotation_x(20.0),
    "oblique35z_20x": rotation_z(35.0) @ rotation_x(20.0),
    "flip_x": np.diag([-1.0, 1.0, 1.0]),  # left-handed
    "flip_yz": np.diag([1.0, -1.0, -1.0]),
    "flip_z_oblique": rotation_x(20.0) @ np.diag([1.0, 1.0, -1.0]),  # left-handed
}


def phantom_array(shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """Air around a soft-tissue block with a gradient (every slice differs) and one bright voxel."""
    a = np.full(shape, -1000, dtype=np.int16)
    z, y, x = shape
    block = np.add.outer(np.arange(z) * 7, np.add.outer(np.arange(y - 4) * 3, np.arange(x - 4)))
    a[:, 2:-2, 2:-2] = (block % 120 + 10).astype(np.int16)
    a[MARK_ZYX] = MARK_HU
    return a


@pytest.fixture
def make_phantom() -> Callable[..., Volume]:
    def make(direction: np.ndarray | None = None, shape: tuple[int, int, int] = SHAPE, **kw: object) -> Volume:
        d = np.eye(3) if direction is None else direction
        return Volume(phantom_array(shape), kw.pop("spacing", SPACING), kw.pop("origin", ORIGIN), d)  # type: ignore[arg-type]

    return make


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (or of ``root`` itself if it is a file)."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def tree_hash() -> Callable[[Path], dict[str, str]]:
    return hash_tree


@pytest.fixture
def mark() -> tuple[tuple[int, int, int], int]:
    return MARK_ZYX, MARK_HU


@pytest.fixture
def directions() -> dict[str, np.ndarray]:
    return DIRECTIONS
