"""Shared helpers for the clinical work-up tests: case files written into tmp_path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

SHARED_CASES = Path("/work/shared/cases")

# Conversion factors written here independently of the package's data file:
# 1 mmol/L calcium = 4.008 mg/dL; 1 mmol/L phosphate = 3.097 mg/dL;
# 1 pmol/L PTH = 9.43 pg/mL; 1 mg/dL creatinine = 88.4 umol/L; 1 ng/mL 25-OH D = 2.496 nmol/L.
SI = {
    "calcium": ("mmol/L", 1 / 4.008),
    "phosphate": ("mmol/L", 1 / 3.097),
    "intact_pth": ("pmol/L", 1 / 9.43),
    "creatinine": ("µmol/L", 88.4),
    "vitamin_d_25oh": ("nmol/L", 2.496),
}


def conventional_case(case_id: str, labs_mg: dict[str, float], **fields: Any) -> dict[str, Any]:
    """A case mapping with labs in conventional units (mg/dL, pg/mL, ng/mL)."""
    units = {
        "calcium": "mg/dL",
        "phosphate": "mg/dL",
        "intact_pth": "pg/mL",
        "creatinine": "mg/dL",
        "vitamin_d_25oh": "ng/mL",
    }
    case: dict[str, Any] = {
        "case_id": case_id,
        "patient": {"age_years": 60, "sex": "female"},
        "diagnoses": [],
        "medications": [],
        "history": {
            "connective_tissue_disease": False,
            "chronic_kidney_disease": False,
            "dialysis": False,
            "hyperparathyroidism": None,
            "malignancy": False,
            "trauma_or_procedure_at_site": False,
            "calcium_or_phosphate_infusion": False,
            "vitamin_d_excess": False,
        },
        "symptoms": ["firm nodules"],
        "skin": {
            "necrosis": False,
            "ulceration": False,
            "retiform_purpura": False,
            "sites": ["thigh"],
        },
        "labs": {name: {"value": value, "unit": units[name]} for name, value in labs_mg.items()},
        "ssc_criteria": None,
        "imaging": {"modalities": ["CT"], "summary": None},
    }
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(case.get(key), dict):
            case[key].update(value)
        else:
            case[key] = value
    return case


def to_si(case: dict[str, Any]) -> dict[str, Any]:
    """The same case with every convertible lab in SI units (mmol/L, pmol/L, umol/L, nmol/L)."""
    out = copy.deepcopy(case)
    for name, entry in out["labs"].items():
        if name in SI and isinstance(entry, dict) and "value" in entry:
            unit, factor = SI[name]
            entry["value"] = round(entry["value"] * factor, 3)
            entry["unit"] = unit
    return out


@pytest.fixture
def write_case(tmp_path: Path):
    """Write a case mapping (or raw text) to a YAML file in tmp_path; returns its path."""
    counter = iter(range(10_000))

    def write(case: dict[str, Any] | str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"case{next(counter)}.yaml")
        text = (
            case
            if isinstance(case, str)
            else yaml.safe_dump(case, sort_keys=False, allow_unicode=True)
        )
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def shared_case():
    """Path of a case file in shared/cases/; skips when that folder is not there."""

    def get(name: str) -> Path:
        path = SHARED_CASES / name
        if not path.exists():
            pytest.skip(f"{path} not present (shared case files are outside the repository)")
        return path

    return get


@pytest.fixture(name="conventional_case")
def _conventional_case_fixture():
    return conventional_case


@pytest.fixture(name="to_si")
def _to_si_fixture():
    return to_si
