"""Laboratory results: units, reference ranges, status, and eGFR from creatinine.

The catalogue of tests the work-up interprets lives in ``data/labs.yaml``. A lab
in a case file is either a measured ``{value, unit}`` (optionally with its own
``reference_range``) or a qualitative ``{flag}``; labs not in the catalogue are
kept verbatim and shown, but not interpreted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from calcinosis.clinical.inputs import exponent_hint, key_text, quote
from calcinosis.errors import InputError

#: Statuses a lab result can have once interpreted.
QUANTITATIVE_STATUSES = ("low", "normal", "high")
QUALITATIVE_STATUSES = ("negative", "positive")
_LAB_ENTRY_KEYS = ("value", "unit", "flag", "reference_range")
#: Age (years) from which the catalogue's adult reference ranges apply; below it a lab marked
#: ``adult_range_only`` (calcium, phosphate, creatinine: their normal values change through
#: childhood, Burritt MF et al., Mayo Clin Proc 1990;65:329-36) needs the laboratory's range.
ADULT_AGE_YEARS = 18.0


@dataclass(frozen=True)
class UnitSpec:
    """One accepted unit of a lab: factor into the canonical unit and its reference range."""

    unit: str
    to_canonical: float
    reference_range: tuple[float | None, float | None]


@dataclass(frozen=True)
class LabSpec:
    """A catalogued lab test (see ``data/labs.yaml``)."""

    name: str
    label: str
    aliases: tuple[str, ...]
    canonical_unit: str | None
    units: tuple[UnitSpec, ...]
    flags: tuple[str, ...]
    qualitative: bool
    #: ``(min, max)`` in ``canonical_unit`` a living patient can have; outside is a typo or a wrong unit.
    plausible_range: tuple[float, float] | None = None
    #: The reference ranges are adults': a child's measured value needs its own range (see
    #: :data:`ADULT_AGE_YEARS`).
    adult_range_only: bool = False

    def unit_spec(self, unit: str) -> UnitSpec | None:
        key = normalize_unit(unit)
        for spec in self.units:
            if normalize_unit(spec.unit) == key:
                return spec
        return None


@dataclass(frozen=True)
class LabResult:
    """One lab result of a case, as given and as interpreted.

    ``status`` is ``low|normal|high`` (quantitative) or ``negative|positive``
    (qualitative), or ``None`` for a lab the work-up does not interpret.
    ``value_canonical`` is the value in ``canonical_unit`` (e.g. calcium in mg/dL).
    """

    name: str
    field: str
    label: str
    value: float | str | None
    unit: str | None
    flag: str | None
    reference_range: tuple[float | None, float | None] | None
    status: str | None
    value_canonical: float | None
    canonical_unit: str | None
    derived_from: str | None = None

    def shown_value(self) -> str:
        """The result as a person would write it ("9.9 mg/dL", "normal (flag)")."""
        if self.value is not None:
            text = (
                _format_number(self.value)
                if isinstance(self.value, float | int)
                else str(self.value)
            )
            return f"{text} {self.unit}" if self.unit else text
        if self.flag is not None:
            return f"{self.flag} (flag)"
        return "unknown"

    def shown_range(self) -> str:
        if self.reference_range is None:
            return ""
        low, high = self.reference_range
        unit = f" {self.unit}" if self.unit else ""
        if low is not None and high is not None:
            return f"{_format_number(low)}-{_format_number(high)}{unit}"
        if low is not None:
            return f">= {_format_number(low)}{unit}"
        if high is not None:
            return f"<= {_format_number(high)}{unit}"
        return ""


def normalize_unit(unit: str) -> str:
    """Unit spelling key: lower case, no spaces, micro sign/Greek mu as ``u``, ² as 2."""
    text = unit.strip().lower().replace("\u00b5", "u").replace("\u03bc", "u").replace("\u00b2", "2")
    return re.sub(r"\s+", "", text)


def parse_lab_catalogue(raw: dict[str, Any]) -> dict[str, LabSpec]:
    """Build the catalogue from the parsed ``labs.yaml`` mapping."""
    catalogue: dict[str, LabSpec] = {}
    for name, entry in raw["labs"].items():
        units = tuple(
            UnitSpec(unit, float(spec["to_canonical"]), tuple(spec["reference_range"]))  # type: ignore[arg-type]
            for unit, spec in (entry.get("units") or {}).items()
        )
        catalogue[name] = LabSpec(
            name=name,
            label=entry["label"],
            aliases=tuple(entry.get("aliases", ())),
            canonical_unit=entry.get("canonical_unit"),
            units=units,
            flags=tuple(entry["flags"]),
            qualitative=bool(entry.get("qualitative", False)),
            plausible_range=(
                tuple(float(v) for v in entry["plausible_range"])  # type: ignore[arg-type]
                if "plausible_range" in entry
                else None
            ),
            adult_range_only=bool(entry.get("adult_range_only", False)),
        )
    return catalogue


def resolve_lab_name(key: str, catalogue: dict[str, LabSpec]) -> LabSpec | None:
    """The catalogued lab a case-file key names (by name or alias), or None."""
    wanted = key.strip().lower().replace("-", "_").replace(" ", "_")
    for spec in catalogue.values():
        if wanted == spec.name or wanted in spec.aliases:
            return spec
    return None


def parse_lab(
    key: str, entry: Any, catalogue: dict[str, LabSpec], age_years: float | None = None
) -> LabResult | None:
    """Validate and interpret one ``labs.<key>`` entry; ``None`` when it is null.

    ``age_years`` is the patient's age: under :data:`ADULT_AGE_YEARS`, a measured value of a
    lab whose catalogue ranges are adults' only is refused unless the entry gives its own
    ``reference_range`` (a child's normal phosphate would read as high).

    Raises
    ------
    InputError
        Naming the field (``labs.calcium.unit`` ...) when the entry is malformed.
    """
    field = f"labs.{key_text(key)}"
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise InputError(
            f"{field}: expected a mapping like {{value: 9.5, unit: mg/dL}} or {{flag: normal}}, "
            f"got {quote(entry)}"
        )
    for k in entry:
        if k not in _LAB_ENTRY_KEYS:
            raise InputError(f"{field}.{key_text(k)}: unknown key; use {', '.join(_LAB_ENTRY_KEYS)}")
    spec = resolve_lab_name(str(key), catalogue)
    value = entry.get("value")
    unit = entry.get("unit")
    flag = entry.get("flag")
    if value is None and flag is None:
        raise InputError(
            f"{field}: give a value (with its unit) or a flag, or write null if unknown"
        )
    if unit is not None and not isinstance(unit, str):
        raise InputError(f"{field}.unit: expected a unit as text, got {quote(unit)}")
    if flag is not None:
        flag = _check_flag(f"{field}.flag", flag, spec)
    if spec is None:
        return _uninterpreted(key, field, value, unit, flag)
    if value is None:
        status = _flag_status(flag, spec)  # type: ignore[arg-type]
        return LabResult(
            spec.name, field, spec.label, None, None, flag, None, status, None, spec.canonical_unit
        )
    if spec.qualitative:
        raise InputError(
            f"{field}.value: {spec.label} is qualitative; give flag: positive or negative"
        )
    number = _check_number(f"{field}.value", value)
    if unit is None:
        raise InputError(f"{field}.unit: missing; use {_unit_list(spec)}")
    unit_spec = spec.unit_spec(unit)
    if unit_spec is None:
        raise InputError(
            f"{field}.unit: {quote(unit)} is not a known unit for {spec.name}; use {_unit_list(spec)}"
        )
    _check_plausible(f"{field}.value", number, unit_spec, spec)
    reference = unit_spec.reference_range
    if "reference_range" in entry and entry["reference_range"] is not None:
        reference = _check_range(f"{field}.reference_range", entry["reference_range"])
        _check_range_unit(f"{field}.reference_range", reference, unit_spec, spec)
    elif spec.adult_range_only and age_years is not None and age_years < ADULT_AGE_YEARS:
        low, high = reference
        raise InputError(
            f"{field}.reference_range: missing; the built-in {_format_number(low)}-"
            f"{_format_number(high)} {unit_spec.unit} is an adult range and the patient is "
            f"{age_years:g} years old (children's values change with age): give the laboratory's "
            "range, reference_range: [low, high], or a flag instead of the value"
        )
    status = _range_status(number, reference)
    if flag is not None and _flag_status(flag, spec) != status:
        raise InputError(
            f"{field}: the flag {quote(flag)} contradicts the value {_format_number(number)} {unit} "
            f"(reference {reference[0]}-{reference[1]}); give one or make them agree"
        )
    return LabResult(
        name=spec.name,
        field=field,
        label=spec.label,
        value=number,
        unit=unit_spec.unit,
        flag=flag,
        reference_range=reference,
        status=status,
        value_canonical=number * unit_spec.to_canonical,
        canonical_unit=spec.canonical_unit,
    )


def egfr_ckd_epi_2021(creatinine_mg_dl: float, age_years: float, sex: str) -> float:
    """eGFR in mL/min/1.73 m² from serum creatinine (mg/dL), CKD-EPI 2021 (no race term).

    Inker LA et al., N Engl J Med 2021;385:1737-49:
    142 × min(Scr/κ, 1)^α × max(Scr/κ, 1)^-1.200 × 0.9938^age × 1.012 [female],
    κ = 0.7 (female) or 0.9 (male), α = -0.241 (female) or -0.302 (male).
    """
    female = sex.strip().lower() in ("female", "f", "woman")
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine_mg_dl / kappa
    egfr = 142.0 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.200 * 0.9938**age_years
    return egfr * (1.012 if female else 1.0)


def estimated_egfr_result(
    creatinine: LabResult, age_years: float | None, sex: str | None, catalogue: dict[str, LabSpec]
) -> LabResult | None:
    """An eGFR result derived from a measured creatinine, when age and sex are known (adults)."""
    if creatinine.value_canonical is None or age_years is None or sex is None or age_years < 18:
        return None
    if sex.strip().lower() not in ("female", "f", "woman", "male", "m", "man"):
        return None
    spec = catalogue["egfr"]
    value = round(egfr_ckd_epi_2021(creatinine.value_canonical, age_years, sex), 1)
    reference = spec.units[0].reference_range
    return LabResult(
        name="egfr",
        field="labs.egfr",
        label=spec.label + " (CKD-EPI 2021, from creatinine)",
        value=value,
        unit=spec.units[0].unit,
        flag=None,
        reference_range=reference,
        status=_range_status(value, reference),
        value_canonical=value,
        canonical_unit=spec.canonical_unit,
        derived_from="labs.creatinine",
    )


#: Payne's correction: mg/dL of calcium per g/dL of albumin below the reference albumin.
CALCIUM_PER_ALBUMIN_MG_PER_G = 0.8
REFERENCE_ALBUMIN_G_DL = 4.0


def albumin_corrected_calcium(
    calcium: LabResult, albumin: LabResult, catalogue: dict[str, LabSpec]
) -> tuple[LabResult, LabResult] | None:
    """Total calcium corrected for albumin, and the measured total kept as an uninterpreted entry.

    corrected Ca (mg/dL) = Ca + 0.8 x (4.0 - albumin g/dL) (Payne RB et al., Br Med J
    1973;4:643-6); shown in the unit calcium was given in, and judged against its range.
    ``None`` unless both are measured values.
    """
    if calcium.value_canonical is None or albumin.value_canonical is None:
        return None
    corrected_mg = calcium.value_canonical + CALCIUM_PER_ALBUMIN_MG_PER_G * (
        REFERENCE_ALBUMIN_G_DL - albumin.value_canonical
    )
    unit_spec = catalogue["calcium"].unit_spec(calcium.unit or "")
    assert unit_spec is not None and calcium.reference_range is not None
    value = round(max(corrected_mg, 0.0) / unit_spec.to_canonical, 3)
    corrected = LabResult(
        name="calcium",
        field="labs.calcium",
        label=calcium.label + ", albumin-corrected",
        value=value,
        unit=calcium.unit,
        flag=None,
        reference_range=calcium.reference_range,
        status=_range_status(value, calcium.reference_range),
        value_canonical=value * unit_spec.to_canonical,
        canonical_unit=calcium.canonical_unit,
        derived_from=f"labs.calcium {calcium.shown_value()} and labs.albumin {albumin.shown_value()}",
    )
    measured = LabResult(
        name="calcium_measured",
        field=calcium.field,
        label=calcium.label + ", as measured (interpreted albumin-corrected)",
        value=calcium.value,
        unit=calcium.unit,
        flag=calcium.flag,
        reference_range=calcium.reference_range,
        status=None,
        value_canonical=None,
        canonical_unit=None,
    )
    return corrected, measured


def _uninterpreted(
    key: str, field: str, value: Any, unit: str | None, flag: str | None
) -> LabResult:
    if value is not None and not isinstance(value, str):
        value = _check_number(f"{field}.value", value)
    return LabResult(
        str(key), field, str(key).replace("_", " "), value, unit, flag, None, None, None, None
    )


def _check_flag(field: str, flag: Any, spec: LabSpec | None) -> str:
    allowed = spec.flags if spec is not None else ("normal", "low", "high", "negative", "positive")
    if not isinstance(flag, str) or flag.strip().lower() not in allowed:
        raise InputError(f"{field}: {quote(flag)} is not a known flag; use one of {', '.join(allowed)}")
    return flag.strip().lower()


def _flag_status(flag: str, spec: LabSpec) -> str:
    if spec.qualitative:
        return "positive" if flag in ("positive", "high") else "negative"
    return flag


def _check_number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = exponent_hint(value)
        if hint is not None:
            raise InputError(f"{field}: {hint}")
        raise InputError(f"{field}: {quote(value)} is not a number; write the number alone, e.g. 9.5")
    try:
        number = float(value)
    except OverflowError:  # an int too big for a float (YAML reads 0x... of any length)
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise InputError(f"{field}: {quote(value)} must be a finite number >= 0")
    return number


def _check_plausible(field: str, number: float, unit: UnitSpec, spec: LabSpec) -> None:
    """Refuse a value no living patient can have (see ``plausible_range`` in ``labs.yaml``).

    Interpreted, it would be a confident wrong answer: a creatinine of 0 has no eGFR, one of
    80 written in mg/dL instead of umol/L reads as kidney failure.
    """
    if spec.plausible_range is None:
        return
    low, high = (limit / unit.to_canonical for limit in spec.plausible_range)
    if not low * (1 - 1e-9) <= number <= high * (1 + 1e-9):
        raise InputError(
            f"{field}: {_format_number(number)} {unit.unit} cannot be a real {spec.label}: "
            f"it must be {_format_limit(low)}-{_format_limit(high)} {unit.unit}; "
            "check the value and its unit"
        )


def _check_range_unit(
    field: str, reference: tuple[float | None, float | None], unit: UnitSpec, spec: LabSpec
) -> None:
    """Refuse a range written in another of the lab's units than its value.

    A calcium of 9.9 mg/dL with the range [2.1, 2.6] (mmol/L, as a report in SI units gives it)
    read as high. The range is taken for another unit's when its middle lies inside that unit's
    usual range and outside its own unit's; a child's range (a phosphate of [4.5, 6.5] mg/dL, a
    creatinine of [0.2, 0.5] mg/dL) lies inside neither and passes.
    """
    low, high = reference
    if low is None or high is None:
        return
    middle = (low + high) / 2

    def inside(candidate: UnitSpec) -> bool:
        lo, hi = candidate.reference_range
        return (lo is None or middle >= lo) and (hi is None or middle <= hi)

    if inside(unit):
        return
    other = next((u for u in spec.units if u is not unit and inside(u)), None)
    if other is not None:
        raise InputError(
            f"{field}: [{_format_number(low)}, {_format_number(high)}] reads as {other.unit}, but "
            f"the value is in {unit.unit}; give the value and its range in the same unit"
        )


def _check_range(field: str, value: Any) -> tuple[float | None, float | None]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InputError(f"{field}: expected [low, high] (either may be null), got {quote(value)}")
    low, high = (None if v is None else _check_number(field, v) for v in value)
    if low is None and high is None:  # no limit: every value would read as normal
        raise InputError(f"{field}: [null, null] gives no limit; give one, or leave reference_range out")
    if low is not None and high is not None and low > high:
        raise InputError(f"{field}: low {low} is above high {high}")
    return low, high


def _range_status(value: float, reference: tuple[float | None, float | None]) -> str:
    low, high = reference
    # A tiny tolerance so that a value typed exactly at the limit is normal despite float noise.
    if high is not None and value > high * (1 + 1e-9):
        return "high"
    if low is not None and value < low * (1 - 1e-9):
        return "low"
    return "normal"


def _unit_list(spec: LabSpec) -> str:
    names = [u.unit for u in spec.units]
    return " or ".join(names) if len(names) <= 2 else ", ".join(names)


def _format_number(value: float) -> str:
    return f"{value:g}"


def _format_limit(value: float) -> str:
    """A plausibility limit in the user's unit, rounded: 50 mg/dL is 4420.08 umol/L."""
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"
