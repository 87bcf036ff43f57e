"""The structured case file read by ``calcinosis workup``: frozen dataclasses and the loader.

The format is defined by the example files in ``shared/cases/``. Unknown facts are
``null`` or absent; unknown top-level fields are kept out and warned about (one that is a
slip of a known field's name, ``lab`` for ``labs``, is refused); anything malformed raises :class:`~calcinosis.errors.InputError` naming the field.

A case file is small, plain YAML: YAML aliases (``*name``, and so ``<<: *name`` merges) are
refused, as the format never needs one and a few lines of nested aliases expand to
gigabytes; so are files over :data:`MAX_CASE_FILE_BYTES` and nesting deeper than
:data:`MAX_NESTING`. Numbers a living patient cannot have (an age of 4400 years, a
creatinine of 0) are refused rather than interpreted.
"""

from __future__ import annotations

import datetime
import difflib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from calcinosis.paths import check_regular_file
from calcinosis.clinical.inputs import exponent_hint, key_text, quote
from calcinosis.clinical.knowledge import Knowledge, load_knowledge
from calcinosis.clinical.text import negated_statement
from calcinosis.clinical.labs import (
    LabResult,
    albumin_corrected_calcium,
    estimated_egfr_result,
    parse_lab,
)
from calcinosis.errors import InputError

TOP_LEVEL_FIELDS = (
    "case_id", "patient", "diagnoses", "medications", "history", "symptoms",
    "skin", "labs", "ssc_criteria", "imaging", "iim_criteria",
)  # fmt: skip
HISTORY_BOOL_FIELDS = (
    "chronic_kidney_disease", "dialysis", "hyperparathyroidism", "malignancy",
    "calcium_or_phosphate_infusion", "vitamin_d_excess",
)  # fmt: skip
MEDICATION_FIELDS = ("name", "route", "duration_years", "current", "dose", "for")
#: The 2013 SSc criteria's exclusion "skin thickening that spares the fingers", and the items
#: that are skin thickening of the fingers: stated together they contradict each other, and the
#: exclusion alone would silently unclassify the patient.
SSC_FINGERS_SPARED = "skin_thickening_sparing_fingers"
SSC_FINGER_THICKENING = ("skin_thickening_proximal_to_mcp", "sclerodactyly")
#: Text that says a history field is not known (read as null) ...
NOT_KNOWN_TEXTS = ("unknown", "not known", "n/a", "na", "?", "unclear", "not stated",
                   "not reported", "not recorded", "uncertain")  # fmt: skip
#: ... and text that says there is none (read as false). "No ..." and "none ..." statements too
#: (text.negated_statement).
NOTHING_TEXTS = ("", "none", "no", "nil", "absent", "negative", "false", "not present", "-")
#: Similarity (difflib's ratio) from which an unknown top-level key is taken for a slip of a
#: known one: 'lab' (0.86), 'medication', 'diagnosis', 'symptom'; not 'notes' or 'source'.
NEAR_MISS_RATIO = 0.8
#: Oldest age (years) accepted: above the oldest person documented (122); 4400 is a typo for 44.
MAX_AGE_YEARS = 130.0
#: Slack (years) when a medication's duration is compared with the age: both are often rounded.
DURATION_AGE_SLACK_YEARS = 1.0
#: Largest case file read: the examples are about 2 kB; anything near this is not a case file.
MAX_CASE_FILE_BYTES = 1024 * 1024
#: Deepest nesting of collections in a case file. The format nests 4 deep
#: (``labs.calcium.reference_range``); far deeper input would exhaust Python's recursion limit.
MAX_NESTING = 20
#: Longest integer written in a case file. Python refuses to read one of over 4300 decimal
#: digits, and one written in hex can be too long to print; no value needs more than a few.
MAX_INT_CHARS = 100


class CaseFormatWarning(UserWarning):
    """A case file has something the work-up ignores (an unknown field)."""


@dataclass(frozen=True)
class Patient:
    age_years: float | None = None
    sex: str | None = None
    #: Optional extension of the format; ``None`` when not stated.
    pregnant: bool | None = None


@dataclass(frozen=True)
class Medication:
    name: str
    route: str | None = None
    duration_years: float | None = None
    current: bool | None = None
    dose: str | None = None
    #: What it is given for (``for:`` in the file), e.g. ``calcinosis``.
    indication: str | None = None


