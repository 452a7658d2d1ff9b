"""The one base type of every error a user can cause and fix.

A bad YAML key, a flag out of bounds, a missing dataset, a run folder in the way, an unreachable
cluster: each module raises its own subclass of :class:`NasError` whose message is already the one
line to print (what is wrong, and what is allowed). The CLI catches this type alone, prints the
line and exits 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class NasError(Exception):
    """Something the user can fix; ``str(error)`` is the whole message, one line."""


class UserError(NasError):
    """A user's mistake found by a command itself (a flag combination, a path)."""


__all__ = ["NasError", "UserError"]
