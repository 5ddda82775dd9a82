"""TTS study v2: refiners selected on val, scored per utterance on test, teacher-forced and from text.

One acoustic run (its hypotheses file gives the teacher-forced inputs) and refiners trained on it by every
objective. For each refiner and each duration condition:
  * teacher-forced: the acoustic model's hypothesis with ground-truth (MAS) durations;
  * from text: the duration predictor, exactly what `ebtk synthesize` does, scored against the recording;
the (steps, η) of `--steps-grid` × `--eta-grid` are scored on the val split; the setting with the lowest
mean MCD-DTW (DNSMOS breaking ties within TIE_DB) is chosen; the test split then gets the chosen setting,
the paper's fixed 1 step at η = 1, and 100 steps at the chosen η (divergence). Every score is kept per
utterance (`raw/<refiner>.<condition>.<split>.csv`); `table.md` is generated from those files with paired
bootstrap intervals of each system's difference to its own hypothesis.

Every stage resumes: a refiner run trains to its steps (ebtk's checkpoints), a finished CSV is not redone.

    python benchmarks/tts_study2.py --acoustic runs/ship/acoustic --out runs/tts2 --results results/tts/v2
    python benchmarks/tts_study2.py --results results/tts/v2 --report-only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tts_paper.yaml"
TIE_DB = 0.01
METRICS = ("mcd", "logf0_rmse", "vuv", "dnsmos")
CONDITIONS = ("teacher-forced", "from-text")
BASE = "base"  # raw/base.<condition>.<split>.csv: the hypothesis (and vocoded reference), shared by all refiners
# name -> (objective, overrides); the same acoustic run, data, crops, batch and steps for all
REFINERS: dict[str, tuple[str, list[str]]] = {
    "delta": ("delta", ["model.kind=score"]),
    "delta-s1": ("delta", ["model.kind=score", "train.seed=1"]),
    "delta-s2": ("delta", ["model.kind=score", "train.seed=2"]),
    "delta-text": ("delta", ["model.kind=score", "model.text_cond=true"]),
    # the training-hypothesis ablation (delta is the fixed-draw `dropout` remedy)
    "delta-none": ("delta", ["model.kind=score", "acoustic.hyp_remedy=none"]),
    "delta-fresh": ("delta", ["model.kind=score", "acoustic.hyp_remedy=dropout-fresh"]),
    "delta-oof": ("delta", ["model.kind=score", "acoustic.hyp_remedy=oof"]),  # + acoustic.oof_runs (fold runs)
    "ssm": ("ssm", ["model.kind=score"]),  # the previous variant: at the reference, Rademacher, ½(vᵀs)²
    "ssm-hyp": ("ssm", ["model.kind=score", "objective.at=hypothesis", "objective.projection=gaussian",
                        "objective.variance_reduced=true"]),  # the paper's authors' variant
    "ssm-path": ("ssm", ["model.kind=score", "objective.at=path", "objective.path_noise=0.1"]),
    "ssm-vr": ("ssm", ["model.kind=score", "objective.projection=gaussian", "objective.variance_reduced=true"]),
    "ssm+delta": ("ssm+delta", ["model.kind=score"]),
    "nce": ("nce", ["model.kind=energy"]),
    "sa-nce": ("sa-nce", ["model.kind=energy"]),
}
REFINER_EVAL = ["eval.n_test=4", "eval.steps=[1]", "eval.step_sizes=[1.0]", "eval.dnsmos=false", "eval.n_wavs=1"]


def log(msg: str) -> None:
    print(f"[study2 {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fold_runs(out: Path, acoustic: Path) -> list[Path]:
    """The two acoustic runs of the out-of-fold ablation: the acoustic run's config and steps, each trained
    on one half of the training split (`data.train_part`), trained here if not finished."""
    from ebtk.train.checkpoint import load_checkpoint
    from ebtk.train.trainer import train

    cfg = load_checkpoint(acoustic / "checkpoint.pt")["config"]
    steps = int(cfg["train"]["steps"])
    runs = []
    for k in (0, 1):
        run = out / f"acoustic-part{k}of2"
        m = run / "metrics.json"
        if not (m.is_file() and json.loads(m.read_text()).get("steps") == steps):
            log(f"{run.name}: training the acoustic model on part {k}/2 to {steps} steps")
            train("tts", "acoustic", run, config_file=str(CONFIG),
                  overrides=[f"data.train_part={k}/2", f"train.steps={steps}", "train.ckpt_every=100",
                             f"train.threads={cfg['train'].get('threads', 1)}", *REFINER_EVAL],
                  progress=sys.stderr.isatty())
        runs.append(run.resolve())
    return runs


def train_refiner(run: Path, name: str, acoustic: Path, steps: int, extra: list[str]) -> None:
    from ebtk.train.trainer import train

    m = run / "metrics.json"
    if m.is_file() and json.loads(m.read_text()).get("steps") == steps:
        return
    objective, overrides = REFINERS[name]
    if name == "delta-oof":
        overrides = [*overrides, "acoustic.oof_runs=[" + ",".join(map(str, fold_runs(run.parent, acoustic))) + "]"]
    log(f"{name}: training {objective} to {steps} steps")
    train("tts", objective, run, config_file=str(CONFIG),
          overrides=[f"acoustic.checkpoint={acoustic}", *overrides, *REFINER_EVAL, *extra, f"train.steps={steps}"],
          progress=sys.stderr.isatty())


def raw_path(results: Path, name: str, condition: str, split: str) -> Path:
    return results / "raw" / f"{name}.{condition}.{split}.csv"


def study_rows(results: Path, name: str, condition: str, split: str) -> list[dict[str, Any]]:
    """A refiner's per-utterance rows with the shared ones (hypothesis; vocoded reference on test)."""
    from ebtk.tts.evaluate import read_per_utterance_csv

    return [*read_per_utterance_csv(raw_path(results, BASE, condition, split)),
            *read_per_utterance_csv(raw_path(results, name, condition, split))]


