"""The viewer's LPS-aligned view of any grid, slice extraction, and the ``serve`` command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from calcinosis.cli import main
from calcinosis.web.orientation import ViewOrientation, view_to_lps_affine
from calcinosis.web.render import Plane, extract_slice, window_to_uint8

# direction columns = LPS direction of index axes x, y, z
DIRECTIONS = {
    "identity": np.eye(3),
    "feet_first": np.diag([1.0, 1.0, -1.0]),
    "flipped_xy": np.diag([-1.0, -1.0, 1.0]),
    "sagittal_acquisition": np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
}


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_view_axes_run_left_posterior_superior(name):
    direction = DIRECTIONS[name]
    shape_zyx = (5, 7, 9)
    spacing, origin = (0.5, 0.7, 2.0), (10.0, -20.0, 30.0)
    idx = np.indices(shape_zyx)  # index grids in array order z, y, x
    # The LPS position of every voxel, per axis, as the array "image".
    ijk = np.stack([idx[2], idx[1], idx[0]], axis=-1) * np.array(spacing)
    lps = ijk @ direction.T + np.array(origin)
    ori = ViewOrientation.of(direction, shape_zyx)
    affine = view_to_lps_affine(ori, spacing, origin, direction)
    for axis_lps, view_axis in ((0, 2), (1, 1), (2, 0)):  # L along vx, P along vy, S along vz
        view = ori.view(lps[..., axis_lps])
        assert np.all(np.diff(view, axis=view_axis) > 0), (name, axis_lps)
    # to_view and the affine agree with the view array.
    view_l = ori.view(lps[..., 0])
    for k, j, i in ((0, 0, 0), (4, 6, 8), (2, 3, 1)):
        v = ori.to_view(np.array([i, j, k], float)).round().astype(int)
        p = affine @ np.array([*v, 1.0])
        assert np.allclose(p[:3], lps[k, j, i])
        assert view_l[v[2], v[1], v[0]] == lps[k, j, i, 0]


def test_display_orientation_of_the_planes():
    view = np.zeros((4, 5, 6), np.int16)  # [vz, vy, vx]
    view[3, 1, 2] = 7  # superior slice, anterior row, patient-right column
    assert extract_slice(view, Plane.AXIAL, 3)[1, 2] == 7
    assert extract_slice(view, Plane.CORONAL, 1)[0, 2] == 7  # superior at the top
    assert extract_slice(view, Plane.SAGITTAL, 2)[0, 1] == 7


def test_window_maps_level_and_width():
    hu = np.array([-1000, -160, 40, 240, 3000])
    out = window_to_uint8(hu, 40.0, 400.0)
    assert out[0] == 0 and out[-1] == 255 and out[3] == 255 and abs(int(out[2]) - 128) <= 1


@pytest.mark.parametrize("argv, fragment", [
    (["serve"], "nothing to serve"),
    (["serve", "--study", "/nonexistent/folder"], "not an analyze output folder"),
    (["serve", "--compare", "/nonexistent/folder"], "not a compare output folder"),
    (["serve", "--db", "/nonexistent/registry.sqlite"], "no registry"),
    (["serve", "--image", "x.nii.gz", "--db", "y"], "apply to --study"),
    (["serve", "--port", "70000", "--study", "."], "not a TCP port"),
])
def test_bad_arguments_exit_2_with_one_line(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_serve_study_image_given_missing(phantoms, capsys):
    assert main(["serve", "--study", str(phantoms.study_dir), "--image", "/nonexistent/ct.nii.gz"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_serve_command_serves_a_study_on_loopback(phantoms):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "calcinosis.cli", "serve", "--study", str(phantoms.study_dir),
         "--image", str(phantoms.image), "--port", str(port), "--token"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)(/study/[\w-]+)\?token=([\w-]+)", line)
        assert m and int(m.group(1)) == port, line
        path, token = m.group(2), m.group(3)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}?token={token}", timeout=5) as r:
                    assert r.status == 200 and b"viewer.js" in r.read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5)
        assert err.value.code == 401
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/studies/{path.rsplit('/', 1)[1]}",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert len(json.loads(r.read())["lesions"]) == len(phantoms.truth.deposits)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_on_a_port_in_use_exits_2_with_one_line(phantoms, capsys):
    # uvicorn printed its own error after the viewer's URL and exited with 3.
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--study", str(phantoms.study_dir), "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert "calcinosis viewer" not in captured.out
    err = captured.err.strip()
    assert f"cannot listen on 127.0.0.1 port {port}" in err and len(err.splitlines()) == 1
