"""Matching of detected lesions to phantom truth, shared by the CT accuracy tests and benches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Match:
    truth: object
    lesion: object | None


def match_lesions(phantom, lesions, labels):
    """Pair each truth deposit with the detected lesion that covers most of its ideal mask
    (phantom.labels), else the nearest lesion within 3 mm. Returns (matches, false_lesions)."""
    used = set()
    matches = []
    by_id = {lesion.lesion_id: lesion for lesion in lesions}
    for d in phantom.deposits:
        ideal = phantom.labels == d.id
        best = None
        if ideal.any():
            hit = labels[ideal]
            hit = hit[hit > 0]
            if hit.size:
                best = by_id.get(int(np.bincount(hit).argmax()))
        if best is None:
            c = np.asarray(d.centroid_lps)
            dists = [(np.linalg.norm(np.array([l.x_mm, l.y_mm, l.z_mm]) - c), l) for l in lesions]
            dists = [t for t in dists if t[0] < 3.0]
            if dists:
                best = min(dists, key=lambda t: t[0])[1]
        if best is not None:
            used.add(best.lesion_id)
        matches.append(Match(d, best))
    false = [l for l in lesions if l.lesion_id not in used]
    return matches, false
