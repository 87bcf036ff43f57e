"""Open report.html in headless Chromium: figures decoded, one table row per deposit, sorting
works, the screenshot is not blank; --report pdf prints it."""

from __future__ import annotations

import html
import json
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from calcinosis.report.html import chromium_args, find_chromium
from calcinosis.report.tables import read_lesions_csv

pytestmark = pytest.mark.chromium

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/setup-chromium.sh "
                                    "installs Debian's chromium where apt-get can run)")

# Runs after the page's own script: reports what the browser rendered, then sorts the table by volume.
PROBE = """
<script>
window.addEventListener('load', function(){
  var imgs = Array.prototype.map.call(document.images, function(i){
    return [i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width]; });
  var table = document.getElementById('lesions');
  var th = Array.prototype.find.call(table.tHead.rows[0].cells, function(c){ return c.title === 'volume_mm3'; });
  var col = th.cellIndex, first = function(){ return table.tBodies[0].rows[0].cells[col].textContent; };
  th.click(); var asc = first(); th.click(); var desc = first();
  var probe = document.createElement('pre'); probe.id = 'probe';
  probe.textContent = JSON.stringify({images: imgs, rows: table.tBodies[0].rows.length, asc: asc, desc: desc,
                                      scrollWidth: document.documentElement.scrollWidth});
  document.body.appendChild(probe);
});
</script>
"""


def _run(args, timeout=90):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@needs_chromium
def test_report_renders_in_chromium(runs, tmp_path):
    out = runs["default"]
    rows = read_lesions_csv(out / "lesions.csv")
    page = tmp_path / "report.html"
    page.write_text((out / "report.html").read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                    encoding="utf-8")
    base = chromium_args(CHROMIUM, str(tmp_path / "profile"))
    dom = _run([*base, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()])
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.DOTALL)
    assert found, "the probe script did not run"
    probe = json.loads(html.unescape(found.group(1)))
    assert len(probe["images"]) == 4
    for complete, width, height, shown in probe["images"]:
        assert complete and width > 0 and height > 0 and shown > 0
    assert probe["rows"] == len(rows)
    volumes = sorted(r["volume_mm3"] for r in rows)
    assert float(probe["asc"]) == volumes[0] and float(probe["desc"]) == volumes[-1]

    shot = tmp_path / "shot.png"
    res = _run([*base, "--hide-scrollbars", "--window-size=1280,2000", f"--screenshot={shot}",
                (out / "report.html").resolve().as_uri()])
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    rgb = np.asarray(Image.open(shot).convert("L"), float)
    assert rgb.shape == (2000, 1280)
    assert rgb.std() > 20  # text, tables and figures, not a blank page
    assert (rgb < 128).mean() > 0.02


@needs_chromium
def test_report_pdf_from_the_cli(dicom_series, tmp_path):
    from calcinosis.cli import main

    out = tmp_path / "out"
    assert main(["analyze", str(dicom_series[0]), "--out", str(out), "--report", "pdf"]) == 0
    data = (out / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and len(re.findall(rb"/Type\s*/Page\b", data)) >= 1
    assert re.search(rb"/MediaBox\s*\[\s*0\s+0\s+59[45]\.\d*\s+84[12]\.", data)  # A4 portrait
    assert (out / "report.html").exists() and (out / "summary.json").exists()
    assert not [p.name for p in out.iterdir() if ".part" in p.name]  # no temporary left
