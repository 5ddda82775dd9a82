"""One signature and one result type for every objective.

An objective is an ``nn.Module`` so that its learned terms (NCE's log-normaliser c, FCE's noise model)
and its state (replay buffers, SA-NCE snapshots) are optimised and checkpointed with the model:
``objective(model, batch) -> LossOutput``. The persistent state of DESIGN.md's ``state`` argument lives
on the module itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from ebtk.config import SamplerConfig, from_dict, to_dict
from ebtk.errors import EbtkError


@dataclass
class Batch:
    """A training batch.

    x: (B, *shape) data (for refiners: the reference mel Y, shape (B, n_mels, frames)).
    cond: conditioning handed to the model as ``model(x, cond)`` (refiners: hypothesis, text encoding).
    hyp: (B, *shape) hypothesis Ŷ aligned with x (delta loss, refiner NCE noise).
    mask: (B, 1, frames) or None: 1 on valid frames (padded sequences).
    """

    x: torch.Tensor
    cond: Any = None
    hyp: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        def mv(v: Any) -> Any:
            if isinstance(v, torch.Tensor):
                return v.to(device, non_blocking=True)
            if isinstance(v, dict):
                return {k: mv(t) for k, t in v.items()}
            if isinstance(v, tuple | list):
                return type(v)(mv(t) for t in v)
            return v

        return replace(self, x=mv(self.x), cond=mv(self.cond), hyp=mv(self.hyp), mask=mv(self.mask))

    def __len__(self) -> int:
        return self.x.shape[0]

    def shard(self, rank: int, world: int) -> Batch:
        """Rows rank, rank+world, … of every batch-major tensor: one DDP rank's share of a global batch."""
        if world == 1:
            return self
        n = self.x.shape[0]

        def cut(v: Any) -> Any:
            if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == n:
                return v[rank::world]
            if isinstance(v, dict):
                return {k: cut(t) for k, t in v.items()}
            if isinstance(v, tuple | list):
                return type(v)(cut(t) for t in v)
            return v

        return replace(self, x=cut(self.x), cond=cut(self.cond), hyp=cut(self.hyp), mask=cut(self.mask))


@dataclass
class LossOutput:
    """loss: scalar to minimise; metrics: scalar tensors to log; negatives: samples the loss used."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    negatives: torch.Tensor | None = None


class Objective(nn.Module):
    """Base class. Subclasses set `name`, `Config` (a dataclass) and implement `forward`."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = object
    needs_energy: ClassVar[bool] = False

    def __init__(self, cfg: Any, sampler: SamplerConfig, task: Any):
        super().__init__()
        self.cfg = cfg
        self.sampler_cfg = sampler
        self.task = task

    def setup(self, model: nn.Module) -> None:
        """Called once with the (unwrapped) model before training; e.g. take a first snapshot."""

    def forward(self, model: nn.Module, batch: Batch) -> LossOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after each optimiser step with the 1-based step count (snapshot refreshes etc.)."""

    @classmethod
    def default_section(cls) -> dict[str, Any]:
        """The `objective` config section's defaults (without `name`)."""
        return to_dict(cls.Config())

    @classmethod
    def parse_section(cls, section: dict[str, Any]) -> Any:
        """Typed config from the `objective` section; unknown keys / bad values are EbtkErrors."""
        return from_dict(cls.Config, {k: v for k, v in (section or {}).items() if k != "name"}, "objective")

    def check_model(self, model: nn.Module) -> None:
        if self.needs_energy:
            from ebtk.energy import require_energy

            require_energy(model, self.name)


def masked_mean(v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-element values `v` (B, C, T) over valid frames only."""
    if mask is None:
        return v.mean()
    m = mask.expand_as(v)
    return (v * m).sum() / m.sum().clamp_min(1)


def objective_class(name: str) -> type[Objective]:
    """The registered class for `name`; `a+b` names a weighted sum (ebtk.objectives.combined)."""
    if "+" in name:
        from ebtk.objectives.combined import combined_class

        return combined_class(name)
    from ebtk.registry import get

    return get("objective", name)


def build_objective(name: str, section: dict[str, Any], sampler: dict[str, Any], task: Any) -> Objective:
    """Instantiate a registered objective from its config section (`name` key ignored)."""
    cls = objective_class(name)
    obj = cls(cls.parse_section(section), from_dict(SamplerConfig, sampler, "sampler"), task)
    if not isinstance(obj, Objective):
        raise EbtkError(f"objective {name!r} is not an Objective")
    return obj
