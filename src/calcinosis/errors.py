"""The package's error types.

The CLI maps :class:`InputError` to exit code 2 and a one-line message; any other
:class:`CalcinosisError` also exits with 2; anything else is a bug (exit code 1).
"""


class CalcinosisError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(CalcinosisError, ValueError):
    """The input (file, folder, option or case file) cannot be used.

    The message is one line: what is wrong, and where possible how to fix it.
    """
