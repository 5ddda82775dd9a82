"""Objective `fm`: the conditional flow-matching (OT-CFM) baseline's loss (ebtk.tts.flow_matching).

loss = w_dur · duration MSE + w_prior · MAS prior loss + w_fm · CFM vector-field MSE, on the same batches
as `acoustic`. `sigma_min` is the OT path's end width; `n_steps` / `temperature` are the sampler defaults.
With acoustic.checkpoint + acoustic.freeze=true the encoder is the acoustic run's, fixed, and the loss is
w_fm · the CFM term on decoder crops (`TTSTask.decoder_only`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ebtk.energy import unwrap
from ebtk.errors import EbtkError
from ebtk.objectives.acoustic import AcousticLossConfig, AcousticObjective
from ebtk.objectives.base import Batch, LossOutput
from ebtk.registry import register


@dataclass
class FMLossConfig(AcousticLossConfig):
    """Options of `fm`: `acoustic`'s weights (w_mel weighs the CFM term) plus the OT path's end width.

    Attributes:
        sigma_min: σ_min, the width of the OT path at its data end, in [0, 1).
    """

    sigma_min: float = 1e-4

    def validate(self) -> None:
        """Check the options (`ebtk.objective` and config parsing call this).

        Raises:
            EbtkError: a value out of range; the message names the key.
        """
        super().validate()
        if not 0 <= self.sigma_min < 1:
            raise EbtkError("objective fm: sigma_min must be in [0, 1)")


@register("objective", "fm")
class FMObjective(AcousticObjective):
    """The conditional flow-matching (OT-CFM) baseline's loss, on the same batches as `acoustic`."""
    name = "fm"
    Config = FMLossConfig
    loss_key = "fm"

    def check_model(self, model: nn.Module) -> None:
        """Refuse a model that is not a flow-matching decoder.

        Raises:
            EbtkError: the model has no ``vector_field``.
        """
        # by its vector field, not by class: objectives import nothing from ebtk.tts
        if not callable(getattr(unwrap(model), "vector_field", None)):
            raise EbtkError(f"objective 'fm' trains a flow-matching decoder, not {type(unwrap(model)).__name__}")

    def setup(self, model: nn.Module) -> None:
        """Hand the configured σ_min to the model."""
        unwrap(model).sigma_min = float(self.cfg.sigma_min)

    def forward(self, model: nn.Module, batch: Batch) -> LossOutput:
        """The FM loss of one batch.

        Whole utterances (phonemes in cond): the joint loss. Decoder crops (cond["text"] = μ_y, the frozen
        encoder's aligned prior means, from the `tts` task with acoustic.freeze=true): the CFM term alone.

        Returns:
            `LossOutput` with each term as a metric.
        """
        cond = batch.cond
        if not (isinstance(cond, dict) and "text" in cond and "phonemes" not in cond):
            return super().forward(model, batch)
        m, mask = unwrap(model), batch.mask  # crops always carry their mask
        parts = m.decoder_loss(None, m.norm(cond["text"]) * mask, m.norm(batch.x) * mask, mask)
        loss = self.cfg.w_mel * parts[self.loss_key]
        return LossOutput(loss, {f"loss_{k}": v.detach() for k, v in parts.items()})
