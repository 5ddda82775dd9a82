"""Normaliser over the plane, NLL and KL on the grid, and MMD, against closed forms and brute-force references."""

import math

import pytest
import torch

from ebtk.energy import EnergyModel
from ebtk.errors import EbtkError
from ebtk.metrics.density import cell_area, grid_log_normalizer, grid_points, kl_grid, nll, normalize
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

    def box_mass(self, lo: float, hi: float) -> float:
        """P(x ∈ [lo, hi]²) under the normalised density: a product of 1-D normal CDF differences."""
        cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
        return math.prod(cdf((hi - m) / self.s) - cdf((lo - m) / self.s) for m in self.mu.tolist())


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
    # the grid density is the closed-form one: its mass on the box is P(box), by the normal CDF
    assert float(logp.exp().sum()) * cell_area(-5, 5, 200) == pytest.approx(m.box_mass(-5, 5), abs=1e-15)
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


def test_wide_gaussian_spilling_out_of_the_box_matches_closed_form():
    """A Gaussian with a quarter of its mass outside the box: Z over the plane, and the mass outside it."""
    m = GaussEnergy(s=3.0)
    z = normalize(m, -4.5, 4.5, 180)
    outside = 1 - m.box_mass(-4.5, 4.5)
    assert outside > 0.25
    # observed errors: log Z 8.5e-6 and log Z_box 1.0e-5 (the box cells' midpoint error, as before),
    # mass_outside 1.4e-6
    assert z.log_z == pytest.approx(m.log_z(), abs=3e-5)
    assert z.mass_outside == pytest.approx(outside, abs=5e-6)
    assert z.log_z_box == pytest.approx(m.log_z() + math.log(m.box_mass(-4.5, 4.5)), abs=3e-5)
    assert z.improper == 0.0 and z.mass_tail < 1e-30


def test_mass_all_inside_keeps_the_box_normaliser():
    """8-gaussians' own energy: mass_outside is the mixture's closed-form mass beyond the box (~6e-7), and
    log Z is the box-only normaliser's up to that mass."""
    ds = EightGaussians()
    z = normalize(lambda v: -ds.log_prob(v), -4.5, 4.5, 180)
    parts = [GaussEnergy(mu=tuple(c.tolist()), s=ds.std) for c in ds.centers]
    outside = 1 - sum(g.box_mass(-4.5, 4.5) for g in parts) / 8
    assert z.mass_outside == pytest.approx(outside, rel=1.5e-5)  # observed 4.1e-6 relative, both
    assert z.log_z - z.log_z_box == pytest.approx(-math.log1p(-outside), rel=1.5e-5)
    assert z.log_z == pytest.approx(0.0, abs=5e-8)  # observed 1.5e-8


def _plateau(k: float):
    """The 8-gaussians wells under a flat energy of 10 (reached before radius 4.5, constant beyond it), rising
    with slope k beyond |x|∞ = 60: with k = 0 it is flat out to infinity (improper), like a CD energy
    that the E² regulariser keeps flat far from the data."""
    ds = EightGaussians()
    return lambda x: (-ds.log_prob(x)).clamp(max=10.0) + k * (x.double().abs().amax(1) - 60).clamp(min=0)


@pytest.fixture(scope="module")
def plateau_brute_force():
    """log of ∫ exp(−E) over [−60, 60]² and over the box [−4.5, 4.5]², by a plain uniform grid of step 0.1
    (twice the normaliser's box cell, so no cell is shared)."""
    h, fn = 0.1, _plateau(0.0)
    c = torch.linspace(-60 + h / 2, 60 - h / 2, 1200, dtype=torch.float64)
    total, box = [], []
    for rows in c.split(200):
        yy, xx = torch.meshgrid(rows, c, indexing="ij")
        x = torch.stack([xx, yy], -1).reshape(-1, 2)
        e = fn(x)
        total.append(torch.logsumexp(-e, 0))
        box.append(torch.logsumexp(-e[x.abs().amax(1) < 4.5], 0))
    log_area = 2 * math.log(h)
    return tuple(float(torch.logsumexp(torch.stack(parts), 0)) + log_area for parts in (total, box))


@pytest.mark.parametrize("k", [0.0, 0.5])
def test_flat_beyond_the_box_matches_brute_force_on_the_wide_square(plateau_brute_force, k):
    """40 % of the mass lies outside the box. k = 0: E never rises, Z = ∞ on the plane; every ray is cut at
    the wide square (improper = 1), so Z is the brute force's over [−60, 60]². k = 0.5: E rises linearly
    beyond it, and the tail estimate is exact: 8·e⁻¹⁰·(60/k + 1/k²) beyond the square, in closed form."""
    log_z_wide, log_z_box = plateau_brute_force
    if k:
        log_z_wide = math.log(math.exp(log_z_wide) + 8 * math.exp(-10) * (60 / k + 1 / k**2))
    fn = _plateau(k)
    z = normalize(fn, -4.5, 4.5, 180)
    x = EightGaussians().sample(torch.Generator().manual_seed(0), 2000)
    # observed: 4e-8 and 7.4e-8 on the NLL, 1.6e-8 and 4e-9 on mass_outside (k = 0, 0.5)
    assert nll(fn, x, z.log_z) == pytest.approx(float(fn(x).mean()) + log_z_wide, abs=2.5e-7)
    assert z.mass_outside == pytest.approx(-math.expm1(log_z_box - log_z_wide), abs=5e-8)
    assert z.mass_outside > 0.39
    assert z.improper == (1.0 if k == 0 else 0.0)
    assert (z.mass_tail > 0.02) == (k > 0)


def test_energy_that_falls_away_from_the_box_is_improper_on_those_rays():
    """E falls beyond x = 50 in the cone x > |y| (Z = ∞ there) and rises elsewhere: the quarter of the
    directions in that cone are cut at the wide square; the NaN and −inf checks cover the outer cells too."""
    g = GaussEnergy(s=1.0)
    cone = lambda x: (x[:, 0] > x[:, 1].abs()) & (x[:, 0] > 50)  # noqa: E731
    fn = lambda x: torch.where(cone(x), -x[:, 0].double(), g(x).detach().double())  # noqa: E731
    assert normalize(fn, -4.5, 4.5, 60).improper == 0.25
    for bad in (math.nan, -math.inf):
        far = lambda x, bad=bad: torch.where(x[:, 0] > 10, bad, g(x).detach().double())  # noqa: E731
        with pytest.raises(EbtkError, match="diverged"):
            normalize(far, -4.5, 4.5, 60)
    with pytest.raises(EbtkError, match="wide square"):
        normalize(g, -4.5, 4.5, 60, outer=4.0)


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
