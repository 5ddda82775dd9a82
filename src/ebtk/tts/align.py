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

import torch

from ebtk.errors import EbtkError


@torch.no_grad()
def maximum_path(logp: torch.Tensor, text_lengths: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
    """Hard monotonic alignment.

    shape: logp (B, N, T) float; text_lengths (B,), mel_lengths (B,) ints -> path (B, N, T) float in {0, 1}
    with path[b].sum(0) == 1 on the first mel_lengths[b] frames and 0 elsewhere.
    """
    if logp.dim() != 3:
        raise EbtkError(f"maximum_path wants logp of shape (B, N, T), got {tuple(logp.shape)}")
    b, n, t = logp.shape
    device = logp.device
    tx = text_lengths.to(device=device, dtype=torch.long)
    ty = mel_lengths.to(device=device, dtype=torch.long)
    if bool((tx < 1).any()) or bool((ty < tx).any()):
        bad = int(torch.nonzero((ty < tx) | (tx < 1))[0, 0])
        raise EbtkError(
            f"cannot align item {bad}: {int(tx[bad])} phonemes but {int(ty[bad])} frames "
            "(every phoneme needs at least one frame); hint: drop utterances that are too short"
        )
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
