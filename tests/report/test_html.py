"""report.html: self-contained, patient-free, one table row per deposit, figures embedded."""

from __future__ import annotations

import base64
import io
import re
from html import escape
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from calcinosis import __version__
from calcinosis.report.html import render_report
from calcinosis.report.summary import EXCLUSION_REASONS, build_summary
from calcinosis.report.tables import read_lesions_csv

EXTERNAL = re.compile(r"(?i)\b(?:https?|ftp|wss?|file):|(?:src|href|action)\s*=\s*(?![\"']?(?:data:|#))|url\(|@import|//[a-z0-9.-]+\.[a-z]{2,}")


class _Page(HTMLParser):
    """Collects the lesion table's rows and the images of a page."""

    def __init__(self):
        super().__init__()
        self.images, self.rows, self._in_lesions, self._in_body, self._row = [], [], False, False, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        elif tag == "table" and a.get("id") == "lesions":
            self._in_lesions = True
        elif tag == "tbody" and self._in_lesions:
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._row.append("")

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "table" and self._in_lesions:
            self._in_lesions = self._in_body = False


def _page(text):
    page = _Page()
    page.feed(text)
    return page


def test_report_is_self_contained_and_complete(runs):
    out = runs["default"]
    text = (out / "report.html").read_text(encoding="utf-8")
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", text)
    for bad in ('<img src="https://x.org/a.png">', "<a href=page.html>", "<link href='s.css'>",
                "background:url(x.png)", '<script src="//cdn.example.com/x.js">'):
        assert EXTERNAL.search(bad), bad  # the check itself can fail
    assert EXTERNAL.findall(without_images) == []
    page = _page(text)
    rows = read_lesions_csv(out / "lesions.csv")
    assert len(page.rows) == len(rows) > 0
    assert [int(r[0]) for r in page.rows] == [r["lesion_id"] for r in rows]
    assert [float(r[4]) for r in page.rows] == [r["volume_mm3"] for r in rows]
    assert len(page.images) == 4  # body map, frontal MIP, lateral MIP, thumbnails
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,") and img["alt"]
        png = Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1])))
        assert png.format == "PNG" and min(png.size) > 50
    assert "2000-01-01" in text and f"calcinosis {__version__}" in text  # study date, software
    assert "<script>" in text and "aria-sort" in text  # the table sorts in the page itself


def test_keep_identifiers_report_names_the_patient(runs, patient):
    text = (runs["keep"] / "report.html").read_text(encoding="utf-8")
    assert patient[0] in text and patient[1] in text


def test_extra_sections_and_figure_checks(analysis):
    summary = build_summary(analysis)
    text = render_report(summary, analysis.lesions, extra_sections=["<h2>Work-up</h2><p>xyz-marker</p>"])
    assert "xyz-marker" in text and text.index("xyz-marker") > text.index('id=lesions')
    with pytest.raises(ValueError, match="data: URIs"):
        render_report(summary, analysis.lesions, figures=[("map", "https://example.org/a.png")])


def test_empty_analysis_renders(tmp_path):
    from calcinosis.outputs import write_analysis
    from calcinosis.pipeline import analyze
    from calcinosis.volume import Volume

    air = Volume(np.full((6, 24, 24), -1000, np.int16), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), {})
    paths = write_analysis(analyze(air), tmp_path)
    text = paths["report"].read_text(encoding="utf-8")
    page = _page(text)
    assert page.rows == [] and len(page.images) == 3  # no thumbnails without deposits
    assert "no body found" in text
    # a sentence, not an empty table that looks like an error
    assert "No calcified finding in this scan" in text and "id=lesions" not in text


