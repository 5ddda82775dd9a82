"""Fréchet distance and KID for 8×8 digits, in the feature space of a small classifier shipped with ebtk.

Inception features are the usual choice for images, but they need a hub download and are meaningless at
8×8. Instead a small conv classifier, trained on sklearn's bundled `load_digits` (train split only, fixed
seed), is shipped as ``ebtk/data/digits_classifier.pt``; its penultimate layer gives the features. If the
file is missing it is retrained (deterministically, ~30 s on one CPU core) and cached in ~/.cache/ebtk.

Images are (B, 1, 8, 8) in [−1, 1] (pixel/16·2−1), the scale of the `digits` task.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ebtk.errors import EbtkError
from ebtk.io import atomic_path

FEATURE_DIM = 64
SHIPPED = Path(__file__).resolve().parent.parent / "data" / "digits_classifier.pt"
# The classifier is trained on the train part of this split; the `digits` task uses the same default
# split, so its held-out test digits are unseen by the feature extractor.
SPLIT_TEST_FRACTION = 0.2
SPLIT_SEED = 0


def digits_split(
    test_fraction: float = SPLIT_TEST_FRACTION, seed: int = SPLIT_SEED
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Deterministic stratified split of sklearn's digits: x_train (N,1,8,8) in [−1,1], y_train (N,), x_test, y_test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise EbtkError(f"data.test_fraction must be in (0, 1), got {test_fraction}; e.g. 0.2")
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0 * 2.0 - 1.0)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_fraction, random_state=seed, stratify=d.target)
    return (torch.from_numpy(xtr), torch.from_numpy(ytr).long(), torch.from_numpy(xte), torch.from_numpy(yte).long())


class DigitClassifier(nn.Module):
    """Conv classifier for (B, 1, 8, 8) digits; `features` is the (B, 64) penultimate activation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4×4
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 2×2
        )  # fmt: skip
        self.fc = nn.Linear(64 * 4, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, 10)
        # Fixed after training so that E‖f‖²/D = 1 on training digits: KID's cubic kernel (xᵀy/D + 1)³
        # assumes features of order one (as Inception's are), otherwise it is dominated by a few norms.
        self.register_buffer("feature_scale", torch.ones(()))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 8, 8) → (B, 64)."""
        return F.relu(self.fc(self.conv(x).flatten(1))) * self.feature_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 10)."""
        return self.head(self.fc_out(x))

    def fc_out(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.conv(x).flatten(1)))


