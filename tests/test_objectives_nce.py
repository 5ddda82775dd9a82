"""NCE: Bayes-optimal logits at the true density, and recovery of a Gaussian and its log Z."""

from __future__ import annotations

import math

import pytest
import torch

from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch
from ebtk.objectives.nce import NCE, hyp_log_q
from gaussian_task import GaussianEnergy, build, gauss_log_prob, make_task

torch.set_num_threads(1)


def make_nce(task, **cfg) -> NCE:
    return build("nce", task, **cfg)


def true_model(task) -> GaussianEnergy:
    """E = −log p_data exactly (b = log Z of the data Gaussian)."""
    prec = torch.linalg.inv(task.cov)
    m = GaussianEnergy(2, task.mean, prec)
    with torch.no_grad():
        m.b.fill_(float(m.log_z()))
    return m


@pytest.mark.parametrize("nu", [1, 3])
def test_true_density_gives_bayes_optimal_logit(nu):
    torch.manual_seed(0)
    task = make_task()
    obj = make_nce(task, nu=nu, noise_scale=2.0)
    model = true_model(task)
    u = torch.randn(500, 2) * 2
    g = obj.logit(model(u), obj.gaussian_log_q(u))
    # Independent reference: posterior that u is data when noise is ν times as frequent.
    log_p = task.log_prob(u)
    noise_cov = 2.0 * task.cov
    log_q = torch.distributions.MultivariateNormal(task.mean, noise_cov).log_prob(u)
    post = torch.exp(log_p) / (torch.exp(log_p) + nu * torch.exp(log_q))
    torch.testing.assert_close(torch.sigmoid(g), post, atol=1e-4, rtol=1e-3)
    # At the optimum the loss is stationary in c (Monte Carlo): dL/dc = E_d[σ(G)−1]·... ≈ 0.
    batch = task.train_batch(torch.Generator().manual_seed(1), 20000)
    out = obj(model, batch)
    (gc,) = torch.autograd.grad(out.loss, obj.c)
    assert abs(float(gc)) < 0.03
    assert set(out.metrics) >= {"loss_data", "loss_noise", "c", "acc", "e_pos", "e_neg"}


@pytest.mark.parametrize("nu", [1, 3])
def test_nce_loss_is_the_bernoulli_log_likelihood_of_the_density_classifier(nu):
    """Loss and gradients against the classifier written with densities, not logits.

    The model's density p_m(u) = exp(−E_θ(u) − c) and the noise N(μ, s·Σ) give the posterior that u is
    data, h(u) = p_m(u) / (p_m(u) + ν q(u)). NCE is the negative Bernoulli log-likelihood of the labels
    of all B + νB points under h, per data point: −(1/B)[Σ_data log h + Σ_noise log(1 − h)].
    """
    torch.manual_seed(0)
    task = make_task()
    obj = make_nce(task, nu=nu, noise_scale=2.0)
    with torch.no_grad():
        obj.c.fill_(0.7)
    model = GaussianEnergy(2, torch.tensor([0.2, -0.6]), torch.tensor([[0.8, 0.2], [0.2, 1.4]]), b=-0.3)
    b = 20000
    batch = task.train_batch(torch.Generator().manual_seed(1), b)
    out = obj(model, batch)
    u = out.negatives
    assert u.shape == (nu * b, 2)
    # the noise points are draws from q = N(μ, C), C = 2Σ: each mean and covariance entry within 4 standard
    # errors (se of a mean: √(C_ii/n); of a covariance: √((C_ii·C_jj + C_ij²)/n)); seeded: at most 2.0 se seen
    n, cov_q = len(u), 2.0 * task.cov
    var = cov_q.diagonal()
    assert bool(((u.mean(0) - task.mean).abs() < 4 * (var / n).sqrt()).all())
    se_cov = ((var[:, None] * var[None, :] + cov_q**2) / n).sqrt()
    assert bool(((torch.cov(u.T) - cov_q).abs() < 4 * se_cov).all())
    q = torch.distributions.MultivariateNormal(task.mean.double(), cov_q.double())

    def p_data(pts: torch.Tensor) -> torch.Tensor:
        p_m = torch.exp(-model(pts).double() - obj.c.double())
        return p_m / (p_m + nu * q.log_prob(pts.double()).exp())

    want = -(p_data(batch.x).log().sum() + (1 - p_data(u)).log().sum()) / b
    torch.testing.assert_close(out.loss.double(), want, atol=0, rtol=1e-5)
    params = [model.mu, model.L, model.b, obj.c]
    for g, w in zip(torch.autograd.grad(out.loss, params), torch.autograd.grad(want, params)):
        torch.testing.assert_close(g.double(), w.double(), atol=1e-5, rtol=1e-4)


