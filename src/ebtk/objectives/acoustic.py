"""Objective `acoustic`: the training loss of the FastSpeech-style acoustic model (ebtk.tts.acoustic).

loss = w_dur · duration MSE (log domain) + w_prior · MAS prior loss + w_mel · decoder L1/MSE.
Batches (from the `tts` task): x = reference mels (B, 80, T) padded; cond = {"phonemes" (B, N) long,
"ph_lengths" (B,), "mel_lengths" (B,)}; mask (B, 1, T).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch, LossOutput, Objective
from ebtk.registry import register


@dataclass
class AcousticLossConfig:
    """Options of `acoustic`: the weights of the acoustic model's loss terms.

    Attributes:
        w_dur: weight of the duration MSE (log domain).
        w_prior: weight of the monotonic-alignment prior loss.
        w_mel: weight of the decoder's mel loss (for `fm`: the CFM vector-field term).
    """
    w_dur: float = 1.0
    w_prior: float = 1.0
    w_mel: float = 1.0

    def validate(self) -> None:
        """Check the options (`ebtk.objective` and config parsing call this).

        Raises:
            EbtkError: a value out of range; the message names the key.
        """
        if min(self.w_dur, self.w_prior, self.w_mel) < 0:
            raise EbtkError("objective weights w_dur, w_prior, w_mel must be ≥ 0")


def check_tts_batch(batch: Batch, name: str) -> dict:
    """The conditioning dict of a tts batch (phonemes (B, N), ph_lengths (B,), mel_lengths (B,)).

    Raises:
        EbtkError: the batch is not a tts batch (objective `name` needs task tts).
    """
    cond = batch.cond
    if not isinstance(cond, dict) or not {"phonemes", "ph_lengths", "mel_lengths"} <= set(cond):
        raise EbtkError(f"objective {name!r} needs a tts batch with phonemes and lengths; use task tts")
    return cond


def check_acoustic_model(model: nn.Module, name: str, method: str = "losses") -> None:
    """Refuse a model without `method` (the acoustic model's `losses`, the FM decoder's `fm_loss`).

    Checked by the method, not by class, so objectives import nothing from ebtk.tts (no objectives ↔ tts
    cycle).

    Raises:
        EbtkError: the model lacks the method.
    """
    from ebtk.energy import unwrap

    if not callable(getattr(unwrap(model), method, None)):
        raise EbtkError(f"objective {name!r} trains an acoustic model, not {type(unwrap(model)).__name__}; "
                        "hint: use it with task tts")


@register("objective", "acoustic")
class AcousticObjective(Objective):
    """Weighted sum of the acoustic model's {dur, prior, mel} losses."""

    name = "acoustic"
    Config = AcousticLossConfig
    loss_key = "mel"

    def check_model(self, model: nn.Module) -> None:
        """Refuse a model that is not an acoustic model.

        Raises:
            EbtkError: the model has no ``losses`` method.
        """
        check_acoustic_model(model, self.name)

    def forward(self, model: nn.Module, batch: Batch) -> LossOutput:
        """The weighted loss of one tts batch.

        Args:
            model: the acoustic model.
            batch: x = reference mels (B, 80, T), cond = {phonemes, ph_lengths, mel_lengths}, mask (B, 1, T).

        Returns:
            `LossOutput` with each term as a metric.

        Raises:
            EbtkError: not a tts batch.
        """
        cond = check_tts_batch(batch, self.name)
        parts = model.losses(cond["phonemes"], cond["ph_lengths"], batch.x, cond["mel_lengths"])
        w = {"dur": self.cfg.w_dur, "prior": self.cfg.w_prior, self.loss_key: self.cfg.w_mel}
        loss = torch.stack([w[k] * v for k, v in parts.items()]).sum()
        return LossOutput(loss, {f"loss_{k}": v.detach() for k, v in parts.items()})
