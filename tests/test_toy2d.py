"""toy2d: exact dataset densities vs their samplers, the task's evaluation, the MLP nets and the plots."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ebtk.energy import EnergyModel
from ebtk.errors import EbtkError
from ebtk.metrics.density import cell_area, grid_points
from ebtk.nets.mlp import MLPEnergy, MLPScore
from ebtk.registry import get
from ebtk.tasks.toy2d import DATASETS, Moons, Pinwheel, Toy2d, make_dataset

LO, HI, N = -4.5, 4.5, 180
NAMES = list(DATASETS)


@pytest.fixture(scope="module")
def grid_logp():
    """log p of every dataset on the default evaluation grid (computed once: the quadratures cost ~1 s)."""
    pts = grid_points(LO, HI, N).reshape(-1, 2)
    return {name: make_dataset(name).log_prob(pts).reshape(N, N) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_integrates_to_one(grid_logp, name):
    total = float(grid_logp[name].exp().sum()) * cell_area(LO, HI, N)
    assert total == pytest.approx(1.0, abs=2e-5)


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_agrees_with_sampler(grid_logp, name):
    """Histogram of 200k samples on 18×18 bins vs the bin masses of the exact density (binomial 5σ)."""
    x = make_dataset(name).sample(torch.Generator().manual_seed(7), 200_000).double()
    edges = np.linspace(LO, HI, 19)
    hist, _, _ = np.histogram2d(x[:, 1].numpy(), x[:, 0].numpy(), bins=[edges, edges])  # rows = y
    freq = hist / len(x)
    mass = grid_logp[name].exp().reshape(18, 10, 18, 10).sum((1, 3)).numpy() * cell_area(LO, HI, N)
    sd = np.sqrt(np.maximum(mass * (1 - mass), 1e-9) / len(x))
    assert np.max(np.abs(freq - mass) / (sd + 1e-6)) < 5.0


@pytest.mark.parametrize("name", NAMES)
def test_samplers_deterministic_and_use_only_the_generator(name):
    ds = make_dataset(name)
    state = torch.get_rng_state()
    a = ds.sample(torch.Generator().manual_seed(3), 500)
    b = ds.sample(torch.Generator().manual_seed(3), 500)
    c = ds.sample(torch.Generator().manual_seed(4), 500)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() < 4.5


def test_closed_form_moments():
    g = torch.Generator().manual_seed(0)
    x = make_dataset("8gaussians").sample(g, 200_000).double()
    # mixture of 8 symmetric centres at radius R: Cov = (R²/2 + s²) I = (4 + 1/8) I
    assert torch.allclose(torch.cov(x.T), torch.eye(2, dtype=torch.float64) * 4.125, atol=0.04)
    r2 = make_dataset("rings").sample(g, 200_000).double().square().sum(1)
    # E r² = mean over rings of (r0² + σ²) for the folded normal
    assert float(r2.mean()) == pytest.approx(np.mean(np.square([0.75, 1.5, 2.25, 3.0])) + 0.15**2, rel=0.01)
    cb = make_dataset("checkerboard")
    assert float(cb.log_prob(torch.tensor([[0.5, 0.5]]))) == pytest.approx(-math.log(32))
    assert float(cb.log_prob(torch.tensor([[0.5, -0.5], [4.5, 0.5]])).exp().sum()) == 0.0


def test_25gaussians_entropy_is_the_closed_form():
    """Modes 15σ apart barely overlap: the entropy (the NLL floor) is log 25 + log(2πσ²) + 1 to ~1e-40,
    and a Monte-Carlo NLL of 200k samples agrees within its standard error (here ~0.002 nats)."""
    ds = make_dataset("25gaussians")
    closed = math.log(25) + math.log(2 * math.pi * 0.1**2) + 1
    lp = ds.log_prob(ds.sample(torch.Generator().manual_seed(1), 200_000))
    se = float(lp.std()) / math.sqrt(len(lp))
    assert abs(float(-lp.mean()) - closed) < 4 * se
    # on a centre: the one Gaussian's peak (its neighbours' mass there is e^{-112})
    assert float(ds.log_prob(torch.tensor([[1.5, -3.0]]))) == pytest.approx(-math.log(25 * 2 * math.pi * 0.01))


@pytest.mark.parametrize("cls", [Moons, Pinwheel])
def test_quadrature_converged(cls):
    """The default quadrature agrees with one 5× denser to well under 1e-4 nats, on data and off it."""
    x = torch.cat([cls().sample(torch.Generator().manual_seed(0), 500), torch.rand(300, 2) * 9 - 4.5])
    ref = cls(max_arc=cls().max_arc / 5).log_prob(x)
    assert (cls().log_prob(x) - ref).abs().max() < 1e-5


def _task(tmp_path=None, **over):
    cfg = {
        "data": {"name": "8gaussians", "n_test": 400},
        "eval": {"grid": 90, "n_samples": 200},
        "sampler": {"steps": 5},
    }
    for key, v in over.items():
        sec, k = key.split("__")
        cfg.setdefault(sec, {})[k] = v
    return Toy2d(cfg, tmp_path)


def test_registered_and_config_errors():
    assert get("task", "toy2d") is Toy2d
    assert type(_task(model__kind="energy").build_model("cd")) is MLPEnergy
    assert type(_task(model__kind="score").build_model("ssm")) is MLPScore
    with pytest.raises(EbtkError, match="data.name"):
        _task(data__name="spirals")
    with pytest.raises(EbtkError, match="model.kind"):
        _task(model__kind="flow")
    with pytest.raises(EbtkError, match="grid"):
        _task(eval__lo=1.0, eval__hi=0.0)


def test_data_stats_and_init_scale():
    t = _task()
    mean, cov = t.data_stats()
    assert mean.shape == (2,) and cov.shape == (2, 2)
    assert torch.allclose(mean, torch.zeros(2), atol=0.02)
    assert torch.allclose(cov, torch.eye(2) * 4.125, atol=0.06)
    assert t.init_scale() == pytest.approx(math.sqrt(4.125), rel=0.01)
    assert _task(sampler__init="uniform").init_scale() == 4.0
    x = t.train_batch(torch.Generator().manual_seed(0), 8).x
    assert x.shape == (8, 2)


class TrueEnergy(EnergyModel):
    """The data's own energy −log p(x) as a model: the perfect fit."""

    def __init__(self, ds):
        super().__init__()
        self.ds = ds
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # a device to live on

    def forward(self, x, cond=None):
        return (-self.ds.log_prob(x)).float() + 0 * self.dummy


