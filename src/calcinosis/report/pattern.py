"""The distribution pattern of the deposits, in words, computed from the lesion table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from calcinosis.measure.lesion import Lesion

_COMPARTMENT_WORDS = {
    "cutaneous": "cutaneous",
    "subcutaneous": "subcutaneous",
    "intramuscular": "intramuscular",
    "juxta_osseous": "juxta-osseous (periarticular or para-osseous)",
    "vascular": "vascular",
    "visceral": "visceral",
}


PAIRED_REGIONS = frozenset({"shoulder", "upper_arm", "elbow", "forearm", "wrist_hand", "hip_gluteal",
                            "thigh", "knee", "leg", "ankle_foot"})


def _region_words(region: str) -> str:
    return region.replace("_", " ") if region != "unknown" else ""


def _plural(region: str) -> str:
    word = _region_words(region)
    if not word:
        return "the field of view"
    irregular = {"wrist hand": "wrists and hands", "ankle foot": "ankles and feet",
                 "hip gluteal": "hips and buttocks", "head neck": "head and neck"}
    return irregular.get(word, word + "s" if not word.endswith("s") else word)


def describe_pattern(lesions: Sequence[Lesion], others: Sequence[Lesion] = ()) -> str:
    """One sentence a radiologist would write about where the deposits are.

    Built from counts by compartment, side and region, and from how clustered the
    deposits are; nothing is templated per case.
    """
    tail = _others_sentence(others)
    if not lesions:
        return "No soft-tissue calcified deposits detected." + tail
    n = len(lesions)
    comp = Counter(lesion.compartment for lesion in lesions)
    main_comp, main_n = comp.most_common(1)[0]
    sides = {lesion.side for lesion in lesions} - {"midline"}
    regions = Counter(lesion.region for lesion in lesions)
    main_region, region_n = regions.most_common(1)[0]
    size = max(lesion.max_diameter_mm for lesion in lesions)
    kind = "punctate" if size < 3 else "nodular"
    if main_n == n:
        where = _COMPARTMENT_WORDS.get(main_comp, main_comp)
    else:
        others = [c for c, _ in comp.most_common() if c != main_comp]
        where = (f"predominantly {_COMPARTMENT_WORDS.get(main_comp, main_comp)} "
                 f"({main_n} of {n}; also {', '.join(_COMPARTMENT_WORDS.get(c, c) for c in others)})")
    if sides == {"left", "right"}:
        if main_region == "unknown":
            place = "on both sides"
        elif main_region in PAIRED_REGIONS:
            place = f"in both {_plural(main_region)}"
        else:
            place = f"on both sides of the {_region_words(main_region)}"
    elif sides:
        side = next(iter(sides))
        place = (f"in the {side} {_region_words(main_region)}" if main_region != "unknown"
                 else f"on the {side} side")
    else:
        place = "in the midline"
    count = "A single" if n == 1 else f"{n}"
    noun = "deposit" if n == 1 else "deposits"
    sentence = f"{count} {kind} {where} calcified {noun} {place}"
    if main_comp == "subcutaneous" and main_n >= 0.6 * n and n >= 3:
        sentence += ", clustered in the subcutaneous fat as at injection sites"
    elif main_comp == "juxta_osseous" and main_n >= 0.6 * n:
        sentence += ", next to bone as in periarticular or paraspinal dystrophic calcinosis"
    if region_n < n and main_region != "unknown":
        rest = [r for r, _ in regions.most_common() if r not in (main_region, "unknown")]
        if rest:
            sentence += f"; also at the {', '.join(_region_words(r) for r in rest)}"
    return sentence + "." + tail


def _others_sentence(others: Sequence[Lesion]) -> str:
    """Vascular and visceral calcification, said apart from the calcinosis."""
    if not others:
        return ""
    comp = Counter(lesion.compartment for lesion in others)
    parts = [f"{n} {c}" for c, n in comp.most_common()]
    return f" Also {', '.join(parts)} calcification{'s' if len(others) > 1 else ''} (not calcinosis)."
