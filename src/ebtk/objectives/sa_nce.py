"""Self-adapting NCE: the noise is a frozen snapshot θ̄ of the model itself, refreshed every K steps.

Logit G(u) = −E_θ(u) + E_θ̄(u) − c − log ν, i.e. NCE with q = p_θ̄ (whose unknown log Z_θ̄ is folded
into c ≈ log Z_θ − log Z_θ̄). Noise samples come from the snapshot's energy by Langevin (short-run or
persistent chains, per the `sampler` config). Right after a refresh θ = θ̄ and c = 0, so G ≡ 0 (ν = 1):
the loss is 2·log 2 and its gradient is ½(E_data ∇E − E_θ̄ ∇E), half the maximum-likelihood gradient.
Between refreshes the classification keeps the model honest about the snapshot; K = 1 is ≈ ML and
K = never (`interval: never`, null in YAML) keeps the first snapshot (plain NCE against the initial model).

c is either `learned` (an nn.Parameter, reset to 0 at each refresh) or `estimated`: the importance
estimate c = log mean_y exp(−E_θ(y) + E_θ̄(y)) over the batch's noise samples y ~ p_θ̄. The estimate is
left in the graph: it is the loss's own normaliser as a function of θ, and at a refresh its gradient
contribution cancels, so the ½·ML property holds for both modes.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ebtk.energy import unwrap
from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch, LossOutput, Objective
from ebtk.objectives.cd import Chains
from ebtk.objectives.nce import nce_loss, tile_cond
from ebtk.registry import register


@dataclass
class SANCEConfig:
    """Options of `sa-nce`.

    Attributes:
        interval: K, refresh the snapshot θ̄ ← θ every K optimiser steps; None (``"never"`` in configs) is
            K = ∞; K = 1 is maximum likelihood.
        c: ``learned`` (a parameter reset to 0 at each refresh) or ``estimated`` (the importance estimate
            log mean_y exp(−E_θ(y) + E_θ̄(y)) over the noise samples).
        nu: ν, noise samples per data sample (≥ 1).
        alpha: weight of the energy-magnitude regulariser α·(mean E⁺² + mean E⁻²), as in cd.
        hyp_noise: refiner batches: std of the noise added to the hypothesis where chains start.
    """
    interval: int | None = 100  # K: refresh the snapshot every K steps; None/"never" = K = ∞; 1 ≈ ML
    c: str = "learned"  # learned (parameter reset to 0 at refresh) | estimated (importance estimate)
    nu: int = 1  # noise samples per data sample
    alpha: float = 0.0  # energy-magnitude regulariser α·(mean E⁺² + mean E⁻²)
    hyp_noise: float = 0.1  # refiner batches: std of the noise added to the hypothesis where chains start

    def validate(self) -> None:
        """Check the options (`ebtk.objective` and config parsing call this).

        Raises:
            EbtkError: a value out of range; the message names the key.
        """
        if self.interval is not None and self.interval < 1:
            raise EbtkError(f"objective.interval must be ≥ 1, or 'never' for K = ∞, got {self.interval}")
        if self.c not in ("learned", "estimated"):
            raise EbtkError(f"objective.c must be learned or estimated, got {self.c!r}")
        if self.nu < 1:
            raise EbtkError(f"objective.nu must be an integer ≥ 1, got {self.nu}")
        if self.alpha < 0 or self.hyp_noise < 0:
            raise EbtkError("objective.alpha and objective.hyp_noise must be ≥ 0")


@register("objective", "sa-nce")
class SANCE(Objective):
    """SA-NCE. `setup(model)` takes the first snapshot; `after_step` refreshes at multiples of K."""

    name: ClassVar[str] = "sa-nce"
    Config: ClassVar[type] = SANCEConfig
    needs_energy: ClassVar[bool] = True

    def __init__(self, cfg: SANCEConfig | None = None, **inputs: Any):
        super().__init__(cfg, **inputs)
        cfg = self.cfg
        self.c = nn.Parameter(torch.zeros(()), requires_grad=cfg.c == "learned")
        self.chains = Chains(self.sampler_cfg, self.init_fn, self.sampler_cfg.persistent, cfg.hyp_noise)
        self.snapshot: nn.Module | None = None
        self.register_buffer("refreshes", torch.zeros((), dtype=torch.long))

    # -- snapshot ---------------------------------------------------------------------------------
    def setup(self, model: nn.Module) -> None:
        """Take the first snapshot θ̄ = θ (a frozen copy, checkpointed with the objective, never optimised).

        Raises:
            EbtkError: `model` is a score network.
        """
        self.check_model(model)
        snap = copy.deepcopy(unwrap(model))
        for p in snap.parameters():
            p.requires_grad_(False)
        self.snapshot = snap  # a submodule: checkpointed with the objective, never optimised

    def refresh(self, model: nn.Module) -> None:
        """θ̄ ← θ and (learned c) c ← 0, so that G ≡ 0 right after."""
        if self.snapshot is None:
            self.setup(model)
        else:
            with torch.no_grad():
                for dst, src in zip(self.snapshot.state_dict().values(), unwrap(model).state_dict().values()):
                    dst.copy_(src)
        with torch.no_grad():
            self.c.zero_()
        self.refreshes += 1

    def on_step(self, model: nn.Module, step: int) -> None:
        """Refresh the snapshot when `step` is a multiple of K (`interval`)."""
        if self.cfg.interval is not None and step % self.cfg.interval == 0:
            self.refresh(model)

    # -- loss -------------------------------------------------------------------------------------
    def forward(self, model: nn.Module, batch: Batch, negatives: torch.Tensor | None = None) -> LossOutput:
        """The SA-NCE loss of one batch: NCE with logit G(u) = −E_θ(u) + E_θ̄(u) − c − log ν, u ~ p_θ̄.

        Takes the first snapshot on the first call if `setup` was not called.

        Args:
            model: an energy model.
            batch: x (B, *shape) data.
            negatives: (ν·B, *shape) noise samples to use instead of drawing them from the snapshot's chains.

        Returns:
            `LossOutput`; metrics include c and the classification accuracy; negatives are the noise samples.

        Raises:
            EbtkError: `model` is a score network.
        """
        """`negatives` (ν·B, *shape) overrides the Langevin chains (tests inject exact snapshot samples)."""
        self.check_model(model)
        if self.snapshot is None:  # library use: the first call takes the first snapshot
            self.setup(model)
        nu, b = self.cfg.nu, len(batch)
        if negatives is None:
            negatives = self.chains.sample(self.snapshot, batch, nu)
        y = negatives.detach()
        u, cond = torch.cat([batch.x, y], 0), tile_cond(batch.cond, 1 + nu)
        e = model(u, cond)  # one forward call for data and noise
        with torch.no_grad():
            e_bar = self.snapshot(u, cond)
        log_ratio = -e + e_bar  # log p̃_θ(u) − log p̃_θ̄(u)
        if self.cfg.c == "estimated":
            c = torch.logsumexp(log_ratio[b:], 0) - math.log(len(y))
        else:
            c = self.c
        g = log_ratio - c - math.log(nu)
        loss, metrics = nce_loss(g[:b], g[b:], nu)
        e_pos, e_neg = e[:b], e[b:]
        if self.cfg.alpha > 0:
            reg = e_pos.pow(2).mean() + e_neg.pow(2).mean()
            loss = loss + self.cfg.alpha * reg
            metrics["reg"] = reg.detach()
        metrics.update(c=c.detach(), e_pos=e_pos.detach().mean(), e_neg=e_neg.detach().mean())
        return LossOutput(loss, metrics, y)