def _eight_gaussians() -> tuple[torch.distributions.Distribution, torch.distributions.Normal]:
    """FFJORD's 8 Gaussians written out independently of `EightGaussians`: (the mixture, its components)."""
    r, s = 2 * math.sqrt(2), 0.5 / math.sqrt(2)
    centres = torch.tensor([[r, 0], [2, 2], [0, r], [-2, 2], [-r, 0], [-2, -2], [0, -r], [2, -2]], dtype=torch.float64)
    comp = torch.distributions.Normal(centres, s)
    mix = torch.distributions.Categorical(torch.ones(8, dtype=torch.float64))
    return torch.distributions.MixtureSameFamily(mix, torch.distributions.Independent(comp, 1)), comp


def test_evaluate_perfect_model_reaches_true_nll():
    t = _task(eval__grid=180, sampler__step_size=0.005, eval__sample_steps=300)
    m = t.evaluate(TrueEnergy(t.dataset), None, None)
    assert set(m) == {"nll", "true_nll", "kl", "mass_outside", "mmd"}
    mixture, comp = _eight_gaussians()
    # observed 1.3e-15
    assert m["true_nll"] == pytest.approx(float(-mixture.log_prob(t.test_data().double()).mean()), abs=5e-15)
    assert m["nll"] == pytest.approx(m["true_nll"], abs=1e-4)
    # the mixture's mass beyond [−4.5, 4.5]²: 1 − mean over components of Π_d P(lo < x_d < hi)
    inside = (comp.cdf(torch.tensor(HI, dtype=torch.float64)) - comp.cdf(torch.tensor(LO, dtype=torch.float64)))
    assert m["mass_outside"] == pytest.approx(1 - float(inside.prod(1).mean()), rel=1.5e-5)  # observed 4e-6
    assert abs(m["kl"]) < 1e-4
    # Langevin on the exact energy samples the data: MMD as small as between two data samples
    assert m["mmd"] < 0.01


