"""Free-text matching: a term under a negation (NegEx cues and scope) does not count."""

from __future__ import annotations

import pytest

from calcinosis.clinical.text import affirmed, negated, negated_statement


@pytest.mark.parametrize(
    ("text", "terms", "expected"),
    [
        ("Raynaud phenomenon", ("raynaud",), True),
        ("no Raynaud phenomenon", ("raynaud",), False),
        ("Raynaud phenomenon was excluded", ("raynaud",), False),
        ("systemic sclerosis (limited, CREST)", ("systemic sclerosis",), True),
        ("negative for scleroderma", ("scleroderma",), False),
        ("pain-free", ("pain",), False),
        ("without pain", ("pain",), False),
        ("pain not controlled", ("pain",), True),  # "not" after the term negates nothing
        ("no necrosis, painful nodules", ("painful",), True),  # the comma ends the negation
        ("not lupus but dermatomyositis", ("dermatomyositis",), True),  # so does "but"
        ("nonsteroidal pain relief", ("pain",), True),  # "non" is not the word "no"
        ("no improvement of pain", ("pain",), True),  # a pseudo-negation (NegEx)
        ("not only Raynaud phenomenon", ("raynaud",), True),
        ("Raynaud negative", ("raynaud",), False),
        ("limited SSc antibody negative", ("ssc",), True),  # the antibody is negative, not SSc
    ],
)
def test_affirmed(text, terms, expected):
    assert affirmed(text, terms) is expected
    assert negated(text, terms) is (not expected)


def test_exceptions_and_whole_statements():
    assert not affirmed("lupus anticoagulant", ("lupus",), ("lupus anticoagulant",))
    assert affirmed("lupus anticoagulant and SLE", ("lupus", "sle"), ("lupus anticoagulant",))
    assert negated_statement("no injections") and negated_statement("None known")
    assert not negated_statement("injections, no trauma")
    assert not negated("heel stick", ("raynaud",))  # no mention is not a denial
