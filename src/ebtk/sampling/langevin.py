"""Langevin dynamics, the sampler of EBM training, and the shared sampler base.

Samplers move *up* the log-density: x ← x + η·s(x) + noise_scale·√(2η)·ξ. They never build a graph
through the parameters: the score is taken w.r.t. x only, and the result is detached.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ebtk.energy import is_compiled, is_energy, strip_ddp, unwrap


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


def _grad_energy(net: nn.Module, x: torch.Tensor, cond=None) -> torch.Tensor:  # noqa: ANN001
    """∇ₓ Σᵢ E(xᵢ) (like x): forward and backward w.r.t. x only, as one function for torch.compile.

    `torch.func.grad` differentiates w.r.t. x alone, so no parameter needs its requires_grad flag
    toggled (a flag change would be a guard failure, i.e. a recompile) and, called under no_grad, no graph
    through θ is recorded.
    """
    return torch.func.grad(lambda x_: net(x_, cond).sum())(x)


def _score(net: nn.Module, x: torch.Tensor, cond=None) -> torch.Tensor:  # noqa: ANN001
    return net(x, cond)


_COMPILED: dict = {}


def compiled(fn):  # noqa: ANN001, ANN201
    """`fn` compiled once per process with ``dynamic=False``.

    One compilation per distinct input shape (training batches all have one shape), and no dynamic-shape
    kernels. Dynamo keeps at most ``torch._dynamo.config.recompile_limit`` (8) shapes per function, then runs
    the rest eagerly.
    """
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=False)
    return _COMPILED[fn]


def compile_samplers(module: nn.Module, on: bool = True) -> int:
    """Set `compile` on every `Sampler` held by `module` or its submodules; returns how many were found."""
    n = 0
    for m in module.modules():
        for v in vars(m).values():
            if isinstance(v, Sampler):
                v.compile = on
                n += 1
    return n


class Sampler:
    """Base: subclasses implement `step(x, score)`; `sample` runs the loop with no parameter graph.

    With `compile` set (`train.compile=true`, or `compile_samplers`), or when handed a ``torch.compile``d
    model, each step's ∇ₓE (score, for score networks) comes from a compiled function of the bare network
    (`_grad_energy`); the update and its noise stay eager, so the RNG stream is the eager one.

    Args:
        steps: updates per `sample` call.
        step_size: η.
        clip: clamp samples to [−clip, clip] after each step; 0 disables.
    """

    compile: bool = False

    def __init__(self, steps: int, step_size: float, clip: float = 0.0):
        self.steps = int(steps)
        self.step_size = float(step_size)
        self.clip = float(clip)

    def step(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """One update of the chain.

        Args:
            x: (B, *shape) current states.
            score: s(x), shaped like x.

        Returns:
            The next states, shaped like x.
        """
        raise NotImplementedError

    def descend_(self, x: torch.Tensor, grad_e: torch.Tensor) -> torch.Tensor:
        """One update from the energy gradient ∇ₓE = −s; may overwrite x (the loop owns it), not grad_e.

        Default: `step(x, −grad_e)`. Subclasses override it with an in-place form that rounds the same.
        """
        return self.step(x, -grad_e)

    def ascend_(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """One update from a score network's output; may overwrite x, not score. Default: `step`."""
        return self.step(x, score)

    def sample(self, model: nn.Module, x0: torch.Tensor, cond: Any = None, steps: int | None = None) -> torch.Tensor:
        """Run `steps` (default self.steps) updates from x0; returns detached samples.

        The loop is the hot path of CD/PCD/SA-NCE, so everything per-call is hoisted out of it: the
        unwrap, the model-kind test and freezing the parameters (no graph through θ is ever recorded,
        and autograd computes only ∇ₓ); updates are in place on one chain tensor (a copy of x0).

        Args:
            model: an energy model (score by autograd) or a score model, possibly DDP- or compile-wrapped.
            x0: (B, *shape) chain starts (not modified).
            cond: conditioning handed to the model, or None.
            steps: number of updates; None = ``self.steps``.

        Returns:
            (B, *shape) samples, detached.
        """
        net = strip_ddp(model)  # no DDP hooks: sampling never back-propagates into parameters
        n = self.steps if steps is None else steps
        x = x0.detach().clone()
        energy = is_energy(net)
        if self.compile or is_compiled(net):
            fn = compiled(_grad_energy if energy else _score)
            net = unwrap(net)
            with torch.no_grad():
                for _ in range(n):
                    x = self.descend_(x, fn(net, x, cond)) if energy else self.ascend_(x, fn(net, x, cond))
                    if self.clip > 0:
                        x = x.clamp_(-self.clip, self.clip)
            return x
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
    """SGLD with a separate noise scale: x ← x + η·s(x) + noise_scale·√(2η)·ξ, ξ ~ N(0, I).

    noise_scale = 1 is exact unadjusted Langevin; EBM training usually uses a smaller one.

    Args:
        steps: updates per `sample` call.
        step_size: η.
        noise_scale: multiplier of the √(2η) noise.
        clip: clamp samples to [−clip, clip] after each step; 0 disables.
    """

    def __init__(self, steps: int, step_size: float, noise_scale: float = 1.0, clip: float = 0.0):
        super().__init__(steps, step_size, clip)
        self.sigma = noise_scale * math.sqrt(2.0 * step_size)

    def step(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """One Langevin update x + η·s + σ·ξ (a new tensor)."""
        return x + self.step_size * score + self.sigma * torch.randn_like(x)

    # In place, same roundings as `step`: (−η)·∇E is η·s exactly, then (x + η·s) + σ·ξ.
    def descend_(self, x: torch.Tensor, grad_e: torch.Tensor) -> torch.Tensor:
        """One update from ∇ₓE = −s, in place on x, rounding as `step` does."""
        x.add_(grad_e.mul(-self.step_size))
        return x.add_(torch.randn_like(x).mul_(self.sigma))

    def ascend_(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """One update from a score network's output, in place on x."""
        x.add_(score.mul(self.step_size))
        return x.add_(torch.randn_like(x).mul_(self.sigma))


def langevin(
    model: nn.Module,
    x0: torch.Tensor,
    steps: int,
    step_size: float,
    noise_scale: float = 1.0,
    cond: Any = None,
    clip: float = 0.0,
) -> torch.Tensor:
    """Draw samples by Langevin dynamics from x0: `Langevin(...).sample(model, x0, cond)` in one call.

    Args:
        model: an energy model (score −∇ₓE by autograd) or a score model.
        x0: (B, *shape) chain starts, e.g. ``torch.randn(256, 2)``.
        steps: number of updates.
        step_size: η.
        noise_scale: multiplier of the √(2η) noise (1 = exact unadjusted Langevin).
        cond: conditioning handed to the model, or None.
        clip: clamp samples to [−clip, clip] after each step; 0 disables.

    Returns:
        (B, *shape) samples, detached; no graph through the model's parameters.
    """
    return Langevin(steps, step_size, noise_scale, clip).sample(model, x0, cond)
