"""Noise-free first-order refinement x ← x + η·s(x): the TTS refiner's inference, and the one copy of it.

It shares the `Sampler` loop with Langevin (parameters frozen once, no graph through θ, in-place updates),
adds a mask (padded frames stay where they are, for any model, not only for the ones that mask their own
output) and `trajectory`, which records the chain after chosen step counts: a table of k ∈ {1, 2, 5, 10}
costs max(k) score evaluations, not their sum.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ebtk.errors import EbtkError
from ebtk.sampling.langevin import Sampler


class Descent(Sampler):
    """x ← x + η·m⊙s(x). `mask` (broadcastable to x, 1 = valid) is optional; a {0, 1} mask changes no rounding."""

    def __init__(self, steps: int, step_size: float = 1.0, mask: torch.Tensor | None = None, clip: float = 0.0):
        super().__init__(steps, step_size, clip)
        self.mask = mask

    def step(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        return x + self.step_size * (score if self.mask is None else score * self.mask)

    def descend_(self, x: torch.Tensor, grad_e: torch.Tensor) -> torch.Tensor:
        d = grad_e.mul(-self.step_size)  # (−η)·∇E is η·s exactly
        return x.add_(d if self.mask is None else d.mul_(self.mask))

    def ascend_(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        d = score.mul(self.step_size)
        return x.add_(d if self.mask is None else d.mul_(self.mask))

    def trajectory(self, model: nn.Module, x0: torch.Tensor, cond: Any = None,
                   record: tuple[int, ...] = ()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """`self.steps` updates from x0; -> (x after them, {k: x after k steps for k in `record`, k ≤ steps}).

        One chain, cut at the recorded step counts: the states equal those of separate runs of k steps."""
        if self.steps < 0:
            raise EbtkError(f"descent steps must be ≥ 0, got {self.steps}")
        seen: dict[int, torch.Tensor] = {}
        x, done = x0.detach(), 0
        for k in sorted({int(k) for k in record if 0 <= k <= self.steps} | {self.steps}):
            if k > done:
                x = self.sample(model, x, cond, steps=k - done)
                done = k
            if k in record:
                seen[k] = x
        return x, seen


def descent(model: nn.Module, x0: torch.Tensor, steps: int, step_size: float = 1.0, cond: Any = None,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """`steps` ascent steps on log p (descent on E) from x0, e.g. a hypothesis mel (B, 80, T); `mask`
    (B, 1, T) keeps padded frames fixed."""
    return Descent(steps, step_size, mask).sample(model, x0, cond)
