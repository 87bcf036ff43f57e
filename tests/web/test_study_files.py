"""A study's files as the viewer meets them on disk: damaged, mismatched, redone while it
runs, stored flipped. Each gives the right picture or one clear message, never a 500."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from calcinosis.web import Catalog, create_app
from calcinosis.web.catalog import StudySource, study_from_folder


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


def _damage(kind, folder):
    labels = folder / "lesions.nii.gz"
    if kind == "truncated":
        data = labels.read_bytes()
        labels.write_bytes(data[: len(data) // 2])
    elif kind == "not_nifti":
        labels.write_bytes(b"not an image at all\n" * 50)
    elif kind == "two_d":
        sitk.WriteImage(sitk.Image(12, 10, sitk.sitkUInt8), str(labels))
    elif kind == "float":
        sitk.WriteImage(sitk.Cast(sitk.ReadImage(str(labels)), sitk.sitkFloat32) * 1.5, str(labels))
    elif kind == "ids_shifted":  # the label map of another run: id n is deposit n + 1
        img = sitk.ReadImage(str(labels))
        arr = sitk.GetArrayFromImage(img).astype(np.uint16)
        arr[arr > 0] -= 1
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(img)
        sitk.WriteImage(out, str(labels))
    elif kind == "extra_row":
        lines = (folder / "lesions.csv").read_text().splitlines()
        lines.append("99," + lines[-1].split(",", 1)[1])
        (folder / "lesions.csv").write_text("\n".join(lines) + "\n")
    elif kind == "no_csv":
        (folder / "lesions.csv").unlink()
    elif kind == "summary_list":
        (folder / "summary.json").write_text("[1, 2]\n")


DAMAGE = {
    "truncated": "lesions.nii.gz cannot be read (lesions.nii.gz is truncated",
    "not_nifti": "lesions.nii.gz cannot be read (not a NIfTI image)",
    "two_d": "a 2-D image of size 12 x 10, not a 3-D label map",
    "float": "are not lesion ids",
    "ids_shifted": "lesions.nii.gz does not match its lesions.csv",
    "extra_row": "lesion 99 is not in the label map",
    "no_csv": "has no lesions.csv",
    "summary_list": "summary.json cannot be read (not a JSON object)",
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_or_mismatched_output_is_a_clear_404(phantoms, tmp_path, start_server, kind):
    # Before: a 2-D label map or a summary.json that is a list gave a 500 (the list page too);
    # a truncated label map was read as zeros and a shifted one drew each outline on another
    # deposit, with no word; a missing lesions.csv showed no deposits; and the message of an
    # unreadable one carried SimpleITK's C++ banner and the folder's path.
    folder = _copy(phantoms, tmp_path / "Doe_Jane_study")
    _damage(kind, folder)
    good = study_from_folder(phantoms.study_dir, key="good")
    srv = start_server(create_app(Catalog(studies={"bad": StudySource("bad", folder), "good": good})))
    for path in ("/api/studies/bad", "/api/studies/bad/labels/axial/3.png"):
        status, headers, body = srv.get(path)
        assert status == 404 and headers["content-type"].startswith("application/json"), (path, status, body)
        detail = json.loads(body)["detail"]
        assert DAMAGE[kind] in detail and "run calcinosis analyze again" in detail, detail
        assert "Doe_Jane" not in detail and "sitk::ERROR" not in detail and "\n" not in detail
    status, _, body = srv.get("/api/studies")  # the other studies are still listed
    assert status == 200
    rows = {row["key"]: row for row in json.loads(body)["studies"]}
    assert rows["good"]["status"] == "done"
    if kind == "summary_list":
        assert rows["bad"]["status"] == "failed" and "summary.json" in rows["bad"]["error"]


def test_a_summary_holding_nan_is_shown_with_null(phantoms, tmp_path, start_server):
    # json.loads reads NaN; the detail view then failed to encode it (a 500).
    folder = _copy(phantoms, tmp_path / "study")
    doc = json.loads((folder / "summary.json").read_text())
    doc["run_time_s"] = float("nan")
    (folder / "summary.json").write_text(json.dumps(doc))
    srv = start_server(create_app(Catalog(studies={"s": StudySource("s", folder)})))
    status, _, body = srv.get("/api/studies/s")
    assert status == 200 and json.loads(body)["summary"]["run_time_s"] is None


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


def _tie_study(folder, *, feet_first):
    """A 6-slice study whose one deposit lies evenly on slices 2 and 3 (two voxels each) with
    its centroid in slice 3 (as lesions.csv's partial-volume weighting puts it), stored head
    first or with the slices reversed; and its CT."""
    folder.mkdir()
    spacing, origin = (1.0, 1.0, 2.0), (-5.0, -4.0, 10.0)
    labels = np.zeros((6, 8, 10), np.uint8)
    labels[2:4, 4, 5:7] = 1
    hu = np.full(labels.shape, 40, np.int16) + np.arange(6, dtype=np.int16)[:, None, None] * 30
    hu[:, :, 0] = -1000  # air beside the body
    hu[labels > 0] = 600
    direction = np.eye(3)
    if feet_first:
        labels, hu = labels[::-1].copy(), hu[::-1].copy()
        origin = (origin[0], origin[1], origin[2] + 5 * spacing[2])
        direction = np.diag([1.0, 1.0, -1.0])
    for array, path in ((labels, folder / "lesions.nii.gz"), (hu, folder / "ct.nii.gz")):
        img = sitk.GetImageFromArray(array)
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
        img.SetDirection(tuple(direction.ravel()))
        sitk.WriteImage(img, str(path))
    (folder / "lesions.csv").write_text("lesion_id,x_mm,y_mm,z_mm,n_voxels,confidence\n"
                                        "1,0.5,0.0,15.6,4,high\n")  # z 15.6 mm: slice 2.8
    (folder / "summary.json").write_text(json.dumps({"totals": {"count": 1}}))
    return StudySource(folder.name, folder, folder / "ct.nii.gz")


def test_jump_goes_to_the_slice_of_the_centroid_whichever_way_the_slices_are_stored(tmp_path, start_server):
    # The jump took the deposit's voxel nearest its voxels' mean, the first in storage order
    # on a tie: a deposit lying evenly on two slices was shown on the slice away from its
    # centroid when stored head first, on the right one when stored feet first.
    catalog = Catalog(studies={k: _tie_study(tmp_path / k, feet_first=k == "feet_first")
                               for k in ("head_first", "feet_first")})
    srv = start_server(create_app(catalog))
    for key in catalog.studies:
        info = json.loads(srv.get(f"/api/studies/{key}")[2])
        (les,) = info["lesions"]
        centroid = np.array(info["lps_to_view"]) @ [les["x_mm"], les["y_mm"], les["z_mm"], 1.0]
        assert np.allclose(centroid[:3], [5.5, 4.0, 2.8])
        assert les["view_index"] in ([5, 4, 3], [6, 4, 3]), (key, les["view_index"])
        # The CT and its outline on that slice: the deposit at the same pixels.
        ids = _ids(srv.get(f"/api/studies/{key}/labels/axial/3.png")[2])
        ct = np.asarray(Image.open(io.BytesIO(srv.get(f"/api/studies/{key}/image/axial/3.png?preset=bone")[2])))
        assert np.array_equal(ids == 1, ct == ct.max()) and (ids == 1).sum() == 2
        assert ids[4, 5] == 1 and ids[4, 6] == 1


@pytest.mark.parametrize("kind", ["doc_list", "bad_id", "no_changes"])
def test_a_damaged_comparison_is_a_clear_404_and_the_list_still_loads(phantoms, tmp_path, start_server, kind):
    # A comparison.json that is not an object made the study list a 500 (every study hidden)
    # and the comparison a 500; so did a lesion id in changes.csv that is not a number.
    from calcinosis.web.catalog import comparison_from_folder

    folder = tmp_path / "cmp"
    shutil.copytree(phantoms.compare_dir, folder)
    cmp = comparison_from_folder(folder)
    if kind == "doc_list":
        (folder / "comparison.json").write_text("[]\n")
    elif kind == "bad_id":
        with open(folder / "changes.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        rows[0]["baseline_id"] = "one"
        with open(folder / "changes.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        (folder / "changes.csv").unlink()
    srv = start_server(create_app(Catalog(studies={cmp.baseline.key: cmp.baseline, cmp.followup.key: cmp.followup},
                                          comparisons={cmp.key: cmp})))
    status, _, body = srv.get("/api/studies")
    assert status == 200 and [c["key"] for c in json.loads(body)["comparisons"]] == [cmp.key]
    status, headers, body = srv.get(f"/api/comparisons/{cmp.key}")
    assert status == 404 and headers["content-type"].startswith("application/json")
    detail = json.loads(body)["detail"]
    assert "cannot be read" in detail and str(tmp_path) not in detail, detail


def test_the_ct_is_shown_only_where_the_label_map_lies(phantoms, tmp_path, start_server):
    # The CT given to the viewer was checked by shape and spacing alone: the same scan stored
    # mirrored was shown mirrored under the outlines, and another scan of the same matrix
    # (the other visit, a table 30 mm further) under outlines that were not its own.
    img = sitk.ReadImage(str(phantoms.image))
    mirrored = sitk.GetImageFromArray(sitk.GetArrayFromImage(img)[:, :, ::-1].copy())
    mirrored.SetSpacing(img.GetSpacing())
    mirrored.SetOrigin(img.TransformIndexToPhysicalPoint((img.GetSize()[0] - 1, 0, 0)))
    mirrored.SetDirection(tuple((np.asarray(img.GetDirection()).reshape(3, 3) @ np.diag([-1.0, 1.0, 1.0])).ravel()))
    sitk.WriteImage(mirrored, str(tmp_path / "mirrored.nii.gz"))
    shifted = sitk.Image(img)
    shifted.SetOrigin(tuple(np.add(img.GetOrigin(), (0.0, 0.0, 30.0))))
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    catalog = Catalog(studies={k: study_from_folder(phantoms.study_dir, image=image, key=k) for k, image in (
        ("own", phantoms.image), ("mirrored", tmp_path / "mirrored.nii.gz"), ("shifted", tmp_path / "shifted.nii.gz"))})
    srv = start_server(create_app(catalog))
    for plane in ("axial", "coronal", "sagittal"):
        own, mirror = (srv.get(f"/api/studies/{k}/image/{plane}/7.png")[2] for k in ("own", "mirrored"))
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(own))), np.asarray(Image.open(io.BytesIO(mirror))))
    status, _, body = srv.get("/api/studies/shifted/image/axial/7.png")
    assert status == 404 and "30.0 mm away from the analysed grid" in json.loads(body)["detail"]
    assert srv.get("/api/studies/shifted/labels/axial/7.png")[0] == 200  # outlines only
