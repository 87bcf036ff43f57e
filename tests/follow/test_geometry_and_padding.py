"""Visits stored or reconstructed differently from the baseline: table positions far apart,
coronal storage, a reconstruction circle that cuts through the body."""

from __future__ import annotations

import numpy as np

from calcinosis.follow import register_volumes
from calcinosis.volume import Volume

TABLE_SHIFT_MM = 300.0  # the same patient scanned with the table 30 cm further in


def test_visits_far_apart_in_scanner_coordinates_register_without_itk_noise(baseline_phantom, capfd):
    # The identity start left the images apart and ITK printed its C++ warning ("No valid points
    # were found during metric evaluation", six lines a start) on stderr beside the CLI's one line.
    vol = baseline_phantom.volume
    moved = Volume(vol.array, vol.spacing, tuple(np.asarray(vol.origin) + [0.0, 0.0, TABLE_SHIFT_MM]),
                   vol.direction, dict(vol.metadata))
    reg = register_volumes(vol, moved)
    assert np.allclose(reg.offset, [0.0, 0.0, TABLE_SHIFT_MM], atol=1.0)
    assert capfd.readouterr().err == ""
