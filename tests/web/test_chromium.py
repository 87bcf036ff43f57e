"""End-to-end: the viewer in headless Chromium (DevTools protocol).

Open the list, open a phantom study, click a lesion row, check that the viewer shows
that deposit's slice with its outline, take a screenshot and check it is not blank,
check the comparison page renders with both viewers and coloured outlines.
"""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from calcinosis.web import Catalog, create_app
from calcinosis.web.catalog import comparison_from_folder

pytestmark = pytest.mark.chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def site(phantoms, start_server):
    cmp = comparison_from_folder(phantoms.compare_dir, baseline_image=phantoms.baseline_image,
                                 followup_image=phantoms.followup_image)
    catalog = Catalog(registry_url=phantoms.registry_url,
                      studies={cmp.baseline.key: cmp.baseline, cmp.followup.key: cmp.followup},
                      comparisons={cmp.key: cmp})
    return start_server(create_app(catalog))


@pytest.fixture(scope="module")
def browser(tmp_path_factory, browser_class):
    b = browser_class(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def canvas_pixels(browser, index=0):
    """RGB pixels of viewer ``index``'s canvas, read back from the page."""
    url = browser.eval(f"window.calcinosisViewers[{index}].canvas.toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


@needs_chromium
def test_list_study_click_lesion_shows_its_outline(site, browser, phantoms):
    browser.goto(site.base + "/")
    browser.wait_for("document.body.dataset.loaded === '1'")
    rows = browser.eval("[...document.querySelectorAll('#studies tbody tr')].map(r => [r.dataset.key, r.cells[1].textContent, r.cells[6].textContent])")
    statuses = sorted(r[1] for r in rows)
    assert statuses == ["done", "done", "failed"]
    failed = next(r for r in rows if r[1] == "failed")
    assert failed[2]  # the failure reason is on the list
    # Search narrows the list.
    browser.eval("const s = document.getElementById('search'); s.value = 'followup'; s.dispatchEvent(new Event('input')); 1")
    assert browser.eval("document.querySelectorAll('#studies tbody tr').length") == 1
    browser.eval("const s2 = document.getElementById('search'); s2.value = ''; s2.dispatchEvent(new Event('input')); 1")

    key = phantoms.study_dir.name
    browser.eval(f"document.querySelector('#studies tbody tr[data-key=\"{key}\"] a').click(); 1")
    browser.wait_for("location.pathname.startsWith('/study/') && document.body.dataset.loaded === '1'")
    browser.wait_for("document.getElementById('viewer').dataset.ready === '1'")
    assert browser.eval("document.getElementById('pattern').textContent.length") > 10
    info = json.loads(browser.eval(f"fetch('/api/studies/{key}').then(r => r.text())"))
    lesions = info["lesions"]
    assert browser.eval("document.querySelectorAll('#lesions tbody tr').length") == len(lesions)
    blank_first = canvas_pixels(browser)

    # Pick the deposit whose slice is farthest from the starting (middle) slice: the jump must move.
    mid = info["shape_zyx"][0] // 2
    target = max(lesions, key=lambda les: abs(les["view_index"][2] - mid))
    browser.eval(f"document.querySelector('#lesions tbody tr[data-lesion=\"{target['lesion_id']}\"]').click(); 1")
    browser.wait_for(f"document.getElementById('viewer').dataset.slice === '{target['view_index'][2]}' && "
                     "document.getElementById('viewer').dataset.ready === '1'")
    outlined = browser.eval("document.getElementById('viewer').dataset.outlined").split(",")
    assert str(target["lesion_id"]) in outlined
    # The selected deposit's outline (cyan) is drawn at the centre of the canvas.
    px = canvas_pixels(browser)
    h, w, _ = px.shape
    cyan = (px[..., 0] < 60) & (px[..., 1] > 180) & (px[..., 2] > 200)
    ys, xs = np.nonzero(cyan)
    assert len(ys) > 10
    assert abs(np.median(xs) - w / 2) < w / 8 and abs(np.median(ys) - h / 2) < h / 8
    assert not np.array_equal(px, blank_first)
    # Every slice asked for names the study's version: the browser keeps slices 10 minutes, and
    # showed a study redone on disk with its old outlines under the same URL.
    slices = browser.eval("performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('.png'))")
    assert slices and all(f"v={info['version']}" in url for url in slices), slices[:3]

    # Bone window and the other planes keep the deposit in view.
    for plane, axis in (("coronal", 1), ("sagittal", 0)):
        browser.eval(f"window.calcinosisViewers[0].setPlane('{plane}'); 1")
        browser.wait_for(f"document.getElementById('viewer').dataset.plane === '{plane}' && "
                         f"document.getElementById('viewer').dataset.slice === '{target['view_index'][axis]}' && "
                         "document.getElementById('viewer').dataset.ready === '1'")
        assert str(target["lesion_id"]) in browser.eval("document.getElementById('viewer').dataset.outlined").split(",")

    shot = np.asarray(Image.open(io.BytesIO(browser.screenshot())).convert("L"))
    assert shot.std() > 20 and len(np.unique(shot)) > 50  # not blank


@needs_chromium
def test_comparison_page_renders_linked_viewers(site, browser):
    browser.goto(site.base + "/compare/compare_a")
    browser.wait_for("document.body.dataset.loaded === '1' && window.calcinosisViewers.length === 2 && "
                     "window.calcinosisViewers.every(v => v.root.dataset.ready === '1')")
    assert "Overall" in browser.eval("document.getElementById('overall').textContent")
    assert browser.eval("window.calcinosisViewers.every(v => v.img !== null && v.info.has_image)")
    n_rows = browser.eval("document.querySelectorAll('#changes tbody tr').length")
    assert n_rows >= 4
    # Click the resolved deposit: the baseline viewer goes to it, the follow-up to the same place.
    browser.eval("[...document.querySelectorAll('#changes tbody tr')].find(r => r.cells[1].textContent.includes('resolved')).click(); 1")
    browser.wait_for("window.calcinosisViewers.every(v => v.root.dataset.ready === '1') && "
                     "window.calcinosisViewers[0].selected !== null")
    base, follow = browser.eval("window.calcinosisViewers.map(v => v.point)")
    # Same phantom anatomy on the same grid: the registration maps the point nearly onto itself.
    assert np.abs(np.array(base) - np.array(follow)).max() <= 3
    # Linked scrolling: moving the baseline moves the follow-up.
    browser.eval("window.calcinosisViewers[0].setSlice(window.calcinosisViewers[0].sliceIndex() + 2); 1")
    browser.wait_for("window.calcinosisViewers.every(v => v.root.dataset.ready === '1')")
    base2, follow2 = browser.eval("window.calcinosisViewers.map(v => v.point)")
    assert base2[2] == base[2] + 2 and abs(follow2[2] - follow[2] - 2) <= 1
    shot = np.asarray(Image.open(io.BytesIO(browser.screenshot())).convert("RGB")).astype(int)
    assert shot.std() > 20
    # The resolved deposit is drawn in its status colour (blue) on the baseline.
    px = canvas_pixels(browser, 0).astype(int)
    browser.eval("window.calcinosisViewers[0].setSlice(window.calcinosisViewers[0].sliceIndex() - 2); 1")
    browser.wait_for("window.calcinosisViewers.every(v => v.root.dataset.ready === '1')")
    px = canvas_pixels(browser, 0).astype(int)
    selected_or_status = ((px[..., 2] > 200) & (px[..., 0] < 80)).sum()
    assert selected_or_status > 10
