"""Score objectives (SSM, DSM, delta) against Gaussian closed forms, for energy and score models."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from ebtk.energy import ScoreModel
from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch
from ebtk.objectives.delta import Delta
from ebtk.objectives.dsm import DSM
from ebtk.objectives.ssm import SSM
from ebtk.sampling import descent
from gaussian_task import ConvEnergy, ConvScore, GaussianEnergy, LinearScore, build, make_task

torch.set_num_threads(1)


def make(cls, task=None, **cfg):
    return build(cls.name, task, **cfg)


def fisher_objective_gaussian_energy(model: GaussianEnergy, mean: torch.Tensor, cov: torch.Tensor) -> float:
    """J = E_p[½‖s‖² + tr ∇s] for s = −P(x−μ) and p = N(mean, cov): ½[tr(PΣP) + ‖P(m−μ)‖²] − tr P."""
    P = model.P.detach()
    d = mean - model.mu.detach()
    return float(0.5 * (torch.trace(P @ cov @ P) + (P @ d).pow(2).sum()) - torch.trace(P))


@pytest.mark.parametrize("projection", ["rademacher", "gaussian"])
@pytest.mark.parametrize("vr", [False, True])
def test_ssm_equals_fisher_objective_on_a_gaussian_energy(projection, vr):
    torch.manual_seed(123)  # not the data generator's seed: v must be independent of x
    task = make_task()
    model = GaussianEnergy(2, torch.tensor([0.1, -0.3]), torch.tensor([[1.2, 0.4], [0.4, 0.9]]))
    obj = make(SSM, task, projection=projection, variance_reduced=vr, n_projections=2)
    batch = task.train_batch(torch.Generator().manual_seed(0), 100000)
    out = obj(model, batch)
    want = fisher_objective_gaussian_energy(model, task.mean, task.cov)
    assert abs(float(out.loss.detach()) - want) < 0.03
    out.loss.backward()  # differentiable through the score (create_graph)
    assert model.mu.grad is not None and model.L.grad is not None


def test_ssm_on_a_linear_score_model_equals_fisher_objective():
    torch.manual_seed(123)
    task = make_task()
    model = LinearScore(2)
    with torch.no_grad():
        model.A.copy_(torch.tensor([[-1.0, 0.3], [0.1, -0.7]]))  # not symmetric: not an energy's score
        model.c.copy_(torch.tensor([0.2, -0.4]))
    batch = task.train_batch(torch.Generator().manual_seed(0), 100000)
    out = make(SSM, task, variance_reduced=True)(model, batch)
    A, c, m, C = model.A.detach(), model.c.detach(), task.mean, task.cov
    want = 0.5 * (torch.trace(A @ C @ A.T) + (A @ m + c).pow(2).sum()) + torch.trace(A)
    assert abs(float(out.loss.detach()) - float(want)) < 0.02


def _lbfgs(params, loss_fn, iters: int = 3, max_iter: int = 200) -> None:
    opt = torch.optim.LBFGS(params, lr=1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        torch.manual_seed(1)  # fixed projections / noise: a deterministic objective
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    for _ in range(iters):
        opt.step(closure)


def test_minimising_ssm_recovers_mean_and_precision():
    torch.manual_seed(0)
    task = make_task()
    model = GaussianEnergy(2)
    model.b.requires_grad_(False)
    obj = make(SSM, task, n_projections=2, variance_reduced=True)
    batch = task.train_batch(torch.Generator().manual_seed(0), 3000)
    _lbfgs([model.mu, model.L], lambda: obj(model, batch).loss, iters=1, max_iter=50)
    torch.testing.assert_close(model.mu.detach(), task.mean, atol=0.06, rtol=0)
    torch.testing.assert_close(model.P.detach(), torch.linalg.inv(task.cov), atol=0.2, rtol=0.1)


@pytest.mark.parametrize("kind", ["score", "energy"])
def test_dsm_optimum_is_the_smoothed_gaussian_score(kind):
    torch.manual_seed(0)
    task = make_task()
    sigma = 0.5
    obj = make(DSM, task, sigmas=[sigma])
    batch = task.train_batch(torch.Generator().manual_seed(0), 20000)
    smoothed = torch.linalg.inv(task.cov + sigma**2 * torch.eye(2))
    if kind == "score":
        model = LinearScore(2)
        _lbfgs(list(model.parameters()), lambda: obj(model, batch).loss)
        A, c = model.A.detach(), model.c.detach()
    else:
        model = GaussianEnergy(2)
        model.b.requires_grad_(False)
        _lbfgs([model.mu, model.L], lambda: obj(model, batch).loss)
        A = -model.P.detach()
        c = model.P.detach() @ model.mu.detach()
    # s(x) = A x + c should be −(Σ+σ²I)⁻¹(x − μ)
    torch.testing.assert_close(A, -smoothed, atol=0.06, rtol=0.05)
    torch.testing.assert_close(c, smoothed @ task.mean, atol=0.06, rtol=0.05)


class RecordingScore(ScoreModel):
    """s(x̃, cond) = −(x̃ − cond)/τ², recording each input x̃. With cond the clean x, x̃ − x = σε."""

    def __init__(self, tau: float):
        super().__init__()
        self.tau = tau
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return -(x - cond) / self.tau**2


def test_dsm_draws_each_sigma_from_the_list():
    """Each sample's σ is read off its own noise, and the loss is checked against a closed form in σ.

    In D = 512 dimensions ‖x̃ − x‖²/D = σ²·χ²_D/D is within a few % of σ², so the level each sample was
    drawn at is identifiable: every sample must sit at a listed σ, and the counts must be uniform. For
    s = −(x̃ − x)/τ² = −σε/τ² the per-sample loss is ½‖ε‖²(1 − σ²/τ²)²: zero at σ = τ, and different for
    each other level, so it also checks that the loss weights each sample with the σ of its own noise.
    """
    torch.manual_seed(0)
    sigmas, n, dim = [0.1, 1.0, 3.0], 6000, 512
    x = torch.randn(n, dim)
    model = RecordingScore(tau=1.0)
    out = make(DSM, sigmas=sigmas)(model, Batch(x=x, cond=x))
    (noisy,) = model.seen
    sq = (noisy - x).pow(2).sum(1)  # σ²‖ε‖², (n,)
    levels = torch.tensor(sigmas)
    ratio = (sq / dim).unsqueeze(1) / levels.pow(2)  # σ̂²/σ_k², (n, K)
    k = ratio.log().abs().argmin(1)
    # no other noise level: each σ̂² within 25 % of a listed σ² (χ²_512/512 has sd 0.0625)
    assert float(ratio.gather(1, k.unsqueeze(1)).log().abs().max()) < 0.25
    counts = torch.bincount(k, minlength=len(sigmas)).float()
    sd = (n * (1 / 3) * (2 / 3)) ** 0.5  # binomial(n, 1/3)
    assert float((counts - n / 3).abs().max()) < 4 * sd, counts
    sigma = levels[k]
    eps_sq = sq / sigma**2
    want = (0.5 * eps_sq * (1 - sigma**2 / model.tau**2) ** 2).mean()
    torch.testing.assert_close(out.loss.detach(), want, rtol=1e-5, atol=0)


class OracleScore(ScoreModel):
    """s(x, cond) = (cond − x)/η + offset: the exact delta-loss target when cond is the reference."""

    def __init__(self, eta: float = 1.0, offset: float = 0.0):
        super().__init__()
        self.eta, self.offset = eta, offset

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        return (cond - x) / self.eta + self.offset


def _refiner_batch(mask: bool = True) -> Batch:
    torch.manual_seed(0)
    ref = torch.randn(3, 4, 7)
    hyp = ref + 0.5 * torch.randn_like(ref)
    m = None
    if mask:
        m = torch.ones(3, 1, 7)
        m[2, :, 5:] = 0
    return Batch(x=ref, cond=ref, hyp=hyp, mask=m)


@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_delta_zero_exactly_at_the_target_and_one_step_lands_on_the_reference(eta):
    batch = _refiner_batch()
    obj = make(Delta, step_size=eta)
    out = obj(OracleScore(eta), batch)
    assert float(out.loss) == 0.0
    landed = descent(OracleScore(eta), batch.hyp, steps=1, step_size=eta, cond=batch.cond)
    torch.testing.assert_close(landed, batch.x)
    # an offset d on the score costs exactly mean d² over valid elements
    assert abs(float(obj(OracleScore(eta, offset=0.3), batch).loss) - 0.09) < 1e-6


def test_delta_with_an_energy_model():
    """E = ½‖x − cond‖² has score cond − x: zero delta loss, and the loss is differentiable."""
    batch = _refiner_batch()
    model = ConvEnergy(4)
    with torch.no_grad():
        model.proj.weight.copy_(torch.eye(4).unsqueeze(-1))
        model.proj.bias.zero_()
    out = make(Delta)(model, batch)
    assert float(out.loss.detach()) < 1e-10
    torch.testing.assert_close(descent(model, batch.hyp, 1, 1.0, cond=batch.cond), batch.x)
    with torch.no_grad():
        model.proj.bias.fill_(0.1)
    out = make(Delta)(model, batch)
    torch.testing.assert_close(out.loss, torch.tensor(0.01))
    out.loss.backward()
    assert model.proj.bias.grad is not None


def test_delta_masks_padded_frames_and_perturbs_hypotheses():
    batch = _refiner_batch()
    batch.x[2, :, 5:] = 100.0  # garbage in padding must not count
    batch.cond = batch.x
    assert float(make(Delta)(OracleScore(), batch).loss.detach()) < 1e-10
    noisy = make(Delta, hyp_noise=0.2)
    torch.manual_seed(0)
    # the oracle's score at a perturbed Ŷ' is ref − Ŷ', exactly the target for Ŷ': still zero
    assert float(noisy(OracleScore(), batch).loss) < 1e-10
    # a model that ignores x sees exactly the perturbation: loss = mean (hyp_noise·ε)²
    plain = Batch(x=batch.x[:2], cond=batch.x[:2] - batch.hyp[:2], hyp=batch.hyp[:2])
    torch.manual_seed(0)
    loss = noisy(ConstScore(), plain).loss
    torch.manual_seed(0)
    eps = torch.randn_like(plain.hyp)
    torch.testing.assert_close(loss, (0.2 * eps).pow(2).mean())


class ConstScore(ScoreModel):
    """s(x, cond) = cond, whatever x."""

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        return cond + 0 * x


def test_delta_needs_a_hypothesis():
    with pytest.raises(EbtkError, match="hypothesis"):
        make(Delta)(OracleScore(), Batch(x=torch.randn(2, 3)))


def test_score_objectives_work_on_masked_sequences_with_both_model_kinds():
    batch = _refiner_batch()
    for model in (ConvScore(4), ConvEnergy(4)):
        for obj in (make(SSM), make(SSM, variance_reduced=True), make(DSM, sigmas=[0.1, 0.2]), make(Delta)):
            out = obj(model, batch)
            assert out.loss.shape == () and torch.isfinite(out.loss)
            model.zero_grad()
            out.loss.backward()
            assert all(p.grad is not None for p in model.parameters())


def test_ssm_per_element_normalisation_on_sequences():
    """For E = ½‖x‖² (score −x, tr∇s = −n): J per valid element = ½E[x²] − 1, padded frames excluded."""
    batch = _refiner_batch()
    model = ConvEnergy(4)  # with cond None: E = ½‖x‖²
    b = Batch(x=batch.x, hyp=batch.hyp, mask=batch.mask)
    out = make(SSM, variance_reduced=True)(model, b)
    m = batch.mask.expand_as(batch.x)
    want = 0.5 * (batch.x.pow(2) * m).sum() / m.sum() - 1.0
    torch.testing.assert_close(out.loss, want)


@pytest.mark.parametrize(
    "cls,bad",
    [(SSM, {"n_projections": 0}), (SSM, {"projection": "sphere"}), (DSM, {"sigmas": []}),
     (DSM, {"sigmas": [0.1, -0.2]}), (Delta, {"hyp_noise": -0.1}), (Delta, {"step_size": 0}),
     (Delta, {"step": 1})],
)
def test_score_objective_config_validation(cls, bad):
    with pytest.raises(EbtkError):
        cls.parse_section(bad)


def _diag_score(w: torch.Tensor, b: torch.Tensor) -> ConvScore:
    """s_c(x) = w_c·x_c + b_c per frame: a per-channel Gaussian's score (w_c = −1/σ_c²)."""
    model = ConvScore(len(w))
    with torch.no_grad():
        model.proj.weight.copy_(torch.diag(w)[:, :, None])
        model.proj.bias.copy_(b)
    return model


