"""SA-NCE study with an equal tuning budget: every method tuned on validation, then 5 test seeds with intervals.

For each dataset and each method (nce, fce, cd, pcd, sa-nce at K ∈ {1, 2, 5, 20, 100, ∞}, ssm, dsm):

1. **tune**: the same small grid for every method, lr × one second hyper-parameter (α for the Langevin-based
   methods, the noise scale or the nearest analogue for the others; `SECOND` says which), 1 tuning seed,
   scored on the *validation* split (toy2d: a val sample from its own seed stream, `eval.split=val`; digits:
   a stratified val split carved out of the training part, `data.val_fraction`). The config with the lowest
   val metric (toy2d: NLL, digits: FD) is chosen; a diverged config counts as +∞.
2. **test**: 5 seeds of the chosen config, scored on the test split. The report gives n, the mean, a 95 %
   Student-t interval, and a paired comparison (by seed) of every method against the best one.
3. **wall**: the sampler-free baselines (nce, fce, ssm, dsm) again with as many steps as SA-NCE at the best
   K spends in the same wall time (median train seconds), 5 seeds of their chosen config.
4. **variants** at the best K (lowest val metric among the tuned K): c estimated vs learned and ν = 4, 5
   seeds at the best K's chosen config (not re-tuned).

Every (dataset, method, config, seed, split) is one ordinary ebtk run dir under --root; a run whose
metrics.json exists (at the planned step count) is reused, an interrupted one resumes from its checkpoint,
a failed one (divergence guard) leaves `failed.txt` and counts as failed. After every run the raw
per-run numbers go to `results/sa_nce/runs.csv` and the table to `results/sa_nce/tuned.md`; the table
regenerates from the CSV alone with --report-only.

    nice python benchmarks/sa_nce_study.py                     # the whole study, resumable
    python benchmarks/sa_nce_study.py --report-only            # tuned.md from runs.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

K_VALUES: list[int | None] = [1, 2, 5, 20, 100, None]  # None = never refresh (K = ∞)
BASELINES = ["nce", "fce", "cd", "pcd", "ssm", "dsm"]
SAMPLER_FREE = ["nce", "fce", "ssm", "dsm"]
TEST_SEEDS = [0, 1, 2, 3, 4]
TUNE_SEED = 1000

# dataset -> (task, fixed overrides, selection/test metric, secondary metrics)
DATASETS: dict[str, tuple[str, list[str], str, tuple[str, ...]]] = {
    "8gaussians": ("toy2d", ["data.name=8gaussians"], "nll", ("kl", "mmd", "mass_outside")),
    "checkerboard": ("toy2d", ["data.name=checkerboard"], "nll", ("kl", "mmd", "mass_outside")),
    "digits": ("digits", ["data.val_fraction=0.2"], "fd", ("kid",)),
    "rings": ("toy2d", ["data.name=rings"], "nll", ("kl", "mmd", "mass_outside")),
}
# The grid's levels; the first two form the reduced 2 × 2 grid (--grid 2x2), all three the 3 × 3 grid.
LRS = {"toy2d": [3e-3, 1e-3, 1e-2], "digits": [1e-3, 2e-3, 5e-4]}
# method -> (override key, levels per task): the second axis of each method's grid
SECOND: dict[str, tuple[str, dict[str, list[Any]]]] = {
    "langevin": ("objective.alpha", {"toy2d": [0.01, 0.1, 0.001], "digits": [0.1, 0.01, 0.3]}),
    "nce": ("objective.noise_scale", {"toy2d": [1.0, 2.0, 0.5], "digits": [1.0, 2.0, 0.5]}),
    "fce": ("objective.noise_weight", {"toy2d": [1.0, 0.3, 3.0], "digits": [1.0, 0.3, 3.0]}),
    "ssm": ("objective.n_projections", {"toy2d": [1, 4, 2], "digits": [1, 4, 2]}),
    "dsm": ("objective.sigmas", {"toy2d": [[0.1], [0.05], [0.2]], "digits": [[0.1], [0.05], [0.2]]}),
}


def kname(k: int | None) -> str:
    return f"sa-nce-K{k or 'inf'}"


def main_methods() -> list[str]:
    """In the order they run: the K = 1 ≡ PCD pair and cd first, then the other baselines, then the K-sweep."""
    return [kname(1), "pcd", "cd", "nce", "fce", "ssm", "dsm", *[kname(k) for k in K_VALUES[1:]]]


def method_spec(method: str) -> tuple[str, list[str], str]:
    """(objective name, fixed overrides, grid family) of a method name such as sa-nce-K20, sa-nce-K5-nu4."""
    if method.startswith("sa-nce-K"):
        parts = method[len("sa-nce-K") :].split("-")
        k = parts[0]
        fixed = [f"objective.interval={'never' if k == 'inf' else int(k)}"]
        for extra in parts[1:]:
            if extra.startswith("nu"):
                fixed.append(f"objective.nu={int(extra[2:])}")
            elif extra.startswith("c"):
                fixed.append(f"objective.c={extra[1:]}")
        return "sa-nce", fixed, "langevin"
    base = method.split("@")[0]
    return base, [], ("langevin" if base in ("cd", "pcd") else base)


def fmt_value(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ",".join(fmt_value(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass
class Config:
    lr: float
    key: str
    value: Any

    @property
    def label(self) -> str:
        short = self.key.split(".")[-1].replace("noise_", "").replace("n_projections", "proj")
        v = fmt_value(self.value).replace(",", "+").replace("[", "").replace("]", "")
        return f"lr{fmt_value(self.lr)}_{short}{v}"

    def overrides(self) -> list[str]:
        return [f"train.lr={self.lr}", f"{self.key}={fmt_value(self.value)}"]


def grid(task: str, method: str, levels: int) -> list[Config]:
    _, _, fam = method_spec(method)
    key, vals = SECOND[fam]
    return [Config(lr, key, v) for lr in LRS[task][:levels] for v in vals[task][:levels]]


@dataclass
class Run:
    dataset: str
    method: str
    stage: str  # tune | test | wall | variant
    config: Config
    seed: int
    split: str  # val | test
    steps: int
    root: Path

    @property
    def dir(self) -> Path:
        return self.root / self.dataset / self.method / self.config.label / f"seed{self.seed}-{self.split}"

    def overrides(self, tune_eval: dict[str, list[str]]) -> list[str]:
        task, fixed, _, _ = DATASETS[self.dataset]
        _, mfixed, _ = method_spec(self.method)
        ev = [f"eval.split={self.split}"] + (tune_eval.get(task, []) if self.split == "val" else [])
        return [
            *fixed,
            *mfixed,
            *self.config.overrides(),
            f"train.steps={self.steps}",
            f"train.seed={self.seed}",
            "train.threads=1",
            *ev,
        ]

    def identity(self) -> dict[str, Any]:
        task = DATASETS[self.dataset][0]
        return {
            "dataset": self.dataset,
            "task": task,
            "method": self.method,
            "objective": method_spec(self.method)[0],
            "stage": self.stage,
            "config": self.config.label,
            "lr": self.config.lr,
            "param": self.config.key,
            "param_value": fmt_value(self.config.value),
            "seed": self.seed,
            "split": self.split,
            "steps": self.steps,
        }


IDENTITY_FIELDS = ("dataset", "task", "method", "objective", "stage", "config", "lr", "param", "param_value",
                   "seed", "split", "steps")  # Run.identity()'s keys, in order: a CSV row's first columns

CSV_FIELDS = [
    *IDENTITY_FIELDS,
    "status",
    "metric",
    "value",
    "train_seconds",
    "nll",
    "true_nll",
    "kl",
    "mmd",
    "mass_outside",
    "fd",
    "kid",
    "fd_test",
    "run_dir",
    "error",
]


def run_state(run: Run) -> str:
    """done (metrics.json at the planned steps) | failed (failed.txt) | todo."""
    m = run.dir / "metrics.json"
    if m.exists():
        try:
            if int(json.loads(m.read_text()).get("steps", -1)) == run.steps:
                return "done"
        except (OSError, ValueError):
            pass
    if (run.dir / "failed.txt").exists():
        return "failed"
    return "todo"


def default_runner(task: str, objective: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from ebtk.train.trainer import train

    return train(task, objective, out, overrides=overrides, progress=False)


@dataclass
class Study:
    root: Path
    csv_path: Path
    md_path: Path
    datasets: list[str]
    steps: dict[str, int]
    levels: int = 2
    seeds: list[int] = field(default_factory=lambda: list(TEST_SEEDS))
    methods: list[str] = field(default_factory=main_methods)
    variants: list[str] = field(default_factory=lambda: ["c", "nu4"])
    walls: bool = True
    tune_eval: dict[str, list[str]] = field(default_factory=lambda: {"toy2d": ["eval.n_samples=200"]})
    runner: Callable[[str, str, Path, list[str]], dict[str, Any]] = default_runner
    retry_failed: bool = False
    deadline: float | None = None  # time.time() after which no new run starts
    log: Callable[[str], None] = print

    # -- running ------------------------------------------------------------------------------------
    def execute(self, run: Run) -> None:
        state = run_state(run)
        if state == "done" or (state == "failed" and not self.retry_failed):
            return
        if self.deadline is not None and time.time() > self.deadline:
            raise TimeoutError("deadline reached")
        run.dir.mkdir(parents=True, exist_ok=True)
        (run.dir / "failed.txt").unlink(missing_ok=True)
        (run.dir / "study_run.json").write_text(json.dumps(run.identity(), indent=1) + "\n")
        task = DATASETS[run.dataset][0]
        objective = method_spec(run.method)[0]
        t0 = time.time()
        try:
            self.runner(task, objective, run.dir, run.overrides(self.tune_eval))
            self.log(f"done {run.dir.relative_to(self.root)} ({time.time() - t0:.0f} s)")
        except Exception as e:  # noqa: BLE001 - a diverged run is a result too; record it and go on
            msg = " ".join(str(e).split())[:300] or type(e).__name__
            (run.dir / "failed.txt").write_text(msg + "\n")
            self.log(f"FAILED {run.dir.relative_to(self.root)}: {msg}")
        self.write_outputs()

    def write_outputs(self) -> None:
        rows = collect(self.root)
        # rows of runs whose dirs are not under this root (another machine, a cleaned runs/) stay in the CSV:
        # a run dir present here replaces its row, nothing recorded is dropped
        if self.csv_path.exists():
            here = {r["run_dir"] for r in rows}
            kept = [r for r in read_csv(self.csv_path) if r["run_dir"] not in here and r["status"] != "todo"]
            rows = sorted(kept + rows, key=lambda r: r["run_dir"])
        write_csv(rows, self.csv_path)
        self.md_path.write_text(report(rows, self.levels, len(self.seeds)))

    # -- planning -----------------------------------------------------------------------------------
    def tune_runs(self, ds: str, method: str) -> list[Run]:
        task = DATASETS[ds][0]
        return [
            Run(ds, method, "tune", c, TUNE_SEED, "val", self.steps[task], self.root)
            for c in grid(task, method, self.levels)
        ]

    def chosen(self, ds: str, method: str) -> Config | None:
        """The config with the lowest val metric among this method's tuning runs (all must be finished)."""
        runs = self.tune_runs(ds, method)
        if any(run_state(r) == "todo" for r in runs):
            return None
        scores = [(val_score(r, DATASETS[ds][2]), i) for i, r in enumerate(runs)]
        best = min(scores)
        return None if math.isinf(best[0]) else runs[best[1]].config

    def test_runs(
        self,
        ds: str,
        method: str,
        stage: str = "test",
        steps: int | None = None,
        config: Config | None = None,
        name: str | None = None,
    ) -> list[Run]:
        task = DATASETS[ds][0]
        cfg = config or self.chosen(ds, method)
        if cfg is None:
            return []
        return [
            Run(ds, name or method, stage, cfg, s, "test", steps or self.steps[task], self.root) for s in self.seeds
        ]

    def best_k(self, ds: str) -> str | None:
        """The SA-NCE K whose chosen config has the lowest val metric (selection on val only)."""
        best: tuple[float, str] | None = None
        for k in K_VALUES:
            m = kname(k)
            if m not in self.methods:
                continue
            cfg = self.chosen(ds, m)
            if cfg is None:
                continue
            r = next(r for r in self.tune_runs(ds, m) if r.config == cfg)
            s = val_score(r, DATASETS[ds][2])
            if best is None or s < best[0]:
                best = (s, m)
        return best[1] if best else None

    def main_stage(self, ds: str) -> Iterator[Run]:
        for m in self.methods:
            yield from self.tune_runs(ds, m)
            yield from self.test_runs(ds, m)

    def wall_stage(self, ds: str) -> Iterator[Run]:
        task = DATASETS[ds][0]
        ref_m = self.best_k(ds)
        if ref_m is None or not self.walls:
            return
        ref = median_seconds(self.test_runs(ds, ref_m))
        for m in SAMPLER_FREE:
            if m not in self.methods:
                continue
            got = median_seconds(self.test_runs(ds, m))
            if ref is None or got is None or got > 0.75 * ref:
                continue
            steps = int(round(self.steps[task] * ref / got, -2))
            yield from self.test_runs(ds, m, "wall", steps=steps, name=f"{m}@wall{steps}")

    def variant_stage(self, ds: str, which: str) -> Iterator[Run]:
        ref_m = self.best_k(ds)
        cfg = self.chosen(ds, ref_m) if ref_m else None
        if cfg is None or which not in self.variants:
            return
        task = DATASETS[ds][0]
        if which == "c":
            from ebtk.train.trainer import resolve_config

            default_c = resolve_config(task, "sa-nce")["objective"]["c"]
            suffix = "cestimated" if default_c == "learned" else "clearned"
        else:
            suffix = which
        yield from self.test_runs(ds, ref_m, "variant", config=cfg, name=f"{ref_m}-{suffix}")

    def plan(self) -> Iterator[Run]:
        """Runs in priority order (see the module docstring); planned lazily, since a stage depends on the
        results of the one before. rings goes last: it is the first thing to drop when time runs short."""
        first = [d for d in self.datasets if d != "rings"]
        last = [d for d in self.datasets if d == "rings"]
        for group in (first, last):
            for ds in group:
                yield from self.main_stage(ds)
            for ds in group:
                yield from self.wall_stage(ds)
            for which in ("c", "nu4"):
                for ds in group:
                    yield from self.variant_stage(ds, which)

    def run(self) -> None:
        try:
            for r in self.plan():
                self.execute(r)
        except TimeoutError:
            self.log("deadline reached: stopping before the next run (rerun the same command to resume)")
        self.write_outputs()


