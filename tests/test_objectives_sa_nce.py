"""SA-NCE: G ≡ 0 and ½·ML gradient at a refresh, refresh timing, and c against a known log Z ratio."""

from __future__ import annotations

import math

import pytest
import torch

import ebtk
from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch
from ebtk.objectives.sa_nce import SANCE
from gaussian_task import ConvEnergy, GaussianEnergy, LinearScore, build, gauss_log_prob, make_task

torch.set_num_threads(1)

SAMPLER = {"steps": 5, "step_size": 0.01}


def make(task, **cfg) -> SANCE:
    return build("sa-nce", task, **cfg)


def gaussian_model() -> GaussianEnergy:
    return GaussianEnergy(2, torch.tensor([0.2, -0.5]), torch.tensor([[1.5, 0.3], [0.3, 1.0]]), b=0.7)


@pytest.mark.parametrize("c_mode", ["learned", "estimated"])
def test_at_refresh_logit_is_zero_and_loss_is_2log2(c_mode):
    torch.manual_seed(0)
    task = make_task(sampler=SAMPLER)
    obj, model = make(task, c=c_mode), gaussian_model()
    obj.setup(model)
    out = obj(model, task.train_batch(torch.Generator().manual_seed(0), 64))  # real Langevin negatives
    torch.testing.assert_close(out.loss, torch.tensor(2 * math.log(2)))
    assert float(out.metrics["c"]) == 0.0 and float(out.metrics["acc"]) == 0.5
    assert out.negatives.shape == (64, 2)
    assert list(obj.snapshot.parameters()) == []  # frozen as buffers: never handed to an optimiser
    assert [n for n, _ in obj.named_parameters()] == ["c"]
    trainable = [n for n, p in obj.named_parameters() if p.requires_grad]
    assert trainable == (["c"] if c_mode == "learned" else [])  # the snapshot is never optimised


