"""Self-adapting NCE: the noise is a frozen snapshot θ̄ of the model itself, refreshed every K steps.

Logit G(u) = −E_θ(u) + E_θ̄(u) − c − log ν, i.e. NCE with q = p_θ̄ (whose unknown log Z_θ̄ is folded
into c ≈ log Z_θ − log Z_θ̄). Noise samples come from the snapshot's energy by Langevin (short-run or
persistent chains, per the `sampler` config). Right after a refresh θ = θ̄ and c = 0, so G ≡ 0 (ν = 1):
the loss is 2·log 2 and its gradient is ½(E_data ∇E − E_θ̄ ∇E), half the maximum-likelihood gradient.
Between refreshes the classification keeps the model honest about the snapshot; K = 1 is ≈ ML and
K = never (`interval: never`, null in YAML) keeps the first snapshot (plain NCE against the initial model).

The snapshot is a frozen deep copy whose parameters are turned into buffers: it is checkpointed with the
objective (``snapshot.*`` keys) but never in ``parameters()``, so an optimiser over
``[*model.parameters(), *objective.parameters()]`` saves and loads whether or not the snapshot exists yet.
A state dict loaded into a freshly built objective (no snapshot yet: it needs the model's architecture)
keeps the snapshot's tensors aside and puts them into the snapshot when `setup` / the first call makes it.

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
from ebtk.errors import EbtkError, one_line
from ebtk.objectives.base import Batch, LossOutput, Objective
from ebtk.objectives.cd import Chains
from ebtk.objectives.nce import nce_loss, tile_cond
from ebtk.registry import register


@dataclass
class SANCEConfig:
    """Options of `sa-nce`.

    Attributes:
        interval: K, refresh the snapshot θ̄ ← θ every K optimiser steps (≥ 1); None (``never`` in a config)
            keeps the first snapshot, K = ∞ (plain NCE against the initial model); 1 is ≈ maximum likelihood.
        c: ``learned`` (an nn.Parameter, reset to 0 at each refresh) or ``estimated`` (the importance
            estimate log mean exp(−E_θ(y) + E_θ̄(y)) over the batch's noise samples).
        nu: ν, noise samples per data sample (≥ 1).
        alpha: weight α of the energy-magnitude regulariser α·(mean E⁺² + mean E⁻²) (≥ 0).
        hyp_noise: refiner batches: std of the noise added to the hypothesis where chains start (≥ 0).
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
    """Self-adapting NCE: NCE against a frozen snapshot θ̄ of the model, refreshed every K steps.

    `setup(model)` (or the first call) takes the first snapshot; `after_step` refreshes it at multiples of
    K. The snapshot is checkpointed with the objective (``snapshot.*`` keys) but is not in ``parameters()``.

    Attributes:
        c: the log-normaliser offset (an nn.Parameter, trained only with ``c=learned``).
        snapshot: the frozen copy θ̄ (`frozen_copy`), or None before the first snapshot.
        refreshes: how many times the snapshot was refreshed (an integer buffer, checkpointed).
        chains: the Langevin chains that draw the noise samples from the snapshot.
    """

    name: ClassVar[str] = "sa-nce"
    Config: ClassVar[type] = SANCEConfig
    needs_energy: ClassVar[bool] = True

    def __init__(self, cfg: SANCEConfig | None = None, **inputs: Any):
        super().__init__(cfg, **inputs)
        cfg = self.cfg
        self.c = nn.Parameter(torch.zeros(()), requires_grad=cfg.c == "learned")
        self.chains = Chains(self.sampler_cfg, self.init_fn, self.sampler_cfg.persistent, cfg.hyp_noise)
        self.snapshot: nn.Module | None = None
        self._pending_snapshot: dict[str, torch.Tensor] | None = None  # loaded before the snapshot existed
        self.register_buffer("refreshes", torch.zeros((), dtype=torch.long))

    # -- snapshot ---------------------------------------------------------------------------------
    def setup(self, model: nn.Module) -> None:
        """Take the first snapshot θ̄ = θ (or, after `load_state_dict` into a fresh objective, the loaded one).

        Args:
            model: the energy model being trained (DDP- or compile-wrapped models are unwrapped).

        Raises:
            EbtkError: `model` is a score network, or a loaded snapshot does not fit its architecture.
        """
        self.check_model(model)
        self.snapshot = frozen_copy(unwrap(model))  # a submodule of buffers: checkpointed, never optimised
        if self._pending_snapshot is not None:
            try:
                self.snapshot.load_state_dict(self._pending_snapshot)
            except RuntimeError as e:
                raise EbtkError(f"the loaded SA-NCE snapshot does not fit this model: {one_line(e)}") from None
            self._pending_snapshot = None

    def refresh(self, model: nn.Module) -> None:
        """Copy the model into the snapshot, θ̄ ← θ, and (learned c) reset c ← 0, so that G ≡ 0 right after.

        Takes the first snapshot (`setup`) when there is none yet; counts the refresh in ``refreshes``.

        Args:
            model: the energy model being trained.
        """
        if self.snapshot is None:
            self.setup(model)
        with torch.no_grad():  # by name: the snapshot lists its (former) parameters after its buffers
            snap = self.snapshot.state_dict()
            for k, v in unwrap(model).state_dict().items():
                snap[k].copy_(v)
        with torch.no_grad():
            self.c.zero_()
        self.refreshes += 1

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        if self.snapshot is None:  # fresh objective: keep the snapshot's tensors for `setup`
            key = prefix + "snapshot."
            found = {k[len(key):]: state_dict.pop(k) for k in [k for k in state_dict if k.startswith(key)]}
            self._pending_snapshot = found or None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def on_step(self, model: nn.Module, step: int) -> None:
        """Refresh the snapshot when `step` is a multiple of K (never with ``interval=None``).

        Args:
            model: the energy model being trained.
            step: the 1-based count of optimiser steps (resolved by `after_step`).
        """
        if self.cfg.interval is not None and step % self.cfg.interval == 0:
            self.refresh(model)

    # -- loss -------------------------------------------------------------------------------------
    def forward(self, model: nn.Module, batch: Batch, negatives: torch.Tensor | None = None) -> LossOutput:
        """The SA-NCE loss of one batch: NCE with logit G(u) = −E_θ(u) + E_θ̄(u) − c − log ν.

        Takes the first snapshot on the first call when `setup` was not called (library use).

        Args:
            model: an energy model.
            batch: the `Batch`; x (B, *shape) are the data points.
            negatives: (ν·B, *shape) noise samples to use instead of drawing them from the snapshot by
                Langevin (tests inject exact snapshot samples).

        Returns:
            `LossOutput`; metrics include the classification accuracy, c and the mean energies of data
            (``e_pos``) and noise (``e_neg``), plus ``reg`` when α > 0; negatives are the noise samples.

        Raises:
            EbtkError: `model` is a score network, or persistent chains are used on refiner batches.
        """
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


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` whose parameters are buffers, with the same state-dict keys.

    It computes like `model`, is moved and checkpointed with its owner, and never shows up in
    ``parameters()``, so an optimiser built before the snapshot exists still saves and loads.

    Args:
        model: the module to copy (not changed).

    Returns:
        The frozen copy.
    """
    snap = copy.deepcopy(model)
    for mod in snap.modules():
        for name, p in list(mod._parameters.items()):
            if p is not None:
                del mod._parameters[name]
                mod.register_buffer(name, p.detach().requires_grad_(False))
    return snap
