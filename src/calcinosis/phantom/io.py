"""Writing a CT phantom: the image, its ideal label map and ``truth.json``, each atomically."""

from __future__ import annotations

import contextlib
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
    "truth"}`` -> path ("labels" only when written). When writing fails (or Ctrl-C) midway,
    the files of these names are removed: an image without its truth, or beside an earlier
    phantom's truth, is no phantom.
    """
    fmt = str(fmt).lstrip(".")
    if fmt not in FORMATS:
        raise InputError(f"unknown phantom format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = make_out_dir(out_dir)
    names = (f"phantom.{fmt}", f"truth_labels.{fmt}", "truth.json")
    try:
        paths = {"image": write_volume(phantom.volume, out / names[0])}
        if phantom.labels is not None:
            paths["labels"] = write_label_map(phantom.labels, phantom.volume, out / names[1])
        paths["truth"] = write_json(out / names[2], phantom.truth_dict())
    except BaseException:
        for name in names:
            with contextlib.suppress(OSError):
                (out / name).unlink(missing_ok=True)
        raise
    return paths
