"""Langevin dynamics, the sampler of EBM training, and the shared sampler base.

Samplers move *up* the log-density: x ← x + η·s(x) + noise_scale·√(2η)·ξ. They never build a graph
through the parameters: the score is taken w.r.t. x only, and the result is detached.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ebtk.energy import score_of, unwrap
from ebtk.registry import register


class Sampler:
    """Base: subclasses implement `step(x, score)`; `sample` runs the loop with no parameter graph."""

    def __init__(self, steps: int, step_size: float, clip: float = 0.0):
        self.steps = int(steps)
        self.step_size = float(step_size)
        self.clip = float(clip)

    def step(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def sample(self, model: nn.Module, x0: torch.Tensor, cond=None, steps: int | None = None) -> torch.Tensor:
        """Run `steps` (default self.steps) updates from x0 (B, *shape); returns detached samples."""
        net = unwrap(model)  # no DDP hooks: sampling never back-propagates into parameters
        x = x0.detach()
        for _ in range(self.steps if steps is None else steps):
            x = self.step(x, score_of(net, x, cond).detach())
            if self.clip > 0:
                x = x.clamp_(-self.clip, self.clip)
        return x.detach()


@register("sampler", "langevin")
class Langevin(Sampler):
    """SGLD with a separate noise scale (noise_scale=1 is exact unadjusted Langevin)."""

    def __init__(self, steps: int, step_size: float, noise_scale: float = 1.0, clip: float = 0.0):
        super().__init__(steps, step_size, clip)
        self.sigma = noise_scale * math.sqrt(2.0 * step_size)

    def step(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        return x + self.step_size * score + self.sigma * torch.randn_like(x)


def langevin(
    model: nn.Module,
    x0: torch.Tensor,
    steps: int,
    step_size: float,
    noise_scale: float = 1.0,
    cond=None,
    clip: float = 0.0,
) -> torch.Tensor:
    """Functional form of `Langevin(...).sample(model, x0, cond)`."""
    return Langevin(steps, step_size, noise_scale, clip).sample(model, x0, cond)