class WideGaussian(EnergyModel):
    """E(x) = ‖x‖² / (2·3²): a quarter of its mass lies outside the data box."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, cond=None):
        return x.square().sum(1) / 18 + 0 * self.dummy


def test_evaluate_counts_the_mass_outside_the_box():
    t = _task(data__n_test=2000)
    m = t.evaluate(WideGaussian(), None, None)
    x = t.test_data().double()
    inside = (0.5 * (math.erf(HI / (3 * math.sqrt(2))) - math.erf(LO / (3 * math.sqrt(2))))) ** 2  # P(box)
    # closed forms; observed errors 4.6e-6 and 3.5e-5 (grid 90). The box-only Z was 0.29 nats too low.
    assert m["mass_outside"] == pytest.approx(1 - inside, abs=1.5e-5)
    assert m["nll"] == pytest.approx(float(x.square().sum(1).mean()) / 18 + math.log(2 * math.pi * 9), abs=1e-4)


def test_evaluate_tiny_untrained_models(tmp_path: Path):
    t = _task()
    torch.manual_seed(0)
    model = t.build_model("sa-nce")
    assert isinstance(model, MLPEnergy)
    state = torch.get_rng_state()
    m1 = t.evaluate(model, None, tmp_path)
    assert torch.equal(torch.get_rng_state(), state)  # evaluation leaves the training RNG alone
    assert set(m1) == {"nll", "true_nll", "kl", "mass_outside", "mmd"}
    assert all(math.isfinite(v) for v in m1.values()) and 0 < m1["mass_outside"] < 1
    assert m1["nll"] > m1["true_nll"] and m1["kl"] > 0
    assert t.evaluate(model, None, tmp_path) == m1  # deterministic
    # a score model has no density: only the sample metric
    s = _task(model__kind="score")
    score_net = s.build_model("dsm")
    assert isinstance(score_net, MLPScore)
    assert set(s.evaluate(score_net, None, tmp_path)) == {"mmd"}


def test_plots_and_save_samples(tmp_path: Path):
    for kind in ("energy", "score"):
        t = _task(model__kind=kind, eval__grid=40)
        paths = t.plots(t.build_model("ssm"), tmp_path / kind)
        assert len(paths) == 1 and paths[0].read_bytes()[:4] == b"\x89PNG"
    t.save_samples(torch.randn(50, 2), tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_mlp_shapes_and_score_consistency():
    torch.manual_seed(0)
    e, s = MLPEnergy(2, hidden=16, depth=2), MLPScore(2, hidden=16, depth=2)
    x = torch.randn(5, 2)
    assert e(x).shape == (5,) and s(x).shape == (5, 2)
    assert len([m for m in e.trunk if isinstance(m, torch.nn.Linear)]) == 2
    # conditional variant: condition concatenated to the input
    ec = MLPEnergy(2, hidden=8, depth=1, cond_dim=3)
    assert ec(x, torch.randn(5, 3)).shape == (5,)
    with pytest.raises(EbtkError, match="cond"):
        ec(x)


def test_plot_helpers(tmp_path: Path):
    import matplotlib.image as mpimg

    from ebtk.report.plots import image_grid, line_plot, mel_plot

    p = image_grid(torch.rand(10, 1, 8, 8) * 2 - 1, tmp_path / "g.png", nrow=5)
    assert mpimg.imread(p).shape[0] > 0
    ys = {"nll": [3.0, 2.9, 2.95], "mmd": [0.1, 0.05, 0.07]}
    p = line_plot([1, 4, 16], ys, tmp_path / "l.png", "K", "v", logx=True)
    assert p.read_bytes()[:4] == b"\x89PNG"
    p = mel_plot({"hyp": np.random.randn(80, 50), "ref": np.random.randn(80, 60)}, tmp_path / "m.png")
    assert p.read_bytes()[:4] == b"\x89PNG"


def test_sample_runs_eval_sample_steps_of_langevin():
    """`sample` = Langevin from init noise for eval.sample_steps steps (sampler.steps when 0)."""
    from ebtk.sampling import Langevin

    torch.manual_seed(0)
    for sample_steps, expect in ((7, 7), (0, 5)):
        t = _task(eval__sample_steps=sample_steps)
        model = t.build_model("sa-nce")
        torch.manual_seed(1)
        got = t.sample(model, 30, torch.Generator().manual_seed(2))
        torch.manual_seed(1)
        x0 = t.init_noise(30, torch.Generator().manual_seed(2))
        s = t.sampler_cfg
        ref = Langevin(expect, s.step_size, s.noise_scale, s.clip).sample(model, x0)
        assert torch.equal(got, ref)
