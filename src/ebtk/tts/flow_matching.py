"""Conditional flow-matching decoder baseline (Matcha-TTS-style OT-CFM) for the quality-vs-steps table.

It shares the acoustic model's encoder, MAS prior loss and duration predictor (trained jointly, from
scratch, on the same data and with the same encoder size as the acoustic model: the simplest fair
baseline), and replaces the regression decoder by a U-Net vector field v(x_t, μ_y, t):

    x_t = (1 − (1 − σ_min) t) x0 + t x1,   x0 ~ N(0, I), x1 = normalised mel,
    target u = x1 − (1 − σ_min) x0,        loss = masked MSE(v, u).

Sampling integrates dx/dt = v from Gaussian noise (times `temperature`) with n Euler steps.
"""

from __future__ import annotations

import torch

from ebtk.errors import EbtkError
from ebtk.nets.unet1d import UNet1d
from ebtk.tts.acoustic import AcousticConfig, AcousticModel
from ebtk.tts.audio import N_MELS


class FlowMatchingTTS(AcousticModel):
    """Acoustic encoder + OT-CFM U-Net decoder. `decode(..., n_steps, temperature)` samples."""

    def __init__(self, n_symbols: int, cfg: AcousticConfig | None = None, mel_mean: float = 0.0,
                 mel_std: float = 1.0, unet_channels: int = 64, mults: tuple[int, ...] = (1, 2),
                 sigma_min: float = 1e-4, n_steps: int = 10, temperature: float = 0.667):
        self._unet_channels = int(unet_channels)
        self._mults = tuple(mults)
        super().__init__(n_symbols, cfg, mel_mean, mel_std)
        self.sigma_min = float(sigma_min)
        self.n_steps = int(n_steps)
        self.temperature = float(temperature)

    def _build_decoder(self) -> UNet1d:
        return UNet1d(2 * N_MELS, N_MELS, channels=self._unet_channels, mults=self._mults, time_dim=64)

    def vector_field(self, x: torch.Tensor, mu_y: torch.Tensor, mask: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v(x_t | μ_y, t). shape: x, μ_y (B, 80, T) normalised, mask (B, 1, T), t (B,) -> (B, 80, T)."""
        return self.decoder(torch.cat([x, mu_y], 1) * mask, mask, t) * mask

    def decoder_loss(self, h_y, mu_y, y_n, mel_mask) -> dict[str, torch.Tensor]:  # noqa: ANN001
        b = y_n.shape[0]
        t = torch.rand(b, device=y_n.device)
        x0 = torch.randn_like(y_n)
        tt = t[:, None, None]
        xt = (1 - (1 - self.sigma_min) * tt) * x0 + tt * y_n
        u = y_n - (1 - self.sigma_min) * x0
        v = self.vector_field(xt * mel_mask, mu_y, mel_mask, t)
        err = ((v - u) * mel_mask).pow(2).sum() / (mel_mask.sum() * N_MELS)
        return {"fm": err}

    @torch.no_grad()
    def decode(self, h_y: torch.Tensor, mu_y: torch.Tensor, mask: torch.Tensor, n_steps: int | None = None,
               temperature: float | None = None) -> torch.Tensor:
        """Euler integration of the flow from t=0 (noise) to t=1. -> normalised mel (B, 80, T)."""
        n = self.n_steps if n_steps is None else int(n_steps)
        if n < 1:
            raise EbtkError(f"flow matching needs ≥ 1 Euler step, got {n}")
        temp = self.temperature if temperature is None else float(temperature)
        x = torch.randn_like(mu_y) * temp * mask
        dt = 1.0 / n
        for k in range(n):
            t = torch.full((x.shape[0],), k * dt, device=x.device)
            x = x + dt * self.vector_field(x, mu_y, mask, t)
        return x * mask
