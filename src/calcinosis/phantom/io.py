"""Writing a CT phantom: the image, its ideal label map and ``truth.json``, each atomically."""

from __future__ import annotations

import os
from pathlib import Path

from calcinosis.atomic import write_json
from calcinosis.errors import InputError
from calcinosis.paths import make_out_dir
from calcinosis.io import write_label_map, write_volume
from calcinosis.phantom.ct import PhantomCT

FORMATS = ("nii.gz", "nrrd", "mha")


def write_phantom(phantom: PhantomCT, out_dir: str | os.PathLike[str], fmt: str = "nii.gz") -> dict[str, Path]:
    """Write a phantom into ``out_dir``.

    Files: ``phantom.<fmt>`` (int16 HU), ``truth_labels.<fmt>`` (each deposit's
    ideal mask labelled with its id, when the phantom has labels) and
    ``truth.json`` (:meth:`PhantomCT.truth_dict`). Returns ``{"image", "labels",
    "truth"}`` -> path ("labels" only when written).
    """
    fmt = str(fmt).lstrip(".")
    if fmt not in FORMATS:
        raise InputError(f"unknown phantom format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = make_out_dir(out_dir)
    paths = {"image": write_volume(phantom.volume, out / f"phantom.{fmt}")}
    if phantom.labels is not None:
        paths["labels"] = write_label_map(phantom.labels, phantom.volume, out / f"truth_labels.{fmt}")
    paths["truth"] = write_json(out / "truth.json", phantom.truth_dict())
    return paths
