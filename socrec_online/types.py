"""Type aliases shared by the whole library (one place, so ids never get mixed up)."""

from __future__ import annotations

from typing import NewType, TypeAlias

UserId: TypeAlias = str
ItemId: TypeAlias = str
EventId: TypeAlias = str
Row = NewType("Row", int)
"""Index of an id in an :class:`~socrec_online.idmap.IdMap` (a row of an embedding table)."""

ZERO_SHOT_VERSION = "zero-shot"

SCHEMA_VERSION = 1
"""Version of the topics' JSON contract (socrec_online/contract.py, docs/topics.md), stamped on
output records as ``schema_version``; it changes only with a change that is not additive."""
