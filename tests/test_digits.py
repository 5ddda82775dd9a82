"""The digits task, its conv nets, and the hub-free FD / KID metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from ebtk.config import SamplerConfig, to_dict
from ebtk.energy import score_of
from ebtk.errors import EbtkError
from ebtk.metrics.frechet import (
    SHIPPED,
    DigitClassifier,
    DigitFeatures,
    digits_split,
    frechet_distance,
    frechet_from_moments,
    kid,
)
from ebtk.nets.conv import ConvEnergy, ConvScore
from ebtk.registry import get
from ebtk.tasks.digits import Digits, DigitsData, DigitsEval, DigitsModel

torch.set_num_threads(1)


def _task(**sections) -> Digits:
    cfg = {
        "task": "digits",
        "data": to_dict(DigitsData()),
        "model": to_dict(DigitsModel()),
        "eval": to_dict(DigitsEval()),
        "sampler": {**to_dict(SamplerConfig()), **Digits.default_sampler},
    }
    for k, v in sections.items():
        cfg[k] = {**cfg[k], **v}
    return Digits(cfg)


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# -- Fréchet distance -----------------------------------------------------------------------------------
def test_frechet_from_moments_matches_scipy_sqrtm_reference():
    rng = np.random.default_rng(0)
    for d in (1, 3, 7):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        c1, c2 = _random_spd(rng, d), _random_spd(rng, d)
        s1 = scipy.linalg.sqrtm(c1).real
        ref = ((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(s1 @ c2 @ s1).real)
        assert frechet_from_moments(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8, abs=1e-10)


def test_frechet_diagonal_closed_form_and_singular_covariances():
    # Commuting (diagonal) covariances: W2² = ‖μ1−μ2‖² + Σ(√a − √b)², also with zero variances.
    a, b = np.array([0.0, 1.0, 4.0, 2.0]), np.array([0.0, 9.0, 1.0, 0.0])
    mu1, mu2 = np.array([1.0, 0, 0, 0]), np.array([0, 2.0, 0, 0])
    ref = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_from_moments(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(ref, rel=1e-10)


def test_frechet_of_samples_self_zero_and_near_gaussian_closed_form():
    rng = np.random.default_rng(1)
    d = 4
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    c1, c2 = _random_spd(rng, d), _random_spd(rng, d)
    x = rng.multivariate_normal(mu1, c1, size=40000)
    y = rng.multivariate_normal(mu2, c2, size=40000)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    exact = frechet_from_moments(mu1, c1, mu2, c2)
    assert frechet_distance(x, y) == pytest.approx(exact, rel=0.05)


# -- KID ------------------------------------------------------------------------------------------------
def test_kid_equals_brute_force_unbiased_mmd_with_cubic_kernel():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 3)), rng.normal(0.5, 1.0, size=(12, 3))
    k = lambda u, v: (u @ v / 3 + 1) ** 3  # noqa: E731
    m = 12
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    # One subset of all points (permutation-invariant) is exactly the unbiased MMD² estimate.
    assert kid(x, y, n_subsets=1, subset_size=m) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_near_zero_for_same_distribution_and_positive_for_shift():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    shifted = rng.normal(1.0, 1.0, size=(400, 8))
    same, diff = kid(x, y, n_subsets=20, subset_size=200), kid(x, shifted, n_subsets=20, subset_size=200)
    assert abs(same) < 0.05 * diff
    assert diff > 0.1


def test_metrics_reject_bad_input():
    with pytest.raises(EbtkError):
        kid(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(EbtkError):
        DigitFeatures()(torch.zeros(4, 3, 8, 8))
    with pytest.raises(EbtkError):
        DigitFeatures()(torch.full((4, 1, 8, 8), math.nan))


# -- the shipped classifier -----------------------------------------------------------------------------
def test_shipped_classifier_accuracy_on_held_out_digits():
    assert SHIPPED.is_file() and SHIPPED.stat().st_size < 1_000_000
    net = DigitClassifier()
    net.load_state_dict(torch.load(SHIPPED, map_location="cpu", weights_only=True))
    net.eval()
    _, _, xte, yte = digits_split()
    with torch.no_grad():
        acc = (net(xte).argmax(1) == yte).float().mean().item()
    assert acc >= 0.95


def test_fd_separates_real_digits_from_noise():
    xtr, _, xte, _ = digits_split()
    feat = DigitFeatures()
    f_test, f_train = feat(xte), feat(xtr)
    g = torch.Generator().manual_seed(0)
    f_unif = feat(torch.rand(500, 1, 8, 8, generator=g) * 2 - 1)
    f_gauss = feat(torch.randn(500, 1, 8, 8, generator=g).clamp(-1, 1))
    floor = frechet_distance(f_test, f_train)
    assert floor < frechet_distance(f_unif, f_train) / 5
    assert floor < frechet_distance(f_gauss, f_train) / 5
    assert kid(f_test, f_train) < kid(f_unif, f_train) / 5
    assert frechet_distance(f_test, f_test) == pytest.approx(0.0, abs=1e-8)


# -- nets -----------------------------------------------------------------------------------------------
def test_conv_nets_shapes_and_energy_score_sign():
    torch.manual_seed(0)
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    e_net, s_net = ConvEnergy(channels=16), ConvScore(channels=16)
    assert e_net(x).shape == (5,)
    assert s_net(x).shape == x.shape
    # score = −∇E, checked against a central finite difference on one pixel
    s = score_of(e_net, x)
    h = 1e-3
    d = torch.zeros_like(x)
    d[:, 0, 3, 4] = h
    fd = -(e_net(x + d) - e_net(x - d)) / (2 * h)
    torch.testing.assert_close(s[:, 0, 3, 4], fd, rtol=1e-2, atol=1e-4)
    with pytest.raises(EbtkError):
        e_net(torch.zeros(2, 8, 8))


# -- the task -------------------------------------------------------------------------------------------
def test_task_registered_split_and_stats():
    assert get("task", "digits") is Digits
    t = _task()
    assert t.x_train.shape[1:] == (1, 8, 8) and t.x_test.shape[0] == 360
    assert t.x_train.min() >= -1 and t.x_train.max() <= 1
    # the split is disjoint: no test image equals a training image at the same index set
    assert t.x_train.shape[0] + t.x_test.shape[0] == 1797
    mean, cov = t.data_stats()
    flat = t.x_train.flatten(1).double()
    torch.testing.assert_close(mean, flat.mean(0).float())
    ref_cov = ((flat - flat.mean(0)).T @ (flat - flat.mean(0)) / (flat.shape[0] - 1)).float()
    torch.testing.assert_close(cov - (0.02**2 + 1e-6) * torch.eye(64), ref_cov, atol=1e-5, rtol=1e-4)
    assert torch.linalg.eigvalsh(cov.double()).min() > 0


def test_train_batch_deterministic_in_range_and_noisy():
    t = _task()
    a = t.train_batch(torch.Generator().manual_seed(5), 64).x
    b = t.train_batch(torch.Generator().manual_seed(5), 64).x
    c = t.train_batch(torch.Generator().manual_seed(6), 64).x
    assert a.shape == (64, 1, 8, 8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1
    # dequantisation: residual to the nearest of the 17 grey levels has std ≈ data.noise (ignoring clamps)
    levels = torch.round((a + 1) * 8) / 8 - 1
    inner = (levels > -1) & (levels < 1)
    assert (a - levels)[inner].std().item() == pytest.approx(0.02, rel=0.15)
    clean = _task(data={"noise": 0.0}).train_batch(torch.Generator().manual_seed(5), 64).x
    assert torch.equal(torch.round((clean + 1) * 8) / 8 - 1, clean)


def test_init_noise_uniform_and_gaussian():
    g = torch.Generator().manual_seed(0)
    u = _task().init_noise(2000, g)
    assert u.shape == (2000, 1, 8, 8) and u.min() >= -1 and u.max() <= 1
    assert u.mean().abs() < 0.02 and u.var().item() == pytest.approx(1 / 3, rel=0.05)
    n = _task(sampler={"init": "gaussian"}).init_noise(2000, g)
    assert n.std().item() == pytest.approx(1.0, rel=0.05)


def test_eval_chain_length_follows_training_chains():
    s = Digits.default_sampler
    assert _task().eval_steps() == s["steps"]
    pcd = _task(sampler={"reinit": 0.25})
    pcd.config["objective"] = {"name": "pcd"}
    assert Digits(pcd.config).eval_steps() == round(s["steps"] / 0.25)
    assert _task(eval={"steps": 7}).eval_steps() == 7


def test_config_errors():
    with pytest.raises(EbtkError):
        _task(model={"kind": "flow"})
    with pytest.raises(EbtkError):
        _task(data={"test_fraction": 1.5})


def test_evaluate_and_plots_on_tiny_untrained_models(tmp_path):
    torch.manual_seed(0)
    for kind in ("energy", "score"):
        t = _task(model={"kind": kind, "channels": 8}, eval={"n_samples": 16}, sampler={"steps": 3})
        model = t.build_model("dsm")
        out = t.evaluate(model, None, tmp_path)
        assert set(out) == {"fd", "kid", "fd_test", "kid_test"}
        assert all(math.isfinite(v) for v in out.values())
        assert out["fd"] > out["fd_test"] >= 0  # noise-like samples are far from digits
    paths = t.plots(model, tmp_path)
    assert paths == [tmp_path / "samples.png"] and paths[0].stat().st_size > 0


@pytest.mark.slow
def test_classifier_retrains_from_bundled_data_alone(tmp_path, monkeypatch):
    """The fallback path when the shipped weights are missing: retrain (no download) and cache."""
    import ebtk.metrics.frechet as fr

    monkeypatch.setattr(fr, "SHIPPED", tmp_path / "absent.pt")
    monkeypatch.setattr(fr, "_MODEL", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    net = fr.load_classifier()
    assert (tmp_path / "cache" / "ebtk" / "digits_classifier.pt").is_file()
    _, _, xte, yte = digits_split()
    with torch.no_grad():
        assert (net(xte).argmax(1) == yte).float().mean().item() >= 0.95