def test_report_pdf_without_chromium_is_a_clear_error(runs, dicom_series, tmp_path, monkeypatch, capsys):
    import calcinosis.report.html as report_html
    from calcinosis.cli import main

    monkeypatch.setattr(report_html, "find_chromium", lambda: None)
    rc = main(["analyze", str(dicom_series[0]), "--out", str(tmp_path / "out"), "--report", "pdf"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "Chromium" in err and "--report html" in err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_headline_is_the_calcinosis_burden(analysis):
    # The cards lead with the calcinosis burden; a vessel-wall calcification is counted beside
    # it as not calcinosis, and the findings of high confidence are counted apart.
    from dataclasses import replace

    assert len(analysis.lesions) >= 2
    first = replace(analysis.lesions[0], compartment="vascular")
    second = replace(analysis.lesions[1], confidence="low", flags="split_from_bone")
    changed = replace(analysis, lesions=(first, second) + tuple(analysis.lesions[2:]))
    summary = build_summary(changed)
    cards = dict((k, v) for v, k in re.findall(r"<div class=v>(.*?)</div><div class=k>(.*?)</div>",
                                               render_report(summary, changed.lesions)))
    n = len(analysis.lesions)
    assert cards["calcinosis deposits"] == str(n - 1)
    assert cards["vascular / visceral (not calcinosis)"] == "1"
    sure = sum(les.confidence == "high" for les in changed.lesions if les.compartment != "vascular")
    assert cards["of high confidence"] == str(sure) and sure < n - 1
    volume = sum(les.volume_mm3 for les in changed.lesions[1:])
    sd = np.sqrt(sum(les.volume_sd_mm3 ** 2 for les in changed.lesions[1:]))
    assert sd > 0  # a noisy phantom: the burden is given with the noise's SD
    stated = summary["calcinosis_totals"]["volume_sd_mm3"]
    assert stated == pytest.approx(sd, abs=0.01)
    assert cards["calcinosis volume"] == f"{volume:.1f} ± {stated:.1f} mm³"
    # What the SDs rest on is said beside the image noise.
    structure = summary["image"]["noise_structure"]
    said = (f"one voxel {structure['voxel_sd_hu']:g} HU; correlated noise widens the variance of a "
            f"sum up to {structure['sum_factor']:g}×")
    assert said in render_report(summary, changed.lesions)


def _with(analysis, **changes):
    from dataclasses import replace

    return replace(analysis, **changes)


def test_high_confidence_burden_is_on_the_page(analysis):
    # The conservative burden (findings flagged for a check left out) is shown, not only counted.
    from dataclasses import replace

    second = replace(analysis.lesions[1], confidence="low", flags="split_from_bone")
    changed = _with(analysis, lesions=(analysis.lesions[0], second) + tuple(analysis.lesions[2:]))
    summary = build_summary(changed)
    high = summary["calcinosis_totals_high_confidence"]
    assert high["volume_mm3"] < summary["calcinosis_totals"]["volume_mm3"]
    text = render_report(summary, changed.lesions)
    card = re.search(r"<div class=k>of high confidence</div><div class=s>(.*?)</div>", text)
    assert card, "the high-confidence card gives no burden"
    assert card.group(1) == (f"{high['volume_mm3']:.1f} ± {high['volume_sd_mm3']:.1f} mm³ · "
                             f"{high['mass_mg']:.2f} ± {high['mass_sd_mg']:.2f} mg")


def test_group_tables_say_when_they_count_more_than_calcinosis(analysis):
    from dataclasses import replace

    plain = render_report(build_summary(analysis), analysis.lesions)
    assert "The tables below count" not in plain  # all findings are calcinosis: nothing to say
    vascular = (replace(analysis.lesions[0], compartment="vascular"),) + tuple(analysis.lesions[1:])
    summary = build_summary(_with(analysis, lesions=vascular))
    text = render_report(summary, vascular)
    n = len(vascular)
    assert f"The tables below count all {n} findings: the {n - 1} of calcinosis and the 1 vascular" in text
    # the side table's counts add up to every finding, not to the calcinosis cards
    side = re.search(r"<th class=t>side</th>.*?<tbody>(.*?)</tbody>", text).group(1)
    assert sum(int(c) for c in re.findall(r"<td class=t>[^<]*</td><td>(\d+)</td>", side)) == n
    none = tuple(replace(les, compartment="visceral") for les in analysis.lesions)
    text = render_report(build_summary(_with(analysis, lesions=none)), none)
    assert f"The tables below count the {n} vascular or visceral calcifications: not calcinosis." in text


def test_limits_of_this_scan_are_said_on_the_page(analysis):
    # The warnings are announced under the header (they are listed after a long table); every
    # kind of excluded object says what it is; vascular / visceral is said not to be calcinosis.
    said = ("slices of 5 mm, pixels of 0.6 mm: deposits touching bone are not split from it",
            "metal in the field of view (excluded; streaks near it may hide or mimic deposits)")
    summary = build_summary(_with(analysis, warnings=said))
    summary["excluded"]["counts"] = {"external_metal": 2, "table": 1}
    summary["excluded"]["reasons"] = {k: EXCLUSION_REASONS[k] for k in ("external_metal", "table")}
    text = render_report(summary, analysis.lesions)
    notice = text.index("2 warnings about what this analysis could not do")
    assert notice < text.index("<h2>Burden</h2>") and 'href="#warnings"' in text and "id=warnings" in text
    for warning in said:
        assert escape(warning) in text
    assert f"external metal: 2 <span class=muted>({escape(EXCLUSION_REASONS['external_metal'])})</span>" in text
    assert escape(summary["excluded"]["skeletal_and_visceral_policy"]) in text
    assert "used here by analogy" in text and "not the accuracy" in text
    quiet = render_report(build_summary(_with(analysis, warnings=())), analysis.lesions)
    assert "warnings about what" not in quiet and "warning about what" not in quiet
