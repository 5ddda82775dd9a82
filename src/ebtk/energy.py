"""The model contract, stated once.

* `EnergyModel`: ``forward(x, cond) -> E`` with x of shape (B, *shape) and E of shape (B,);
  p_θ(x) ∝ exp(−E_θ(x)). Its score comes from autograd.
* `ScoreModel`: ``forward(x, cond) -> s`` with s shaped like x; s ≈ ∇ₓ log p(x). No scalar energy, so
  objectives that need energies (NCE, SA-NCE, CD, FCE) refuse it.

Both are called through ``model(x, cond)`` (never ``model.energy``), so a DDP wrapper sees every forward.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from ebtk.errors import EbtkError


class _Wrapper(nn.Module):
    """Shared by both kinds: subclass and implement ``forward(x, cond=None)``, or wrap any module.

    ``EnergyModel(net)`` / ``ScoreModel(net)`` call ``net(x, cond)`` when net's forward takes a second
    argument, else ``net(x)`` (so a plain ``nn.Sequential`` works); conditioning handed to a net that
    cannot take it is an error rather than silently dropped.
    """

    kind = ""

    def __init__(self, net: nn.Module | None = None):
        super().__init__()
        if net is not None:
            if not isinstance(net, nn.Module):
                raise EbtkError(f"{type(self).__name__}(net): net must be a torch.nn.Module, got {type(net).__name__}")
            self.net = net
            self._takes_cond = _takes_two_args(net)

    def _call_net(self, x: torch.Tensor, cond: Any) -> torch.Tensor:
        net = self.__dict__.get("_modules", {}).get("net")
        if net is None:
            raise NotImplementedError(f"{type(self).__name__}: implement forward(x, cond) or pass a net")
        if self._takes_cond:
            return net(x, cond)
        if cond is not None:
            raise EbtkError(f"{type(net).__name__}.forward takes only x, but conditioning was given; "
                            "hint: give the net a forward(x, cond) to use it")
        return net(x)


class EnergyModel(_Wrapper):
    """Scalar energy: ``forward(x, cond=None) -> (B,)`` for x (B, *shape); p(x) ∝ exp(−E(x)).

    ``EnergyModel(net)`` wraps any module returning (B,) or (B, 1) energies; or subclass it and define
    ``forward(x, cond=None)``. Its score −∇ₓE comes from autograd (`score_of`). Call it as ``model(x, cond)``.

    Args:
        net: the network. Its ``forward(x, cond)`` gets the conditioning when it takes a second positional
            argument, else ``forward(x)`` is called and passing ``cond`` is an error.

    Raises:
        EbtkError: `net` is not an ``nn.Module``.
    """

    kind = "energy"

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """The energies of a batch.

        Args:
            x: (B, *shape) points.
            cond: conditioning handed to the net (any structure the net takes), or None.

        Returns:
            (B,) energies E(x | cond); a net's (B, 1) output is squeezed.

        Raises:
            EbtkError: the net returned another shape, or `cond` was given to a net that takes only x.
        """
        e = self._call_net(x, cond)
        if e.dim() == 2 and e.shape[1] == 1:
            e = e.squeeze(1)
        if e.shape != (x.shape[0],):
            raise EbtkError(f"EnergyModel: the net returned shape {tuple(e.shape)} for a batch of {x.shape[0]}; "
                            "an energy is one number per sample, (B,) or (B, 1); hint: use ebtk.ScoreModel for "
                            "a net that returns a score shaped like x")
        return e


class ScoreModel(_Wrapper):
    """Direct score: ``forward(x, cond=None) -> like x``; s ≈ ∇ₓ log p(x).

    ``ScoreModel(net)`` wraps a net that returns a score shaped like its input, or subclass it and define
    ``forward``. It has no scalar energy, so objectives that need one (nce, sa-nce, fce, cd, pcd) refuse it;
    ssm, dsm and delta accept it.

    Args:
        net: the network; gets ``(x, cond)`` when its forward takes a second positional argument.

    Raises:
        EbtkError: `net` is not an ``nn.Module``.
    """

    kind = "score"

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """The score of a batch.

        Args:
            x: (B, *shape) points.
            cond: conditioning handed to the net, or None.

        Returns:
            s(x | cond), shaped like x.

        Raises:
            EbtkError: the net returned another shape, or `cond` was given to a net that takes only x.
        """
        s = self._call_net(x, cond)
        if s.shape != x.shape:
            raise EbtkError(f"ScoreModel: the net returned shape {tuple(s.shape)} for input {tuple(x.shape)}; "
                            "a score is shaped like x")
        return s


def _takes_two_args(net: nn.Module) -> bool:
    """Whether net.forward accepts (x, cond): a second positional parameter or *args."""
    try:
        params = list(inspect.signature(net.forward).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module under DDP / torch.compile wrappers."""
    while True:
        if is_compiled(model):
            model = model._orig_mod
        elif hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        else:
            return model


def is_compiled(model: nn.Module) -> bool:
    """Whether `model` is a ``torch.compile`` wrapper (an OptimizedModule holding ``_orig_mod``)."""
    return isinstance(model.__dict__.get("_modules", {}).get("_orig_mod"), nn.Module)


def strip_ddp(model: nn.Module) -> nn.Module:
    """The module under DDP / DataParallel wrappers, keeping a torch.compile wrapper (unlike `unwrap`)."""
    while not is_compiled(model) and isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model


def is_energy(model: nn.Module) -> bool:
    """Whether `model` (under any DDP / compile wrappers) is an energy model; a plain module counts as one."""
    return getattr(unwrap(model), "kind", "energy") == "energy"


def require_energy(model: nn.Module, objective: str) -> None:
    """Refuse a score network where an objective needs E_θ(x).

    Raises:
        EbtkError: `model` is a score model; the message names `objective` and the objectives that fit.
    """
    if not is_energy(model):
        raise EbtkError(
            f"objective {objective!r} needs a scalar energy model, but the model is a score network "
            f"({type(unwrap(model)).__name__}); use an energy variant or a score objective (ssm, dsm, delta)"
        )


def energy_and_score(
    model: nn.Module, x: torch.Tensor, cond: Any = None, create_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """E_θ(x) and s_θ(x) = −∇ₓE_θ(x) from one forward and one backward pass.

    Args:
        model: an energy model, called as ``model(x, cond)``.
        x: (B, *shape) points.
        cond: conditioning, or None.
        create_graph: keep the graph of the gradient (a loss that differentiates through the score).

    Returns:
        (energies (B,), score shaped like x).
    """
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        e = model(x, cond)
        (g,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
    return e, -g


def score_of(model: nn.Module, x: torch.Tensor, cond: Any = None, create_graph: bool = False) -> torch.Tensor:
    """s_θ(x) = ∇ₓ log p_θ(x) for either model kind.

    Args:
        model: an `EnergyModel` (score by autograd, −∇ₓE) or a `ScoreModel` (its output).
        x: (B, *shape) points.
        cond: conditioning, or None.
        create_graph: True when a loss differentiates through the score (score matching).

    Returns:
        The score, shaped like x.
    """
    if not is_energy(model):
        return model(x, cond)
    return energy_and_score(model, x, cond, create_graph)[1]
