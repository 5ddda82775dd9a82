"""One signature and one result type for every objective.

An objective is an ``nn.Module`` so that its learned terms (NCE's log-normaliser c, FCE's noise model)
and its state (replay buffers, SA-NCE snapshots) are optimised and checkpointed with the model:
``objective(model, batch) -> LossOutput``. The persistent state of DESIGN.md's ``state`` argument lives
on the module itself.

An objective gets what it needs as constructor arguments, never a task: a sampler config (Langevin
objectives), a function making chain starts, and data statistics (fitted-Gaussian noise). The tasks and
the trainer build objectives through the same `ebtk.objective(name, ...)` a library user calls
(name → class resolution lives in `ebtk.objectives`, so this module imports no objective).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from ebtk.config import SamplerConfig, from_dict, to_dict
from ebtk.errors import EbtkError


@dataclass
class Batch:
    """A training batch; a plain tensor ``x`` given to an objective becomes ``Batch(x)``.

    Attributes:
        x: (B, *shape) data (for refiners: the reference mel Y, shape (B, n_mels, frames)).
        cond: conditioning handed to the model as ``model(x, cond)`` (refiners: hypothesis, text encoding).
        hyp: (B, *shape) hypothesis Ŷ aligned with x (delta loss, refiner NCE noise), or None.
        mask: (B, 1, frames) or None: 1 on valid frames (padded sequences).
    """

    x: torch.Tensor
    cond: Any = None
    hyp: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        """The batch with every tensor (also inside dicts, tuples and lists) moved to `device`."""
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
    """What every objective returns.

    Attributes:
        loss: scalar tensor to minimise.
        metrics: name → scalar tensor to log (loss terms, accuracies, c, ...).
        negatives: (N, *shape) samples the loss used (Langevin or noise samples), or None.
    """

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    negatives: torch.Tensor | None = None


InitFn = Callable[[int, torch.device], torch.Tensor]
"""Chain starts: ``init(n, device) -> (n, *shape)``."""
DataStats = tuple[torch.Tensor, torch.Tensor]
"""Mean (D,) and covariance (D, D) of the flattened training data."""


class Objective(nn.Module):
    """Base class of every objective: an ``nn.Module`` called as ``objective(model, x) -> LossOutput``.

    Subclasses set `name`, `Config` (a dataclass) and implement ``forward(model, batch)``. Build them with
    `ebtk.objective`. Call one as ``objective(model, x)`` with a plain tensor, or ``objective(model, x,
    cond=..., hyp=..., mask=...)``, or with a `Batch`; then ``after_step(model)`` after each optimiser step.
    Learned terms (NCE's c, FCE's noise model) are parameters and state (snapshots, replay buffers) lives in
    ``state_dict()``, so both are optimised and checkpointed with the model.

    Args:
        cfg: the Config dataclass instance; None = its defaults.
        sampler: Langevin settings for negative samples (cd, pcd, sa-nce); None = `SamplerConfig()`.
        init: ``init(n, device) -> (n, *shape)`` chain starts; None = standard normal shaped like the data.
        data: the training data's statistics (nce's fitted Gaussian, fce's initial noise model): a tensor
            of samples (N, *shape), a (mean, cov) pair, or a zero-argument callable returning either
            (evaluated only by objectives that need it).
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = object
    needs_energy: ClassVar[bool] = False

    def __init__(self, cfg: Any = None, *, sampler: SamplerConfig | None = None, init: InitFn | None = None,
                 data: Any = None):
        super().__init__()
        self.cfg = self.Config() if cfg is None else cfg
        self.sampler_cfg = sampler if sampler is not None else SamplerConfig()
        self.init_fn = init  # `data` is read by the constructors that need it (nce, fce), never kept
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))

    def __call__(self, model: nn.Module, data: Any, *args: Any, cond: Any = None, hyp: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None, **kwargs: Any) -> LossOutput:
        """The loss of `data` under `model`: ``objective(model, x)`` or ``objective(model, batch)``.

        Args:
            model: an `EnergyModel` or `ScoreModel`.
            data: (B, *shape) data x, or a `Batch` (then `cond`, `hyp` and `mask` are ignored).
            cond: conditioning handed to the model as ``model(x, cond)``.
            hyp: (B, *shape) hypothesis aligned with x (refiners: delta, hypothesis-noise NCE).
            mask: (B, 1, frames) valid-frame mask of padded sequences.
            *args: passed on to ``forward``.
            **kwargs: passed on to ``forward`` (cd and sa-nce take precomputed ``negatives=``).

        Returns:
            `LossOutput` (loss, metrics, negatives).

        Raises:
            EbtkError: the model kind does not fit the objective, or the batch lacks what it needs.
        """
        batch = data if isinstance(data, Batch) else Batch(x=data, cond=cond, hyp=hyp, mask=mask)
        return super().__call__(model, batch, *args, **kwargs)

    def setup(self, model: nn.Module) -> None:
        """Called once with the (unwrapped) model before training; e.g. take a first snapshot.

        Objectives that need it also call it lazily on their first forward, so library users may skip it.
        """

    def forward(self, model: nn.Module, batch: Batch) -> LossOutput:  # pragma: no cover - abstract
        """The loss of one batch; subclasses implement it (call the objective, not this).

        Args:
            model: an `EnergyModel` or `ScoreModel` (possibly DDP- or compile-wrapped).
            batch: the `Batch`.

        Returns:
            The `LossOutput`.
        """
        raise NotImplementedError

    def after_step(self, model: nn.Module, step: int | None = None) -> None:
        """Call after each optimiser step: snapshot refreshes (sa-nce) and other per-step bookkeeping.

        Args:
            model: the model being trained.
            step: the 1-based count of optimiser steps; None counts them on the objective itself (library
                use), the trainer passes its own.
        """
        with torch.no_grad():
            self.steps_seen.fill_(int(self.steps_seen) + 1 if step is None else int(step))
        self.on_step(model, int(self.steps_seen))

    def on_step(self, model: nn.Module, step: int) -> None:
        """Subclass hook behind `after_step`, with the step count resolved."""

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        # checkpoints written before objectives counted their own steps lack the counter: keep ours
        state_dict.setdefault(prefix + "steps_seen", self.steps_seen.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @classmethod
    def default_section(cls) -> dict[str, Any]:
        """The `objective` config section's defaults (without `name`)."""
        return to_dict(cls.Config())

    @classmethod
    def parse_section(cls, section: dict[str, Any]) -> Any:
        """Typed config from the `objective` section.

        Raises:
            EbtkError: an unknown key or a bad value (the message names it).
        """
        return from_dict(cls.Config, {k: v for k, v in (section or {}).items() if k != "name"}, "objective")

    def check_model(self, model: nn.Module) -> None:
        """Refuse a model this objective cannot train.

        Raises:
            EbtkError: the objective needs an energy and `model` is a score network.
        """
        if self.needs_energy:
            from ebtk.energy import require_energy

            require_energy(model, self.name)


def data_stats(data: Any) -> DataStats | None:
    """Mean (D,) and covariance (D, D) from samples (N, *shape), a (mean, cov) pair or a callable giving either.

    None stays None.

    Raises:
        EbtkError: samples with N < 2 or fewer than 2 dimensions.
    """
    if callable(data) and not isinstance(data, torch.Tensor):
        data = data()
    if data is None:
        return None
    if isinstance(data, tuple | list) and len(data) == 2:
        mean, cov = (torch.as_tensor(t) for t in data)
        return mean.flatten(), cov
    x = torch.as_tensor(data).detach()
    if x.dim() < 2 or x.shape[0] < 2:
        raise EbtkError(f"data= must be samples (N ≥ 2, *shape) or a (mean, cov) pair; got shape {tuple(x.shape)}")
    x = x.flatten(1).double()
    return x.mean(0).float(), torch.cov(x.T).reshape(x.shape[1], x.shape[1]).float()


def masked_mean(v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-element values `v` (B, C, T) over valid frames only."""
    if mask is None:
        return v.mean()
    m = mask.expand_as(v)
    return (v * m).sum() / m.sum().clamp_min(1)
