"""Fixtures for the web viewer: phantom studies, a registry, a comparison, a live server, Chromium.

The studies are small thigh phantoms (a few seconds each to analyse), built once per
session. The server is real uvicorn on 127.0.0.1 and a free port, in a thread.
Chromium is driven through the DevTools protocol (websocket-client).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Phantoms:
    study_dir: Path  # analyze output of the baseline phantom
    image: Path  # its CT (NIfTI)
    truth: object  # the PhantomCT
    compare_dir: Path  # compare output (baseline/, followup/ inside)
    baseline_image: Path
    followup_image: Path
    registry_url: str  # a batch registry: two done studies and one failed


def _specs(phantom, *, drop: int | None = None, grow: int | None = None):
    from calcinosis.phantom import DepositSpec

    out = []
    for i, d in enumerate(phantom.deposits):
        if i == drop:
            continue
        diameter = d.equivalent_diameter_mm * (1.5 if i == grow else 1.0)
        out.append(DepositSpec(tuple(d.centroid_lps), float(d.density_hu), equivalent_diameter_mm=diameter))
    return out


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory) -> Phantoms:
    from calcinosis.cohort.batch import BatchSettings, run_batch
    from calcinosis.cohort.registry import database_url
    from calcinosis.follow.cli import run_compare
    from calcinosis.io import write_volume
    from calcinosis.phantom import make_ct_phantom

    root = tmp_path_factory.mktemp("web")
    kw = dict(seed=3, length_mm=30.0, pixel_mm=1.2)
    first = make_ct_phantom("thighs", n_deposits=4, **kw)
    base = make_ct_phantom("thighs", deposits=_specs(first), **kw)
    follow = make_ct_phantom("thighs", deposits=_specs(first, drop=0, grow=1), **kw)
    inputs = root / "inputs"
    base_img = write_volume(base.volume, inputs / "patient_a" / "baseline.nii.gz")
    follow_img = write_volume(follow.volume, inputs / "patient_a" / "followup.nii.gz")
    (inputs / "broken").mkdir()
    (inputs / "broken" / "cut.nii.gz").write_bytes(base_img.read_bytes()[:400])
    out = root / "batch"
    report = run_batch(inputs, out, settings=BatchSettings(processes=False, n_workers=1))
    assert len(report.done) == 2 and len(report.failed) == 1
    cmp_dir = root / "compare_a"
    run_compare(base_img, follow_img, cmp_dir)
    study_key = next(k for k in report.done if "baseline" in k)
    return Phantoms(study_dir=out / study_key, image=base_img, truth=base, compare_dir=cmp_dir,
                    baseline_image=base_img, followup_image=follow_img,
                    registry_url=database_url(out / "registry.sqlite"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread; ``get(path)`` sends the raw path."""

    def __init__(self, app) -> None:
        import uvicorn

        self.app = app
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, *, method: str = "GET", headers: dict | None = None):
        """(status, headers, body) of a request whose path is sent exactly as given."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True,
                            skip_host="Host" in (headers or {}))
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.endheaders()
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def start_server():
    """``start_server(app) -> LiveServer``; every server started is stopped at the end."""
    started: list[LiveServer] = []

    def start(app) -> LiveServer:
        srv = LiveServer(app)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


class Browser:
    """Headless Chromium with one page, driven through the DevTools protocol."""

    def __init__(self, chromium: str, profile: Path) -> None:
        import urllib.request

        import websocket

        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"JS error in {expression!r}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def wait_for(self, expression: str, timeout_s: float = 30.0):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = self.eval(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            time.sleep(0.05)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def browser_class():
    """The :class:`Browser` driver (a fixture, as test modules cannot import conftest)."""
    return Browser
