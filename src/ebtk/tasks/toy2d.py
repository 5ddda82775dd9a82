"""The `toy2d` task: 2-D densities with an exact log-density, where an EBM's fit can be measured exactly.

Datasets (all inside about [−4, 4]², each with an exact `log_prob`):

* `8gaussians`: 8 isotropic Gaussians (std 0.5/√2) on a circle of radius 2√2 (FFJORD's layout).
* `25gaussians`: 25 narrow Gaussians (std 0.1) on a 5×5 grid of spacing 1.5: mostly empty space between
  sharp modes, where a fixed noise distribution (NCE) is unlike the data.
* `rings`: 4 concentric rings, radii 0.75, 1.5, 2.25, 3; uniform angle and a folded-normal radius
  (std 0.15) around each: p(x) = p(r) / (2πr), the 1/(2πr) being the polar Jacobian.
* `checkerboard`: uniform on the 8 dark squares (side 2) of a 4×4 board over [−4, 4]²; log p = −log 32
  there and −inf elsewhere.
* `moons`: two half-circle arcs (radius 2), uniform arc parameter, isotropic Gaussian noise (std 0.2):
  the density is an integral over the arc, computed by composite Gauss–Legendre quadrature (≪ 1e-4 nats).
* `pinwheel`: 5 spiral arms c_k(u) = 2u·(cos, sin)(2πk/5 + e^u/4), u ~ N(1, 0.3²) truncated to
  [−0.8, 2.2], plus isotropic noise (std 0.2). A variant of FFJORD's pinwheel whose density is again a 1-D
  integral over the arm (same quadrature).

Evaluation normalises the model over the plane (`ebtk.metrics.density`: a grid on the data box plus
rings and a tail beyond it): test NLL, KL(data‖model) on the box's grid, the model's mass outside the box
(`mass_outside`), the data's own NLL (`true_nll`, the floor a perfect model reaches) and the MMD of
Langevin samples against the test set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ebtk.energy import is_energy, score_of, unwrap
from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch
from ebtk.registry import register
from ebtk.tasks.base import Task

LOG_2PI = math.log(2 * math.pi)


# -- datasets -------------------------------------------------------------------------------------------
class Toy2dDataset:
    """A 2-D distribution: `sample(gen, n) -> (n, 2)` drawing only from `gen`; `log_prob(x (N, 2)) -> (N,)`.

    log_prob is computed in float64 (the metrics compare nats to 1e-3 and better).
    """

    name: ClassVar[str] = ""

    def sample(self, gen: torch.Generator, n: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _randint(gen: torch.Generator, high: int, n: int) -> torch.Tensor:
    return torch.randint(0, high, (n,), generator=gen)


class EightGaussians(Toy2dDataset):
    name = "8gaussians"
    radius = 2 * math.sqrt(2)
    std = 0.5 / math.sqrt(2)

    def __init__(self) -> None:
        a = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        self.centers = self.radius * torch.stack([a.cos(), a.sin()], 1)  # (8, 2)

    def sample(self, gen: torch.Generator, n: int) -> torch.Tensor:
        k = _randint(gen, 8, n)
        return (self.centers[k] + self.std * torch.randn(n, 2, generator=gen, dtype=torch.float64)).float()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        d2 = torch.cdist(x, self.centers.to(x.device)).square()  # (N, 8)
        log_n = -d2 / (2 * self.std**2) - LOG_2PI - 2 * math.log(self.std)
        return torch.logsumexp(log_n, 1) - math.log(8)


class GridGaussians(Toy2dDataset):
    """25 narrow isotropic Gaussians (std 0.1) on a 5×5 grid of spacing 1.5 over [−3, 3]², equal weights.

    The hard case for fixed-noise objectives (NCE's fitted Gaussian puts almost all its mass in the empty
    gaps between the modes); its true NLL is log 25 + log(2πσ²) + 1 − (tiny overlap) ≈ 1.615 nats.
    std 0.1 keeps Langevin stable at the shared η = 0.01 (η·curvature = η/σ² = 1 < 2)."""

    name = "25gaussians"
    std = 0.1
    spacing = 1.5

    def __init__(self) -> None:
        g = (torch.arange(5, dtype=torch.float64) - 2) * self.spacing
        self.centers = torch.cartesian_prod(g, g)  # (25, 2)

    def sample(self, gen: torch.Generator, n: int) -> torch.Tensor:
        k = _randint(gen, len(self.centers), n)
        return (self.centers[k] + self.std * torch.randn(n, 2, generator=gen, dtype=torch.float64)).float()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        d2 = torch.cdist(x, self.centers.to(x.device)).square()  # (N, 25)
        log_n = -d2 / (2 * self.std**2) - LOG_2PI - 2 * math.log(self.std)
        return torch.logsumexp(log_n, 1) - math.log(len(self.centers))


class Rings(Toy2dDataset):
    name = "rings"
    radii = (0.75, 1.5, 2.25, 3.0)
    std = 0.15

    def sample(self, gen: torch.Generator, n: int) -> torch.Tensor:
        r0 = torch.tensor(self.radii, dtype=torch.float64)[_randint(gen, len(self.radii), n)]
        theta = torch.rand(n, generator=gen, dtype=torch.float64) * (2 * math.pi)
        r = (r0 + self.std * torch.randn(n, generator=gen, dtype=torch.float64)).abs()  # folded normal
        return torch.stack([r * theta.cos(), r * theta.sin()], 1).float()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r = x.double().norm(dim=1, keepdim=True).clamp_min(1e-12)  # (N, 1)
        r0 = torch.tensor(self.radii, dtype=torch.float64, device=x.device)  # (K,)
        c = -0.5 * LOG_2PI - math.log(self.std)
        lp_pos = c - (r - r0).square() / (2 * self.std**2)
        lp_neg = c - (r + r0).square() / (2 * self.std**2)  # the folded half: |r0 + σε| = r from below 0
        log_pr = torch.logsumexp(torch.logaddexp(lp_pos, lp_neg), 1) - math.log(len(self.radii))
        return log_pr - math.log(2 * math.pi) - r.squeeze(1).log()


class Checkerboard(Toy2dDataset):
    name = "checkerboard"
    side = 2.0  # squares of side 2 on [−4, 4]²; dark where floor(x/2) + floor(y/2) is even

    def sample(self, gen: torch.Generator, n: int) -> torch.Tensor:
        col = _randint(gen, 4, n) - 2  # −2..1
        row = 2 * _randint(gen, 2, n) - 2 + (col % 2)  # same parity as col
        u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
        return (torch.stack([col, row], 1).double() + u).mul(self.side).float()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        cell = torch.floor(x.double() / self.side)
        inside = (cell >= -2).all(1) & (cell <= 1).all(1) & ((cell[:, 0] + cell[:, 1]) % 2 == 0)
        out = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=x.device)
        out[inside] = -math.log(8 * self.side**2)
        return out


def _gauss_legendre(edges: np.ndarray, order: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite Gauss–Legendre nodes and weights over panels with the given edges: (panels·order,) each."""
    t, w = np.polynomial.legendre.leggauss(order)
    half = np.diff(edges)[:, None] / 2
    nodes = (edges[:-1, None] + half) + half * t[None]
    return torch.from_numpy(nodes.ravel()), torch.from_numpy((half * w[None]).ravel())


