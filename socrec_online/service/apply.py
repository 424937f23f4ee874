"""One apply function per event type: an event's effect on the raw state, recorded in the batch delta.

Each function checks for a duplicate (an event id the value holds, or a position it applied:
``state.replayed``), refuses what must not be applied (a dead letter, leaving no state behind),
changes the raw state and notes in the ``BatchDelta`` what the derivation step must redo and which
table values to write. Engagement weights and the negative-comment rule: ``socrec_online/engagement.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from socrec_online import metrics
from socrec_online.engagement import (
    MAX_COMMENTS,
    W_LIKE,
    Kind,
    click_gain,
    comment_gain,
    liked,
    signed,
    unlike,
)
from socrec_online.events import TOPIC_OF, Click, Comment, Event, Follow, ItemPublished, Like, Profile, Query
from socrec_online.service.batch import BatchDelta
from socrec_online.service.decode import DeadLetterReason
from socrec_online.service.state import (
    ENTRY_BYTES,
    MAX_UNFOLLOWED,
    ActivityState,
    ItemState,
    Position,
    RecentIds,
    SocialState,
    json_bytes,
    mark_applied,
    release,
    replayed,
)
from socrec_online.service.store import Store

Sentiment = Callable[[str], float]


def apply_event(
    store: Store, d: BatchDelta, ev: Event, idx: int, pos: Position | None, sentiment: Sentiment
) -> None:
    """Apply event ``idx`` of the batch with its type's function; count it applied when it was."""
    t = type(ev)
    if t is Click or t is Like or t is Comment:
        ok = apply_engagement(store, d, cast(Click | Like | Comment, ev), idx, pos, sentiment)
    elif t is Follow:
        ok = apply_follow(store, d, cast(Follow, ev), idx, pos)
    elif t is ItemPublished:
        ok = apply_item(store, d, cast(ItemPublished, ev), pos)
    elif t is Profile:
        ok = apply_profile(store, d, cast(Profile, ev), pos)
    elif t is Query:
        ok = apply_query(store, d, cast(Query, ev), pos)
    else:  # not an Event: a caller bug, but still never a crash
        d.result.rejected.append((idx, DeadLetterReason.unknown_topic, f"not an event: {t.__name__}"))
        return
    if ok:
        d.result.applied += 1
        d.count(TOPIC_OF[t], "ok")
        d.latest = max(d.latest, ev.ts)


def _applied(st: ActivityState | SocialState | ItemState | None, ev: Event, pos: Position | None) -> bool:
    """Did this value apply the event already (its id, or its position: ``state.replayed``)?"""
    return st is not None and (ev.event_id in st.ids or replayed(st.applied, pos))


def _record(st: ActivityState | SocialState, ev: Event, pos: Position | None) -> None:
    """The event is applied to this value: its id, its position, the value's latest event time."""
    st.ids.add(ev.event_id)
    mark_applied(st.applied, pos)
    st.last_ts = max(st.last_ts, ev.ts)


