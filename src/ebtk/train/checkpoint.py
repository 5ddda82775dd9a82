"""Atomic, fully resumable checkpoints.

Writes go to a temporary file in the same directory, are fsynced, then renamed over the target, so a
crash (even kill -9) leaves either the old or the new checkpoint, never a torn one. Loading uses
`weights_only=True`, so a checkpoint cannot run code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ebtk.errors import EbtkError

FORMAT_VERSION = 1


def _atomic_write(path: Path, write: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    state = {"format_version": FORMAT_VERSION, **state}
    _atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint; a missing, truncated or foreign file is a one-line EbtkError."""
    path = Path(path)
    if not path.is_file():
        raise EbtkError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        msg = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise EbtkError(f"corrupt or unreadable checkpoint {path}: {msg}") from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise EbtkError(f"{path} is not an ebtk checkpoint")
    return state
