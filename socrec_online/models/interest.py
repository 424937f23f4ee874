"""A user's interest vector from the text of what they engaged with and wrote.

v_u = normalize( sum_i w_i * 0.5 ** ((now - ts_i) / half_life) * e_i )

over the user's behaviours i (clicked / liked / commented items, own comments, authored items,
declared-interest profile), e_i the behaviour's text embedding, w_i its kind's weight. Decay is
exponential so the streaming state needs one ``(D,)`` sum per user, not the event list, and the
streaming and batch formulas agree exactly. Because the vector is normalised, only the *relative*
age of a user's behaviours shapes its direction; ``now`` sets the decayed *mass* (a confidence:
how much recent evidence stands behind the vector), returned separately.

A user with only a profile gets exactly the profile's vector, so cold start is meaningful.
Undoing a behaviour (an unlike) is learning it again with the negated weight and the original ts.
Dedup by event_id is the caller's job: ``learn_one`` is additive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

# Weights per behaviour kind: why a comment outweighs a like outweighs a click is effort: the more a
# user invested, the stronger the signal. A declared profile is the user's own words about
# themselves, the strongest single statement, and the only one a cold-start user has.
W_CLICK = 1.0
W_LIKE = 2.0
W_COMMENT = 3.0  # the commented item's text and the comment's own text each count with this weight
W_AUTHORED = 2.0  # an item the user published
W_PROFILE = 4.0
KIND_WEIGHT: dict[str, float] = {
    "click": W_CLICK,
    "like": W_LIKE,
    "comment": W_COMMENT,
    "authored": W_AUTHORED,
    "profile": W_PROFILE,
}


def decay(age_s: Tensor, half_life_s: float) -> Tensor:
    """0.5 ** (age / half_life): a behaviour one half-life old counts half."""
    if half_life_s <= 0:
        raise ValueError("half_life_s must be > 0")
    return torch.exp2(-age_s.to(torch.float64) / half_life_s)


def interest_many(
    emb: Tensor,  # (N, D) text embeddings of behaviours
    owner: Tensor,  # (N,) long: user row of each behaviour
    ts: Tensor,  # (N,) seconds since the epoch
    weight: Tensor,  # (N,) kind weight (negative for an undo)
    n_users: int,
    now: float,
    half_life_s: float,
    return_mass: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Batch interest vectors ``(U, D)`` (zero rows for users without behaviours), optionally with
    the decayed mass ``(U,)`` float64 at ``now``."""
    if half_life_s <= 0:
        raise ValueError("half_life_s must be > 0")
    dev, d = emb.device, emb.shape[1]
    owner = owner.to(dev, torch.long)
    ts64 = ts.to(dev, torch.float64)
    w64 = weight.to(dev, torch.float64)
    # per-user reference = the user's latest ts, so every exponent is <= 0 (no overflow)
    ref = torch.full((n_users,), float("-inf"), dtype=torch.float64, device=dev)
    ref = ref.scatter_reduce(0, owner, ts64, reduce="amax", include_self=True)  # (U,)
    f = w64 * torch.exp2((ts64 - ref[owner]) / half_life_s)  # (N,) relative decayed weight
    acc = torch.zeros(n_users, d, dtype=torch.float32, device=dev)
    acc.index_add_(0, owner, emb.float() * f.float().unsqueeze(1))  # (U, D)
    vec = F.normalize(acc, dim=1)
    if not return_mass:
        return vec
    mass_rel = torch.zeros(n_users, dtype=torch.float64, device=dev).index_add_(0, owner, f)  # (U,)
    scale = torch.where(torch.isfinite(ref), torch.exp2((ref - now) / half_life_s), torch.zeros_like(ref))
    return vec, mass_rel * scale


