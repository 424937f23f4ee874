"""Train/valid/test splits the protocols share: RecBole's per-user random 8:1:1, temporal, external TSVs.

Every split is a set of (user row, item row) pairs over the dataset's id maps, so every model
in the harness ranks the very same held-out items.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from socrec_online.data.base import Dataset, Interactions
from socrec_online.engagement import Kind


@dataclass
class Split:
    """Three disjoint interaction sets plus what evaluation masks."""

    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions
    test: Interactions
    protocol: str = "recbole"
    seed: int = 0
    meta: dict[str, object] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


def _recbole_counts(tot: int, ratios: tuple[float, ...]) -> list[int]:
    """RecBole ``Dataset._calcu_split_ids``: later parts rounded down, then made non-empty if possible."""
    cnt = [int(r * tot) for r in ratios]
    cnt[0] = tot - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * tot < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def dedupe(inter: Interactions) -> Interactions:
    """Keep the first row of each (user, item) pair: implicit feedback counts a pair once."""
    key = inter.user.astype(np.int64) * (int(inter.item.max(initial=0)) + 1) + inter.item
    _, first = np.unique(key, return_index=True)
    return inter.subset(np.sort(first))


def recbole_split(
    inter: Interactions, n_users: int, n_items: int, seed: int = 2020, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> Split:
    """RecBole's ``eval_args: {split: {RS: [0.8,0.1,0.1]}, group_by: user, order: RO}``.

    RO shuffles all interactions with the seed, then each user's rows (in shuffled order) are cut
    8:1:1 with RecBole's rounding (valid/test rounded down but made non-empty when the user has >2).
    """
    inter = dedupe(inter)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(inter))
    users = inter.user[perm]
    order = np.argsort(users, kind="stable")  # group by user, shuffled order kept inside a user
    idx = perm[order]
    bounds = np.flatnonzero(np.diff(users[order])) + 1
    parts: list[list[np.ndarray]] = [[], [], []]
    tot_ratio = sum(ratios)
    norm = tuple(r / tot_ratio for r in ratios)
    for chunk in np.split(idx, bounds):
        if chunk.size == 0:
            continue
        cnt = _recbole_counts(int(chunk.size), norm)
        cuts = np.cumsum(cnt)[:-1]
        for p, piece in enumerate(np.split(chunk, cuts)):
            parts[p].append(piece)
    sets = [inter.subset(np.sort(np.concatenate(p))) if p else Interactions.empty() for p in parts]
    return Split(n_users, n_items, sets[0], sets[1], sets[2], protocol="recbole", seed=seed)


def temporal_split(
    timed: Interactions, n_users: int, n_items: int, valid_frac: float = 0.1, test_frac: float = 0.1
) -> Split:
    """Train on the past, validate on the next slice, test on the slice after it (global time cuts).

    Cuts are by timestamp quantile over the whole stream, so every model sees the same past;
    held-out pairs a user already had in an earlier period are dropped (they are not news).
    """
    timed = dedupe(timed.subset(np.argsort(timed.ts, kind="stable")))
    ts = timed.ts
    t_valid = float(np.quantile(ts, 1.0 - valid_frac - test_frac))
    t_test = float(np.quantile(ts, 1.0 - test_frac))
    tr = timed.subset(ts < t_valid)
    va = timed.subset((ts >= t_valid) & (ts < t_test))
    te = timed.subset(ts >= t_test)
    return Split(
        n_users, n_items, tr, va, te, protocol="temporal", seed=0, meta={"t_valid": t_valid, "t_test": t_test}
    )


def _read_pairs(path: Path, ds: Dataset) -> tuple[Interactions, int]:
    us, its = [], []
    skipped = 0
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) < 2 or not row[0].strip():
                continue
            u, i = ds.users.get(row[0].strip()), ds.items.get(row[1].strip())
            if u is None or i is None:
                skipped += 1
                continue
            us.append(u)
            its.append(i)
    n = len(us)
    inter = Interactions(
        np.asarray(us, np.int64), np.asarray(its, np.int64), np.zeros(n), np.ones(n, np.float32),
        np.full(n, Kind.CLICK, np.int8),
    )
    return inter, skipped


def load_split_dir(split_dir: str | Path, ds: Dataset) -> Split:
    """``train.tsv``/``valid.tsv``/``test.tsv``: ``user_id<TAB>item_id`` in raw ids, no header.

    Lets numbers be compared with another library on the very same split. Weights (listen
    counts) are looked up from the dataset where the pair exists there.
    """
    d = Path(split_dir)
    parts = []
    skipped = {}
    for name in ("train", "valid", "test"):
        p = d / f"{name}.tsv"
        if not p.exists():
            raise FileNotFoundError(f"{p}: missing (expected user_id<TAB>item_id, raw ids, no header)")
        inter, sk = _read_pairs(p, ds)
        parts.append(inter)
        skipped[name] = sk
    full = ds.interactions
    wkey = {(int(u), int(i)): float(w) for u, i, w in zip(full.user, full.item, full.weight, strict=True)}
    tr = parts[0]
    tr.weight = np.asarray([wkey.get((int(u), int(i)), 1.0) for u, i in zip(tr.user, tr.item, strict=True)], np.float32)
    return Split(
        ds.n_users, ds.n_items, parts[0], parts[1], parts[2], protocol="split-dir", meta={"skipped_unknown": skipped}
    )


def write_split_dir(split: Split, ds: Dataset, out_dir: str | Path) -> None:
    """The inverse of :func:`load_split_dir` (raw ids), so a split can be handed to another library."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    for name, inter in (("train", split.train), ("valid", split.valid), ("test", split.test)):
        with (d / f"{name}.tsv").open("w", encoding="utf-8") as f:
            for u, i in zip(inter.user.tolist(), inter.item.tolist(), strict=True):
                f.write(f"{ds.users.id(u)}\t{ds.items.id(i)}\n")
