"""Typed input events, one class per topic of DESIGN.md.

Datasets replay these, the stream decoder produces them, the service consumes them:
one representation from producer to model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeAlias

from socrec_online.types import EventId, ItemId, UserId


@dataclass(frozen=True, slots=True)
class Click:
    event_id: EventId
    user_id: UserId
    item_id: ItemId
    ts: float
    dwell_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Like:
    event_id: EventId
    user_id: UserId
    item_id: ItemId
    ts: float
    undo: bool = False


@dataclass(frozen=True, slots=True)
class Comment:
    event_id: EventId
    user_id: UserId
    item_id: ItemId
    ts: float
    text: str


@dataclass(frozen=True, slots=True)
class Follow:
    """``user_id`` follows ``target_id`` (``undo`` = unfollow)."""

    event_id: EventId
    user_id: UserId
    target_id: UserId
    ts: float
    undo: bool = False


@dataclass(frozen=True, slots=True)
class ItemPublished:
    event_id: EventId
    item_id: ItemId
    ts: float
    text: str
    author_id: UserId | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Profile:
    """Declared interests (the cold-start questionnaire)."""

    event_id: EventId
    user_id: UserId
    ts: float
    text: str


@dataclass(frozen=True, slots=True)
class Query:
    event_id: EventId
    user_id: UserId
    ts: float
    text: str


Event: TypeAlias = Click | Like | Comment | Follow | ItemPublished | Profile | Query
Interaction: TypeAlias = Click | Like | Comment

TOPIC_OF: dict[type, str] = {
    Click: "clicks",
    Like: "likes",
    Comment: "comments",
    Follow: "follows",
    ItemPublished: "items",
    Profile: "profiles",
    Query: "queries",
}
EVENT_OF_TOPIC: dict[str, type] = {v: k for k, v in TOPIC_OF.items()}
INPUT_TOPICS: tuple[str, ...] = tuple(TOPIC_OF.values())


def topic_of(event: Event) -> str:
    return TOPIC_OF[type(event)]


def key_of(event: Event) -> str:
    """Kafka key: the user id, except for items (keyed by item id)."""
    if isinstance(event, ItemPublished):
        return event.item_id
    return event.user_id


_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in TOPIC_OF}


def to_dict(event: Event) -> dict[str, Any]:
    """JSON-ready value as DESIGN.md specifies it (optional fields left out when unset)."""
    names = _FIELDS.get(type(event))
    # Every field is a scalar or a tuple of str, so a flat copy is what asdict's deep copy gives,
    # at a fraction of the cost (the worker converts every event it hands to the engine process).
    d = {n: getattr(event, n) for n in names} if names is not None else asdict(event)
    if isinstance(event, ItemPublished):
        d["tags"] = list(event.tags)
        if event.author_id is None:
            del d["author_id"]
    if isinstance(event, Click) and event.dwell_ms is None:
        del d["dwell_ms"]
    return d