@dataclass(frozen=True)
class History:
    #: Name of the connective tissue disease, ``False`` for none, ``None`` unknown.
    connective_tissue_disease: str | bool | None = None
    chronic_kidney_disease: bool | None = None
    dialysis: bool | None = None
    hyperparathyroidism: bool | None = None
    malignancy: bool | None = None
    #: What was done at the site ("injections"), ``False`` for nothing, ``None`` unknown.
    trauma_or_procedure_at_site: str | bool | None = None
    calcium_or_phosphate_infusion: bool | None = None
    vitamin_d_excess: bool | None = None
    surgery_for_calcinosis: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Skin:
    necrosis: bool | None = None
    ulceration: bool | None = None
    retiform_purpura: bool | None = None
    sites: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImagingInfo:
    modalities: tuple[str, ...] = ()
    #: Path of a ``summary.json`` from ``calcinosis analyze``, resolved against the case file's folder.
    summary: str | None = None


@dataclass(frozen=True)
class IimCriteriaInput:
    """The optional ``iim_criteria`` mapping (2017 EULAR/ACR myositis criteria)."""

    #: Items as ``(item, True|False|None)`` pairs, in the order given.
    items: tuple[tuple[str, bool | None], ...] = ()
    #: Age (years) at the first symptom assumed to be related to the disease.
    age_at_onset_years: float | None = None
    #: Whether a muscle biopsy was done; ``None``: inferred from the biopsy items given.
    muscle_biopsy_done: bool | None = None


