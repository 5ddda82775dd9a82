"""Atomic, fully resumable checkpoints.

Writes go through `ebtk.io.atomic_write` (temp file, fsync, rename, normal mode), so a crash (even
kill -9) leaves either the old or the new checkpoint, never a torn one. Loading uses
`weights_only=True`, so a checkpoint cannot run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ebtk.errors import EbtkError
from ebtk.io import atomic_write, load_torch

FORMAT_VERSION = 1
CHECKPOINT = "checkpoint.pt"  # a run dir's latest checkpoint (resume reads it)
SNAPSHOTS = "snapshots"  # a run dir's kept checkpoints (`train.keep_every`), for learning curves


def snapshot_path(run_dir: Path, step: int) -> Path:
    """Where the kept checkpoint of `step` lives in a run dir."""
    return Path(run_dir) / SNAPSHOTS / f"step-{step:07d}.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    state = {"format_version": FORMAT_VERSION, **state}
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint; a missing, truncated or foreign file is a one-line EbtkError."""
    path = Path(path)
    if not path.is_file():
        raise EbtkError(f"checkpoint not found: {path}")
    state = load_torch(path, "checkpoint", map_location)
    if not isinstance(state, dict) or "format_version" not in state:
        raise EbtkError(f"{path} is not an ebtk checkpoint")
    return state
