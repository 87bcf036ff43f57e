"""Every reason the pipeline can exclude an object for has a readable description in the summary."""

from __future__ import annotations

import re
from pathlib import Path

from calcinosis.report.summary import EXCLUSION_REASONS

SRC = Path(__file__).resolve().parents[2] / "src" / "calcinosis"


def test_every_exclusion_reason_in_the_code_is_described():
    used = set()
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        used |= set(re.findall(r'Excluded\(\s*"([a-z_]+)"', text))  # Excluded("reason", ...)
        used |= set(re.findall(r'exclude\(\s*i,\s*"([a-z_]+)"', text))  # exclude(i, "reason")
        used |= set(re.findall(r'= "([a-z_]+)"\s*$', text, flags=re.M)) & {"scan_edge", "bone_partial_volume",
                                                                         "bone_blur_noise", "dense_tissue_noise"}
        used |= set(re.findall(r'"(external_metal|metal|table|external_object|dense_soft_tissue)"', text))
    assert {"bone", "rib_cage", "costal_cartilage", "scan_edge", "dense_soft_tissue", "bone_blur_noise",
            "dense_tissue_noise"} <= used
    missing = used - set(EXCLUSION_REASONS)
    assert not missing, f"no description for {sorted(missing)}"
    assert all(len(text) > 20 for text in EXCLUSION_REASONS.values())
