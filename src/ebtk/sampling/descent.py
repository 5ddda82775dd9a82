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
    """Noise-free first-order refinement x ← x + η·m⊙s(x): ascent on log p, descent on E.

    A {0, 1} mask changes no rounding.

    Args:
        steps: updates per `sample` call.
        step_size: η.
        mask: broadcastable to x, 1 = valid (padded frames stay where they are), or None.
        clip: clamp after each step; 0 disables.
    """

    def __init__(self, steps: int, step_size: float = 1.0, mask: torch.Tensor | None = None, clip: float = 0.0):
        super().__init__(steps, step_size, clip)
        self.mask = mask

    def step(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """One update x + η·m⊙s (a new tensor)."""
        return x + self.step_size * (score if self.mask is None else score * self.mask)

    def descend_(self, x: torch.Tensor, grad_e: torch.Tensor) -> torch.Tensor:
        """One update from ∇ₓE = −s, in place on x."""
        d = grad_e.mul(-self.step_size)  # (−η)·∇E is η·s exactly
        return x.add_(d if self.mask is None else d.mul_(self.mask))

    def ascend_(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """One update from a score network's output, in place on x."""
        d = score.mul(self.step_size)
        return x.add_(d if self.mask is None else d.mul_(self.mask))

    def trajectory(self, model: nn.Module, x0: torch.Tensor, cond: Any = None,
                   record: tuple[int, ...] = ()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Run `self.steps` updates from x0, recording the chain after chosen step counts.

        One chain, cut at the recorded step counts: the states equal those of separate runs of k steps.

        Args:
            model: an energy or score model.
            x0: (B, *shape) starts, e.g. hypothesis mels (B, 80, T).
            cond: conditioning handed to the model, or None.
            record: step counts k to keep (those outside [0, steps] are ignored).

        Returns:
            (x after all steps, {k: x after k steps}).

        Raises:
            EbtkError: steps < 0.
        """
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
    """Refine x0 by `steps` noise-free steps x ← x + η·s(x) (ascent on log p, descent on E).

    Exported as ``ebtk.descend``: the TTS refiner's inference.

    Args:
        model: an energy model (score −∇ₓE by autograd) or a score model.
        x0: (B, *shape) starts, e.g. a hypothesis mel (B, 80, T).
        steps: number of steps (0 returns a copy of x0).
        step_size: η; for a delta-trained refiner, the η it was trained for.
        cond: conditioning handed to the model, or None.
        mask: (B, 1, T), 1 on valid frames: padded frames stay fixed.

    Returns:
        The refined tensor, shaped like x0, detached.
    """
    return Descent(steps, step_size, mask).sample(model, x0, cond)
