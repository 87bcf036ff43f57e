"""Guards shared by the readers of a user's files (the case file and the imaging summary).

A message quotes a user's value only in short: a value can be megabytes (a long text, a
big list), and the message is one readable line. (A path is checked to be a regular file
before it is opened by :func:`calcinosis.paths.check_regular_file`.)
"""

from __future__ import annotations

import re
import reprlib
from decimal import Decimal
from typing import Any


#: Most characters of a user's value (or key) quoted in a message.
MAX_QUOTE_CHARS = 80
#: Longest number text that :func:`exponent_hint` rewrites (a longer one is quoted as it is).
MAX_HINTED_CHARS = 24
#: Longest plain decimal suggested for a number written with an exponent (``5e-3`` -> ``0.005``);
#: beyond it (``5e-30``) only the exponent form YAML reads is suggested.
MAX_PLAIN_DECIMAL_CHARS = 16

# reprlib stops at a few items per container and a few levels, so a huge or deeply nested
# value costs no more to quote than a small one.
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 4
_REPR.maxstring = _REPR.maxother = MAX_QUOTE_CHARS
_REPR.maxlong = 40

# A number with an exponent but without a decimal point or without the exponent's sign
# (5e-3, 1.5e3): YAML 1.1, which PyYAML reads, takes it for text.
_EXPONENT_TEXT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def quote(value: Any) -> str:
    """``repr(value)`` cut to at most :data:`MAX_QUOTE_CHARS` characters (``...`` at the cut)."""
    try:
        return _cut(_REPR.repr(value))
    except ValueError:  # an int of more than 4300 digits (YAML reads 0x... of any length)
        return f"<a {type(value).__name__} too long to show>"


def key_text(key: Any) -> str:
    """A mapping key as text for a field name (``labs.<key>``), cut like :func:`quote`."""
    return _cut(key) if isinstance(key, str) else quote(key)


def exponent_hint(value: Any) -> str | None:
    """What to write instead of a number that YAML read as text because of its exponent.

    ``"5e-3"`` -> ``"write 0.005 or 5.0e-3 (YAML reads 5e-3 as text: ...)"``; ``None`` for
    any other value.
    """
    if not isinstance(value, str) or len(value) > MAX_HINTED_CHARS:
        return None
    text = value.strip()
    if _EXPONENT_TEXT.fullmatch(text) is None:
        return None
    mantissa, exponent = re.split("[eE]", text)
    if "." not in mantissa:
        mantissa += ".0"
    if exponent[0] not in "+-":
        exponent = "+" + exponent
    scientific = f"{mantissa}e{exponent}"
    choices = scientific
    if abs(int(exponent)) <= MAX_PLAIN_DECIMAL_CHARS:  # else the plain form is too long to read
        plain = f"{Decimal(text):f}"
        if len(plain) <= MAX_PLAIN_DECIMAL_CHARS:
            choices = f"{plain} or {scientific}"
    return f"write {choices} (YAML reads {text} as text: an exponent needs a decimal point and a sign)"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 3] + "..."
