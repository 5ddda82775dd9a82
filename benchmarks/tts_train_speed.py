"""Acoustic-model training speed (issue 35): steps/s of `ebtk train tts --objective acoustic`, variants side by side.

Each variant is a `Trainer` of the real recipe (the task's default acoustic model, batch `--batch`) on the
same corpus, driven through `Trainer.train_step` exactly as `ebtk train` runs it (no logging, checkpoints or
evaluation). Variants:

* ``baseline``: today's defaults (random batches, fp32, eager);
* ``bucket``: length-bucketed batches (`data.bucket=K`: K batches' worth of utterances drawn, sorted by
  length, one chunk kept), which computes less padding;
* ``bf16``: bf16 autocast on the CPU (`torch.autocast("cpu", torch.bfloat16)` around the loss, as
  `train.amp=true`); fast only where the CPU has bf16 matrix units (AMX / AVX512-BF16);
* ``bucket+bf16``: both.

Timing is interleaved: every round times one step of every variant, in a rotated order, so that load from
other processes hits all variants alike (this is a shared 2-core machine). A variant's speed-up is the
geometric mean over rounds of (baseline step seconds / its step seconds in the same round), with a 95 % t
interval on the log ratios. Warm-up steps (data loading, phonemes, the first steps' allocations) are not
timed. `--val-steps S` also trains each variant S steps from the same initial weights and reports its
per-utterance validation loss (fp32, eval mode) against the baseline's, with a paired t interval: a
speed-up only counts at equal validation loss.

    python benchmarks/tts_train_speed.py                     # corpus of 300 (made once), batch 32
    python benchmarks/tts_train_speed.py --corpus DIR --rounds 10 --val-steps 200
    python benchmarks/tts_train_speed.py --quick             # CI smoke run: tiny corpus and model, prints only

Writes results/tts/train_speed.md and .json (not with --quick).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

VARIANTS: dict[str, tuple[list[str], bool]] = {  # name -> (config overrides, bf16 autocast)
    "baseline": ([], False),
    "bucket": (["data.bucket={bucket}"], False),
    "bf16": ([], True),
    "bucket+bf16": (["data.bucket={bucket}"], True),
}
QUICK_MODEL = ["acoustic.channels=32", "acoustic.enc_layers=1", "acoustic.dec_layers=2", "data.n_val=4",
               "data.n_test=2"]  # later overrides win


def make_trainer(corpus: Path, overrides: list[str], bf16: bool, batch: int, threads: int, run_dir: Path,
                 n_val: int = 30) -> Any:
    """A Trainer of the acoustic recipe on `corpus` (its own run dir, `n_val` val and 10 test utterances);
    bf16 wraps its loss in CPU autocast."""
    import ebtk.builtins  # noqa: F401  (registers the tts task and the acoustic objective)
    from ebtk.train.trainer import Trainer, resolve_config

    cfg = resolve_config("tts", "acoustic", overrides=[f"data.path={corpus}", "data.n_unseen=0", f"data.n_val={n_val}",
                                                       "data.n_test=10", f"train.batch_size={batch}",
                                                       f"train.threads={threads}", f"train.amp={str(bf16).lower()}",
                                                       *overrides])
    return Trainer(cfg, run_dir, progress=False)


def timed_step(tr: Any) -> float:
    t = time.perf_counter()
    out, _ = tr.train_step()
    loss = float(out.loss.detach())
    if not math.isfinite(loss):
        raise RuntimeError(f"loss is {loss}")
    return time.perf_counter() - t


@torch.no_grad()
def val_losses(tr: Any) -> list[float]:
    """The acoustic loss (dur + prior + mel, fp32, eval mode) of each val utterance, one at a time."""
    tr.model.eval()
    out = []
    for uid in tr.task.splits()["val"]:
        if tr.task.mel(uid).shape[-1] < len(tr.task.phonemes([uid])[0]):
            continue  # too short to align, as training leaves it out
        out.append(float(tr.objective(tr.model, tr.task.model_batch([uid])).loss))
    tr.model.train()
    return out


def t_stats(xs: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t interval (ebtk.metrics.stats)."""
    from ebtk.metrics.stats import t_interval

    iv = t_interval(xs)
    return iv.mean, iv.lo, iv.hi