def train_classifier(epochs: int = 40, seed: int = 0, verbose: bool = False) -> DigitClassifier:
    """Train the feature classifier on the digits train split; deterministic for a given seed.

    Inputs get random 1-pixel shifts and small Gaussian noise, so that the features stay meaningful on
    slightly noisy or misplaced generated digits rather than only on the exact training pixels.
    """
    xtr, ytr, _, _ = digits_split()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = DigitClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    n = xtr.shape[0]
    for ep in range(epochs):
        perm = torch.randperm(n, generator=gen)
        net.train()
        for i in range(0, n, 64):
            idx = perm[i : i + 64]
            x = _augment(xtr[idx], gen)
            loss = F.cross_entropy(net(x), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if verbose:
            print(f"epoch {ep + 1}: loss {loss.item():.4f}")
    net.eval()
    with torch.no_grad():
        f = net.fc_out(xtr)
        net.feature_scale.fill_(float(f.pow(2).sum(1).mean() / FEATURE_DIM) ** -0.5)
    return net


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shift by up to one pixel (background −1 fills in) plus N(0, 0.05²) noise."""
    b = x.shape[0]
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx, dy = torch.randint(0, 3, (2, b), generator=gen)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8] for i in range(b)])
    return (out + 0.05 * torch.randn(out.shape, generator=gen)).clamp(-1, 1)


def _cache_path() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "ebtk" / "digits_classifier.pt"


_MODEL: DigitClassifier | None = None


def load_classifier() -> DigitClassifier:
    """The shipped classifier (or a cached retrained one if the shipped file is missing), in eval mode."""
    global _MODEL
    if _MODEL is not None:
        return _MODEL
    net = DigitClassifier()
    for path in (SHIPPED, _cache_path()):
        if path.is_file():
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            break
    else:
        with _one_thread():
            net = train_classifier()
        with atomic_path(_cache_path()) as tmp:
            torch.save(net.state_dict(), tmp)
    for p in net.parameters():
        p.requires_grad_(False)
    _MODEL = net.eval()
    return _MODEL


class _one_thread:
    def __enter__(self) -> None:
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.n)


class DigitFeatures:
    """Callable: images (B, 1, 8, 8) in [−1, 1] → float64 numpy features (B, 64)."""

    def __init__(self) -> None:
        self.net = load_classifier()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        x = _as_images(images)
        feats = [self.net.features(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return torch.cat(feats).double().numpy()


def _as_images(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(images).detach().float().cpu()
    if x.ndim == 2 and x.shape[1] == 64:
        x = x.view(-1, 1, 8, 8)
    if x.ndim == 3 and x.shape[1:] == (8, 8):
        x = x[:, None]
    if x.ndim != 4 or x.shape[1:] != (1, 8, 8):
        raise EbtkError(f"digit images must be (B, 1, 8, 8), got {tuple(x.shape)}; scale pixels to [-1, 1]")
    if not torch.isfinite(x).all():
        raise EbtkError("digit images contain NaN/inf; the sampler probably diverged (lower sampler.step_size)")
    return x


def frechet_from_moments(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """‖μ₁−μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁^½ Σ₂ Σ₁^½)^½): the W₂² distance between two Gaussians.

    Computed through symmetric eigendecompositions (negative round-off eigenvalues clipped to 0), which
    stays real and stable for singular covariances where a general `sqrtm(Σ₁Σ₂)` can turn complex.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    cov1, cov2 = (cov1 + cov1.T) / 2, (cov2 + cov2.T) / 2
    w, v = np.linalg.eigh(cov1)
    s1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = s1 @ cov2 @ s1
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    fd = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * cross)
    return max(fd, 0.0)


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets (Na, D) and (Nb, D)."""
    a, b = _feats(feat_a), _feats(feat_b)
    return frechet_from_moments(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def kid(feat_a: np.ndarray, feat_b: np.ndarray, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> float:
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with k(x,y) = (xᵀy/D + 1)³.

    Averaged over `n_subsets` random subsets of min(subset_size, Na, Nb) points per set; unbiased, so it
    can be slightly negative when both sets come from one distribution.
    """
    a, b = _feats(feat_a), _feats(feat_b)
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise EbtkError("KID needs at least 2 samples per set; raise eval.n_samples")
    d = a.shape[1]
    rng = np.random.default_rng(seed)

    def members(n: int) -> np.ndarray:  # (n_subsets, n) 0/1 indicators of the random subsets
        w = np.zeros((n_subsets, n))
        for row in w:
            row[rng.choice(n, m, replace=False)] = 1.0
        return w

    # Kernel matrices once over all points; subset sums are then wᵀKv with indicator vectors w, v.
    kaa, kbb, kab = ((u @ v.T / d + 1) ** 3 for u, v in ((a, a), (b, b), (a, b)))
    wa, wb = members(a.shape[0]), members(b.shape[0])
    sxx = ((wa @ kaa) * wa).sum(1) - wa @ np.diag(kaa)
    syy = ((wb @ kbb) * wb).sum(1) - wb @ np.diag(kbb)
    sxy = ((wa @ kab) * wb).sum(1)
    total = ((sxx + syy) / (m * (m - 1)) - 2 * sxy / m**2).sum()
    return float(total / n_subsets)


def _feats(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise EbtkError(f"features must be (N, D) with N ≥ 2, got shape {f.shape}")
    return f


def fd_kid(images_a: torch.Tensor, images_b: torch.Tensor) -> tuple[float, float]:
    """(FD, KID) between two image sets (Na, 1, 8, 8) and (Nb, 1, 8, 8) in [−1, 1]."""
    feat = DigitFeatures()
    fa, fb = feat(images_a), feat(images_b)
    return frechet_distance(fa, fb), kid(fa, fb)
