"""HTTP tests of the viewer server: every endpoint, bad ids, traversal, token, read-only, no identifiers."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from calcinosis.web import Catalog, ServerSettings, create_app
from calcinosis.web.catalog import comparison_from_folder, study_from_folder


@pytest.fixture(scope="module")
def server(phantoms, start_server):
    cmp = comparison_from_folder(phantoms.compare_dir)
    single = study_from_folder(phantoms.study_dir, image=phantoms.image, key="single")
    catalog = Catalog(registry_url=phantoms.registry_url,
                      studies={"single": single, cmp.baseline.key: cmp.baseline, cmp.followup.key: cmp.followup},
                      comparisons={cmp.key: cmp})
    return start_server(create_app(catalog))


def get_json(server, path):
    status, _, body = server.get(path)
    assert status == 200, (path, status, body[:200])
    return json.loads(body)


def test_list_shows_registry_and_folder_studies_with_failure_reasons(server, phantoms):
    data = get_json(server, "/api/studies")
    by_status = {}
    for row in data["studies"]:
        by_status.setdefault(row["status"], []).append(row)
    assert len(by_status["done"]) == 3  # two from the registry, one folder
    (failed,) = by_status["failed"]
    assert "broken" in failed["key"] and "truncated" in failed["error"]  # the reason is shown
    assert "inputs/" not in failed["error"] and "the input" in failed["error"]  # without the path
    done = [r for r in by_status["done"] if r["key"] != "single"]
    assert all(r["lesion_count"] >= 1 and r["mass_mg"] > 0 for r in done)
    assert [c["key"] for c in data["comparisons"]] == ["compare_a"]
    text = json.dumps(data)
    assert str(phantoms.image) not in text and "input_path" not in text  # no paths leak


def test_study_detail_geometry_and_jump_points_land_on_the_deposits(server, phantoms):
    info = get_json(server, "/api/studies/single")
    assert info["has_image"] is True
    truth = phantoms.truth
    assert info["shape_zyx"] == list(truth.volume.shape)
    assert len(info["lesions"]) == len(truth.deposits)
    # The phantom's grid is identity-oriented: the view index is the array index (x, y, z).
    affine = np.array(info["view_to_lps"])
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(phantoms.study_dir / "lesions.nii.gz")))
    for les in info["lesions"]:
        vx, vy, vz = les["view_index"]
        assert labels[vz, vy, vx] == les["lesion_id"]
        lps = affine @ np.array([vx, vy, vz, 1.0])
        assert np.linalg.norm(lps[:3] - [les["x_mm"], les["y_mm"], les["z_mm"]]) < 4.0
    assert np.allclose(np.array(info["lps_to_view"]) @ affine, np.eye(4), atol=1e-5)


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_slices_are_pngs_of_the_right_size_and_window(server, phantoms, plane):
    info = get_json(server, "/api/studies/single")
    nz, ny, nx = info["shape_zyx"]
    les = info["lesions"][0]
    vx, vy, vz = les["view_index"]
    index, size = {"axial": (vz, (nx, ny)), "coronal": (vy, (nx, nz)), "sagittal": (vx, (ny, nz))}[plane]
    status, headers, soft = server.get(f"/api/studies/single/image/{plane}/{index}.png?preset=soft")
    assert status == 200 and headers["content-type"] == "image/png"
    _, _, bone = server.get(f"/api/studies/single/image/{plane}/{index}.png?preset=bone")
    soft_img, bone_img = (np.asarray(Image.open(io.BytesIO(b))) for b in (soft, bone))
    assert soft_img.shape == bone_img.shape == (size[1], size[0])
    # Fat (-100 HU) is grey in the soft-tissue window and near black in the bone window.
    assert soft_img.mean() > bone_img.mean() + 10
    _, _, lab = server.get(f"/api/studies/single/labels/{plane}/{index}.png")
    rgb = np.asarray(Image.open(io.BytesIO(lab)).convert("RGB")).astype(int)
    ids = rgb[..., 0] + 256 * rgb[..., 1]
    assert les["lesion_id"] in set(np.unique(ids))
    # The deposit pixel is where the view index says, in the display orientation.
    row, col = {"axial": (vy, vx), "coronal": (nz - 1 - vz, vx), "sagittal": (nz - 1 - vz, vy)}[plane]
    assert ids[row, col] == les["lesion_id"]


def test_same_slice_twice_comes_from_the_cache(server):
    cache = server.app.state.cache
    path = "/api/studies/single/image/axial/3.png?preset=bone"
    first = server.get(path)[2]
    hits = cache.hits
    assert server.get(path)[2] == first and cache.hits == hits + 1


def test_window_level_numbers_override_the_preset(server):
    _, _, narrow = server.get("/api/studies/single/image/axial/3.png?level=-100&width=2")
    img = np.asarray(Image.open(io.BytesIO(narrow)))
    assert set(np.unique(img)) <= {0, 127, 128, 255} or (img.min() == 0 and img.max() == 255)


def test_comparison_detail_has_registration_and_status_of_each_deposit(server):
    cmp = get_json(server, "/api/comparisons/compare_a")
    assert cmp["baseline_key"] == "compare_a-baseline" and cmp["followup_key"] == "compare_a-followup"
    assert len(cmp["registration"]["matrix"]) == 9 and len(cmp["registration"]["offset_mm"]) == 3
    statuses = set(cmp["baseline_status"].values()) | set(cmp["followup_status"].values())
    assert "resolved" in statuses  # one deposit was removed from the follow-up phantom
    base = get_json(server, "/api/studies/compare_a-baseline")
    assert set(cmp["baseline_status"]) == {str(les["lesion_id"]) for les in base["lesions"]}


def test_pages_and_assets(server):
    for path in ("/", "/study/single", "/compare/compare_a", "/static/viewer.js", "/static/app.css"):
        status, headers, body = server.get(path)
        assert status == 200, path
        assert "default-src 'self'" in headers["content-security-policy"]
    status, headers, body = server.get("/api/studies/single/report")
    assert status == 200 and b"<html" in body.lower() and "sandbox" in headers["content-security-policy"]
    # Nothing is loaded from the internet: no absolute http(s) URL in any page or script.
    for name in ("index.html", "study.html", "compare.html", "viewer.js", "study.js", "list.js", "compare.js"):
        _, _, body = server.get(f"/static/{name}")
        assert b"http://" not in body and b"https://" not in body, name


BAD_PATHS = [
    "/api/studies/nope", "/study/nope", "/compare/nope", "/api/comparisons/nope",
    "/api/studies/nope/image/axial/0.png", "/api/studies/nope/labels/axial/0.png", "/api/studies/nope/report",
    "/api/studies/single/image/axial/100000.png", "/api/studies/single/image/axial/-1.png",
    "/api/studies/single/image/oblique/0.png", "/api/studies/single/image/axial/zero.png",
    "/api/studies/single/image/axial/0.png?preset=lung", "/api/studies/single/image/axial/0.png?width=0",
    "/api/studies/single/labels/coronal/100000.png",
    # traversal: plain, encoded, double-encoded, absolute
    "/api/studies/../../etc/passwd", "/api/studies/%2e%2e/image/axial/0.png", "/api/studies/%2e%2e%2fsingle",
    "/api/studies/..%2f..%2fetc%2fpasswd", "/api/studies/%252e%252e%252fetc/report", "/study/%2e%2e",
    "/static/../app.py", "/static/%2e%2e%2fapp.py", "/static/..%2f..%2fcli.py", "/static/%2fetc%2fpasswd",
    "/api/studies//etc/passwd", "/api/studies/%2Fetc%2Fpasswd/report", "/compare/%2e%2e%2f%2e%2e",
    "/static/summary.json", "/api/studies/single/summary.json", "/api/studies/single/lesions.nii.gz",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_ids_and_traversal_are_clean_4xx(server, path):
    status, headers, body = server.get(path)
    assert 400 <= status < 500, (path, status)
    assert headers["content-type"].startswith("application/json")
    assert b"Traceback" not in body and b"root:" not in body


def test_absolute_url_in_request_line_is_refused(server):
    status, _, body = server.get("/etc/passwd")
    assert status == 404 and b"root:" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_read_only(server, method):
    status, _, _ = server.get("/api/studies", method=method)
    assert status == 405


def test_token_is_required_and_then_carried_by_a_cookie(phantoms, start_server):
    single = study_from_folder(phantoms.study_dir, image=phantoms.image, key="single")
    srv = start_server(create_app(Catalog(studies={"single": single}), ServerSettings(token="s3cret-token")))
    assert srv.get("/api/studies")[0] == 401
    assert srv.get("/api/studies?token=wrong")[0] == 401
    assert srv.get("/static/viewer.js")[0] == 401
    status, headers, _ = srv.get("/?token=s3cret-token")
    assert status == 200 and "calcinosis_token=s3cret-token" in headers["set-cookie"]
    assert "httponly" in headers["set-cookie"].lower()
    assert srv.get("/api/studies", headers={"Cookie": "calcinosis_token=s3cret-token"})[0] == 200
    assert srv.get("/api/studies", headers={"Authorization": "Bearer s3cret-token"})[0] == 200


def test_foreign_host_header_is_refused_on_loopback(phantoms, start_server):
    single = study_from_folder(phantoms.study_dir, image=phantoms.image, key="single")
    srv = start_server(create_app(Catalog(studies={"single": single}),
                                ServerSettings(allowed_hosts=("127.0.0.1", "localhost"))))
    assert srv.get("/api/studies", headers={"Host": "evil.example"})[0] == 400
    assert srv.get("/api/studies", headers={"Host": f"127.0.0.1:{srv.port}"})[0] == 200


def test_no_identifiers_unless_kept(phantoms, tmp_path, start_server):
    """A DICOM study analysed without --keep-identifiers shows no name or id; with it, it does."""
    from calcinosis.config import AnalysisConfig
    from calcinosis.ct_cli import run_analysis
    from calcinosis.io import write_dicom_series

    small = phantoms.truth.volume
    sub = small.with_array(np.ascontiguousarray(small.array[:6]))
    series = write_dicom_series(sub, tmp_path / "dicom", patient_name="Doe^Jane", patient_id="PID-4711")
    folder = series[0].parent
    catalog = {}
    for keep in (False, True):
        out = tmp_path / f"out_{keep}"
        run_analysis(folder, out, AnalysisConfig(), keep_identifiers=keep)
        catalog[f"k{int(keep)}"] = study_from_folder(out, image=folder, key=f"k{int(keep)}")
    srv = start_server(create_app(Catalog(studies=catalog)))
    hidden = srv.get("/api/studies/k0")[2] + srv.get("/api/studies")[2]
    assert b"Doe" not in hidden and b"PID-4711" not in hidden
    assert srv.get("/api/studies/k0/image/axial/0.png")[0] == 200  # the image itself is shown
    assert b"PID-4711" in srv.get("/api/studies/k1")[2]


def test_a_truncated_image_given_to_the_viewer_is_not_shown(phantoms, tmp_path):
    # It was read as it was: its missing slices shown as flat grey, with has_image true.
    from calcinosis.web.studydata import read_image_array

    cut = tmp_path / "cut.nii.gz"
    data = phantoms.image.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    note = read_image_array(study_from_folder(phantoms.study_dir, image=cut, key="cut"))
    assert isinstance(note, str) and "truncated" in note and "outlines only" in note
    assert str(tmp_path) not in note  # no path reaches the browser (names can hold a patient's)
    volume = read_image_array(study_from_folder(phantoms.study_dir, image=phantoms.image, key="whole"))
    assert volume.array.shape == phantoms.truth.volume.shape and volume.array.dtype == np.int16


def test_a_study_redone_or_deleted_since_it_was_loaded_is_loaded_again(phantoms, tmp_path):
    # The store kept the first load by key: the detail view showed the old result (or a deleted
    # one) while the list showed the new state.
    import shutil

    from calcinosis.errors import InputError
    from calcinosis.web.studydata import StudyStore

    folder = tmp_path / "study"
    shutil.copytree(phantoms.study_dir, folder)
    source = study_from_folder(folder, key="s")
    store = StudyStore()
    try:
        first = store.handle(source)
        n = len(first.meta().lesions)
        assert store.handle(source) is first  # unchanged: the same load
        # Redone without deposits: an empty label map and table, then the summary.
        empty = sitk.ReadImage(str(folder / "lesions.nii.gz")) * 0
        sitk.WriteImage(empty, str(folder / "lesions.nii.gz"))
        (folder / "lesions.csv").write_text((folder / "lesions.csv").read_text().splitlines()[0] + "\n")
        (folder / "summary.json").write_text((folder / "summary.json").read_text() + " ")
        again = store.handle(source)
        assert again is not first and len(again.meta().lesions) == 0 < n
        shutil.rmtree(folder)
        with pytest.raises(InputError, match="no complete analysis output"):
            store.handle(source).meta()
    finally:
        store.close()
