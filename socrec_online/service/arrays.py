"""Array helpers shared by the engine's parts: growable row-aligned arrays, row normalisation, and a
sparse-rows @ dense product that never materialises the gathered (nnz, D) block."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor


def grow(a: np.ndarray, n: int, fill: Any) -> np.ndarray:
    """``a`` with at least ``n`` rows (new rows = ``fill``), doubling so appends stay amortised O(1)."""
    if a.shape[0] >= n:
        return a
    new = np.full((max(n, 2 * a.shape[0], 64),) + a.shape[1:], fill, dtype=a.dtype)
    new[: a.shape[0]] = a
    return new


def grow_t(t: Tensor, n: int, dim0: int = 0) -> Tensor:
    """``grow`` for a tensor along ``dim0`` (new rows are zero)."""
    if t.shape[dim0] >= n:
        return t
    shape = list(t.shape)
    shape[dim0] = max(n, 2 * t.shape[dim0], 64)
    new = torch.zeros(shape, dtype=t.dtype, device=t.device)
    new.narrow(dim0, 0, t.shape[dim0]).copy_(t)
    return new


def normalise(x: Tensor) -> Tensor:
    """x / ||x|| per row; a zero row stays zero (one full-size op, no branch)."""
    n = x.norm(dim=-1, keepdim=True)  # (B, 1)
    return x / torch.where(n > 1e-9, n, torch.inf)


def csr_mm(counts: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_cols: int, dense: Tensor) -> Tensor:
    """(len(counts), n_cols) sparse rows (CSR: per-row counts, columns, values) @ dense (n_cols, D).

    Avoids materialising the (nnz, D) gather an index_add would need.
    """
    dev = dense.device
    if not cols.size:
        return torch.zeros(len(counts), dense.shape[1], device=dev, dtype=dense.dtype)
    crow = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=crow[1:])
    with warnings.catch_warnings():  # "CSR support is in beta": a one-time notice, not a problem
        warnings.simplefilter("ignore", UserWarning)
        a = torch.sparse_csr_tensor(
            torch.from_numpy(crow).to(dev),
            torch.from_numpy(np.ascontiguousarray(cols, np.int64)).to(dev),
            torch.from_numpy(np.ascontiguousarray(vals, np.float32)).to(dev, dense.dtype),
            size=(len(counts), n_cols),
            check_invariants=False,  # built right here from a CSR gather: valid by construction
        )
    return a @ dense


def gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``rows``, neighbour) for every neighbour of every row of a CSR graph, vectorised."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    total = int(lens.sum())
    owner = np.repeat(np.arange(len(rows), dtype=np.int64), lens)
    if not total:
        return owner, np.zeros(0, np.int64)
    offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    return owner, indices[np.repeat(starts, lens) + offs]