def run(corpus: Path, names: list[str], batch: int, bucket: int, rounds: int, warmup: int, threads: int,
        val_steps: int, extra: list[str], log: Any = print, match_every: int = 25,
        match_max: int = 0) -> dict[str, Any]:
    torch.set_num_threads(threads)
    trainers = {}
    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        for name in names:
            over, bf16 = VARIANTS[name]
            torch.manual_seed(0)  # every variant starts from the same weights
            trainers[name] = make_trainer(corpus, [o.format(bucket=bucket) for o in over] + extra, bf16, batch,
                                          threads, Path(tmp) / name.replace("+", "_"))
            for _ in range(warmup):
                timed_step(trainers[name])
            log(f"{name}: warmed up")
        times: dict[str, list[float]] = {n: [] for n in names}
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                times[name].append(timed_step(trainers[name]))
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names))
        frames = {n: _padding(trainers[n], batch) for n in names}
        res: dict[str, Any] = {"corpus": str(corpus), "n_utts": len(trainers[names[0]].task.items()),
                               "batch": batch, "bucket": bucket, "rounds": rounds, "warmup": warmup,
                               "threads": threads, "torch": torch.__version__, "cpu_bf16": _cpu_bf16(),
                               "times": times, "useful_frames": frames, "val_steps": val_steps,
                               "match_every": match_every}
        if val_steps:
            res["val"] = {}
            for name, tr in trainers.items():
                while tr.step < val_steps:
                    tr.train_step()
                res["val"][name] = val_losses(tr)
                log(f"{name}: val loss after {tr.step} steps {sum(res['val'][name]) / len(res['val'][name]):.4f}")
        if val_steps and match_max:
            res["match"] = match_baseline(trainers, res["val"]["baseline"], match_every, match_max, log)
    return res


def match_baseline(trainers: dict[str, Any], target: list[float], every: int, most: int,
                   log: Any = print) -> dict[str, dict[str, Any]]:
    """Train each variant on, `every` steps at a time, until its mean val loss is at most the baseline's
    (`target`, per val utterance) or it reaches `most` steps: {variant: {steps, val (per utterance) or None
    when it never matched, curve [(step, mean val loss)]}}. Equal validation loss is what a speed-up must be
    measured at: a variant that learns less per step needs more of its (cheaper) steps."""
    goal = sum(target) / len(target)
    out: dict[str, dict[str, Any]] = {}
    for name, tr in trainers.items():
        if name == "baseline":
            continue
        v = val_losses(tr)
        curve = [(tr.step, sum(v) / len(v))]
        while curve[-1][1] > goal and tr.step < most:
            for _ in range(every):
                tr.train_step()
            v = val_losses(tr)
            curve.append((tr.step, sum(v) / len(v)))
            log(f"{name}: val loss after {tr.step} steps {curve[-1][1]:.4f} (baseline's {goal:.4f})")
        matched = curve[-1][1] <= goal
        out[name] = {"steps": tr.step if matched else None, "val": v if matched else None, "curve": curve}
    return out


def _padding(tr: Any, batch: int, n: int = 50) -> float:
    """Share of the batches' computed frames that are real (not padding), over n batches of the variant."""
    useful = total = 0
    for s in range(n):
        b = tr.task.train_batch(torch.Generator().manual_seed(10_000 + s), batch)
        useful += int(b.cond["mel_lengths"].sum())
        total += b.x.shape[0] * b.x.shape[-1]
    return useful / total


def _cpu_bf16() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return "unknown"
    return " ".join(f for f in ("amx_bf16", "avx512_bf16") if f in flags) or "none"


def report(res: dict[str, Any]) -> str:
    names = list(res["times"])
    base = res["times"]["baseline"]
    lines = ["# Acoustic-model training speed", "",
             f"`benchmarks/tts_train_speed.py` on {res['n_utts']} utterances ({res['corpus']}), batch "
             f"{res['batch']}, the default acoustic model, {res['threads']} torch thread(s), torch {res['torch']}, "
             f"CPU bf16 units: {res['cpu_bf16']}. {res['rounds']} interleaved rounds after {res['warmup']} "
             "warm-up steps; speed-up = geometric mean over rounds of the baseline's step time / the variant's in "
             "the same round, 95 % t interval on the log ratios. Steps/s: mean over rounds of 1/step time.", "",
             "| variant | s per step (mean [95 % t]) | steps/s | speed-up vs baseline [95 % t] | real frames "
             "of computed |", "|---|---|---|---|---|"]
    for n in names:
        ts = res["times"][n]
        m, lo, hi = t_stats(ts)
        logs = [math.log(b / t) for b, t in zip(base, ts)]
        g, glo, ghi = t_stats(logs)
        sp = "1" if n == "baseline" else f"{math.exp(g):.2f} [{math.exp(glo):.2f}, {math.exp(ghi):.2f}]"
        lines.append(f"| {n} | {m:.2f} [{lo:.2f}, {hi:.2f}] | {sum(1 / t for t in ts) / len(ts):.3f} | {sp} | "
                     f"{res['useful_frames'][n]:.2f} |")
    if res.get("val"):
        b = res["val"]["baseline"]
        lines += ["", f"Validation loss after {res['val_steps']} steps from the same initial weights (per val "
                  f"utterance, n={len(b)}; difference to the baseline, paired t):", "",
                  "| variant | val loss (mean [95 % t]) | − baseline [95 % t] |", "|---|---|---|"]
        for n, v in res["val"].items():
            m, lo, hi = t_stats(v)
            d, dlo, dhi = t_stats([x - y for x, y in zip(v, b)])
            diff = "0" if n == "baseline" else f"{d:+.4f} [{dlo:+.4f}, {dhi:+.4f}]"
            lines.append(f"| {n} | {m:.4f} [{lo:.4f}, {hi:.4f}] | {diff} |")
    if res.get("match"):
        b = res["val"]["baseline"]
        lines += ["", f"**At equal validation loss.** Each variant trained on from there, checked every "
                  f"{res.get('match_every', 25)} steps, until its mean val loss was at most the baseline's after "
                  f"{res['val_steps']} steps ({sum(b) / len(b):.4f}). Speed-up at equal loss = (baseline s/step × "
                  f"{res['val_steps']}) / (variant s/step × its steps): the per-step speed-up above (with its "
                  "interval) times the step ratio, which is one training run's, without an interval.", "",
                  "| variant | steps to the baseline's val loss | step ratio | speed-up at equal val loss [95 % t] |",
                  "|---|---|---|---|"]
        for n, mt in res["match"].items():
            if mt["steps"] is None:
                lines.append(f"| {n} | not reached in {mt['curve'][-1][0]} | – | – |")
                continue
            ratio = res["val_steps"] / mt["steps"]
            g, glo, ghi = t_stats([math.log(x / t) for x, t in zip(base, res["times"][n])])
            lines.append(f"| {n} | {mt['steps']} | {ratio:.2f} | {math.exp(g) * ratio:.2f} "
                         f"[{math.exp(glo) * ratio:.2f}, {math.exp(ghi) * ratio:.2f}] |")
    return "\n".join(lines) + "\n"