def test_ssm_at_the_hypothesis_is_the_fisher_objective_there():
    """at=hypothesis: the loss is taken at Ŷ. With a diagonal linear score and Rademacher projections
    vᵀ∇(vᵀs) = Σ w_c exactly, so (variance reduced) loss = mean over valid elements of w_c + ½ s_c(Ŷ)²."""
    torch.manual_seed(0)
    w, b = torch.tensor([-1.0, -0.5, -2.0]), torch.tensor([0.1, -0.2, 0.3])
    ref, hyp = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    mask = torch.ones(2, 1, 5)
    mask[1, :, 3:] = 0
    obj = make(SSM, at="hypothesis", variance_reduced=True)
    loss = obj(_diag_score(w, b), ref, cond=hyp, hyp=hyp, mask=mask).loss
    hand = 0.0
    for i in range(2):
        for c in range(3):
            for t in range(5):
                if mask[i, 0, t]:
                    s = w[c] * hyp[i, c, t] + b[c]
                    hand += float(w[c] + 0.5 * s * s)
    hand /= 3 * (5 + 3)  # valid elements: 3 channels × (5 + 3) frames
    assert float(loss.detach()) == pytest.approx(hand, rel=1e-6)
    # at=data takes it at the reference instead
    data = make(SSM, variance_reduced=True)(_diag_score(w, b), ref, cond=hyp, hyp=hyp, mask=mask).loss.detach()
    assert float(data) != pytest.approx(hand, rel=1e-3)


