"""A tiny real Task with Gaussian data and exact Gaussian models, for closed-form objective tests.

Registered as task "gauss-test" here only (never in ebtk.builtins). The models are real
`EnergyModel`/`ScoreModel`s, so objectives see exactly what they see in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ebtk.energy import EnergyModel, ScoreModel
from ebtk.objectives.base import Batch
from ebtk.registry import _REGISTRIES, register
from ebtk.tasks.base import Task

MEAN = [0.5, -1.0]
COV = [[1.0, 0.6], [0.6, 0.8]]


@dataclass
class GaussDataConfig:
    mean: list[float] = field(default_factory=lambda: list(MEAN))
    cov: list[list[float]] = field(default_factory=lambda: [list(r) for r in COV])


class GaussTask(Task):
    """Data x ~ N(mean, cov) in D dims (shape (D,)); `data_stats` is exact."""

    name: ClassVar[str] = "gauss-test"
    sections: ClassVar[dict[str, type]] = {"data": GaussDataConfig}

    def __init__(self, config: dict[str, Any] | None = None, run_dir: Any = None):
        super().__init__(config or {}, run_dir)
        self.mean = torch.tensor(self.cfg["data"].mean, dtype=torch.float32)
        self.cov = torch.tensor(self.cfg["data"].cov, dtype=torch.float32)
        evals, evecs = torch.linalg.eigh(self.cov)  # a square root that also allows singular covariances
        self.chol = evecs * evals.clamp_min(0).sqrt()
        self.shape = (len(self.mean),)

    def train_batch(self, gen: torch.Generator, n: int) -> Batch:
        z = torch.randn(n, len(self.mean), generator=gen)
        return Batch(x=self.mean + z @ self.chol.T)

    def data_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean.clone(), self.cov.clone()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return gauss_log_prob(x, self.mean, torch.linalg.inv(self.cov))

    def build_model(self, objective: str) -> nn.Module:
        return GaussianEnergy(len(self.mean))


if "gauss-test" not in _REGISTRIES.get("task", {}):  # the test module may be imported twice by pytest
    register("task", "gauss-test")(GaussTask)


def gauss_log_prob(x: torch.Tensor, mean: torch.Tensor, prec: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, prec⁻¹) (B,) for x (B, D)."""
    d = x - mean
    quad = torch.einsum("bi,ij,bj->b", d, prec, d)
    return -0.5 * quad + 0.5 * torch.logdet(prec) - 0.5 * len(mean) * math.log(2 * math.pi)


class GaussianEnergy(EnergyModel):
    """E(x) = ½(x−μ)ᵀP(x−μ) + b with P = L Lᵀ (L lower-triangular, learnable); x (B, D) → (B,).

    log Z = (D/2)·log 2π − ½·log det P − b, so p_θ = N(μ, P⁻¹) exactly.
    """

    def __init__(self, dim: int, mu: torch.Tensor | None = None, prec: torch.Tensor | None = None, b: float = 0.0):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(dim) if mu is None else mu.clone().float())
        p = torch.eye(dim) if prec is None else prec.float()
        self.L = nn.Parameter(torch.linalg.cholesky(p).clone(memory_format=torch.contiguous_format))
        self.b = nn.Parameter(torch.tensor(float(b)))

    @property
    def P(self) -> torch.Tensor:
        L = torch.tril(self.L)
        return L @ L.T

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        d = x - self.mu
        return 0.5 * torch.einsum("bi,ij,bj->b", d, self.P, d) + self.b

    def log_z(self) -> torch.Tensor:
        return 0.5 * len(self.mu) * math.log(2 * math.pi) - 0.5 * torch.logdet(self.P) - self.b

    def sample(self, n: int) -> torch.Tensor:
        """Exact samples of p_θ = N(μ, P⁻¹): (n, D)."""
        cov = torch.linalg.inv(self.P.detach())
        z = torch.randn(n, len(self.mu))
        return self.mu.detach() + z @ torch.linalg.cholesky(cov).T


class LinearScore(ScoreModel):
    """s(x) = A x + c: the score family that contains every Gaussian's score; x (B, D) → (B, D)."""

    def __init__(self, dim: int):
        super().__init__()
        self.A = nn.Parameter(-torch.eye(dim))
        self.c = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        return x @ self.A.T + self.c


class ConvScore(ScoreModel):
    """Per-frame linear score for (B, C, T) sequences: s = W x + b along channels (refiner-shaped)."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        return self.proj(x)


class ConvEnergy(EnergyModel):
    """E(x) = ½‖x − W·cond‖² per sequence, summed over frames: (B, C, T) → (B,)."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        ref = self.proj(cond) if cond is not None else 0.0
        return 0.5 * (x - ref).pow(2).flatten(1).sum(1)


def make_task(sampler: dict[str, Any] | None = None, **data: Any) -> GaussTask:
    """A GaussTask with optional sampler settings and data overrides (mean=..., cov=...)."""
    return GaussTask({"data": data, "sampler": sampler or {}})


def build(name: str, task: GaussTask | None = None, **options: Any):
    """`ebtk.objective(name, **options)` with the task's sampler settings, chain starts and data statistics:
    what the trainer hands every objective (through `Task.build_objective`)."""
    from ebtk.objectives import objective

    task = task or make_task()
    return objective(name, sampler=task.sampler_cfg, init=lambda n, device: task.init_noise(n, None, device),
                     data=task.data_stats, **options)
