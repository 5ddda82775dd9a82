"""Typed dataclass configs, YAML files and dotted `key=value` overrides.

The resolved config is a plain nested dict of sections; each component turns its own section into its
own dataclass with `from_dict`, which rejects unknown keys and coerces types, so a typo is an error, not
silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ebtk.errors import EbtkError

T = TypeVar("T")


@dataclass
class TrainConfig:
    """Trainer settings shared by every task and objective."""

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 10.0  # 0 disables clipping
    log_every: int = 25
    ckpt_every: int = 250
    eval_every: int = 0  # 0: evaluate only at the end; else also every eval_every steps, rows in eval_curve.jsonl
    # split of those periodic evaluations (a learning curve on val while the final metrics.json scores test);
    # "": the task's eval.split
    eval_split: str = ""
    seed: int = 0
    device: str = "cpu"
    amp: bool = False  # bf16 autocast around the loss (CUDA; CPU: fast only with AMX / AVX512-BF16)
    max_abs_energy: float = 1e5  # divergence guard: |E| beyond this stops training with a hint
    threads: int = 0  # torch intra-op threads on CPU; 0 leaves torch's default
    compile: bool = False  # torch.compile the energy/score evaluation of the loss and of Langevin steps
    time_budget: float = 0.0  # seconds of training (resumes included) after which the run ends; 0: steps only
    keep_every: int = 0  # also keep the checkpoint of every keep_every-th step in snapshots/ (curves); 0: none

    def validate(self) -> None:
        """Check the settings.

        Raises:
            EbtkError: a value out of range; the message names the key.
        """
        _positive(self, "steps", "batch_size", "lr", "log_every", "ckpt_every")
        if self.time_budget < 0 or self.keep_every < 0 or self.eval_every < 0:
            raise EbtkError("train.time_budget, train.keep_every and train.eval_every must be ≥ 0")
        if self.eval_split not in ("", "val", "test"):
            raise EbtkError(f"train.eval_split must be val, test or empty, got {self.eval_split!r}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise EbtkError(f"train.device must be cpu or cuda, got {self.device!r}")


@dataclass
class SamplerConfig:
    """Langevin / SGLD settings: x ← x + η·s(x) + noise_scale·√(2η)·ξ (cd, pcd, sa-nce; ``sampler.*`` keys).

    Give it to `ebtk.objective` as ``sampler=SamplerConfig(...)`` or as a dict of these fields.

    Attributes:
        steps: Langevin steps per draw.
        step_size: η.
        noise_scale: multiplier of the √(2η) noise (1 = exact unadjusted Langevin).
        init: where chains start in the tasks: ``gaussian``, ``uniform`` or ``data`` (the task sets the
            scale; library users pass ``init=`` to `ebtk.objective` instead).
        persistent: keep chains in a replay buffer (PCD-style) instead of short-run chains from init.
        buffer_size: replay buffer size (persistent chains).
        reinit: fraction of persistent chains restarted from init noise per draw, in [0, 1].
        clip: clamp samples to [−clip, clip] after each step; 0 disables.
    """

    steps: int = 60
    step_size: float = 0.01
    noise_scale: float = 1.0
    init: str = "gaussian"  # gaussian | uniform | data (the task defines the scale)
    persistent: bool = False  # replay buffer (PCD-style chains) instead of short-run chains
    buffer_size: int = 10000
    reinit: float = 0.05  # fraction of persistent chains restarted from init noise per draw
    clip: float = 0.0  # clamp samples to [-clip, clip] after each step; 0 disables

    def validate(self) -> None:
        """Check the settings.

        Raises:
            EbtkError: a value out of range; the message names the key.
        """
        _positive(self, "steps", "step_size", "buffer_size")
        if self.noise_scale < 0 or not 0 <= self.reinit <= 1:
            raise EbtkError("sampler.noise_scale must be ≥ 0 and sampler.reinit in [0, 1]")
        if self.init not in ("gaussian", "uniform", "data"):
            raise EbtkError(f"sampler.init must be gaussian, uniform or data, got {self.init!r}")


def _positive(obj: Any, *names: str) -> None:
    prefix = type(obj).__name__.replace("Config", "").lower()
    for n in names:
        v = getattr(obj, n)
        if v <= 0:
            raise EbtkError(f"{prefix}.{n} must be > 0, got {v}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = type(None) in typing.get_args(tp)
        if value is None or (optional and isinstance(value, str) and value.lower() in ("never", "inf", "none")):
            return None  # `int | None` fields spell "no limit" as never / inf / null
        return _coerce(value, args[0], key)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            value = [value]
        (inner, *_) = typing.get_args(tp) or (Any,)
        out = [_coerce(v, inner, key) for v in value]
        return tuple(out) if origin is tuple else out
    if tp is Any or tp is None:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes", "on"):
                    return True
                if value.lower() in ("false", "0", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) else int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise EbtkError(f"{key}: expected {getattr(tp, '__name__', tp)}, got {value!r}") from None
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, section: str = "") -> T:
    """Build dataclass `cls` from `data`; unknown keys and wrong types are EbtkErrors naming the key."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        where = f"{section}." if section else ""
        raise EbtkError(f"unknown config key {where}{unknown[0]}; known: {', '.join(sorted(known))}")
    kwargs = {k: _coerce(v, hints[k], f"{section}.{k}" if section else k) for k, v in data.items()}
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass config as a plain dict (tuples as lists), as stored in config.yaml."""
    d = dataclasses.asdict(obj)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict.

    Raises:
        EbtkError: the file is missing, unreadable, not YAML, or not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise EbtkError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise EbtkError(f"malformed YAML in {p}{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EbtkError(f"config file {p} must hold a mapping at the top level")
    return data


def merge(base: dict[str, Any], new: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Deep-merge `new` into a copy of `base`; a key that `base` lacks is an error (typo guard)."""
    out = dict(base)
    for k, v in new.items():
        key = f"{path}{k}"
        if k not in out:
            raise EbtkError(f"unknown config key {key}")
        if isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = merge(out[k], v, key + ".")
        elif isinstance(out[k], dict):
            raise EbtkError(f"config key {key} is a section, not a value")
        else:
            out[k] = v
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["a.b=1", "c=x"]` → nested dict, values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item or item.startswith("="):
            raise EbtkError(f"bad override {item!r}: expected key=value, e.g. train.lr=1e-3")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string; users mean a number
            try:
                value = float(value) if value.strip().lower() not in ("inf", "nan", "-inf") else value
            except ValueError:
                pass
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise EbtkError(f"bad override {item!r}: {p} set twice")
        node[parts[-1]] = value
    return out


@dataclass
class RunSpec:
    """What `ebtk train` was asked for, before resolution."""

    task: str
    objective: str
    config_file: str | None = None
    overrides: list[str] = field(default_factory=list)


def save_yaml(data: dict[str, Any], path: Path) -> None:
    """Write `data` as YAML to `path` atomically, keys in their order."""
    from ebtk.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
