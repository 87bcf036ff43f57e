"""The analysis gives the same answer on one thread as on several (worker threads split
bones and measure beside the anatomy; CALCINOSIS_THREADS=1 runs everything in turn)."""

from __future__ import annotations

import numpy as np

from calcinosis.phantom import make_ct_phantom
from calcinosis.pipeline import analyze


def test_one_thread_and_two_threads_agree(monkeypatch):
    ph = make_ct_phantom("trunk", seed=1, length_mm=40.0, keep_noiseless=False)
    monkeypatch.setenv("CALCINOSIS_THREADS", "1")
    serial = analyze(ph.volume)
    monkeypatch.setenv("CALCINOSIS_THREADS", "2")
    parallel = analyze(ph.volume)
    assert len(serial.lesions) >= 5
    assert np.array_equal(serial.labels, parallel.labels)
    assert [l.row() for l in serial.lesions] == [l.row() for l in parallel.lesions]
    assert serial.detection.excluded == parallel.detection.excluded