def profile_table(corpus: Path, name: str, batch: int, bucket: int, threads: int, steps: int = 2) -> str:
    """torch.profiler's table (self CPU time) of `steps` training steps of variant `name`, after 2 warm-up
    steps. Ops only: Python-side work (the numba MAS kernel, batching) shows as the gap to the wall time."""
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    over, bf16 = VARIANTS[name]
    with tempfile.TemporaryDirectory(prefix="train-profile-") as tmp:
        torch.manual_seed(0)
        tr = make_trainer(corpus, [o.format(bucket=bucket) for o in over], bf16, batch, threads, Path(tmp))
        for _ in range(2):
            timed_step(tr)
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                tr.train_step()
        wall = time.perf_counter() - t0
    return (f"variant {name}, batch {batch}, {threads} thread(s), {steps} steps, wall {wall:.2f} s\n"
            + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def quick_corpus(d: Path) -> Path:
    from ebtk.tts.corpus import make_corpus

    return make_corpus(d, n=24, seed=0, workers=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", help="LJSpeech-layout corpus (default: a 300-utterance built-in one, made once)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--bucket", type=int, default=8)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--val-steps", type=int, default=0, help="also train each variant this many steps, compare val")
    p.add_argument("--match-max", type=int, default=0,
                   help="after --val-steps, train each variant on until its val loss is the baseline's (≤ this many "
                        "steps) and report the speed-up at equal validation loss")
    p.add_argument("--match-every", type=int, default=25, help="steps between val checks while matching")
    p.add_argument("--out", default=str(ROOT / "results" / "tts"))
    p.add_argument("--report", action="store_true", help="only remake the markdown from the JSON")
    p.add_argument("--profile", metavar="VARIANT", help="only write the torch.profiler table of VARIANT's steps")
    p.add_argument("--quick", action="store_true", help="tiny corpus and model, 2 rounds: a smoke run")
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.report:
        res = json.loads((out / "train_speed.json").read_text())
        (out / "train_speed.md").write_text(report(res))
        return 0
    if a.profile:
        from ebtk.tts.corpus import builtin_corpus

        table = profile_table(Path(a.corpus) if a.corpus else builtin_corpus(300, 0), a.profile, a.batch, a.bucket,
                              a.threads)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"train_profile_{a.profile.replace('+', '_')}.txt").write_text(table + "\n")
        print(table)
        return 0
    names = [n.strip() for n in a.variants.split(",") if n.strip()]
    if "baseline" not in names or any(n not in VARIANTS for n in names):
        p.error(f"--variants must include baseline and be among {', '.join(VARIANTS)}")
    with contextlib.ExitStack() as stack:
        if a.quick:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="train-speed-quick-")))
            res = run(quick_corpus(tmp / "c"), names, batch=4, bucket=2, rounds=2, warmup=1, threads=1,
                      val_steps=2, extra=QUICK_MODEL, match_every=1, match_max=4)
            print(report(res))
            return 0
        if a.corpus:
            corpus = Path(a.corpus)
        else:
            from ebtk.tts.corpus import builtin_corpus

            corpus = builtin_corpus(300, 0)
        res = run(corpus, names, a.batch, a.bucket, a.rounds, a.warmup, a.threads, a.val_steps, [],
                  match_every=a.match_every, match_max=a.match_max)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_speed.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "train_speed.md").write_text(report(res))
    print(report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
