"""Exceptions raised by :mod:`lifelong`.

Every error a user can cause (a bad config, bad data, a corrupt checkpoint) is a
:class:`LifelongError` whose message says what was wrong and how to fix it. The CLI prints that
message without a traceback and exits with status 2.
"""

from __future__ import annotations


class LifelongError(Exception):
    """Base class of every error that a user can fix."""


class ConfigError(LifelongError):
    """A run configuration, flag or hyper-parameter is malformed or unknown."""


class DataError(LifelongError):
    """A dataset is missing, malformed, or does not fit the request (NaN, bad labels, bad shape)."""


class CheckpointError(LifelongError):
    """A checkpoint or run directory cannot be used to resume (corrupt, partial or mismatched)."""
