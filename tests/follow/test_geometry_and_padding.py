"""Visits stored or reconstructed differently from the baseline: table positions far apart,
coronal storage, a reconstruction circle that cuts through the body."""

from __future__ import annotations

import numpy as np

from calcinosis.follow import Visit, register_volumes
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


def _stored_coronal(vol: Volume) -> Volume:
    """``vol`` (axial, identity direction) stored as coronal slices: array ``[y, z, x]``."""
    d = np.asarray(vol.direction, float)
    return Volume(np.ascontiguousarray(np.transpose(vol.array, (1, 0, 2))),
                  (vol.spacing[0], vol.spacing[2], vol.spacing[1]), vol.origin,
                  np.stack([d[:, 0], d[:, 2], d[:, 1]], axis=1), {})


def test_slice_thickness_of_a_coronal_reformat_is_its_head_foot_spacing():
    # The warning took the spacing between the coronal slices (0.8 mm, a pixel of the axial
    # scan) for their thickness: "slice thickness differs (1.5 mm then, 0.8 mm now)" for one scan
    # stored both ways, and the same for 3 mm slices, where the real difference went unsaid.
    from calcinosis.follow.compare import _thickness

    def visit(vol):
        return Visit(vol, (), np.zeros(vol.shape, np.uint16), "v")

    axial = Volume(np.zeros((10, 20, 30), np.int16), (0.8, 0.8, 1.5))
    thick = Volume(np.zeros((5, 20, 30), np.int16), (0.8, 0.8, 3.0))
    assert _thickness(visit(axial)) == 1.5
    assert _thickness(visit(_stored_coronal(axial))) == 1.5
    assert _thickness(visit(_stored_coronal(thick))) == 3.0