@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_ssm_along_the_path_matches_its_expectation(sigma: float):
    """at=path: x = Y + t(Ŷ − Y) + σε, t ~ U[0, 1]. For s = w·x + b per element (a = w·y + b, d = ŷ − y):
    E[½ s²] = ½(a² + a·w·d + w²d²/3 + w²σ²), and the trace term is w. Many copies of one (Y, Ŷ) pair
    average over t and ε; the tolerance is 4 Monte Carlo standard errors."""
    torch.manual_seed(1)
    w, b = torch.tensor([-1.0, -0.5]), torch.tensor([0.2, -0.1])
    y, h = torch.randn(1, 2, 3), torch.randn(1, 2, 3)
    n = 20_000
    ref, hyp = y.expand(n, -1, -1).clone(), h.expand(n, -1, -1).clone()
    obj = make(SSM, at="path", path_noise=sigma, variance_reduced=True)
    loss = float(obj(_diag_score(w, b), ref, cond=hyp, hyp=hyp).loss.detach())
    a, d, wc = w[None, :, None] * y + b[None, :, None], h - y, w[None, :, None]
    expected = float((wc + 0.5 * (a * a + a * wc * d + wc * wc * d * d / 3 + wc * wc * sigma**2)).mean())
    # MC error: per-sample loss varies through t (and ε); its sd, from the same closed form by simulation
    t = torch.rand(n, 1, 1)
    x = y + t * d + sigma * torch.randn(n, 2, 3)
    per = (wc + 0.5 * (wc * x + b[None, :, None]) ** 2).mean((1, 2))
    se = float(per.std()) / n**0.5
    assert abs(loss - expected) < 4 * se, (loss, expected, se)


def test_ssm_at_hypothesis_needs_a_hypothesis():
    with pytest.raises(EbtkError, match="hypothesis"):
        make(SSM, at="path")(LinearScore(2), torch.randn(4, 2))
    with pytest.raises(EbtkError, match="objective.at"):
        make(SSM, at="nowhere")