@pytest.mark.parametrize("c_mode", ["learned", "estimated"])
def test_gradient_at_refresh_is_half_the_ml_gradient(c_mode):
    torch.manual_seed(123)  # independent of the data generator's seed
    task = make_task()
    obj, model = make(task, c=c_mode), gaussian_model()
    obj.setup(model)
    n = 100000
    batch = task.train_batch(torch.Generator().manual_seed(0), n)
    y = model.sample(n)  # exact samples of the snapshot (= model) instead of Langevin
    params = [model.mu, model.L]
    g_sa = torch.autograd.grad(obj(model, batch, negatives=y).loss, params)
    # Same samples: ½(mean ∇E(x) − mean ∇E(y)) exactly.
    surrogate = 0.5 * (model(batch.x).mean() - model(y).mean())
    for a, b in zip(g_sa, torch.autograd.grad(surrogate, params)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    # Against the exact ML gradient of the mean Gaussian NLL (Monte Carlo tolerance).
    nll = -gauss_log_prob(batch.x, model.mu, model.P).mean()
    for a, b in zip(g_sa, torch.autograd.grad(nll, params)):
        torch.testing.assert_close(a, 0.5 * b, atol=0.02, rtol=0.05)


def _train(obj: SANCE, model: torch.nn.Module, task, steps: int, check=None, batch_size: int = 32) -> None:
    opt = torch.optim.Adam(list(model.parameters()) + [p for p in obj.parameters() if p.requires_grad], lr=0.05)
    obj.setup(model)
    for step in range(1, steps + 1):
        out = obj(model, task.train_batch(torch.Generator().manual_seed(step), batch_size))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        obj.after_step(model, step)
        if check is not None:
            check(step)


def _same(obj: SANCE, model: torch.nn.Module) -> bool:
    snap = obj.snapshot.state_dict()
    return snap.keys() == model.state_dict().keys() and all(torch.equal(snap[k], v)
                                                            for k, v in model.state_dict().items())


def test_refresh_exactly_at_multiples_of_k_and_c_reset():
    torch.manual_seed(0)
    task = make_task(sampler=SAMPLER)
    obj, model = make(task, interval=3), GaussianEnergy(2)
    seen = {}

    def check(step):
        seen[step] = (_same(obj, model), float(obj.c.detach()), int(obj.refreshes))

    _train(obj, model, task, 7, check)
    assert [seen[s][0] for s in range(1, 8)] == [False, False, True, False, False, True, False]
    assert seen[3][1] == 0.0 and seen[6][1] == 0.0 and seen[2][1] != 0.0 and seen[5][1] != 0.0
    assert seen[7][2] == 2


def test_interval_never_keeps_the_first_snapshot():
    torch.manual_seed(0)
    task = make_task(sampler=SAMPLER)
    obj, model = make(task, interval=None), GaussianEnergy(2)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    _train(obj, model, task, 6)
    assert all(torch.equal(initial[k], v) for k, v in obj.snapshot.state_dict().items())
    assert not _same(obj, model) and int(obj.refreshes) == 0 and float(obj.c.detach()) != 0.0


def test_learned_and_estimated_c_agree_with_the_known_log_z_ratio():
    """Data ~ p_θ (known), snapshot θ̄ another Gaussian: both c's → log Z_θ − log Z_θ̄."""
    torch.manual_seed(123)  # independent of the data generator's seed
    task = make_task()
    model = GaussianEnergy(2, task.mean, torch.linalg.inv(task.cov), b=-0.4)
    snap = GaussianEnergy(2, task.mean + 0.3, torch.linalg.inv(task.cov) * 0.8, b=1.1)
    c_true = float((model.log_z() - snap.log_z()).detach())
    n = 20000
    batch = task.train_batch(torch.Generator().manual_seed(0), n)
    y = snap.sample(n)
    est = make(task, c="estimated")
    est.setup(snap)
    c_est = float(est(model, batch, negatives=y).metrics["c"])
    learned = make(task, c="learned")
    learned.setup(snap)
    opt = torch.optim.LBFGS([learned.c], lr=1, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = learned(model, batch, negatives=y).loss
        loss.backward()
        return loss

    opt.step(closure)
    c_learned = float(learned.c.detach())
    assert abs(c_est - c_true) < 0.05
    assert abs(c_learned - c_true) < 0.05
    assert abs(c_learned - c_est) < 0.05


def test_refiner_batches_condition_model_and_snapshot():
    torch.manual_seed(0)
    task = make_task(sampler=SAMPLER)
    obj = make(task, nu=2, hyp_noise=0.05)
    model = ConvEnergy(3)
    obj.setup(model)
    hyp = torch.randn(2, 3, 6)
    batch = Batch(x=hyp + 0.2, cond=hyp, hyp=hyp, mask=torch.ones(2, 1, 6))
    out = obj(model, batch)
    assert out.negatives.shape == (4, 3, 6)
    assert (out.negatives - torch.cat([hyp, hyp])).abs().max() < 1.0  # chains start at the hypothesis
    # at a refresh G = −log ν for every point, so the loss is log(1+ν) + ν·log(1+1/ν)
    torch.testing.assert_close(out.loss, torch.tensor(math.log(3) + 2 * math.log(1.5)))
    out.loss.backward()
    assert model.proj.weight.grad is not None


def test_snapshot_round_trips_through_state_dict():
    task = make_task(sampler=SAMPLER)
    a, b = make(task), make(task)
    a.setup(gaussian_model())
    b.setup(GaussianEnergy(2))
    b.load_state_dict(a.state_dict())
    sa, sb = a.snapshot.state_dict(), b.snapshot.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_sa_nce_refuses_score_models_and_snapshots_on_first_call():
    """Library use skips setup(): the first call snapshots the model it is given, so G ≡ 0 at step 0."""
    task = make_task()
    obj = make(task, c="learned")
    with pytest.raises(EbtkError, match="energy"):
        obj.setup(LinearScore(2))
    model = gaussian_model()
    out = obj(model, task.train_batch(torch.Generator().manual_seed(0), 64))
    assert obj.snapshot is not None and torch.equal(obj.snapshot.mu, model.mu)
    torch.testing.assert_close(out.loss, torch.tensor(2 * math.log(2)))


@pytest.mark.parametrize(
    "bad", [{"interval": -1}, {"interval": 0}, {"c": "fixed"}, {"nu": 0}, {"alpha": -1.0}, {"interval": 1.5}]
)
def test_sa_nce_config_validation(bad):
    with pytest.raises(EbtkError):
        SANCE.parse_section(bad)


@pytest.mark.parametrize("spelling", ["never", "inf", None])
def test_interval_never_spellings_parse_to_none(spelling):
    assert SANCE.parse_section({"interval": spelling}).interval is None


def test_persistent_sa_nce_fits_a_gaussian():
    """End to end with the real Langevin chains (persistent): the fit reaches the data Gaussian."""
    torch.manual_seed(0)
    task = make_task(sampler={"steps": 10, "step_size": 0.05, "persistent": True, "buffer_size": 1000})
    obj, model = make(task, interval=10), GaussianEnergy(2)
    _train(obj, model, task, 200, batch_size=256)
    torch.testing.assert_close(model.mu.detach(), task.mean, atol=0.1, rtol=0)
    torch.testing.assert_close(torch.linalg.inv(model.P.detach()), task.cov, atol=0.15, rtol=0.1)
    assert int(obj.refreshes) == 20


def test_k1_estimated_c_short_run_langevin_recovers_a_gaussian():
    """K = 1 with c estimated (≈ ML) and short-run chains from N(0, I), long enough to mix on this Gaussian:
    the fitted mean and covariance reach the data's."""
    torch.manual_seed(1)
    task = make_task(sampler={"steps": 60, "step_size": 0.05, "persistent": False})
    obj, model = make(task, interval=1, c="estimated"), GaussianEnergy(2)
    _train(obj, model, task, 300, batch_size=256)
    assert int(obj.refreshes) == 300
    torch.testing.assert_close(model.mu.detach(), task.mean, atol=0.1, rtol=0)
    torch.testing.assert_close(torch.linalg.inv(model.P.detach()), task.cov, atol=0.15, rtol=0.1)


def _mlp_run(name: str, steps: int, **options) -> torch.nn.Module:
    """`steps` Adam steps of a small MLP energy on 2-D data through the library API, from fixed seeds."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.SiLU(), torch.nn.Linear(32, 1))
    model = ebtk.EnergyModel(net)
    sampler = {"steps": 10, "step_size": 0.01, "persistent": True, "buffer_size": 512, "reinit": 0.05}
    loss_fn = ebtk.objective(name, sampler=sampler, **options)
    opt = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(128, 2, generator=gen) * torch.tensor([1.0, 0.5]) + torch.tensor([1.0, -1.0])
        out = loss_fn(model, x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        loss_fn.after_step(model)
    return model


def test_k1_is_pcd_with_twice_alpha():
    """K = 1, ν = 1, learned c, persistent chains: every step starts at a refresh (G ≡ 0), so the gradient is
    ½ of PCD's with α doubled, c's gradient is 0, and Adam (scale-free) takes the same steps: SA-NCE with
    K = 1 *is* maximum likelihood / PCD. Same seeds → the same chains, the same parameters."""
    alpha = 0.01
    sa = _mlp_run("sa-nce", 60, interval=1, nu=1, c="learned", alpha=alpha)
    pcd = _mlp_run("pcd", 60, alpha=2 * alpha)
    diff = max(float((a - b).detach().abs().max()) for a, b in zip(sa.parameters(), pcd.parameters()))
    moved = max(float((a - b).detach().abs().max()) for a, b in zip(sa.parameters(), _mlp_run("pcd", 0).parameters()))
    assert moved > 1e-2  # the nets trained
    assert diff < 2.5e-6, diff  # observed: 7e-7 (Adam's ε and float rounding)
    # and not by accident: α unmatched (PCD at α, not 2α) ends elsewhere
    other = _mlp_run("pcd", 60, alpha=alpha)
    assert max(float((a - b).detach().abs().max()) for a, b in zip(sa.parameters(), other.parameters())) > 1e-3
