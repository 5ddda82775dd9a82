"""1-D U-Net over frames (Matcha-TTS decoder-like): the estimator behind TTS refiners and the CFM decoder.

Residual blocks of GroupNorm → SiLU → Conv1d (smooth activations, so an energy built on it has a
well-behaved score and second derivatives), stride-2 down-sampling, nearest up-sampling with skip
connections, and an optional sinusoidal time embedding added inside each block. Padded frames are
masked after every convolution, so the output on valid frames does not depend on padding: a batch of
different lengths gives the same result as each item alone (up to the GroupNorm statistics, which are
taken over valid frames only).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ebtk.errors import EbtkError


def _groups(ch: int) -> int:
    for g in (8, 4, 2, 1):
        if ch % g == 0:
            return g
    return 1


class MaskedGroupNorm(nn.Module):
    """GroupNorm whose statistics use valid frames only. shape: x (B, C, T), mask (B, 1, T)."""

    def __init__(self, ch: int, eps: float = 1e-5):
        super().__init__()
        self.g = _groups(ch)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ch))
        self.bias = nn.Parameter(torch.zeros(ch))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        xg = x.view(b, self.g, c // self.g, t)
        m = mask.view(b, 1, 1, t)
        n = (m.sum((2, 3), keepdim=True) * (c // self.g)).clamp_min(1)
        mean = (xg * m).sum((2, 3), keepdim=True) / n
        var = ((xg - mean).pow(2) * m).sum((2, 3), keepdim=True) / n
        xg = (xg - mean) / torch.sqrt(var + self.eps)
        return xg.view(b, c, t) * self.weight[None, :, None] + self.bias[None, :, None]


class ResBlock1d(nn.Module):
    """x + conv(SiLU(norm(conv(SiLU(norm(x))) + time)))), masked. shape: (B, C_in, T) -> (B, C_out, T)."""

    def __init__(self, c_in: int, c_out: int, t_dim: int = 0, kernel: int = 3):
        super().__init__()
        self.n1 = MaskedGroupNorm(c_in)
        self.c1 = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
        self.n2 = MaskedGroupNorm(c_out)
        self.c2 = nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2)
        self.t = nn.Linear(t_dim, c_out) if t_dim else None
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x, mask)) * mask)
        if self.t is not None and temb is not None:
            h = h + self.t(temb)[:, :, None]
        h = self.c2(F.silu(self.n2(h * mask, mask)) * mask)
        return (self.skip(x) + h) * mask


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t ∈ [0, 1] (scaled by 1000 as in DDPM/Matcha). shape: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], 1)


class UNet1d(nn.Module):
    """shape: x (B, in_ch, T), mask (B, 1, T) or None, t (B,) or None -> (B, out_ch, T).

    `mults` gives the channel multiplier of each level; T is padded internally to a multiple of
    2^(levels−1) and cropped back. `time_dim` > 0 enables the time embedding (flow matching).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        channels: int = 64,
        mults: tuple[int, ...] = (1, 2),
        blocks: int = 1,
        time_dim: int = 0,
    ):
        super().__init__()
        if in_ch < 1 or out_ch < 1 or channels < 1 or not mults:
            raise EbtkError(f"UNet1d needs positive in_ch/out_ch/channels and ≥1 level, got {in_ch}, {out_ch}")
        self.time_dim = int(time_dim)
        self.levels = len(mults)
        self.temb = (
            nn.Sequential(nn.Linear(time_dim, 4 * time_dim), nn.SiLU(), nn.Linear(4 * time_dim, time_dim))
            if time_dim
            else None
        )
        self.inp = nn.Conv1d(in_ch, channels, 3, padding=1)
        chs = [channels * m for m in mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = channels
        for i, ch in enumerate(chs):
            self.down.append(nn.ModuleList([ResBlock1d(c if k == 0 else ch, ch, time_dim) for k in range(blocks)]))
            c = ch
            if i < self.levels - 1:
                self.downsample.append(nn.Conv1d(ch, ch, 3, stride=2, padding=1))
        self.mid = ResBlock1d(c, c, time_dim)
        self.up = nn.ModuleList()
        for i in reversed(range(self.levels)):
            ch = chs[i]
            self.up.append(nn.ModuleList([ResBlock1d(c + ch if k == 0 else ch, ch, time_dim) for k in range(blocks)]))
            c = ch
        self.out_norm = MaskedGroupNorm(c)
        self.out = nn.Conv1d(c, out_ch, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, t: torch.Tensor | None = None) -> torch.Tensor:
        b, _, length = x.shape
        if mask is None:
            mask = x.new_ones(b, 1, length)
        mask = mask.to(x.dtype)
        mult = 2 ** (self.levels - 1)
        pad = (-length) % mult
        if pad:
            x = F.pad(x, (0, pad))
            mask = F.pad(mask, (0, pad))
        temb = None
        if self.temb is not None:
            if t is None:
                raise EbtkError("this UNet1d has a time embedding (time_dim > 0) but was called without t")
            temb = self.temb(timestep_embedding(t.reshape(-1).expand(b) if t.numel() == 1 else t, self.time_dim))
        h = self.inp(x) * mask
        skips, masks = [], []
        m = mask
        for i, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, m, temb)
            skips.append(h)
            masks.append(m)
            if i < self.levels - 1:
                m = m[:, :, ::2]
                h = self.downsample[i](h) * m
        h = self.mid(h, m, temb)
        for blocks in self.up:
            skip, m = skips.pop(), masks.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = F.interpolate(h, size=skip.shape[-1], mode="nearest")
            h = torch.cat([h, skip], 1)
            for blk in blocks:
                h = blk(h, m, temb)
        out = self.out(F.silu(self.out_norm(h, m)) * m) * m
        return out[:, :, :length] if pad else out
