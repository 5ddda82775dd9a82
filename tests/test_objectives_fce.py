"""FCE: normalised noise models (GMM, RealNVP), exact flow inversion, and a joint fit on Gaussian data."""

from __future__ import annotations

import math

import pytest
import torch

from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch
from ebtk.objectives.fce import FCE, GaussianMixture, RealNVP
from gaussian_task import GaussianEnergy, LinearScore, build, make_task

torch.set_num_threads(1)


def grid_integral(log_prob, lim: float = 9.0, n: int = 401) -> float:
    """∫ exp(log_prob) over [−lim, lim]² by the midpoint rule."""
    g = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        return float(log_prob(pts).exp().sum()) * float(g[1] - g[0]) ** 2


def _perturb(module: torch.nn.Module, scale: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


@pytest.mark.parametrize("full", [True, False])
def test_gmm_log_density_integrates_to_one(full):
    torch.manual_seed(0)
    gmm = GaussianMixture(2, 4, full, torch.zeros(2), torch.tensor([[1.0, 0.3], [0.3, 0.6]]))
    _perturb(gmm, 0.3)
    assert abs(grid_integral(gmm.log_prob) - 1.0) < 1e-3
    # the mixture's log-density matches torch.distributions' for the same parameters
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=gmm.logits.detach()),
        torch.distributions.MultivariateNormal(gmm.loc.detach(), scale_tril=gmm.scale_tril().detach()),
    )
    x = torch.randn(100, 2) * 2
    torch.testing.assert_close(gmm.log_prob(x).detach(), mix.log_prob(x), atol=1e-4, rtol=1e-4)
    s = gmm.sample(20000)
    torch.testing.assert_close(s.mean(0), mix.mean, atol=0.05, rtol=0)


def test_flow_log_density_integrates_to_one_and_inverts():
    torch.manual_seed(0)
    flow = RealNVP(2, layers=4, hidden=16, mean=torch.tensor([0.3, -0.2]), std=torch.tensor([1.2, 0.8]))
    _perturb(flow, 0.4)  # away from the identity initialisation
    assert abs(grid_integral(flow.log_prob, lim=12.0, n=601) - 1.0) < 5e-3
    z = torch.randn(200, 2)
    x = z.clone()
    for layer in reversed(flow.layers):
        x = layer.inverse(x)
    back = x
    for layer in flow.layers:
        back, _ = layer(back)
    torch.testing.assert_close(back, z, atol=1e-5, rtol=1e-5)
    # identity flow with standardisation is the diagonal Gaussian it standardises by
    ident = RealNVP(3, mean=torch.tensor([1.0, 0, -1]), std=torch.tensor([0.5, 1, 2]))
    x = torch.randn(50, 3)
    ref = torch.distributions.Normal(ident.shift, ident.scale).log_prob(x).sum(1)
    torch.testing.assert_close(ident.log_prob(x).detach(), ref, atol=1e-5, rtol=1e-5)


# Seeded runs; observed errors: gmm mean 0.012, covariance 0.017, c − log Z_θ 0.014, noise NLL − entropy
# 0.015; flow 0.030, 0.017, 0.007, 0.015. Each is allowed about 3× its observed error.
FIT_TOL = {
    "gmm": {"mean": 0.036, "cov": 0.05, "c": 0.045, "nll": 0.045},
    "flow": {"mean": 0.09, "cov": 0.05, "c": 0.022, "nll": 0.045},
}


@pytest.mark.parametrize("noise_model", ["gmm", "flow"])
def test_fce_fits_noise_and_model_jointly(noise_model):
    torch.manual_seed(0)
    task = make_task()
    obj = build("fce", task, noise_model=noise_model, components=2, flow_layers=2, flow_hidden=16)
    model = GaussianEnergy(2)
    model.b.requires_grad_(False)
    params = list(model.parameters()) + [p for p in obj.parameters() if p.requires_grad]
    assert any(p is obj.c for p in params) and len(list(obj.noise.parameters())) > 0
    opt = torch.optim.Adam([p for p in params if p.requires_grad], lr=0.03)
    for step in range(250):
        if step == 200:  # settle: smaller steps once near the optimum
            opt.param_groups[0]["lr"] = 0.01
        out = obj(model, task.train_batch(torch.Generator().manual_seed(step), 256))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    # noise model: NLL near the data entropy; EBM: near the data Gaussian; c ≈ log Z_θ
    entropy = 0.5 * (2 * (1 + math.log(2 * math.pi)) + float(torch.logdet(task.cov)))
    held_out = task.train_batch(torch.Generator().manual_seed(999), 4000).x
    tol = FIT_TOL[noise_model]
    assert abs(float(-obj.noise.log_prob(held_out).mean().detach()) - entropy) < tol["nll"]
    torch.testing.assert_close(model.mu.detach(), task.mean, atol=tol["mean"], rtol=0)
    torch.testing.assert_close(torch.linalg.inv(model.P.detach()), task.cov, atol=tol["cov"], rtol=0)
    assert abs(float(obj.c.detach()) - float(model.log_z().detach())) < tol["c"]
    assert set(out.metrics) >= {"loss_nce", "nll_noise", "c", "acc", "e_pos", "e_neg"}


def test_fce_gradients_stay_in_their_lanes():
    """The NCE term trains θ and c only; the noise model gets exactly its ML gradient."""
    torch.manual_seed(0)
    task = make_task()
    obj = build("fce", task, components=2)
    batch = task.train_batch(torch.Generator().manual_seed(0), 64)
    torch.manual_seed(1)
    out = obj(GaussianEnergy(2), batch)
    grads = torch.autograd.grad(out.loss, list(obj.noise.parameters()))
    want = torch.autograd.grad(-obj.noise.log_prob(batch.x).mean(), list(obj.noise.parameters()))
    for a, b in zip(grads, want):
        torch.testing.assert_close(a, b)


def test_fce_refuses_score_models_and_conditional_batches():
    task = make_task()
    obj = build("fce", task)
    with pytest.raises(EbtkError, match="energy"):
        obj(LinearScore(2), task.train_batch(torch.Generator().manual_seed(0), 4))
    with pytest.raises(EbtkError, match="unconditional"):
        obj(GaussianEnergy(2), Batch(x=torch.randn(4, 2), hyp=torch.randn(4, 2)))


@pytest.mark.parametrize("bad", [{"noise_model": "vae"}, {"components": 0}, {"covariance": "tied"},
                                 {"nu": 0}, {"noise_weight": 0.0}])
def test_fce_config_validation(bad):
    with pytest.raises(EbtkError):
        FCE.parse_section(bad)
