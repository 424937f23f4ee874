"""Retention: inactive users and old items leave the engine, so its memory follows the live keys.

A sweep (``sweep``) runs on the event-time clock at every multiple of ``retention_sweep_s`` (the
same points on every replay) and evicts, with ``now`` the clock::

    user u   when  max(last_ts of u's activity value, last_ts of u's follows value) < now - user_ttl_s
    item i   when  ts(i) < now - item_ttl_s - item_retention_s   (never recommended already)

An evicted user's values are deleted (the caller writes the deletions to the tables: tombstones);
an evicted item's too. Engagements naming an evicted item stay in the users' values (a restore
leaves them out of the derived state, like any unknown item). A user row without values (a follow
target that never acted, an author) lives while something live names it: a follow edge or a
retained item; it goes with its last follower.

Rows never change meaning between two compactions: an evicted key's row stays, made inert (no
engagements, no interest, no edges, an item never a candidate), so the engine scores exactly like
one restored from the live values; an attached model that follows the graph is handed the edges
that went (``d.changes``), as after a batch. The rows of evicted keys that nothing names any more
are dead; once they pass ``COMPACT_FRACTION`` of all rows, ``compact`` moves the live values into
a fresh store (rows renumbered as a restore numbers them, text vectors carried over, not encoded
again): memory is bounded by the live keys, amortised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from socrec_online.service.batch import BatchDelta, GraphChanges
from socrec_online.service.derive import rebuild_all, rebuild_eng_rows
from socrec_online.service.state import LoadedTables
from socrec_online.service.store import Store
from socrec_online.service.tables_in import restore_raw

COMPACT_FRACTION = 0.5
"""Dead rows (evicted, named by nothing live) past this fraction of all user and item rows start a compaction."""


@dataclass
class Removed:
    """What one removal deleted: the table keys (for tombstones), and the rows whose derived state moved."""

    activity: list[str] = field(default_factory=list)
    social: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    item_rows: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.activity or self.social or self.items)

    def deletions(self) -> dict[str, dict[str, None]]:
        """Per table, the deleted keys mapped to None (``table_updates`` form: None deletes)."""
        out: dict[str, dict[str, None]] = {}
        for name, keys in (("activity", self.activity), ("social", self.social), ("items", self.items)):
            if keys:
                out[name] = dict.fromkeys(keys)
        return out


def next_sweep_at(clock: float, every: float) -> float:
    """The next multiple of ``every`` after ``clock`` (event time)."""
    return (np.floor(clock / every) + 1.0) * every


def expired(store: Store, now: float) -> tuple[list[str], list[str], list[str]]:
    """(activity keys, social keys, item keys) the retention settings evict at event time ``now``."""
    s = store.settings
    act: list[str] = []
    soc: list[str] = []
    items: list[str] = []
    if s.user_ttl_s > 0:
        cut = now - s.user_ttl_s
        social, activity = store.social, store.activity
        for uid, ast in activity.items():
            if ast.last_ts < cut:
                sst = social.get(uid)
                if sst is None or sst.last_ts < cut:
                    act.append(uid)
        for uid, sst in social.items():
            if sst.last_ts < cut:
                a = activity.get(uid)
                if a is None or a.last_ts < cut:
                    soc.append(uid)
    if s.item_retention_s > 0:
        cut = now - s.item_ttl_s - s.item_retention_s
        items = [iid for iid, ist in store.item_state.items() if ist.ts < cut]
    return act, soc, items


def remove(store: Store, d: BatchDelta, activity: Iterable[str], social: Iterable[str], items: Iterable[str]) -> Removed:
    """Delete these values from the raw state and make their rows inert; ``d`` collects what the
    derivation step must redo (``derive.derive``: engagements, interests, the social tower) and,
    when a model follows the graph (``d.changes``), the edges that went (``unlink``).
    Keys without a value are skipped (a removal seen twice changes nothing)."""
    out = Removed()
    # users whose values this delta changed already (an upsert): their engagement arrays are not rebuilt yet
    changed_before = set(d.eng_changed) if d.changes is not None else set()
    users_of = store.users
    named: set[str] = set()  # users whose last mention may have gone: their own, followees, authors
    for iid in items:
        ist = store.item_state.pop(iid, None)
        if ist is None:
            continue
        if ist.author:
            named.add(ist.author)
        row = store.items.row(iid)
        store.item_ts[row] = -np.inf  # never a candidate
        store.item_author[row] = -1
        out.items.append(iid)
        out.item_rows.append(row)
    if out.item_rows:  # their engagers' engagement arrays leave them out now, like a restore would
        nu = len(users_of)
        hit = np.isin(store.eng_item[:nu], np.asarray(out.item_rows, np.int64)).any(axis=1)
        engagers = [r for r in np.nonzero(hit)[0].tolist() if users_of.id(r) in store.activity]
        for row in engagers:
            d.eng_changed.add(row)
            d.interest_dirty.add(row)
        d.items_changed.update(out.item_rows)
        if d.changes is not None:
            unlink_items(store, d.changes, out.items, {*engagers, *changed_before})
    for uid in social:
        sst = store.social.pop(uid, None)
        if sst is None:
            continue
        if d.changes is not None:  # the model keeps an edge another live user's follow still names
            d.changes.follows.extend((uid, t, True) for t in sst.following)
        row = users_of.row(uid)
        for t in sst.following:
            store.set_edge(row, t, on=False)
        named.update(sst.following)
        named.add(uid)
        store.follows_changed(row)
        d.follow_changed.add(row)
        out.social.append(uid)
    for uid in activity:
        ast = store.activity.pop(uid, None)
        if ast is None:
            continue
        if d.changes is not None:
            for iid, e in ast.recent.items():
                if e[0] > 0 and iid in store.items:
                    d.changes.engaged[(uid, iid)] = 0.0
        row = users_of.row(uid)
        store.has_profile[row] = False
        store.profile_emb[row] = 0.0
        store.comment_emb.pop(row, None)
        store.user_last_ts[row] = 0.0
        store.forget_seen(row)
        d.eng_changed.add(row)
        d.interest_dirty.add(row)
        named.add(uid)
        out.activity.append(uid)
    if out.social:
        store.followers = {r: f for r, f in store.followers.items() if f}
    store.dead_users.update(unnamed(store, named))
    store.dead_items.update(out.items)
    return out


def unlink_items(store: Store, changes: GraphChanges, items: list[str], engager_rows: Iterable[int]) -> None:
    """The engagement edges to these (evicted) items, as removals in ``changes``: the model following
    the graph drops them, as a restore leaves them out. ``engager_rows``: the users whose
    engagement arrays name an item, plus those whose values the same delta changed (their arrays
    are rebuilt after this)."""
    gone = set(items)
    for row in engager_rows:
        uid = store.users.id(row)
        ast = store.activity.get(uid)
        if ast is None:
            continue
        for iid in gone.intersection(ast.recent):
            if ast.recent[iid][0] > 0:
                changes.engaged[(uid, iid)] = 0.0


def unnamed(store: Store, cand: set[str]) -> list[str]:
    """Those of ``cand`` left without values and named by nothing live (no follow edge to them, no
    retained item by them): their rows are dead."""
    if not cand:
        return []
    n = len(store.items)
    live_items = np.isfinite(store.item_ts[:n])
    authors = set(np.unique(store.item_author[:n][live_items & (store.item_author[:n] >= 0)]).tolist())
    dead = []
    for uid in cand:
        if uid in store.activity or uid in store.social:
            continue
        row = store.users.get(uid)
        if row is None or store.followers.get(row) or row in authors:
            continue
        dead.append(uid)
    return dead


def compact_into(old: Store, new: Store) -> None:
    """Fill the empty store ``new`` with ``old``'s live state: raw values (rows as a restore numbers
    them), text vectors carried over, engagements, interests and the social tower derived again."""
    new.clock, new.next_sweep = old.clock, old.next_sweep
    restore_raw(new, LoadedTables(old.item_state, old.social, old.activity, {}))
    carry_vectors(old, new)
    rebuild_eng_rows(new, [new.users.row(uid) for uid in new.activity])
    rebuild_all(new)


def carry_vectors(old: Store, new: Store) -> None:
    """Text vectors of the live keys from ``old`` into ``new`` (rows by id): a compaction encodes nothing."""
    if len(new.items):
        src = torch.as_tensor(old.items.rows(new.items.all_ids), dtype=torch.long, device=old.device)
        new.item_emb[: len(new.items)] = old.item_emb.index_select(0, src).to(new.device)
    if len(new.users):
        old_rows = np.asarray(old.users.rows(new.users.all_ids), np.int64)
        src = torch.from_numpy(old_rows).to(old.device)
        nu = len(new.users)
        new.profile_emb[:nu] = old.profile_emb.index_select(0, src).to(new.device)
        new.has_profile[:nu] = old.has_profile[old_rows]
        for new_row, old_row in enumerate(old_rows.tolist()):
            ce = old.comment_emb.get(old_row)
            if ce is not None:
                new.comment_emb[new_row] = ce


def needs_compaction(store: Store) -> bool:
    """Dead rows passed ``COMPACT_FRACTION`` of all user and item rows."""
    dead = len(store.dead_users) + len(store.dead_items)
    return dead > 0 and dead > COMPACT_FRACTION * (len(store.users) + len(store.items))
