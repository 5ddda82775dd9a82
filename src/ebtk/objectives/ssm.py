"""Sliced score matching (Song et al. 2019): E_v[vᵀ∇ₓ(vᵀs) + ½(vᵀs)²], for energy and score models.

`variance_reduced` replaces ½(vᵀs)² by its expectation ½‖s‖² (exact for E[vvᵀ] = I). With v Rademacher
or Gaussian, E_v[vᵀ∇ₓ(vᵀs)] = tr ∇ₓs, so the objective is an unbiased estimate of the Fisher-divergence
objective J = E_p[½‖s‖² + tr ∇ₓs]. All projections share one forward/backward: x is tiled n times.

Where the loss is taken (`at`), for refiner batches (a hypothesis Ŷ aligned with the reference Y):
* ``data``: at the reference Y (the score of p(Y | Ŷ) near Y). Refinement then starts where training never
  looked: at Y = Ŷ.
* ``hypothesis``: at Ŷ itself, where the first refinement step queries the net (the energy-based TTS paper's
  authors' code evaluates SSM there).
* ``path``: at x = Y + t(Ŷ − Y) + σε with t ~ U[0, 1] per sample and σ = `path_noise`: the score field along
  the segment that refinement walks, widened by noise.

Normalisation: unconditional batches give J per sample (sum over dimensions, mean over the batch).
Sequence batches (a mask or a hypothesis, i.e. refiners) are divided by the number of valid elements,
like the delta loss, so that `ssm+delta` weights are comparable; projections are masked to valid frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ebtk.energy import score_of
from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch, LossOutput, Objective
from ebtk.objectives.nce import tile_cond
from ebtk.registry import register


def per_element(batch: Batch) -> bool:
    """Whether a score loss is normalised per valid element (sequence / refiner batches)."""
    return batch.mask is not None or batch.hyp is not None


def normaliser(batch: Batch, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | float:
    """Divisor turning a sum over a (tiled) batch into the objective's mean (see module docs)."""
    if not per_element(batch):
        return float(x.shape[0])
    if mask is None:
        return float(x.numel())
    return mask.expand_as(x).sum().clamp_min(1)


@dataclass
class SSMConfig:
    """Options of `ssm`.

    Attributes:
        n_projections: random projections v per sample (all share one forward/backward pass).
        projection: distribution of v: ``rademacher`` or ``gaussian``.
        variance_reduced: use ½‖s‖² instead of ½(vᵀs)² (exact for E[vvᵀ] = I).
        at: refiner batches only: where the loss is taken: ``data`` (the reference Y), ``hypothesis`` (Ŷ)
            or ``path`` (Y + t(Ŷ − Y) + σε, t ~ U[0, 1]).
        path_noise: ``at=path``: σ of the Gaussian noise added to the points on the segment.
    """
    n_projections: int = 1
    projection: str = "rademacher"  # rademacher | gaussian
    variance_reduced: bool = False  # ½‖s‖² instead of ½(vᵀs)²
    at: str = "data"  # data | hypothesis | path: where the loss is taken on refiner batches (module docs)
    path_noise: float = 0.0  # at=path: σ of the Gaussian noise added to the points on the segment

    def validate(self) -> None:
        """Check the options (`ebtk.objective` and config parsing call this).

        Raises:
            EbtkError: a value out of range; the message names the key.
        """
        if self.at not in ("data", "hypothesis", "path"):
            raise EbtkError(f"objective.at must be data, hypothesis or path, got {self.at!r}")
        if self.path_noise < 0:
            raise EbtkError(f"objective.path_noise must be ≥ 0, got {self.path_noise}")
        if self.n_projections < 1:
            raise EbtkError(f"objective.n_projections must be ≥ 1, got {self.n_projections}")
        if self.projection not in ("rademacher", "gaussian"):
            raise EbtkError(f"objective.projection must be rademacher or gaussian, got {self.projection!r}")


@register("objective", "ssm")
class SSM(Objective):
    """Sliced score matching E_v[vᵀ∇ₓ(vᵀs) + ½(vᵀs)²], an unbiased estimate of the Fisher-divergence objective.

    Works for energy and score models; see `SSMConfig` for where refiner batches take the loss.
    """
    name: ClassVar[str] = "ssm"
    Config: ClassVar[type] = SSMConfig
    needs_energy: ClassVar[bool] = False

    def points(self, batch: Batch) -> torch.Tensor:
        """Where the loss is taken (`at`): Y, Ŷ, or Y + t(Ŷ − Y) + σε, (B, *shape)."""
        if self.cfg.at == "data":
            return batch.x
        if batch.hyp is None:
            raise EbtkError(f"objective.at={self.cfg.at} needs refiner batches with a hypothesis; "
                            "hint: at=data for unconditional data")
        if self.cfg.at == "hypothesis":
            return batch.hyp
        t = torch.rand((len(batch),) + (1,) * (batch.x.dim() - 1), device=batch.x.device, dtype=batch.x.dtype)
        x = batch.x + t * (batch.hyp - batch.x)
        return x + self.cfg.path_noise * torch.randn_like(x) if self.cfg.path_noise > 0 else x

    def forward(self, model: nn.Module, batch: Batch) -> LossOutput:
        """The sliced score-matching loss of one batch (x: (B, *shape)).

        Args:
            model: an energy or score model.
            batch: the `Batch`.

        Returns:
            `LossOutput` with the loss, its terms as metrics, and the samples it used as negatives (or None).
        """
        k = self.cfg.n_projections
        x = tile_cond(self.points(batch), k).detach().requires_grad_(True)  # (k·B, *shape)
        mask = tile_cond(batch.mask, k)
        if self.cfg.projection == "rademacher":
            v = torch.randint(0, 2, x.shape, device=x.device).to(x.dtype) * 2 - 1
        else:
            v = torch.randn_like(x)
        if mask is not None:
            v = v * mask
        with torch.enable_grad():
            s = score_of(model, x, tile_cond(batch.cond, k), create_graph=True)
            vs = (v * s).flatten(1).sum(1)  # (k·B,)
            (jv,) = torch.autograd.grad(vs.sum(), x, create_graph=True)  # ∇ₓ(vᵀs)
        trace = (v * jv).flatten(1).sum(1)  # vᵀ∇ₓ(vᵀs) ≈ tr ∇ₓs
        if self.cfg.variance_reduced:
            sq = s * mask if mask is not None else s
            norm = 0.5 * sq.pow(2).flatten(1).sum(1)
        else:
            norm = 0.5 * vs.pow(2)
        denom = normaliser(batch, x, mask)
        loss = (trace + norm).sum() / denom
        metrics = {"trace": trace.detach().sum() / denom, "score_norm": norm.detach().sum() / denom}
        return LossOutput(loss, metrics, None)
