"""Derived state from raw state: text vectors, engagement arrays, interests and the k-hop social tower.

For user ``u`` (all text vectors L2-normalised, from the text tower)::

    interest(u) = the one definition in ``models/interest.py`` (profile, decayed engagements and
                  comments), anchored at u's latest event time
    social(u)   = normalise( sum_{k=1..K} 0.5^(k-1) * h_k(u) ),  h_0 = interest,
                  h_k(u) = mean_{f followed by u} h_{k-1}(f)   (K = gnn_layers, parameter-free)

Only what a batch touched is recomputed: the users whose engagements, profile, comments or
follows changed, the engagers of re-texted items and of items that arrived after the engagement
(another worker's values, read apart), and their k-hop followers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from socrec_online import metrics
from socrec_online.models.interest import History, interest_vectors
from socrec_online.service.arrays import csr_mm, normalise
from socrec_online.service.batch import BatchDelta
from socrec_online.service.protocols import TextEncoderLike
from socrec_online.service.store import Store


def derive(store: Store, encoder: TextEncoderLike, d: BatchDelta) -> None:
    """Bring the derived state up to date with changed raw state: encode the new texts (one call),
    refresh engagements, interests and the social tower of the affected k-hop neighbourhood."""
    if store.engaged_unknown and d.item_text:
        engagers_of_arrived_items(store, d)
    embed_texts(store, encoder, d.item_text, d.profiles, d.comments)
    rebuild_eng_rows(store, list(d.eng_changed))
    dirty = d.interest_dirty
    if d.retexted:  # their engagers' interests move
        nu = len(store.users)
        hit = np.isin(store.eng_item[:nu], np.asarray(d.retexted, np.int64)).any(axis=1)
        dirty.update(np.nonzero(hit)[0].tolist())
    if dirty:
        recompute_interest(store, np.fromiter(dirty, np.int64, len(dirty)))
    if dirty or d.follow_changed:
        propagate(store, dirty, d.follow_changed)


def engagers_of_arrived_items(store: Store, d: BatchDelta) -> None:
    """Users whose engagement arrays left out an item then unknown that is in the catalogue now get
    their engagements, interests and social tower redone, as a restore from the same values would.

    Why: a worker takes other workers' values as it reads their changelogs (``streams.mirror``), a
    user's activity value can come before the value of the item it names (two changelogs, read
    apart), and nothing else would ever put that engagement back: the user's interest, the item's
    popularity (a normaliser every score shares) and their followers' social proof stayed short of
    it for good."""
    for row in d.item_text:
        iid = store.items.id(row)
        rows = store.engaged_unknown.pop(iid, None)
        if not rows:
            continue
        for u in rows:
            uid = store.users.id(u)
            ast = store.activity.get(uid)
            e = ast.recent.get(iid) if ast is not None else None
            if e is None:  # the value moved on (or went) since: nothing of the item's to add
                continue
            d.eng_changed.add(u)
            d.interest_dirty.add(u)
            store.forget_seen(u)  # its seen rows were memoised without the item
            if d.changes is not None:
                d.changes.engaged[(uid, iid)] = e[0]


def rebuild_all(store: Store) -> None:
    """Every user's interest and social tower (after a restore)."""
    all_rows = np.arange(len(store.users), dtype=np.int64)
    recompute_interest(store, all_rows)
    for k in range(store.hops.shape[0]):
        hop(store, k, all_rows)
    social_vec(store, all_rows)


def embed_texts(
    store: Store, encoder: TextEncoderLike, items: dict[int, str], profiles: dict[int, str], comments: dict[int, int]
) -> None:
    """Encode every new text of the batch in ONE encoder call (``comments``: user row -> new tail)."""
    texts: list[str] = list(items.values()) + list(profiles.values())
    com_rows: list[tuple[int, int]] = []  # (user row, number of trailing comments)
    for row, n in comments.items():
        st = store.activity[store.users.id(row)]
        n = min(n, len(st.comments))
        com_rows.append((row, n))
        texts.extend(c[1] for c in st.comments[len(st.comments) - n :])
    if not texts:
        return
    uniq = list(dict.fromkeys(texts))
    emb = encoder.encode(uniq).to(store.device, torch.float32)  # (T, D)
    metrics.TEXTS_ENCODED.inc(len(uniq))
    pos = {t: i for i, t in enumerate(uniq)}
    if items:
        rows = torch.tensor(list(items), dtype=torch.long, device=store.device)
        store.item_emb[rows] = emb[[pos[t] for t in items.values()]]
    for row, text in profiles.items():
        store.profile_emb[row] = emb[pos[text]]
        store.has_profile[row] = True
    for row, n in com_rows:
        st = store.activity[store.users.id(row)]
        new = emb[[pos[c[1]] for c in st.comments[len(st.comments) - n :]]] if n else emb[:0]
        old = store.comment_emb.get(row)
        keep = len(st.comments) - n
        if old is not None and keep > 0:
            new = torch.cat([old[old.shape[0] - keep :], new], 0)
        store.comment_emb[row] = new