@dataclass(frozen=True)
class Case:
    """One patient's structured case. ``None`` always means *not known*."""

    case_id: str
    patient: Patient
    diagnoses: tuple[str, ...] | None
    medications: tuple[Medication, ...] | None
    history: History
    symptoms: tuple[str, ...] | None
    skin: Skin
    labs: tuple[LabResult, ...]
    #: 2013 ACR/EULAR items as ``(item, True|False|None)`` pairs, or ``None`` when not given.
    ssc_criteria: tuple[tuple[str, bool | None], ...] | None
    imaging: ImagingInfo
    source: str | None = None
    warnings: tuple[str, ...] = ()
    #: 2017 EULAR/ACR myositis items (optional extension of the format), or ``None`` when not given.
    iim_criteria: IimCriteriaInput | None = None

    def lab(self, name: str) -> LabResult | None:
        """The interpreted result of a catalogued lab (e.g. ``"calcium"``), or None."""
        for result in self.labs:
            if result.name == name:
                return result
        return None


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a case file may not contain (an alias, a key given twice, ...)."""


class _CaseLoader(yaml.SafeLoader):
    """YAML's safe loader with the limits of a case file.

    It refuses a key given twice in one mapping: PyYAML keeps the last silently (a lab entered
    twice, a flag corrected below the first: which one is meant?). It refuses aliases: the
    format needs none, and each expansion copies the aliased value (nine lines of aliases of
    aliases make a list of 400 million items). It stops at :data:`MAX_NESTING` levels, before
    the recursion of the composer does, and refuses an integer longer than :data:`MAX_INT_CHARS`.
    """

    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(None, None, f"the alias *{key_text(event.anchor)} is not allowed in a case "
                           "file; write the value out in full", event.start_mark)  # fmt: skip
        if self._depth >= MAX_NESTING:
            raise _Refused(None, None, f"the case file is nested more than {MAX_NESTING} levels deep",
                           event.start_mark)  # fmt: skip
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node):
        if len(node.value) > MAX_INT_CHARS:
            raise _Refused(None, None, f"the number {quote(node.value)} has too many digits",
                           node.start_mark)  # fmt: skip
        return super().construct_yaml_int(node)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class says so
                break
            if duplicate:
                raise _Refused(None, None, f"the key {quote(key)} is given twice in one mapping; keep one",
                               key_node.start_mark)  # fmt: skip
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_CaseLoader.add_constructor("tag:yaml.org,2002:int", _CaseLoader.construct_yaml_int)


def load_case(path: str | os.PathLike[str], knowledge: Knowledge | None = None) -> Case:
    """Read and validate a case file (YAML).

    Raises
    ------
    InputError
        When the file is missing, is not valid YAML (the message gives the line),
        or a field is malformed (the message names the field).
    """
    path = Path(path)
    size = check_regular_file(path, "case file", "the case file must be a file")
    if size > MAX_CASE_FILE_BYTES:
        raise InputError(
            f"{path}: {size} bytes is too big for a case file (at most {MAX_CASE_FILE_BYTES} "
            "bytes); is it the right file?"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: case file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: the case file is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the case file ({exc})") from None
    try:
        raw = yaml.load(text, Loader=_CaseLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = (
            f"line {mark.line + 1}, column {mark.column + 1}"
            if mark is not None
            else "unknown line"
        )
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, _Refused):
            raise InputError(f"{path}: at {where}: {problem}") from None
        raise InputError(f"{path}: YAML syntax error at {where}: {problem}") from None
    if raw is None:
        raise InputError(f"{path}: the case file is empty; see shared/cases/ for the format")
    return parse_case(raw, knowledge, source=str(path))


def parse_case(raw: Any, knowledge: Knowledge | None = None, source: str | None = None) -> Case:
    """Validate an already-parsed case mapping (see :func:`load_case`)."""
    knowledge = knowledge or load_knowledge()
    if not isinstance(raw, dict):
        raise InputError(
            "case file must be a mapping of fields (case_id, patient, labs, ...), got "
            + ("nothing" if raw is None else _kind(raw))
        )
    for key in raw:
        near = _near_miss(key, TOP_LEVEL_FIELDS)
        if near is not None:
            raise InputError(
                f"{key_text(key)}: unknown top-level field; did you mean {near}? (as written, all "
                "it holds would be ignored)"
            )
    notes = [
        f"unknown top-level field {quote(key)} ignored; known fields: {', '.join(TOP_LEVEL_FIELDS)}"
        for key in raw
        if key not in TOP_LEVEL_FIELDS
    ]
    for note in notes:
        warnings.warn(note, CaseFormatWarning, stacklevel=3)
    case_id = raw.get("case_id")
    if case_id is None or (isinstance(case_id, str) and not case_id.strip()):
        raise InputError("case_id: missing; every case file needs a case_id (text)")
    if not isinstance(case_id, str | int) or isinstance(case_id, bool):
        raise InputError(f"case_id: expected text, got {_got(case_id)}")
    patient = _patient(_mapping(raw, "patient"))
    labs = _labs(_mapping(raw, "labs"), patient, knowledge)
    imaging = _imaging(_mapping(raw, "imaging"), source)
    return Case(
        case_id=str(case_id),
        patient=patient,
        diagnoses=_text_list(raw, "diagnoses"),
        medications=_medications(raw.get("medications"), patient.age_years),
        history=_history(_mapping(raw, "history")),
        symptoms=_text_list(raw, "symptoms"),
        skin=_skin(_mapping(raw, "skin")),
        labs=labs,
        ssc_criteria=_ssc_items(raw.get("ssc_criteria"), knowledge),
        imaging=imaging,
        source=source,
        warnings=tuple(notes),
        iim_criteria=_iim_items(raw.get("iim_criteria"), patient, knowledge),
    )


def _near_miss(key: Any, known: tuple[str, ...]) -> str | None:
    """The known field an unknown key is a slip of (``lab`` for ``labs``, ``Medications``), or
    None. Such a key is refused: ignored with a warning, a misspelt ``labs`` ran the case without
    a single lab. Other unknown keys (notes of one's own) are only warned about."""
    if not isinstance(key, str) or key in known:
        return None
    lowered = key.strip().lower().replace("-", "_").replace(" ", "_")
    if lowered in known:
        return lowered
    close = difflib.get_close_matches(lowered, known, n=1, cutoff=NEAR_MISS_RATIO)
    return close[0] if close else None


def _mapping(raw: dict[str, Any], field: str) -> dict[str, Any]:
    value = raw.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{field}: expected a mapping of fields, got {quote(value)}")
    return value


def _bool(field: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InputError(f"{field}: expected true, false or null, got {quote(value)}")


def _text(field: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"{field}: expected text, got {_got(value)}")


def _kind(value: Any) -> str:
    """What YAML made of a value, in words (not Python's type names)."""
    return {dict: "a mapping", list: "a list"}.get(type(value), "a value")


def _got(value: Any) -> str:
    """A value that is not text, as YAML wrote it. An unquoted 2017-01-01 is a date to YAML:
    such text needs quotes."""
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}; write it in quotes to keep it as text"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{_kind(value)} {quote(value)}"


def _text_or_bool(field: str, value: Any) -> str | bool | None:
    """Text naming what there is (``systemic sclerosis``, ``injections``), or true/false/null.

    Text that says there is nothing (``none``, ``absent``, ``no injections``) is false, and text
    that says it is not known (``unknown``, ``n/a``) is null: read as a name, ``unknown`` was a
    connective tissue disease and made the case dystrophic ('supported').
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        stripped = value.strip()
        lowered = " ".join(stripped.lower().split())
        if lowered in NOT_KNOWN_TEXTS:
            return None
        if lowered in NOTHING_TEXTS or negated_statement(lowered):
            return False
        return stripped
    raise InputError(f"{field}: expected text, true, false or null, got {quote(value)}")


def _number(field: str, value: Any, maximum: float) -> float | None:
    """A number of years from 0 to ``maximum``; ``None`` when unknown."""
    if value is None:
        return None
    hint = exponent_hint(value)
    if hint is not None:
        raise InputError(f"{field}: {hint}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InputError(f"{field}: expected a number >= 0, got {quote(value)}")
    if not value <= maximum:  # also inf
        raise InputError(
            f"{field}: {quote(value)} years is more than a human life (0-{maximum:g}); check the value"
        )
    return float(value)


def _text_list(raw: dict[str, Any], field: str) -> tuple[str, ...] | None:
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InputError(f"{field}: expected a list of text, got {quote(value)}")
    return tuple(_text(f"{field}[{i}]", item) or "" for i, item in enumerate(value))


def _patient(raw: dict[str, Any]) -> Patient:
    _no_unknown_keys("patient", raw, ("age_years", "sex", "pregnant"))
    sex = _text("patient.sex", raw.get("sex"))
    if sex is not None and sex.strip().lower() not in (
        "female",
        "male",
        "f",
        "m",
        "other",
        "unknown",
    ):
        raise InputError(f"patient.sex: {quote(sex)} is not known; use female, male, other or unknown")
    return Patient(
        age_years=_number("patient.age_years", raw.get("age_years"), MAX_AGE_YEARS),
        sex=None if sex is None or sex.lower() == "unknown" else sex.lower(),
        pregnant=_bool("patient.pregnant", raw.get("pregnant")),
    )


def _medications(value: Any, age_years: float | None) -> tuple[Medication, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InputError(
            f"medications: expected a list of {{name: ..., route: ...}}, got {quote(value)}"
        )
    meds = []
    for i, entry in enumerate(value):
        field = f"medications[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict):
            raise InputError(f"{field}: expected a mapping with at least a name, got {quote(entry)}")
        _no_unknown_keys(field, entry, MEDICATION_FIELDS)
        name = _text(f"{field}.name", entry.get("name"))
        if not name:
            raise InputError(f"{field}.name: missing; every medication needs a name")
        meds.append(
            Medication(
                name=name,
                route=_text(f"{field}.route", entry.get("route")),
                duration_years=_duration(f"{field}.duration_years", entry.get("duration_years"),
                                         age_years),  # fmt: skip
                current=_bool(f"{field}.current", entry.get("current")),
                dose=_text(f"{field}.dose", entry.get("dose")),
                indication=_text(f"{field}.for", entry.get("for")),
            )
        )
    return tuple(meds)


def _duration(field: str, value: Any, age_years: float | None) -> float | None:
    """Years on a medication: no longer than the patient has lived (4 typed as 40 otherwise
    passes for a long exposure)."""
    years = _number(field, value, MAX_AGE_YEARS)
    if years is not None and age_years is not None and years > age_years + DURATION_AGE_SLACK_YEARS:
        raise InputError(
            f"{field}: {years:g} years is longer than the patient's age ({age_years:g}); check both"
        )
    return years


def _history(raw: dict[str, Any]) -> History:
    known = (*HISTORY_BOOL_FIELDS, "connective_tissue_disease", "trauma_or_procedure_at_site",
             "surgery_for_calcinosis")  # fmt: skip
    _no_unknown_keys("history", raw, known)
    surgery = raw.get("surgery_for_calcinosis")
    if surgery is False:
        surgery = []
    if surgery is not None:
        surgery = _text_list(
            {"history.surgery_for_calcinosis": surgery}, "history.surgery_for_calcinosis"
        )
    flags = {name: _bool(f"history.{name}", raw.get(name)) for name in HISTORY_BOOL_FIELDS}
    return History(
        connective_tissue_disease=_text_or_bool(
            "history.connective_tissue_disease", raw.get("connective_tissue_disease")
        ),
        trauma_or_procedure_at_site=_text_or_bool(
            "history.trauma_or_procedure_at_site", raw.get("trauma_or_procedure_at_site")
        ),
        surgery_for_calcinosis=surgery,
        **flags,
    )


def _skin(raw: dict[str, Any]) -> Skin:
    _no_unknown_keys("skin", raw, ("necrosis", "ulceration", "retiform_purpura", "sites"))
    return Skin(
        necrosis=_bool("skin.necrosis", raw.get("necrosis")),
        ulceration=_bool("skin.ulceration", raw.get("ulceration")),
        retiform_purpura=_bool("skin.retiform_purpura", raw.get("retiform_purpura")),
        sites=tuple(s.strip().lower().replace(" ", "_") for s in (_text_list(raw, "sites") or ())),
    )


def _labs(raw: dict[str, Any], patient: Patient, knowledge: Knowledge) -> tuple[LabResult, ...]:
    results: list[LabResult] = []
    for key, entry in raw.items():
        result = parse_lab(str(key), entry, knowledge.labs, patient.age_years)
        if result is None:
            continue
        if any(r.name == result.name for r in results):
            raise InputError(
                f"labs.{key_text(key)}: {result.name} is given twice (by name and by an alias); keep one"
            )
        results.append(result)
    calcium = next((r for r in results if r.name == "calcium"), None)
    albumin = next((r for r in results if r.name == "albumin"), None)
    if calcium is not None and albumin is not None:
        pair = albumin_corrected_calcium(calcium, albumin, knowledge.labs)
        if pair is not None:
            i = results.index(calcium)
            results[i : i + 1] = pair
    creatinine = next((r for r in results if r.name == "creatinine"), None)
    if creatinine is not None and not any(r.name == "egfr" for r in results):
        derived = estimated_egfr_result(creatinine, patient.age_years, patient.sex, knowledge.labs)
        if derived is not None:
            results.append(derived)
    return tuple(results)


def _ssc_items(value: Any, knowledge: Knowledge) -> tuple[tuple[str, bool | None], ...] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError(
            f"ssc_criteria: expected a mapping of items to true/false/null, got {quote(value)}"
        )
    known = knowledge.ssc_item_names()
    items = []
    for key, item in value.items():
        if key not in known:
            raise InputError(f"ssc_criteria.{key_text(key)}: unknown item; known items: {', '.join(known)}")
        items.append((str(key), _bool(f"ssc_criteria.{key}", item)))
    given = dict(items)
    if given.get(SSC_FINGERS_SPARED) is True:
        thickened = next((k for k in SSC_FINGER_THICKENING if given.get(k) is True), None)
        if thickened is not None:
            raise InputError(
                f"ssc_criteria.{SSC_FINGERS_SPARED}: true contradicts ssc_criteria.{thickened}: true "
                "(skin thickening of the fingers); make them agree"
            )
    return tuple(items)


def _iim_items(value: Any, patient: Patient, knowledge: Knowledge) -> IimCriteriaInput | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError(
            "iim_criteria: expected a mapping of items to true/false/null (and age_at_onset_years, "
            f"muscle_biopsy_done), got {quote(value)}"
        )
    spec = knowledge.iim
    known = (*spec.item_names(), "age_at_onset_years", "muscle_biopsy_done")
    items = []
    for key, item in value.items():
        if key not in known:
            raise InputError(
                f"iim_criteria.{key_text(key)}: unknown item; known items: {', '.join(known)}"
            )
        if key not in ("age_at_onset_years", "muscle_biopsy_done"):
            items.append((str(key), _bool(f"iim_criteria.{key}", item)))
    onset = _number(
        "iim_criteria.age_at_onset_years", value.get("age_at_onset_years"), MAX_AGE_YEARS
    )
    if onset is not None and patient.age_years is not None and onset > patient.age_years:
        raise InputError(
            f"iim_criteria.age_at_onset_years: {onset:g} is after the patient's age "
            f"({patient.age_years:g}); check both"
        )
    biopsy = _bool("iim_criteria.muscle_biopsy_done", value.get("muscle_biopsy_done"))
    stated = [k for k, v in items if k in spec.biopsy_items and v is not None]
    if biopsy is False and stated:
        raise InputError(
            f"iim_criteria.{stated[0]}: a muscle biopsy finding is given but "
            "muscle_biopsy_done is false; remove one of them"
        )
    return IimCriteriaInput(tuple(items), onset, biopsy)


def _imaging(raw: dict[str, Any], source: str | None) -> ImagingInfo:
    _no_unknown_keys("imaging", raw, ("modalities", "summary"))
    summary = _text("imaging.summary", raw.get("summary"))
    if summary is not None and source is not None and not Path(summary).is_absolute():
        summary = str(Path(source).parent / summary)
    return ImagingInfo(modalities=_text_list(raw, "modalities") or (), summary=summary)


def _no_unknown_keys(field: str, raw: dict[str, Any], known: tuple[str, ...]) -> None:
    for key in raw:
        if key not in known:
            raise InputError(f"{field}.{key_text(key)}: unknown field; known fields: {', '.join(known)}")
