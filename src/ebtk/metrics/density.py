"""Exact densities of 2-D models: the model's mass over the whole plane, by quadrature.

In two dimensions Z_θ = ∫ exp(−E_θ(x)) dx can be computed to high accuracy, which turns an EBM into a
normalised density: test NLL and KL(data‖model) become exact up to the quadrature error, instead of the
sample-based proxies that higher dimensions force on us.

The data live in a box [lo, hi]², but the model's mass need not: an energy kept flat by an α·E²
regulariser leaves a few percent of exp(−E) outside it, and a box-only Z makes such a model's NLL too low.
So Z is the mass over the plane (`normalize`): a fine grid on the box (the same cells that the data term,
the KL and the plots use), square rings of growing width out to a wide square, and a tail beyond it.

Grid layout (shared by every function here): cell centres over [lo, hi]², `points[i, j] = (x_j, y_i)`
with shape (n, n, 2), so `logp[i, j]` has row = y and column = x, ready for `imshow(origin="lower")`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ebtk.energy import unwrap
from ebtk.errors import EbtkError

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


def grid_points(lo: float, hi: float, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Cell centres of an n×n grid over [lo, hi]²: (n, n, 2), points[i, j] = (x_j, y_i)."""
    if not hi > lo or n < 2:
        raise EbtkError(f"grid needs hi > lo and n ≥ 2, got lo={lo}, hi={hi}, n={n}")
    h = (hi - lo) / n
    c = torch.linspace(lo + h / 2, hi - h / 2, n, device=device, dtype=torch.float64).float()
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx, yy], dim=-1)


def cell_area(lo: float, hi: float, n: int) -> float:
    return ((hi - lo) / n) ** 2


