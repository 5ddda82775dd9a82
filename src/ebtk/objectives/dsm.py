"""Denoising score matching (Vincent 2011) at one or several noise levels.

Each sample draws σ uniformly from `sigmas`; loss = ½σ²‖s(x + σε) + ε/σ‖², whose minimiser is the score
of the data smoothed by N(0, σ²I) (for Gaussian data N(μ, Σ): −(Σ + σ²I)⁻¹(x − μ)). The σ² weight makes
the levels contribute comparably. Normalised like SSM: per sample, or per valid element for sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ebtk.energy import score_of
from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch, LossOutput, Objective
from ebtk.objectives.ssm import normaliser
from ebtk.registry import register


@dataclass
class DSMConfig:
    """Options of `dsm`.

    Attributes:
        sigmas: the noise levels σ; each sample draws one uniformly. Loss ½σ²‖s(x + σε) + ε/σ‖².
    """
    sigmas: list[float] = field(default_factory=lambda: [0.1])

    def validate(self) -> None:
        """Check the options (`ebtk.objective` and config parsing call this).

        Raises:
            EbtkError: a value out of range; the message names the key.
        """
        if not self.sigmas or any(s <= 0 for s in self.sigmas):
            raise EbtkError(f"objective.sigmas must be a non-empty list of noise levels > 0, got {self.sigmas}")


@register("objective", "dsm")
class DSM(Objective):
    """Denoising score matching: the minimiser is the score of the data smoothed by N(0, σ²I).

    Works for energy and score models; normalised per sample, or per valid element for sequences.
    """
    name: ClassVar[str] = "dsm"
    Config: ClassVar[type] = DSMConfig
    needs_energy: ClassVar[bool] = False

    def forward(self, model: nn.Module, batch: Batch) -> LossOutput:
        """The DSM loss of one batch (x: (B, *shape)).

        Args:
            model: an energy or score model.
            batch: the `Batch`.

        Returns:
            `LossOutput` with the loss, its terms as metrics, and the samples it used as negatives (or None).
        """
        x, mask = batch.x, batch.mask
        levels = torch.tensor(self.cfg.sigmas, device=x.device, dtype=x.dtype)
        sigma = levels[torch.randint(0, len(levels), (len(x),), device=x.device)]
        sigma = sigma.view(-1, *([1] * (x.dim() - 1)))  # (B, 1, ...)
        eps = torch.randn_like(x)
        if mask is not None:
            eps = eps * mask
        s = score_of(model, x + sigma * eps, batch.cond, create_graph=True)
        r = s + eps / sigma
        if mask is not None:
            r = r * mask
        per_sample = 0.5 * (sigma.flatten() ** 2) * r.pow(2).flatten(1).sum(1)
        loss = per_sample.sum() / normaliser(batch, x, mask)
        return LossOutput(loss, {}, None)
