"""Time to quality: training seconds until a model is good, for ebtk and its peers torchebm and ebmkit.

A step costs about the same in every library (`peers.md`); what a researcher buys is a good model sooner.
Every library trains with **its own recommended settings** (README quick-starts, else constructor
defaults; cited in `SETUPS`), ebtk with its defaults for each objective (`ebtk train toy2d --objective X`,
driven through `Trainer.train_step`, so exactly what the CLI runs). All train the same network
(`MLPEnergy`, hidden 128, depth 3) on fresh samples of the true density.

* **2-D** (8-gaussians, checkerboard): test NLL by ebtk's exact normaliser (Z over the whole plane,
  `ebtk.metrics.density.normalize`) on the toy2d test sample; the clock stops at the first evaluation with
  NLL ≤ true NLL + 0.1 nats, and + 0.05.
* **digits**: ebtk's objectives, until the FD of 500 Langevin samples (`ebtk train digits` evaluation) ≤ 3.

Clock: process CPU seconds of the training steps alone (one torch thread; evaluation excluded), which is
the wall-clock of an idle core and robust to other jobs time-slicing this shared 2-core machine. Runs of
one (task, seed) group are interleaved: every run trains one slice (≥ 0.5 s and ≥ 5 % of its time so far,
so the clock's resolution is ≤ 5 %), is evaluated, and the next run takes its turn. A run stops when it
reaches the tighter threshold, at the time limit, or when its loss or NLL is not finite.

    python benchmarks/time_to_quality.py                  # all groups (resumes: finished groups are kept)
    python benchmarks/time_to_quality.py --report-only    # tables and plot from results/time_to_quality/
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "time_to_quality"
OUT_MD = ROOT / "benchmarks" / "results" / "time_to_quality.md"
DENSITIES = ("8gaussians", "checkerboard")
GAPS = (0.1, 0.05)  # nats above the true NLL
FD_TARGET = 3.0
FIELDS = ("task", "seed", "setup", "step", "seconds", "value", "target")


@dataclass
class Run:
    """One training run: `step()` does one optimiser step; `net` is the energy E(x)."""

    step: Callable[[], None]
    net: torch.nn.Module
    evaluate: Callable[[], float]


@dataclass(frozen=True)
class Setup:
    name: str  # library/objective
    settings: str
    source: str  # where the settings come from


# -- ebtk: its CLI defaults, through the trainer -------------------------------------------------------------
EBTK_2D = ("cd", "pcd", "sa-nce", "nce", "fce", "ssm", "dsm")
EBTK_DIGITS = ("cd", "pcd", "sa-nce", "nce", "fce", "ssm", "dsm")


def ebtk_run(task: str, objective: str, seed: int, data: str | None, tmp: Path) -> Run:
    from ebtk.train.trainer import Trainer, resolve_config

    over = [f"train.seed={seed}", "train.threads=1"] + ([f"data.name={data}"] if data else [])
    cfg = resolve_config(task, objective, overrides=over)
    tr = Trainer(cfg, tmp / f"{task}-{data}-{objective}-{seed}", progress=False)

    def step() -> None:
        out, _ = tr.train_step()
        if not torch.isfinite(out.loss):
            raise FloatingPointError("loss")

    if task == "digits":
        def evaluate() -> float:
            return float(tr.task.evaluate(tr.model)["fd"])
    else:
        evaluate = _nll_eval(tr.model, data or "8gaussians")
    return Run(step, tr.model, evaluate)


def ebtk_settings(task: str, objective: str) -> str:
    from ebtk.train.trainer import resolve_config

    cfg = resolve_config(task, objective)
    t, s, o = cfg["train"], cfg["sampler"], cfg["objective"]
    parts = [f"lr {t['lr']:g}, batch {t['batch_size']}"]
    if objective in ("cd", "pcd", "sa-nce"):
        kind = "persistent, buffer " + str(s["buffer_size"]) if s["persistent"] or objective == "pcd" else "short-run"
        parts.append(f"Langevin {s['steps']} × η {s['step_size']:g} ({kind}), α {o['alpha']:g}")
    if objective == "sa-nce":
        parts.append(f"K {o['interval']}, c {o['c']}")
    if objective == "dsm":
        parts.append(f"σ {o['sigmas']}")
    if objective == "ssm":
        parts.append(f"{o['n_projections']} {o['projection']} projection(s)")
    if objective == "nce":
        parts.append(f"ν {o['nu']}, fitted Gaussian × {o['noise_scale']:g}")
    if objective == "fce":
        parts.append(f"{o['noise_model']} noise, ν {o['nu']}")
    return "; ".join(parts)


# -- peers: their recommended settings ------------------------------------------------------------------------
TORCHEBM_README = "torchebm 0.8.9 README (CD / persistent CD / score-matching snippets)"
EBMKIT_README = "ebmkit 0.16.0 README quick-start"
PEERS: dict[str, tuple[str, str]] = {
    "torchebm/cd": ("CD-10, Langevin η 0.1, noise 1, energy_reg 0.001 (default); Adam lr 1e-3, batch 256",
                    TORCHEBM_README),
    "torchebm/pcd": ("as cd, persistent, buffer 8192, 5 % new samples (default)", TORCHEBM_README),
    "torchebm/ssm": ("5 Rademacher projections; lr 1e-3, batch 256", TORCHEBM_README),
    "torchebm/dsm": ("σ 0.1; lr 1e-3, batch 256", TORCHEBM_README),
    "ebmkit/pcd": ("Langevin 60 × η 0.01, ReplayBuffer 8192 (5 % reinit); Trainer lr 1e-3, batch 256",
                   EBMKIT_README),
    "ebmkit/ssm-vr": ("1 Gaussian projection, variance-reduced (defaults); lr 1e-3, batch 256",
                      "ebmkit constructor defaults"),
    "ebmkit/dsm": ("σ 0.1 (default); lr 1e-3, batch 256", "ebmkit constructor defaults"),
    "ebmkit/nce": ("noise N(0, I), ν 1 (defaults); lr 1e-3, batch 256", "ebmkit constructor defaults"),
}


def peer_run(name: str, seed: int, data: str) -> Run:
    from ebtk.nets.mlp import MLPEnergy
    from ebtk.tasks.toy2d import make_dataset

    torch.manual_seed(seed)
    net = MLPEnergy(2, hidden=128, depth=3)
    lib, obj = name.split("/")
    loss_call, params = (_torchebm if lib == "torchebm" else _ebmkit)(obj, net)
    opt = torch.optim.Adam(params, lr=1e-3)
    ds, gen = make_dataset(data), torch.Generator().manual_seed(20_000 + seed)

    def step() -> None:
        loss = loss_call(ds.sample(gen, 256))
        if not torch.isfinite(loss):
            raise FloatingPointError("loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return Run(step, net, _nll_eval(net, data))


def _torchebm(obj: str, net: torch.nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], list]:
    from peers import torchebm_model  # benchmarks/peers.py, beside this script
    from torchebm.losses import ContrastiveDivergence, DenoisingScoreMatching, SlicedScoreMatching
    from torchebm.samplers import LangevinDynamics

    model = torchebm_model(net)
    if obj in ("cd", "pcd"):
        sampler = LangevinDynamics(model=model, step_size=0.1, noise_scale=1.0)
        loss_fn = ContrastiveDivergence(model=model, sampler=sampler, k_steps=10, persistent=obj == "pcd",
                                        buffer_size=8192)
    elif obj == "ssm":
        loss_fn = SlicedScoreMatching(model=model, n_projections=5)
    else:
        loss_fn = DenoisingScoreMatching(model=model, noise_scale=0.1)

    def call(x: torch.Tensor) -> torch.Tensor:
        out = loss_fn(x)
        return out[0] if isinstance(out, tuple) else out

    return call, list(net.parameters())


def _ebmkit(obj: str, net: torch.nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], list]:
    import ebm

    if obj in ("cd", "pcd"):
        sampler = ebm.LangevinDynamics(step_size=1e-2, steps=60)
        loss_fn = ebm.ContrastiveDivergence(sampler, buffer=ebm.ReplayBuffer(8192, (2,)) if obj == "pcd" else None)
    elif obj == "ssm-vr":
        loss_fn = ebm.SlicedScoreMatching()
    elif obj == "dsm":
        loss_fn = ebm.DenoisingScoreMatching()
    else:
        loss_fn = ebm.NoiseContrastiveEstimation()
    return (lambda x: loss_fn(net, x).loss), [*net.parameters(), *loss_fn.parameters()]


@functools.cache
def toy2d_task(data: str):  # noqa: ANN201
    """The toy2d task of `data` at its defaults: its fixed test sample and evaluation box are the ones
    `ebtk train toy2d` scores on."""
    from ebtk.tasks.toy2d import Toy2d
    from ebtk.train.trainer import resolve_config

    return Toy2d(resolve_config("toy2d", "dsm", overrides=[f"data.name={data}"]))


def _nll_eval(net: torch.nn.Module, data: str) -> Callable[[], float]:
    """Test NLL (nats) of `net` on the toy2d test sample, Z over the plane (the toy2d task's own box)."""
    from ebtk.metrics.density import nll, normalize

    task = toy2d_task(data)
    e, test = task.eval_cfg, task.test_data()

    def evaluate() -> float:
        was = net.training
        net.eval()
        try:
            with torch.no_grad():
                return nll(net, test, normalize(net, e.lo, e.hi, e.grid).log_z)
        finally:
            net.train(was)

    return evaluate


def true_nll(data: str) -> float:
    task = toy2d_task(data)
    return float(-task.dataset.log_prob(task.test_data()).mean())


# -- the interleaved clock -------------------------------------------------------------------------------------
def run_group(runs: dict[str, Run], target: float, limit: float, log: Callable[[str], None]) -> list[dict]:
    """Round-robin slices over `runs`; the per-evaluation rows (setup, step, seconds, value)."""
    clock = {k: 0.0 for k in runs}
    steps = {k: 0 for k in runs}
    active = list(runs)
    rows: list[dict] = []
    for k, r in runs.items():
        rows.append({"setup": k, "step": 0, "seconds": 0.0, "value": r.evaluate()})
    while active:
        for k in list(active):
            r = runs[k]
            slice_s = max(0.5, 0.05 * clock[k])
            t0 = time.process_time()
            failed = False
            try:
                while time.process_time() - t0 < slice_s:
                    r.step()
                    steps[k] += 1
            except FloatingPointError:
                failed = True
            clock[k] += time.process_time() - t0
            value = math.nan if failed else r.evaluate()
            rows.append({"setup": k, "step": steps[k], "seconds": round(clock[k], 3), "value": value})
            if not math.isfinite(value) or value <= target or clock[k] >= limit:
                active.remove(k)
                log(f"  {k}: stopped at {clock[k]:.1f} s, {steps[k]} steps, value {value:.4f}")
    return rows


def group_2d(data: str, seed: int, limit: float, tmp: Path, log: Callable[[str], None]) -> list[dict]:
    torch.manual_seed(seed)
    runs = {f"ebtk/{o}": ebtk_run("toy2d", o, seed, data, tmp) for o in EBTK_2D}
    runs.update({name: peer_run(name, seed, data) for name in PEERS})
    target = true_nll(data) + min(GAPS)
    return [{"task": data, "seed": seed, **r, "target": target} for r in run_group(runs, target, limit, log)]


def group_digits(seed: int, limit: float, tmp: Path, log: Callable[[str], None]) -> list[dict]:
    runs = {f"ebtk/{o}": ebtk_run("digits", o, seed, None, tmp) for o in EBTK_DIGITS}
    return [{"task": "digits", "seed": seed, **r, "target": FD_TARGET}
            for r in run_group(runs, FD_TARGET, limit, log)]


# -- results files -----------------------------------------------------------------------------------------------
def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for r in csv.DictReader(path.open()):
        out.append({**r, "seed": int(r["seed"]), "step": int(r["step"]), "seconds": float(r["seconds"]),
                    "value": float(r["value"]), "target": float(r["target"])})
    return out


def write_rows(path: Path, rows: list[dict]) -> None:
    from ebtk.io import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows({k: r[k] for k in FIELDS} for r in rows)
    atomic_write_text(path, buf.getvalue())


def first_time(curve: list[dict], threshold: float) -> float | None:
    """Seconds of the first evaluation at or below `threshold` (None: never)."""
    for r in sorted(curve, key=lambda r: r["seconds"]):
        if r["value"] <= threshold:
            return r["seconds"]
    return None


def time_cell(times: list[float | None], limit: float) -> str:
    got = [t for t in times if t is not None]
    if not got:
        return f"not reached within {limit:g} s (0/{len(times)})"
    med = statistics.median([t if t is not None else math.inf for t in times])
    med_s = f"{med:.1f}" if math.isfinite(med) else f"> {limit:g}"
    return f"{med_s} [{min(got):.1f}–{max(got) if len(got) == len(times) else math.inf:.1f}] ({len(got)}/{len(times)})"


def report(rows: list[dict], limit_2d: float, limit_digits: float) -> str:
    curves: dict[tuple[str, str, int], list[dict]] = {}
    for r in rows:
        curves.setdefault((r["task"], r["setup"], r["seed"]), []).append(r)
    settings = {**{f"ebtk/{o}": (ebtk_settings("toy2d", o), "ebtk defaults (`ebtk train toy2d`)")
                   for o in EBTK_2D}, **PEERS}
    lines = ["# Time to quality: ebtk against torchebm and ebmkit", "",
             "Generated by `python benchmarks/time_to_quality.py` from `results/time_to_quality/curves.csv` "
             "(every evaluation of every run).", "",
             "Seconds: process CPU time of the training steps, one torch thread, evaluation excluded; "
             "median [min–max] over seeds (reached/seeds). A median over seeds that did not all reach "
             "counts the missing ones as +∞. Runs interleaved in slices of ≥ 0.5 s and ≥ 5 % of the run's "
             "time, so a time is at most 5 % (or 0.5 s) late.", ""]
    for data in DENSITIES:
        tn = true_nll(data)
        seeds = sorted({r["seed"] for r in rows if r["task"] == data})
        if not seeds:
            continue
        lines += [f"## {data}: seconds to test NLL ≤ true + 0.1 / + 0.05 nats (true NLL {tn:.4f}; "
                  f"{len(seeds)} seeds; limit {limit_2d:g} s)", "",
                  "| library/objective | settings | source | ≤ true + 0.1 | ≤ true + 0.05 | best gap (median) |",
                  "|---|---|---|---|---|---|"]
        best = {(lib, gap): (math.inf, "") for lib in ("ebtk", "peers") for gap in GAPS}
        for setup in [*(f"ebtk/{o}" for o in EBTK_2D), *PEERS]:
            per_seed = [curves.get((data, setup, s), []) for s in seeds]
            if not any(per_seed):
                continue
            cells = []
            for gap in GAPS:
                times = [first_time(c, tn + gap) for c in per_seed]
                cells.append(time_cell(times, limit_2d))
                med = statistics.median([t if t is not None else math.inf for t in times])
                lib = "ebtk" if setup.startswith("ebtk/") else "peers"
                if med < best[(lib, gap)][0]:
                    best[(lib, gap)] = (med, setup)
            gaps = [min((r["value"] for r in c if math.isfinite(r["value"])), default=math.inf) - tn
                    for c in per_seed]
            s, src = settings[setup]
            lines.append(f"| {setup} | {s} | {src} | {cells[0]} | {cells[1]} | {statistics.median(gaps):.3f} |")
        for gap in GAPS:
            (te, se), (tp, sp) = best[("ebtk", gap)], best[("peers", gap)]
            if math.isfinite(te) and math.isfinite(tp):
                said = f"best ebtk {se} ({te:.1f} s), best peer {sp} ({tp:.1f} s): ratio **{te / tp:.2f}**"
            elif math.isfinite(te):
                said = (f"best ebtk {se} ({te:.1f} s); no peer reached it within {limit_2d:g} s: ratio "
                        f"**< {te / limit_2d:.2f}**")
            elif math.isfinite(tp):
                said = f"no ebtk objective reached it within {limit_2d:g} s; best peer {sp} ({tp:.1f} s)"
            else:
                said = f"neither ebtk nor a peer reached it within {limit_2d:g} s"
            lines += ["", f"To true + {gap:g}: {said} (medians over seeds)."]
        lines.append("")
    seeds = sorted({r["seed"] for r in rows if r["task"] == "digits"})
    if seeds:
        lines += [f"## digits: seconds to FD ≤ {FD_TARGET:g} (ebtk's objectives, defaults of `ebtk train digits`; "
                  f"{len(seeds)} seeds; limit {limit_digits:g} s)", "",
                  "| objective | settings | ≤ FD 3 | best FD (median) |", "|---|---|---|---|"]
        for o in EBTK_DIGITS:
            per_seed = [curves.get(("digits", f"ebtk/{o}", s), []) for s in seeds]
            if not any(per_seed):
                continue
            times = [first_time(c, FD_TARGET) for c in per_seed]
            bests = [min((r["value"] for r in c if math.isfinite(r["value"])), default=math.inf) for c in per_seed]
            lines.append(f"| {o} | {ebtk_settings('digits', o)} | {time_cell(times, limit_digits)} | "
                         f"{statistics.median(bests):.2f} |")
        lines.append("")
    lines += ["![NLL gap against training seconds](time_to_quality.png)", ""]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in (*DENSITIES, "digits") if any(r["task"] == t for r in rows)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        offset = true_nll(task) if task != "digits" else 0.0
        setups = sorted({r["setup"] for r in rows if r["task"] == task})
        cmap = plt.get_cmap("tab20")
        for i, setup in enumerate(setups):
            for j, seed in enumerate(sorted({r["seed"] for r in rows if r["task"] == task})):
                c = sorted((r for r in rows if r["task"] == task and r["setup"] == setup and r["seed"] == seed),
                           key=lambda r: r["seconds"])
                xs = [r["seconds"] for r in c if math.isfinite(r["value"])]
                ys = [max(r["value"] - offset, 1e-3) for r in c if math.isfinite(r["value"])]
                ax.plot(xs, ys, color=cmap(i % 20), lw=1.2, alpha=0.8,
                        ls="-" if setup.startswith("ebtk") else "--", label=setup if j == 0 else None)
        if task == "digits":
            ax.axhline(FD_TARGET, color="k", lw=0.8)
            ax.set_ylabel("FD of samples")
        else:
            for g in GAPS:
                ax.axhline(g, color="k", lw=0.8, ls=":")
            ax.set_ylabel("test NLL − true NLL (nats)")
        ax.set_yscale("log")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)
        ax.set_xlabel("training CPU seconds (one thread)")
        ax.set_title(task)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    from ebtk.io import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--limit", type=float, default=60.0, help="2-D: training seconds per run")
    ap.add_argument("--limit-digits", type=float, default=60.0)
    ap.add_argument("--tasks", nargs="+", default=[*DENSITIES, "digits"])
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--out", default=str(OUT_MD))
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    res = Path(a.results)
    res.mkdir(parents=True, exist_ok=True)
    path = res / "curves.csv"

    def log(msg: str) -> None:
        print(f"[ttq {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    if not a.report_only:
        for seed in range(a.seeds):
            for task in a.tasks:
                rows = read_rows(path)
                if any(r["task"] == task and r["seed"] == seed for r in rows):
                    log(f"{task} seed {seed}: done")
                    continue
                log(f"{task} seed {seed}")
                with tempfile.TemporaryDirectory() as tmp:
                    new = (group_digits(seed, a.limit_digits, Path(tmp), log) if task == "digits"
                           else group_2d(task, seed, a.limit, Path(tmp), log))
                write_rows(path, read_rows(path) + new)
    rows = read_rows(path)
    from ebtk.io import atomic_write_text

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, out.with_suffix(".png"))
    notes = out.with_suffix(".notes.md")
    text = report(rows, a.limit, a.limit_digits) + ("\n" + notes.read_text() if notes.is_file() else "")
    atomic_write_text(out, text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