def _device_of(fn: EnergyFn | nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(fn, nn.Module):
        p = next(fn.parameters(), None)
        if p is not None:
            return p.device
    return torch.device("cpu")


@torch.no_grad()
def batched_eval(fn: EnergyFn | nn.Module, x: torch.Tensor, batch_size: int = 16384) -> torch.Tensor:
    """fn applied to x (N, D) in chunks, without a graph: (N,) in float64 on x's device."""
    if isinstance(fn, nn.Module):
        net = unwrap(fn)
        fn = lambda v: net(v)  # noqa: E731 - the bare module, so DDP hooks never fire during evaluation
    out = [fn(x[i : i + batch_size]).double() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out) if out else x.new_zeros(0, dtype=torch.float64)


#: Half-width of the wide square (around the box centre) that the rings cover; the tail lies beyond it.
OUTER = 60.0
#: Outer rings: the first is one box cell wide, each next one `RING_GROWTH`× wider, with `RING_NODES`
#: Gauss–Legendre nodes across each ring (exact for polynomials of degree 2·RING_NODES − 1 along a ray).
RING_GROWTH = 1.5
RING_NODES = 3
#: The tail's slope along each ray is the chord of E over [R, (1 + TAIL_STEP)·R].
TAIL_STEP = 0.125


@dataclass(frozen=True)
class Normalization:
    """The model's normaliser and its split between the data box, the rings and the tail.

    log_z: log ∫ exp(−E) over the plane (rays along which E stops rising are cut at the wide square; see
    `improper`). log_z_box: log of the mass inside [lo, hi]² alone (the old box-only normaliser).
    mass_outside: fraction of the mass outside the box, 1 − Z_box / Z. mass_tail: fraction beyond the wide
    square (the extrapolated tail). improper: fraction of ray directions along which E does not rise at
    the wide square, so the model has Z = ∞ on the plane; those rays are cut there, and log_z is then that
    of the model restricted to the wide square along them. points (n, n, 2): the box's cell centres;
    logp (n, n): −E − log_z on them, float64.
    """

    log_z: float
    log_z_box: float
    mass_outside: float
    mass_tail: float
    improper: float
    points: torch.Tensor
    logp: torch.Tensor


def _check(e: torch.Tensor, where: str) -> None:
    if torch.isnan(e).any() or (e == -math.inf).any():
        raise EbtkError(f"the energy is NaN or −inf {where}; the model has diverged")


def _ring_nodes(inner: float, outer: float, first: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Radial nodes and weights (float64) over [inner, outer]: rings `first`·RING_GROWTH^k wide, rescaled to
    end at `outer`, with RING_NODES Gauss–Legendre nodes each. Widths grow with the distance from the box,
    where the mass thins out, so the count grows only with log(outer / first)."""
    widths = [first]
    while sum(widths) < outer - inner:
        widths.append(widths[-1] * RING_GROWTH)
    w = torch.tensor(widths, dtype=torch.float64) * ((outer - inner) / sum(widths))
    edges = inner + torch.cat([w.new_zeros(1), w.cumsum(0)])
    edges[-1] = outer
    x, wq = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(RING_NODES))
    half = (edges[1:] - edges[:-1])[:, None] / 2
    return ((edges[:-1, None] + half) + half * x).flatten(), (half * wq).flatten()


def _square_directions(n_side: int) -> torch.Tensor:
    """Midpoints of `n_side` equal pieces of each side of the unit square's boundary: (4·n_side, 2), float64.

    A point x = centre + t·p with |p|∞ = 1 has dx = t dt dσ, σ the arc length along that boundary, so
    each direction carries the angular weight 2 / n_side (a side is 2 long)."""
    u = torch.linspace(-1 + 1 / n_side, 1 - 1 / n_side, n_side, dtype=torch.float64)
    one = torch.ones_like(u)
    return torch.cat([torch.stack(s, 1) for s in ((one, u), (-one, u), (u, one), (u, -one))])


def normalize(
    energy_fn: EnergyFn | nn.Module,
    lo: float,
    hi: float,
    n: int,
    outer: float = OUTER,
    device: torch.device | str | None = None,
    batch_size: int = 16384,
) -> Normalization:
    """Z = ∫ exp(−E) over the plane for a 2-D energy E: (B, 2) -> (B,), in three parts.

    * the box [lo, hi]²: midpoint rule on n×n cells (these cells give `logp`, for the KL and the plots);
    * square rings around the box centre c, from the box out to [c − outer, c + outer]²: in the coordinates
      x = c + t·p (|p|∞ = 1), with 4n directions p (so the spacing at the box edge is one box cell) and
      Gauss–Legendre nodes in t on rings one cell wide at the box, growing geometrically outwards;
    * the tail beyond: an *estimate*, not a bound. Along each ray E is extrapolated linearly in t from its
      values at t = R and (1 + TAIL_STEP)·R (R = outer), so that ∫_R^∞ exp(−E) t dt = exp(−E(R))·(R/β + 1/β²).
      That is how an MLP energy behaves far from the data (every SiLU/ReLU unit ends up linear along a
      ray: on trained toy2d nets each ray's slope over [60, 67.5] is within 2.5% of its slope over
      [10³, 10⁴]), while a bound would need what a black-box energy cannot give, its behaviour out to
      infinity. The tail holds ~1e-8 of the mass of 800-step CD/PCD toy2d runs. Where E does not rise at R
      (β ≤ 0: an untrained MLP, or a plateau) Z is infinite on the plane; such rays are cut at R and counted
      in `improper`, so that the NLL of a barely trained model stays finite (and large).

    `energy_fn` is a model (evaluated on its own device) or a callable (evaluated on `device`). The data
    term of an NLL uses E itself, so only log Z depends on this; the box cells are the old grid's.
    """
    if not outer > (hi - lo) / 2:
        raise EbtkError(f"the wide square must contain the box: outer={outer} for the box [{lo}, {hi}]²")
    dev = _device_of(energy_fn, device)
    pts = grid_points(lo, hi, n, dev)
    e_box = batched_eval(energy_fn, pts.reshape(-1, 2), batch_size).reshape(n, n)
    _check(e_box, "on the evaluation grid")
    log_z_box = float(torch.logsumexp(-e_box.flatten(), 0)) + math.log(cell_area(lo, hi, n))

    centre, half = (hi + lo) / 2, (hi - lo) / 2
    dirs = _square_directions(n).to(dev)  # (4n, 2)
    dsig = 2.0 / n
    t, wt = (a.to(dev) for a in _ring_nodes(half, outer, (hi - lo) / n))
    ring_x = centre + t[:, None, None] * dirs[None]  # (T, 4n, 2)
    e_ring = batched_eval(energy_fn, ring_x.reshape(-1, 2).float(), batch_size).reshape(len(t), -1)
    _check(e_ring, "beyond the evaluation box")
    log_w = (wt * t * dsig).log()[:, None]
    log_z_ring = torch.logsumexp((log_w - e_ring).flatten(), 0)

    edge = centre + torch.stack([outer * dirs, (1 + TAIL_STEP) * outer * dirs])  # (2, 4n, 2)
    e_r, e_r2 = batched_eval(energy_fn, edge.reshape(-1, 2).float(), batch_size).reshape(2, -1)
    _check(torch.cat([e_r, e_r2]), "beyond the evaluation box")
    beta = (e_r2 - e_r) / (TAIL_STEP * outer)  # dE/dt along each ray; +inf where E is +inf beyond R
    rises = beta > 0
    live = torch.isfinite(e_r) & rises & torch.isfinite(beta)
    b = beta[live]
    log_tail = torch.logsumexp(-e_r[live] + (outer / b + 1 / b.square()).log() + math.log(dsig), 0)
    improper = float((torch.isfinite(e_r) & ~rises).double().mean())

    parts = torch.stack([torch.tensor(log_z_box, dtype=torch.float64, device=dev), log_z_ring, log_tail])
    log_z = float(torch.logsumexp(parts, 0))
    return Normalization(
        log_z=log_z,
        log_z_box=log_z_box,
        mass_outside=float(-math.expm1(log_z_box - log_z)),
        mass_tail=float(math.exp(float(log_tail) - log_z)),
        improper=improper,
        points=pts,
        logp=-e_box - log_z,
    )


def grid_log_normalizer(
    energy_fn: EnergyFn | nn.Module,
    lo: float,
    hi: float,
    n: int,
    device: torch.device | str | None = None,
    batch_size: int = 16384,
    outer: float = OUTER,
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(log Z, points (n, n, 2), logp (n, n)) of `normalize`: Z over the plane, logp on the box's cells."""
    r = normalize(energy_fn, lo, hi, n, outer, device, batch_size)
    return r.log_z, r.points, r.logp


def nll(model: EnergyFn | nn.Module, x: torch.Tensor, log_z: float, batch_size: int = 16384) -> float:
    """Mean negative log-likelihood −log p_θ(x) = E_θ(x) + log Z_θ over x (N, 2), in nats."""
    if isinstance(model, nn.Module):
        x = x.to(_device_of(model, None))
    return float(batched_eval(model, x, batch_size).mean()) + log_z


def kl_grid(logp_data: torch.Tensor, logp_model: torch.Tensor, cell_area: float) -> float:
    """KL(data‖model) = Σ p_data (log p_data − log p_model) dA over the grid, where p_data > 0.

    logp_data, logp_model: (n, n) log-densities on the same grid (−inf where the density is zero).
    Infinite when the model puts zero density where the data has mass.
    """
    if logp_data.shape != logp_model.shape:
        raise EbtkError(f"kl_grid: grid shapes differ, {tuple(logp_data.shape)} vs {tuple(logp_model.shape)}")
    ld, lm = logp_data.double(), logp_model.double().to(logp_data.device)
    m = torch.isfinite(ld)
    return float((ld[m].exp() * (ld[m] - lm[m])).sum() * cell_area)
