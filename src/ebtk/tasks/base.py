"""The task contract: data, default network, evaluation, samples and plots for one problem.

A task declares its own config sections (dataclasses) in `sections`; their defaults form the base
config that YAML files and `key=value` overrides are merged into.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ebtk.config import SamplerConfig, from_dict
from ebtk.objectives import Objective, objective
from ebtk.objectives.base import Batch


class Task:
    """Subclass and register with `@register("task", NAME)`.

    `shape` is the data shape without the batch dimension. `train_batch(gen, n)` must draw only from
    `gen`, which the trainer seeds from (seed, step, rank): resumed runs then see the same data.
    """

    name: ClassVar[str] = ""
    sections: ClassVar[dict[str, type]] = {}
    default_objective_overrides: ClassVar[dict[str, dict[str, Any]]] = {}
    default_train: ClassVar[dict[str, Any]] = {}
    default_sampler: ClassVar[dict[str, Any]] = {}
    resume_free: ClassVar[tuple[str, ...]] = ("eval",)  # config sections a resumed run may change (eval only)
    shape: tuple[int, ...] = ()

    @classmethod
    def resolve_paths(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Make the config's file paths absolute (against the caller's cwd) before a run dir stores them,
        so the run works from any directory. Tasks with paths override it."""
        return config

    def __init__(self, config: dict[str, Any], run_dir: Path | None = None):
        self.config = config
        self.run_dir = run_dir
        self.cfg = {k: from_dict(cls, config.get(k, {}), k) for k, cls in self.sections.items()}
        self.sampler_cfg = from_dict(SamplerConfig, config.get("sampler", {}), "sampler")

    # -- data -------------------------------------------------------------------------------------
    def train_batch(self, gen: torch.Generator, n: int) -> Batch:  # pragma: no cover - abstract
        raise NotImplementedError

    def data_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (D,) and covariance (D, D) of the flattened training data (NCE's fitted Gaussian noise)."""
        raise NotImplementedError(f"task {self.name} has no data statistics")

    def init_noise(self, n: int, gen: torch.Generator | None = None, device: Any = "cpu") -> torch.Tensor:
        """Starting points of sampler chains, per `sampler.init`: (n, *shape)."""
        kind = self.sampler_cfg.init
        if kind == "uniform":
            x = torch.rand((n, *self.shape), generator=gen) * 2 - 1
            return (x * self.init_scale()).to(device)
        if kind == "data":
            if gen is None:  # draw a fresh generator from the global RNG, so chains start at varied data
                gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))
            return self.train_batch(gen, n).x.to(device)
        return (torch.randn((n, *self.shape), generator=gen) * self.init_scale()).to(device)

    def init_scale(self) -> float:
        return 1.0

    # -- model ------------------------------------------------------------------------------------
    def build_objective(self) -> Objective:
        """The run's objective, built through the public `ebtk.objective` like any library user's: the
        task only supplies its sampler settings, chain starts and (lazily) its data statistics."""
        section = dict(self.config["objective"])
        name = section.pop("name")
        return objective(name, sampler=self.sampler_cfg, init=lambda n, device: self.init_noise(n, None, device),
                         data=self.data_stats, **section)

    def build_model(self, objective: str) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def init_weights(self, model: nn.Module) -> None:
        """Start a *fresh* training run's model from pretrained weights (the trainer calls it only when there is
        no checkpoint to resume; `load_run` never does, so a finished run needs nothing beyond its own)."""

    # -- evaluation -------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, objective: nn.Module, run_dir: Path) -> dict[str, float]:
        return {}

    def sample(self, model: nn.Module, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        """Draw n samples with the configured Langevin sampler from `init_noise`."""
        from ebtk.sampling import Langevin

        s = self.sampler_cfg
        dev = next(model.parameters()).device
        x0 = self.init_noise(n, gen, dev)
        return Langevin(s.steps, s.step_size, s.noise_scale, s.clip).sample(model, x0)

    def save_samples(self, x: torch.Tensor, path: Path) -> None:
        raise NotImplementedError(f"task {self.name} cannot plot samples")

    def plots(self, model: nn.Module, run_dir: Path) -> list[Path]:
        return []


def task_class(name: str) -> type[Task]:
    from ebtk.registry import get

    return get("task", name)


def build_task(config: dict[str, Any], run_dir: Path | None = None) -> Task:
    return task_class(config["task"])(config, run_dir)
