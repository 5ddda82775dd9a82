"""Monotonic alignment search (Glow-TTS), vectorised in torch over the batch and the text axis.

Given per-(phoneme, frame) log-likelihoods L[b, i, j], MAS finds the monotonic, surjective path
(each frame j belongs to one phoneme, phoneme indices never decrease, every phoneme gets ≥ 1 frame,
the path starts at (0, 0) and ends at (N−1, T−1)) that maximises Σ_j L[b, i(j), j]. The DP is

    Q[i, j] = L[i, j] + max(Q[i, j−1], Q[i−1, j−1]),

one vector update per frame (a Python loop over frames only; each step covers every batch item and every
phoneme at once), then a batched backtrack from (N−1, T−1). Ties go to staying on the same phoneme,
as in Glow-TTS's Cython kernel.
"""

from __future__ import annotations

import numpy as np
import torch

from ebtk.errors import EbtkError


@torch.no_grad()
def maximum_path(logp: torch.Tensor, text_lengths: torch.Tensor, mel_lengths: torch.Tensor,
                 backend: str = "auto") -> torch.Tensor:
    """Hard monotonic alignment.

    shape: logp (B, N, T) float; text_lengths (B,), mel_lengths (B,) ints -> path (B, N, T) float in {0, 1}
    with path[b].sum(0) == 1 on the first mel_lengths[b] frames and 0 elsewhere.
    backend: "torch" (vectorised, any device), "numba" (compiled loops, CPU; about 20× faster there) or
    "auto" (numba for CPU tensors when it is installed).
    """
    if logp.dim() != 3:
        raise EbtkError(f"maximum_path wants logp of shape (B, N, T), got {tuple(logp.shape)}")
    tx = text_lengths.to(device=logp.device, dtype=torch.long)
    ty = mel_lengths.to(device=logp.device, dtype=torch.long)
    if bool((tx < 1).any()) or bool((ty < tx).any()) or bool((ty > logp.shape[2]).any()):
        bad = int(torch.nonzero((ty < tx) | (tx < 1) | (ty > logp.shape[2]))[0, 0])
        raise EbtkError(
            f"cannot align item {bad}: {int(tx[bad])} phonemes but {int(ty[bad])} frames "
            "(every phoneme needs at least one frame); hint: drop utterances that are too short"
        )
    if backend not in ("auto", "torch", "numba"):
        raise EbtkError(f"maximum_path backend must be auto, torch or numba, got {backend!r}")
    if backend == "numba" or (backend == "auto" and logp.device.type == "cpu" and _numba_kernel() is not None):
        kernel = _numba_kernel()
        if kernel is None:
            raise EbtkError("maximum_path backend=numba but numba is not installed; hint: pip install numba")
        path = np.zeros(logp.shape, dtype=np.float32)
        kernel(path, logp.detach().float().cpu().numpy(), tx.cpu().numpy(), ty.cpu().numpy())
        return torch.from_numpy(path).to(logp.device)
    return _maximum_path_torch(logp, tx, ty)


try:  # numba is optional: the torch path below works everywhere
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None


def _mas_numba_py(path, value, tx, ty):  # noqa: ANN001, ANN202
    """Per-item DP + backtrack in plain loops (compiled by numba; Glow-TTS's Cython kernel)."""
    neg = -1e30
    for b in range(value.shape[0]):
        n, t = tx[b], ty[b]
        q = np.full((n, t), neg, dtype=np.float64)
        q[0, 0] = value[b, 0, 0]
        for j in range(1, t):
            for i in range(max(0, n + j - t), min(n, j + 1)):
                stay = q[i, j - 1]
                move = q[i - 1, j - 1] if i > 0 else neg
                q[i, j] = (move if move > stay else stay) + value[b, i, j]
        i = n - 1
        for j in range(t - 1, -1, -1):
            path[b, i, j] = 1.0
            if i > 0 and (i == j or q[i - 1, j - 1] > q[i, j - 1]):
                i -= 1


_mas_numba = numba.njit(cache=True, nogil=True)(_mas_numba_py) if numba is not None else None


def _numba_kernel():  # noqa: ANN202
    return _mas_numba


def _maximum_path_torch(logp: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    b, n, t = logp.shape
    device = logp.device
    neg = torch.finfo(torch.float32).min / 4  # finite "−inf": sums of a few of them stay finite
    value = logp.float().masked_fill(torch.arange(n, device=device)[None, :, None] >= tx[:, None, None], neg)
    q = torch.full((b, n), neg, device=device)
    q[:, 0] = value[:, 0, 0]
    moved = torch.zeros((b, n, t), dtype=torch.bool, device=device)  # came from phoneme i−1 at frame j
    fill = torch.full((b, 1), neg, device=device)
    for j in range(1, t):
        prev = torch.cat([fill, q[:, :-1]], 1)
        step = prev > q
        moved[:, :, j] = step
        q = torch.where(step, prev, q) + value[:, :, j]
        q = q.clamp_min(neg)
    path = torch.zeros((b, n, t), device=device)
    idx = tx - 1
    rows = torch.arange(b, device=device)
    for j in range(t - 1, -1, -1):
        active = j < ty
        path[rows, idx, j] = active.float()
        idx = idx - (moved[rows, idx, j] & active).long()
    return path


def durations_from_alignment(path: torch.Tensor) -> torch.Tensor:
    """Frames per phoneme. shape: path (B, N, T) -> (B, N) long; sums to each item's frame count."""
    return path.sum(-1).round().long()


def alignment_from_durations(durations: torch.Tensor, max_frames: int | None = None) -> torch.Tensor:
    """Inverse of `durations_from_alignment`: the hard path of consecutive runs.

    shape: durations (B, N) ints ≥ 0 -> path (B, N, T) with T = max_frames or the largest total.
    """
    d = durations.long().clamp_min(0)
    ends = d.cumsum(1)  # (B, N)
    t = int(ends.max()) if max_frames is None else int(max_frames)
    frames = torch.arange(t, device=d.device)[None, None, :]
    return ((frames < ends[:, :, None]) & (frames >= (ends - d)[:, :, None])).float()


def gaussian_logp(mu: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log N(y_j; μ_i, I) up to a constant, for every (phoneme i, frame j).

    shape: mu (B, C, N), y (B, C, T) -> (B, N, T). One matmul: −½‖y_j‖² + μ_iᵀy_j − ½‖μ_i‖².
    """
    return (
        torch.einsum("bcn,bct->bnt", mu, y)
        - 0.5 * mu.pow(2).sum(1)[:, :, None]
        - 0.5 * y.pow(2).sum(1)[:, None, :]
    )
