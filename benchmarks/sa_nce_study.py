"""SA-NCE study: refresh interval K × seeds, next to its baselines, on toy2d and digits.

Runs every (dataset, method, seed) as an ordinary ebtk run dir (so each can be inspected, resumed or
re-evaluated), in parallel worker processes, then writes a markdown table (mean ± std over seeds) and a
plot of each metric against K.

    python benchmarks/sa_nce_study.py --out runs/study             # full grid
    python benchmarks/sa_nce_study.py --out /tmp/s --quick          # a few minutes, for a smoke check
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from ebtk.io import atomic_write_text
from ebtk.report.plots import save_figure

K_VALUES: list[int | None] = [1, 2, 5, 20, 100, None]  # None = never refresh (K = ∞)
BASELINES = ["nce", "fce", "cd", "pcd", "ssm", "dsm"]
REF_K = 100  # SA-NCE's default interval: the wall-clock budget the cheap baselines are matched to
DATASETS = {
    "8gaussians": ("toy2d", ["data.name=8gaussians"], ("nll", "kl", "mmd")),
    "checkerboard": ("toy2d", ["data.name=checkerboard"], ("nll", "kl", "mmd")),
    "digits": ("digits", [], ("fd", "kid")),
}


def _job(out: str, task: str, objective: str, overrides: list[str], threads: int) -> str:
    import torch

    torch.set_num_threads(threads)
    from ebtk.train.trainer import train

    train(task, objective, out, overrides=overrides, progress=False)
    return out


def _kname(k: int | None) -> str:
    return f"sa-nce-K{k or 'inf'}"


def plan(root: Path, datasets: list[str], seeds: list[int], steps: dict[str, int | None], ks: list[int | None]):
    jobs = []
    for ds in datasets:
        task, extra, _ = DATASETS[ds]
        common = [*extra] + ([f"train.steps={steps[task]}"] if steps.get(task) else [])
        for seed in seeds:
            for k in ks:
                jobs.append(
                    (
                        root / ds / _kname(k) / f"seed{seed}",
                        task,
                        "sa-nce",
                        [*common, f"objective.interval={k or 'never'}", f"train.seed={seed}"],
                    )
                )
            for b in BASELINES:
                jobs.append((root / ds / b / f"seed{seed}", task, b, [*common, f"train.seed={seed}"]))
    return jobs


def _median_seconds(d: Path) -> tuple[float, int] | None:
    """(median train_seconds, steps) over a method's finished seeds."""
    import json
    import statistics

    runs = [json.loads(p.read_text()) for p in sorted(d.glob("seed*/metrics.json"))]
    secs = [r["train_seconds"] for r in runs if "train_seconds" in r]
    return (statistics.median(secs), int(runs[0]["steps"])) if secs else None


def plan_wall_matched(root: Path, datasets: list[str], seeds: list[int], ref_k: int | None):
    """Baselines much cheaper per step than SA-NCE (no sampler: nce, fce, dsm) again, with as many steps as
    SA-NCE (K = ref_k) spends in the same wall-clock time: the same budget in time, not only in steps."""
    jobs = []
    for ds in datasets:
        task, extra, _ = DATASETS[ds]
        ref = _median_seconds(root / ds / _kname(ref_k))
        for b in BASELINES:
            got = _median_seconds(root / ds / b)
            if ref is None or got is None or got[0] > 0.75 * ref[0]:
                continue
            steps = int(round(got[1] * ref[0] / got[0], -2))
            for seed in seeds:
                jobs.append((root / ds / f"{b}-wall" / f"seed{seed}", task, b,
                             [*extra, f"train.steps={steps}", f"train.seed={seed}"]))
    return jobs


