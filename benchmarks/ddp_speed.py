"""DDP speed-up: the same training run (same global batch, same steps) in 1 process and under torchrun.

Each configuration is an ordinary `ebtk train` run; its training wall time (`train_seconds` in metrics.json,
without the final evaluation) is compared. Rows:
  1 proc × 1 thread   the baseline a DDP rank is made of
  1 proc × N threads  the alternative use of the same cores (intra-op threads)
  N procs × 1 thread  `torchrun --nproc_per_node=N` (gloo on CPU, nccl on GPU), global batch sharded by rank

    python benchmarks/ddp_speed.py --out benchmarks/results/ddp.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ebtk.io import atomic_write_text
from ebtk.report.machine import cpu_model, load_average

CASES = [  # (label, task, objective, overrides)
    ("toy2d sa-nce, batch 128", "toy2d", "sa-nce", ["train.batch_size=128"]),
    ("toy2d sa-nce, batch 1024", "toy2d", "sa-nce", ["train.batch_size=1024"]),
    ("toy2d dsm, batch 1024", "toy2d", "dsm", ["train.batch_size=1024"]),
    ("digits cd, batch 128", "digits", "cd", ["train.batch_size=128"]),
]


def run(task: str, objective: str, overrides: list[str], steps: int, procs: int, threads: int, out: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    args = ["-m", "ebtk", "train", task, "--objective", objective, "--steps", str(steps), "--out", str(out),
            "--quiet", "train.eval_every=0", f"train.ckpt_every={steps}", f"train.threads={threads}", *overrides]
    launcher = [sys.executable] if procs == 1 else ["torchrun", "--standalone", f"--nproc_per_node={procs}"]
    r = subprocess.run([*launcher, *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(launcher + args)} failed:\n{r.stderr[-1500:]}")
    return float(json.loads((out / "metrics.json").read_text())["train_seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/ddp.md")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    a = ap.parse_args()
    load0 = load_average()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, task, obj, over) in enumerate(CASES):
            t = {}
            for key, procs, threads in (("1x1", 1, 1), ("1xN", 1, a.nproc), ("Nx1", a.nproc, 1)):
                d = Path(tmp) / f"{i}-{key}"
                t[key] = run(task, obj, over, a.steps, procs, threads, d)
                shutil.rmtree(d)
            rows.append((label, t))
            print(label, {k: round(v, 2) for k, v in t.items()}, flush=True)
    n = a.nproc
    lines = [
        f"# DDP speed-up: {n} processes (torchrun, gloo) vs 1 process, same global batch and {a.steps} steps",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs; load average {load0} at start, "
        f"{load_average()} at end. Training wall time (`train_seconds`: no evaluation, one checkpoint at the end).",
        "",
        f"| run | 1 proc × 1 thread (s) | 1 proc × {n} threads (s) | {n} procs × 1 thread (s) "
        f"| DDP speed-up vs 1×1 | DDP vs 1×{n} threads |",
        "|---|---|---|---|---|---|",
    ]
    for label, t in rows:
        lines.append(f"| {label} | {t['1x1']:.1f} | {t['1xN']:.1f} | {t['Nx1']:.1f} | "
                     f"{t['1x1'] / t['Nx1']:.2f}× | {t['1xN'] / t['Nx1']:.2f}× |")
    lines.append("")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
