"""Write a work-up: ``workup.json`` and a self-contained ``workup.html``.

The HTML has no scripts and no external resources (no ``href``/``src`` to any URL);
every text that comes from the case file is escaped. :func:`render_workup_section_html`
returns one ``<section>`` with its own scoped style, for embedding in the CT report.
"""

from __future__ import annotations

import contextlib
import os
from html import escape
from pathlib import Path

from calcinosis.atomic import write_json, write_text
from calcinosis.errors import InputError
from calcinosis.outputs import prepare_out_dir
from calcinosis.clinical.workup import Workup

_STYLE = """
.calcinosis-workup { font-family: system-ui, sans-serif; color: #222; line-height: 1.4; max-width: 62rem; }
.calcinosis-workup h2 { border-bottom: 2px solid #446; padding-bottom: .2rem; }
.calcinosis-workup h3 { margin-top: 1.4rem; color: #335; }
.calcinosis-workup table { border-collapse: collapse; margin: .4rem 0 1rem; width: 100%; }
.calcinosis-workup th, .calcinosis-workup td { border: 1px solid #ccd; padding: .25rem .45rem;
  text-align: left; vertical-align: top; font-size: .92rem; }
.calcinosis-workup th { background: #eef; }
.calcinosis-workup .disclaimer { background: #fff4d6; border: 1px solid #e0b84c; padding: .5rem .8rem; }
.calcinosis-workup .primary { font-size: 1.25rem; font-weight: 600; }
.calcinosis-workup .note { color: #555; font-style: italic; }
.calcinosis-workup .caution { color: #8a1c1c; }
.calcinosis-workup .tried { color: #1c5a8a; }
.calcinosis-workup .refs { font-size: .85rem; color: #444; }
"""


#: The files a work-up writes into its folder.
WORKUP_FILES = ("workup.json", "workup.html")


