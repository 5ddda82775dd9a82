"""Small conv energy and score networks for 8×8 single-channel images (the `digits` task).

SiLU keeps E_θ smooth, so the Langevin score −∇ₓE and the second derivatives of score matching are
well behaved. No normalisation layers: batch statistics would couple the samples of a Langevin chain
(and differ between data and negatives), which EBM training cannot tolerate.
"""

from __future__ import annotations

import torch
from torch import nn

from ebtk.energy import EnergyModel, ScoreModel
from ebtk.errors import EbtkError


def _check(x: torch.Tensor, cond: object, in_ch: int) -> None:
    if x.ndim != 4 or x.shape[1] != in_ch:
        raise EbtkError(f"conv nets take images (B, {in_ch}, H, W), got {tuple(x.shape)}")
    if cond is not None:
        raise EbtkError("the conv nets are unconditional; call them with cond=None")


class ConvEnergy(EnergyModel):
    """E_θ(x): (B, C, 8, 8) → (B,). Three 3×3 convs (8×8 → 4×4 → 2×2), SiLU, then a linear head."""

    def __init__(self, channels: int = 64, in_ch: int = 1, size: int = 8):
        super().__init__()
        if channels < 2 or size % 4:
            raise EbtkError(f"ConvEnergy needs channels ≥ 2 and size divisible by 4, got {channels}, {size}")
        c = int(channels)
        self.in_ch = in_ch
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, c // 2, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.SiLU(),
            nn.Flatten(), nn.Linear(c * (size // 4) ** 2, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, cond: object = None) -> torch.Tensor:
        _check(x, cond, self.in_ch)
        return self.net(x).squeeze(-1)


class ConvScore(ScoreModel):
    """s_θ(x): (B, C, 8, 8) → like x. A two-level U-Net: 8×8 → 4×4 → 8×8 with a skip connection."""

    def __init__(self, channels: int = 64, in_ch: int = 1, size: int = 8):
        super().__init__()
        if channels < 2 or size % 2:
            raise EbtkError(f"ConvScore needs channels ≥ 2 and an even size, got {channels}, {size}")
        c = int(channels)
        self.in_ch = in_ch
        self.inp = nn.Sequential(nn.Conv2d(in_ch, c // 2, 3, padding=1), nn.SiLU())
        self.down = nn.Sequential(
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.SiLU(),
        )  # fmt: skip
        self.out = nn.Sequential(nn.Conv2d(c, c // 2, 3, padding=1), nn.SiLU(), nn.Conv2d(c // 2, in_ch, 3, padding=1))

    def forward(self, x: torch.Tensor, cond: object = None) -> torch.Tensor:
        _check(x, cond, self.in_ch)
        h = self.inp(x)
        return self.out(torch.cat([h, self.down(h)], 1))
