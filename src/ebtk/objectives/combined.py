"""Weighted sums of objectives, named with '+': e.g. ``ssm+delta`` (the study's SSM + delta refiner).

The `objective` config section of a combined name is ``{weights: [w₁, …], <part>: {part's keys}, …}``;
`combined_class(name)` makes an `Objective` class for that name whose `default_section` /
`parse_section` handle this layout, so `ebtk.objective` and the trainer treat it like any other
objective. Each part keeps its own state (snapshots, buffers, c) under ``parts.<name>`` in checkpoints.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ebtk.config import from_dict
from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch, LossOutput, Objective


@dataclass
class CombinedConfig:
    """Options of a sum ``a+b``: ``ebtk.objective("ssm+delta", weights=[1, 1], delta={"step_size": 1.0})``.

    Attributes:
        weights: wᵢ, one weight ≥ 0 per part, in the order of the name (at least one > 0).
        parts: part name → that part's typed Config (given as a dict of its options, keyed by the part's
            name).
    """
    weights: list[float]
    parts: dict[str, Any] = field(default_factory=dict)  # part name → its typed config


@dataclass
class _Weights:
    weights: list[float] = field(default_factory=list)


def _split(name: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in name.split("+"))
    if len(parts) < 2 or any(not p for p in parts):
        raise EbtkError(f"bad combined objective {name!r}: expected names joined by '+', e.g. ssm+delta")
    if len(set(parts)) != len(parts):
        raise EbtkError(f"combined objective {name!r} names a part twice; hint: use one entry and its weight")
    return parts


class Combined(Objective):
    """Σ wᵢ·lossᵢ over the parts, each keeping its own state (under ``parts.<name>`` in checkpoints).

    Metrics are ``<part>/<key>``, plus the first part's e_pos / e_neg unprefixed (the trainer's divergence
    guard reads ``e_*``).
    """

    part_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: CombinedConfig, **inputs: Any):
        super().__init__(cfg, **inputs)
        self.parts = nn.ModuleDict({n: _part_class(n)(cfg.parts[n], **inputs) for n in self.part_names})

    @classmethod
    def default_section(cls) -> dict[str, Any]:
        """The section's defaults: equal weights and each part's defaults under its name."""
        return {"weights": [1.0] * len(cls.part_names), **{n: _part_class(n).default_section() for n in cls.part_names}}

    @classmethod
    def parse_section(cls, section: dict[str, Any]) -> CombinedConfig:
        """Typed `CombinedConfig` from ``{weights: [...], <part>: {...}, ...}``.

        Raises:
            EbtkError: an unknown key, a wrong number of weights, negative or all-zero weights, or a bad part
                option.
        """
        section = {k: v for k, v in (section or {}).items() if k != "name"}
        known = ("weights", *cls.part_names)
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise EbtkError(f"unknown config key objective.{unknown[0]}; known: {', '.join(known)}")
        weights = from_dict(_Weights, {"weights": section.get("weights", [1.0] * len(cls.part_names))},
                            "objective").weights
        if len(weights) != len(cls.part_names):
            raise EbtkError(f"objective.weights has {len(weights)} entries for {len(cls.part_names)} parts "
                            f"({'+'.join(cls.part_names)})")
        if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
            raise EbtkError(f"objective.weights must be ≥ 0 with at least one > 0, got {weights}")
        parts = {}
        for n in cls.part_names:
            sub = section.get(n) or {}
            if not isinstance(sub, dict):
                raise EbtkError(f"objective.{n} must be a section (a mapping of {n}'s keys)")
            parts[n] = from_dict(_part_class(n).Config, {k: v for k, v in sub.items() if k != "name"},
                                 f"objective.{n}")
        return CombinedConfig(weights=list(weights), parts=parts)

    def check_model(self, model: nn.Module) -> None:
        """Every part's model check (see `Objective.check_model`)."""
        for part in self.parts.values():
            part.check_model(model)

    def setup(self, model: nn.Module) -> None:
        """Every part's setup."""
        for part in self.parts.values():
            part.setup(model)

    def on_step(self, model: nn.Module, step: int) -> None:
        """Every part's `after_step`, with the same step."""
        for part in self.parts.values():
            part.after_step(model, step)

    def forward(self, model: nn.Module, batch: Batch) -> LossOutput:
        """Σ wᵢ·lossᵢ of one batch.

        Returns:
            `LossOutput` with the weighted sum, each part's metrics prefixed, and the first part's negatives.
        """
        loss: torch.Tensor | float = 0.0
        metrics: dict[str, torch.Tensor] = {}
        negatives = None
        for w, (n, part) in zip(self.cfg.weights, self.parts.items()):
            out = part(model, batch)
            loss = loss + w * out.loss
            metrics[f"{n}/loss"] = out.loss.detach()
            for k, v in out.metrics.items():
                metrics[f"{n}/{k}"] = v
                if k in ("e_pos", "e_neg"):
                    metrics.setdefault(k, v)
            negatives = out.negatives if negatives is None else negatives
        return LossOutput(loss, metrics, negatives)  # type: ignore[arg-type]


def _part_class(name: str) -> type[Objective]:
    from ebtk.registry import get

    return get("objective", name)


@functools.cache
def combined_class(name: str) -> type[Combined]:
    """The Objective class for a '+'-joined name (cached, so one class per name)."""
    parts = _split(name)
    classes = [_part_class(p) for p in parts]  # unknown parts fail here, listing the known names
    return type(
        f"Combined_{'_'.join(p.replace('-', '_') for p in parts)}",
        (Combined,),
        {"name": name, "part_names": parts, "needs_energy": any(c.needs_energy for c in classes),
         "Config": CombinedConfig},
    )
