"""Langevin dynamics, the sampler of EBM training, and the shared sampler base.

Samplers move *up* the log-density: x ← x + η·s(x) + noise_scale·√(2η)·ξ. They never build a graph
through the parameters: the score is taken w.r.t. x only, and the result is detached.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ebtk.energy import is_energy, unwrap


@contextmanager
def frozen(net: nn.Module) -> Iterator[None]:
    """Parameters stop requiring grad for the block, so sampling records no graph through them.

    Done once per `sample` call (not per step); the flags are restored even if the block raises.
    """
    params = [p for p in net.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class Sampler:
    """Base: subclasses implement `step(x, score)`; `sample` runs the loop with no parameter graph."""

    def __init__(self, steps: int, step_size: float, clip: float = 0.0):
        self.steps = int(steps)
        self.step_size = float(step_size)
        self.clip = float(clip)

    def step(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def descend_(self, x: torch.Tensor, grad_e: torch.Tensor) -> torch.Tensor:
        """One update from the energy gradient ∇ₓE = −s; may overwrite x (the loop owns it), not grad_e.

        Default: `step(x, −grad_e)`. Subclasses override it with an in-place form that rounds the same.
        """
        return self.step(x, -grad_e)

    def ascend_(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """One update from a score network's output; may overwrite x, not score. Default: `step`."""
        return self.step(x, score)

    def sample(self, model: nn.Module, x0: torch.Tensor, cond=None, steps: int | None = None) -> torch.Tensor:
        """Run `steps` (default self.steps) updates from x0 (B, *shape); returns detached samples.

        The loop is the hot path of CD/PCD/SA-NCE, so everything per-call is hoisted out of it: the
        unwrap, the model-kind test and freezing the parameters (no graph through θ is ever recorded,
        and autograd computes only ∇ₓ); updates are in place on one chain tensor (a copy of x0).
        """
        net = unwrap(model)  # no DDP hooks: sampling never back-propagates into parameters
        n = self.steps if steps is None else steps
        x = x0.detach().clone()
        energy = is_energy(net)
        with frozen(net), torch.no_grad():
            for _ in range(n):
                if energy:
                    with torch.enable_grad():
                        xg = x.detach().requires_grad_(True)
                        (g,) = torch.autograd.grad(net(xg, cond).sum(), xg)
                    x = self.descend_(x, g)
                else:
                    x = self.ascend_(x, net(x, cond))
                if self.clip > 0:
                    x = x.clamp_(-self.clip, self.clip)
        return x


class Langevin(Sampler):
    """SGLD with a separate noise scale (noise_scale=1 is exact unadjusted Langevin)."""

    def __init__(self, steps: int, step_size: float, noise_scale: float = 1.0, clip: float = 0.0):
        super().__init__(steps, step_size, clip)
        self.sigma = noise_scale * math.sqrt(2.0 * step_size)

    def step(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        return x + self.step_size * score + self.sigma * torch.randn_like(x)

    # In place, same roundings as `step`: (−η)·∇E is η·s exactly, then (x + η·s) + σ·ξ.
    def descend_(self, x: torch.Tensor, grad_e: torch.Tensor) -> torch.Tensor:
        x.add_(grad_e.mul(-self.step_size))
        return x.add_(torch.randn_like(x).mul_(self.sigma))

    def ascend_(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        x.add_(score.mul(self.step_size))
        return x.add_(torch.randn_like(x).mul_(self.sigma))


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
