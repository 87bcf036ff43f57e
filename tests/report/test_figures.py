"""Report figures: display orientation, body-map placement, outlines drawn."""

from __future__ import annotations

import base64
import dataclasses
import io

import numpy as np
from PIL import Image

from calcinosis.report import figures as F
from calcinosis.volume import Volume


def _png(uri):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")).astype(int)


def _outline_pixels(rgb):
    target = np.array([0xFF, 0x5A, 0x1F])
    return int((np.abs(rgb - target).sum(axis=-1) < 60).sum())


def test_canonical_view_undoes_flipped_axes():
    rng = np.random.default_rng(0)
    a = rng.integers(-1000, 1000, size=(5, 7, 9)).astype(np.int16)
    labels = (a > 900).astype(np.uint16)
    sp = (0.7, 0.8, 2.0)
    plain = Volume(a, sp, (0.0, 0.0, 0.0), np.eye(3), {})
    # the same patient, stored with x running to the patient's right and z downwards
    flipped = Volume(a[::-1, :, ::-1].copy(), sp, (8 * 0.7, 0.0, 4 * 2.0), np.diag([-1.0, 1.0, -1.0]), {})
    v1 = F.canonical_view(plain, labels)
    v2 = F.canonical_view(flipped, labels[::-1, :, ::-1])
    np.testing.assert_array_equal(v1.hu, v2.hu)
    np.testing.assert_array_equal(v1.labels, v2.labels)
    # canonical row 0 is the most superior slice; column 0 the patient's right
    np.testing.assert_array_equal(v1.hu[0], a[-1])
    idx = np.array([[4.0, 2.0, 0.0]])  # top slice, patient's right edge in the plain volume
    np.testing.assert_allclose(v1.index_of(idx), [[0.0, 2.0, 0.0]])
    lps = plain.index_to_lps(idx)
    np.testing.assert_allclose(v2.index_of(flipped.lps_to_index(lps)), [[0.0, 2.0, 0.0]], atol=1e-9)


def test_body_map_places_deposits_by_region_and_side(analysis):
    lesions = tuple(dataclasses.replace(les, region="thigh" if k % 3 else "unknown")
                    for k, les in enumerate(analysis.lesions))
    a = dataclasses.replace(analysis, lesions=lesions)
    view = F.canonical_view(a.volume, a.labels)
    pos = F.body_map_positions(a, view, F._lesion_centres(a, view))
    assert set(pos) == {les.lesion_id for les in lesions}
    for les in lesions:
        panel, x, _ = pos[les.lesion_id]
        if les.region == "unknown":
            assert panel == 2
            continue
        assert panel in (0, 1)
        # front view: the patient's left on the viewer's right; back view mirrored
        right_of_viewer = (les.side == "left") == (panel == 0)
        assert (x > 0) == right_of_viewer, (les.lesion_id, les.side, panel, x)
        assert abs(abs(x) - F.REGION_BOXES["thigh"][0]) <= F.REGION_BOXES["thigh"][2]
    assert any(pos[les.lesion_id][0] == 0 for les in lesions if les.region == "thigh")


def test_figures_show_outlines(analysis, monkeypatch):
    figs = F.report_figures(analysis)
    assert [c.split()[0] for c, _ in figs] == ["Body", "Frontal", "Lateral", "Axial"]
    for caption, uri in figs[1:]:
        assert _outline_pixels(_png(uri)) > 20, caption
    monkeypatch.setattr(F, "MAX_THUMBNAILS", 3)
    caption, uri = F.thumbnails(F.canonical_view(analysis.volume, analysis.labels), analysis.lesions)
    assert f"the 3 largest of {len(analysis.lesions)}" in caption
    assert _png(uri).shape[1] < _png(figs[3][1]).shape[1]  # three panels in one row, not six


def test_captions_state_the_display_convention(analysis):
    figs = F.report_figures(analysis)
    for caption, _ in figs:
        if not caption.startswith("Lateral"):
            assert "patient's right on the viewer's left" in caption, caption
    assert "from the patient's left, anterior (A) on the left" in figs[2][0]  # sagittal display


def test_orientation_letters_are_legible_on_bone(analysis):
    # The phantom's grid filled with bone-bright HU: a white letter on it vanishes; the letter
    # sits on a dark box.
    bright = Volume(np.full(analysis.volume.shape, 1500, np.int16), analysis.volume.spacing,
                    analysis.volume.origin, analysis.volume.direction, {})
    view = F.canonical_view(bright, analysis.labels)
    (_, frontal), _ = F.mips(view, analysis.lesions, F._lesion_centres(analysis, view))
    rgb = _png(frontal)
    h, w, _ = rgb.shape
    corner = rgb[: max(12, h // 8), : max(12, w // 12)].sum(axis=-1)
    assert (corner < 300).mean() > 0.1  # the dark box behind "R"
    assert (corner > 700).any()  # and the white letter on it


def test_thumbnails_say_which_panels_are_not_calcinosis(analysis):
    view = F.canonical_view(analysis.volume, analysis.labels)
    caption, _ = F.thumbnails(view, analysis.lesions)
    assert "not calcinosis" not in caption  # the thigh phantom's deposits are all calcinosis
    changed = (dataclasses.replace(analysis.lesions[0], compartment="vascular"),) + tuple(analysis.lesions[1:])
    caption, _ = F.thumbnails(view, changed)
    assert "vascular findings among them are not calcinosis" in caption


def test_body_map_numbers_the_largest_and_names_non_calcinosis(analysis, monkeypatch):
    view = F.canonical_view(analysis.volume, analysis.labels)
    centres = F._lesion_centres(analysis, view)
    caption, _ = F.body_map(analysis, view, centres)
    assert "largest numbered" not in caption
    monkeypatch.setattr(F, "MAX_NUMBERED", 3)
    drawn = []
    monkeypatch.setattr(F, "_marker", lambda ax, x, y, les, size, numbered=True: drawn.append((les, numbered)))
    changed = (dataclasses.replace(analysis.lesions[0], compartment="vascular"),) + tuple(analysis.lesions[1:])
    caption, _ = F.body_map(dataclasses.replace(analysis, lesions=changed), view, centres)
    assert "the 3 largest numbered" in caption
    largest = sorted(changed, key=lambda x: -x.volume_mm3)[:3]
    assert {les.lesion_id for les, numbered in drawn if numbered} == {les.lesion_id for les in largest}
    assert [F.legend_label(c) for c in ("juxta_osseous", "vascular", "visceral")] == [
        "juxta-osseous", "vascular (not calcinosis)", "visceral (not calcinosis)"]