def apply_engagement(
    store: Store, d: BatchDelta, ev: Click | Like | Comment, idx: int, pos: Position | None, sentiment: Sentiment
) -> bool:
    """A click, like (or undo) or comment on a known item: the user's engagement with it moves."""
    s = store.settings
    t = type(ev)
    topic = "clicks" if t is Click else "likes" if t is Like else "comments"
    # a refused event leaves no state behind (no user row a restart would not rebuild)
    known = store.activity.get(ev.user_id)
    if _applied(known, ev, pos):
        d.duplicate(topic)
        return False
    if ev.item_id not in store.item_state:
        d.reject(idx, topic, DeadLetterReason.unknown_item, f"item {ev.item_id[:100]!r} unknown")
        if known is not None and release(known.applied, pos):
            d.act_keys.add(ev.user_id)
        return False
    st = known if known is not None else store.activity_of(ev.user_id)
    row = store.users.row(ev.user_id)
    n_seen = len(st.seen)
    was_seen = ev.item_id in st.seen
    if isinstance(ev, Click):
        st.engage(ev.item_id, click_gain(st.recent.get(ev.item_id), ev.dwell_ms), ev.ts, Kind.CLICK,
                  s.recent_per_user, s.seen_per_user)
        d.clicks.append((ev.user_id, ev.item_id))
    elif isinstance(ev, Like):
        prev = st.recent.get(ev.item_id)
        if ev.undo:
            if prev is not None and liked(prev):  # in place: an undo is not a new engagement
                st.recent[ev.item_id] = unlike(prev)
        elif not liked(prev):
            st.engage(ev.item_id, W_LIKE, ev.ts, Kind.LIKE, s.recent_per_user, s.seen_per_user)
    else:
        _comment(st, ev, sentiment, s.sentiment_weighting, s.recent_per_user, s.seen_per_user)
        d.comments[row] = d.comments.get(row, 0) + 1
    _record(st, ev, pos)
    st.grow(2 * json_bytes(ev.item_id) + json_bytes(ev.event_id) + 2 * ENTRY_BYTES)
    if isinstance(ev, Comment):
        st.grow(json_bytes(ev.text))
    if d.changes is not None:
        e = st.recent.get(ev.item_id)
        d.changes.engaged[(ev.user_id, ev.item_id)] = e[0] if e is not None else 0.0
    if not was_seen and ev.item_id in st.seen:
        if len(st.seen) > n_seen:  # appended, nothing evicted
            store.seen_appended(row, store.items.row(ev.item_id))
        else:
            store.forget_seen(row)
    d.act_keys.add(ev.user_id)
    d.eng_changed.add(row)
    d.interest_dirty.add(row)
    d.touched[ev.user_id] = ev.event_id
    d.fanout_from[row] = ev.event_id
    return True


def _comment(
    st: ActivityState, ev: Comment, sentiment: Sentiment, weighting: bool, recent: int, seen: int
) -> None:
    """The comment's weight (``engagement.comment_gain``: a negative one caps the item's summed weight
    at its own); its text and sentiment are kept for the interest vector."""
    sent = signed(sentiment(ev.text), weighting)  # weighting off, the ablation: every comment positive
    st.engage(ev.item_id, comment_gain(st.recent.get(ev.item_id), sent), ev.ts, Kind.COMMENT, recent, seen)
    st.comments.append((ev.item_id, ev.text, ev.ts, sent))
    if len(st.comments) > MAX_COMMENTS:
        del st.comments[0]


def apply_follow(store: Store, d: BatchDelta, ev: Follow, idx: int, pos: Position | None) -> bool:
    """A follow or unfollow: an edge of the social graph, within the follows value's bounds."""
    s = store.settings
    known = store.social.get(ev.user_id)
    if _applied(known, ev, pos):
        d.duplicate("follows")
        return False
    if ev.target_id == ev.user_id:
        d.reject(idx, "follows", DeadLetterReason.self_follow, "a user cannot follow themselves")
        return False
    if not ev.undo and known is not None and known.full(ev.target_id, s.max_following):
        full = f"already following {s.max_following} users"
        d.reject(idx, "follows", DeadLetterReason.state_too_large, full)
        return False
    cost = json_bytes(ev.target_id) + json_bytes(ev.event_id) + ENTRY_BYTES
    if (
        not ev.undo
        and known is not None
        and ev.target_id not in known.following
        and not known.fits(cost, s.max_table_value_bytes)
    ):
        full = f"the follows value would pass {s.max_table_value_bytes} bytes"
        d.reject(idx, "follows", DeadLetterReason.state_too_large, full)
        return False
    sst = known if known is not None else store.social_of(ev.user_id)
    sst.grow(cost)
    row = store.users.row(ev.user_id)
    store.user_row(ev.target_id)  # a followed user has a row before any event of theirs
    if ev.undo:
        if sst.following.pop(ev.target_id, None) is not None:
            store.set_edge(row, ev.target_id, on=False)
        sst.unfollowed.pop(ev.target_id, None)
        sst.unfollowed[ev.target_id] = ev.ts
        while len(sst.unfollowed) > MAX_UNFOLLOWED:
            del sst.unfollowed[next(iter(sst.unfollowed))]
    else:
        if ev.target_id not in sst.following:
            sst.following[ev.target_id] = ev.ts
            store.set_edge(row, ev.target_id, on=True)
        sst.unfollowed.pop(ev.target_id, None)
    _record(sst, ev, pos)
    if d.changes is not None:
        d.changes.follows.append((ev.user_id, ev.target_id, ev.undo))
    store.follows_changed(row)
    d.soc_keys.add(ev.user_id)
    d.follow_changed.add(row)
    d.touched[ev.user_id] = ev.event_id
    return True