def report(root: Path, datasets: list[str], ks: list[int | None], seeds: int) -> Path:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yaml

    from ebtk.report.compare import _fmt
    from ebtk.report.machine import cpu_model

    lines = [
        "# SA-NCE study: refresh interval K vs baselines",
        "",
        f"Each row: mean ± std over seeds of `ebtk train` runs with the task's default config and the same step "
        f"budget (sampler, net and data identical across methods); `… same wall time` rows give the cheap "
        f"baselines as many steps as SA-NCE K={REF_K} spends in its wall time. `seeds` counts finished runs (a run "
        f"stopped by the divergence guard has no metrics). Lower is better everywhere. train s: one CPU thread "
        f"per run on {cpu_model()}, two runs in parallel.",
        "",
    ]
    fig_rows = []
    for ds in datasets:
        _, _, metrics = DATASETS[ds]
        cfg_path = next(iter(sorted((root / ds / _kname(ks[0])).glob("seed*/config.yaml"))), None)
        setup = ""
        if cfg_path is not None:
            c = yaml.safe_load(cfg_path.read_text())
            tr = c["train"]
            o = c["objective"]
            setup = (f"SA-NCE runs (baselines: their own objective defaults on the same task): {tr['steps']} steps, "
                     f"batch {tr['batch_size']}, lr {tr['lr']}, c {o['c']}, α {o['alpha']}, ν {o['nu']}; "
                     f"sampler {c['sampler']['steps']} Langevin steps of size {c['sampler']['step_size']}"
                     f"{' (persistent chains)' if c['sampler'].get('persistent') else ''}.")
        lines += [
            f"## {ds}",
            "",
            setup,
            "",
            "| method | seeds | " + " | ".join(metrics) + " | train s |",
            "|---|---|" + "---|" * (len(metrics) + 1),
        ]
        methods = [_kname(k) for k in ks] + BASELINES + [f"{b}-wall" for b in BASELINES]
        per_k: dict[str, list[list[float]]] = {m: [] for m in metrics}
        for m in methods:
            runs = [json.loads(p.read_text()) for p in sorted((root / ds / m).glob("seed*/metrics.json"))]
            if not runs:
                continue
            cells = [_fmt([r[k] for r in runs if r.get(k) is not None]) for k in metrics]
            secs = _fmt([r["train_seconds"] for r in runs if "train_seconds" in r])
            label = m.replace("sa-nce-K", "sa-nce K=").replace("=inf", "=∞")
            if m.endswith("-wall"):
                label = f"{m[:-5]}, same wall time ({runs[0]['steps']} steps)"
            # a run that diverged (stopped by the trainer's guard) leaves no metrics.json: count it, don't hide it
            lines.append(f"| {label} | {len(runs)}/{seeds} | " + " | ".join(cells) + f" | {secs} |")
            if m.startswith("sa-nce"):
                for k in metrics:
                    per_k[k].append([r[k] for r in runs if r.get(k) is not None])
        lines.append("")
        fig_rows.append((ds, metrics, per_k))
    fig, axes = plt.subplots(len(fig_rows), 3, figsize=(13, 3.3 * len(fig_rows)), squeeze=False)
    xs = [k if k else 1000 for k in ks]
    for row, (ds, metrics, per_k) in enumerate(fig_rows):
        for col in range(3):
            ax = axes[row][col]
            if col >= len(metrics) or len(per_k[metrics[col]]) != len(ks):
                ax.axis("off")
                continue
            vals = per_k[metrics[col]]
            mean = [sum(v) / len(v) for v in vals]
            std = [(sum((x - m) ** 2 for x in v) / max(len(v) - 1, 1)) ** 0.5 for v, m in zip(vals, mean)]
            ax.errorbar(xs, mean, yerr=std, fmt="o-", capsize=3)
            ax.set_xscale("log")
            ax.set_xticks(xs, [str(k) if k else "∞" for k in ks])
            ax.set_title(f"{ds}: {metrics[col]}")
            ax.set_xlabel("refresh interval K")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    png = root / "ksweep.png"
    save_figure(fig, png, dpi=110)
    plt.close(fig)
    lines += [f"![metric vs K]({png.name})", ""]
    md = root / "ksweep.md"
    atomic_write_text(md, "\n".join(lines))
    return md


def run_all(jobs: list, workers: int) -> None:
    jobs = [j for j in jobs if not (j[0] / "metrics.json").exists()]
    t0 = time.time()
    print(f"{len(jobs)} runs on {workers} workers")
    with ProcessPoolExecutor(workers) as pool:
        futs = {pool.submit(_job, str(d), t, o, ov, 1): d for d, t, o, ov in jobs}
        for i, f in enumerate(as_completed(futs), 1):
            try:
                f.result()
                print(f"[{i}/{len(jobs)}] {futs[f]} done ({time.time() - t0:.0f}s)", flush=True)
            except Exception as e:  # noqa: BLE001 - a diverged run is a result too; keep going
                print(f"[{i}/{len(jobs)}] {futs[f]} FAILED: {e}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/sa_nce_study")
    ap.add_argument("--datasets", default="8gaussians,checkerboard,digits")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ks", default=",".join(str(k or "never") for k in K_VALUES), help="never = K = ∞")
    ap.add_argument("--toy-steps", type=int, default=None, help="override toy2d train.steps")
    ap.add_argument("--digits-steps", type=int, default=None, help="override digits train.steps")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)))
    ap.add_argument("--quick", action="store_true", help="1 seed, K in {1,20,inf}, few steps")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    root = Path(a.out)
    datasets = [d for d in a.datasets.split(",") if d]
    ks = [None if k in ("never", "inf") else int(k) for k in a.ks.split(",")]
    seeds = list(range(a.seeds))
    steps = {"toy2d": a.toy_steps, "digits": a.digits_steps}
    if a.quick:
        ks, seeds, steps = [1, 20, None], [0], {"toy2d": a.toy_steps or 200, "digits": a.digits_steps or 100}
    if not a.report_only:
        run_all(plan(root, datasets, seeds, steps, ks), a.workers)
        if not a.quick:
            run_all(plan_wall_matched(root, datasets, seeds, REF_K), a.workers)
    print(report(root, datasets, ks, len(seeds)))


if __name__ == "__main__":
    main()
