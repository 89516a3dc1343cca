"""The errors of pruning.compact, in one place so every module can raise them."""

from __future__ import annotations


class CompactError(ValueError):
    """The model cannot be compacted (untraceable, or the result would compute something else)."""


class ExportError(ValueError):
    """An artifact cannot be written, or one on disk is missing, modified, truncated or not
    something this package wrote."""
