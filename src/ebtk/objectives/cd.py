"""Contrastive divergence (short-run Langevin) and persistent CD (replay buffer).

loss = mean E(x⁺) − mean E(x⁻) + α·(mean E(x⁺)² + mean E(x⁻)²). Its gradient is the ML gradient
E_data ∇E − E_model ∇E with the model expectation replaced by Langevin samples; the α term keeps the
energies from drifting (the ML gradient is blind to a constant shift). α = 0.1 is stable on 2-D toy
data and barely biases the fit (the energy then settles near 0 on both sides).

`Chains` (negative samples from Langevin, short-run or persistent) is shared with SA-NCE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ebtk.config import SamplerConfig
from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch, InitFn, LossOutput, Objective
from ebtk.objectives.nce import tile_cond
from ebtk.registry import register
from ebtk.sampling import Langevin, ReplayBuffer


class Chains(nn.Module):
    """Negative samples by Langevin, per the `sampler` config.

    Unconditional batches start from ``init(n, device)`` (default: standard normal shaped like the
    data; short-run) or from a replay buffer of persistent chains. Refiner batches (``batch.hyp`` set)
    start at the hypothesis plus Gaussian noise of std `hyp_noise`, with the conditioning tiled; padded
    frames are reset to the hypothesis.
    """

    def __init__(self, sampler: SamplerConfig, init: InitFn | None, persistent: bool, hyp_noise: float = 0.1):
        super().__init__()
        self.init = init
        self.langevin = Langevin(sampler.steps, sampler.step_size, sampler.noise_scale, sampler.clip)
        self.hyp_noise = float(hyp_noise)
        self.buffer = ReplayBuffer(sampler.buffer_size, sampler.reinit) if persistent else None

    def sample(self, model: nn.Module, batch: Batch, k: int = 1) -> torch.Tensor:
        """k·B negatives (k·B, *shape) from `model` (energy or snapshot), chain ends pushed to the buffer."""
        n, dev = k * len(batch), batch.x.device
        cond = tile_cond(batch.cond, k)
        if batch.hyp is not None:
            if self.buffer is not None:
                raise EbtkError("persistent chains (sampler.persistent / pcd) need unconditional data: each "
                                "refiner chain belongs to one hypothesis; hint: set sampler.persistent=false")
            hyp, mask = tile_cond(batch.hyp, k), tile_cond(batch.mask, k)
            x = self.langevin.sample(model, hyp + self.hyp_noise * torch.randn_like(hyp), cond)
            return x if mask is None else torch.where(mask.bool().expand_as(x), x, hyp)
        shape = batch.x.shape[1:]

        def init(m: int) -> torch.Tensor:
            x0 = torch.randn(m, *shape, device=dev) if self.init is None else self.init(m, dev)
            return x0.to(device=dev, dtype=batch.x.dtype)

        if self.buffer is None:
            return self.langevin.sample(model, init(n), cond)
        x = self.langevin.sample(model, self.buffer.draw(n, init), cond)
        self.buffer.push(x)
        return x


@dataclass
class CDConfig:
    """Options of `cd` and `pcd`.

    Attributes:
        alpha: weight α of the energy-magnitude regulariser α·(mean E⁺² + mean E⁻²), which keeps the
            energies from drifting (the ML gradient is blind to a constant shift).
        hyp_noise: refiner batches: std of the noise added to the hypothesis where chains start.
    """
    alpha: float = 0.1  # weight of the energy-magnitude regulariser mean E⁺² + mean E⁻²
    hyp_noise: float = 0.1  # refiner batches: std of the noise added to the hypothesis where chains start

    def validate(self) -> None:
        """Check the options (`ebtk.objective` and config parsing call this).

        Raises:
            EbtkError: a value out of range; the message names the key.
        """
        if self.alpha < 0 or self.hyp_noise < 0:
            raise EbtkError("objective.alpha and objective.hyp_noise must be ≥ 0")


@register("objective", "cd")
class CD(Objective):
    """Contrastive divergence; chains are short-run from init noise unless `sampler.persistent`."""

    name: ClassVar[str] = "cd"
    Config: ClassVar[type] = CDConfig
    needs_energy: ClassVar[bool] = True
    persistent: ClassVar[bool | None] = None  # None: follow sampler.persistent

    def __init__(self, cfg: CDConfig | None = None, **inputs: Any):
        super().__init__(cfg, **inputs)
        sampler = self.sampler_cfg
        persistent = sampler.persistent if self.persistent is None else self.persistent
        self.chains = Chains(sampler, self.init_fn, persistent, self.cfg.hyp_noise)

    def forward(self, model: nn.Module, batch: Batch, negatives: torch.Tensor | None = None) -> LossOutput:
        """The CD loss mean E(x⁺) − mean E(x⁻) + α·(mean E(x⁺)² + mean E(x⁻)²) on one batch.

        Args:
            model: an energy model.
            batch: the `Batch`; x (B, *shape) are the positives x⁺.
            negatives: (B, *shape) x⁻ to use instead of drawing them from the chains.

        Returns:
            `LossOutput`; its negatives are the Langevin samples x⁻.

        Raises:
            EbtkError: `model` is a score network.
        """
        """`negatives` (B, *shape) overrides the chains (tests inject exact samples)."""
        self.check_model(model)
        x_neg = self.chains.sample(model, batch) if negatives is None else negatives.detach()
        # Two calls, not one on torch.cat([x, x_neg]): no 2B-row copy of the inputs, and the backward's
        # temporaries are B rows wide (peak memory at D = 64, B = 4096: see benchmarks/results/memory.md).
        e_pos, e_neg = model(batch.x, batch.cond), model(x_neg, batch.cond)
        gap = e_pos.mean() - e_neg.mean()
        reg = e_pos.pow(2).mean() + e_neg.pow(2).mean()
        loss = gap + self.cfg.alpha * reg
        metrics = {"cd_gap": gap.detach(), "reg": reg.detach(), "e_pos": e_pos.detach().mean(),
                   "e_neg": e_neg.detach().mean()}
        return LossOutput(loss, metrics, x_neg)


@register("objective", "pcd")
class PCD(CD):
    """Persistent CD: negatives continue chains kept in a replay buffer (`sampler.buffer_size`/`reinit`)."""

    name: ClassVar[str] = "pcd"
    persistent: ClassVar[bool | None] = True
