"""Synthetic CT / radiograph / ultrasound phantoms with exact ground truth.

CT: :func:`make_ct_phantom` builds a :class:`PhantomCT` (volume + truth);
:func:`write_phantom` writes it with its ``truth.json``.
"""

from calcinosis.phantom.ct import (
    BODY_PARTS,
    DepositSpec,
    DepositTruth,
    ObjectTruth,
    PhantomCT,
    PhantomSettings,
    make_ct_phantom,
)
from calcinosis.phantom.io import write_phantom

__all__ = [
    "BODY_PARTS",
    "DepositSpec",
    "DepositTruth",
    "ObjectTruth",
    "PhantomCT",
    "PhantomSettings",
    "make_ct_phantom",
    "write_phantom",
]