def val_score(run: Run, metric: str) -> float:
    """The run's metric (its split's), +∞ when it failed or the metric is missing/NaN."""
    try:
        v = json.loads((run.dir / "metrics.json").read_text()).get(metric)
    except (OSError, ValueError):
        return math.inf
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.inf


def median_seconds(runs: list[Run]) -> float | None:
    secs = []
    for r in runs:
        try:
            m = json.loads((r.dir / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        if "train_seconds" in m and m.get("steps") == r.steps:
            secs.append(float(m["train_seconds"]))
    return statistics.median(secs) if len(secs) == len(runs) and secs else None


# -- raw numbers --------------------------------------------------------------------------------------
METRIC_KEYS = ("train_seconds", "nll", "true_nll", "kl", "mmd", "mass_outside", "fd", "kid", "fd_test")  # metrics.json


def floor_key(metric: str) -> str:
    """The metrics.json key of the metric's floor: the data's own NLL (toy2d), real digits' FD (digits)."""
    return "true_nll" if metric == "nll" else "fd_test"


def collect(root: Path) -> list[dict[str, Any]]:
    """One row per run dir of the study under `root` (its study_run.json + metrics.json or failed.txt)."""
    rows = []
    for ident_path in sorted(root.glob("*/*/*/seed*/study_run.json")):
        d = ident_path.parent
        row: dict[str, Any] = json.loads(ident_path.read_text())
        metric = DATASETS[row["dataset"]][2]
        row.update(metric=metric, run_dir=str(d.relative_to(root)), status="todo", value="")
        mpath = d / "metrics.json"
        m = None
        if mpath.exists():
            try:
                m = json.loads(mpath.read_text())
            except ValueError:
                m = None
        if m is not None and int(m.get("steps", -1)) == int(row["steps"]):
            v = m.get(metric)
            row["status"] = "ok" if isinstance(v, (int, float)) and math.isfinite(v) else "nan"
            row["value"] = v if row["status"] == "ok" else ""
            for k in METRIC_KEYS:
                if m.get(k) is not None:
                    row[k] = m[k]
        elif (d / "failed.txt").exists():
            row["status"] = "failed"
            row["error"] = (d / "failed.txt").read_text().strip()
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import io

    from ebtk.io import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())


def read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- the table ----------------------------------------------------------------------------------------
def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def select(rows: list[dict[str, Any]], dataset: str, method: str) -> tuple[str | None, float | None, int, int]:
    """(chosen config, its val value, configs finished, configs tried) from the tuning rows: val metric only."""
    tune = [
        r
        for r in rows
        if r["dataset"] == dataset and r["method"] == method and r["stage"] == "tune" and r["split"] == "val"
    ]
    finished = [r for r in tune if r["status"] in ("ok", "nan", "failed")]
    scored = [(_num(r["value"]), r["config"]) for r in finished if _num(r["value"]) is not None]
    if not scored:
        return None, None, len(finished), len(tune)
    v, c = min(scored)
    return c, v, len(finished), len(tune)


def test_values(rows: list[dict[str, Any]], dataset: str, method: str, key: str = "value") -> dict[int, float]:
    """seed -> test value of a method's finished test-split runs (failed and NaN runs left out)."""
    out = {}
    for r in rows:
        if r["dataset"] == dataset and r["method"] == method and r["split"] == "test" and r["status"] == "ok":
            v = _num(r.get(key))
            if v is not None:
                out[int(r["seed"])] = v
    return out


def paired(a: dict[int, float], b: dict[int, float]):
    """Paired t-interval of a − b over the seeds both have."""
    from ebtk.metrics.stats import paired_t_interval

    seeds = sorted(set(a) & set(b))
    return paired_t_interval([a[s] for s in seeds], [b[s] for s in seeds])


def _g(x: float, d: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.{d}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _ci(iv) -> str:
    return f"[{_g(iv.lo)}, {_g(iv.hi)}]" if iv.n >= 2 else "–"


def report(rows: list[dict[str, Any]], levels: int = 2, n_seeds: int = 5) -> str:
    from ebtk.metrics.stats import t_interval

    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in rows)]
    missing: list[str] = []
    out = [
        "# SA-NCE study: every method tuned on validation, 5 test seeds, 95 % t-intervals",
        "",
        "Generated by `benchmarks/sa_nce_study.py` from `runs.csv` (one row per run; regenerate with "
        "`python benchmarks/sa_nce_study.py --report-only`). Lower is better everywhere.",
        "",
        f"- **Tuning**: the same {levels} × {levels} grid for every method: lr × one second hyper-parameter "
        "(column *param*: α = `objective.alpha` for cd, pcd and SA-NCE; `noise_scale`, the fitted Gaussian's "
        "covariance multiplier, for nce; `noise_weight`, the weight of the flow/GMM noise model's ML term, for "
        "fce; `n_projections` for ssm; the noise level σ for dsm), one tuning seed "
        f"(seed {TUNE_SEED}), chosen on the **validation** metric: val NLL (toy2d: a val sample from a seed "
        "stream apart from the test sample's) or val FD (digits: 20 % of the training part held out, "
        "stratified; the test split is never used for choosing). A diverged config counts as +∞.",
        f"- **Test**: {n_seeds} seeds (0–{n_seeds - 1}) of the chosen config on the test split; *n* counts "
        "finished runs (a run stopped by the divergence guard is left out of the mean, and counted in n/planned). "
        "**95 % CI**: Student-t interval of the mean, mean ± t₀.₉₇₅,ₙ₋₁·s/√n. **Δ vs best**: paired by seed "
        "(same seed = same data stream) against the method with the lowest test mean, mean difference and its "
        "95 % t-interval; an interval that excludes 0 is marked *.",
        "- **Budgets**: every row of the main block has the same number of training steps (and the task's "
        "shared lr/batch/sampler/α for the Langevin-based methods before tuning). `@wall` rows: the "
        "sampler-free baselines again with as many steps as SA-NCE at the best K spends in its median wall "
        "time. Variants (c, ν) run at the best K's chosen config, not re-tuned; the best K is the one with the "
        "lowest *val* metric.",
        "- train s: median seconds of training (evaluation excluded), one CPU thread per run, one run at a "
        "time on a shared 2-core machine (other jobs were running: timings are noisy).",
        "",
    ]
    for ds in datasets:
        drows = [r for r in rows if r["dataset"] == ds]
        metric = DATASETS[ds][2]
        secondary = DATASETS[ds][3]
        steps = sorted({int(r["steps"]) for r in drows if r["stage"] == "tune"})
        out += [f"## {ds} (test {metric}; {'/'.join(map(str, steps))} steps)", ""]
        floors = [_num(r.get(floor_key(metric))) for r in drows if r["split"] == "test" and r["status"] == "ok"]
        floors = [f for f in floors if f is not None]
        if floors:
            what = (
                "the data's own NLL on the test sample (a perfect model)"
                if metric == "nll"
                else ("FD of as many real training digits against the test digits")
            )
            out += [f"Floor: {_g(statistics.median(floors))}, {what}.", ""]
        grid_line = []
        for fam, (key, vals) in SECOND.items():
            task = DATASETS[ds][0]
            who = "cd, pcd, sa-nce" if fam == "langevin" else fam
            grid_line.append(f"{who}: `{key}` ∈ {{{', '.join(fmt_value(v) for v in vals[task][:levels])}}}")
        out += [
            f"Grid: lr ∈ {{{', '.join(fmt_value(v) for v in LRS[DATASETS[ds][0]][:levels])}}} × "
            + "; ".join(grid_line)
            + ".",
            "",
        ]
        main = [m for m in main_methods() if any(r["method"] == m for r in drows)]
        tv = {m: test_values(drows, ds, m) for m in main}
        means = {m: sum(v.values()) / len(v) for m, v in tv.items() if len(v) >= 2}
        best = min(means, key=means.get) if means else None
        out += [
            f"| method | param | chosen (lr, param) | val {metric} | n | test {metric}: mean | 95 % CI (t) | "
            f"Δ vs best ({best or '–'}) | 95 % CI of Δ (t) | "
            + " | ".join(f"{s} (mean)" for s in secondary)
            + " | train s | steps |",
            "|---|---|---|---|---|---|---|---|---|" + "---|" * len(secondary) + "---|---|",
        ]
        extra = sorted({r["method"] for r in drows} - set(main), key=lambda m: (0 if "@wall" in m else 1, m))
        for m in main + extra:
            mrows = [r for r in drows if r["method"] == m]
            stage = mrows[0]["stage"]
            if stage in ("tune", "test"):
                cfg, vval, fin, tried = select(drows, ds, m)
                if fin < tried:
                    missing.append(f"{ds}/{m}: tuning {fin}/{tried} configs")
            else:
                cfg, vval = mrows[0]["config"], None
            vals = test_values(drows, ds, m)
            tests_all = [r for r in mrows if r["split"] == "test"]
            n_planned = max(len({r["seed"] for r in tests_all}), n_seeds)
            iv = t_interval(list(vals.values()))
            if len(vals) < n_seeds:
                missing.append(
                    f"{ds}/{m}: test seeds {len(vals)}/{n_seeds}"
                    + (
                        f" ({sum(r['status'] == 'failed' for r in tests_all)} diverged)"
                        if any(r["status"] == "failed" for r in tests_all)
                        else ""
                    )
                )
            if best and m != best and len(vals) >= 2:
                d = paired(vals, tv[best])
                dcell, dci = (_g(d.mean) + ("*" if d.excludes_zero() else ""), _ci(d))
            else:
                dcell, dci = ("0 (best)" if m == best else "–"), "–"
            sec = []
            for s in secondary:
                sv = list(test_values(drows, ds, m, s).values())
                sec.append(_g(sum(sv) / len(sv)) if sv else "–")
            secs = [_num(r.get("train_seconds")) for r in tests_all if r["status"] == "ok"]
            secs = [s for s in secs if s is not None]
            stp = {int(r["steps"]) for r in tests_all} or {int(mrows[0]["steps"])}
            key = mrows[0]["param"].split(".")[-1]
            label = m.replace("sa-nce-K", "sa-nce K=").replace("=inf", "=∞")
            chosen = (
                "–"
                if cfg is None
                else next((f"{r['lr']}, {r['param_value']}" for r in mrows if r["config"] == cfg), cfg)
            )
            out.append(
                f"| {label} | {key} | {chosen} | {_g(vval) if vval is not None else '–'} | "
                f"{len(vals)}/{n_planned} | {_g(iv.mean)} | {_ci(iv)} | {dcell} | {dci} | "
                + " | ".join(sec)
                + f" | {_g(statistics.median(secs), 3) if secs else '–'} | "
                f"{'/'.join(map(str, sorted(stp)))} |"
            )
        out.append("")
        # K-sweep against K = 1 (≡ PCD with 2α) and against pcd, paired by seed
        ks = [kname(k) for k in K_VALUES if kname(k) in tv and len(tv[kname(k)]) >= 2]
        if ks and kname(1) in ks:
            out += [
                f"K-sweep, paired by seed: each K against K = 1 and against pcd (test {metric}).",
                "",
                "| K | n | mean | 95 % CI (t) | Δ vs K=1 | 95 % CI | Δ vs pcd | 95 % CI |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for m in ks:
                iv = t_interval(list(tv[m].values()))
                cells = []
                for ref in (kname(1), "pcd"):
                    if m == ref or ref not in tv or len(set(tv[m]) & set(tv[ref])) < 2:
                        cells += ["–", "–"]
                        continue
                    d = paired(tv[m], tv[ref])
                    cells += [_g(d.mean) + ("*" if d.excludes_zero() else ""), _ci(d)]
                out.append(
                    f"| {m[len('sa-nce-K') :].replace('inf', '∞')} | {iv.n} | {_g(iv.mean)} | {_ci(iv)} | "
                    + " | ".join(cells)
                    + " |"
                )
            out.append("")
        # variants (c, ν) and wall-matched rows against the row they vary, paired by seed
        pairs = []
        for m in extra:
            base = m.split("@")[0] if "@wall" in m else m.rsplit("-", 1)[0]
            if base in tv and len(set(test_values(drows, ds, m)) & set(tv[base])) >= 2:
                pairs.append((m, base))
        if pairs:
            out += [
                f"Variants and same-wall-time rows against the row they vary, paired by seed (test {metric}).",
                "",
                "| row | against | n | Δ | 95 % CI (t) |",
                "|---|---|---|---|---|",
            ]
            for m, base in pairs:
                d = paired(test_values(drows, ds, m), tv[base])
                lab = base.replace("sa-nce-K", "sa-nce K=").replace("=inf", "=∞")
                out.append(f"| {m} | {lab} | {d.n} | {_g(d.mean)}{'*' if d.excludes_zero() else ''} | {_ci(d)} |")
            out.append("")
    for ds in DATASETS:
        if ds not in datasets:
            missing.append(f"{ds}: no runs yet")
    if missing:
        out[0] += " (PARTIAL)"
        out += [
            "## Missing (this table is partial)",
            "",
            "Cells still missing when this file was written; rerun the study command to fill them:",
            "",
        ]
        out += [f"- {m}" for m in missing]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(REPO / "runs" / "sa_nce_study"), help="run dirs")
    ap.add_argument("--results", default=str(REPO / "results" / "sa_nce"), help="runs.csv and tuned.md go here")
    ap.add_argument("--datasets", default="8gaussians,checkerboard,digits,rings")
    ap.add_argument("--methods", default=",".join(main_methods()))
    ap.add_argument("--grid", default="2x2", choices=["2x2", "3x3"])
    ap.add_argument("--toy-steps", type=int, default=500)
    ap.add_argument("--digits-steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=len(TEST_SEEDS))
    ap.add_argument("--variants", default="c,nu4", help="variants at the best K: c, nu4 (empty: none)")
    ap.add_argument("--no-wall", action="store_true", help="skip the same-wall-clock rows")
    ap.add_argument("--retry-failed", action="store_true")
    ap.add_argument("--stop-at", default=None, help="UTC time HH:MM after which no new run starts")
    ap.add_argument("--report-only", action="store_true", help="rewrite tuned.md from runs.csv, run nothing")
    a = ap.parse_args(argv)
    res = Path(a.results)
    csv_path, md_path = res / "runs.csv", res / "tuned.md"
    levels = int(a.grid[0])
    if a.report_only:
        md_path.write_text(report(read_csv(csv_path), levels, a.seeds))
        print(md_path)
        return
    deadline = None
    if a.stop_at:
        import datetime as dt

        h, m = map(int, a.stop_at.split(":"))
        now = dt.datetime.now(dt.UTC)
        stop = now.replace(hour=h, minute=m, second=0, microsecond=0)
        deadline = stop.timestamp() if stop > now else (stop + dt.timedelta(days=1)).timestamp()
    study = Study(
        root=Path(a.root),
        csv_path=csv_path,
        md_path=md_path,
        datasets=[d for d in a.datasets.split(",") if d],
        steps={"toy2d": a.toy_steps, "digits": a.digits_steps},
        levels=levels,
        seeds=list(range(a.seeds)),
        methods=[m for m in a.methods.split(",") if m],
        variants=[v for v in a.variants.split(",") if v],
        walls=not a.no_wall,
        retry_failed=a.retry_failed,
        deadline=deadline,
        log=lambda s: print(time.strftime("%H:%M:%S"), s, flush=True),
    )
    study.run()
    print(md_path)


if __name__ == "__main__":
    sys.exit(main())
