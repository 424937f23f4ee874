"""Raw state from table values: a full restore, and the upsert of values another worker wrote.

Both replace raw state with the values read; an upsert records in the ``BatchDelta`` only what
changed (texts, engagements, follows, interests' time anchors), so the derivation step redoes as
little as a batch of events would, and an unchanged value changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from socrec_online import metrics
from socrec_online.service.batch import BatchDelta
from socrec_online.service.state import ActivityState, ItemState, LoadedTables, SocialState
from socrec_online.service.store import Store

log = logging.getLogger(__name__)


def restore_raw(store: Store, loaded: LoadedTables) -> tuple[dict[int, str], dict[int, int]]:
    """Fill an empty store from table values; returns the texts to encode: (profiles, comments).

    Items go in publish order, so their rows (and the tie-breaks of equal scores) do not depend on
    the order the tables were read in.
    """
    latest = store.clock
    for iid, st in sorted(loaded.items.items(), key=lambda kv: (kv[1].ts, kv[0])):
        store.item_state[iid] = st
        store.item_changed(store.item_row(iid), st)
        latest = max(latest, st.ts)
    for uid, sst in sorted(loaded.social.items()):
        store.social[uid] = sst
        row = store.user_row(uid)
        for t in sst.following:
            store.set_edge(row, t, on=True)
        for t in sst.unfollowed:
            store.user_row(t)
        latest = max(latest, sst.last_ts)
    profiles: dict[int, str] = {}
    comments: dict[int, int] = {}
    for uid, ast in sorted(loaded.activity.items()):
        store.activity[uid] = ast
        row = store.user_row(uid)
        store.user_last_ts[row] = ast.last_ts
        if ast.profile:
            profiles[row] = ast.profile
        if ast.comments:
            comments[row] = len(ast.comments)
        latest = max(latest, ast.last_ts)
    store.advance_clock(latest)
    return profiles, comments


def upsert_items(store: Store, d: BatchDelta, values: Mapping[str, ItemState]) -> int:
    for iid, ist in values.items():
        old = store.item_state.get(iid)
        row = store.item_row(iid)
        if old is None or old.text != ist.text:
            d.item_text[row] = ist.text
            if old is not None:
                d.retexted.append(row)
        store.item_state[iid] = ist
        store.item_changed(row, ist)
        d.items_changed.add(row)
        d.latest = max(d.latest, ist.ts)
    return len(values)


def upsert_social(store: Store, d: BatchDelta, values: Mapping[str, SocialState]) -> int:
    for uid, sst in values.items():
        old = store.social.get(uid)
        row = store.user_row(uid)
        before = old.following if old is not None else {}
        for t in before:
            if t not in sst.following:
                store.set_edge(row, t, on=False)
                if d.changes is not None:
                    d.changes.follows.append((uid, t, True))
        for t in sst.following:
            if t not in before:
                store.set_edge(row, t, on=True)
                if d.changes is not None:
                    d.changes.follows.append((uid, t, False))
        for t in sst.unfollowed:
            store.user_row(t)
        store.social[uid] = sst
        store.follows_changed(row)
        d.follow_changed.add(row)
        d.latest = max(d.latest, sst.last_ts)
    return len(values)


def upsert_activity(store: Store, d: BatchDelta, values: Mapping[str, ActivityState]) -> int:
    for uid, ast in values.items():
        old = store.activity.get(uid)
        row = store.user_row(uid)
        store.activity[uid] = ast
        store.user_last_ts[row] = ast.last_ts
        if ast.profile and (old is None or old.profile != ast.profile):
            d.profiles[row] = ast.profile
        _comments_changed(store, d, row, old.comments if old is not None else [], ast)
        if old is None or old.recent != ast.recent:
            d.eng_changed.add(row)
            store.forget_seen(row)
            if d.changes is not None:
                was = old.recent if old is not None else {}
                for iid, e in ast.recent.items():
                    if iid in store.item_state and (iid not in was or was[iid][0] != e[0]):
                        d.changes.engaged[(uid, iid)] = e[0]
        d.interest_dirty.add(row)  # the interest's time anchor (last_ts) moves with any event
        d.latest = max(d.latest, ast.last_ts)
    return len(values)


def _comments_changed(store: Store, d: BatchDelta, row: int, prev: list[tuple[str, str, float, float]], ast: ActivityState) -> None:
    """Comments are appended at the end (older ones may have dropped off the front): encode the new
    tail only when the kept head is the old tail, else all of them."""
    if ast.comments == prev:
        return
    k = next((k for k in range(len(ast.comments), -1, -1) if ast.comments[:k] == prev[len(prev) - k :]), 0)
    ce = store.comment_emb.get(row)
    if k == 0 or ce is None:
        store.comment_emb.pop(row, None)
        d.comments[row] = len(ast.comments)
    elif k == len(ast.comments):  # only dropped from the front
        store.comment_emb[row] = ce[ce.shape[0] - k :]
    else:
        d.comments[row] = len(ast.comments) - k


def report_skipped(where: str, malformed: Mapping[str, list[str]], unknown_items: int) -> None:
    """Count what a rebuild from table values left out, and say so in one log line."""
    for table, bad in malformed.items():
        if bad:
            metrics.STATE_SKIPPED.labels(table=table, reason="malformed").inc(len(bad))
    if unknown_items:
        metrics.STATE_SKIPPED.labels(table="activity", reason="unknown_item").inc(unknown_items)
    n_bad = sum(len(b) for b in malformed.values())
    if n_bad or unknown_items:
        first = next((f"{t} {b[0]}" for t, b in malformed.items() if b), "")
        log.warning(
            "%s left out %d malformed table values and %d engagements naming unknown items%s",
            where, n_bad, unknown_items, f" (first: {first})" if first else "",
        )  # fmt: skip
