"""Grid normaliser, NLL and KL on the grid, and MMD, against closed forms and brute-force references."""

import math

import pytest
import torch

from ebtk.energy import EnergyModel
from ebtk.errors import EbtkError
from ebtk.metrics.density import cell_area, grid_log_normalizer, grid_points, kl_grid, nll
from ebtk.metrics.mmd import median_bandwidth, mmd2
from ebtk.tasks.toy2d import EightGaussians


class GaussEnergy(EnergyModel):
    """E(x) = ‖x − μ‖² / (2s²) + b: log Z = log(2πs²) − b in 2-D."""

    def __init__(self, mu=(0.3, -0.5), s: float = 0.7, b: float = 1.3):
        super().__init__()
        self.mu = torch.nn.Parameter(torch.tensor(mu))
        self.s, self.b = s, b

    def forward(self, x, cond=None):
        return (x - self.mu).square().sum(1) / (2 * self.s**2) + self.b

    def log_z(self) -> float:
        return math.log(2 * math.pi * self.s**2) - self.b


def test_grid_points_layout():
    p = grid_points(-1.0, 1.0, 4)
    assert p.shape == (4, 4, 2)
    # row index = y, column index = x, cell centres
    assert torch.allclose(p[0, :, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert torch.allclose(p[:, 0, 1], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert (p[:, :, 1] == p[:, :1, 1]).all()


def test_log_z_of_gaussian_energy_matches_closed_form():
    m = GaussEnergy()
    log_z, pts, logp = grid_log_normalizer(m, -5.0, 5.0, 200)
    assert log_z == pytest.approx(m.log_z(), abs=1e-6)
    assert pts.shape == (200, 200, 2) and logp.shape == (200, 200)
    # normalised: the grid density integrates to 1 by construction, and matches the closed-form density
    assert float(logp.exp().sum()) * cell_area(-5, 5, 200) == pytest.approx(1.0, abs=1e-9)
    exact = -m(pts.reshape(-1, 2)).double() - m.log_z()
    assert torch.allclose(logp.flatten(), exact, atol=1e-5)


def test_log_z_with_a_callable_and_batching():
    m = GaussEnergy(s=0.5, b=-2.0)
    a, _, _ = grid_log_normalizer(lambda x: m(x).detach(), -4.0, 4.0, 100, device="cpu", batch_size=37)
    b, _, _ = grid_log_normalizer(m, -4.0, 4.0, 100)
    assert a == pytest.approx(b, abs=1e-9)
    assert a == pytest.approx(m.log_z(), abs=1e-5)


def test_diverged_energy_is_an_error():
    with pytest.raises(EbtkError, match="diverged"):
        grid_log_normalizer(lambda x: torch.full((x.shape[0],), math.nan), -1.0, 1.0, 8)


def test_nll_of_true_energy_equals_true_nll():
    ds = EightGaussians()
    x = ds.sample(torch.Generator().manual_seed(0), 3000)
    energy = lambda v: -ds.log_prob(v)  # noqa: E731
    log_z, _, _ = grid_log_normalizer(energy, -4.5, 4.5, 180)
    true_nll = float(-ds.log_prob(x).mean())
    assert log_z == pytest.approx(0.0, abs=1e-5)  # the exact density has Z = 1 (up to the grid error)
    assert nll(energy, x, log_z) == pytest.approx(true_nll, abs=1e-5)


def test_nll_of_gaussian_model_closed_form():
    m = GaussEnergy(mu=(0.0, 0.0), s=1.0, b=0.0)
    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
    log_z, _, _ = grid_log_normalizer(m, -7.0, 7.0, 200)
    expected = float((x.double().square().sum(1) / 2).mean()) + math.log(2 * math.pi)
    assert nll(m, x, log_z) == pytest.approx(expected, abs=1e-5)


def test_kl_grid_zero_for_itself_and_closed_form_for_shift():
    lo, hi, n = -6.0, 6.0, 240
    p = GaussEnergy(mu=(0.0, 0.0), s=0.8, b=0.0)
    q = GaussEnergy(mu=(0.5, -0.3), s=0.8, b=0.0)
    _, _, lp = grid_log_normalizer(p, lo, hi, n)
    _, _, lq = grid_log_normalizer(q, lo, hi, n)
    assert kl_grid(lp, lp, cell_area(lo, hi, n)) == pytest.approx(0.0, abs=1e-12)
    # KL(N(0, s²I) ‖ N(m, s²I)) = ‖m‖² / (2s²)
    assert kl_grid(lp, lq, cell_area(lo, hi, n)) == pytest.approx((0.25 + 0.09) / (2 * 0.64), rel=1e-4)


def test_kl_grid_ignores_zero_data_density():
    lp = torch.tensor([[math.log(0.5), -math.inf], [math.log(0.5), -math.inf]])
    lq = torch.full((2, 2), math.log(0.25))
    # Σ over p > 0 of p·(log p − log q)·dA with dA = 1
    assert kl_grid(lp, lq, 1.0) == pytest.approx(math.log(2.0))
    with pytest.raises(EbtkError):
        kl_grid(lp, lq[:1], 1.0)


def _mmd_reference(x, y, hs):
    """Unbiased MMD² by the textbook formula on full kernel matrices."""
    x, y = x.double(), y.double()

    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in hs) / len(hs)

    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float(
        (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def test_mmd_matches_reference_with_blocks():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(70, 3, generator=g), torch.randn(50, 3, generator=g) + 0.4
    hs = [0.5, 1.0, 2.0]
    assert mmd2(x, y, hs, block=16) == pytest.approx(_mmd_reference(x, y, hs), abs=1e-12)
    med = median_bandwidth(x, y)
    assert mmd2(x, y) == pytest.approx(_mmd_reference(x, y, [0.5 * med, med, 2 * med]), abs=1e-12)


def test_mmd_near_zero_same_distribution_and_positive_for_shift():
    ds = EightGaussians()
    a = ds.sample(torch.Generator().manual_seed(1), 1500)
    b = ds.sample(torch.Generator().manual_seed(2), 1500)
    same = mmd2(a, b)
    shifted = mmd2(a, b + torch.tensor([0.5, 0.0]))
    assert abs(same) < 2e-3
    assert shifted > 20 * max(abs(same), 1e-4)
    # images flatten: the same call works on (N, 1, 8, 8) digits-shaped tensors
    img = torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    assert mmd2(img, img + 1.0) > mmd2(img[:20], img[20:])


def test_mmd_bad_input():
    with pytest.raises(EbtkError):
        mmd2(torch.zeros(1, 2), torch.zeros(5, 2))
    with pytest.raises(EbtkError):
        mmd2(torch.zeros(4, 2), torch.zeros(5, 3))
    with pytest.raises(EbtkError):
        mmd2(torch.zeros(4, 2), torch.ones(5, 2), bandwidths=[0.0])
