"""Why each pick: reasons from the evidence behind it, in this order.

Followed users who liked it ("liked by 2 people you follow"; only followed users' public likes are
ever counted, none is named; their clicks are private and never cited), the most similar of the
user's recent engagements when the text term led ("similar to "<text>" you liked"), overlapping
profile words ("matches your interests: folk"), popularity ("popular now"). Strings are cached:
the wording is stable and the same few strings repeat on every batch.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from socrec_online.engagement import Kind
from socrec_online.service.scoring import Top
from socrec_online.service.store import Store

SIMILAR_LAST = 16
""""similar to X you liked" looks at the user's last 16 engagements."""
REASON_TEXT_CHARS = 40
STOP_WORDS = frozenset(
    [
        "the", "and", "for", "with", "are", "but", "not", "you", "your", "all", "any", "can", "had", "her",
        "was", "one", "our", "out", "has", "him", "his", "how", "its", "may", "new", "now", "old", "see",
        "two", "who", "boy", "did", "get", "let", "put", "say", "she", "too", "use", "like", "love", "this",
        "that", "from", "into", "about", "what", "when", "why", "best", "plus", "year", "week", "weekly",
        "notes", "guide", "beginner", "live", "every", "time", "beats", "than", "them", "they", "their",
        "there", "just", "some", "more", "most", "very", "much", "also", "been", "being", "have", "having",
        "i'm", "really"
    ]
)
WORD = re.compile(r"[a-z0-9][a-z0-9'\-]{2,23}")  # bounded: reasons stay short


def words(text: str) -> list[str]:
    """The text's content words (lower case, stop words out), for word-overlap reasons."""
    return [w for w in WORD.findall(text.lower()) if w not in STOP_WORDS]


