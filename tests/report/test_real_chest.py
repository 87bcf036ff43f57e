"""report.html of the real chest CT (../shared/data): no soft-tissue calcinosis, aortic and
cartilage calcification, a necklace. The page must read as a chest without calcinosis."""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

import pytest

REAL_CT = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-ct" / "chest-ct-lung1.nrrd"


@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    from calcinosis.cli import main

    if not REAL_CT.exists():
        pytest.skip(f"real chest CT not found at {REAL_CT} (../shared/data is beside the repository in CI)")
    out = tmp_path_factory.mktemp("chest")
    assert main(["analyze", str(REAL_CT), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return summary, (out / "report.html").read_text(encoding="utf-8")


def test_chest_without_calcinosis_reads_as_such(chest):
    summary, text = chest
    assert summary["calcinosis_totals"]["count"] == 0 and summary["totals"]["count"] > 0
    cards = dict((k, v) for v, k in re.findall(r"<div class=v>(.*?)</div><div class=k>(.*?)</div>", text))
    assert cards["calcinosis deposits"] == "0"
    assert cards["vascular / visceral (not calcinosis)"] == str(summary["totals"]["count"])
    # the tables by side and region count only vessel and organ calcification here: the page says so
    n = summary["totals"]["count"]
    assert f"The tables below count the {n} vascular or visceral calcifications: not calcinosis." in text
    assert "not calcinosis (compartment in the table)" in text  # the thumbnails are of those too
    assert not re.search(r"(?i)thigh|both (?:legs|arms)", re.sub(r"data:image/png;base64,[^\"]+", "", text))
    # the necklace is named for what it is, the thick slices and the unsplit bone are announced on top
    assert "external_metal" in summary["excluded"]["counts"]
    assert escape(summary["excluded"]["reasons"]["external_metal"]) in text
    top = text[: text.index("<h2>Burden</h2>")]
    assert f"{len(summary['warnings'])} warnings about what this analysis could not do" in top
    assert any("thick slices" in w for w in summary["warnings"])
