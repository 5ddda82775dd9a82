"""Delta loss for refiners: teach the score to point from the hypothesis to its reference.

loss = masked mean ‖s_θ(Ŷ', cond) − (Y − Ŷ')/η‖², with Ŷ' = Ŷ + `hyp_noise`·ε and η = `step_size`, so one
first-order step Ŷ' + η·s(Ŷ') lands on Y (`ebtk.sampling.descent` with step size η). Perturbing the
hypothesis widens the region where the score is trained beyond the (too good) training hypotheses.

η is a property of the trained model, not only of the loss: refining with another η over- or undershoots.
`trained_step_size` reads it back from an objective config section, so the tts task's refinement (its
`refine.step_size: null` default) and the inference bundle use the η the refiner was trained for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ebtk.energy import score_of
from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch, LossOutput, Objective, masked_mean
from ebtk.registry import register


@dataclass
class DeltaConfig:
    """Options of `delta`.

    Attributes:
        hyp_noise: std of the Gaussian perturbation of the hypothesis before the loss (0: none); widens
            the region where the score is trained beyond the (too good) training hypotheses.
        step_size: η, the refinement step the target is scaled for: the loss regresses s(Ŷ) onto (Y − Ŷ)/η,
            so refine with the same η (the tts task and bundles read it back).
    """
    hyp_noise: float = 0.0  # std of the Gaussian perturbation of the hypothesis
    step_size: float = 1.0  # η: the refinement step the target is scaled for

    def validate(self) -> None:
        """Check the options (`ebtk.objective` and config parsing call this).

        Raises:
            EbtkError: a value out of range; the message names the key.
        """
        if self.hyp_noise < 0:
            raise EbtkError(f"objective.hyp_noise must be ≥ 0, got {self.hyp_noise}")
        if self.step_size <= 0:
            raise EbtkError(f"objective.step_size must be > 0, got {self.step_size}")


@register("objective", "delta")
class Delta(Objective):
    """The delta loss for refiners: masked mean ‖s_θ(Ŷ', cond) − (Y − Ŷ')/η‖², Ŷ' = Ŷ + hyp_noise·ε.

    Call it as ``loss_fn(model, reference, hyp=hypothesis)`` with both (B, *shape), aligned; then one step
    ``ebtk.descend(model, hypothesis, steps=1, step_size=η)`` moves the hypothesis to the reference.
    """
    name: ClassVar[str] = "delta"
    Config: ClassVar[type] = DeltaConfig
    needs_energy: ClassVar[bool] = False

    def forward(self, model: nn.Module, batch: Batch) -> LossOutput:
        """The delta loss of one batch.

        Args:
            model: an energy or score model; the conditioning is ``batch.cond`` (refiners: the hypothesis).
            batch: x = the reference Y and hyp = the hypothesis Ŷ, both (B, *shape); mask optional.

        Returns:
            `LossOutput` (no negatives).

        Raises:
            EbtkError: the batch has no hypothesis.
        """
        if batch.hyp is None:
            raise EbtkError("the delta loss needs batches with a hypothesis aligned to the reference "
                            "(a refiner task such as tts); hint: use ssm or dsm for unconditional data")
        hyp = batch.hyp
        if self.cfg.hyp_noise > 0:
            eps = torch.randn_like(hyp)
            hyp = hyp + self.cfg.hyp_noise * (eps * batch.mask if batch.mask is not None else eps)
        target = (batch.x - hyp) / self.cfg.step_size
        s = score_of(model, hyp, batch.cond, create_graph=True)
        loss = masked_mean((s - target).pow(2), batch.mask)
        return LossOutput(loss, {"target_rms": masked_mean(target.detach().pow(2), batch.mask).sqrt()}, None)


def trained_step_size(section: dict[str, Any]) -> float | None:
    """The η of the delta loss in an objective config section.

    The section is ``delta`` alone or a sum with a ``delta`` part (``ssm+delta``).

    Returns:
        The step size, or None when the objective has no delta part.
    """
    name = str(section.get("name", ""))
    if name == "delta":
        sub = section
    elif "delta" in (p.strip() for p in name.split("+")):
        sub = section.get("delta") or {}
    else:
        return None
    return float(sub.get("step_size", DeltaConfig.step_size))