def evaluate_refiner(run: Path, name: str, inputs: Any, results: Path, grid: list[tuple[int, float]]) -> None:
    """Val grid, choice, test rows of one refiner. The hypothesis (and on test the vocoded reference) is the
    same for every refiner of the acoustic run: scored once, into raw/base.*.csv."""
    from ebtk.io import atomic_write_text
    from ebtk.tts.bundle import Synthesizer, bundle_from_run
    from ebtk.tts.evaluate import choose_setting, per_utterance_csv, score_systems

    synth = Synthesizer(bundle_from_run(run))
    for cond in CONDITIONS:
        for split in ("val", "test"):
            base = raw_path(results, BASE, cond, split)
            if not base.is_file():
                log(f"hypothesis / {cond} / {split}")
                got = score_systems(synth, inputs.utterances(split), [], condition=cond, reference=split == "test")
                atomic_write_text(base, per_utterance_csv(got))
        val = raw_path(results, name, cond, "val")
        if not val.is_file():
            log(f"{name} / {cond}: val grid ({len(grid)} settings)")
            got = score_systems(synth, inputs.utterances("val"), grid, condition=cond, hypothesis=False)
            atomic_write_text(val, per_utterance_csv(got))
        k, e = choose_setting(study_rows(results, name, cond, "val"), TIE_DB)
        test = raw_path(results, name, cond, "test")
        if not test.is_file():
            log(f"{name} / {cond}: chosen {k} × η {e:g}; test")
            test_grid = sorted({(k, e), (1, 1.0), (100, e)} - {(0, e)})
            got = score_systems(synth, inputs.utterances("test"), test_grid, condition=cond, hypothesis=False)
            atomic_write_text(test, per_utterance_csv(got))


