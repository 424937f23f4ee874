"""Last.fm HetRec 2011 from its raw files (read from a path; never copied into the repo)."""

from __future__ import annotations

import calendar
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from socrec_online.data.base import Dataset, Interactions
from socrec_online.engagement import Kind
from socrec_online.idmap import IdMap

TOP_TAGS_IN_TEXT = 8
FILES = ("artists.dat", "tags.dat", "user_artists.dat", "user_friends.dat", "user_taggedartists.dat")


class LastFMNotFound(FileNotFoundError):
    pass


def find_lastfm_dir(data_dir: str | Path | None = None) -> Path:
    """``--data-dir`` first, then ``SOCREC_LASTFM_DIR``; a clear error naming both otherwise."""
    cand = data_dir or os.environ.get("SOCREC_LASTFM_DIR")
    if not cand:
        raise LastFMNotFound("Last.fm data not found: pass --data-dir DIR or set SOCREC_LASTFM_DIR")
    p = Path(cand)
    missing = [f for f in FILES if not (p / f).exists()]
    if missing:
        raise LastFMNotFound(f"{p}: missing {', '.join(missing)} (the HetRec 2011 Last.fm files)")
    return p


def _tsv(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as f:
        lines = f.read().splitlines()
    return [ln.split("\t") for ln in lines[1:] if ln.strip()]


def load_lastfm(data_dir: str | Path | None = None) -> Dataset:
    d = find_lastfm_dir(data_dir)
    items = IdMap()
    names: list[str] = []
    for cols in _tsv(d / "artists.dat"):
        items.add(cols[0])
        names.append(cols[1])
    tag_name = {r[0]: r[1] for r in _tsv(d / "tags.dat", encoding="latin-1")}

    users = IdMap()
    ua = _tsv(d / "user_artists.dat")
    for r in ua:
        users.add(r[0])
    friends = _tsv(d / "user_friends.dat")
    for r in friends:
        users.add(r[0])
        users.add(r[1])

    u = np.asarray([users.row(r[0]) for r in ua], np.int64)
    i = np.asarray([items.row(r[1]) for r in ua], np.int64)
    w = np.asarray([float(r[2]) for r in ua], np.float32)
    interactions = Interactions(u, i, np.zeros(len(ua)), w, np.full(len(ua), Kind.LIKE, np.int8))

    # Tag assignments: the only dated signal. First date per (user, artist) is a timed interaction.
    tag_counts: dict[int, Counter[str]] = defaultdict(Counter)
    first: dict[tuple[int, int], float] = {}
    dropped_unknown = dropped_bad_date = 0
    for r in _tsv(d / "user_taggedartists.dat"):
        user_id, artist_id, tag_id = r[0], r[1], r[2]
        day, month, year = int(r[3]), int(r[4]), int(r[5])
        if artist_id not in items:
            dropped_unknown += 1
            continue
        row = items.row(artist_id)
        if tag_id in tag_name:
            tag_counts[row][tag_name[tag_id]] += 1
        if year < 2000:
            dropped_bad_date += 1
            continue
        ts = float(calendar.timegm((year, month, max(day, 1), 0, 0, 0)))
        key = (users.add(user_id), row)
        if key not in first or ts < first[key]:
            first[key] = ts
    keys = sorted(first, key=lambda k: (first[k], k))
    timed = Interactions(
        np.asarray([k[0] for k in keys], np.int64),
        np.asarray([k[1] for k in keys], np.int64),
        np.asarray([first[k] for k in keys], np.float64),
        np.ones(len(keys), np.float32),
        np.full(len(keys), Kind.CLICK, np.int8),
    )
    item_tags: list[tuple[str, ...]] = []
    item_text: list[str] = []
    for row, name in enumerate(names):
        top = tuple(t for t, _ in tag_counts[row].most_common(TOP_TAGS_IN_TEXT))
        item_tags.append(top)
        item_text.append(f"{name}. tags: {', '.join(top)}" if top else name)
    item_ts = np.zeros(len(items))
    for (_, row), ts in first.items():
        item_ts[row] = ts if item_ts[row] == 0 else min(item_ts[row], ts)

    return Dataset(
        name="lastfm",
        users=users,
        items=items,
        item_text=item_text,
        interactions=interactions,
        social_src=np.asarray([users.row(r[0]) for r in friends], np.int64),
        social_dst=np.asarray([users.row(r[1]) for r in friends], np.int64),
        timed=timed,
        item_ts=item_ts,
        item_tags=item_tags,
        meta={
            "data_dir": str(d),
            "friend_rows": len(friends),
            "user_artist_rows": len(ua),
            "tag_rows_unknown_artist": dropped_unknown,
            "tag_rows_bad_date": dropped_bad_date,
        },
    )
