"""The errors sweep expects, and how any error reads in one line."""

from __future__ import annotations


class SweepError(Exception):
    """An expected reason a command cannot do what it was asked: a broken sweep file, an
    unreachable cluster or tracking store, a storage path that cannot be written. The CLI
    prints the message, one line per problem, and exits 2."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
