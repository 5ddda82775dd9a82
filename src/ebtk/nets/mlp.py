"""MLP energy and score networks for low-dimensional data (toy2d).

SiLU (Swish) activations keep E_θ smooth, so its score −∇ₓE and the second derivatives that score
matching differentiates through are well behaved (ReLU would give a piecewise-constant score).
"""

from __future__ import annotations

import torch
from torch import nn

from ebtk.energy import EnergyModel, ScoreModel
from ebtk.errors import EbtkError


def _trunk(in_dim: int, hidden: int, depth: int) -> nn.Sequential:
    """`depth` hidden layers of width `hidden`, each Linear + SiLU: (B, in_dim) -> (B, hidden)."""
    if in_dim <= 0 or hidden <= 0 or depth <= 0:
        raise EbtkError(f"MLP needs in_dim, hidden and depth > 0, got {in_dim}, {hidden}, {depth}")
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    return nn.Sequential(*layers)


def _with_cond(x: torch.Tensor, cond: torch.Tensor | None, cond_dim: int) -> torch.Tensor:
    """Flatten x (B, *shape) to (B, D) and append cond (B, cond_dim) when the net is conditional."""
    h = x.flatten(1)
    if cond_dim:
        if cond is None:
            raise EbtkError(f"this MLP was built with cond_dim={cond_dim} but was called without cond")
        h = torch.cat([h, cond.flatten(1).to(h.dtype)], dim=1)
    return h


class MLPEnergy(EnergyModel):
    """E_θ(x): (B, in_dim) -> (B,). `cond_dim` > 0 concatenates a (B, cond_dim) condition to the input."""

    def __init__(self, in_dim: int, hidden: int = 128, depth: int = 3, cond_dim: int = 0):
        super().__init__()
        self.cond_dim = int(cond_dim)
        self.trunk = _trunk(in_dim + self.cond_dim, hidden, depth)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.trunk(_with_cond(x, cond, self.cond_dim))).squeeze(-1)


class MLPScore(ScoreModel):
    """s_θ(x): (B, *shape) -> like x, with *shape flattening to in_dim. Same trunk as `MLPEnergy`."""

    def __init__(self, in_dim: int, hidden: int = 128, depth: int = 3, cond_dim: int = 0):
        super().__init__()
        self.cond_dim = int(cond_dim)
        self.trunk = _trunk(in_dim + self.cond_dim, hidden, depth)
        self.head = nn.Linear(hidden, in_dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.trunk(_with_cond(x, cond, self.cond_dim))).view_as(x)
