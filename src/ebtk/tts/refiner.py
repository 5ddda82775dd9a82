"""EBM refiners: a 1-D U-Net over frames that turns a hypothesis mel Ŷ into a score field s(Y | Ŷ).

Inference is k first-order steps Y ← Y + η·s(Y), starting at Y = Ŷ (`refine`, on `ebtk.sampling.Descent`). Two variants:

* `ScoreRefiner` (a `ScoreModel`): the U-Net outputs the score directly (80 channels per frame).
* `EnergyRefiner` (an `EnergyModel`): a scalar energy per utterance,
  E(Y) = ½ Σ_t m_t ‖Y_t − g(Y, cond)_t‖² with g = Ŷ + std·U-Net(...), a per-frame "denoised" mel (the
  parameterisation of Salimans & Ho, "Should EBMs model the energy or the score?"). It is a masked *sum*
  of a per-frame output, so ∂E/∂Y_{c,t} does not shrink with the utterance length, and its score
  −∇E ≈ g − Y points at the mel the network believes in. Centring g on the hypothesis makes the untrained
  energy the kernel N(Ŷ, I) in raw log-mel units: energies of Y and of noise near Ŷ differ by O(‖Y − Ŷ‖²),
  not by the ½‖Y − mean‖² ≈ 10⁴ an uncentred g starts from, which saturates NCE-type logits (zero gradients).
  Its energies are what NCE / SA-NCE need.

Conditioning (``cond`` dict): "hyp" (B, 80, T) always; "text" (B, 80, T), the acoustic model's aligned
prior means μ_y (an upsampled text encoding), when built with `text_cond=True`; "mask" (B, 1, T) optional.
Both work on mels normalised by the acoustic model's global mean/std; scores come back in raw log-mel units.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ebtk.energy import EnergyModel, ScoreModel
from ebtk.errors import EbtkError
from ebtk.nets.unet1d import UNet1d
from ebtk.sampling.descent import Descent
from ebtk.tts.audio import N_MELS


class _RefinerBody(nn.Module):
    """The shared U-Net and input assembly. shape: x (B, 80, T), cond dict -> (B, 80, T) normalised."""

    def __init__(self, channels: int, mults: tuple[int, ...], text_cond: bool, mel_mean: float, mel_std: float):
        super().__init__()
        self.text_cond = bool(text_cond)
        self.register_buffer("mel_mean", torch.tensor(float(mel_mean)))
        self.register_buffer("mel_std", torch.tensor(float(mel_std)))
        in_ch = N_MELS * (3 if self.text_cond else 2)
        self.unet = UNet1d(in_ch, N_MELS, channels=channels, mults=tuple(mults))
        # Zero output layer: an untrained refiner leaves Ŷ unchanged (score 0; energy = the N(Ŷ, I) kernel).
        nn.init.zeros_(self.unet.out.weight)
        nn.init.zeros_(self.unet.out.bias)

    def inputs(self, x: torch.Tensor, cond: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(cond, dict) or "hyp" not in cond:
            raise EbtkError("a refiner needs cond={'hyp': (B, 80, T) hypothesis, ...}; got " + type(cond).__name__)
        hyp = cond["hyp"]
        if x.dim() != 3 or x.shape[1] != N_MELS or hyp.shape != x.shape:
            raise EbtkError(f"refiner wants x and cond['hyp'] of one shape (B, 80, T); got {tuple(x.shape)}, "
                            f"{tuple(hyp.shape)}")
        mask = cond.get("mask")
        if mask is None:
            mask = x.new_ones(x.shape[0], 1, x.shape[-1])
        parts = [(x - self.mel_mean) / self.mel_std, (hyp - self.mel_mean) / self.mel_std]
        if self.text_cond:
            if cond.get("text") is None:
                raise EbtkError("this refiner was built with model.text_cond=true but cond has no 'text'")
            parts.append((cond["text"] - self.mel_mean) / self.mel_std)
        return torch.cat(parts, 1) * mask, mask.to(x.dtype)


class _Refiner(nn.Module):
    """The refiners' shared constructor: both variants are a `_RefinerBody` read out differently."""

    def __init__(self, channels: int = 64, mults: tuple[int, ...] = (1, 2), text_cond: bool = False,
                 mel_mean: float = 0.0, mel_std: float = 1.0):
        super().__init__()
        self.body = _RefinerBody(channels, mults, text_cond, mel_mean, mel_std)

    @torch.no_grad()
    def set_mel_stats(self, mean: float, std: float) -> None:
        """Set the normalisation (a fresh run's data statistics); saved with the weights from then on."""
        self.body.mel_mean.fill_(float(mean))
        self.body.mel_std.fill_(float(std))


class ScoreRefiner(_Refiner, ScoreModel):
    """Direct score network: s(x | cond) = std · U-Net(...) on valid frames (0 on padding)."""

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        inp, mask = self.body.inputs(x, cond)
        return self.body.unet(inp, mask) * self.body.mel_std * mask


class EnergyRefiner(_Refiner, EnergyModel):
    """Scalar energy E = ½ Σ_t m_t ‖x_t − g_t‖² with g = Ŷ + std · U-Net(...). shape: -> (B,)."""

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        inp, mask = self.body.inputs(x, cond)
        g = cond["hyp"] + self.body.unet(inp, mask) * self.body.mel_std
        return 0.5 * ((x - g).pow(2) * mask).sum((1, 2))


def build_refiner(kind: str, **kw: Any) -> nn.Module:
    if kind == "score":
        return ScoreRefiner(**kw)
    if kind == "energy":
        return EnergyRefiner(**kw)
    raise EbtkError(f"model.kind must be score or energy, got {kind!r}")


def refine(model: nn.Module, hyp: torch.Tensor, steps: int, step_size: float, cond: dict | None = None,
           record: tuple[int, ...] = ()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """k first-order steps Y ← Y + η·s(Y | cond) from Y = Ŷ: `ebtk.sampling.Descent` with the refiner's cond.

    shape: hyp (B, 80, T) -> (refined (B, 80, T), {k: Y after k steps for k in `record`}). `cond` defaults
    to {"hyp": hyp}; its mask (if any) keeps padded frames fixed. Evaluating several step counts in one
    chain (`record`) costs max(steps) score evaluations instead of their sum.
    """
    if steps < 0:
        raise EbtkError(f"refine steps must be ≥ 0, got {steps}")
    cond = dict(cond or {})
    cond.setdefault("hyp", hyp)
    return Descent(steps, step_size, mask=cond.get("mask")).trajectory(model, hyp, cond, record)
