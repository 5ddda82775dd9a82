"""Replay buffer of persistent chains (PCD, persistent SA-NCE), as an nn.Module so it is checkpointed."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ReplayBuffer(nn.Module):
    """Fixed-size store of past samples.

    `draw(n, init)` returns starting points: a `reinit` fraction fresh from `init(n)`, the rest from the
    buffer (fresh too until the buffer has filled). `push(x)` writes chain ends back at the drawn slots.
    """

    def __init__(self, size: int, reinit: float = 0.05):
        super().__init__()
        self.size = int(size)
        self.reinit = float(reinit)
        self.register_buffer("data", torch.empty(0))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self._idx: torch.Tensor | None = None

    def draw(self, n: int, init: Callable[[int], torch.Tensor]) -> torch.Tensor:
        fresh = init(n)
        if self.data.numel() == 0:
            self.data = torch.empty((self.size, *fresh.shape[1:]), dtype=fresh.dtype, device=fresh.device)
        filled = int(self.count.clamp(max=self.size))
        if filled < n:
            self._idx = None
            return fresh
        idx = torch.randint(0, filled, (n,), device=fresh.device)
        x = self.data[idx].clone()
        restart = torch.rand(n, device=fresh.device) < self.reinit
        x[restart] = fresh[restart]
        self._idx = idx
        return x

    def push(self, x: torch.Tensor) -> None:
        x = x.detach()
        if self._idx is not None:
            self.data[self._idx] = x
            return
        start = int(self.count) % self.size
        n = min(x.shape[0], self.size - start)
        self.data[start : start + n] = x[:n]
        self.count += n

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        # The buffer is allocated lazily: adopt the stored shape before the default copy.
        key = prefix + "data"
        if key in state_dict:
            self.data = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
