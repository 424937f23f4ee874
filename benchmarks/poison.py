"""Poison input through a live worker: bad records of every kind on every input topic, among good events.

:func:`poison_scenario` sends them through the project's own client (aiokafka, murmur2 partitioner)
or an independent one (confluent-kafka on its defaults: CRC32 partitioner, its own batching), then
watches the worker from outside: every bad record must be in ``dead-letters`` once, with the reason
its kind calls for and the origin (topic, partition, offset) it was produced at; every good event
must be applied, and answered where the engine answers that kind of event; the worker process
must be the same one throughout. A decodable record on a partition other than its owner's is
produced again to the owner's (``streams/routing.py``); one it then dead-letters names the copy,
which the scenario follows back to the original through the copy's ``socrec-rerouted-from`` header.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from socrec_online.events import (
    INPUT_TOPICS,
    Click,
    Comment,
    Event,
    Follow,
    ItemPublished,
    Like,
    Profile,
    Query,
    key_of,
    to_dict,
    topic_of,
)
from socrec_online.settings import Settings
from streams.routing import REROUTED_FROM

if TYPE_CHECKING:
    from benchmarks.harness.rig import Rig

Origin = tuple[str, int, int]  # (base topic, partition, offset)
BadRecord = tuple[str, str | None, bytes, str]  # (base topic, key, value, the dead-letter reason expected)
PRODUCERS = ("aiokafka", "confluent")
ANSWERED_TOPICS = frozenset({"clicks", "likes", "comments", "follows", "profiles", "queries"})
_DEFAULTS = Settings.model_fields
MAX_ID = int(_DEFAULTS["max_id_chars"].default)
MAX_TEXT = int(_DEFAULTS["max_text_bytes"].default)
MAX_PAYLOAD = int(_DEFAULTS["max_payload_bytes"].default)


def table_of(topic: str) -> str:
    """The table an input topic's events change (``items``, ``social`` or ``activity``)."""
    return "items" if topic == "items" else "social" if topic == "follows" else "activity"


