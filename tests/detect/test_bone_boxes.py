"""The bones found before the statistics of all components (to start their splits early) are
those the detection's own rules take as bone: large by volume or by extent, mostly in the
body, not metal (a few voxels at metal level, tooth enamel, stay bone)."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import pytest

from calcinosis.anatomy.components import label_components
from calcinosis.config import AnalysisConfig
from calcinosis.detect.bones import bone_boxes, prepare_bones, start_detection
from calcinosis.detect.candidates import detect_lesions
from calcinosis.detect.smoothing import SmoothedHU

SP = (1.0, 0.8, 0.8)


def _scene():
    hu = np.full((24, 70, 90), 40, np.int16)
    body = np.ones(hu.shape, bool)
    body[:, 60:] = False  # the table lies below the body
    hu[:, 62:66, 2:88] = 300  # table: large, outside
    hu[10:13, 10:13, 10:70] = 700  # a rod 48 mm long and thin (small volume): bone by extent
    hu[2:22, 20:45, 75:88] = 800  # a block of 6500 voxels (4160 mm^3, 20 mm): neither, not bone
    hu[2:22, 20:50, 40:60] = 900  # 12000 voxels (7680 mm^3): bone by volume ...
    hu[5, 30, 45:50] = 3000  # ... with a few enamel-like voxels at metal level
    hu[15:20, 52:58, 10:70] = 3000  # an implant 48 mm long: metal, not bone
    hu[5:7, 5:7, 5:7] = 500  # a small deposit
    return hu, body


def test_bones_are_found_by_the_detection_rules():
    hu, body = _scene()
    config = AnalysisConfig()
    comps = label_components(hu >= config.threshold_hu)
    found = bone_boxes(comps, hu, body, SP, config)
    labels = [label for label, _ in found]
    assert labels == sorted(labels) and len(labels) == 2
    starts = {(box[0].start, box[1].start, box[2].start) for _, box in found}
    # The rod (10, 10, 10) and the block with enamel (2, 20, 40), boxes grown by the margin.
    assert starts == {(6, 5, 5), (0, 15, 35)}
    # And the detection agrees (it stops with an error when the two differ).
    kwargs = dict(tissue_level_hu=40.0, noise_smoothed_hu=3.0, noise_hu=10.0)
    det = detect_lesions(hu, body, SP, config, **kwargs)
    reasons = sorted(e.reason for e in det.excluded)
    assert reasons.count("bone") == 2 and "metal" in reasons and "table" in reasons
    # Started ahead (labels and bones in a worker thread): the same detection.
    again = detect_lesions(hu, body, SP, config, **kwargs, start=start_detection(hu, body, SP, config))
    assert np.array_equal(again.labels, det.labels) and np.array_equal(again.bone, det.bone)
    assert again.excluded == det.excluded


def test_prepared_bones_hold_their_component_and_its_smoothed_box():
    hu, body = _scene()
    config = AnalysisConfig()
    comps = label_components(hu >= config.threshold_hu)
    smooth = SmoothedHU(hu, SP)
    preps = prepare_bones(comps, hu, body, SP, config, smooth)
    assert [(p.label, p.box) for p in preps] == bone_boxes(comps, hu, body, SP, config)
    for prep in preps:
        assert np.array_equal(prep.piece, comps.mask_in(prep.label, prep.box)) and prep.piece.any()
        assert np.array_equal(prep.smooth_hu, smooth[prep.box])
    assert prepare_bones(comps, hu, body, (4.0, 0.8, 0.8), config, smooth) == []  # thick slices: no split


def test_start_of_another_image_or_config_is_refused():
    hu, body = _scene()
    started = start_detection(hu, body, SP, AnalysisConfig())
    with pytest.raises(ValueError, match="start"):
        detect_lesions(hu, body, SP, AnalysisConfig(threshold_hu=150.0), tissue_level_hu=40.0,
                       noise_smoothed_hu=3.0, start=started)
    with pytest.raises(ValueError, match="start"):
        detect_lesions(hu, body, (2.0, 0.8, 0.8), AnalysisConfig(), tissue_level_hu=40.0,
                       noise_smoothed_hu=3.0, start=started)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_start_with_the_body_mask_given_later(monkeypatch, threads):
    # The labelling starts before the body mask is final (the pipeline adds the internal
    # air meanwhile); the bones, which read the mask, are prepared once it is set.
    monkeypatch.setenv("CALCINOSIS_THREADS", threads)
    hu, body = _scene()
    config = AnalysisConfig()
    kwargs = dict(tissue_level_hu=40.0, noise_smoothed_hu=3.0, noise_hu=10.0)
    want = detect_lesions(hu, body, SP, config, **kwargs)
    mask: Future = Future()
    started = start_detection(hu, mask, SP, config)
    assert not started.bones.done()
    mask.set_result(body)
    got = detect_lesions(hu, body, SP, config, **kwargs, start=started)
    bones = bone_boxes(label_components(hu >= config.threshold_hu), hu, body, SP, config)
    assert [prep.label for prep in started.bones.result(timeout=30)] == [label for label, _ in bones]
    assert np.array_equal(got.labels, want.labels) and np.array_equal(got.bone, want.bone)
    assert got.excluded == want.excluded


def test_a_failed_body_mask_reaches_the_detection():
    hu, _ = _scene()
    mask: Future = Future()
    started = start_detection(hu, mask, SP, AnalysisConfig())
    mask.set_exception(RuntimeError("no mask"))
    with pytest.raises(RuntimeError, match="no mask"):
        started.bones.result(timeout=30)


def test_no_bone_split_on_coarse_pixels_and_a_warning_says_so():
    """On 2 mm pixels (a CT resampled to coarse voxels) the bone is not split: no finding is
    parted from a bone, and the analysis says deposits touching bone count as bone. The same
    phantom on 1 mm pixels parts its juxta-osseous deposits (the split runs)."""
    from calcinosis.phantom import make_ct_phantom
    from calcinosis.pipeline import analyze

    parted = {}
    for pixel in (1.0, 2.0):
        ph = make_ct_phantom("elbow", seed=0, noise_hu=10.0, slice_thickness_mm=1.5, pixel_mm=pixel, length_mm=40.0)
        analysis = analyze(ph.volume)
        parted[pixel] = [les for les in analysis.lesions if "split_from_bone" in les.flags.split(";")]
        warned = [w for w in analysis.warnings if "not split from it" in w]
        assert len(warned) == (1 if pixel == 2.0 else 0), analysis.warnings
    assert parted[1.0] and not parted[2.0]
