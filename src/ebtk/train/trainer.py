"""The one training loop: every task × objective goes through `Trainer.fit`.

It owns the device, seeding, the optimiser, gradient clipping, AMP, tqdm, TensorBoard, periodic
evaluation, divergence guards and atomic checkpoints with resume (re-running the same command
continues from `checkpoint.pt`).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ebtk.config import (
    SamplerConfig,
    TrainConfig,
    from_dict,
    load_yaml,
    merge,
    parse_overrides,
    save_yaml,
    to_dict,
)
from ebtk.energy import unwrap
from ebtk.errors import EbtkError, one_line
from ebtk.io import atomic_write_text, lock_run_dir
from ebtk.objectives import Objective, objective_class
from ebtk.tasks.base import Task, build_task, task_class
from ebtk.train.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint, snapshot_path
from ebtk.train.distributed import DistInfo, broadcast_flag, cleanup, init_distributed

COMPILED_LOSS = ("cd", "pcd", "sa-nce", "nce")
"""Objectives whose loss evaluates E_θ first-order only: `train.compile` compiles their model call.
(The others still get compiled Langevin steps where they sample.)"""


def resolve_config(
    task: str, objective: str, config_file: str | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    """Defaults (trainer, sampler, objective, task) ← task's per-objective tweaks ← YAML ← key=value.

    Every section is validated by building its dataclass, so a bad value fails here, before anything
    is written to the run dir.
    """
    tcls = task_class(task)
    ocls = objective_class(objective)
    cfg: dict[str, Any] = {
        "task": task,
        "objective": {"name": objective, **ocls.default_section()},
        "train": to_dict(TrainConfig()),
        "sampler": to_dict(SamplerConfig()),
        **{k: to_dict(c()) for k, c in tcls.sections.items()},
    }
    cfg = merge(cfg, {"train": dict(tcls.default_train), "sampler": dict(tcls.default_sampler)})
    tweaks = dict(tcls.default_objective_overrides.get(objective, {}))
    for sec in ("train", "sampler"):
        if isinstance(tweaks.get(sec), dict):
            cfg = merge(cfg, {sec: tweaks.pop(sec)})
    cfg = merge(cfg, {"objective": tweaks})
    if config_file:
        file_cfg = load_yaml(config_file)
        for key, given in (("task", task), ("objective", objective)):
            v = file_cfg.get(key)
            v = v.pop("name", None) if key == "objective" and isinstance(v, dict) else file_cfg.pop(key, None)
            if v is not None and v != given:
                raise EbtkError(f"{config_file} is for {key} {v!r}, but the command asks for {given!r}")
        cfg = merge(cfg, file_cfg)
    cfg = merge(cfg, parse_overrides(overrides or []))
    cfg = tcls.resolve_paths(cfg)
    validate_config(cfg)
    return cfg


def validate_config(cfg: dict[str, Any]) -> None:
    tcls = task_class(cfg["task"])
    from_dict(TrainConfig, cfg["train"], "train")
    from_dict(SamplerConfig, cfg["sampler"], "sampler")
    objective_class(cfg["objective"]["name"]).parse_section(cfg["objective"])
    for k, c in tcls.sections.items():
        from_dict(c, cfg.get(k, {}), k)


def set_seed(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _Step(nn.Module):
    """model + objective as one module, so DDP syncs the gradients of both (e.g. NCE's c)."""

    def __init__(self, model: nn.Module, objective: Objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch):  # noqa: ANN001
        return self.objective(self.model, batch)


class Trainer:
    """Train `config` (a resolved config dict) into `run_dir`."""

    def __init__(self, config: dict[str, Any], run_dir: str | Path, progress: bool = True):
        self.config = config
        self.run_dir = Path(run_dir)
        self.tc: TrainConfig = from_dict(TrainConfig, config["train"], "train")
        self.progress = progress
        self.dist: DistInfo = init_distributed(self.tc.device)
        if self.tc.device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise EbtkError("train.device=cuda but no CUDA device is available; use --device cpu")
            dev = torch.device("cuda", self.dist.local_rank) if self.tc.device == "cuda" else self.tc.device
            self.device = torch.device(dev)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
            # A classifier-style loss that saturates (NCE once data and noise separate) back-propagates
            # gradients below float32's normal range; x86 CPUs compute on such denormals ~100x slower, which
            # made an NCE refiner's steps 3x slower (measured 30 steps: 204 s -> 65 s). Flushing them to 0
            # changes nothing above 1e-38.
            torch.set_flush_denormal(True)
        if self.tc.threads > 0:
            torch.set_num_threads(self.tc.threads)
        if self.tc.batch_size % self.dist.world:
            raise EbtkError(
                f"train.batch_size={self.tc.batch_size} (the global batch) must divide by "
                f"the {self.dist.world} processes"
            )
        set_seed(self.tc.seed + 7919 * self.dist.rank)
        self.task: Task = build_task(config, self.run_dir)
        self.model: nn.Module = self.task.build_model(config["objective"]["name"])
        if not (self.run_dir / CHECKPOINT).exists():
            self.task.init_weights(self.model)
        self.model.to(self.device)
        self.objective: Objective = self.task.build_objective().to(self.device)
        self.objective.check_model(self.model)
        self.objective.setup(self.model)
        self.objective.to(self.device)
        params = [p for p in list(self.model.parameters()) + list(self.objective.parameters()) if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            params, lr=self.tc.lr, betas=(self.tc.beta1, self.tc.beta2), weight_decay=self.tc.weight_decay
        )
        self.step = 0
        self._seconds_before = 0.0  # training seconds of earlier attempts (from the checkpoint)
        self._t_fit: float | None = None  # perf_counter at the start of this attempt's training loop
        # the same clock in process CPU seconds: on a shared machine, the time an idle core would take
        self._cpu_before, self._cpu_fit = 0.0, 0.0
        self._curve: list[dict[str, Any]] = []  # eval_curve.jsonl's rows (train.eval_every)
        self.step_module: nn.Module = _Step(self._compiled_model() if self.tc.compile else self.model,
                                            self.objective)
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # Replay buffers and chains are per rank: never broadcast buffers from rank 0.
            self.step_module = DDP(
                self.step_module, device_ids=ids, broadcast_buffers=False, find_unused_parameters=True
            )

    def _compiled_model(self) -> nn.Module:
        """`train.compile`: the objective's Langevin samplers compile their ∇ₓE step, and (objectives in
        `COMPILED_LOSS`) the loss calls the model through ``torch.compile(model, dynamic=False)``.

        `self.model` stays the bare module: checkpoints (its state_dict keys), evaluation, snapshots and
        `after_step` never see the wrapper, so a compiled run resumes an eager checkpoint and vice versa.
        Under DDP the compiled module sits inside the DDP-wrapped `_Step` (compile inside, DDP outside).
        ``dynamic=False``: one compilation per distinct batch shape (the trainer's batches all have one).
        """
        from ebtk.sampling.langevin import compile_samplers

        compile_samplers(self.objective)
        if self.config["objective"]["name"] not in COMPILED_LOSS:
            return self.model  # these losses differentiate through ∇ₓE: AOTAutograd has no double backward
        return torch.compile(self.model, dynamic=False)

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "task": self.config["task"],
            "objective_name": self.config["objective"]["name"],
            "step": self.step,
            "model": unwrap(self.model).state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "config": self.config,
            "train_seconds": self.train_seconds(),
            "train_cpu_seconds": self.train_cpu_seconds(),
        }
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        extra = getattr(self.task, "checkpoint_extra", None)
        if extra is not None:
            state["task_state"] = extra()
        return state

    def load_state_dict(self, state: dict[str, Any], path: Path) -> None:
        for key, want in (("task", self.config["task"]), ("objective_name", self.config["objective"]["name"])):
            if state.get(key) != want:
                raise EbtkError(
                    f"checkpoint {path} is from {key.split('_')[0]} {state.get(key)!r}, not {want!r}; use another --out"
                )
        try:
            unwrap(self.model).load_state_dict(state["model"])
            self.objective.load_state_dict(state["objective"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise EbtkError(f"checkpoint {path} does not fit this model/config: {one_line(e)}") from None
        self.step = int(state["step"])
        self._seconds_before = float(state.get("train_seconds", 0.0))  # 0 for checkpoints made before the field
        self._cpu_before = float(state.get("train_cpu_seconds", 0.0))
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)

    def save(self) -> None:
        if self.dist.main:
            state = self.state_dict()
            save_checkpoint(self.run_dir / CHECKPOINT, state)
            if self.tc.keep_every and self.step % self.tc.keep_every == 0:
                save_checkpoint(snapshot_path(self.run_dir, self.step), state)

    def out_of_time(self) -> bool:
        """`train.time_budget` is spent (a wall-clock budget: methods compared at equal training seconds)."""
        return bool(self.tc.time_budget) and self.train_seconds() >= self.tc.time_budget

    def maybe_resume(self) -> bool:
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            return False
        self.load_state_dict(load_checkpoint(path, map_location=self.device), path)
        if self.dist.world > 1:  # the checkpoint holds rank 0's RNG: give every rank its own stream again
            set_seed(self.tc.seed + 7919 * self.dist.rank + 104_729 * self.step)
        return True

    # -- training ---------------------------------------------------------------------------------
    def _batch(self, step: int):  # noqa: ANN202
        """The global batch of `step` (same on every rank, from a (seed, step) generator), then this rank's
        shard: a 2-process run sees exactly the data of a 1-process run with the same train.batch_size."""
        gen = torch.Generator().manual_seed((self.tc.seed * 1_000_003 + step) % (2**63))
        batch = self.task.train_batch(gen, self.tc.batch_size)
        return batch.shard(self.dist.rank, self.dist.world).to(self.device)

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast around the loss when `train.amp` (CUDA, or the CPU: there it pays only with bf16
        matrix units, AMX / AVX512-BF16; `benchmarks/tts_train_speed.py` measures it)."""
        if self.tc.amp and self.device.type in ("cuda", "cpu"):
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_seconds(self) -> float:
        """Wall-clock seconds of training so far, over every attempt of this run (resumes included; the
        steps of an interrupted attempt after its last checkpoint are not counted, as they are redone)."""
        since = time.perf_counter() - self._t_fit if self._t_fit is not None else 0.0
        return self._seconds_before + since

    def train_cpu_seconds(self) -> float:
        """`train_seconds` in process CPU seconds (with train.threads=1: an idle core's wall-clock, robust to
        other jobs time-slicing a shared CPU; with more threads, their sum)."""
        since = time.process_time() - self._cpu_fit if self._t_fit is not None else 0.0
        return self._cpu_before + since

    def _start_clock(self) -> None:
        self._t_fit, self._cpu_fit = time.perf_counter(), time.process_time()

    def _stop_clock(self) -> float:
        """Fold this attempt's training time into the total and stop counting; returns the total."""
        self._cpu_before = self.train_cpu_seconds()
        self._seconds_before, self._t_fit = self.train_seconds(), None
        return self._seconds_before

    def train_step(self) -> tuple[Any, torch.Tensor]:
        """One optimiser step on the batch of `self.step` (loss, backward, clip, Adam, `after_step`), and
        (the objective's output, the gradient norm). `fit` loops over it; benchmarks drive it directly to
        time ebtk's training exactly as `ebtk train` runs it, without logging, checkpoints or evaluation."""
        batch = self._batch(self.step)
        self.step_module.train()
        with self._autocast():
            out = self.step_module(batch)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if self.tc.grad_clip > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"], self.tc.grad_clip)
        else:
            gnorm = torch.zeros((), device=self.device)
        self.optimizer.step()
        self.step += 1
        self.objective.after_step(self.model, self.step)
        return out, gnorm

    def fit(self) -> dict[str, Any]:
        """Train to `train.steps` (resuming if a checkpoint exists), evaluate, write metrics.json."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.main:
            save_yaml(self.config, self.run_dir / "config.yaml")
        resumed = self.maybe_resume()
        writer = None
        if self.dist.main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step if resumed else None)
        bar = None
        if self.dist.main and self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=self.tc.steps,
                initial=self.step,
                desc=f"{self.config['task']}/{self.config['objective']['name']}",
                dynamic_ncols=True,
                mininterval=1.0,
            )
        last_good = self.step
        pending: list[dict[str, torch.Tensor]] = []
        if self.tc.eval_every and self.dist.main:
            # rows past the checkpoint are redone (a resume); the untrained model is the curve's first point
            self._curve = [r for r in read_curve(self.run_dir) if r["step"] <= self.step]
            if not self._curve:
                self._curve_point(writer)
        self._start_clock()
        start_step = self.step
        try:
            while self.step < self.tc.steps and not self.out_of_time():
                out, gnorm = self.train_step()
                pending.append(
                    {
                        "loss": out.loss.detach(),
                        "grad_norm": gnorm.detach(),
                        **{k: v.detach() for k, v in out.metrics.items()},
                    }
                )
                last = self.step == self.tc.steps or self.out_of_time()
                if last:  # the final checkpoint and metrics.json give the same total
                    self._stop_clock()
                log_now = self.step % self.tc.log_every == 0 or last
                ckpt_now = self.step % self.tc.ckpt_every == 0 or last or (
                    self.tc.keep_every and self.step % self.tc.keep_every == 0)
                if log_now or ckpt_now:
                    values = self._flush(pending, writer, bar)
                    pending = []
                    self._guard(values, last_good)
                if ckpt_now:
                    self.save()
                    last_good = self.step
                if self.tc.eval_every and self.step % self.tc.eval_every == 0:
                    if not last or self._curve_split() != self._final_split():
                        self._curve_point(writer)
                if bar is not None:
                    bar.update(1)
                if last:
                    break
        finally:
            if bar is not None:
                bar.close()
        total = self._stop_clock()
        metrics = self._evaluate(writer, final=True)
        if self.dist.main:  # also when resuming a run stopped after its last checkpoint but before its metrics
            if self.step > start_step:
                # train_seconds: every attempt, resumes included (the checkpoint carries it)
                metrics["train_seconds"] = round(total, 3)
                metrics["steps_per_second"] = round(self.step / max(total, 1e-9), 3)
            else:  # nothing trained now: keep the timing an earlier, finished attempt recorded
                metrics.update(_timing(self.run_dir / "metrics.json", self.step))
            if self.step < self.tc.steps and self.out_of_time():
                metrics["stopped_by"] = "time_budget"
            if self.tc.eval_every and self._curve_split() == self._final_split() and self.step > start_step:
                self._add_curve_row(metrics, self._curve_split())
            write_metrics(self.run_dir, metrics)
        if writer is not None:
            writer.close()
        cleanup(self.dist)
        return metrics

    def _flush(self, pending: list[dict[str, torch.Tensor]], writer: Any, bar: Any) -> dict[str, float]:
        """One host sync per logging step: stack every pending metric, then average."""
        keys = list(pending[-1].keys())
        stacked = torch.stack(
            [torch.stack([p[k].float().reshape(()) for k in keys]) for p in pending if list(p.keys()) == keys]
        )
        values = dict(zip(keys, stacked.mean(0).tolist()))
        last = dict(zip(keys, stacked[-1].tolist()))
        values["_last_loss"] = last["loss"]
        values["_max_abs_e"] = max((abs(v) for k, v in last.items() if k.startswith("e_")), default=0.0)
        values["_nonfinite"] = float(not torch.isfinite(stacked).all())
        if writer is not None:
            for k, v in values.items():
                if not k.startswith("_") and math.isfinite(v):
                    writer.add_scalar(f"train/{k}", v, self.step)
        if bar is not None:
            bar.set_postfix(loss=f"{values['loss']:.4f}", refresh=False)
        return values

    def _guard(self, values: dict[str, float], last_good: int) -> None:
        bad = values["_nonfinite"] > 0 or values["_max_abs_e"] > self.tc.max_abs_energy
        if broadcast_flag(bad, self.dist, self.device):
            what = (
                "loss or metrics became NaN/inf"
                if values["_nonfinite"] > 0
                else (f"|energy| reached {values['_max_abs_e']:.3g} > train.max_abs_energy={self.tc.max_abs_energy:g}")
            )
            raise EbtkError(
                f"training diverged by step {self.step}: {what}; the last good checkpoint (step {last_good}) "
                "is kept; hint: lower train.lr or sampler.step_size, or raise the energy regulariser"
            )

    # -- the learning curve (train.eval_every) -----------------------------------------------------
    def _final_split(self) -> str:
        return str(getattr(self.task.cfg.get("eval"), "split", ""))

    def _curve_split(self) -> str:
        return self.tc.eval_split or self._final_split()

    def _curve_point(self, writer: Any) -> None:
        """Evaluate on `train.eval_split` with the training clock stopped, and add the row to the curve."""
        if not self.dist.main:
            return
        running = self._t_fit is not None
        self._stop_clock()
        split = self._curve_split()
        ev = self.task.cfg.get("eval")
        old = getattr(ev, "split", None)
        if split and old is None:
            raise EbtkError(f"train.eval_split={split} needs a task with eval.split; {self.config['task']} has none")
        try:
            if split:
                ev.split = split
            metrics = self._evaluate(writer, final=False)
        finally:
            if split:
                ev.split = old
        self._add_curve_row(metrics, split)
        if running:
            self._start_clock()

    def _add_curve_row(self, metrics: dict[str, Any], split: str) -> None:
        row = {"step": self.step, "train_seconds": round(self.train_seconds(), 3),
               "train_cpu_seconds": round(self.train_cpu_seconds(), 3), "split": split}
        row.update({k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
                    and k not in ("steps", "seed", "train_seconds", "steps_per_second")})
        self._curve = [r for r in self._curve if r["step"] != self.step] + [row]
        atomic_write_text(self.run_dir / CURVE, "".join(json.dumps(r) + "\n" for r in self._curve))

    def _evaluate(self, writer: Any, final: bool) -> dict[str, Any]:
        if not self.dist.main:
            return {}
        model = unwrap(self.model)
        model.eval()
        metrics = evaluate_run(self.task, model, self.objective, self.run_dir, self.config, self.step)
        model.train()
        if writer is not None:
            for k, v in metrics.items():
                if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("steps",):
                    writer.add_scalar(f"eval/{k}", v, self.step)
        if final:
            self.task.plots(model, self.run_dir)
        return metrics


def evaluate_run(
    task: Task, model: nn.Module, objective: Objective, run_dir: Path, config: dict[str, Any], step: int
) -> dict[str, Any]:
    """The metrics.json dict: contract keys (task, objective, steps) first, then the task's metrics."""
    gen_state = torch.get_rng_state()
    torch.manual_seed(12345)  # evaluation sampling is reproducible and leaves training's RNG untouched
    try:
        found = task.evaluate(model, objective, run_dir)
    finally:
        torch.set_rng_state(gen_state)
    out: dict[str, Any] = {"task": config["task"], "objective": config["objective"]["name"], "steps": step}
    data = config.get("data", {})
    if isinstance(data, dict) and "name" in data:
        out["data"] = data["name"]
    out["seed"] = config["train"]["seed"]
    out.update({k: _clean(v) for k, v in found.items()})
    return out


def _clean(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _timing(path: Path, step: int) -> dict[str, Any]:
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if old.get("steps") != step:
        return {}
    return {k: old[k] for k in ("train_seconds", "steps_per_second") if k in old}


CURVE = "eval_curve.jsonl"


def read_curve(run_dir: str | Path) -> list[dict[str, Any]]:
    """The learning curve `train.eval_every` writes: one dict per evaluation, by step: step, train_seconds
    (training clock at that point, evaluations excluded), train_cpu_seconds (the same in process CPU
    seconds), split, and the task's numeric metrics (a NaN one left out). [] when the run has none."""
    path = Path(run_dir) / CURVE
    if not path.exists():
        return []
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except ValueError as e:
        raise EbtkError(f"{path} is corrupt: {e}") from None
    return sorted(rows, key=lambda r: r["step"])


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def run_kind(run_dir: str | Path) -> tuple[Any, Any] | None:
    """(task, objective name) of the run in `run_dir` by its config.yaml; None when it has none."""
    cfg_path = Path(run_dir) / "config.yaml"
    if not cfg_path.exists():
        return None
    old = load_yaml(cfg_path)
    obj = old.get("objective")
    return old.get("task"), obj.get("name") if isinstance(obj, dict) else None


RESUME_FREE = ("train.steps", "train.time_budget", "train.log_every", "train.ckpt_every", "train.keep_every",
               "train.eval_every", "train.eval_split", "train.threads", "train.device", "train.compile")
"""Keys a resumed run may change: the length of the run (steps, time budget), logging/checkpoint/snapshot
cadence, where it runs and whether it is compiled. A task adds its evaluation-only sections
(`Task.resume_free`). Everything else must equal the checkpoint's."""


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix[:-1]: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def _with_defaults(defaults: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """`old` (a stored config) with the keys it lacks taken from `defaults`; its own keys win, even unknown ones."""
    out = dict(defaults)
    for k, v in old.items():
        out[k] = _with_defaults(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config_changes(old: dict[str, Any], new: dict[str, Any], free: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ between two resolved configs, less the `free` keys/sections."""
    a, b = _flatten(old), _flatten(new)
    free_all = RESUME_FREE + tuple(free)

    def is_free(key: str) -> bool:
        return any(key == f or key.startswith(f + ".") for f in free_all)

    return sorted(k for k in set(a) | set(b) if not is_free(k) and a.get(k, "<unset>") != b.get(k, "<unset>"))


RUN_FILES = (CHECKPOINT, "config.yaml", "metrics.json", "tb", CURVE)


def check_run_dir(run_dir: Path, config: dict[str, Any], restart: bool = False) -> None:
    """Refuse to train into a run dir whose run differs from `config`; nothing in it is touched.

    The checkpoint's config is the reference (config.yaml when no checkpoint exists yet): a different
    task/objective, or any changed key outside `RESUME_FREE` and the task's evaluation-only sections, is an
    EbtkError naming the keys. `restart=True` removes the run's files (`RUN_FILES`) instead, to start over.
    """
    run_dir = Path(run_dir)
    if restart:
        import shutil

        for name in RUN_FILES:
            p = run_dir / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        return
    hint = "; hint: add --restart to start over in it, or choose another --out"
    kind = run_kind(run_dir)
    if kind is not None and kind != (config["task"], config["objective"]["name"]):
        raise EbtkError(f"{run_dir} holds a run of task {kind[0]!r} / objective {kind[1]!r}{hint}")
    ckpt = run_dir / CHECKPOINT
    if not ckpt.exists():
        return
    old = load_checkpoint(ckpt).get("config")
    if not isinstance(old, dict):
        raise EbtkError(f"checkpoint {ckpt} holds no config to check a resume against{hint}")
    # keys added to ebtk after the run was made count at their defaults (a run resumes across upgrades)
    old = _with_defaults(resolve_config(config["task"], config["objective"]["name"]), old)
    changed = config_changes(old, config, tuple(task_class(config["task"]).resume_free))
    if changed:
        flat_old, flat_new = _flatten(old), _flatten(config)
        shown = ", ".join(f"{k} ({flat_old.get(k, '<unset>')!r} → {flat_new.get(k, '<unset>')!r})"
                          for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise EbtkError(f"{run_dir} holds a run with another config: {shown}{more}; only train.steps and the "
                        f"evaluation settings may change on resume{hint}")


def train(
    task: str,
    objective: str,
    out: str | Path,
    config_file: str | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
    restart: bool = False,
) -> dict[str, Any]:
    """Python API of `ebtk train`: resolve the config, check the run dir, then train (or resume) into `out`.

    Re-running into a run dir resumes it only when the config equals its checkpoint's (see
    `check_run_dir`); `restart=True` starts over. The process holds the run dir's lock (`ebtk.io.lock_run_dir`)
    throughout: a second process training, evaluating or exporting there gets an EbtkError naming this one.
    Under torchrun only rank 0 takes it (the other ranks write nothing to the run dir)."""
    import os

    cfg = resolve_config(task, objective, config_file, overrides)
    lock = lock_run_dir(out) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext()
    with lock:
        check_run_dir(Path(out), cfg, restart=restart)
        return Trainer(cfg, out, progress=progress).fit()


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[dict[str, Any], Task, nn.Module, Objective, int]:
    """Rebuild a finished or interrupted run: (config, task, model, objective, step), weights loaded."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise EbtkError(f"{run_dir} is not an ebtk run dir (no config.yaml)")
    config = load_yaml(run_dir / "config.yaml")
    if "task" not in config or not isinstance(config.get("objective"), dict):
        raise EbtkError(f"{run_dir}/config.yaml is not an ebtk run config")
    validate_config(config)
    state = load_checkpoint(run_dir / CHECKPOINT, map_location=device)
    task = build_task(config, run_dir)
    model = task.build_model(config["objective"]["name"]).to(device)
    objective = task.build_objective()
    objective.to(device)
    objective.setup(model)
    if state.get("task") != config["task"]:
        raise EbtkError(f"checkpoint in {run_dir} is from task {state.get('task')!r}, not {config['task']!r}")
    try:
        model.load_state_dict(state["model"])
        objective.load_state_dict(state["objective"])
    except (KeyError, RuntimeError) as e:
        raise EbtkError(f"checkpoint in {run_dir} does not fit its config: {one_line(e)}") from None
    model.eval()
    return config, task, model, objective, int(state["step"])
