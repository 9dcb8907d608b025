"""The one kind of error a face reports as a line: :class:`RestoreError`."""

from __future__ import annotations


class RestoreError(ValueError):
    """A problem with what was asked (an input, its tables, an option, the weights), named in the
    message; faces show it as one line. Any other exception is a bug and keeps its traceback."""
