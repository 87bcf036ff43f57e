"""The warnings of each visit's analysis that comparison.json and the comparison report repeat."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from calcinosis.follow.tables import _analysis_warnings
from calcinosis.pipeline import _acquisition_warnings
from calcinosis.volume import Volume


def test_other_series_descriptions_stay_out_of_the_comparison():
    # A visit analysed by compare itself passed its raw warnings on: the one naming the DICOM
    # folder's other CT series quoted their SeriesDescription (free text that can hold the
    # patient's name; the visit's own summary.json leaves it out).
    other = [{"series_uid": "1.2.3", "slices": 4, "description": "Zyxwquist recon"}]
    volume = Volume(np.zeros((2, 8, 8), np.int16), (1.0, 1.0, 1.0), metadata={"other_ct_series": other})
    analysis = SimpleNamespace(warnings=tuple(_acquisition_warnings(volume)), volume=volume)
    (line,) = _analysis_warnings(SimpleNamespace(analysis=analysis, summary=None))
    assert "1.2.3 (4 slices)" in line and "Zyxwquist" not in line
