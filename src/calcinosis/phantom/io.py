"""Writing a CT phantom: the image plus ``truth.json``, each atomically."""

from __future__ import annotations

import os
from pathlib import Path

from calcinosis.atomic import write_json, write_with
from calcinosis.errors import InputError
from calcinosis.phantom.ct import PhantomCT
from calcinosis.volume import Volume

FORMATS = ("nii.gz", "nrrd", "mha")


def write_phantom(phantom: PhantomCT, out_dir: str | os.PathLike[str], fmt: str = "nii.gz") -> Path:
    """Write ``phantom.<fmt>`` and ``truth.json`` into ``out_dir``; return the image path.

    Uses :func:`calcinosis.io.write_volume` when the package provides it, else
    SimpleITK directly (same geometry: spacing, origin, identity direction).
    """
    fmt = fmt.lstrip(".")
    if fmt not in FORMATS:
        raise InputError(f"unknown phantom format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder; give a folder path")
    out.mkdir(parents=True, exist_ok=True)
    image_path = out / f"phantom.{fmt}"
    try:
        from calcinosis.io import write_volume  # noqa: PLC0415 (optional, written by another part)
    except ImportError:
        write_volume = None
    if write_volume is not None:
        write_volume(phantom.volume, image_path)
    else:
        write_with(image_path, lambda tmp: _write_sitk(phantom.volume, tmp))
    write_json(out / "truth.json", phantom.truth_dict())
    return image_path


def _write_sitk(volume: Volume, path: Path) -> None:
    import SimpleITK as sitk  # noqa: PLC0415

    image = sitk.GetImageFromArray(volume.array)
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(float(v) for v in volume.direction.ravel()))
    sitk.WriteImage(image, str(path), True)
