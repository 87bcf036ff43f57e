"""A study's files as the viewer meets them on disk: damaged, mismatched, redone while it
runs, stored flipped. Each gives the right picture or one clear message, never a 500."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import SimpleITK as sitk
from PIL import Image

from calcinosis.web import Catalog, create_app
from calcinosis.web.catalog import StudySource


def _copy(phantoms, folder):
    shutil.copytree(phantoms.study_dir, folder)
    return folder


def _relabel(folder, mapping):
    """Give the deposits new ids in both the label map and lesions.csv (a consistent output)."""
    img = sitk.ReadImage(str(folder / "lesions.nii.gz"))
    arr = sitk.GetArrayFromImage(img)
    new = np.zeros_like(arr)
    for old, value in mapping.items():
        new[arr == old] = value
    out = sitk.GetImageFromArray(new)
    out.CopyInformation(img)
    sitk.WriteImage(out, str(folder / "lesions.nii.gz"))
    with open(folder / "lesions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["lesion_id"] = str(mapping[int(row["lesion_id"])])
    with open(folder / "lesions.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: int(r["lesion_id"])))


def _ids(body):
    rgb = np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)
    return rgb[..., 0] + 256 * rgb[..., 1]



def test_a_study_redone_while_serving_shows_its_new_outlines(phantoms, tmp_path, start_server):
    # The slice cache was keyed by study and slice alone: after a redo the detail listed the
    # new deposits while the outlines came from the cache, with the old ids; and the page's
    # slice URLs were the same (the browser keeps them 10 minutes).
    folder = _copy(phantoms, tmp_path / "study")
    srv = start_server(create_app(Catalog(studies={"s": StudySource("s", folder)})))
    before = json.loads(srv.get("/api/studies/s")[2])
    les = before["lesions"][0]
    vz, n = les["view_index"][2], len(before["lesions"])
    old = _ids(srv.get(f"/api/studies/s/labels/axial/{vz}.png")[2])
    assert les["lesion_id"] in np.unique(old)
    mapping = {i: n + 1 - i for i in range(1, n + 1)}  # the same deposits, numbered backwards
    _relabel(folder, mapping)
    (folder / "summary.json").write_text((folder / "summary.json").read_text() + " ")  # written last
    after = json.loads(srv.get("/api/studies/s")[2])
    assert after["version"] != before["version"]
    new = _ids(srv.get(f"/api/studies/s/labels/axial/{vz}.png?v={after['version']}")[2])
    renamed = mapping[les["lesion_id"]]
    assert renamed != les["lesion_id"]
    assert np.array_equal(new == renamed, old == les["lesion_id"])
