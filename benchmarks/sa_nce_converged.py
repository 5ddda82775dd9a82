"""The SA-NCE study at convergence: budgets from a pilot by a stated plateau rule, tuning at that budget,
learning curves (val metric vs steps and vs training seconds) over 5 test seeds, final quality, time to
quality and the K-sweep. Reuses `sa_nce_study.py`'s machinery (methods, grids, run dirs, resume, CSV rows).

Stages, in order (every run an ordinary ebtk run dir under --root, resumable; `train.eval_every` writes its
val curve to `eval_curve.jsonl`; after every run the CSVs and reports in --results are rewritten):

1. **pilot**: each method's *default* config (`ebtk train TASK --objective X`), tuning seed 1000, at a long
   budget (`PILOT_STEPS`), its val curve every 1/40 of the run. The **plateau rule** (`plateau_budget`) on
   the curve of the pilot's best method (lowest final val metric) gives the dataset's budget B.
2. **tuning at B**, the same 3 × 3 grid for every method (`sa_nce_study.grid`: lr × the method's second
   parameter), two stages applied equally to all: (a) the full grid at B/4; (b) the 3 configs with the
   lowest stage-(a) val metric continued to B (from their B/4 checkpoint: the same run as one trained to B
   from scratch, since batches are seeded per step and the RNG state is checkpointed). The chosen config
   has the lowest val metric at B. A diverged config counts as +∞ and is counted in the report.
3. **test**: 5 seeds of the chosen config at B; final metric on the test split, curve on val.
4. **wall**: the sampler-free baselines at the median training seconds of SA-NCE's best K (as in the
   short-budget study).

    nice -n 10 python benchmarks/sa_nce_converged.py                  # pilot, then the study (resumable)
    python benchmarks/sa_nce_converged.py --report-only               # pilot.md, converged.md, PNGs from CSVs
    python benchmarks/sa_nce_converged.py --quick --root /tmp/q --results /tmp/q/res   # the pipeline, tiny
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sa_nce_study as base  # noqa: E402

REPO = base.REPO
# the harder toy2d target (25 narrow modes, mostly empty space: NCE's fixed Gaussian noise is unlike it)
base.DATASETS.setdefault("25gaussians", ("toy2d", ["data.name=25gaussians"], "nll", ("kl", "mmd", "mass_outside")))
DATASETS = ["8gaussians", "25gaussians", "checkerboard", "digits"]
PILOT_STEPS = {"toy2d": 10_000, "digits": 5_000}
N_EVALS = 40  # evaluations per run of B steps: train.eval_every = B / 40
# plateau rule: the val metric's mean over the last fifth of a run improves on its mean over the fifth before
# by less than `tol` (toy2d: nats; digits: a fraction of the later mean)
PLATEAU_TOL = {"toy2d": 0.01, "digits": 0.02}
PLATEAU_RELATIVE = {"toy2d": False, "digits": True}
BUDGET_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)  # candidate budgets, as fractions of the pilot
QUALITY_GAP = 0.1  # toy2d: time to val NLL ≤ floor + 0.1 nats
QUALITY_FACTOR = 2.0  # digits: time to val FD ≤ 2 × floor FD
# CPU seconds a test run's evaluation costs beyond a tuning run's (toy2d: 2000 Langevin samples for the MMD
# instead of the tuning runs' 200; measured 1.51 vs 0.20 s per evaluation on one thread), × (N_EVALS + 1)
TEST_EVAL_EXTRA_S = {"toy2d": 1.3, "digits": 0.0}
HOURS_AVAILABLE = 7.5  # three sessions of ~2.5 h on one core
# what is dropped first when the plan does not fit (never seeds, grid size or evaluation size)
CUT_ORDER = ["sa-nce-K100", "sa-nce-K2", "checkerboard", "sa-nce-K20"]
QUICK_EVAL = ["eval.n_samples=16", "eval.grid=40", "eval.sample_steps=2", "data.n_test=200"]
RUN_FIELDS = [*base.CSV_FIELDS, "wall_seconds", "cpu_seconds", "eval_every"]
CURVE_FIELDS = ["dataset", "method", "stage", "config", "seed", "split", "steps", "step", "seconds", "cpu_seconds",
                "value", "floor", "run_dir"]


# -- the rules, on curves ---------------------------------------------------------------------------------
def _window_mean(points: Sequence[tuple[float, float]], lo: float, hi: float) -> float | None:
    vals = [v for x, v in points if lo < x <= hi]
    return sum(vals) / len(vals) if vals else None


def plateau_gain(points: Sequence[tuple[float, float]], end: float, frac: float = 0.2, relative: bool = False
                 ) -> float | None:
    """Improvement of a curve over the last `frac` of [0, end]: mean of the values with x in
    (end − 2·frac·end, end − frac·end] minus the mean of those in (end − frac·end, end] (relative: divided
    by the latter, for a positive metric such as FD). points: (x, value) pairs, lower is better. None when a
    window holds no point (or a value is not finite)."""
    a = _window_mean(points, end * (1 - 2 * frac), end * (1 - frac))
    b = _window_mean(points, end * (1 - frac), end)
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return (a - b) / b if relative else a - b


def plateaued(points: Sequence[tuple[float, float]], end: float, tol: float, relative: bool = False) -> bool:
    """The plateau rule at `end`: gain < tol (relative: gain < tol × the last window's mean)."""
    g = plateau_gain(points, end, relative=relative)
    return g is not None and g < tol


def plateau_budget(
    points: Sequence[tuple[float, float]], candidates: Sequence[int], tol: float, relative: bool = False
) -> int | None:
    """The smallest candidate budget at which the curve has plateaued and stays plateaued at every larger
    candidate the curve reaches; None when the curve has not plateaued by its end."""
    last = max((x for x, _ in points), default=0)
    cands = sorted(c for c in candidates if c <= last)
    ok = [plateaued(points, c, tol, relative) for c in cands]
    for i, c in enumerate(cands):
        if all(ok[i:]):
            return c
    return None


def first_reach(rows: Sequence[tuple[float, float]], threshold: float) -> float | None:
    """The first x (e.g. training seconds) whose value is ≤ threshold, rows (x, value) in x order; None
    when the curve never gets there ("not reached" is a result)."""
    for x, v in sorted(rows):
        if v is not None and math.isfinite(v) and v <= threshold:
            return x
    return None


def quality_threshold(task: str, floor: float) -> float:
    """toy2d: floor + 0.1 nats (floor: the data's own NLL on the val sample); digits: 2 × the floor FD (real
    training digits against the val digits)."""
    return floor + QUALITY_GAP if task == "toy2d" else QUALITY_FACTOR * floor


# -- runs ---------------------------------------------------------------------------------------------------
@dataclass
class StagedRun(base.Run):
    """A run whose dir carries a tag (tuning stage 2: `-full`), optionally continued from another run's
    checkpoint (stage 2 continues stage 1's B/4 run to B)."""

    tag: str = ""
    start_from: base.Run | None = None

    @property
    def dir(self) -> Path:
        d = super().dir
        return d.with_name(f"{d.name}-{self.tag}") if self.tag else d


def default_config(task: str, method: str) -> base.Config:
    """The method's default lr and second parameter, as a grid point (what `ebtk train` uses)."""
    from ebtk.train.trainer import resolve_config

    obj, fixed, fam = base.method_spec(method)
    key, _ = base.SECOND[fam]
    cfg = resolve_config(task, obj, overrides=fixed)
    sec, name = key.split(".")
    return base.Config(float(cfg["train"]["lr"]), key, cfg[sec][name])


def pilot_methods(task: str) -> list[str]:
    """Each objective at its defaults; SA-NCE at the task's default refresh interval K."""
    from ebtk.train.trainer import resolve_config

    k = resolve_config(task, "sa-nce")["objective"]["interval"]
    return [base.kname(None if k == "never" else int(k)), "pcd", "cd", "nce", "fce", "ssm", "dsm"]


def eval_every(steps: int, n_evals: int = N_EVALS) -> int:
    return max(1, steps // n_evals)


@dataclass
class CurveStudy(base.Study):
    """`sa_nce_study.Study` with learning curves, the two-stage tuning and its own CSVs and reports."""

    curves_path: Path = Path("curves.csv")
    kind: str = "main"  # main | pilot
    extra: list[str] = field(default_factory=list)  # more overrides for every run (--quick: a tiny eval)
    report_fn: Callable[[Path], None] | None = None
    n_evals: int = N_EVALS  # evaluations per run of B steps
    report_every: float = 120.0  # seconds between report rewrites while running (the CSVs: after every run)
    _last_report: float = 0.0

    def runner_for(self, every: int) -> Callable[[str, str, Path, list[str]], dict[str, Any]]:
        inner = self.runner

        def run(task: str, objective: str, out: Path, overrides: list[str]) -> dict[str, Any]:
            from ebtk.io import atomic_write_text

            t0, c0 = time.time(), time.process_time()
            try:
                return inner(task, objective, out, [*overrides, f"train.eval_every={every}", "train.eval_split=val",
                                                    *self.extra])
            finally:  # the run's wall and process CPU time, evaluations included (the compute plan's unit)
                atomic_write_text(Path(out) / "study_wall.json", json.dumps(
                    {"wall_seconds": round(time.time() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2),
                     "eval_every": every}) + "\n")

        return run

    def execute(self, run: base.Run) -> None:
        if base.run_state(run) == "done" or (base.run_state(run) == "failed" and not self.retry_failed):
            return
        src = getattr(run, "start_from", None)
        # a source restored from the CSVs has no checkpoint: then stage 2 trains to B from scratch
        if (src is not None and not (run.dir / "checkpoint.pt").exists() and base.run_state(src) == "done"
                and (src.dir / "checkpoint.pt").exists()):
            run.dir.mkdir(parents=True, exist_ok=True)
            for name in ("checkpoint.pt", "config.yaml", "eval_curve.jsonl"):
                if (src.dir / name).exists():
                    shutil.copy2(src.dir / name, run.dir / name)
        # B/40 for the runs of B steps and the stage-1 runs of B/4 (whose curve stage 2 continues); a longer
        # run (the same-wall-clock rows) gets 40 evaluations too
        every = eval_every(max(run.steps, self.steps[base.DATASETS[run.dataset][0]]), self.n_evals)
        saved, self.runner = self.runner, self.runner_for(every)
        try:
            super().execute(run)
        finally:
            self.runner = saved

    def write_outputs(self, force: bool = False) -> None:
        rows, curves = collect(self.root)
        here = {r["run_dir"] for r in rows}
        if self.csv_path.exists():  # rows of run dirs not under this root stay (nothing recorded is dropped)
            rows = sorted([r for r in read_csv(self.csv_path) if r["run_dir"] not in here and r["status"] != "todo"]
                          + rows, key=lambda r: r["run_dir"])
        if self.curves_path.exists():
            curves = [r for r in read_csv(self.curves_path) if r["run_dir"] not in here] + curves
        write_rows(rows, RUN_FIELDS, self.csv_path)
        write_rows(curves, CURVE_FIELDS, self.curves_path)
        if self.report_fn is not None and (force or time.time() - self._last_report >= self.report_every):
            self.report_fn(self.csv_path.parent)
            self._last_report = time.time()

    # -- the two-stage tuning ---------------------------------------------------------------------------
    def _budget(self, ds: str) -> int:
        return self.steps[base.DATASETS[ds][0]]

    def tune_runs(self, ds: str, method: str) -> list[base.Run]:
        """Stage 1: the full grid at B/4."""
        b = self._budget(ds)
        task = base.DATASETS[ds][0]
        return [StagedRun(ds, method, "tune1", c, base.TUNE_SEED, "val", max(1, b // 4), self.root)
                for c in base.grid(task, method, self.levels)]

    def stage2_runs(self, ds: str, method: str) -> list[base.Run]:
        """Stage 2: the 3 best finished stage-1 configs (finite val metric) continued to B; [] until stage 1
        is complete."""
        s1 = self.tune_runs(ds, method)
        if any(base.run_state(r) == "todo" for r in s1):
            return []
        metric = base.DATASETS[ds][2]
        scored = sorted((base.val_score(r, metric), i) for i, r in enumerate(s1))
        best = [s1[i] for v, i in scored[:3] if math.isfinite(v)]
        return [StagedRun(ds, method, "tune2", r.config, r.seed, "val", self._budget(ds), self.root, tag="full",
                          start_from=r) for r in best]

    def chosen(self, ds: str, method: str) -> base.Config | None:
        s2 = self.stage2_runs(ds, method)
        if not s2 or any(base.run_state(r) == "todo" for r in s2):
            return None
        v, i = min((base.val_score(r, base.DATASETS[ds][2]), i) for i, r in enumerate(s2))
        return None if math.isinf(v) else s2[i].config

    def best_k(self, ds: str) -> str | None:
        best: tuple[float, str] | None = None
        for k in base.K_VALUES:
            m = base.kname(k)
            cfg = self.chosen(ds, m) if m in self.methods else None
            if cfg is None:
                continue
            r = next(r for r in self.stage2_runs(ds, m) if r.config == cfg)
            s = base.val_score(r, base.DATASETS[ds][2])
            if best is None or s < best[0]:
                best = (s, m)
        return best[1] if best else None

    def main_stage(self, ds: str) -> Iterator[base.Run]:
        for m in self.methods:
            yield from self.tune_runs(ds, m)
            yield from self.stage2_runs(ds, m)
            yield from self.test_runs(ds, m)

    def pilot_stage(self, ds: str) -> Iterator[base.Run]:
        task = base.DATASETS[ds][0]
        for m in pilot_methods(task) if self.methods == ["default"] else self.methods:
            yield base.Run(ds, m, "pilot", default_config(task, m), base.TUNE_SEED, "val", self.steps[task],
                           self.root)


def run_plan(studies: list[tuple[CurveStudy, str]], log: Callable[[str], None]) -> None:
    """Pilot or main stages of every (study, dataset), then the wall rows; stops at a study's deadline."""
    try:
        for st, ds in studies:
            for r in st.pilot_stage(ds) if st.kind == "pilot" else st.main_stage(ds):
                st.execute(r)
        for st, ds in studies:
            if st.kind == "main":
                for r in st.wall_stage(ds):
                    st.execute(r)
    except TimeoutError:
        log("deadline reached: stopping before the next run (rerun the same command to resume)")
    for st, _ in studies[:1]:
        st.write_outputs(force=True)


# -- raw numbers ----------------------------------------------------------------------------------------------
def collect(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per run dir, one row per val-curve point) of every run under `root`."""
    from ebtk.train.trainer import read_curve

    rows, curves = base.collect(root), []
    for row in rows:
        d = root / row["run_dir"]
        try:
            row.update(json.loads((d / "study_wall.json").read_text()))
        except (OSError, ValueError):
            pass
        metric, floor = row["metric"], base.floor_key(row["metric"])
        for p in read_curve(d):
            if p.get("split") != "val":
                continue
            curves.append({**{k: row[k] for k in ("dataset", "method", "stage", "config", "seed", "split", "steps",
                                                   "run_dir")},
                           "step": p["step"], "seconds": p["train_seconds"],
                           "cpu_seconds": p.get("train_cpu_seconds", ""), "value": p.get(metric, ""),
                           "floor": p.get(floor, "")})
    return rows, curves


IDENTITY_INT = ("seed", "steps")


def restore_run_dirs(root: Path, rows: list[dict[str, Any]], curves: list[dict[str, Any]]) -> int:
    """Rebuild the run dirs of finished runs recorded in the CSVs but missing under `root` (a new checkout,
    a wiped `runs/`), so that a resumed study skips them instead of training them again.

    Each restored dir gets what the study reads back: `study_run.json` (identity), `metrics.json` (steps
    and the recorded metrics) or `failed.txt`, `study_wall.json` and `eval_curve.jsonl` (from the curve
    rows: val points, the only ones the study keeps), plus `restored.json` saying so. It has no
    checkpoint, so a stage-2 run continuing it trains from scratch (the same run, by seeded batches). Rows
    still `todo` are not restored. Returns the number of dirs written."""
    from ebtk.io import atomic_write_text

    by_dir: dict[str, list[dict[str, Any]]] = {}
    for c in curves:
        by_dir.setdefault(c["run_dir"], []).append(c)
    n = 0
    for r in rows:
        if r.get("status") not in ("ok", "nan", "failed") or not r.get("run_dir"):
            continue
        d = root / r["run_dir"]
        if (d / "study_run.json").exists():
            continue
        d.mkdir(parents=True, exist_ok=True)
        ident = {k: r[k] for k in base.IDENTITY_FIELDS}
        ident.update({k: int(ident[k]) for k in IDENTITY_INT}, lr=float(ident["lr"]))
        if r["status"] == "failed":
            atomic_write_text(d / "failed.txt", (r.get("error") or "failed") + "\n")
        else:
            m: dict[str, Any] = {"steps": int(r["steps"]), r["metric"]: math.nan}
            m.update({k: float(r[k]) for k in base.METRIC_KEYS if r.get(k) not in (None, "")})
            atomic_write_text(d / "metrics.json", json.dumps(m, indent=2) + "\n")
        if r.get("wall_seconds") not in (None, ""):
            atomic_write_text(d / "study_wall.json", json.dumps(
                {"wall_seconds": float(r["wall_seconds"]), "cpu_seconds": float(r["cpu_seconds"]),
                 "eval_every": int(float(r["eval_every"]))}) + "\n")
        floor = base.floor_key(r["metric"])
        lines = []
        for c in sorted(by_dir.get(r["run_dir"], []), key=lambda c: int(c["step"])):
            p: dict[str, Any] = {"step": int(c["step"]), "split": "val", "train_seconds": float(c["seconds"])}
            for key, col in (("train_cpu_seconds", "cpu_seconds"), (r["metric"], "value"), (floor, "floor")):
                if c.get(col) not in (None, ""):
                    p[key] = float(c[col])
            lines.append(json.dumps(p))
        if lines:
            from ebtk.train.trainer import CURVE

            atomic_write_text(d / CURVE, "\n".join(lines) + "\n")
        atomic_write_text(d / "study_run.json", json.dumps(ident, indent=1) + "\n")
        atomic_write_text(d / "restored.json", json.dumps({"restored_from": "CSV rows", "checkpoint": False}) + "\n")
        n += 1
    return n


def write_rows(rows: list[dict[str, Any]], fields: list[str], path: Path) -> None:
    from ebtk.io import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())


def read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


num = base._num  # noqa: SLF001 - the study's one float parser


def curve_of(curves: list[dict[str, Any]], run_dir: str, x: str = "step") -> list[tuple[float, float]]:
    """(x, val metric) points of one run, diverged/NaN points left out. x: step, seconds (training wall
    clock) or time: process CPU seconds of training where every point of the run has them (an idle core's
    wall-clock; the shared machine's contention inflates the wall clock), else the wall clock."""
    mine = [r for r in curves if r["run_dir"] == run_dir]
    if x == "time":
        x = "cpu_seconds" if mine and all(num(r.get("cpu_seconds")) is not None for r in mine) else "seconds"
    pts = [(num(r[x]), num(r["value"])) for r in mine]
    return sorted((a, b) for a, b in pts if a is not None and b is not None)


def run_floor(curves: list[dict[str, Any]], run_dir: str) -> float | None:
    fl = [num(r["floor"]) for r in curves if r["run_dir"] == run_dir and num(r["floor"]) is not None]
    return statistics.median(fl) if fl else None


def budgets_from_pilot(rows: list[dict[str, Any]], curves: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per dataset whose pilot is complete: the best method (lowest final val metric), its plateau budget by
    the rule (None: not plateaued within the pilot), and every method's own plateau budget."""
    out: dict[str, dict[str, Any]] = {}
    for ds in DATASETS:
        prow = [r for r in rows if r["dataset"] == ds and r["stage"] == "pilot"]
        if not prow or any(r["status"] == "todo" for r in prow):
            continue
        task = base.DATASETS[ds][0]
        steps = int(prow[0]["steps"])
        cands = [int(round(f * steps)) for f in BUDGET_FRACTIONS]
        per = {}
        for r in prow:
            pts = curve_of(curves, r["run_dir"])
            per[r["method"]] = plateau_budget(pts, cands, PLATEAU_TOL[task], PLATEAU_RELATIVE[task])
        finals = [(num(r["value"]), r["method"]) for r in prow if num(r["value"]) is not None]
        best = min(finals)[1] if finals else None
        out[ds] = {"best": best, "budget": per.get(best) if best else None, "per_method": per,
                   "pilot_steps": steps, "candidates": cands}
    return out


# -- reports -------------------------------------------------------------------------------------------------
_g = base._g  # noqa: SLF001


def _ci(iv: Any) -> str:
    return f"[{_g(iv.lo)}, {_g(iv.hi)}]" if iv.n >= 2 else "–"


def _label(m: str) -> str:
    return m.replace("sa-nce-K", "sa-nce K=").replace("=inf", "=∞")


def per_step_seconds(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(dataset, method) -> seconds per training step of its pilot run, evaluations included: process CPU
    seconds (an idle core's time) where recorded, else wall seconds."""
    out = {}
    for r in rows:
        w, s = num(r.get("cpu_seconds")) or num(r.get("wall_seconds")), num(r.get("steps"))
        if r["stage"] == "pilot" and r["status"] == "ok" and w and s:
            out[(r["dataset"], r["method"])] = w / s
    return out


def compute_plan(rows: list[dict[str, Any]], budgets: dict[str, dict[str, Any]], methods: list[str],
                 seeds: int = len(base.TEST_SEEDS), datasets: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(markdown lines of the estimate, the cuts applied) for `datasets` (default: those in `budgets`).

    Cost of a method at budget B: 9 runs of B/4 + 3 continued by 3B/4 + `seeds` runs of B = (9.5 with 5
    seeds)·B steps, at its pilot run's seconds per step (process CPU, evaluations included), plus the test
    runs' larger evaluations (`TEST_EVAL_EXTRA_S`). Where a number
    is not measured yet it is borrowed, and marked: a method's own pilot on another dataset of the same task,
    else SA-NCE's pilot K (the K-sweep's other K); a dataset without a finished pilot gets the pilot length
    as B. The same-wall-clock rows: 4 sampler-free methods × seeds at SA-NCE's cost of B steps."""
    sps = per_step_seconds(rows)
    unit = 9 / 4 + 3 * 3 / 4 + seeds
    dsets = list(datasets) or list(budgets)
    est: dict[tuple[str, str], float] = {}
    borrowed: set[tuple[str, str]] = set()
    bud: dict[str, tuple[int, bool]] = {}
    for ds in dsets:
        task = base.DATASETS[ds][0]
        b = budgets.get(ds)
        bud[ds] = ((b["budget"] or b["pilot_steps"]), False) if b else (PILOT_STEPS[task], True)
        same_task = [d for d in DATASETS if base.DATASETS[d][0] == task]

        def lookup(m: str, ds: str = ds, same_task: list[str] = same_task) -> tuple[float | None, bool]:
            for d in [ds, *same_task]:
                if (d, m) in sps:
                    return sps[(d, m)], d != ds
                if m.startswith("sa-nce"):
                    sa = next((v for (dd, mm), v in sps.items() if dd == d and mm.startswith("sa-nce")), None)
                    if sa is not None:
                        return sa, True
            return None, False

        steps = bud[ds][0]
        for m in methods:
            sec, lent = lookup(m)
            if sec is not None:
                est[(ds, m)] = (unit * steps * sec + seeds * (N_EVALS + 1) * TEST_EVAL_EXTRA_S[task]) / 3600
                if lent or bud[ds][1]:
                    borrowed.add((ds, m))
        sa, lent = lookup(base.kname(1))
        if sa is not None:
            est[(ds, "wall rows")] = 4 * seeds * steps * sa / 3600
            if lent or bud[ds][1]:
                borrowed.add((ds, "wall rows"))
    cols = [d for d in dsets if any(k[0] == d for k in est)]
    lines = ["| method | " + " | ".join(f"{d} (B {'≤ ' if bud[d][1] else ''}{bud[d][0]})" for d in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for m in [*methods, "wall rows"]:
        cells = [f"{est[(d, m)]:.2f}{'†' if (d, m) in borrowed else ''}" if (d, m) in est else "–" for d in cols]
        lines.append(f"| {_label(m)} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"{sum(h for k, h in est.items() if k[0] == d):.1f}" for d in cols)
                 + " |")
    total = sum(est.values())
    cuts: list[str] = []
    left = dict(est)
    for c in CUT_ORDER:
        if sum(left.values()) <= HOURS_AVAILABLE:
            break
        drop = [k for k in left if c in k]
        if drop:
            cuts.append(c)
            for k in drop:
                left.pop(k)
    lines += ["", "CPU hours of one core. † borrowed: not measured on this dataset yet (see the docstring of "
              "`compute_plan`: another dataset's pilot of the same task, SA-NCE's pilot K, or B ≤ the pilot length).",
              "", f"Full plan: **{total:.1f} CPU hours** ({unit:g}·B steps per method and dataset, plus the wall "
              f"rows). Available: ~{HOURS_AVAILABLE:g} h (three sessions of ~2.5 h on one core)."]
    if cuts:
        rest = sum(left.values())
        lines.append(f"Cut, in the stated order ({', '.join(CUT_ORDER)}), until it fits: **{', '.join(cuts)}** "
                     f"→ {rest:.1f} h. Seeds, the 3 × 3 grid and the evaluation size are never cut.")
        if rest > HOURS_AVAILABLE:
            lines.append(f"Still over by {rest - HOURS_AVAILABLE:.1f} h after every stated cut: the plan takes "
                         f"~{math.ceil(rest / 2.5)} sessions of 2.5 h. It runs in priority order (every method of a "
                         "dataset, then the next dataset, the same-wall-clock rows last), so what is done first "
                         "is complete by itself.")
    else:
        lines.append("It fits: nothing is cut.")
    return lines, cuts


def pilot_report(rows: list[dict[str, Any]], curves: list[dict[str, Any]], methods: list[str],
                 plot_dir: Path | None = None) -> str:
    budgets = budgets_from_pilot(rows, curves)
    out = [
        "# SA-NCE at convergence: the pilot (budgets by the plateau rule)",
        "",
        "Generated by `benchmarks/sa_nce_converged.py` from `pilot_runs.csv` / `pilot_curves.csv` "
        "(`--report-only` regenerates it). Each method at its **default** config (`ebtk train TASK --objective "
        f"X`), tuning seed {base.TUNE_SEED}, one run, val metric every 1/{N_EVALS} of the run "
        "(`train.eval_every`, evaluations off the training clock).",
        "",
        "**Plateau rule.** A curve has plateaued at step B when the mean of its val metric over the last fifth "
        "of [0, B] is lower than the mean over the fifth before by less than 0.01 nats (toy2d NLL) or 2 % "
        "(digits FD, relative to the last fifth's mean); window means, not single points, because one "
        "evaluation is noisy. The budget is the smallest candidate B ∈ {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1} × "
        "the pilot length at which the **best pilot method** (lowest final val metric) has plateaued and stays "
        "plateaued at every larger candidate. *gain* below: that improvement at the end of the pilot.",
        "",
        f"**Time to quality** (val): the first evaluation's training seconds with val NLL ≤ floor + {QUALITY_GAP} "
        f"nats (toy2d; floor: the data's own NLL on the val sample) or val FD ≤ {QUALITY_FACTOR:g} × the floor FD "
        "(digits; floor: real training digits against the val digits); resolution: one evaluation interval. "
        "Seconds: process CPU seconds of training (one thread; evaluations excluded), the time an idle core takes; "
        "*run CPU s / run wall s*: the whole run, evaluations included (the compute plan's unit).",
        "",
    ]
    for ds in DATASETS:
        prow = sorted((r for r in rows if r["dataset"] == ds and r["stage"] == "pilot"),
                      key=lambda r: r["method"])
        if not prow:
            out += [f"## {ds}: pending (no pilot run yet)", ""]
            continue
        task = base.DATASETS[ds][0]
        metric = base.DATASETS[ds][2]
        steps = int(prow[0]["steps"])
        done = [r for r in prow if r["status"] != "todo"]
        b = budgets.get(ds)
        head = f"## {ds} ({steps} steps; {len(done)}/{len(pilot_methods(task))} methods finished)"
        out += [head, ""]
        floors = [f for r in prow if (f := run_floor(curves, r["run_dir"])) is not None]
        if floors:
            out += [f"Floor (val): {_g(statistics.median(floors))}.", ""]
        out += [f"| method | lr, param | val {metric} at 10 % | 50 % | end | min | gain (last fifth) | "
                "plateau step | time to quality (CPU s) | train s (wall) | run CPU s | run wall s |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in prow:
            pts = curve_of(curves, r["run_dir"])
            tpts = curve_of(curves, r["run_dir"], "time")
            fl = run_floor(curves, r["run_dir"])

            def at(f: float, pts: list[tuple[float, float]] = pts, steps: int = steps) -> str:
                near = [v for x, v in pts if abs(x - f * steps) <= steps / N_EVALS / 2]
                return _g(near[0]) if near else "–"

            gain = plateau_gain(pts, steps)
            pb = b["per_method"].get(r["method"]) if b else None
            ttq = first_reach(tpts, quality_threshold(task, fl)) if fl is not None else None
            status = "" if r["status"] == "ok" else f" ({r['status']})"
            out.append(
                f"| {_label(r['method'])}{status} | {r['lr']}, {r['param_value']} | {at(0.1)} | {at(0.5)} | "
                f"{_g(pts[-1][1]) if pts else '–'} | {_g(min(v for _, v in pts)) if pts else '–'} | "
                f"{_g(gain) if gain is not None else '–'} | "
                f"{pb if pb is not None else ('not plateaued' if r['status'] == 'ok' else '–')} | "
                f"{_g(ttq, 3) if ttq is not None else 'not reached'} | {_g(num(r.get('train_seconds')), 3)} | "
                f"{_g(num(r.get('cpu_seconds')), 3)} | {_g(num(r.get('wall_seconds')), 3)} |")
        out.append("")
        if b:
            if b["budget"] is not None:
                out += [f"**Budget: {b['budget']} steps**: the best pilot method, {_label(b['best'])}, has "
                        f"plateaued there and stays so (candidates {b['candidates']}).", ""]
            else:
                out += [f"**Budget: {steps} steps (the pilot's length), provisional**: the best pilot method, "
                        f"{_label(b['best'])}, has **not** plateaued within the pilot; a longer pilot is needed "
                        "to confirm convergence.", ""]
        else:
            out += ["Budget: pending (pilot unfinished).", ""]
    out += ["## Compute plan", "",
            "Measured from the pilot runs (one CPU thread, `nice`, on a 2-core machine shared with other jobs: "
            "timings are noisy and pessimistic).", ""]
    lines, _ = compute_plan(rows, budgets, methods, datasets=DATASETS)
    out += lines + [""]
    if plot_dir is not None and (png := plot_pilot(curves, rows, plot_dir)) is not None:
        out += ["## Pilot curves", "", f"![pilot curves]({png.name})", "",
                "Val metric of each method's default config against training steps (one run each, tuning seed); "
                "dotted: the floor; dashed: the time-to-quality threshold; grey verticals: the candidate budgets.",
                ""]
    return "\n".join(out)


def _best_k_by_val(drows: list[dict[str, Any]], ds: str) -> str | None:
    """The SA-NCE K whose chosen config (stage 2) has the lowest val metric: selection on val only."""
    best: tuple[float, str] | None = None
    for k in base.K_VALUES:
        vals = [v for r in drows if r["method"] == base.kname(k) and r["stage"] == "tune2"
                and (v := num(r["value"])) is not None]
        if vals and (best is None or min(vals) < best[0]):
            best = (min(vals), base.kname(k))
    return best[1] if best else None


def _t(values: Sequence[float]) -> Any:
    from ebtk.metrics.stats import t_interval

    return t_interval(list(values))


def ttq_by_seed(rows: list[dict[str, Any]], curves: list[dict[str, Any]], ds: str, method: str
                ) -> dict[int, float | None]:
    """seed -> training seconds to quality on val (None: not reached) of a method's finished test runs."""
    task = base.DATASETS[ds][0]
    out: dict[int, float | None] = {}
    for r in rows:
        if r["dataset"] == ds and r["method"] == method and r["stage"] == "test" and r["status"] == "ok":
            fl = run_floor(curves, r["run_dir"])
            pts = curve_of(curves, r["run_dir"], "time")
            out[int(r["seed"])] = first_reach(pts, quality_threshold(task, fl)) if fl is not None else None
    return out


def plateau_at_budget(rows: list[dict[str, Any]], curves: list[dict[str, Any]], dataset: str, method: str
                      ) -> tuple[int, int, float | None]:
    """The plateau rule applied to each finished test seed's val curve at its budget B (the evidence that B
    is long enough for the tuned config, not only for the pilot's default): (seeds plateaued, seeds with a
    curve, mean last-fifth gain: nats on toy2d, a fraction of the last window's mean on digits)."""
    task = base.DATASETS[dataset][0]
    tol, rel = PLATEAU_TOL[task], PLATEAU_RELATIVE[task]
    n_ok, gains = 0, []
    for r in rows:
        if r["dataset"] != dataset or r["method"] != method or r["stage"] != "test" or r["status"] != "ok":
            continue
        pts = curve_of(curves, r["run_dir"])
        b = int(r["steps"])
        g = plateau_gain(pts, b, relative=rel)
        if g is None:
            continue
        gains.append(g)
        n_ok += g < tol
    return n_ok, len(gains), (sum(gains) / len(gains) if gains else None)


def beyond_budget(rows: list[dict[str, Any]], curves: list[dict[str, Any]], dataset: str, wall_method: str
                  ) -> dict[int, tuple[float, float, float]]:
    """Does training past B help? A same-wall-clock row trains its method's chosen config, seed for seed, for
    longer than B, and it is the same run up to B (seeded batches, no schedule), so its val curve after B
    continues the B-step run's. Per seed with both: (val at B: the B-step run's last curve point, the best val
    point of the longer run after step B, its last point)."""
    method = wall_method.split("@")[0]
    at_b = {}
    for r in rows:
        if (r["dataset"] == dataset and r["method"] == method and r["stage"] == "test" and r["status"] == "ok"
                and (pts := curve_of(curves, r["run_dir"]))):
            at_b[int(r["seed"])] = (int(r["steps"]), pts[-1][1])
    out = {}
    for r in rows:
        if r["dataset"] != dataset or r["method"] != wall_method or r["status"] != "ok":
            continue
        seed = int(r["seed"])
        if seed not in at_b:
            continue
        b, v_b = at_b[seed]
        after = [v for x, v in curve_of(curves, r["run_dir"]) if x > b]
        if after:
            out[seed] = (v_b, min(after), after[-1])
    return out


ESCAPED = 0.5  # toy2d: a model with more than this share of its mass outside the evaluation grid has escaped


def escaped_seeds(rows: list[dict[str, Any]], dataset: str, method: str) -> list[int]:
    """The test seeds of `method` whose model put more than `ESCAPED` of its mass outside the grid."""
    return sorted(s for s, v in base.test_values(rows, dataset, method, key="mass_outside").items() if v > ESCAPED)


def converged_report(rows: list[dict[str, Any]], curves: list[dict[str, Any]], pilot_rows: list[dict[str, Any]],
                     pilot_curves: list[dict[str, Any]], short: list[dict[str, Any]], methods: list[str],
                     n_seeds: int, plot_dir: Path | None, levels: int = 3) -> str:
    budgets = budgets_from_pilot(pilot_rows, pilot_curves)
    out = [
        "# SA-NCE at convergence: final quality, time to quality and the K-sweep",
        "",
        "Generated by `benchmarks/sa_nce_converged.py` from `converged_runs.csv` and `converged_curves.csv` "
        "(`--report-only` regenerates it with the plots). Budgets from the pilot (`pilot.md`). Lower is better.",
        "",
        f"- **Tuning** at the budget B, the same {levels} × {levels} grid for every method (lr × its second "
        "parameter, as in `tuned.md`), two stages applied to all: the full grid at B/4, then the 3 best (val) "
        "continued to B; "
        f"chosen on the val metric at B. *div.* counts diverged tuning runs (of {levels**2} + 3) and test seeds.",
        f"- **Escaped** (toy2d): test seeds whose model puts more than {ESCAPED:.0%} of its mass outside the "
        "evaluation grid (`mass_outside`): the energy fell away beyond the data, so the test NLL is huge. Such a "
        "seed is kept in the mean and its t-interval (it is a result); the **median** shows the typical seed.",
        "- **Plateaued at B**: the pilot's plateau rule applied to each test seed's val curve at B (the tuned "
        "config, not the pilot's default): seeds that meet it, and the mean improvement over the last fifth "
        "(nats; digits: relative to the last fifth's mean).",
        f"- **Test**: {n_seeds} seeds (0–{n_seeds - 1}) of the chosen config at B, final metric on the test "
        "split; **95 % CI**: Student-t of the mean; **Δ**: paired by seed, t-interval; * = excludes 0.",
        f"- **Time to quality**: training seconds (one thread, evaluations excluded) until the val curve first "
        f"reaches floor + {QUALITY_GAP} nats (toy2d) or {QUALITY_FACTOR:g} × floor FD (digits); mean and t-interval "
        "over the seeds that reached it, and the count that did not (not reached = a result).",
        "- **K = 1 ≡ PCD(2α)**: SA-NCE with refresh interval 1 is the same algorithm as PCD with twice the "
        "E² weight α (tested in tests/test_objectives_sa_nce.py); the K=1 and pcd rows differ only by what each "
        "one's tuning chose on the same α grid.",
        "",
        "## Status",
        "",
    ]
    status_lines = []
    cuts = compute_plan(pilot_rows, budgets, methods, n_seeds)[1] if budgets else []
    for ds in DATASETS:
        if ds not in budgets:
            n_p = sum(r["dataset"] == ds and r["status"] != "todo" for r in pilot_rows)
            status_lines.append(f"- {ds}: **pilot pending** ({n_p} runs finished); tuning and test not started")
            continue
        if ds in cuts:
            status_lines.append(f"- {ds}: cut by the compute plan (`pilot.md`)")
            continue
        drows = [r for r in rows if r["dataset"] == ds]
        parts = []
        for m in [m for m in methods if m not in cuts]:
            mr = [r for r in drows if r["method"] == m]
            n1 = sum(r["stage"] == "tune1" and r["status"] != "todo" for r in mr)
            n2 = sum(r["stage"] == "tune2" and r["status"] != "todo" for r in mr)
            nt = sum(r["stage"] == "test" and r["status"] != "todo" for r in mr)
            if (n1, n2, nt) != (levels**2, 3, n_seeds):
                parts.append(f"{_label(m)} {n1}/{levels**2}·{n2}/3·{nt}/{n_seeds}")
        b = budgets[ds]["budget"] or budgets[ds]["pilot_steps"]
        how = "plateaued" if budgets[ds]["budget"] else "provisional: not plateaued within the pilot"
        n_wall = sum(r["stage"] == "wall" and r["status"] != "todo" for r in drows)
        status_lines.append(f"- {ds} (pilot complete; B = {b}, {how}): " + (
            "equal-steps rows complete" if not parts else "**pending**: " + ", ".join(parts)
            + " (runs finished: stage 1 · stage 2 · test)")
            + f"; same-wall-clock rows: {n_wall} finished" + (" (**pending**)" if not n_wall else ""))
    if cuts:
        status_lines.append(f"- cut by the compute plan: {', '.join(cuts)}")
    out += status_lines + [""]
    summary_at = len(out)
    summary: list[str] = []
    for ds in DATASETS:
        drows = [r for r in rows if r["dataset"] == ds]
        if not drows:
            continue
        task, _, metric, _ = base.DATASETS[ds]
        steps = sorted({int(r["steps"]) for r in drows if r["stage"] in ("tune2", "test")})
        out += [f"## {ds} (test {metric}; B = {'/'.join(map(str, steps)) or '–'} steps)", ""]
        present = [m for m in methods if any(r["method"] == m for r in drows)]
        tv = {m: base.test_values(drows, ds, m) for m in present}
        means = {m: sum(v.values()) / len(v) for m, v in tv.items() if len(v) >= 2}
        best = min(means, key=means.get) if means else None
        toy = task == "toy2d"
        out += [f"| method | chosen (lr, param) | val at B | div. | n | test {metric} | 95 % CI | median | "
                + ("escaped | " if toy else "") + f"Δ vs best ({_label(best) if best else '–'}) | 95 % CI | "
                "Δ vs pcd | 95 % CI | train CPU s | plateaued at B (gain) |",
                "|---|---|---|---|---|---|---|---|" + ("---|" if toy else "") + "---|---|---|---|---|---|"]
        for m in present:
            mr = [r for r in drows if r["method"] == m]
            t2 = [r for r in mr if r["stage"] == "tune2" and r["status"] == "ok"]
            ch = min(t2, key=lambda r: float(r["value"])) if t2 else None
            div = sum(r["status"] in ("failed", "nan") for r in mr if r["stage"] in ("tune1", "tune2", "test"))
            iv = _t(tv[m].values())
            cells = []
            for ref in (best, "pcd"):
                if ref and m != ref and ref in tv and len(set(tv[m]) & set(tv[ref])) >= 2:
                    d = base.paired(tv[m], tv[ref])
                    cells += [_g(d.mean) + ("*" if d.excludes_zero() else ""), _ci(d)]
                else:
                    cells += ["0" if m == ref else "–", "–"]
            secs = [c[-1][0] for r in mr if r["stage"] == "test" and r["status"] == "ok"
                    and (c := curve_of(curves, r["run_dir"], "time"))]
            chosen = f"{ch['lr']}, {ch['param_value']}" if ch else "–"
            med = _g(statistics.median(tv[m].values())) if tv[m] else "–"
            esc = (f"{len(escaped_seeds(drows, ds, m))}/{iv.n} | " if toy else "")
            n_pl, n_c, gain = plateau_at_budget(drows, curves, ds, m)
            plat = f"{n_pl}/{n_c} ({_g(gain, 2)}{'' if toy else ' rel.'})" if n_c else "–"
            out.append(f"| {_label(m)} | {chosen} | "
                       f"{_g(num(ch['value'])) if ch else '–'} | {div} | {iv.n}/{n_seeds} | {_g(iv.mean)} | "
                       f"{_ci(iv)} | {med} | {esc}"
                       + " | ".join(cells) + f" | {_g(statistics.median(secs), 3) if secs else '–'} | {plat} |")
        out.append("")
        if best:
            iv = _t(tv[best].values())
            planned = [m for m in methods if m not in cuts]
            part = "" if set(planned) <= set(means) else (
                f" (PARTIAL: of the {len(means)}/{len(planned)} methods with test seeds so far)")
            n_pl, n_c, gain = plateau_at_budget(drows, curves, ds, best)
            line = (f"- **{ds}**{part}: best {_label(best)}, test {metric} {_g(iv.mean)} {_ci(iv)} "
                    f"(n = {iv.n}; its val curve plateaued at B by the rule on {n_pl}/{n_c} seeds)")
            kbest = _best_k_by_val(drows, ds)
            if kbest and kbest in tv:
                ds_ = [f"{_label(kbest)} − {ref}: {_g(d.mean)}{'*' if d.excludes_zero() else ''} {_ci(d)}"
                       for ref in ("pcd", "nce", "fce") if ref in tv and len(set(tv[kbest]) & set(tv[ref])) >= 2
                       and (d := base.paired(tv[kbest], tv[ref]))]
                line += f"; SA-NCE's best K by val: {_label(kbest)}" + (f" ({'; '.join(ds_)})" if ds_ else "")
            summary.append(line + ".")
        # time to quality
        tt = {m: ttq_by_seed(drows, curves, ds, m) for m in present}
        tt = {m: v for m, v in tt.items() if v}
        if tt:
            out += [f"Time to quality (val {metric} within the threshold; training seconds):", "",
                    "| rank | method | reached | mean s | 95 % CI (t) |", "|---|---|---|---|---|"]

            reached = {m: [x for x in v.values() if x is not None] for m, v in tt.items()}
            order = sorted(tt, key=lambda m: (-len(reached[m]), sum(reached[m]) / max(len(reached[m]), 1)))
            summary.append("  - time-to-quality ranking: " + ", ".join(
                f"{_label(m)} ({len(reached[m])}/{len(tt[m])}"
                + (f", {_g(sum(reached[m]) / len(reached[m]), 3)} s" if reached[m] else "") + ")" for m in order))
            for i, m in enumerate(order, 1):
                got = [x for x in tt[m].values() if x is not None]
                iv = _t(got)
                out.append(f"| {i} | {_label(m)} | {len(got)}/{len(tt[m])} | "
                           f"{_g(iv.mean, 3) if got else 'not reached'} | {_ci(iv)} |")
            out.append("")
        # the K-sweep
        ks = [base.kname(k) for k in base.K_VALUES if len(tv.get(base.kname(k), {})) >= 2]
        if ks:
            out += [f"K-sweep (test {metric}), paired by seed against K = 1 and against pcd:", "",
                    "| K | n | mean | 95 % CI | Δ vs K=1 | 95 % CI | Δ vs pcd | 95 % CI |",
                    "|---|---|---|---|---|---|---|---|"]
            for m in ks:
                iv = _t(tv[m].values())
                cells = []
                for ref in (base.kname(1), "pcd"):
                    if m != ref and ref in tv and len(set(tv[m]) & set(tv[ref])) >= 2:
                        d = base.paired(tv[m], tv[ref])
                        cells += [_g(d.mean) + ("*" if d.excludes_zero() else ""), _ci(d)]
                    else:
                        cells += ["–", "–"]
                note = " (≡ PCD(2α))" if m == base.kname(1) else ""
                out.append(f"| {m[len('sa-nce-K'):].replace('inf', '∞')}{note} | {iv.n} | {_g(iv.mean)} | {_ci(iv)} | "
                           + " | ".join(cells) + " |")
            out.append("")
        # the short-budget answer next to this one
        srows = [r for r in short if r["dataset"] == ds]
        if srows and means:
            smeans = {m: (sum(v.values()) / len(v), len(v)) for m in present
                      if len(v := base.test_values(srows, ds, m)) >= 2}
            sb = sorted({int(r["steps"]) for r in srows if r["stage"] == "tune"})
            srank = {m: i for i, m in enumerate(sorted(smeans, key=lambda m: smeans[m][0]), 1)}
            crank = {m: i for i, m in enumerate(sorted(means, key=means.get), 1)}
            out += [f"Against today's short-budget answer (`tuned.md`, {'/'.join(map(str, sb))} steps):", "",
                    "| method | short: mean (n) | rank | converged: mean | rank |", "|---|---|---|---|---|"]
            sbest = min(smeans, key=lambda m: smeans[m][0]) if smeans else None
            summary.append(f"  - short budget ({'/'.join(map(str, sb))} steps) best: "
                           f"{_label(sbest) if sbest else '–'}; converged best: {_label(best) if best else '–'}")
            for m in present:
                s = smeans.get(m)
                out.append(f"| {_label(m)} | {f'{_g(s[0])} ({s[1]})' if s else '–'} | {srank.get(m, '–')} | "
                           f"{_g(means[m]) if m in means else '–'} | {crank.get(m, '–')} |")
            out.append("")
        walls = sorted({r["method"] for r in drows if r["stage"] == "wall"})
        if walls:
            tol, rel = PLATEAU_TOL[task], PLATEAU_RELATIVE[task]
            out += ["Same wall-clock rows (sampler-free methods at SA-NCE's best K's median seconds), paired by seed "
                    "against their own step-budget row. Each one also extends its method's B-step run (the same "
                    "run up to B), so its val curve says whether training past B helps: *best val after B − val "
                    f"at B* per seed (t-interval), and the seeds that gain more than the plateau tolerance "
                    f"({tol:g}{' of the val at B' if rel else ' nats'}) at any point after B:", "",
                    "| row | n | test mean | Δ vs its B-step row | 95 % CI | val at B → best after B → end (means) "
                    "| best after B − at B | 95 % CI | seeds gaining |", "|---|---|---|---|---|---|---|---|---|"]
            for m in walls:
                v = base.test_values(drows, ds, m)
                ref = tv.get(m.split("@")[0], {})
                d = base.paired(v, ref) if len(set(v) & set(ref)) >= 2 else None
                bb = beyond_budget(drows, curves, ds, m)
                gain = _t([b - a for a, b, _ in bb.values()]) if bb else None
                n_gain = sum(a - b > (tol * abs(a) if rel else tol) for a, b, _ in bb.values())
                cols = [statistics.fmean(x[i] for x in bb.values()) for i in range(3)] if bb else []
                out.append(f"| {m} | {len(v)} | {_g(_t(v.values()).mean)} | "
                           f"{(_g(d.mean) + ('*' if d.excludes_zero() else '')) if d else '–'} | "
                           f"{_ci(d) if d else '–'} | {' → '.join(map(_g, cols)) or '–'} | "
                           f"{(_g(gain.mean) + ('*' if gain.excludes_zero() else '')) if gain else '–'} | "
                           f"{_ci(gain) if gain else '–'} | {f'{n_gain}/{len(bb)}' if bb else '–'} |")
            out.append("")
        if plot_dir is not None:
            png = plot_curves(curves, drows, ds, present, plot_dir)
            if png:
                out += [f"![learning curves, {ds}]({png.name})", "",
                        f"Learning curves: val {metric}, mean over the test seeds with a 95 % t band; against steps "
                        "and against training seconds (each seed's curve linearly interpolated onto a common grid "
                        "up to the shortest seed's end).", ""]
    if summary:
        out[summary_at:summary_at] = ["## Summary", "", *summary, ""]
    return "\n".join(out)


def plot_pilot(curves: list[dict[str, Any]], rows: list[dict[str, Any]], plot_dir: Path) -> Path | None:
    """results/sa_nce/pilot_curves.png: every pilot curve (val metric vs steps), one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ebtk.io import atomic_path

    dsets = [d for d in DATASETS if any(r["dataset"] == d and r["stage"] == "pilot" for r in rows)]
    if not dsets:
        return None
    fig, axes = plt.subplots(1, len(dsets), figsize=(4.5 * len(dsets), 4), squeeze=False)
    for ax, ds in zip(axes[0], dsets):
        prow = sorted((r for r in rows if r["dataset"] == ds and r["stage"] == "pilot"), key=lambda r: r["method"])
        task, _, metric, _ = base.DATASETS[ds]
        floors = []
        for r in prow:
            pts = curve_of(curves, r["run_dir"])
            if pts:
                ax.plot([x for x, _ in pts], [v for _, v in pts], lw=1, label=_label(r["method"]))
            if (f := run_floor(curves, r["run_dir"])) is not None:
                floors.append(f)
        if floors:
            f = statistics.median(floors)
            ax.axhline(f, color="k", ls=":", lw=1)
            ax.axhline(quality_threshold(task, f), color="k", ls="--", lw=0.8)
            ax.set_ylim(f * 0.9 if metric == "fd" else f - 0.05, (f + 1.0) if metric == "nll" else 30 * f)
        steps = int(prow[0]["steps"])
        for c in BUDGET_FRACTIONS:
            ax.axvline(c * steps, color="0.85", lw=0.6, zorder=0)
        ax.set_yscale("log" if metric == "fd" else "linear")
        ax.set_title(f"{ds}: val {metric}")
        ax.set_xlabel("training steps")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = plot_dir / "pilot_curves.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path


def mean_band(xs: list[list[float]], ys: list[list[float]], grid: list[float]) -> tuple[list[float], ...]:
    """Each (x, y) curve interpolated onto `grid`; the mean and 95 % t band per grid point."""
    import numpy as np

    from ebtk.metrics.stats import t_interval

    vals = np.array([np.interp(grid, x, y) for x, y in zip(xs, ys)])
    ivs = [t_interval(vals[:, j].tolist()) for j in range(len(grid))]
    return [iv.mean for iv in ivs], [iv.lo for iv in ivs], [iv.hi for iv in ivs]


def plot_curves(curves: list[dict[str, Any]], drows: list[dict[str, Any]], ds: str, methods: list[str],
                plot_dir: Path) -> Path | None:
    """results/sa_nce/curves_<ds>.png: val metric vs steps and vs seconds, mean over test seeds, 95 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ebtk.io import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    drawn = 0
    for m in methods:
        dirs = [r["run_dir"] for r in drows if r["method"] == m and r["stage"] == "test" and r["status"] == "ok"]
        if len(dirs) < 2:
            continue
        for ax, x in zip(axes, ("step", "time")):
            cs = [curve_of(curves, d, x) for d in dirs]
            cs = [c for c in cs if len(c) >= 2]
            if len(cs) < 2:
                continue
            end = min(c[-1][0] for c in cs)
            grid = [end * i / 60 for i in range(61)]
            mean, lo, hi = mean_band([[a for a, _ in c] for c in cs], [[b for _, b in c] for c in cs], grid)
            (line,) = ax.plot(grid, mean, label=_label(m), lw=1.2)
            ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    metric = base.DATASETS[ds][2]
    fl = [f for r in drows if r["stage"] == "test" and (f := run_floor(curves, r["run_dir"])) is not None]
    for ax, xl in zip(axes, ("training steps", "training seconds (process CPU, 1 thread)")):
        if fl:
            f = statistics.median(fl)
            ax.axhline(f, color="k", ls=":", lw=1, label="floor")
            ax.axhline(quality_threshold(base.DATASETS[ds][0], f), color="k", ls="--", lw=0.8, label="quality")
            # the untrained model's value (~15 nats) would flatten everything that matters
            ax.set_ylim(f - 0.05 * abs(f), f + 1.0 if metric == "nll" else 30 * f)
        ax.set_xlabel(xl)
        ax.set_ylabel(f"val {metric}")
        ax.set_yscale("log" if metric == "fd" else "linear")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"{ds}: val {metric}, mean of the test seeds, 95 % t band")
    fig.tight_layout()
    path = plot_dir / f"curves_{ds}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


# -- the command ----------------------------------------------------------------------------------------------
def all_methods() -> list[str]:
    return base.main_methods()


def write_reports(res: Path, methods: list[str], n_seeds: int, short_csv: Path, levels: int = 3) -> None:
    """pilot.md, converged.md and the curve PNGs in `res`, from the CSVs there alone."""
    from ebtk.io import atomic_write_text

    prow, pcur = read_csv(res / "pilot_runs.csv"), read_csv(res / "pilot_curves.csv")
    atomic_write_text(res / "pilot.md", pilot_report(prow, pcur, methods, res))
    crow, ccur = read_csv(res / "converged_runs.csv"), read_csv(res / "converged_curves.csv")
    atomic_write_text(res / "converged.md", converged_report(crow, ccur, prow, pcur, read_csv(short_csv), methods,
                                                             n_seeds, res, levels))


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(REPO / "runs" / "sa_nce_converged"), help="run dirs")
    ap.add_argument("--results", default=str(REPO / "results" / "sa_nce"))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--methods", default=",".join(all_methods()), help="methods of the main study")
    ap.add_argument("--stage", default="all", choices=["pilot", "main", "all"])
    ap.add_argument("--budget", action="append", default=[], help="DATASET=STEPS: overrides the pilot's budget")
    ap.add_argument("--pilot-steps", action="append", default=[],
                    help="TASK=STEPS (toy2d, digits): a longer pilot; its runs resume from their checkpoints, and "
                    "so do the tuning/test runs when the budget grows (same run dirs, training continued)")
    ap.add_argument("--seeds", type=int, default=len(base.TEST_SEEDS))
    ap.add_argument("--stop-at", default=None, help="UTC HH:MM after which no new run starts")
    ap.add_argument("--report-only", action="store_true", help="rewrite the reports from the CSVs, run nothing")
    ap.add_argument("--quick", action="store_true",
                    help="the whole pipeline at a tiny budget (8gaussians; 3 methods; 2 seeds; tiny evaluation)")
    a = ap.parse_args(argv)
    res = Path(a.results)
    short_csv = REPO / "results" / "sa_nce" / "runs.csv"
    methods = [m for m in a.methods.split(",") if m]
    datasets = [d for d in a.datasets.split(",") if d]
    pilot_steps, extra, seeds = dict(PILOT_STEPS), [], a.seeds
    levels = 3
    if a.quick:  # every stage once, small: a 2 × 2 grid (stage 2 keeps 3 of its 4), 2 seeds, a tiny evaluation
        datasets, methods, seeds, extra = ["8gaussians"], [base.kname(1), "pcd", "nce"], 2, list(QUICK_EVAL)
        pilot_steps, levels = {"toy2d": 40, "digits": 40}, 2
    for item in a.pilot_steps:
        task, _, steps = item.partition("=")
        if task not in pilot_steps or not steps.isdigit():
            _fail(f"--pilot-steps wants toy2d=N or digits=N, got {item!r}")
        pilot_steps[task] = int(steps)
    if a.report_only:
        write_reports(res, methods, seeds, short_csv, levels)
        print(res / "converged.md")
        return
    for d in datasets:
        if d not in base.DATASETS:
            _fail(f"unknown dataset {d!r}; use {', '.join(DATASETS)}")
    deadline = None
    if a.stop_at:
        import datetime as dt

        h, m = map(int, a.stop_at.split(":"))
        now = dt.datetime.now(dt.UTC)
        stop = now.replace(hour=h, minute=m, second=0, microsecond=0)
        deadline = (stop if stop > now else stop + dt.timedelta(days=1)).timestamp()
    root = Path(a.root)

    def log(s: str) -> None:
        print(time.strftime("%H:%M:%S"), s, flush=True)

    for sub, name in (("pilot", "pilot"), ("main", "converged")):  # finished runs whose dirs were lost
        n = restore_run_dirs(root / sub, read_csv(res / f"{name}_runs.csv"), read_csv(res / f"{name}_curves.csv"))
        if n:
            log(f"restored {n} finished run dirs under {root / sub} from {res / f'{name}_runs.csv'}")

    def reports(_: Path) -> None:
        write_reports(res, methods, seeds, short_csv, levels)

    common = dict(levels=levels, seeds=list(range(seeds)), variants=[], deadline=deadline, log=log, extra=extra,
                  report_fn=reports, n_evals=8 if a.quick else N_EVALS,
                  tune_eval={} if a.quick else {"toy2d": ["eval.n_samples=200"]})
    if a.stage in ("pilot", "all"):
        studies = [(CurveStudy(root=root / "pilot", csv_path=res / "pilot_runs.csv", md_path=res / "pilot.md",
                               curves_path=res / "pilot_curves.csv", datasets=[ds], steps=pilot_steps,
                               methods=["default"] if not a.quick else methods, kind="pilot", **common), ds)
                   for ds in datasets]
        run_plan(studies, log)
    if a.stage in ("main", "all"):
        budgets = budgets_from_pilot(read_csv(res / "pilot_runs.csv"), read_csv(res / "pilot_curves.csv"))
        chosen = {ds: b["budget"] or b["pilot_steps"] for ds, b in budgets.items()}
        for item in a.budget:
            ds, _, steps = item.partition("=")
            if ds not in base.DATASETS or not steps.isdigit():
                _fail(f"--budget wants DATASET=STEPS, got {item!r}")
            chosen[ds] = int(steps)
        _, cuts = compute_plan(read_csv(res / "pilot_runs.csv"), {d: budgets[d] for d in budgets if d in datasets},
                               methods, seeds)
        if cuts and not a.quick:
            log(f"the compute plan cuts: {', '.join(cuts)}")
        methods_run = [m for m in methods if m not in cuts]
        studies = []
        for ds in datasets:
            if ds not in chosen or ds in cuts:
                log(f"{ds}: no budget yet (pilot unfinished) or cut; skipped")
                continue
            task = base.DATASETS[ds][0]
            studies.append((CurveStudy(root=root / "main", csv_path=res / "converged_runs.csv",
                                       md_path=res / "converged.md", curves_path=res / "converged_curves.csv",
                                       datasets=[ds], steps={task: chosen[ds]}, methods=methods_run, kind="main",
                                       **common), ds))
        if studies:
            run_plan(studies, log)
        else:
            reports(res)
    print(res / "converged.md")


if __name__ == "__main__":
    sys.exit(main())