def _arc_length_edges(curve: Any, a: float, b: float, max_arc: float, max_width: float) -> np.ndarray:
    """Panel edges on [a, b] such that each panel spans ≤ max_arc of the curve's length and ≤ max_width in t.

    The integrand N(x; c(t), σ²) varies on the scale σ along the curve, so equal arc length (not equal t)
    per panel gives uniform accuracy with the fewest nodes where the curve speeds up (pinwheel's tails).
    """
    t = torch.linspace(a, b, 20001, dtype=torch.float64)
    c = curve(t)
    s = torch.cat([t.new_zeros(1), (c[1:] - c[:-1]).norm(dim=-1).cumsum(0)]).numpy()
    # a strictly increasing "budget" coordinate; a panel spanning one unit of it respects both limits
    budget = s / max_arc + (t.numpy() - a) / max_width
    k = int(np.ceil(budget[-1]))
    return np.interp(np.linspace(0, budget[-1], k + 1), budget, t.numpy())


class CurveMixture(Toy2dDataset):
    """Mixture over curves c_k(t), t with density q(t), plus isotropic Gaussian noise of std `std`.

    p(x) = Σ_k π_k ∫ q(t) N(x; c_k(t), σ²I) dt, by quadrature: the nodes c_k(t_i) with log-weights
    log(π_k w_i q(t_i)) are fixed once, and log p(x) is one logsumexp over them.
    """

    std: float = 0.2

    def _nodes(self) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        """(M, 2) node points and (M,) log-weights (mixture weight × quadrature weight × q(t))."""
        raise NotImplementedError

    def __init__(self) -> None:
        self.points, self.log_w = self._nodes()

    def log_prob(self, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        x = x.double()
        pts, lw = self.points.to(x.device), self.log_w.to(x.device)
        c = -LOG_2PI - 2 * math.log(self.std)
        out = [
            torch.logsumexp(lw - torch.cdist(x[i : i + chunk], pts).square() / (2 * self.std**2), 1) + c
            for i in range(0, x.shape[0], chunk)
        ]
        return torch.cat(out) if out else x.new_zeros(0)


class Moons(CurveMixture):
    name = "moons"
    radius = 2.0
    # arc k: centre + R·(cos t, sin t) for t ∈ [offset, offset + π]; sklearn's make_moons ×2, shifted
    arcs = (((-1.0, -0.2), 0.0), ((1.0, 0.8), math.pi))

    def __init__(self, max_arc: float = 0.15) -> None:
        self.max_arc = max_arc  # panel length along the curve (0.75σ); 8 nodes per panel
        super().__init__()

    def _arc(self, k: int, t: torch.Tensor) -> torch.Tensor:
        (cx, cy), off = self.arcs[k]
        return torch.stack([cx + self.radius * (t + off).cos(), cy + self.radius * (t + off).sin()], -1)

    def _nodes(self) -> tuple[torch.Tensor, torch.Tensor]:
        t, w = _gauss_legendre(_arc_length_edges(lambda t: self._arc(0, t), 0.0, math.pi, self.max_arc, 0.5))
        lw = (w / math.pi).log() - math.log(len(self.arcs))  # uniform q(t) = 1/π, equal arc weights
        pts = torch.cat([self._arc(k, t) for k in range(len(self.arcs))])
        return pts, lw.repeat(len(self.arcs))

    def sample(self, gen: torch.Generator, n: int) -> torch.Tensor:
        k = _randint(gen, 2, n)
        t = torch.rand(n, generator=gen, dtype=torch.float64) * math.pi
        c = torch.where(k[:, None] == 0, self._arc(0, t), self._arc(1, t))
        return (c + self.std * torch.randn(n, 2, generator=gen, dtype=torch.float64)).float()


class Pinwheel(CurveMixture):
    name = "pinwheel"
    arms = 5
    u_mean, u_std, rate, scale = 1.0, 0.3, 0.25, 2.0
    # u is truncated to u_mean + u_std·[−6, 4]: the density is exact for the truncated law, and the arms
    # stop inside the box instead of spiralling outwards ever faster (which would need many more nodes)
    z_lo, z_hi = -6.0, 4.0

    def __init__(self, max_arc: float = 0.3) -> None:
        self.max_arc = max_arc  # panel length along the curve (1.5σ); 8 nodes per panel
        super().__init__()

    def _arm(self, k: int | torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        a = (2 * math.pi / self.arms) * k + self.rate * u.exp()
        return self.scale * u[..., None] * torch.stack([a.cos(), a.sin()], -1)

    def _cdf_range(self) -> tuple[float, float]:
        nd = torch.special.ndtr(torch.tensor([self.z_lo, self.z_hi], dtype=torch.float64))
        return float(nd[0]), float(nd[1])

    def _nodes(self) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = self.u_mean + self.z_lo * self.u_std, self.u_mean + self.z_hi * self.u_std
        u, w = _gauss_legendre(_arc_length_edges(lambda u: self._arm(0, u), lo, hi, self.max_arc, 0.3))
        c0, c1 = self._cdf_range()
        z = (u - self.u_mean) / self.u_std
        log_q = -0.5 * z.square() - 0.5 * LOG_2PI - math.log(self.u_std) - math.log(c1 - c0)
        lw = w.log() + log_q - math.log(self.arms)
        pts = torch.cat([self._arm(k, u) for k in range(self.arms)])
        return pts, lw.repeat(self.arms)

    def sample(self, gen: torch.Generator, n: int) -> torch.Tensor:
        k = _randint(gen, self.arms, n).double()
        c0, c1 = self._cdf_range()
        v = c0 + (c1 - c0) * torch.rand(n, generator=gen, dtype=torch.float64)  # inverse-CDF truncated normal
        u = self.u_mean + self.u_std * torch.special.ndtri(v)
        eps = torch.randn(n, 2, generator=gen, dtype=torch.float64)
        return (self._arm(k, u) + self.std * eps).float()


DATASETS: dict[str, type[Toy2dDataset]] = {
    c.name: c for c in (EightGaussians, Rings, Moons, Checkerboard, Pinwheel, GridGaussians)
}


def make_dataset(name: str) -> Toy2dDataset:
    if name not in DATASETS:
        raise EbtkError(f"unknown toy2d dataset {name!r}; use data.name=one of {', '.join(DATASETS)}")
    return DATASETS[name]()


# -- config sections ------------------------------------------------------------------------------------
@dataclass
class Toy2dData:
    """name: the dataset; n_test: size of the fixed test sample (and of the validation sample); seed:
    seeds the test sample, the validation sample (its own stream) and the data statistics (training
    batches come from the trainer's generator)."""

    name: str = "8gaussians"
    n_test: int = 5000
    seed: int = 0

    def validate(self) -> None:
        make_dataset(self.name)  # raises on an unknown name
        if self.n_test < 2:
            raise EbtkError(f"data.n_test must be ≥ 2, got {self.n_test}")


@dataclass
class Toy2dModel:
    """kind: energy (MLPEnergy) or score (MLPScore); hidden width and number of hidden layers."""

    kind: str = "energy"
    hidden: int = 128
    depth: int = 3

    def validate(self) -> None:
        if self.kind not in ("energy", "score"):
            raise EbtkError(f"model.kind must be energy or score, got {self.kind!r}")
        if self.hidden < 1 or self.depth < 1:
            raise EbtkError(f"model.hidden and model.depth must be ≥ 1, got {self.hidden}, {self.depth}")


@dataclass
class Toy2dEval:
    """Data box: `grid`×`grid` cells over [lo, hi]² (the model's mass beyond it is counted too, by
    `ebtk.metrics.density.normalize`); n_samples: Langevin samples for the MMD.

    Evaluation samples run `sample_steps` Langevin steps (sampler.step_size) from the init noise: training
    chains are persistent by default, so a fresh chain of only `sampler.steps` would not show the model.

    The default box [−4.5, 4.5]² holds every dataset with margin, and 180 cells make the cell side 0.05,
    so the checkerboard's edges fall on cell edges.
    """

    grid: int = 180
    lo: float = -4.5
    hi: float = 4.5
    n_samples: int = 2000
    sample_steps: int = 200  # Langevin steps of evaluation/plot samples; 0: sampler.steps
    # test: score on the fixed test sample; val: on a validation sample of the same size drawn from a
    # separate seed stream, for choosing settings without touching the test sample
    split: str = "test"

    def validate(self) -> None:
        if self.split not in ("val", "test"):
            raise EbtkError(f"eval.split must be val or test, got {self.split!r}")
        if self.sample_steps < 0:
            raise EbtkError(f"eval.sample_steps must be ≥ 0 (0: sampler.steps), got {self.sample_steps}")
        if self.grid < 8 or not self.hi > self.lo or self.n_samples < 2:
            raise EbtkError(
                f"eval needs grid ≥ 8, hi > lo and n_samples ≥ 2, got grid={self.grid}, lo={self.lo}, "
                f"hi={self.hi}, n_samples={self.n_samples}"
            )


# -- the task -------------------------------------------------------------------------------------------
@register("task", "toy2d")
class Toy2d(Task):
    """2-D density estimation with exact evaluation. See the module docstring for the datasets."""

    name = "toy2d"
    sections: ClassVar[dict[str, type]] = {"data": Toy2dData, "model": Toy2dModel, "eval": Toy2dEval}
    shape = (2,)
    # Defaults tuned with SA-NCE on all five datasets: 2000 steps (~80 s of one CPU core) end 0.04–0.07
    # nats above the true NLL on 8-gaussians (3 seeds), rings, moons and pinwheel.
    # threads=1: a 128-wide MLP on 128 points is too small for intra-op threads to pay; on a shared CPU
    # the extra thread only spins (measured: 3–8× the CPU time for the same run).
    # lr, batch and the sampler below are shared by every Langevin-based objective (cd, pcd, sa-nce), and
    # so is SHARED_ALPHA: they differ only in their loss (and cd in its short-run chains, by definition).
    default_train: ClassVar[dict[str, Any]] = {"steps": 2000, "batch_size": 128, "lr": 3e-3, "threads": 1}
    # Persistent chains in a small buffer with rare restarts: each chain lives ~1000 Langevin steps, long
    # enough to hop between modes, so the negatives follow the model's mode *weights*. Short-run chains
    # only follow basin sizes, which leaves the mode weights of an EBM uncorrected (NLL plateaus ~0.1–0.2
    # nats above the truth on 8-gaussians). η = 0.01: with 0.02, Langevin steps jump over the sharp wells
    # that form on rings/checkerboard (unstable once η·curvature > 2), those wells get no negatives and
    # deepen until training diverges.
    default_sampler: ClassVar[dict[str, Any]] = {
        "steps": 20,
        "step_size": 0.01,
        "init": "gaussian",
        "persistent": True,
        "buffer_size": 2000,
        "reinit": 0.02,
    }
    # A light E² regulariser against the same runaway wells (checkerboard NLL gap 0.60 → 0.24 nats with
    # SA-NCE); α = 0.1 flattens the energy range so much that the background keeps visible mass (+0.2 nats
    # on 8-gaussians). One α for cd, pcd and sa-nce (SA-NCE with K = 1 is PCD with 2α: same α, same lr).
    SHARED_ALPHA: ClassVar[float] = 0.01
    default_objective_overrides: ClassVar[dict[str, dict[str, Any]]] = {
        # cd is short-run by definition (pcd is the persistent one)
        "cd": {"alpha": SHARED_ALPHA, "sampler": {"persistent": False}},
        "pcd": {"alpha": SHARED_ALPHA},
        "sa-nce": {"alpha": SHARED_ALPHA},
        # Score matching sees mode weights only through the few points between modes: a bigger batch cuts
        # the gradient noise that otherwise leaves the weights uneven (8-gaussians NLL gap 0.5 → 0.1 for dsm).
        "dsm": {"train": {"batch_size": 512}},
        "ssm": {"train": {"batch_size": 512}},
    }

    STATS_N = 100_000

    def __init__(self, config: dict[str, Any], run_dir: Path | None = None):
        super().__init__(config, run_dir)
        self.data_cfg: Toy2dData = self.cfg["data"]
        self.model_cfg: Toy2dModel = self.cfg["model"]
        self.eval_cfg: Toy2dEval = self.cfg["eval"]
        self.dataset = make_dataset(self.data_cfg.name)
        self._test: torch.Tensor | None = None
        self._val: torch.Tensor | None = None
        self._stats: tuple[torch.Tensor, torch.Tensor] | None = None
        self._data_logp_grid: torch.Tensor | None = None

    # -- data ---------------------------------------------------------------------------------------
    def train_batch(self, gen: torch.Generator, n: int) -> Batch:
        return Batch(x=self.dataset.sample(gen, n))

    def test_data(self) -> torch.Tensor:
        """The fixed test sample (n_test, 2), seeded by data.seed apart from any training stream."""
        if self._test is None:
            gen = torch.Generator().manual_seed(1_000_003 + self.data_cfg.seed)
            self._test = self.dataset.sample(gen, self.data_cfg.n_test)
        return self._test

    def val_data(self) -> torch.Tensor:
        """The fixed validation sample (n_test, 2): its own seed stream, apart from the test sample's."""
        if self._val is None:
            gen = torch.Generator().manual_seed(5_000_011 + self.data_cfg.seed)
            self._val = self.dataset.sample(gen, self.data_cfg.n_test)
        return self._val

    def eval_data(self) -> torch.Tensor:
        """The sample that `evaluate` scores on: `eval.split` (test by default, or val)."""
        return self.val_data() if self.eval_cfg.split == "val" else self.test_data()

    def data_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (2,) and covariance (2, 2) of a fixed sample of 100 000 points."""
        if self._stats is None:
            gen = torch.Generator().manual_seed(2_000_003 + self.data_cfg.seed)
            x = self.dataset.sample(gen, self.STATS_N).double()
            self._stats = (x.mean(0).float(), torch.cov(x.T).float())
        return self._stats

    def init_scale(self) -> float:
        """Half-width of the data box for uniform init; the data's per-coordinate std for Gaussian init."""
        if self.sampler_cfg.init == "uniform":
            return 4.0
        return float(self.data_stats()[1].diagonal().mean().sqrt())

    def data_logp_grid(self) -> torch.Tensor:
        """log p_data on the evaluation grid: (grid, grid) float64 (cached; quadrature datasets are slow)."""
        if self._data_logp_grid is None:
            from ebtk.metrics.density import grid_points

            e = self.eval_cfg
            pts = grid_points(e.lo, e.hi, e.grid).reshape(-1, 2)
            self._data_logp_grid = self.dataset.log_prob(pts).reshape(e.grid, e.grid)
        return self._data_logp_grid

    # -- model --------------------------------------------------------------------------------------
    def build_model(self, objective: str) -> nn.Module:
        from ebtk.nets.mlp import MLPEnergy, MLPScore

        m = self.model_cfg
        cls = MLPScore if m.kind == "score" else MLPEnergy
        return cls(2, hidden=m.hidden, depth=m.depth)

    # -- evaluation ---------------------------------------------------------------------------------
    def sample(self, model: nn.Module, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        """n samples (n, 2): `eval.sample_steps` Langevin steps (sampler step size) from the init noise."""
        from ebtk.sampling import Langevin

        s = self.sampler_cfg
        steps = self.eval_cfg.sample_steps or s.steps
        x0 = self.init_noise(n, gen, next(model.parameters()).device)
        return Langevin(steps, s.step_size, s.noise_scale, s.clip).sample(model, x0)

    def _samples(self, model: nn.Module, n: int) -> torch.Tensor:
        """n Langevin samples with fixed seeds (init from a seeded generator, noise under a forked RNG)."""
        dev = next(model.parameters()).device
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(3_000_003 + self.data_cfg.seed)
            return self.sample(model, n, torch.Generator().manual_seed(4_000_003 + self.data_cfg.seed))

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, objective: nn.Module | None = None, run_dir: Path | None = None
    ) -> dict[str, float]:
        """{nll, true_nll, kl, mass_outside, mmd} for an energy model; {mmd} alone for a score model, whose
        density (hence nll and kl) is not defined. nll/kl use Z over the plane, not just the box (an energy
        flat away from the data has mass out there); mass_outside is the model's mass fraction outside the
        box; mmd compares `eval.n_samples` Langevin samples (the `sampler` section) with the test set.
        With `eval.split: val` every metric is computed on the validation sample instead of the test set."""
        from ebtk.metrics.density import cell_area, kl_grid, nll, normalize
        from ebtk.metrics.mmd import mmd2

        net = unwrap(model)
        was_training = net.training
        net.eval()
        try:
            dev = next(net.parameters()).device
            x_test = self.eval_data().to(dev)
            out: dict[str, float] = {}
            if is_energy(net):
                e = self.eval_cfg
                z = normalize(net, e.lo, e.hi, e.grid)
                out["nll"] = nll(net, x_test, z.log_z)
                out["true_nll"] = float(-self.dataset.log_prob(x_test).mean())
                out["kl"] = kl_grid(self.data_logp_grid().to(dev), z.logp, cell_area(e.lo, e.hi, e.grid))
                out["mass_outside"] = z.mass_outside
            n = min(self.eval_cfg.n_samples, x_test.shape[0])
            samples = self._samples(net, n)
            out["mmd"] = mmd2(samples, x_test[:n]) if torch.isfinite(samples).all() else math.nan
            return out
        finally:
            net.train(was_training)

    # -- plots --------------------------------------------------------------------------------------
    def _field(self, net: nn.Module) -> tuple[torch.Tensor, str]:
        """What the left panel shows: exp(−E)/Z for an energy model, |s(x)| for a score model."""
        from ebtk.metrics.density import grid_points, normalize

        e = self.eval_cfg
        if is_energy(net):
            return normalize(net, e.lo, e.hi, e.grid).logp.exp(), "model density exp(−E)/Z"
        pts = grid_points(e.lo, e.hi, e.grid, next(net.parameters()).device).reshape(-1, 2)
        s = torch.cat([score_of(net, p).detach() for p in pts.split(16384)])
        return s.norm(dim=1).reshape(e.grid, e.grid), "score magnitude |s(x)|"

    def plots(self, model: nn.Module, run_dir: Path) -> list[Path]:
        """One PNG: the model density (|score| for score models) next to Langevin samples over test data."""
        from ebtk.report.plots import density_and_samples

        net = unwrap(model)
        was_training = net.training
        net.eval()
        try:
            field, label = self._field(net)
            samples = self._samples(net, min(self.eval_cfg.n_samples, self.data_cfg.n_test))
        finally:
            net.train(was_training)
        e = self.eval_cfg
        path = density_and_samples(
            field,
            e.lo,
            e.hi,
            samples,
            Path(run_dir) / "density_samples.png",
            data=self.test_data()[:2000],
            field_title=label,
            title=f"toy2d {self.data_cfg.name}",
        )
        return [path]

    def save_samples(self, x: torch.Tensor, path: Path) -> None:
        """Scatter of samples x (N, 2) over the test data."""
        from ebtk.report.plots import scatter

        e = self.eval_cfg
        scatter(x, path, data=self.test_data()[:2000], lo=e.lo, hi=e.hi, title=f"toy2d {self.data_cfg.name}")