class InterestState:
    """Streaming form of :func:`interest_many`: per user a decayed sum relative to the user's latest ts.

    When a newer behaviour arrives the sum is rescaled to the new reference, so the state equals
    the batch formula on the same behaviours (up to float rounding) whatever the arrival order.
    """

    def __init__(
        self, dim: int, half_life_s: float, device: str | torch.device = "cpu", capacity: int = 1024
    ):
        if half_life_s <= 0:
            raise ValueError("half_life_s must be > 0")
        self.dim = dim
        self.half_life_s = float(half_life_s)
        self.device = torch.device(device)
        self._n = 0  # rows in use (max user row + 1)
        self._alloc(max(1, capacity))

    def _alloc(self, cap: int) -> None:
        dev = self.device
        self.sum = torch.zeros(cap, self.dim, dtype=torch.float32, device=dev)  # (C, D)
        self.mass = torch.zeros(cap, dtype=torch.float64, device=dev)  # (C,) relative to ref
        self.ref = torch.full((cap,), float("-inf"), dtype=torch.float64, device=dev)  # (C,)
        self.count = torch.zeros(cap, dtype=torch.long, device=dev)  # (C,)

    def _grow(self, rows_needed: int) -> None:
        cap = self.sum.shape[0]
        if rows_needed <= cap:
            self._n = max(self._n, rows_needed)
            return
        new = max(rows_needed, cap * 2)
        old = (self.sum, self.mass, self.ref, self.count)
        self._alloc(new)
        self.sum[:cap], self.mass[:cap], self.ref[:cap], self.count[:cap] = old
        self._n = rows_needed

    @property
    def n_users(self) -> int:
        return self._n

    def learn_one(self, user_row: int, emb: Tensor, ts: float, weight: float) -> None:
        """Add one behaviour (``emb`` is ``(D,)``); scalar arithmetic, so per-event cost stays tiny."""
        if emb.shape[-1] != self.dim:
            raise ValueError(f"embedding width {emb.shape[-1]} != state width {self.dim}")
        if user_row < 0:
            raise ValueError("user rows must be >= 0")
        self._grow(user_row + 1)
        h, ts = self.half_life_s, float(ts)
        ref = float(self.ref[user_row])
        if ts > ref:
            rescale = 2.0 ** ((ref - ts) / h) if math.isfinite(ref) else 0.0
            self.sum[user_row] *= rescale
            self.mass[user_row] *= rescale
            self.ref[user_row] = ts
            ref = ts
        f = float(weight) * 2.0 ** ((ts - ref) / h)
        self.sum[user_row].add_(emb.reshape(-1).to(self.device, torch.float32), alpha=f)
        self.mass[user_row] += f
        self.count[user_row] += 1

    def learn_many(self, owner: Tensor, emb: Tensor, ts: Tensor, weight: Tensor) -> None:
        """Add N behaviours at once: ``owner (N,)``, ``emb (N, D)``, ``ts (N,)``, ``weight (N,)``."""
        if owner.numel() == 0:
            return
        if emb.shape[-1] != self.dim:
            raise ValueError(f"embedding width {emb.shape[-1]} != state width {self.dim}")
        dev, h = self.device, self.half_life_s
        owner = owner.to(dev, torch.long).reshape(-1)
        if int(owner.min()) < 0:
            raise ValueError("user rows must be >= 0")
        self._grow(int(owner.max()) + 1)
        ts64 = ts.to(dev, torch.float64).reshape(-1)
        w64 = weight.to(dev, torch.float64).reshape(-1)
        new_ref = self.ref.scatter_reduce(0, owner, ts64, reduce="amax", include_self=True)  # (C,)
        users = torch.unique(owner)
        old, nr = self.ref[users], new_ref[users]
        rescale = torch.where(torch.isfinite(old), torch.exp2((old - nr) / h), torch.zeros_like(old))
        self.sum[users] *= rescale.float().unsqueeze(1)
        self.mass[users] *= rescale
        self.ref = new_ref
        f = w64 * torch.exp2((ts64 - new_ref[owner]) / h)  # (N,)
        self.sum.index_add_(0, owner, emb.to(dev, torch.float32) * f.float().unsqueeze(1))
        self.mass.index_add_(0, owner, f)
        self.count.index_add_(0, owner, torch.ones_like(owner))

    def _rows(self, rows: Tensor | Sequence[int]) -> tuple[Tensor, Tensor]:
        r = torch.as_tensor(rows, dtype=torch.long).to(self.device).reshape(-1)
        known = (r >= 0) & (r < self._n)
        return r.clamp(0, max(self._n - 1, 0)), known

    def vectors(self, rows: Tensor | Sequence[int], now: float) -> Tensor:
        """``(B, D)`` normalised interest vectors; zeros for users without behaviours."""
        r, known = self._rows(rows)
        if self._n == 0:
            return torch.zeros(r.shape[0], self.dim, device=self.device)
        v = F.normalize(self.sum[r], dim=1)  # (B, D)
        return v * known.unsqueeze(1)

    def vector(self, user_row: int, now: float) -> Tensor:
        return self.vectors([user_row], now)[0]  # (D,)

    def masses(self, rows: Tensor | Sequence[int], now: float) -> Tensor:
        """``(B,)`` float64 decayed total weight at ``now`` (0 without behaviours)."""
        r, known = self._rows(rows)
        if self._n == 0:
            return torch.zeros(r.shape[0], dtype=torch.float64, device=self.device)
        ref = self.ref[r]
        scale = torch.where(
            torch.isfinite(ref), torch.exp2((ref - now) / self.half_life_s), torch.zeros_like(ref)
        )
        return self.mass[r] * scale * known

    def has_history(self, rows: Tensor | Sequence[int]) -> Tensor:
        r, known = self._rows(rows)
        if self._n == 0:
            return torch.zeros(r.shape[0], dtype=torch.bool, device=self.device)
        return (self.count[r] > 0) & known

    def state_dict(self) -> dict[str, Tensor]:
        n = self._n
        return {
            "sum": self.sum[:n].cpu().contiguous(),
            "mass": self.mass[:n].cpu().contiguous(),
            "ref": self.ref[:n].cpu().contiguous(),
            "count": self.count[:n].cpu().contiguous(),
            "half_life_s": torch.tensor([self.half_life_s], dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        s = state["sum"]
        if s.ndim != 2 or s.shape[1] != self.dim:
            raise ValueError(f"interest state width {tuple(s.shape)} does not match dim {self.dim}")
        n = s.shape[0]
        if not (state["mass"].shape == state["ref"].shape == state["count"].shape == (n,)):
            raise ValueError("interest state tensors disagree in length")
        self.half_life_s = float(state["half_life_s"].reshape(-1)[0])
        self._alloc(max(1, n))
        self._n = n
        self.sum[:n] = s.to(self.device, torch.float32)
        self.mass[:n] = state["mass"].to(self.device, torch.float64)
        self.ref[:n] = state["ref"].to(self.device, torch.float64)
        self.count[:n] = state["count"].to(self.device, torch.long)
