"""Bring-your-own-data: three TSV files, so a platform team can evaluate without code.

``interactions.tsv``: ``user_id, item_id, ts[, weight]``; ``social.tsv``: ``user_id, target_id[, ts]``;
``items.tsv``: ``item_id, text``. Header line, tab-separated, UTF-8.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from socrec_online.data.base import Dataset, Interactions
from socrec_online.engagement import Kind
from socrec_online.idmap import IdMap


class DataFormatError(ValueError):
    """A bring-your-own file is malformed; the message names file, line and problem."""


def _rows(path: Path, min_cols: int) -> list[list[str]]:
    if not path.exists():
        raise DataFormatError(f"{path}: missing (expected a tab-separated file with a header line)")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise DataFormatError(f"{path}: empty file (a header line is required)")
        out = []
        for lineno, row in enumerate(reader, start=2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) < min_cols:
                raise DataFormatError(f"{path}:{lineno}: expected at least {min_cols} columns, got {len(row)}")
            out.append(row)
    return out


def load_files(data_dir: str | Path) -> Dataset:
    d = Path(data_dir)
    users, items = IdMap(), IdMap()
    item_text: list[str] = []
    for row in _rows(d / "items.tsv", 2):
        r = items.add(row[0])
        if r == len(item_text):
            item_text.append(row[1])
        else:
            item_text[r] = row[1]
    us, its, tss, ws = [], [], [], []
    for lineno, row in enumerate(_rows(d / "interactions.tsv", 3), start=2):
        if row[1] not in items:
            raise DataFormatError(f"{d / 'interactions.tsv'}:{lineno}: item {row[1]!r} is not in items.tsv")
        try:
            ts = float(row[2])
            w = float(row[3]) if len(row) > 3 and row[3] != "" else 1.0
        except ValueError as e:
            raise DataFormatError(f"{d / 'interactions.tsv'}:{lineno}: {e}") from None
        if not (np.isfinite(ts) and np.isfinite(w)):
            raise DataFormatError(f"{d / 'interactions.tsv'}:{lineno}: ts and weight must be finite")
        us.append(users.add(row[0]))
        its.append(items.row(row[1]))
        tss.append(ts)
        ws.append(w)
    src, dst = [], []
    social = d / "social.tsv"
    if social.exists():
        for row in _rows(social, 2):
            if row[0] == row[1]:
                continue
            src.append(users.add(row[0]))
            dst.append(users.add(row[1]))
    inter = Interactions(
        np.asarray(us, np.int64),
        np.asarray(its, np.int64),
        np.asarray(tss, np.float64),
        np.asarray(ws, np.float32),
        np.full(len(us), Kind.CLICK, np.int8),
    )
    return Dataset(
        name="files",
        users=users,
        items=items,
        item_text=item_text,
        interactions=inter,
        social_src=np.asarray(src, np.int64),
        social_dst=np.asarray(dst, np.int64),
        meta={"data_dir": str(d)},
    )
