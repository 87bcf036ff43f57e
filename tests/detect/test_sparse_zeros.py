"""Label maps and bone masks on ordinary pages are zeroed arrays like ``np.zeros``."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.sparse_zeros import sparse_zeros


@pytest.mark.parametrize("shape, dtype", [((40, 64, 70), np.uint16), ((9, 33, 17), bool), ((3, 4, 5), np.uint32)])
def test_zeroed_writable_array_of_the_shape_and_type(shape, dtype):
    a = sparse_zeros(shape, dtype)
    assert a.shape == shape and a.dtype == np.dtype(dtype) and a.flags.writeable and a.flags.c_contiguous
    assert not a.any()
    a[1:3, 2:4, 1:5] = 7
    want = np.zeros(shape, dtype)
    want[1:3, 2:4, 1:5] = 7
    assert np.array_equal(a, want)
    # A view keeps the memory alive after the array itself is gone.
    view = a[1:3]
    del a
    assert int(view.astype(np.int64).sum()) == int(want[1:3].astype(np.int64).sum())
