"""Unbiased squared maximum mean discrepancy (MMD²) between two samples.

Kernel: an average of Gaussian kernels k(x, y) = mean_h exp(−‖x − y‖² / (2h²)), so k(x, x) = 1 and
MMD² ≤ 2. By default the bandwidths are the median heuristic (median pairwise distance of the pooled
sample) times (0.5, 1, 2): one fixed bandwidth is blind to differences at other scales, and the mixture
keeps the metric sensitive both to mode placement and to within-mode spread without per-dataset tuning.
Pass `bandwidths` to fix them when numbers must be compared across runs (the median moves with the samples).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ebtk.errors import EbtkError

MEDIAN_FACTORS = (0.5, 1.0, 2.0)


def median_bandwidth(x: torch.Tensor, y: torch.Tensor, max_points: int = 1000) -> float:
    """Median pairwise Euclidean distance of the pooled sample (evenly strided subsample of ≤ max_points)."""
    z = torch.cat([x.flatten(1), y.flatten(1)]).double()
    if z.shape[0] > max_points:
        z = z[torch.linspace(0, z.shape[0] - 1, max_points, device=z.device).long()]
    d = torch.cdist(z, z)
    iu = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
    med = float(d[iu[0], iu[1]].median())
    return med if med > 0 else 1.0


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, inv2h2: torch.Tensor, block: int) -> torch.Tensor:
    """Σ_ij k(a_i, b_j) in float64, computed in row blocks so memory stays O(block · len(b))."""
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for i in range(0, a.shape[0], block):
        d2 = torch.cdist(a[i : i + block], b).square_().unsqueeze(-1)  # (blk, Nb, 1)
        total += torch.exp(-d2 * inv2h2).mean(-1).sum()
    return total


@torch.no_grad()
def mmd2(
    x: torch.Tensor,
    y: torch.Tensor,
    bandwidths: Sequence[float] | None = None,
    block: int = 1024,
) -> float:
    """Unbiased MMD²(x, y) for x (N, *D) and y (M, *D), flattened to vectors; N, M ≥ 2.

    Unbiased: the diagonal terms k(x_i, x_i) are left out, so the estimate is ≈ 0 (and may be slightly
    negative) when x and y come from the same distribution. Bandwidths: median heuristic × (0.5, 1, 2)
    unless given. Computed in float64 on x's device.
    """
    x = x.detach().flatten(1).double()
    y = y.detach().flatten(1).double().to(x.device)
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2 or x.shape[1] != y.shape[1]:
        raise EbtkError(
            "mmd2 needs two samples of ≥ 2 points with the same dimension; "
            f"got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if bandwidths is None:
        med = median_bandwidth(x, y)
        bandwidths = [f * med for f in MEDIAN_FACTORS]
    h = torch.tensor(list(bandwidths), dtype=torch.float64, device=x.device)
    if (h <= 0).any():
        raise EbtkError(f"mmd2 bandwidths must be > 0, got {list(bandwidths)}")
    inv2h2 = 1.0 / (2 * h**2)
    kxx = (_kernel_sum(x, x, inv2h2, block) - n) / (n * (n - 1))  # minus the diagonal, k(x, x) = 1
    kyy = (_kernel_sum(y, y, inv2h2, block) - m) / (m * (m - 1))
    kxy = _kernel_sum(x, y, inv2h2, block) / (n * m)
    return float(kxx + kyy - 2 * kxy)
