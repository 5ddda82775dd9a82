"""The `digits` task: an image EBM on sklearn's bundled 8×8 digits (1797 images, no download).

Pixels 0..16 are scaled to [−1, 1] (pixel/16·2−1) and split once, stratified and seeded, into train and
held-out test digits; `data.val_fraction` > 0 carves a validation split (stratified, seeded) out of the
training part, which `eval.split: val` scores against (for choosing settings; the test split stays
unseen). Training batches add a little Gaussian dequantisation noise: the data sit on 17 grey levels,
and an EBM fitted to a discrete set can put unbounded density on it.

Evaluation draws Langevin samples (the `sampler` section, from uniform noise by default, clamped to
[−1, 1]) and scores them against the held-out digits by the Fréchet distance and KID in the feature
space of the small shipped classifier (`ebtk.metrics.frechet`). `fd_test`, the FD of as many real
training digits against the same test digits, is the floor that a perfect sampler would reach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ebtk.energy import unwrap
from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch
from ebtk.registry import register
from ebtk.tasks.base import Task


@dataclass
class DigitsData:
    """test_fraction: held-out share (stratified); val_fraction: share of the *training* part held out as
    a validation split (0: none; training then uses the whole training part); seed: the splits; noise:
    dequantisation std added to training batches (pixel levels are 0.125 apart)."""

    test_fraction: float = 0.2
    val_fraction: float = 0.0
    seed: int = 0
    noise: float = 0.02

    def validate(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise EbtkError(f"data.test_fraction must be in (0, 1), got {self.test_fraction}; e.g. 0.2")
        if not 0 <= self.val_fraction < 1:
            raise EbtkError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}; e.g. 0.2")
        if self.noise < 0:
            raise EbtkError(f"data.noise must be ≥ 0, got {self.noise}; e.g. 0.02")


@dataclass
class DigitsModel:
    """kind: energy (ConvEnergy) or score (ConvScore); channels: width of the widest conv layer."""

    kind: str = "energy"
    channels: int = 32

    def validate(self) -> None:
        if self.kind not in ("energy", "score"):
            raise EbtkError(f"model.kind must be energy or score, got {self.kind!r}")
        if self.channels < 2:
            raise EbtkError(f"model.channels must be ≥ 2, got {self.channels}")


@dataclass
class DigitsEval:
    """n_samples: Langevin samples scored against the test digits; steps: chain length of evaluation
    samples from noise. 0 (auto): the length of the chains the model was trained on, i.e. sampler.steps,
    or sampler.steps / sampler.reinit (the mean age of a chain) with persistent chains (pcd). Short-run
    EBMs are non-convergent: chains much longer than in training over-saturate, shorter ones are noisy."""

    n_samples: int = 500
    steps: int = 0
    split: str = "test"  # test | val (needs data.val_fraction > 0): the real digits the samples are scored against

    def validate(self) -> None:
        if self.split not in ("val", "test"):
            raise EbtkError(f"eval.split must be val or test, got {self.split!r}")
        if self.n_samples < 2 or self.steps < 0:
            raise EbtkError(f"eval.n_samples must be ≥ 2 and eval.steps ≥ 0, got {self.n_samples}, {self.steps}")


@register("task", "digits")
class Digits(Task):
    """8×8 digit images (1, 8, 8) in [−1, 1]; conv energy (or score) net; FD/KID evaluation."""

    name = "digits"
    sections: ClassVar[dict[str, type]] = {"data": DigitsData, "model": DigitsModel, "eval": DigitsEval}
    shape = (1, 8, 8)
    # Sized for ≤ 3 min on a CPU core: 32-channel net, batches of 64, 20-step chains. threads=1: on a
    # shared 2-core CPU two intra-op threads made a 20-step-chain run 8–15× slower (measured: 550 vs
    # 35 ms per SA-NCE step).
    default_train: ClassVar[dict[str, Any]] = {"steps": 500, "batch_size": 64, "lr": 1e-3, "beta1": 0.0, "threads": 1}
    # Short-run EBM sampling: a large step on the gradient and a much smaller noise (the usual
    # decoupled SGLD of image EBMs); noise std = noise_scale·√(2η) = 0.014, from uniform noise.
    default_sampler: ClassVar[dict[str, Any]] = {
        "steps": 20,
        "step_size": 1.0,
        "noise_scale": 0.01,
        "init": "uniform",
        "clip": 1.0,
        # persistent chains (pcd; sa-nce with sampler.persistent=true): 20% restarts keep young chains in
        # the buffer, so that the model also learns the way from noise (evaluation starts there); mean
        # chain age 100 steps
        "reinit": 0.2,
    }
    # Shared by every Langevin-based objective (cd, pcd, sa-nce): lr, batch, the sampler above and α, the
    # E² term that anchors the energy offset the NCE loss is blind to. They differ only in their loss (cd:
    # short-run chains, pcd: persistent ones, by definition).
    SHARED_LANGEVIN: ClassVar[dict[str, Any]] = {"alpha": 0.1, "train": {"lr": 2e-3}}
    default_objective_overrides: ClassVar[dict[str, dict[str, Any]]] = {
        "cd": SHARED_LANGEVIN,
        "pcd": SHARED_LANGEVIN,
        # At this budget (a few hundred steps of 20-step short-run chains) only K = 1 gave digits; K = 5
        # and 10 lagged far behind (the snapshot's chains go stale while the model learns its sampler).
        "sa-nce": {**SHARED_LANGEVIN, "interval": 1, "c": "estimated"},
        # Score models (dsm) learn the score of data smoothed by σ = 0.1 (pixel levels are 0.125 apart);
        # Langevin must then step well below 2σ² = 0.02 for stability, with its full noise.
        "dsm": {"sigmas": [0.1], "sampler": {"step_size": 0.004, "noise_scale": 1.0, "steps": 100}},
    }

    def __init__(self, config: dict[str, Any], run_dir: Path | None = None):
        super().__init__(config, run_dir)
        self.data_cfg: DigitsData = self.cfg["data"]
        self.model_cfg: DigitsModel = self.cfg["model"]
        self.eval_cfg: DigitsEval = self.cfg["eval"]
        from ebtk.metrics.frechet import digits_split

        self.x_train, self.y_train, self.x_test, self.y_test = digits_split(
            self.data_cfg.test_fraction, self.data_cfg.seed
        )
        self.x_val: torch.Tensor | None = None
        if self.data_cfg.val_fraction > 0:
            from sklearn.model_selection import train_test_split

            idx = torch.arange(self.x_train.shape[0]).numpy()
            tr, va = train_test_split(
                idx,
                test_size=self.data_cfg.val_fraction,
                random_state=self.data_cfg.seed + 1,
                stratify=self.y_train.numpy(),
            )
            tr, va = torch.from_numpy(tr), torch.from_numpy(va)
            self.x_val = self.x_train[va]
            self.x_train, self.y_train = self.x_train[tr], self.y_train[tr]
        if self.eval_cfg.split == "val" and self.x_val is None:
            raise EbtkError("eval.split=val needs a validation split: set data.val_fraction > 0, e.g. 0.2")
        objective = config.get("objective", {})
        name = objective.get("name") if isinstance(objective, dict) else objective
        self.persistent = self.sampler_cfg.persistent or name == "pcd"

    # -- data ---------------------------------------------------------------------------------------
    def train_batch(self, gen: torch.Generator, n: int) -> Batch:
        """n training digits (n, 1, 8, 8), drawn with replacement from `gen` only, plus dequantisation."""
        idx = torch.randint(0, self.x_train.shape[0], (n,), generator=gen)
        x = self.x_train[idx]
        if self.data_cfg.noise > 0:
            x = (x + self.data_cfg.noise * torch.randn(x.shape, generator=gen)).clamp_(-1.0, 1.0)
        return Batch(x=x)

    def data_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (64,) and covariance (64, 64) of the flattened training digits plus the dequantisation
        noise variance on the diagonal (the always-background corner pixels would make it singular)."""
        x = self.x_train.flatten(1).double()
        cov = torch.cov(x.T) + (self.data_cfg.noise**2 + 1e-6) * torch.eye(x.shape[1], dtype=torch.float64)
        return x.mean(0).float(), cov.float()

    # -- model --------------------------------------------------------------------------------------
    def build_model(self, objective: str) -> nn.Module:
        from ebtk.nets.conv import ConvEnergy, ConvScore

        cls = ConvScore if self.model_cfg.kind == "score" else ConvEnergy
        return cls(channels=self.model_cfg.channels)

    # -- evaluation ---------------------------------------------------------------------------------
    def _samples(self, model: nn.Module, n: int) -> torch.Tensor:
        """n Langevin samples (n, 1, 8, 8) clamped to [−1, 1], with fixed seeds (forked RNG)."""
        from ebtk.sampling import Langevin

        s = self.sampler_cfg
        dev = next(model.parameters()).device
        steps = self.eval_steps()
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(3_000_003 + self.data_cfg.seed)
            x0 = self.init_noise(n, torch.Generator().manual_seed(4_000_003 + self.data_cfg.seed), dev)
            x = Langevin(steps, s.step_size, s.noise_scale, s.clip).sample(model, x0)
        return x.clamp(-1.0, 1.0)

    def eval_steps(self) -> int:
        """Chain length of evaluation samples (see `DigitsEval.steps`)."""
        s = self.sampler_cfg
        if self.eval_cfg.steps:
            return self.eval_cfg.steps
        return round(s.steps / max(s.reinit, 0.01)) if self.persistent else s.steps

    def evaluate(
        self, model: nn.Module, objective: nn.Module | None = None, run_dir: Path | None = None
    ) -> dict[str, float]:
        """{fd, kid} of `eval.n_samples` Langevin samples against the test digits (the validation digits
        with `eval.split: val`), and `fd_test` / `kid_test`: the same for as many real training digits (the
        floor). NaN if the sampler diverged."""
        from ebtk.metrics.frechet import DigitFeatures, frechet_distance, kid
        from ebtk.sampling import ReplayBuffer

        if objective is not None and any(isinstance(m, ReplayBuffer) for m in objective.modules()):
            self.persistent = True
        net = unwrap(model)
        was_training = net.training
        net.eval()
        try:
            samples = self._samples(net, self.eval_cfg.n_samples).cpu()
        finally:
            net.train(was_training)
        feat = DigitFeatures()
        f_test = feat(self.x_val if self.eval_cfg.split == "val" else self.x_test)
        ref = self.x_train[torch.randperm(self.x_train.shape[0], generator=torch.Generator().manual_seed(0))]
        f_ref = feat(ref[: self.eval_cfg.n_samples])
        out = {"fd_test": frechet_distance(f_ref, f_test), "kid_test": kid(f_ref, f_test)}
        if torch.isfinite(samples).all():
            f_s = feat(samples)
            out.update(fd=frechet_distance(f_s, f_test), kid=kid(f_s, f_test))
        else:
            out.update(fd=math.nan, kid=math.nan)
        return {k: out[k] for k in ("fd", "kid", "fd_test", "kid_test")}

    # -- plots --------------------------------------------------------------------------------------
    def save_samples(self, x: torch.Tensor, path: Path) -> None:
        """Grid PNG of images x (N, 1, 8, 8), values clamped to [−1, 1]."""
        from ebtk.report.plots import image_grid

        image_grid(x.detach().float().cpu().clamp(-1, 1), path, nrow=8, title="digits samples")

    def plots(self, model: nn.Module, run_dir: Path) -> list[Path]:
        """samples.png: 64 Langevin samples (the evaluation sampler) in an 8×8 grid."""
        net = unwrap(model)
        was_training = net.training
        net.eval()
        try:
            x = self._samples(net, 64)
        finally:
            net.train(was_training)
        path = Path(run_dir) / "samples.png"
        self.save_samples(x, path)
        return [path]
