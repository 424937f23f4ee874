"""One input record through the service path, in process, checking every promise on the way.

The worker's side: ``decode_event`` and ``check_key``; a refused record must be a
:class:`DecodeError` whose dead letter encodes. An accepted one crosses to the engine process as
``RemoteEngine.step`` encodes it, is validated there again (``decode_value``) into the same event,
and is applied by ``Engine.step``: its table values and recommendations must encode as JSON, parse
back as table state, and stay within their bounds; a rebuild from the tables must agree.

Shared by the atheris target (``fuzz/decode_fuzz.py``), the replay of its corpus and the
hypothesis properties (``tests/unit/test_hostile_input.py``). A broken promise raises (an
``AssertionError`` or whatever escaped); a refused record is never an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from socrec_online.engagement import MAX_COMMENTS
from socrec_online.events import INPUT_TOPICS, Event, key_of, to_dict, topic_of
from socrec_online.service.decode import (
    DeadLetterReason,
    DecodeError,
    check_key,
    dead_letter_record,
    decode_event,
    decode_value,
)
from socrec_online.service.engine import Engine, TextEncoderLike, vader_sentiment
from socrec_online.service.state import (
    MAX_UNFOLLOWED,
    ActivityState,
    ItemState,
    SocialState,
    load_values,
)
from socrec_online.settings import Settings

OTHER_KEY = b"\xffsomeone-else"
KEY_MODES = ("owner", "none", "other")
REASONS = frozenset(r.value for r in DeadLetterReason)
_SENTIMENT: Callable[[str], float] | None = None


def path_settings(**overrides: Any) -> Settings:
    """Small limits, so that inputs at and past every bound are short and cheap; no retention."""
    base: dict[str, Any] = {
        "device": "cpu", "torch_threads": 1, "max_text_bytes": 256, "max_payload_bytes": 1024,
        "max_id_chars": 32, "max_tags": 4, "top_k": 5, "recent_per_user": 8, "seen_per_user": 16,
        "dedup_ids_per_key": 8, "dead_letter_payload_bytes": 128,
        # retention off: a hostile far-future event moves the clock to wall time, and a sweep would then
        # evict the corpus's items (published at fixed past times), changing the seeds' expected
        # outcomes; eviction has its own tests (tests/unit/test_retention.py)
        "user_ttl_s": 0.0, "item_retention_s": 0.0,
    }  # fmt: skip
    base.update(overrides)
    return Settings(**base)


def split_input(data: bytes) -> tuple[str, str, bytes]:
    """A fuzz input as (topic, key mode, value): byte 0 picks the topic, byte 1 the key (the event's
    owner id, none, or someone else's), the rest is the record's value."""
    if len(data) < 2:
        return INPUT_TOPICS[0], KEY_MODES[0], data
    return INPUT_TOPICS[data[0] % len(INPUT_TOPICS)], KEY_MODES[data[1] % len(KEY_MODES)], data[2:]


def join_input(topic: str, key_mode: str, value: bytes) -> bytes:
    return bytes([INPUT_TOPICS.index(topic), KEY_MODES.index(key_mode)]) + value


class ServicePath:
    """An engine and the tables the worker would write, fed one record (or batch) at a time."""

    def __init__(self, settings: Settings, encoder: TextEncoderLike) -> None:
        self.settings = settings
        self.encoder = encoder
        self.engine = self.new_engine()
        self.tables: dict[str, dict[str, Any]] = {n: {} for n in Engine.TABLES}

    def new_engine(self) -> Engine:
        """An engine on these settings (VADER's lexicon loaded once per process: it is slow to load)."""
        global _SENTIMENT
        if _SENTIMENT is None:
            _SENTIMENT = vader_sentiment()
        return Engine(self.settings, self.encoder, sentiment=_SENTIMENT)

    def decode(self, topic: str, key_mode: str, raw: bytes | None) -> Event | str:
        """The worker's decode step: the event, or the dead-letter reason (its record checked)."""
        try:
            ev = decode_event(topic, raw, self.settings)
            key = key_of(ev).encode("utf-8") if key_mode == "owner" else None if key_mode == "none" else OTHER_KEY
            check_key(ev, key)
        except DecodeError as exc:
            assert exc.reason.value in REASONS and exc.detail
            rec = dead_letter_record(
                topic, 0, 0, exc.reason, exc.detail, raw, self.settings.dead_letter_payload_bytes
            )
            assert orjson.loads(orjson.dumps(rec))["reason"] == exc.reason.value
            return exc.reason.value
        return ev

    def feed(self, data: bytes) -> str:
        """One fuzz input (``split_input``): its dead-letter reason, or the engine's outcome."""
        got = self.decode(*split_input(data))
        if isinstance(got, str):
            return got
        out = self.apply([got])
        return out["rejected"][0][1] if out["rejected"] else "applied"

    def apply(self, events: Sequence[Event]) -> dict[str, Any]:
        """Accepted events across the process boundary and through the engine; outputs checked."""
        s = self.settings
        wire = orjson.dumps(["step", [[[topic_of(e), to_dict(e)] for e in events]]], option=orjson.OPT_NON_STR_KEYS)
        _method, (sent,) = orjson.loads(wire)
        again = [decode_value(topic, value, s) for topic, value in sent]
        assert again == list(events), "the engine process validated another event than the worker"
        out = self.engine.step(again)
        orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)  # the engine process's reply
        assert all(reason in REASONS for _i, reason, _d in out["rejected"])
        for name, kv in out["table_updates"].items():
            for key, value in kv.items():
                if value is None:  # a deletion (retention evicted the key): a tombstone in the changelog
                    self.tables[name].pop(key, None)
                else:
                    self.tables[name][key] = self._check_value(name, value)
        for p in out["payloads"]:
            got = [i["id"] for i in p["items"]]
            assert len(got) <= max(s.top_k, s.who_to_follow_k) and len(got) == len(set(got))
            if p["kind"] == "users":  # item and user ids are separate namespaces
                assert p["user_id"] not in got
            assert p["kind"] in ("items", "users", "query")
        assert self.engine.clock <= time.time() + 3601.0, "the event-time clock ran into the future"
        return out

    def _check_value(self, name: str, value: Any) -> Any:
        """A table value as the changelog stores it: encodes, parses back, stays within its bounds."""
        encoded = orjson.dumps(value)
        stored = orjson.loads(encoded)
        s = self.settings
        assert len(encoded) <= s.max_table_value_bytes, (name, len(encoded))
        lim = s.dedup_ids_per_key
        if name == "activity":
            act, bad = load_values({"k": stored}, ActivityState.from_json, lim)
            assert not bad and len(act["k"].ids.to_list()) <= lim, bad
            assert len(act["k"].recent) <= s.recent_per_user and len(act["k"].seen) <= s.seen_per_user
            assert len(act["k"].comments) <= MAX_COMMENTS
        elif name == "social":
            soc, bad = load_values({"k": stored}, SocialState.from_json, lim)
            assert not bad and len(soc["k"].ids.to_list()) <= lim, bad
            assert len(soc["k"].unfollowed) <= MAX_UNFOLLOWED
        else:
            item, bad = load_values({"k": stored}, ItemState.from_json, lim)
            assert not bad and len(item["k"].ids.to_list()) <= lim, bad
            assert len(item["k"].tags) <= s.max_tags and len(item["k"].text.encode("utf-8")) <= s.max_text_bytes
        return stored

    def check_restore(self) -> Engine:
        """A worker restarted on these tables rebuilds the same graph and catalogue.

        Users are compared as a subset: rows are append-only, so the live engine keeps a row for
        an id that no table value names any more (an item's former author)."""
        fresh = self.new_engine()
        fresh.restore(self.tables)
        live, again = self.engine.stats(), fresh.stats()
        same = ("items", "edges", "profiles")
        assert {k: again[k] for k in same} == {k: live[k] for k in same}, (again, live)
        assert set(fresh.users) <= set(self.engine.users)
        assert set(fresh.activity) == set(self.tables["activity"])
        assert set(fresh.social) == set(self.tables["social"])
        assert fresh.clock <= time.time() + 3601.0
        return fresh