def test_nce_recovers_gaussian_and_log_z():
    torch.manual_seed(0)
    task = make_task()
    obj = make_nce(task, nu=2, noise_scale=2.0)
    model = GaussianEnergy(2)
    model.b.requires_grad_(False)  # b and c are redundant; c must carry the normaliser
    batch = task.train_batch(torch.Generator().manual_seed(0), 4000)
    params = [model.mu, model.L, obj.c]
    opt = torch.optim.LBFGS(params, lr=1, max_iter=300, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

    def closure():
        torch.manual_seed(1)  # fixed noise sample: a deterministic objective for L-BFGS
        opt.zero_grad()
        loss = obj(model, batch).loss
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    prec_true = torch.linalg.inv(task.cov)
    torch.testing.assert_close(model.mu.detach(), task.mean, atol=0.08, rtol=0)
    torch.testing.assert_close(model.P.detach(), prec_true, atol=0.2, rtol=0.1)
    # c estimates log Z_θ of the fitted model, and therefore (nearly) the true log Z.
    assert abs(float(obj.c.detach()) - float(model.log_z().detach())) < 0.05
    log_z_true = math.log(2 * math.pi) + 0.5 * float(torch.logdet(task.cov))
    assert abs(float(obj.c.detach()) - log_z_true) < 0.1


def test_hyp_noise_log_density_and_samples():
    torch.manual_seed(0)
    task = make_task()
    obj = build("nce", task, noise="hyp", noise_std=0.3, nu=2)
    hyp = torch.randn(4, 3, 5)
    ref = hyp + 0.1 * torch.randn_like(hyp)
    mask = torch.ones(4, 1, 5)
    mask[1, :, 3:] = 0
    batch = Batch(x=ref, hyp=hyp, mask=mask)
    u, log_q_u, log_q_x = obj.noise_and_log_q(batch)
    assert u.shape == (8, 3, 5)
    # padded frames stay at the hypothesis; valid frames are perturbed
    assert torch.equal(u[1, :, 3:], hyp[1, :, 3:]) and not torch.equal(u[0], hyp[0])
    # log q differs from the normalised Normal log-density only by the dropped constant per valid element
    normal = torch.distributions.Normal(hyp, 0.3)
    full = (normal.log_prob(ref) * mask).flatten(1).sum(1)
    n_valid = mask.expand_as(ref).flatten(1).sum(1)
    torch.testing.assert_close(log_q_x, full + 0.5 * n_valid * math.log(2 * math.pi * 0.09))
    # the noise points' log q: the same Normal log-density of u around their (tiled) hypothesis
    full_u = (torch.distributions.Normal(torch.cat([hyp, hyp]), 0.3).log_prob(u) * torch.cat([mask, mask]))
    n_valid_u = torch.cat([n_valid, n_valid])
    torch.testing.assert_close(log_q_u, full_u.flatten(1).sum(1) + 0.5 * n_valid_u * math.log(2 * math.pi * 0.09))
    # the function itself on hand-made points: one valid element off by 0.6 ⇒ −0.6²/(2·0.3²) = −2
    a, h = torch.zeros(1, 2, 3), torch.zeros(1, 2, 3)
    a[0, 1, 2], a[0, 0, 0] = 0.6, 5.0
    m = torch.tensor([[[0.0, 1.0, 1.0]]])
    torch.testing.assert_close(hyp_log_q(a, h, 0.3, m), torch.tensor([-2.0]))


def test_hyp_noise_needs_hypothesis():
    task = make_task()
    obj = build("nce", task, noise="hyp")
    with pytest.raises(EbtkError, match="hypothesis"):
        obj(GaussianEnergy(2), Batch(x=torch.randn(3, 2)))


@pytest.mark.parametrize("bad", [{"nu": 0}, {"noise": "uniform"}, {"noise_scale": 0}, {"noise_std": -1.0},
                                 {"bogus": 1}])
def test_nce_config_validation(bad):
    with pytest.raises(EbtkError):
        NCE.parse_section(bad)


def test_gaussian_log_q_is_normalised():
    task = make_task()
    obj = make_nce(task, noise_scale=1.5)
    x = torch.randn(50, 2)
    ref = torch.distributions.MultivariateNormal(task.mean, 1.5 * task.cov).log_prob(x)
    torch.testing.assert_close(obj.gaussian_log_q(x), ref, atol=1e-3, rtol=1e-4)
    # the test helper's own Gaussian log-density, against torch.distributions
    ref = torch.distributions.MultivariateNormal(task.mean, task.cov).log_prob(x)
    torch.testing.assert_close(gauss_log_prob(x, task.mean, torch.linalg.inv(task.cov)), ref, atol=1e-4, rtol=1e-5)


def test_singular_data_covariance_is_jittered():
    """Constant data dimensions (digits' corner pixels) must not break the fitted noise."""
    task = make_task(mean=[0.0, 1.0], cov=[[1.0, 0.0], [0.0, 0.0]])
    obj = make_nce(task)
    out = obj(GaussianEnergy(2), task.train_batch(torch.Generator().manual_seed(0), 64))
    assert torch.isfinite(out.loss)