def answered_stream(n_users: int, *, seed: int = 0, tag: str = "a") -> list[Event]:
    """Items, then one click, like, comment, follow or profile per user, and a query for every third.

    The engine answers a micro-batch with one list per user, whose ``source_event_id`` is that
    user's last event in the batch: with one such event per user, each one's answer is checkable.
    Queries are answered one by one, items not at all (they are checked as applied).
    """
    rng = random.Random(seed)
    t = time.time()
    users = [f"{tag}u{k}" for k in range(n_users)]
    items = [f"{tag}i{j}" for j in range(max(20, n_users // 5))]
    words = ["jazz", "chess", "hiking", "coffee", "vinyl", "poetry", "robotics", "sushi"]
    out: list[Event] = [
        ItemPublished(f"{tag}.items.{j}", i, t, " ".join(rng.sample(words, 3)), author_id=rng.choice(users))
        for j, i in enumerate(items)
    ]
    for k, u in enumerate(users):
        item, kind = rng.choice(items), k % 5
        if kind == 0:
            out.append(Click(f"{tag}.clicks.{k}", u, item, t, dwell_ms=rng.choice([None, 5000])))
        elif kind == 1:
            out.append(Like(f"{tag}.likes.{k}", u, item, t))
        elif kind == 2:
            out.append(Comment(f"{tag}.comments.{k}", u, item, t, rng.choice(["love it", "awful, boring"])))
        elif kind == 3:
            out.append(Follow(f"{tag}.follows.{k}", u, users[(k + 1) % n_users], t))
        else:
            out.append(Profile(f"{tag}.profiles.{k}", u, t, f"I like {' and '.join(rng.sample(words, 2))}"))
        if k % 3 == 0:
            out.append(Query(f"{tag}.queries.{k}", u, t, f"something about {rng.choice(words)}"))
    rest = out[len(items) :]
    rng.shuffle(rest)  # the topics interleave
    return out[: len(items)] + rest


def poison_records(n_bad: int, *, users: list[str], items: list[str], seed: int = 0) -> list[BadRecord]:
    """``n_bad`` bad records of every kind; the kinds any topic can carry go round every input topic."""
    rng = random.Random(seed)
    now = time.time()

    def base(topic: str, k: int) -> dict[str, Any]:
        """A valid value of ``topic`` (each kind below breaks exactly one thing of it)."""
        d: dict[str, Any] = {"event_id": f"bad-{topic}-{k}", "ts": now}
        if topic == "items":
            d.update(item_id=f"bad-item-{k}", text="a fine thing")
        else:
            d["user_id"] = rng.choice(users)
        if topic in ("clicks", "likes", "comments"):
            d["item_id"] = rng.choice(items)
        if topic == "follows":
            d["target_id"] = next(v for v in (rng.choice(users), f"{d['user_id']}-other") if v != d["user_id"])
        if topic in ("comments", "profiles", "queries"):
            d["text"] = "hello there"
        return d

    def mutated(topic: str, k: int, **kw: Any) -> tuple[str, str | None, bytes]:
        """``base`` with ``kw`` changed (``_DROP`` drops a field), keyed by its owner as a good producer keys it."""
        d = base(topic, k)
        key = str(d["item_id"] if topic == "items" else d["user_id"])
        d.update(kw)
        return topic, key, orjson.dumps({f: v for f, v in d.items() if v is not _DROP})

    def raw(topic: str, k: int, change: Callable[[bytes], bytes]) -> tuple[str, str | None, bytes]:
        """``base``'s JSON, then its bytes changed."""
        t, key, value = mutated(topic, k)
        return t, key, change(value)

    def id_field(topic: str) -> str:
        return "item_id" if topic == "items" else "user_id"

    def wrong_key(topic: str, k: int) -> tuple[str, str | None, bytes]:
        t, key, value = mutated(topic, k)
        return t, f"{key}-not-the-owner", value

    def self_follow(k: int) -> tuple[str, str | None, bytes]:
        d = base("follows", k)
        return "follows", str(d["user_id"]), orjson.dumps({**d, "target_id": d["user_id"]})

    anywhere: list[tuple[str, Callable[[str, int], tuple[str, str | None, bytes]]]] = [
        ("bad_json", lambda t, k: raw(t, k, lambda v: v[:-7])),
        ("not_object", lambda t, k: raw(t, k, lambda _v: [b"[1, 2, %d]" % k, b"null", b"42", b'"text"'][k % 4])),
        ("empty_payload", lambda t, k: raw(t, k, lambda _v: b"")),
        ("bad_utf8", lambda t, k: raw(t, k, lambda v: v.replace(b'"bad-', b'"\xff\xfebad-'))),
        ("bad_utf8", lambda t, k: raw(t, k, lambda v: v.replace(b'"bad-', b'"\\ud800bad-'))),
        ("payload_too_large", lambda t, k: mutated(t, k, pad="y" * (MAX_PAYLOAD + 10))),
        ("missing_field", lambda t, k: mutated(t, k, event_id=_DROP)),
        ("missing_field", lambda t, k: mutated(t, k, **{id_field(t): _DROP})),
        ("wrong_type", lambda t, k: mutated(t, k, ts="yesterday")),
        ("wrong_type", lambda t, k: mutated(t, k, event_id=k)),
        ("not_finite", lambda t, k: raw(t, k, lambda v: v.replace(b'"ts":', b'"ts":NaN,"x":'))),
        ("not_finite", lambda t, k: raw(t, k, lambda v: v.replace(b'"ts":', b'"ts":1e999,"x":'))),
        ("bad_timestamp", lambda t, k: mutated(t, k, ts=now * 1000.0)),
        ("bad_timestamp", lambda t, k: mutated(t, k, ts=-1.0)),
        ("empty_id", lambda t, k: mutated(t, k, **{id_field(t): ["", "   "][k % 2]})),
        ("id_too_long", lambda t, k: mutated(t, k, event_id="e" * (MAX_ID + 1))),
        ("wrong_key", wrong_key),
    ]  # fmt: skip
    texts = ("comments", "items", "profiles", "queries")
    interactions = ("clicks", "likes", "comments")
    special: list[tuple[str, Callable[[int], tuple[str, str | None, bytes]]]] = [
        ("wrong_type", lambda k: mutated("likes", k, undo="yes")),
        ("unknown_item", lambda k: mutated(interactions[k % 3], k, item_id=f"no-such-item-{k}")),
        ("text_too_long", lambda k: mutated(texts[k % 4], k, text="x" * (MAX_TEXT + 1))),
        ("self_follow", lambda k: self_follow(k)),
        ("out_of_range", lambda k: mutated("clicks", k, dwell_ms=-5)),
        ("empty_text", lambda k: mutated("queries", k, text="   ")),
    ]  # fmt: skip
    out: list[BadRecord] = []
    n_kinds = len(anywhere) + len(special)
    for k in range(n_bad):
        j = k % n_kinds
        if j < len(anywhere):
            reason, make = anywhere[j]
            topic, key, value = make(INPUT_TOPICS[(k // n_kinds) % len(INPUT_TOPICS)], k)
        else:
            reason, make_one = special[j - len(anywhere)]
            topic, key, value = make_one(k)
        out.append((topic, key, value, reason))
    rng.shuffle(out)
    return out


_DROP = object()


async def send_aiokafka(rig: Rig, records: list[tuple[str, str | None, bytes]]) -> list[tuple[int, int]]:
    """The project's client (murmur2, as the workers partition): (partition, offset) of each record."""
    return [(md.partition, md.offset) for md in await rig.produce_raw(records)]


def send_confluent(bootstrap: str, prefix: str, records: list[tuple[str, str | None, bytes]]) -> list[tuple[int, int]]:
    """confluent-kafka on its defaults (only ``bootstrap.servers`` set): (partition, offset) of each record."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    where: list[tuple[int, int] | None] = [None] * len(records)
    errors: list[str] = []

    def delivered(i: int) -> Callable[[Any, Any], None]:
        def cb(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                where[i] = (int(msg.partition()), int(msg.offset()))

        return cb

    for i, (topic, key, value) in enumerate(records):
        while True:
            try:
                producer.produce(prefix + topic, value=value, key=key, on_delivery=delivered(i))
                break
            except BufferError:  # its local queue is full: let deliveries drain it
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(120)
    if left or errors or any(w is None for w in where):
        raise RuntimeError(f"confluent-kafka delivered {sum(w is not None for w in where)} of {len(records)}: {errors[:3]}")
    return [w for w in where if w is not None]


async def _send(rig: Rig, producer: str, records: list[tuple[str, str | None, bytes]]) -> list[tuple[int, int]]:
    if producer == "confluent":
        return await asyncio.to_thread(send_confluent, rig.env["SOCREC_KAFKA_BOOTSTRAP"], rig.prefix, records)
    return await send_aiokafka(rig, records)


async def _dead_letters_by_origin(rig: Rig) -> tuple[dict[Origin, str], int, int]:
    """(origin -> reason, dead letters repeating an origin, dead letters found through a re-routed copy)."""
    letters = [r.json() for r in await rig.dead_letters()]
    copies: dict[Origin, Origin] = {}
    if any(_copy_possible(d) for d in letters):
        for r in await rig.inputs():
            src = dict(r.headers).get(REROUTED_FROM)
            if src is not None:
                t, p, o = src.decode().rsplit("/", 2)
                copies[(r.topic[len(rig.prefix) :], r.partition, r.offset)] = (t, int(p), int(o))
    routed: dict[Origin, str] = {}
    repeated = via_copy = 0
    for d in letters:
        origin: Origin = (d["topic"], int(d["partition"]), int(d["offset"]))
        if origin in copies:
            origin, via_copy = copies[origin], via_copy + 1
        repeated += origin in routed
        routed[origin] = d["reason"]
    return routed, repeated, via_copy


def _copy_possible(d: dict[str, Any]) -> bool:
    """A reason the engine gives after routing (the record decoded, so it may have been re-routed)."""
    return d.get("reason") in ("unknown_item", "state_too_large", "processing_failed")


async def poison_scenario(
    rig: Rig,
    good: list[Event],
    n_bad: int,
    *,
    seed: int = 0,
    timeout: float = 180.0,
    producer: str = "aiokafka",
) -> dict[str, Any]:
    """Bad records interleaved with ``good`` ones, sent by ``producer``: where every one of them ended up.

    Items (with their share of bad records) go first and are waited for, so a good interaction
    never meets an item still on its way; the rest follows, each good event among its share.
    """
    if producer not in PRODUCERS:
        raise ValueError(f"producer must be one of {PRODUCERS}, not {producer!r}")
    await rig.ensure_topics()
    await asyncio.to_thread(rig.start)
    pid = rig.pid
    m0 = await asyncio.to_thread(rig.metrics)
    start_time = m0.get("process_start_time_seconds")
    users = sorted({e.user_id for e in good if hasattr(e, "user_id")}) or ["u"]
    items = sorted({e.item_id for e in good if isinstance(e, ItemPublished)}) or ["i"]
    bad = poison_records(n_bad, users=users, items=items, seed=seed)
    per = max(1, len(bad) // max(1, len(good)))
    phases: list[list[tuple[str, str | None, bytes, str | None]]] = [[], []]
    b = 0
    for e in good:
        phase = phases[0 if isinstance(e, ItemPublished) else 1]
        phase.append((topic_of(e), key_of(e), orjson.dumps(to_dict(e)), None))
        phase.extend(bad[b : b + per])
        b += per
    phases[1].extend(bad[b:])
    good_ids = {(table_of(topic_of(e)), key_of(e), e.event_id) for e in good}
    good_items = {e.item_id for e in good if isinstance(e, ItemPublished)}
    t0 = time.monotonic()
    deadline = t0 + timeout
    expected: dict[Origin, str] = {}
    for n, phase in enumerate(phases):
        where = await _send(rig, producer, [(t, k, v) for t, k, v, _r in phase])
        for (topic, _k, _v, reason), (partition, offset) in zip(phase, where, strict=True):
            if reason is not None:
                expected[(topic, partition, offset)] = reason
        while n == 0 and good_items and time.monotonic() < deadline:
            state = await asyncio.to_thread(rig.state)
            if state is not None and good_items <= set(state["tables"].get("items", {})):
                break
            await asyncio.sleep(0.5)
    send_s = time.monotonic() - t0
    answerable = _answerable(good)
    routed: dict[Origin, str] = {}
    repeated = via_copy = 0
    applied: set[str] = set()
    answered: set[str] = set()
    while time.monotonic() < deadline:
        routed, repeated, via_copy = await _dead_letters_by_origin(rig)
        state = await asyncio.to_thread(rig.state)
        if state is not None:
            applied = {
                eid
                for table, key, eid in good_ids
                if eid in set((state["tables"].get(table, {}).get(key) or {}).get("ids") or ())
            }
        if answerable - answered:
            answered = answerable & {
                str((r.json() or {}).get("source_event_id")) for r in await rig.recommendations()
            }
        if len(routed) >= len(expected) and len(applied) == len(good_ids) and answered == answerable:
            break
        await asyncio.sleep(1.0)
    seconds = time.monotonic() - t0
    m1 = await asyncio.to_thread(rig.metrics)
    agent_errors = sum(v for k, v in m1.items() if k.startswith("socrec_agent_errors_total"))
    wrong_reason = {k: (v, routed.get(k)) for k, v in expected.items() if k in routed and routed[k] != v}
    alive = rig.worker is not None and rig.worker.alive() and rig.pid == pid
    return {
        "producer": producer,
        "bad_inputs": len(expected),
        "dead_lettered": sum(1 for k in expected if k in routed),
        "dead_lettered_right_reason": sum(1 for k, v in expected.items() if routed.get(k) == v),
        "dead_lettered_via_rerouted_copy": via_copy,
        "dead_letters_repeated": repeated,
        "dead_letters_unexpected": sum(1 for k in routed if k not in expected),
        "missing_examples": [k for k in expected if k not in routed][:10],
        "wrong_reason_examples": list(wrong_reason.items())[:10],
        "good": len(good_ids),
        "good_applied": len(applied),
        "good_answerable": len(answerable),
        "good_answered": len(answered),
        "unanswered_examples": sorted(answerable - answered)[:10],
        "by_reason": _count(expected.values()),
        "bad_by_topic": _count(t for t, _p, _o in expected),
        "good_by_topic": _count(topic_of(e) for e in good),
        "agent_errors": agent_errors,
        "same_process": alive and m1.get("process_start_time_seconds") == start_time,
        "agent_restarts": int(agent_errors) + (0 if alive else 1),
        "send_seconds": send_s,
        "seconds": seconds,
    }


def _answerable(good: list[Event]) -> set[str]:
    """Good events whose answer names them: every query, and the only answered event of its user."""
    per_user: dict[str, list[str]] = {}
    out: set[str] = set()
    for e in good:
        topic = topic_of(e)
        if topic == "queries":
            out.add(e.event_id)
        elif topic in ANSWERED_TOPICS:
            per_user.setdefault(key_of(e), []).append(e.event_id)
    return out | {ids[0] for ids in per_user.values() if len(ids) == 1}


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


__all__ = [
    "ANSWERED_TOPICS",
    "PRODUCERS",
    "answered_stream",
    "poison_records",
    "poison_scenario",
    "send_aiokafka",
    "send_confluent",
    "table_of",
]
