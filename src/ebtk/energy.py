"""The model contract, stated once.

* `EnergyModel`: ``forward(x, cond) -> E`` with x of shape (B, *shape) and E of shape (B,);
  p_θ(x) ∝ exp(−E_θ(x)). Its score comes from autograd.
* `ScoreModel`: ``forward(x, cond) -> s`` with s shaped like x; s ≈ ∇ₓ log p(x). No scalar energy, so
  objectives that need energies (NCE, SA-NCE, CD, FCE) refuse it.

Both are called through ``model(x, cond)`` (never ``model.energy``), so a DDP wrapper sees every forward.
"""

from __future__ import annotations

import torch
from torch import nn

from ebtk.errors import EbtkError


class EnergyModel(nn.Module):
    """Scalar energy network. Subclasses implement ``forward(x, cond=None) -> (B,)``."""

    kind = "energy"


class ScoreModel(nn.Module):
    """Direct score network. Subclasses implement ``forward(x, cond=None) -> like x``."""

    kind = "score"


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module under DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def is_energy(model: nn.Module) -> bool:
    return getattr(unwrap(model), "kind", "energy") == "energy"


def require_energy(model: nn.Module, objective: str) -> None:
    """Objectives that need E_θ(x) call this; a score network gets a clear error."""
    if not is_energy(model):
        raise EbtkError(
            f"objective {objective!r} needs a scalar energy model, but the model is a score network "
            f"({type(unwrap(model)).__name__}); use an energy variant or a score objective (ssm, dsm, delta)"
        )


def energy_and_score(
    model: nn.Module, x: torch.Tensor, cond=None, create_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """E_θ(x) (B,) and s_θ(x) = −∇ₓE_θ(x) (like x) from one forward pass."""
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        e = model(x, cond)
        (g,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
    return e, -g


def score_of(model: nn.Module, x: torch.Tensor, cond=None, create_graph: bool = False) -> torch.Tensor:
    """s_θ(x) for either model kind. `create_graph=True` when a loss differentiates through the score."""
    if not is_energy(model):
        return model(x, cond)
    return energy_and_score(model, x, cond, create_graph)[1]
