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
    # Ranked by count, ties in a fixed order (compartments as listed above, regions by name):
    # the sentence must not depend on how the lesions are numbered, which follows the stored
    # voxel order (a scan stored feet first read "predominantly cutaneous (1 of 4 ...)" where
    # stored head first it read "predominantly subcutaneous (1 of 4 ...)").
    comp = _ranked(Counter(lesion.compartment for lesion in lesions), list(_COMPARTMENT_WORDS))
    main_comp, main_n = comp[0]
    sides = {lesion.side for lesion in lesions} - {"midline"}
    regions = _ranked(Counter(lesion.region for lesion in lesions))
    main_region, region_n = regions[0]
    size = max(lesion.max_diameter_mm for lesion in lesions)
    kind = "punctate" if size < 3 else "nodular"
    tied = [c for c, k in comp if k == main_n]
    others = [c for c, k in comp if k < main_n]
    # The compartment that characterises the pattern; none when two or more share the top count.
    predominant = main_comp if len(tied) == 1 else None
    if main_n == n:
        where = _COMPARTMENT_WORDS.get(main_comp, main_comp)
    elif predominant is None:
        # No compartment predominates: the tied ones named alike.
        where = _joined([_COMPARTMENT_WORDS.get(c, c) for c in tied])
        if others:
            where += (f" ({main_n} each of {n}; also "
                      f"{', '.join(_COMPARTMENT_WORDS.get(c, c) for c in others)})")
    else:
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
    if predominant == "subcutaneous" and main_n >= 0.6 * n and n >= 3:
        sentence += ", clustered in the subcutaneous fat as at injection sites"
    elif predominant == "juxta_osseous" and main_n >= 0.6 * n:
        sentence += ", next to bone as in periarticular or paraspinal dystrophic calcinosis"
    if region_n < n and main_region != "unknown":
        rest = [r for r, _ in regions if r not in (main_region, "unknown")]
        if rest:
            sentence += f"; also at the {', '.join(_region_words(r) for r in rest)}"
    return sentence + "." + tail


def _ranked(counts: Counter, order: Sequence[str] = ()) -> list[tuple[str, int]]:
    """``counts``' items by count, highest first; equal counts in ``order``'s order, then by name."""
    rank = {key: i for i, key in enumerate(order)}
    return sorted(counts.items(), key=lambda item: (-item[1], rank.get(item[0], len(rank)), item[0]))


def _joined(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _others_sentence(others: Sequence[Lesion]) -> str:
    """Vascular and visceral calcification, said apart from the calcinosis."""
    if not others:
        return ""
    comp = Counter(lesion.compartment for lesion in others)
    parts = [f"{n} {c}" for c, n in comp.most_common()]
    return f" Also {', '.join(parts)} calcification{'s' if len(others) > 1 else ''} (not calcinosis)."