def rebuild_eng_rows(store: Store, rows: Sequence[int]) -> int:
    """Refresh the padded (U, R) engagement arrays of these users from their activity state.

    Engagements with items not in the catalogue (a table value read back without its item's, an
    evicted item) are left out of the arrays, not of the state; returns how many were, and
    remembers whose (``Store.engaged_unknown``: ``engagers_of_arrived_items`` puts them back when
    the item arrives). A user without an activity value (evicted) gets empty arrays.
    """
    if not rows:
        return 0
    r = store.eng_item.shape[1]
    item_rows: list[int] = []
    vals: list[tuple[float, float, int]] = []
    lens = []
    unknown = 0
    dead = store.dead_items
    for row in rows:
        ast = store.activity.get(store.users.id(row))
        rec = ast.recent if ast is not None else {}  # an evicted user: no engagements
        irows = store.items.rows_or_missing(rec)
        if dead:  # evicted items are not in the catalogue any more
            irows = [-1 if iid in dead else r for iid, r in zip(rec, irows, strict=True)]
        rvals = list(rec.values())
        if -1 in irows:
            for iid, x in zip(rec, irows, strict=True):
                if x < 0:
                    store.engaged_unknown.setdefault(iid, set()).add(row)
            keep = [j for j, x in enumerate(irows) if x >= 0]
            unknown += len(irows) - len(keep)
            irows, rvals = [irows[j] for j in keep], [rvals[j] for j in keep]
        n = min(len(irows), r)
        item_rows.extend(irows[len(irows) - n :])
        vals.extend(rvals[len(rvals) - n :])
        lens.append(n)
    rr = np.asarray(rows, np.int64)
    store.eng_item[rr] = -1
    store.eng_w[rr] = 0.0
    store.eng_ts[rr] = 0.0
    store.eng_kind[rr] = 0
    if not item_rows:
        return unknown
    ln = np.asarray(lens, np.int64)
    ri = np.repeat(rr, ln)
    ci = np.arange(len(item_rows), dtype=np.int64) - np.repeat(np.cumsum(ln) - ln, ln)
    a = np.array(vals, np.float64)  # (N, 3) weight, ts, kinds
    store.eng_item[ri, ci] = item_rows
    store.eng_w[ri, ci] = a[:, 0]
    store.eng_ts[ri, ci] = a[:, 1]
    store.eng_kind[ri, ci] = a[:, 2]
    return unknown


def recompute_interest(store: Store, rows: np.ndarray) -> None:
    """interest(u) for the given user rows (``models/interest.py``, the one definition), batched."""
    s = store.settings
    dev = store.device
    items = store.eng_item[rows]  # (B, R)
    bi, ri = np.nonzero(items >= 0)  # row-major: grouped by user
    rows_t = torch.from_numpy(rows).to(dev)
    prof = torch.from_numpy(store.has_profile[rows].astype(np.float32)).to(dev)
    c_own: list[int] = []
    c_sent: list[float] = []
    c_ts: list[float] = []
    embs: list[Tensor] = []
    for b, row in enumerate(rows.tolist()):
        ce = store.comment_emb.get(row)
        if ce is not None and ce.shape[0]:
            for c_ in store.activity[store.users.id(row)].comments[-ce.shape[0] :]:
                c_own.append(b)
                c_ts.append(c_[2])
                c_sent.append(c_[3])
            embs.append(ce)
    h = History(
        anchor=store.user_last_ts[rows],
        owner=bi.astype(np.int64),
        item=items[bi, ri],
        weight=store.eng_w[rows][bi, ri],
        ts=store.eng_ts[rows][bi, ri],
        profile=prof[:, None] * store.profile_emb[rows_t],
        comment_owner=np.asarray(c_own, np.int64),
        comment_emb=torch.cat(embs) if embs else None,
        comment_sentiment=np.asarray(c_sent, np.float64),
        comment_ts=np.asarray(c_ts, np.float64),
    )
    vec = interest_vectors(h, store.item_emb[: len(store.items)], s.interest_half_life_s, s.profile_weight)
    store.interest[rows_t] = vec
    store.has_interest[rows] = (vec.abs().sum(dim=1) > 0).cpu().numpy()


def propagate(store: Store, interest_changed: Iterable[int], follow_changed: Iterable[int]) -> None:
    """Recompute the social tower for the affected k-hop neighbourhood only."""
    layers = store.hops.shape[0]
    frontier = np.fromiter(interest_changed, np.int64)
    fc = np.fromiter(follow_changed, np.int64)
    affected: list[np.ndarray] = []
    for k in range(layers):
        rows = np.union1d(store.followers_of(frontier), fc) if frontier.size else np.unique(fc)
        if not rows.size:
            break
        hop(store, k, rows)
        affected.append(rows)
        frontier = rows
    if affected:
        social_vec(store, np.unique(np.concatenate(affected)))


def hop(store: Store, k: int, rows: np.ndarray) -> None:
    """h_k(rows) = mean over followees of h_{k-1}, as one sparse (rows x U) @ (U, D) product."""
    nu = len(store.users)
    src = (store.interest if k == 0 else store.hops[k - 1])[:nu]
    owner, fol = store.pairs(rows)
    cnt = np.bincount(owner, minlength=len(rows))
    vals = (1.0 / np.maximum(cnt, 1))[owner].astype(np.float32)
    store.hops[k, torch.from_numpy(rows).to(store.device)] = csr_mm(cnt, fol, vals, nu, src)


def social_vec(store: Store, rows: np.ndarray) -> None:
    """social(u) = normalise(sum_k 0.5^(k-1) h_k(u)) for these rows."""
    rt = torch.from_numpy(rows).to(store.device)
    acc = store.hops[0].index_select(0, rt)  # (B, D)
    for k in range(1, store.hops.shape[0]):
        acc.add_(store.hops[k].index_select(0, rt), alpha=0.5**k)
    store.social_vec.index_copy_(0, rt, normalise(acc))
