"""String ids to dense rows: the one place where ids become tensor indices."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence


class IdMap:
    """Append-only bijection between string ids and rows 0..n-1.

    Append-only keeps rows stable while embeddings tables grow, so a row never
    changes meaning under a running worker.
    """

    __slots__ = ("_ids", "_rows")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        for i in ids:
            self.add(i)

    def add(self, id_: str) -> int:
        row = self._rows.get(id_)
        if row is None:
            row = len(self._ids)
            self._rows[id_] = row
            self._ids.append(id_)
        return row

    def add_many(self, ids: Iterable[str]) -> list[int]:
        return [self.add(i) for i in ids]

    def row(self, id_: str) -> int:
        """Row of a known id; KeyError for an unknown one."""
        return self._rows[id_]

    def get(self, id_: str, default: int | None = None) -> int | None:
        return self._rows.get(id_, default)

    def rows(self, ids: Sequence[str]) -> list[int]:
        return [self._rows[i] for i in ids]

    def rows_or_missing(self, ids: Iterable[str]) -> list[int]:
        """Rows of ``ids``, -1 for each unknown one."""
        get = self._rows.get
        return [get(i, -1) for i in ids]

    def id(self, row: int) -> str:
        return self._ids[row]

    def ids(self, rows: Iterable[int]) -> list[str]:
        return [self._ids[int(r)] for r in rows]

    @property
    def all_ids(self) -> list[str]:
        return list(self._ids)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._rows

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)