def apply_item(store: Store, d: BatchDelta, ev: ItemPublished, pos: Position | None) -> bool:
    """A published (or re-published: edited) item; a new text is encoded, and moves its engagers."""
    ist = store.item_state.get(ev.item_id)
    if _applied(ist, ev, pos):
        d.duplicate("items")
        return False
    row = store.item_row(ev.item_id)
    if ist is None:
        ist = store.item_state[ev.item_id] = ItemState(
            ev.text, ev.ts, ev.author_id, list(ev.tags), RecentIds(store.settings.dedup_ids_per_key)
        )
        d.item_text[row] = ev.text
        d.fresh_items.append(ev.ts)
    else:
        if ist.text != ev.text:
            d.item_text[row] = ev.text
            d.retexted.append(row)
        ist.text, ist.ts, ist.author, ist.tags = ev.text, ev.ts, ev.author_id, list(ev.tags)
    ist.ids.add(ev.event_id)
    mark_applied(ist.applied, pos)
    store.item_changed(row, ist)
    d.items_changed.add(row)
    d.item_keys.add(ev.item_id)
    return True


def apply_profile(store: Store, d: BatchDelta, ev: Profile, pos: Position | None) -> bool:
    """A profile text: encoded, and part of the user's interest."""
    st = store.activity_of(ev.user_id)
    if _applied(st, ev, pos):
        d.duplicate("profiles")
        return False
    row = store.users.row(ev.user_id)
    st.profile, st.profile_ts = ev.text, ev.ts
    _record(st, ev, pos)
    st.grow(json_bytes(ev.text) + json_bytes(ev.event_id) + ENTRY_BYTES)
    d.profiles[row] = ev.text
    d.interest_dirty.add(row)
    d.act_keys.add(ev.user_id)
    d.touched[ev.user_id] = ev.event_id
    return True


def apply_query(store: Store, d: BatchDelta, ev: Query, pos: Position | None) -> bool:
    """A query changes no derived state: it is remembered as applied and answered after the batch."""
    st = store.activity_of(ev.user_id)
    if _applied(st, ev, pos):
        d.duplicate("queries")
        return False
    _record(st, ev, pos)
    st.grow(json_bytes(ev.event_id) + ENTRY_BYTES)
    d.act_keys.add(ev.user_id)
    d.result.queries.append(ev)
    return True


# ---------------------------------------------------------------------- after the batch
def fan_out(store: Store, d: BatchDelta, cap: int) -> None:
    """Followers of users who engaged see new social proof: republish them too (at most ``cap``)."""
    extra = 0
    for row, eid in d.fanout_from.items():
        if extra >= cap:
            break
        for frow in store.followers.get(row, ()):
            fid = store.users.id(frow)
            if fid not in d.touched:
                d.touched[fid] = eid
                extra += 1
                if extra >= cap:
                    break


def table_updates(store: Store, d: BatchDelta, max_value_bytes: int) -> dict[str, dict[str, Any]]:
    """The new values of every key the batch changed, per table; activity values are trimmed to
    ``max_value_bytes`` first (oldest engagements out, counted in ``socrec_state_trimmed_total``)."""
    upd: dict[str, dict[str, Any]] = {}
    if d.soc_keys:
        upd["social"] = {u: store.social[u].to_json() for u in d.soc_keys}
    if d.item_keys:
        upd["items"] = {i: store.item_state[i].to_json() for i in d.item_keys}
    if d.act_keys:
        for u in d.act_keys:
            trimmed = store.activity[u].trim_to(max_value_bytes)
            if trimmed:
                metrics.STATE_TRIMMED.labels(table="activity").inc(trimmed)
                store.forget_seen(store.users.row(u))
        upd["activity"] = {u: store.activity[u].to_json() for u in d.act_keys}
    return upd
