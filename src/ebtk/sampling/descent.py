"""Noise-free first-order refinement x ← x + η·s(x): the TTS refiner's inference."""

from __future__ import annotations

import torch
from torch import nn

from ebtk.registry import register
from ebtk.sampling.langevin import Sampler


@register("sampler", "descent")
class Descent(Sampler):
    def step(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        return x + self.step_size * score

    def descend_(self, x: torch.Tensor, grad_e: torch.Tensor) -> torch.Tensor:
        return x.add_(grad_e.mul(-self.step_size))  # in place; rounds as `step`

    def ascend_(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        return x.add_(score.mul(self.step_size))


def descent(model: nn.Module, x0: torch.Tensor, steps: int, step_size: float = 1.0, cond=None) -> torch.Tensor:
    """`steps` ascent steps on log p (descent on E) from x0, e.g. a hypothesis mel (B, 80, T)."""
    return Descent(steps, step_size).sample(model, x0, cond)