def write_workup(
    workup: Workup,
    out_dir: str | os.PathLike[str],
    inputs: tuple[str | os.PathLike[str] | None, ...] = (),
) -> dict[str, Path]:
    """Write ``workup.html`` and ``workup.json`` into ``out_dir`` (created if needed), atomically;
    when the second fails, the first is removed.

    A folder where either would replace an input (the case file, which is ``workup.case.source``,
    or the files in ``inputs``, such as the imaging summary) is refused: a case file saved as
    ``workup.json`` (JSON is YAML) was removed as an earlier run's output and overwritten.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out must be a folder, and this is a file")
    prepare_out_dir(out, workup.case.source, *inputs, writes=WORKUP_FILES)
    # workup.json last, an earlier run's files removed first (its workup.json first): a run
    # that failed (or Ctrl-C) after the first file left workup.json without its page, or this
    # run's beside an earlier one.
    for name in WORKUP_FILES:
        old = out / name
        try:
            if old.is_file() or old.is_symlink():
                old.unlink()
        except OSError as exc:
            raise InputError(f"cannot remove {old} of an earlier run: {exc.strerror or exc}; check the "
                             "output folder's permissions or choose another --out") from None
    html = write_text(out / "workup.html", render_workup_html(workup))
    try:
        return {"json": write_json(out / "workup.json", workup.to_dict()), "html": html}
    except BaseException:
        with contextlib.suppress(OSError):
            html.unlink()
        raise


def render_workup_html(workup: Workup) -> str:
    """A complete, self-contained HTML page for the work-up."""
    title = f"Calcinosis work-up: {workup.case.case_id}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head><body>\n"
        + render_workup_section_html(workup)
        + "\n</body></html>\n"
    )


def render_workup_section_html(workup: Workup) -> str:
    """The work-up as one ``<section class="calcinosis-workup">`` (with a scoped ``<style>``)."""
    d = workup.to_dict()
    c = d["classification"]
    parts = [f'<section class="calcinosis-workup"><style>{_STYLE}</style>']
    parts.append(f"<h2>Clinical work-up: {_e(d['case_id'])}</h2>")
    parts.append(f'<p class="disclaimer"><strong>{_e(d["disclaimer"])}</strong></p>')
    for warning in d["warnings"]:
        parts.append(f'<p class="note">Case file: {_e(warning)}</p>')

    parts.append("<h3>Case</h3>" + _case_table(workup))
    parts.append("<h3>Classification</h3>")
    parts.append(
        f'<p class="primary">Most likely type: {_e(c["primary"])} <small>({_e(c["confidence"])})</small></p>'
        f"<p>{_e(c['primary_description'])}</p>"
    )
    if c["tied_with"]:
        parts.append(
            '<p class="note"><strong>Undecided: '
            + _e(", ".join([c["primary"], *c["tied_with"]]))
            + " have the same score</strong>; the first is shown only because of a fixed order. "
            "The suggested tests below say what would decide.</p>"
        )
    parts.append(_table(["type", "score"], [[t, _num(s)] for t, s in c["scores"].items()]))
    parts.append(
        "<p>Imaging summary used as evidence.</p>"
        if c["imaging_used"]
        else '<p class="note">No imaging summary given; the deposit distribution was not used.</p>'
    )
    rows = []
    for r in c["reasons"]:
        evidence = "<br>".join(
            _e(
                f"{e['field']}: {e['value']}"
                + (f" (reference {e['reference_range']})" if e["reference_range"] else "")
            )
            for e in r["evidence"]
        )
        text = _e(r["text"]) + (
            f'<br><span class="note">{_e(r["note"])}</span>' if "note" in r else ""
        )
        weights = ", ".join(f"{t} {w:+g}" for t, w in r["weights"].items())
        rows.append([_e(r["rule"]), text, evidence, _e(weights)])
    parts.append(
        "<h3>Reasons</h3>"
        + _table(["rule", "reason", "facts from the case", "adds"], rows, raw=True)
    )
    if c["missing"]:
        rows = [[_e(m["description"]), _e(m["primary_would_be"])] for m in c["missing"]]
        parts.append(
            "<h3>Missing facts that would change the answer</h3>"
            + _table(["if", "the type would be"], rows, raw=True)
        )
    if d["suggested_tests"]:
        rows = [
            [_e(t["name"]), _e(t["why"]), "yes" if t["would_change_answer"] else "no"]
            for t in d["suggested_tests"]
        ]
        parts.append(
            "<h3>Suggested tests</h3>"
            + _table(["test", "why", "could change the type"], rows, raw=True)
        )

    parts.append("<h3>Laboratory results</h3>")
    rows = [
        [
            _lab_field(lab),
            _lab_value(lab),
            lab["reference_range"] or "",
            lab["status"] or "not interpreted",
        ]
        for lab in d["labs"]
    ]
    parts.append(
        _table(["lab", "value", "reference range", "status"], rows)
        if rows
        else "<p>No labs given.</p>"
    )
    product = d["calcium_phosphate_product"]
    if product is not None:
        parts.append(
            f"<p>Calcium x phosphate product: {_num(product['value'])} mg&sup2;/dL&sup2; "
            f"(threshold {_num(product['threshold'])}).</p>"
        )

    ssc = d["ssc_criteria"]
    if ssc is not None:
        parts.append("<h3>2013 ACR/EULAR classification criteria for systemic sclerosis</h3>")
        rows = [
            [
                i["item"].replace("_", " "),
                str(i["points"]),
                _present(i["present"]),
                str(i["counted_points"]),
                i["source"],
            ]
            for i in ssc["items"]
        ]
        parts.append(_table(["item", "points", "present", "counted", "source"], rows))
        verdict = "classified as systemic sclerosis" if ssc["classified"] else "not classified"
        if not ssc.get("applicable", True):
            verdict = _not_applicable(ssc["excluded_by"])
        parts.append(
            f"<p><strong>Total {ssc['score']} (threshold {ssc['threshold']}): {verdict}.</strong> "
            f"Unknown items: {_e(', '.join(ssc['unknown_items']) or 'none')}; highest reachable total "
            f"{ssc['max_possible_score']}; the unknown items "
            f"{'could' if ssc['unknown_could_change_classification'] else 'could not'} "
            "change the classification.</p>"
            f'<p class="note">{_e(ssc["note"])}</p><p class="refs">{_e(ssc["citation"])}</p>'
        )
    iim = d.get("iim_criteria")
    if iim is not None:
        parts.append(
            "<h3>2017 EULAR/ACR classification criteria for idiopathic inflammatory myopathies</h3>"
        )
        model = "with muscle biopsy" if iim["model"] == "with_biopsy" else "without muscle biopsy"
        rows = [
            [
                i["item"].replace("_", " "),
                _num(i["points"]),
                _present(i["present"]),
                _num(i["counted_points"]),
                i["source"],
            ]
            for i in iim["items"]
        ]
        parts.append(_table(["item", f"points ({model})", "present", "counted", "source"], rows))
        verdict = (
            f"classified as {iim['category']} IIM"
            if iim["classified"]
            else f"not classified ({iim['not_classified_because']})"
            if iim["not_classified_because"]
            else "not classified"
        )
        if not iim["applicable"]:
            verdict = _not_applicable(iim["excluded_by"])
        bound = (
            f"a lower bound: unknown items ({_e(', '.join(iim['unknown_items']))}) count 0; "
            f"highest reachable total {_num(iim['max_possible_score'])}; the unknown items "
            f"{'could' if iim['unknown_could_change_classification'] else 'could not'} "
            "change the classification"
            if iim["score_is_lower_bound"]
            else "every item is known"
        )
        others = "; ".join(
            f"{'with' if s['model'] == 'with_biopsy' else 'without'} biopsy: "
            f"{_num(s['score'])} ({s['category']}, {_e(s['probability_band'])})"
            for s in iim["scores"]
        )
        parts.append(
            f"<p><strong>Score {_num(iim['score'])} {model} ({iim['category']}, probability "
            f"{_e(iim['probability_band'])}): {_e(verdict)}.</strong> The score is {bound}. "
            f"Scores: {others}.</p>"
            f'<p class="note">{_e(iim["probability_note"])} {_e(iim["subgroup_note"])}</p>'
            f'<p class="note">{_e(iim["note"])} Shown because: {_e(iim["shown_because"])}.</p>'
            f'<p class="refs">{_e(iim["citation"])}</p>'
        )
    if d["crest_features"]:
        rows = [
            [f["feature"].replace("_", " "), f["status"], f["source"]] for f in d["crest_features"]
        ]
        parts.append("<h3>CREST features</h3>" + _table(["feature", "status", "source"], rows))

    if d["imaging"] is not None:
        img = d["imaging"]
        parts.append("<h3>Imaging</h3>")
        if img["pattern"]:
            parts.append(f"<p>{_e(img['pattern'])}</p>")
        rows = [[k.replace("_", " "), _present(v)] for k, v in img["facts"].items()]
        parts.append(_table(["pattern", "seen"], rows))
        for note in img["notes"]:
            parts.append(f'<p class="note">{_e(note)}</p>')

    parts.append(f"<h3>Treatment options for {_e(c['primary'])} calcinosis</h3>")
    for t in d["treatments"]:
        parts.append(f"<h4>{_e(t['name'])}</h4><p>{_e(t['mechanism'])}</p>")
        parts.append(
            f"<p>Evidence: level {_e(t['evidence']['level'])} ({_e(t['evidence']['description'])}; "
            f"{_e(t['evidence']['scale'])}).</p>"
        )
        if "remark" in t:
            parts.append(f"<p>{_e(t['remark'])}</p>")
        parts.extend(f'<p class="tried">{_e(x)}</p>' for x in t["already_tried"])
        parts.extend(f'<p class="caution">Caution: {_e(x)}</p>' for x in t["cautions"])
        parts.append(
            '<ul class="refs">' + "".join(f"<li>{_e(r)}</li>" for r in t["references"]) + "</ul>"
        )
    if d["other_treatments_tried"]:
        tried = ", ".join(d["other_treatments_tried"])
        parts.append(
            f'<p class="tried">Also tried for calcinosis (not listed above): {_e(tried)}</p>'
        )
    parts.append(
        f'<p class="refs">Pathway: {_e(c["pathway"])}<br>Treatments: {_e(d["treatments_source"])}<br>'
        f"{_e(d['software'])}, work-up schema {_e(d['schema_version'])}</p>"
    )
    parts.append("</section>")
    return "\n".join(parts)


def _case_table(workup: Workup) -> str:
    case = workup.case
    p = case.patient
    patient = (
        ", ".join(
            x
            for x in (
                f"{p.age_years:g} years" if p.age_years is not None else "",
                p.sex or "",
                "pregnant" if p.pregnant else "",
            )
            if x
        )
        or "not stated"
    )
    meds = [
        m.name
        + "".join(
            f", {x}"
            for x in (
                m.route,
                m.dose,
                f"for {m.indication}" if m.indication else None,
                {True: "current", False: "past", None: None}[m.current],
            )
            if x
        )
        for m in case.medications or ()
    ]
    skin = case.skin
    skin_text = ", ".join(
        f"{name} {_present(value)}"
        for name, value in (
            ("necrosis", skin.necrosis),
            ("ulceration", skin.ulceration),
            ("retiform purpura", skin.retiform_purpura),
        )
    )
    rows = [
        ["patient", patient],
        ["diagnoses", "; ".join(case.diagnoses) if case.diagnoses is not None else "not stated"],
        ["medications", "; ".join(meds) if case.medications is not None else "not stated"],
        ["symptoms", "; ".join(case.symptoms) if case.symptoms is not None else "not stated"],
        ["skin", skin_text + (f"; sites: {', '.join(skin.sites)}" if skin.sites else "")],
        ["imaging done", ", ".join(case.imaging.modalities) or "not stated"],
    ]
    return _table(["", ""], rows)


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _not_applicable(excluded_by: list[str]) -> str:
    """The verdict of a criteria set that an exclusion stops (SSc 2013, IIM 2017)."""
    return (
        "the criteria do not apply ("
        + ", ".join(e.replace("_", " ") for e in excluded_by)
        + "), so the patient is not classified whatever the score"
    )


def _num(value: float) -> str:
    return f"{value:g}"


def _present(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[value]


def _lab_field(lab: dict) -> str:
    if lab.get("derived_from"):
        return f"{lab['field']} (estimated from {lab['derived_from']})"
    return lab["field"]


def _lab_value(lab: dict) -> str:
    if lab["value"] is not None:
        value = _num(lab["value"]) if isinstance(lab["value"], int | float) else str(lab["value"])
        return f"{value} {lab['unit']}" if lab["unit"] else value
    return f"{lab['flag']} (flag)"


def _table(header: list[str], rows: list[list[str]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then the caller escaped them)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell if raw else _e(cell)}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