def report(results: Path, names: list[str]) -> str:
    """The test table per condition, from the raw CSVs (regenerates identically: fixed bootstrap seed)."""
    from ebtk.metrics.stats import bootstrap_interval, paired_bootstrap_interval
    from ebtk.tts.evaluate import choose_setting, group_rows, row_mean

    def ci(iv: Any, nd: int = 3, sign: str = "") -> str:
        return f"{iv.mean:{sign}.{nd}f} [{iv.lo:{sign}.{nd}f}, {iv.hi:{sign}.{nd}f}]"

    out = []
    for cond in CONDITIONS:
        lines = [f"### {cond}", "",
                 "| refiner | setting | chosen on val | n | MCD dB | ΔMCD vs hyp | share of gap | Δlog-F0 RMSE "
                 "| ΔV/UV | ΔDNSMOS |", "|---|---|---|---|---|---|---|---|---|---|"]
        base_done = False
        for name in names:
            val, test = raw_path(results, name, cond, "val"), raw_path(results, name, cond, "test")
            if not (val.is_file() and test.is_file()):
                continue
            k, e = choose_setting(study_rows(results, name, cond, "val"), TIE_DB)
            sets = group_rows(study_rows(results, name, cond, "test"))
            hyp, ref = sets[("hypothesis", 0, None)], sets[("vocoded reference", 0, None)]
            ids = sorted(hyp)
            if not base_done:
                for label, rows in (("vocoded reference", ref), ("hypothesis", hyp)):
                    mcd = bootstrap_interval([rows[i]["mcd"] for i in ids])
                    lines.append(f"| {label} | – | – | {mcd.n} | {ci(mcd, 2)} | – | – | – | – | – |")
                base_done = True
            gap = row_mean(hyp, "mcd") - row_mean(ref, "mcd")
            for (s, kk, ee), rows in sorted(sets.items(), key=lambda x: (x[0][1], x[0][2] or 0)):
                if s != "refined":
                    continue
                cells = []
                for m in METRICS:
                    pairs = [(rows[i][m], hyp[i][m]) for i in ids if i in rows and rows[i][m] is not None
                             and hyp[i][m] is not None]
                    cells.append(ci(paired_bootstrap_interval([a for a, _ in pairs], [b for _, b in pairs]),
                                    3, "+"))
                mcd = bootstrap_interval([rows[i]["mcd"] for i in ids if i in rows])
                share = 100 * (row_mean(hyp, "mcd") - row_mean(rows, "mcd")) / gap
                chosen = "**yes**" if (kk, ee) == (k, e) else ""
                lines.append(f"| {name} | {kk} × η {ee:g} | {chosen} | {mcd.n} | {ci(mcd, 2)} | {cells[0]} | "
                             f"{share:+.1f} % | {cells[1]} | {cells[2]} | {cells[3]} |")
            if k == 0:
                lines.append(f"| {name} | 0 (hypothesis) | **yes** | {len(ids)} | – | 0 | 0 % | 0 | 0 | 0 |")
        out += lines + [""]
    out.append("Test split; MCD-DTW / log-F0 RMSE / V/UV against the recording (WORLD analysis, DTW), DNSMOS OVRL. "
               "Intervals: 95 % percentile bootstrap over utterances (10 000 resamples, seed 0); Δ columns pair "
               "each utterance with its own hypothesis (same condition). Share of gap: the part of the "
               "hypothesis → vocoded-reference MCD gap closed. The chosen setting is the lowest mean val MCD "
               f"(DNSMOS breaks ties within {TIE_DB} dB); 1 × η 1 is the paper's fixed setting, 100 steps shows "
               "divergence.")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acoustic", default=str(ROOT / "runs" / "ship" / "acoustic"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "tts2"))
    ap.add_argument("--results", default=str(ROOT / "results" / "tts" / "v2"))
    ap.add_argument("--refiners", default=",".join(REFINERS))
    ap.add_argument("--refiner-steps", type=int, default=3000)
    ap.add_argument("--steps-grid", default="1,2,5")
    ap.add_argument("--eta-grid", default="0.5,1.0")
    ap.add_argument("--set", nargs="*", default=[], help="extra config overrides for the refiner runs")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    from ebtk.io import atomic_write_text

    results, out = Path(a.results), Path(a.out)
    names = [n for n in a.refiners.split(",") if n]
    unknown = sorted(set(names) - set(REFINERS))
    if unknown:
        raise SystemExit(f"error: unknown refiners {unknown}; known: {', '.join(REFINERS)}")
    if not a.report_only:
        from ebtk.tts.bundle import Synthesizer, bundle_from_run

        acoustic = Path(a.acoustic).resolve()
        grid = [(int(k), float(e)) for e in a.eta_grid.split(",") for k in a.steps_grid.split(",")]
        inputs = None
        for name in names:
            run = out / name
            train_refiner(run, name, acoustic, a.refiner_steps, a.set)
            if inputs is None:
                from ebtk.tts.splits import SplitUtterances

                inputs = SplitUtterances(acoustic, Synthesizer(bundle_from_run(run)), teacher_forced=True)
            evaluate_refiner(run, name, inputs, results, grid)
            atomic_write_text(results / "table.md", report(results, names) + "\n")
    table = report(results, names)
    atomic_write_text(results / "table.md", table + "\n")
    print(table)


if __name__ == "__main__":
    main()