def cut(text: str, n: int = REASON_TEXT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


_COUNT_REASONS: dict[tuple[str, int], str] = {}


def count_reason(what: str, n: int) -> str:
    """'liked by 1 person you follow' / 'followed by 3 people you follow' (cached: hot path)."""
    r = _COUNT_REASONS.get((what, n))
    if r is None:
        r = _COUNT_REASONS[(what, n)] = f"{what} {n} {'person' if n == 1 else 'people'} you follow"
    return r


class Reasons:
    """Reason strings for picks, with per-item caches (dropped by ``forget_items`` on a change)."""

    def __init__(self, store: Store, item_vecs: Callable[[np.ndarray], Tensor]) -> None:
        self.store = store
        self.item_vecs = item_vecs
        self._item_words: dict[int, frozenset[str]] = {}
        self._similar_text: dict[tuple[int, bool], str] = {}

    def forget_items(self, rows: set[int]) -> None:
        for row in rows:
            self._item_words.pop(row, None)
            self._similar_text.pop((row, True), None)
            self._similar_text.pop((row, False), None)

    def item_words(self, row: int) -> frozenset[str]:
        w = self._item_words.get(row)
        if w is None:
            st = self.store.item_state[self.store.items.id(row)]
            w = frozenset(words(st.text + " " + " ".join(t.replace("-", " ") for t in st.tags)))
            self._item_words[row] = w
        return w

    def similar(self, rows: np.ndarray, top: np.ndarray, need: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each pick, the user's most similar of their last few positive engagements:
        (sim, item row, kinds), each (B, k). Only users with ``need`` (B,) are computed."""
        s = self.store
        b, k = top.shape
        best_sim = np.full((b, k), -2.0, np.float32)
        best_item = np.full((b, k), -1, np.int64)
        best_kind = np.zeros((b, k), np.int8)
        sel = np.nonzero(need & (rows >= 0))[0]
        if not sel.size or k == 0:
            return best_sim, best_item, best_kind
        urow = rows[sel]
        n_valid = (s.eng_item[urow] >= 0).sum(axis=1)  # entries fill [0, n): most recent last
        last = min(SIMILAR_LAST, s.eng_item.shape[1])
        cols = np.maximum(n_valid[:, None] - last + np.arange(last)[None, :], 0)  # (S, last)
        eng = np.take_along_axis(s.eng_item[urow], cols, 1)
        kinds = np.take_along_axis(s.eng_kind[urow], cols, 1)
        ok = (eng >= 0) & (np.take_along_axis(s.eng_w[urow], cols, 1) > 0)
        ok &= cols < n_valid[:, None]
        if not ok.any():
            return best_sim, best_item, best_kind
        xt = self.item_vecs(np.maximum(top[sel], 0))  # (S, k, D)
        xe = self.item_vecs(np.maximum(eng, 0))  # (S, last, D)
        sim = torch.bmm(xt, xe.transpose(1, 2))  # (S, k, last)
        sim = sim.masked_fill(~torch.from_numpy(ok).to(s.device)[:, None, :], -2.0)
        bs, j = sim.max(dim=2)
        jn = j.cpu().numpy()
        best_sim[sel] = bs.float().cpu().numpy()
        best_item[sel] = np.take_along_axis(eng, jn, 1)
        best_kind[sel] = np.take_along_axis(kinds, jn, 1)
        return best_sim, best_item, best_kind

    def for_items(self, rows: np.ndarray, top: Top) -> list[list[str]]:
        """Reasons from the evidence that contributed most, one per pick."""
        k = top.rows.shape[1]
        # followed users' likes are the most persuasive evidence; only public acts are cited: a
        # followee's click or view is private and never revealed (it still counts in the score)
        social = top.n_like > 0
        textual = ~social & (top.c_text >= top.c_pop) & (top.c_text > 0) & (top.rows >= 0)
        sim, sim_item, sim_kind = self.similar(rows, top.rows, np.asarray(textual.any(axis=1)))
        similar = textual & (sim >= 0.5) & (sim_item >= 0)
        # one evidence code per pick, decided in numpy; the loop below only picks strings
        code = np.where(social, 1, np.where(similar, 2, np.where(textual, 3, np.where(top.c_pop > 0, 4, 5))))
        code = np.where(top.rows >= 0, code, 0).tolist()
        n_like = top.n_like.tolist()
        sim_item_l = sim_item.tolist()
        sim_liked = ((sim_kind & Kind.LIKE.value) > 0).tolist()
        top_rows = top.rows.tolist()
        uid = self.store.users.id
        out: list[list[str]] = []
        for bi, row in enumerate(rows.tolist()):
            st = self.store.activity.get(uid(row)) if row >= 0 else None
            prof: frozenset[str] | None = None
            rs: list[str] = []
            codes = code[bi]
            for j in range(k):
                c = codes[j]
                if c == 0:
                    break
                if c == 1:
                    rs.append(count_reason("liked by", n_like[bi][j]))
                elif c == 2:
                    rs.append(self._similar_reason(sim_item_l[bi][j], sim_liked[bi][j]))
                elif c == 3:
                    if prof is None:
                        prof = frozenset(words(st.profile)) if st is not None and st.profile else frozenset()
                    if prof:
                        common = sorted(self.item_words(top_rows[bi][j]) & prof)[:3]
                        rs.append(
                            "matches your interests: " + ", ".join(common)
                            if common
                            else "matches your interests"
                        )
                    elif st is None or not st.recent:
                        rs.append("matches what people you follow like")
                    else:
                        rs.append("matches your interests")
                else:
                    rs.append("popular now" if c == 4 else "new")
            out.append(rs)
        return out

    def for_query(self, item_row: int, query_words: frozenset[str], n_like: int) -> str:
        """'matches your request: folk, guitar; liked by 2 people you follow'."""
        common = sorted(self.item_words(item_row) & query_words)[:3]
        reason = "matches your request: " + ", ".join(common) if common else "matches your request"
        if n_like:
            reason += "; " + count_reason("liked by", n_like)
        return reason

    def _similar_reason(self, item_row: int, liked: bool) -> str:
        key = (item_row, liked)
        r = self._similar_text.get(key)
        if r is None:
            text = self.store.item_state[self.store.items.id(item_row)].text
            r = self._similar_text[key] = f'similar to "{cut(text)}" you {"liked" if liked else "viewed"}'
        return r
