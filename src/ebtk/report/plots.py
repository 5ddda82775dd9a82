"""Reusable plots, written straight to PNG files.

Figures are built as `matplotlib.figure.Figure` objects rather than through pyplot: no global figure
registry (nothing to close or leak in long runs), no GUI backend, and safe in worker processes. The
canvas is Agg. Every helper creates the parent folder and returns the written Path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ebtk.io import atomic_path

ArrayLike = Any  # numpy array or torch tensor


def _np(a: ArrayLike) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().float().cpu().numpy()
    return np.asarray(a)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    p = Path(path)
    save_figure(fig, p, bbox_inches="tight")
    return p


def save_figure(fig: Any, path: str | Path, **savefig_kwargs: Any) -> Path:
    """`fig.savefig` through `ebtk.io.atomic_path`: no torn PNG on a crash, and the normal file mode
    (savefig's own open() would give that too, but not atomically). The temp name keeps the extension,
    so matplotlib still picks the format from it."""
    p = Path(path)
    with atomic_path(p, suffix=p.suffix or ".png") as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    return p


def _scatter_panel(ax: Any, samples: ArrayLike, data: ArrayLike | None, lo: float, hi: float) -> None:
    if data is not None:
        d = _np(data)
        ax.scatter(d[:, 0], d[:, 1], s=2, c="0.75", alpha=0.5, linewidths=0, label="data")
    s = _np(samples)
    ax.scatter(s[:, 0], s[:, 1], s=2, c="tab:blue", alpha=0.6, linewidths=0, label="samples")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4, fontsize=7)


def density_and_samples(
    field: ArrayLike,
    lo: float,
    hi: float,
    samples: ArrayLike,
    path: str | Path,
    data: ArrayLike | None = None,
    field_title: str = "model density exp(−E)/Z",
    title: str | None = None,
) -> Path:
    """Two panels for 2-D models: a field on the grid (n, n), row = y, and samples (N, 2) over data (M, 2).

    `field` is whatever should be shown on the grid: the normalised density, or |score| for score models.
    """
    fig = _figure(10, 4.6)
    ax0, ax1 = fig.subplots(1, 2)
    im = ax0.imshow(_np(field), origin="lower", extent=(lo, hi, lo, hi), cmap="viridis", aspect="equal")
    fig.colorbar(im, ax=ax0, fraction=0.046, pad=0.04)
    ax0.set_title(field_title)
    _scatter_panel(ax1, samples, data, lo, hi)
    ax1.set_title("Langevin samples over data")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def scatter(
    samples: ArrayLike,
    path: str | Path,
    data: ArrayLike | None = None,
    lo: float = -4.5,
    hi: float = 4.5,
    title: str | None = None,
) -> Path:
    """Scatter plot of 2-D samples (N, 2), optionally over data (M, 2), in the box [lo, hi]²."""
    fig = _figure(5, 5)
    ax = fig.subplots()
    _scatter_panel(ax, samples, data, lo, hi)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def image_grid(x: ArrayLike, path: str | Path, nrow: int = 8, title: str | None = None) -> Path:
    """Tile images x (N, 1, H, W) (or (N, H, W)) with values in [−1, 1] into a grid of `nrow` per row."""
    a = _np(x)
    if a.ndim == 4:
        a = a[:, 0]
    n, h, w = a.shape
    ncol = max(1, min(nrow, n))
    rows = math.ceil(n / ncol)
    canvas = np.full((rows * (h + 1) + 1, ncol * (w + 1) + 1), -1.0, dtype=np.float32)
    for k in range(n):
        r, c = divmod(k, ncol)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = a[k]
    fig = _figure(max(2.0, ncol * 0.6), max(2.0, rows * 0.6))
    ax = fig.subplots()
    ax.imshow(np.clip(canvas, -1, 1), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def line_plot(
    xs: Sequence[float],
    ys_by_label: Mapping[str, Sequence[float]],
    path: str | Path,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    title: str | None = None,
) -> Path:
    """One line per label over shared x values, e.g. a metric against SA-NCE's refresh interval K."""
    fig = _figure(6, 4)
    ax = fig.subplots()
    for label, ys in ys_by_label.items():
        ax.plot(list(xs), list(ys), marker="o", label=label)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(ys_by_label) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    return _save(fig, path)


def mel_plot(mels: Mapping[str, ArrayLike], path: str | Path, title: str | None = None) -> Path:
    """Stacked log-mel spectrograms, each (n_mels, T), on one shared colour scale (for comparison)."""
    arrays = {k: _np(v) for k, v in mels.items()}
    if not arrays:
        raise ValueError("mel_plot needs at least one spectrogram")
    vmin = min(float(a.min()) for a in arrays.values())
    vmax = max(float(a.max()) for a in arrays.values())
    tmax = max(a.shape[1] for a in arrays.values())
    fig = _figure(max(6.0, tmax / 60), 2.2 * len(arrays))
    fig.set_layout_engine("constrained")  # titles clear of the panel above
    axes = np.atleast_1d(fig.subplots(len(arrays), 1, squeeze=False)[:, 0])
    for ax, (label, a) in zip(axes, arrays.items()):
        im = ax.imshow(a, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax)
        ax.set_xlim(0, tmax)
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("mel bin")
    axes[-1].set_xlabel("frame")
    fig.colorbar(im, ax=list(axes), fraction=0.02, pad=0.01)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
