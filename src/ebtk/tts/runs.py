"""Reading tts run dirs without the trainer: their config, checkpoint and text front-end.

A run dir holds ``config.yaml``, ``checkpoint.pt`` (whose ``config`` is the one its weights were trained
with, and wins), and for acoustic / fm runs ``frontend.json`` (the symbol table). Paths inside a config are
absolute or relative to the run dir (`ebtk.io.resolve_in`), never to the caller's cwd.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ebtk.errors import EbtkError
from ebtk.io import resolve_in
from ebtk.train.checkpoint import CHECKPOINT, load_checkpoint

CONFIG = "config.yaml"
FRONTEND = "frontend.json"


def run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's config.yaml as a dict; None when there is none."""
    from ebtk.config import load_yaml

    path = Path(run_dir) / CONFIG
    return load_yaml(path) if path.is_file() else None


def read_run(run_dir: str | Path, checkpoint: str | Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, checkpoint state) of a tts run; the checkpoint's own config when it holds one. `checkpoint`:
    another checkpoint of the run (a snapshot) instead of its latest."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EbtkError(f"run dir not found: {run_dir}")
    state = load_checkpoint(Path(checkpoint) if checkpoint else run_dir / CHECKPOINT)
    config = state.get("config") or run_config(run_dir)
    if not isinstance(config, dict) or not isinstance(config.get("objective"), dict):
        raise EbtkError(f"{run_dir} is not an ebtk run dir (no usable config)")
    if config.get("task") != "tts":
        raise EbtkError(f"{run_dir} is a {config.get('task')!r} run; a tts run is needed")
    return config, state


def acoustic_run(run_dir: str | Path | None, config: dict[str, Any]) -> Path | None:
    """The `acoustic.checkpoint` run dir named by `config` (of the run in `run_dir`); None when unset."""
    p = (config.get("acoustic") or {}).get("checkpoint") or ""
    return resolve_in(run_dir, p) if p else None


def check_acoustic_run(path: str | Path) -> None:
    """`acoustic.checkpoint` must name a `tts --objective acoustic` run, not just any run dir."""
    cfg = run_config(path)
    if cfg is None:
        return
    obj = cfg.get("objective")
    kind = (cfg.get("task"), obj.get("name") if isinstance(obj, dict) else None)
    if kind != ("tts", "acoustic"):
        raise EbtkError(f"acoustic.checkpoint={path} is a {kind[0]!r} / {kind[1]!r} run, not a "
                        "`tts --objective acoustic` run")


def read_frontend_state(run_dir: str | Path) -> dict[str, Any] | None:
    """The saved text front-end (symbol table) of an acoustic / fm run; None for runs older than the file."""
    path = Path(run_dir) / FRONTEND
    return json.loads(path.read_text()) if path.is_file() else None
