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

The flow-matching baseline (`--fm`) trains its decoder on the acoustic run's frozen encoder for the
training time of the acoustic model plus the delta refiner. That time is converted into FM steps from
per-step times measured side by side in one process (`fm_budget.json`: interleaved rounds of each
trainer's `train_step`, one thread, thread CPU time), not from wall-clocks taken at different times under
different loads. Its Euler steps are chosen on val like a refiner's setting; its learning curve (val MCD from
text at the chosen Euler steps, per kept snapshot) goes to `fm_curve.md`.

Every stage resumes: a refiner run trains to its steps (ebtk's checkpoints), a finished CSV is not redone.
Several copies may run at once (one per core): each claims a refiner's training (`<out>/<name>.lock`, holding
its pid; a dead holder's claim is taken over), and a trained refiner's scoring per duration condition
(`<name>.<condition>.lock`), so two copies score its two conditions side by side; a copy comes back to a
refiner another copy is still training. The shared hypothesis rows are claimed the same way and waited for.

    python benchmarks/tts_study2.py --acoustic runs/ship/acoustic --out runs/tts2 --results results/tts/v2
    python benchmarks/tts_study2.py --results results/tts/v2 --report-only

The acoustic run is tts_ship's (the shipped model's). If its run dir is gone, `--restore-acoustic` rebuilds
it from the shipped bundle (fp16 weights cast back to fp32, hypotheses rewritten); runs trained on a rebuilt
acoustic run are listed as such in STATUS.md.

On the broad corpus (issue 35, part 5): model v2's acoustic run rebuilt from the shipped bundle, four
objectives at the study's budget, scored from text only (one copy per core):

    python benchmarks/tts_study2.py --acoustic runs/broad/acoustic --out runs/broad \
        --results results/tts/v2-broad --refiners delta,ssm-path,nce,sa-nce --conditions from-text \
        --set train.threads=1 --restore-acoustic --restore-set data.n_utts=10000 data.bucket=8 train.amp=true
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tts_paper.yaml"
TIE_DB = 0.01
METRICS = ("mcd", "logf0_rmse", "vuv", "dnsmos")
CONDITIONS = ("teacher-forced", "from-text")
BASE = "base"  # raw/base.<condition>.<split>.csv: the hypothesis (and vocoded reference), shared by all refiners
REBUILT_BASE = "base-rebuilt"  # the hypothesis rows of the rebuilt acoustic run (--restore-acoustic)
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
    # seeds of the best energy refiner (whichever of nce / sa-nce wins on val runs its two extra seeds)
    "nce-s1": ("nce", ["model.kind=energy", "train.seed=1"]),
    "nce-s2": ("nce", ["model.kind=energy", "train.seed=2"]),
    "sa-nce-s1": ("sa-nce", ["model.kind=energy", "train.seed=1"]),
    "sa-nce-s2": ("sa-nce", ["model.kind=energy", "train.seed=2"]),
}
SEEDS = {"delta": ["delta", "delta-s1", "delta-s2"], "nce": ["nce", "nce-s1", "nce-s2"],
         "sa-nce": ["sa-nce", "sa-nce-s1", "sa-nce-s2"]}  # train.seed 0, 1, 2: refiner init and data order
STEPS = 3000  # every refiner's training steps (the equal-steps budget)
# tts_ship's acoustic stage (the study's acoustic run): what --restore-acoustic rebuilds it with
SHIP_ACOUSTIC = ["train.ckpt_every=100", "train.log_every=20", "eval.n_test=10", "eval.steps=[1]",
                 "eval.step_sizes=[1.0]", "eval.dnsmos=false", "eval.n_wavs=1"]
REFINER_EVAL = ["eval.n_test=4", "eval.steps=[1]", "eval.step_sizes=[1.0]", "eval.dnsmos=false", "eval.n_wavs=1"]


def log(msg: str) -> None:
    print(f"[study2 {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def claim(lock: Path) -> Iterator[bool]:
    """Yields True if this process now holds `lock` (made with O_EXCL; a dead holder's lock is taken over),
    False if another live process holds it. Released on exit."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(lock.read_text() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and _alive(holder):
                yield False
                return
            lock.unlink(missing_ok=True)  # a crashed copy's claim
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        try:
            yield True
        finally:
            lock.unlink(missing_ok=True)
        return
    yield False


def trained_to(run: Path, steps: int) -> bool:
    """The run finished `steps` (its metrics.json says so): its training stage is done."""
    m = run / "metrics.json"
    return m.is_file() and json.loads(m.read_text()).get("steps") == steps


def fold_runs(out: Path, acoustic: Path, wait: bool = True) -> list[Path]:
    """The two acoustic runs of the out-of-fold ablation: the acoustic run's config and steps, each trained
    on one half of the training split (`data.train_part`). Each fold is claimed (`<out>/<fold>.lock`), so two
    copies train the two folds side by side (~85 CPU min each); with `wait`, then waits for a fold another
    copy is training."""
    from ebtk.train.checkpoint import load_checkpoint
    from ebtk.train.trainer import train

    cfg = load_checkpoint(acoustic / "checkpoint.pt")["config"]
    steps = int(cfg["train"]["steps"])
    runs = [out / f"acoustic-part{k}of2" for k in (0, 1)]
    for k, run in enumerate(runs):
        with claim(out / f"{run.name}.lock") as mine:
            if mine and not trained_to(run, steps):
                log(f"{run.name}: training the acoustic model on part {k}/2 to {steps} steps")
                train("tts", "acoustic", run, config_file=str(CONFIG),
                      overrides=[f"data.train_part={k}/2", f"train.steps={steps}", "train.ckpt_every=100",
                                 f"train.threads={cfg['train'].get('threads', 1)}", *REFINER_EVAL],
                      progress=sys.stderr.isatty())
    while wait and not all(trained_to(run, steps) for run in runs):
        time.sleep(60)  # another copy is training a fold
    return [run.resolve() for run in runs]


SHIPPED = ROOT / "src" / "ebtk" / "data" / "tts_model.pt"
RESTORED = "restored.json"  # in a restored acoustic run dir: the bundle it was rebuilt from


def restore_acoustic(run: Path, bundle: Path = SHIPPED, overrides: list[str] | None = None,
                     config_file: Path | None = CONFIG) -> None:
    """Rebuild an acoustic run dir (checkpoint, config, frontend.json, hypotheses file) from the acoustic part of a
    bundle, for a study whose acoustic run dir was lost: the shipped bundle holds that run's weights in fp16,
    cast back to fp32 here. The hypotheses are written as the acoustic run writes them (ground-truth durations,
    seeded dropout draws). `config_file` + `overrides`: the config the run was trained with (tts_ship's
    acoustic stage); the model's shape (`acoustic.*`) is read from the bundle. The rebuilt weights differ from
    the lost fp32 ones by fp16 rounding only; `restored.json` says so."""
    import hashlib

    from ebtk.config import save_yaml
    from ebtk.io import atomic_write_text
    from ebtk.train.trainer import Trainer, resolve_config, write_metrics
    from ebtk.tts.bundle import read_bundle
    from ebtk.tts.hypotheses import HYPOTHESES
    from ebtk.tts.runs import FRONTEND

    if (run / RESTORED).is_file():
        return
    b = read_bundle(bundle)
    ac = b["acoustic"]
    steps = int(b["source"].get("acoustic_steps", b["source"]["steps"]))  # a refiner's bundle, or an acoustic one
    shape = [f"acoustic.{k}={v}" for k, v in ac["config"].items()]
    cfg = resolve_config("tts", "acoustic", str(config_file) if config_file else None,
                         [*(overrides or []), *shape, f"train.steps={steps}"])
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run / FRONTEND, json.dumps(b["frontend"]))
    tr = Trainer(cfg, run, progress=False)
    tr.model.load_state_dict({k: v.float() for k, v in ac["state"].items()})
    tr.step = steps
    save_yaml(cfg, run / "config.yaml")
    tr.save()
    out = tr.task.write_hypotheses(tr.model, run / HYPOTHESES)
    write_metrics(run, {"task": "tts", "objective": "acoustic", "steps": steps, "seed": cfg["train"]["seed"],
                        "restored_from": str(bundle), **out})
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    atomic_write_text(run / RESTORED, json.dumps({"bundle": str(bundle), "sha256": digest, "steps": steps,
                                                  "weights": "fp16 cast to fp32"}) + "\n")
    log(f"{run.name}: rebuilt from {bundle.name} ({steps} steps, fp16 weights cast to fp32)")


def rebuilt_path(results: Path, name: str) -> Path:
    return results / "raw" / f"{name}.acoustic-rebuilt.json"


def note_acoustic(acoustic: Path, name: str, results: Path) -> None:
    """Keep with the results that refiner `name` was trained and scored on a rebuilt acoustic run."""
    from ebtk.io import atomic_write_text

    if (acoustic / RESTORED).is_file() and not rebuilt_path(results, name).is_file():
        atomic_write_text(rebuilt_path(results, name), (acoustic / RESTORED).read_text())


def train_refiner(run: Path, name: str, acoustic: Path, steps: int, extra: list[str]) -> None:
    from ebtk.train.trainer import train

    if trained_to(run, steps):
        return
    objective, overrides = REFINERS[name]
    if name == "delta-oof":
        overrides = [*overrides, "acoustic.oof_runs=[" + ",".join(map(str, fold_runs(run.parent, acoustic))) + "]"]
    log(f"{name}: training {objective} to {steps} steps")
    train("tts", objective, run, config_file=str(CONFIG),
          overrides=[f"acoustic.checkpoint={acoustic}", *overrides, *REFINER_EVAL, *extra, f"train.steps={steps}",
                     "train.ckpt_every=250"],  # a stopped session loses at most 250 steps (a resume-free key)
          progress=sys.stderr.isatty())


def export_curve(run: Path, name: str, results: Path) -> None:
    """The run's TensorBoard training scalars (loss and the objective's terms, per logged step) as
    `raw/<name>.train-curve.csv`: how each objective behaved while it trained (e.g. a loss without a floor)."""
    import csv
    import io

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ebtk.io import atomic_write_text

    path = curve_path(results, name)
    if path.is_file() or not (run / "tb").is_dir():
        return
    ea = EventAccumulator(str(run / "tb"))
    ea.Reload()
    tags = sorted(t for t in ea.Tags()["scalars"] if t.startswith("train/"))
    table: dict[int, dict[str, float]] = {}
    for t in tags:
        for e in ea.Scalars(t):
            table.setdefault(e.step, {})[t.removeprefix("train/")] = e.value
    cols = [t.removeprefix("train/") for t in tags]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["step", *cols])
    for step in sorted(table):
        w.writerow([step, *(f"{table[step][c]:.6g}" if c in table[step] else "" for c in cols)])
    atomic_write_text(path, buf.getvalue())


def raw_path(results: Path, name: str, condition: str, split: str) -> Path:
    return results / "raw" / f"{name}.{condition}.{split}.csv"


def curve_path(results: Path, name: str) -> Path:
    return results / "raw" / f"{name}.train-curve.csv"


def first_step_path(results: Path, name: str, split: str) -> Path:
    return results / "raw" / f"{name}.first-step.{split}.csv"


def base_name(results: Path, name: str) -> str:
    """Whose hypothesis rows refiner `name` pairs with: the acoustic run's it was trained and scored on."""
    return REBUILT_BASE if rebuilt_path(results, name).is_file() else BASE


def study_rows(results: Path, name: str, condition: str, split: str) -> list[dict[str, Any]]:
    """A refiner's per-utterance rows with the shared ones (hypothesis; vocoded reference on test). The vocoded
    reference does not depend on the acoustic model: a rebuilt acoustic run's refiners take the original's."""
    from ebtk.tts.evaluate import read_per_utterance_csv

    own = base_name(results, name)
    rows = read_per_utterance_csv(raw_path(results, own, condition, split))
    if own != BASE and raw_path(results, BASE, condition, split).is_file():
        rows += [r for r in read_per_utterance_csv(raw_path(results, BASE, condition, split))
                 if r["system"] != "hypothesis"]
    return [*rows, *read_per_utterance_csv(raw_path(results, name, condition, split))]


def chosen_rows(results: Path, name: str, cond: str, split: str) -> tuple[int, float, dict, dict]:
    """A refiner's val-chosen (steps, η) in `cond`, and on `split` {id: row} of that setting and of the
    hypothesis (the hypothesis itself when the choice is 0 steps)."""
    from ebtk.tts.evaluate import choose_setting, group_rows

    k, e = choose_setting(study_rows(results, name, cond, "val"), TIE_DB)
    sets = group_rows(study_rows(results, name, cond, split))
    hyp = sets[("hypothesis", 0, None)]
    return k, e, hyp if k == 0 else sets[("refined", k, e)], hyp


def val_and_test_scored(results: Path, name: str, cond: str) -> bool:
    """Whether `name` has both its val grid and its test rows in `cond`: what every report needs of a refiner."""
    return all(raw_path(results, name, cond, split).is_file() for split in ("val", "test"))


def chosen_deltas(results: Path, name: str, cond: str) -> tuple[int, float, Any, Any]:
    """A refiner's val-chosen (steps, η) in `cond` and its test ΔMCD and ΔDNSMOS against the hypothesis, each a
    paired bootstrap interval over the test utterances."""
    from ebtk.metrics.stats import paired_bootstrap_interval

    k, e, rows, hyp = chosen_rows(results, name, cond, "test")
    ids = sorted(hyp)
    mcd, dns = (paired_bootstrap_interval([rows[i][m] for i in ids], [hyp[i][m] for i in ids])
                for m in ("mcd", "dnsmos"))
    return k, e, mcd, dns


FIRST_STEP = ("cos", "norm_ratio", "eta_star", "mse_gain", "gv_hyp", "gv_step")


def first_step(synth: Any, name: str, inputs: Any, results: Path, n_train: int = 50) -> None:
    """The refiner's first step s(Ŷ) against the residual Y − Ŷ, teacher-forced, no vocoding (see
    `ebtk.tts.evaluate.first_step_alignment`): on the val utterances (`raw/<name>.first-step.val.csv`) and on
    the first `n_train` training utterances with their clean hypotheses (`….first-step.train.csv`), whose
    difference shows how far the refiner's field generalises beyond the utterances it trained on."""
    import csv
    import io

    from ebtk.io import atomic_write_text
    from ebtk.tts.evaluate import first_step_alignment

    for split, n in (("val", None), ("train", n_train)):
        path = first_step_path(results, name, split)
        if path.is_file():
            continue
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["id", *FIRST_STEP], lineterminator="\n")
        w.writeheader()
        w.writerows(first_step_alignment(synth, inputs.utterances(split, n)))
        atomic_write_text(path, buf.getvalue())


def first_step_rows(results: Path, name: str) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """(split, rows) of a refiner's first-step files that exist, val then train."""
    import csv

    for split in ("val", "train"):
        path = first_step_path(results, name, split)
        if path.is_file():
            with open(path, newline="") as f:
                yield split, list(csv.DictReader(f))


def first_step_report(results: Path, names: list[str]) -> str:
    """Per refiner: mean [95 % bootstrap interval] of each first-step statistic over the val utterances."""
    from ebtk.metrics.stats import bootstrap_interval

    lines = ["| refiner | split | n | cos(s(Ŷ), Y − Ŷ) | ‖s(Ŷ)‖ / ‖Y − Ŷ‖ | best η ⟨s, r⟩/‖s‖² "
             "| mel MSE removed by the best step | GV ratio of Ŷ | GV ratio after 1 step (η 1) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        for split, rows in first_step_rows(results, name):
            cells = []
            for k in FIRST_STEP:
                iv = bootstrap_interval([float(r[k]) for r in rows])
                cells.append(fmt_ci(iv))
            lines.append(f"| {name} | {split} | {len(rows)} | " + " | ".join(cells) + " |")
    lines += ["", "Teacher-forced (the hypothesis is frame-aligned with the reference mel Y): the val utterances, and "
              "the first 50 training utterances with their clean hypotheses; r = Y − Ŷ on the raw log-mel. A "
              "refiner whose first step points at the reference has cos near 1; norm ratio 1 means η = 1 has the "
              "right length, and best η is the step size that would. GV ratio: mean over mel bins of the std "
              "over frames relative to the reference's (1: the reference's global variance; below 1: "
              "over-smoothed). Intervals: 95 % percentile bootstrap over utterances."]
    return "\n".join(lines)


def scored(path: Path, synth: Any, utts: list[Any], grid: list[tuple[int, float]], **kw: Any) -> None:
    """`score_systems(synth, utts, grid, **kw)` written to `path`, one grid setting at a time into
    raw/parts/ so a stopped session loses at most one setting's scoring. The parts, joined in grid order, are
    byte-for-byte what one call over the whole grid writes: that call's reference / hypothesis rows come first,
    so only the first part scores them; then rows per setting in grid order, and each setting's mels do not
    depend on the others'. An empty grid is one part (the reference / hypothesis rows)."""
    from ebtk.io import atomic_write_text
    from ebtk.tts.evaluate import per_utterance_csv, score_systems

    parts = []
    for i, setting in enumerate(grid or [None]):
        part = path.parent / "parts" / (path.stem + (f".{setting[0]}x{setting[1]:g}" if setting else "") + ".csv")
        if not part.is_file():
            shared = kw if i == 0 else {**kw, "reference": False, "hypothesis": False}
            got = score_systems(synth, utts, [setting] if setting else [], **shared)
            atomic_write_text(part, per_utterance_csv(got))
        parts.append(part)
    texts = [q.read_text() for q in parts]
    atomic_write_text(path, texts[0] + "".join(t.split("\n", 1)[1] for t in texts[1:]))
    for q in parts:
        q.unlink()


def evaluate_refiner(run: Path, name: str, inputs: Any, results: Path, grid: list[tuple[int, float]],
                     conditions: tuple[str, ...] = CONDITIONS) -> None:
    """Val grid, choice, test rows of one refiner in `conditions`. The hypothesis (and on test the vocoded
    reference) is the same for every refiner of the acoustic run: scored once, into raw/base.*.csv
    (raw/base-rebuilt.*.csv for a rebuilt acoustic run, hypothesis only)."""
    from ebtk.tts.bundle import Synthesizer, bundle_from_run
    from ebtk.tts.evaluate import choose_setting

    synth = Synthesizer(bundle_from_run(run))
    for cond in conditions:
        for split in ("val", "test"):
            own = base_name(results, name)
            base = raw_path(results, own, cond, split)
            while not base.is_file():
                with claim(base.with_suffix(".lock")) as mine:
                    if mine and not base.is_file():
                        log(f"hypothesis ({own}) / {cond} / {split}")
                        # the vocoded reference comes with the original run's rows; a study whose only acoustic
                        # run is a rebuilt one scores it with the rebuilt run's
                        reference = split == "test" and (own == BASE or not raw_path(results, BASE, cond,
                                                                                        split).is_file())
                        scored(base, synth, inputs.utterances(split), [], condition=cond, reference=reference)
                    elif not mine:
                        time.sleep(10)  # another copy is scoring the shared rows
        val = raw_path(results, name, cond, "val")
        if not val.is_file():
            log(f"{name} / {cond}: val grid ({len(grid)} settings)")
            scored(val, synth, inputs.utterances("val"), grid, condition=cond, hypothesis=False)
        k, e = choose_setting(study_rows(results, name, cond, "val"), TIE_DB)
        test = raw_path(results, name, cond, "test")
        if not test.is_file():
            log(f"{name} / {cond}: chosen {k} × η {e:g}; test")
            scored(test, synth, inputs.utterances("test"), test_settings(name, k, e), condition=cond,
                   hypothesis=False)


# extra seeds and the training-hypothesis ablation: their test rows are the chosen setting and the paper's fixed
# 1 × η 1; divergence at 100 steps is shown once per method, by its main run (it costs a third of a test scoring)
SECONDARY = {n for runs in SEEDS.values() for n in runs[1:]} | {"delta-none", "delta-fresh", "delta-oof"}


def test_settings(name: str, k: int, eta: float) -> list[tuple[int, float]]:
    """The (steps, η) a refiner's test split is scored at, given its val choice (k, η); 0 steps is the hypothesis,
    which is scored once for all refiners."""
    wanted = {(k, eta), (1, 1.0)} | (set() if name in SECONDARY else {(100, eta)})
    return sorted(s for s in wanted if s[0] > 0)


SMALL_ETAS = (0.01, 0.03, 0.1, 0.3)  # one step each: below the shared grid's η, for score fields far too long


def small_eta_path(results: Path, name: str) -> Path:
    return results / "raw" / f"{name}.small-eta.teacher-forced.val.csv"


def small_eta_probe(run: Path, name: str, inputs: Any, results: Path) -> None:
    """A diagnostic, not a selection: one step at each of SMALL_ETAS, teacher-forced, on val. It asks whether a
    refiner whose first step is many times the residual's length (ssm at the hypothesis: 25×) helps MCD at
    *some* step size below the shared grid's, as the paper's SSM result would need. Test rows never use it."""
    from ebtk.tts.bundle import Synthesizer, bundle_from_run

    path = small_eta_path(results, name)
    if not path.is_file():
        log(f"{name}: small-η probe (teacher-forced val, 1 step at η {SMALL_ETAS})")
        scored(path, Synthesizer(bundle_from_run(run)), inputs.utterances("val"), [(1, e) for e in SMALL_ETAS],
               condition="teacher-forced", hypothesis=False)


def fmt_ci(iv: Any, nd: int = 3, sign: str = "") -> str:
    """'mean [lo, hi]': the one interval format every table here uses (sign='+' for differences)."""
    return f"{iv.mean:{sign}.{nd}f} {fmt_range(iv, nd, sign)}"


def fmt_range(iv: Any, nd: int = 3, sign: str = "") -> str:
    """'[lo, hi]' alone, for columns whose mean is shown elsewhere."""
    return f"[{iv.lo:{sign}.{nd}f}, {iv.hi:{sign}.{nd}f}]"


def small_eta_report(results: Path, names: list[str]) -> str:
    """Per refiner and small η: val ΔMCD and ΔDNSMOS vs the hypothesis, paired bootstrap."""
    from ebtk.metrics.stats import paired_bootstrap_interval
    from ebtk.tts.evaluate import group_rows, read_per_utterance_csv

    hyp = group_rows(read_per_utterance_csv(raw_path(results, BASE, "teacher-forced", "val")))
    hyp = hyp[("hypothesis", 0, None)]
    lines = ["| refiner | 1 step at η | n | ΔMCD dB vs hyp | ΔDNSMOS vs hyp |", "|---|---|---|---|---|"]
    for name in names:
        path = small_eta_path(results, name)
        if not path.is_file():
            continue
        for (_, _, eta), rows in sorted(group_rows(read_per_utterance_csv(path)).items(), key=lambda x: x[0][2]):
            ids, cells = [i for i in rows if i in hyp], []
            for m in ("mcd", "dnsmos"):
                iv = paired_bootstrap_interval([rows[i][m] for i in ids], [hyp[i][m] for i in ids])
                cells.append(fmt_ci(iv, sign="+"))
            lines.append(f"| {name} | {eta:g} | {iv.n} | {cells[0]} | {cells[1]} |")
    lines += ["", "Diagnostic only (no selection uses it): one refinement step at step sizes below the shared grid "
              "(steps {1, 2, 5} × η {0.5, 1}), teacher-forced, on the 50 val utterances. Intervals: 95 % paired "
              "percentile bootstrap over utterances."]
    return "\n".join(lines)


FM = "fm"
FM_GRID = (1, 2, 4, 10)  # Euler steps, chosen on val like a refiner's (steps, η)
FM_SNAPSHOTS = 8  # kept checkpoints along the FM run, for its learning curve


def seconds_per_step(setups: dict[str, tuple[str, list[str]]], scratch: Path, rounds: int,
                     per_round: int) -> dict[str, float]:
    """Thread CPU seconds per training step of each {name: (objective, overrides)} setup, measured in one
    process, interleaved (`rounds` × `per_round` steps each, after one warm-up step), so that every setup
    sees the same machine state; other processes' load does not count in thread time."""
    from ebtk.train.trainer import Trainer, resolve_config

    trainers = {name: Trainer(resolve_config("tts", obj, config_file=str(CONFIG), overrides=over),
                              scratch / name, progress=False)
                for name, (obj, over) in setups.items()}
    for tr in trainers.values():
        tr.train_step()  # warm-up: first-call allocations
    spent = dict.fromkeys(trainers, 0.0)
    for _ in range(rounds):
        for name, tr in trainers.items():
            t0 = time.thread_time()
            for _ in range(per_round):
                tr.train_step()
            spent[name] += time.thread_time() - t0
    return {name: spent[name] / (rounds * per_round) for name in trainers}


def refiner_costs(out: Path, acoustic: Path, results: Path, rounds: int = 3, per_round: int = 2) -> dict[str, Any]:
    """The compute behind the equal-steps budget: every refiner trains the same steps, but a step's cost
    differs by objective (sa-nce runs Langevin chains on each batch). Thread CPU seconds per step of each
    distinct refiner setup (seeds and remedies share delta's cost), one thread, measured once into
    `step_costs.json`."""
    from ebtk.io import atomic_write_text

    path = results / "step_costs.json"
    if path.is_file():
        return json.loads(path.read_text())
    names = ["delta", "delta-text", "ssm", "ssm-hyp", "ssm-path", "ssm-vr", "ssm+delta", "nce", "sa-nce"]
    log(f"step costs: timing {', '.join(names)} side by side")
    setups = {n: (REFINERS[n][0], ["train.threads=1", "train.seed=0", f"acoustic.checkpoint={acoustic}",
                                   *REFINERS[n][1]]) for n in names}
    per_step = seconds_per_step(setups, out / "budget-scratch", rounds, per_round)
    got = {"seconds_per_step": per_step, "timed_steps": rounds * per_round,
           "clock": "thread CPU time, torch threads 1, interleaved rounds"}
    atomic_write_text(path, json.dumps(got, indent=2) + "\n")
    return got


def costs_report(costs: dict[str, Any], steps: int) -> str:
    """A table of each refiner's measured cost per step and for the study's `steps`, relative to delta."""
    ps = costs["seconds_per_step"]
    lines = [f"| refiner | CPU s / step | CPU h for {steps} steps | × delta |", "|---|---|---|---|"]
    lines += [f"| {n} | {s:.3f} | {s * steps / 3600:.2f} | {s / ps['delta']:.1f} |" for n, s in ps.items()]
    lines += ["", f"Every refiner trains {steps} steps (equal steps, the same data, crops and batch); this is what "
              f"a step costs ({costs['clock']}, {costs['timed_steps']} steps each after a warm-up). Seeds and "
              "training-hypothesis variants cost what delta costs."]
    return "\n".join(lines)


def fm_budget(out: Path, acoustic: Path, results: Path, rounds: int = 6, per_round: int = 3) -> dict[str, Any]:
    """Seconds per training step of the acoustic model, the delta refiner and FM (frozen encoder), measured
    in one process, interleaved (`rounds` × `per_round` steps each, after one warm-up step), one thread,
    thread CPU time (other processes' load does not count); and the FM steps that cost what the acoustic
    model's and the delta refiner's steps cost. Measured once into `fm_budget.json`."""
    from ebtk.io import atomic_write_text
    from ebtk.train.checkpoint import load_checkpoint

    path = results / "fm_budget.json"
    if path.is_file():
        return json.loads(path.read_text())
    log("fm budget: timing acoustic, delta and fm training steps side by side")
    ac_steps = int(load_checkpoint(acoustic / "checkpoint.pt")["config"]["train"]["steps"])
    delta_steps = int(json.loads((out / "delta" / "metrics.json").read_text())["steps"])
    common = ["train.threads=1", "train.seed=0"]
    setups = {
        "acoustic": ("acoustic", common),
        "delta": ("delta", [*common, f"acoustic.checkpoint={acoustic}", *REFINERS["delta"][1]]),
        FM: ("fm", [*common, f"acoustic.checkpoint={acoustic}", "acoustic.freeze=true"]),
    }
    per_step = seconds_per_step(setups, out / "budget-scratch", rounds, per_round)
    seconds = ac_steps * per_step["acoustic"] + delta_steps * per_step["delta"]
    got = {"seconds_per_step": per_step, "acoustic_steps": ac_steps, "delta_steps": delta_steps,
           "budget_seconds": seconds, "fm_steps": round(seconds / per_step[FM]),
           "fm_steps_refiner_only": round(delta_steps * per_step["delta"] / per_step[FM]),
           "timed_steps": rounds * per_round, "clock": "thread CPU time, torch threads 1, interleaved rounds"}
    atomic_write_text(path, json.dumps(got, indent=2) + "\n")
    return got


def train_fm(out: Path, acoustic: Path, budget: dict[str, Any]) -> Path:
    from ebtk.train.trainer import train

    run, steps = out / FM, int(budget["fm_steps"])
    if not trained_to(run, steps):
        log(f"fm: training the FM decoder on the frozen encoder to {steps} steps (the acoustic + delta budget)")
        train("tts", "fm", run, config_file=str(CONFIG),
              overrides=[f"acoustic.checkpoint={acoustic}", "acoustic.freeze=true", f"train.steps={steps}",
                         f"train.keep_every={max(1, steps // FM_SNAPSHOTS)}", "train.ckpt_every=100",
                         "train.threads=1", *REFINER_EVAL], progress=sys.stderr.isatty())
    return run


def evaluate_fm_run(run: Path, inputs: Any, results: Path) -> None:
    """Val grid of Euler steps, the choice, the test rows (chosen and the configured maximum), per condition;
    then the learning curve from the snapshots (val, from text, at the from-text choice)."""
    from ebtk.io import atomic_write_text
    from ebtk.train.checkpoint import SNAPSHOTS, load_checkpoint
    from ebtk.tts.bundle import Synthesizer, bundle_from_run
    from ebtk.tts.evaluate import FM_SYSTEM, choose_setting, per_utterance_csv, score_systems

    synth = Synthesizer(bundle_from_run(run))
    chosen = {}
    for cond in CONDITIONS:
        val = raw_path(results, FM, cond, "val")
        if not val.is_file():
            log(f"fm / {cond}: val grid (Euler steps {FM_GRID})")
            scored(val, synth, inputs.utterances("val"), [(n, 1.0) for n in FM_GRID], condition=cond)
        chosen[cond], _ = choose_setting(study_rows(results, FM, cond, "val"), TIE_DB, systems=(FM_SYSTEM,))
        test = raw_path(results, FM, cond, "test")
        if not test.is_file():
            log(f"fm / {cond}: chosen {chosen[cond]} Euler steps; test")
            grid = [(n, 1.0) for n in sorted({chosen[cond], max(FM_GRID)})]
            scored(test, synth, inputs.utterances("test"), grid, condition=cond)
    n = chosen["from-text"]
    for snap in sorted((run / SNAPSHOTS).glob("step-*.pt")):
        path = results / "raw" / "fm-curve" / f"{snap.stem}.from-text.val.csv"
        if path.is_file():
            continue
        log(f"fm curve: {snap.stem}, {n} Euler steps, val from text")
        seconds = float(load_checkpoint(snap).get("train_seconds", 0.0))
        got = score_systems(Synthesizer(bundle_from_run(run, snap)), inputs.utterances("val"), [(n, 1.0)],
                            condition="from-text")
        for r in got:
            r["system"] = f"{FM_SYSTEM} @ {seconds:.0f} s"
        atomic_write_text(path, per_utterance_csv(got))


def fm_curve_report(results: Path, budget: dict[str, Any]) -> str:
    """Val MCD from text per FM snapshot, with the hypothesis and the delta refiner's val choice beside it."""
    from ebtk.metrics.stats import bootstrap_interval
    from ebtk.tts.evaluate import group_rows, read_per_utterance_csv

    lines = ["| FM training steps | FM train seconds (this run's wall-clock) | Euler steps | n "
             "| val MCD dB (from text) |", "|---|---|---|---|---|"]
    for path in sorted((results / "raw" / "fm-curve").glob("step-*.from-text.val.csv")):
        rows = read_per_utterance_csv(path)
        step = int(path.name.split(".")[0].split("-")[1])
        iv = bootstrap_interval([r["mcd"] for r in rows])
        secs = rows[0]["system"].split("@")[1].strip()
        lines.append(f"| {step} | {secs} | {rows[0]['steps']} | {iv.n} | {fmt_ci(iv)} |")
    base = group_rows(read_per_utterance_csv(raw_path(results, BASE, "from-text", "val")))[("hypothesis", 0, None)]
    hyp = bootstrap_interval([r["mcd"] for r in base.values()])
    lines += ["", f"Acoustic hypothesis, val from text: {fmt_ci(hyp)} (n = {hyp.n})."]
    if raw_path(results, "delta", "from-text", "val").is_file():
        k, e, rows, _ = chosen_rows(results, "delta", "from-text", "val")
        d = bootstrap_interval([r["mcd"] for r in rows.values()])
        lines.append(f"Delta refiner at its val choice ({k} × η {e:g}), val from text: {fmt_ci(d)}.")
    ps = budget["seconds_per_step"]
    lines += ["", f"Budget: {budget['fm_steps']} FM steps cost what {budget['acoustic_steps']} acoustic and "
              f"{budget['delta_steps']} delta-refiner steps cost ({budget['budget_seconds']:.0f} s of one thread at "
              f"{ps['acoustic']:.3f} / {ps['delta']:.3f} / {ps[FM]:.3f} s per step, measured side by side: "
              f"{budget['clock']}); the refiner's steps alone are worth {budget['fm_steps_refiner_only']} FM steps. "
              "Intervals: 95 % percentile bootstrap over utterances."]
    return "\n".join(lines)


ORIGINALS = "originals.json"  # in results: where the original acoustic run's rows are kept, if not in raw/


def original_rows(results: Path, cond: str, split: str) -> list[tuple[str, dict[str, dict[str, Any]]]]:
    """The original acoustic run's hypothesis rows {id: row} for (cond, split), each with a label: this study's
    own (raw/base.*), else those `originals.json` names, e.g. the shipped model's per-utterance CSVs
    (`{"from-text": {"test": [["results/tts/shipped-v2/test_per_utterance.csv", "hypothesis (fp16)"]]}}`,
    paths from the repository root; the second item is the rows' `system`)."""
    from ebtk.tts.evaluate import group_rows, read_per_utterance_csv

    own = raw_path(results, BASE, cond, split)
    if own.is_file():
        return [("this study's", group_rows(read_per_utterance_csv(own))[("hypothesis", 0, None)])]
    specs = json.loads((results / ORIGINALS).read_text()) if (results / ORIGINALS).is_file() else {}
    return [(f"`{path}` {system}", {r["id"]: r for r in read_per_utterance_csv(ROOT / path) if r["system"] == system})
            for path, system in specs.get(cond, {}).get(split, [])]


def rebuilt_report(results: Path) -> str:
    """The rebuilt acoustic run against the original: the same utterances' hypothesis scores, paired, per
    condition and split where both were scored (the original's rows: `original_rows`). A check of the
    instrument: refiners on the rebuilt run are comparable with the others only if its hypotheses score as
    the original's; against rows scored by another script (tts_ship) it also checks the scoring itself."""
    from ebtk.metrics.stats import paired_bootstrap_interval
    from ebtk.tts.evaluate import group_rows, read_per_utterance_csv

    lines = ["| condition | split | original rows | n | ΔMCD dB (rebuilt − original) | Δlog-F0 RMSE | ΔV/UV "
             "| ΔDNSMOS | largest abs ΔMCD |", "|---|---|---|---|---|---|---|---|---|"]
    for cond in CONDITIONS:
        for split in ("val", "test"):
            path = raw_path(results, REBUILT_BASE, cond, split)
            if not path.is_file():
                continue
            new = group_rows(read_per_utterance_csv(path))[("hypothesis", 0, None)]
            for label, old in original_rows(results, cond, split):
                ids = sorted(new.keys() & old.keys())
                cells = []
                for m in METRICS:
                    iv = paired_bootstrap_interval([new[i][m] for i in ids], [old[i][m] for i in ids])
                    cells.append(fmt_ci(iv, nd=4, sign="+"))
                worst = max(abs(new[i]["mcd"] - old[i]["mcd"]) for i in ids)
                lines.append(f"| {cond} | {split} | {label} | {len(ids)} | {' | '.join(cells)} | {worst:.4f} |")
    lines += ["", "The study's acoustic run dir was lost between sessions; `--restore-acoustic` rebuilt it from the "
              "shipped bundle (its fp16 weights cast to fp32; hypotheses rewritten with the same seeded dropout "
              "draws). Rows: the hypothesis of the rebuilt run minus the original run's, per utterance. "
              "Intervals: 95 % percentile bootstrap over utterances (paired)."]
    return "\n".join(lines)


def report(results: Path, names: list[str]) -> str:
    """The test table per condition, from the raw CSVs (regenerates identically: fixed bootstrap seed)."""
    from ebtk.metrics.stats import bootstrap_interval, paired_bootstrap_interval
    from ebtk.tts.evaluate import FM_SYSTEM, choose_setting, group_rows, row_mean

    out = []
    for cond in CONDITIONS:
        lines = [f"### {cond}", "",
                 "| refiner | setting | chosen on val | n | MCD dB | ΔMCD vs hyp | share of gap | Δlog-F0 RMSE "
                 "| ΔV/UV | ΔDNSMOS |", "|---|---|---|---|---|---|---|---|---|---|"]
        base_done = False
        for name in [*names, FM]:
            if not val_and_test_scored(results, name, cond):
                continue
            systems = (FM_SYSTEM,) if name == FM else ("hypothesis", "refined")
            k, e = choose_setting(study_rows(results, name, cond, "val"), TIE_DB, systems)
            sets = group_rows(study_rows(results, name, cond, "test"))
            hyp, ref = sets[("hypothesis", 0, None)], sets[("vocoded reference", 0, None)]
            ids = sorted(hyp)
            if not base_done:
                for label, rows in (("vocoded reference", ref), ("hypothesis", hyp)):
                    mcd = bootstrap_interval([rows[i]["mcd"] for i in ids])
                    lines.append(f"| {label} | – | – | {mcd.n} | {fmt_ci(mcd, 2)} | – | – | – | – | – |")
                base_done = True
            gap = row_mean(hyp, "mcd") - row_mean(ref, "mcd")
            for (s, kk, ee), rows in sorted(sets.items(), key=lambda x: (x[0][1], x[0][2] or 0)):
                if s not in systems[-1:]:
                    continue
                cells = []
                for m in METRICS:
                    pairs = [(rows[i][m], hyp[i][m]) for i in ids if i in rows and rows[i][m] is not None
                             and hyp[i][m] is not None]
                    cells.append(fmt_ci(paired_bootstrap_interval([a for a, _ in pairs], [b for _, b in pairs]),
                                        sign="+"))
                mcd = bootstrap_interval([rows[i]["mcd"] for i in ids if i in rows])
                share = 100 * (row_mean(hyp, "mcd") - row_mean(rows, "mcd")) / gap
                chosen = "**yes**" if (kk, ee or 1.0) == (k, e) else ""
                setting = f"{kk} Euler steps" if name == FM else f"{kk} × η {ee:g}"
                lines.append(f"| {name} | {setting} | {chosen} | {mcd.n} | {fmt_ci(mcd, 2)} | {cells[0]} | "
                             f"{share:+.1f} % | {cells[1]} | {cells[2]} | {cells[3]} |")
            if k == 0:
                mcd = bootstrap_interval([hyp[i]["mcd"] for i in ids])  # val chose not to refine
                lines.append(f"| {name} | 0 (hypothesis) | **yes** | {mcd.n} | {fmt_ci(mcd, 2)} "
                             "| 0 | 0 % | 0 | 0 | 0 |")
        if base_done:  # a condition no refiner was scored in (--conditions) has no table
            out += lines + [""]
    out.append("Test split; MCD-DTW / log-F0 RMSE / V/UV against the recording (WORLD analysis, DTW), DNSMOS OVRL. "
               "Intervals: 95 % percentile bootstrap over utterances (10 000 resamples, seed 0); Δ columns pair "
               "each utterance with its own hypothesis (same condition). Share of gap: the part of the "
               "hypothesis → vocoded-reference MCD gap closed. The chosen setting is the lowest mean val MCD "
               f"(DNSMOS breaks ties within {TIE_DB} dB); 1 × η 1 is the paper's fixed setting, 100 steps shows "
               "divergence (main runs only; extra seeds and ablation runs have no 100-step row). Every refiner "
               "trains the same steps; a step's cost differs by objective (step_costs.md). "
               "fm: the flow-matching decoder on the same frozen encoder, trained for the acoustic model's "
               "and the delta refiner's training time (fm_curve.md); its Δ columns pair it with the acoustic "
               "hypothesis it replaces.")
    return "\n".join(out)


def seeds_report(results: Path) -> str:
    """Per seed group and condition: each seed's val-chosen setting and its test ΔMCD and ΔDNSMOS vs the
    hypothesis (paired bootstrap), then the spread over seeds: min–max and t-intervals over the seed means."""
    from ebtk.metrics.stats import t_interval

    lines = ["| refiner | condition | seed runs (chosen on val: test ΔMCD dB [95 % paired bootstrap]) "
             "| mean over seeds | min – max | 95 % t-interval over seeds | ΔDNSMOS per seed "
             "| ΔDNSMOS mean [95 % t over seeds] |", "|---|---|---|---|---|---|---|---|"]
    for group, names in SEEDS.items():
        for cond in CONDITIONS:
            got = [(name, *chosen_deltas(results, name, cond)) for name in names
                   if val_and_test_scored(results, name, cond)]
            if len(got) < 2:
                continue
            cells = [f"{name}{'†' if base_name(results, name) == REBUILT_BASE else ''}: {k} × η {e:g}, "
                     f"{fmt_ci(iv, sign='+')}" for name, k, e, iv, _ in got]
            means = [iv.mean for *_, iv, _ in got]
            t, td = t_interval(means), t_interval([dns.mean for *_, dns in got])
            dns_cells = [f"{name}: {fmt_ci(dns, sign='+')}" for name, *_, dns in got]
            lines.append(f"| {group} | {cond} | {'; '.join(cells)} | {t.mean:+.3f} | {min(means):+.3f} – "
                         f"{max(means):+.3f} | {fmt_range(t, sign='+')} | {'; '.join(dns_cells)} | "
                         f"{td.mean:+.3f} {fmt_range(td, sign='+')} |")
    lines += ["", "Seeds differ in the refiner's initialisation and data order (train.seed); the acoustic run and "
              "its hypotheses are shared, except that † marks a seed trained on the rebuilt acoustic run (the "
              "original run dir was lost; rebuilt from the shipped fp16 weights, its hypotheses score as the "
              "original's: rebuilt_acoustic.md) and paired with that run's hypothesis. Each seed's setting is "
              "chosen on val, as in table.md. ΔDNSMOS: the same chosen setting's DNSMOS OVRL minus the "
              "hypothesis's (higher is better)."]
    return "\n".join(lines)


# the training-hypothesis ablation of the delta refiner: remedy -> its runs (the fixed dropout draw has 3 seeds)
REMEDIES = {"dropout, one fixed draw (default)": SEEDS["delta"], "none (clean, over-fitted)": ["delta-none"],
            "dropout drawn per batch": ["delta-fresh"], "out-of-fold": ["delta-oof"]}


def run_refiner(name: str, out: Path, acoustic: Path, results: Path, grid: list[tuple[int, float]], steps: int,
                extra: list[str], inputs: Any = None,
                conditions: tuple[str, ...] = CONDITIONS) -> tuple[Any, bool]:
    """One copy's share of refiner `name`: training, its curve and first step under the refiner's claim
    (`<out>/<name>.lock`); then scoring in `conditions`, claimed per duration condition
    (`<name>.<condition>.lock`), so a second copy scores the other condition of a trained refiner instead of
    idling. Returns the (lazily built) split inputs and whether another copy is still training it (then come
    back later)."""
    from ebtk.tts.bundle import Synthesizer, bundle_from_run

    run = out / name
    if all(raw_path(results, name, c, "test").is_file() for c in conditions):
        return inputs, False
    with claim(out / f"{name}.lock") as mine:
        if mine:
            note_acoustic(acoustic, name, results)  # before training: STATUS labels a run in progress too
            train_refiner(run, name, acoustic, steps, extra)
            inputs = split_inputs(acoustic, run) if inputs is None else inputs
            export_curve(run, name, results)
            first_step(Synthesizer(bundle_from_run(run)), name, inputs, results)
        elif not trained_to(run, steps):
            log(f"{name}: another copy is training it; back later")
            return inputs, True
    for cond in conditions:
        if raw_path(results, name, cond, "test").is_file():
            continue
        with claim(out / f"{name}.{cond}.lock") as mine:
            if not mine:
                log(f"{name} / {cond}: another copy is scoring it; next")
                continue
            inputs = split_inputs(acoustic, run) if inputs is None else inputs
            evaluate_refiner(run, name, inputs, results, grid, (cond,))
    return inputs, False


def ablation_report(results: Path) -> str:
    """The delta refiner's training hypotheses: per remedy run and condition, the val-chosen setting's test
    ΔMCD / ΔDNSMOS vs the hypothesis (paired bootstrap), and whether each falls inside the 95 % prediction
    interval of one more seed of the default remedy (its seed spread: a single-seed run outside it differs by
    more than the seed noise). Then the first step's cosine with the residual on val and on training
    utterances: the over-fitting each remedy is meant to close."""
    from ebtk.metrics.stats import bootstrap_interval, t_prediction_interval

    lines = ["| remedy | run | condition | chosen on val | n | test ΔMCD dB | ΔDNSMOS | vs the default's seeds: "
             "ΔMCD; ΔDNSMOS |", "|---|---|---|---|---|---|---|---|"]
    default = next(iter(REMEDIES.values()))
    for cond in CONDITIONS:
        seed_means: list[list[float]] = [[], []]  # the default's seeds: ΔMCD, ΔDNSMOS
        rows_out = []
        for remedy, names in REMEDIES.items():
            for name in names:
                if not val_and_test_scored(results, name, cond):
                    continue
                k, e, *d = chosen_deltas(results, name, cond)
                if name in default:
                    for acc, iv in zip(seed_means, d):
                        acc.append(iv.mean)
                mark = "†" if base_name(results, name) == REBUILT_BASE else ""
                rows_out.append((name, [remedy, f"{name}{mark}", cond, f"{k} × η {e:g}", str(d[0].n),
                                        fmt_ci(d[0], sign="+"), fmt_ci(d[1], sign="+")], d))
        pred = [t_prediction_interval(v) for v in seed_means]
        for name, cells, d in rows_out:
            if name in default:
                verdict = "–"
            elif pred[0].n < 2:
                verdict = "(needs 2 seeds)"
            else:  # lower MCD and higher DNSMOS are better
                verdict = "; ".join("inside (tie)" if p.lo <= iv.mean <= p.hi else
                                    ("better" if (iv.mean < p.lo) == lower else "worse")
                                    for p, iv, lower in zip(pred, d, (True, False)))
            lines.append("| " + " | ".join([*cells, verdict]) + " |")
        if pred[0].n >= 2:
            lines.append(f"| default, one more seed | 95 % prediction interval over {pred[0].n} seeds | {cond} | | "
                         f"| {fmt_range(pred[0], sign='+')} | {fmt_range(pred[1], sign='+')} | |")
    lines += ["", "| remedy | run | first step on | n | cos(s(Ŷ), Y − Ŷ) | ‖s(Ŷ)‖ / ‖Y − Ŷ‖ |",
              "|---|---|---|---|---|---|"]
    for remedy, names in REMEDIES.items():
        for name in names:
            for split, fs in first_step_rows(results, name):
                c, r = (bootstrap_interval([float(x[k]) for x in fs]) for k in ("cos", "norm_ratio"))
                lines.append(f"| {remedy} | {name} | {split} | {c.n} | {fmt_ci(c)} | {fmt_ci(r)} |")
    lines += residual_size_lines(results, default[0])
    lines += ["", "Every run: the delta refiner (score net), 3000 steps, the same acoustic run, data, crops and batch; "
              "only the training hypotheses differ (acoustic.hyp_remedy), and the default has 3 seeds (train.seed "
              "0–2; † trained on the rebuilt acoustic run, paired with its hypothesis). Test: 100 utterances, the "
              "setting chosen on val per condition; Δ: paired 95 % percentile bootstrap over utterances. "
              "'vs the default's seeds': whether the run's mean ΔMCD (ΔDNSMOS) lies inside the Student-t 95 % "
              "prediction interval of one more seed of the default (mean ± t·s·√(1 + 1/n) over its seeds'); with one "
              "seed per remedy, only a run outside it differs by more than seed noise. First step: teacher-forced, "
              "on the val utterances and on 50 training utterances with their clean hypotheses (the over-fitting "
              "the remedies address shows as a higher cosine on train than on val). Training pairs: the square of "
              "the delta loss's target_rms, averaged over each logging window of 100 steps "
              "(raw/<run>.train-curve.csv: random crops of the training utterances with the remedy's hypotheses), "
              "against the val hypotheses' per-utterance mel MSE (whole utterances); a remedy whose training "
              "residuals are smaller than the val ones still over-fits, one whose are larger trains on worse "
              "hypotheses than it will meet. Intervals: 95 % percentile bootstrap over logged windows / utterances."]
    return "\n".join(lines)


def residual_size_lines(results: Path, default: str) -> list[str]:
    """Per remedy run, the mel MSE of the pairs the delta refiner trained on, then that of the val hypotheses
    it meets (`default`'s, teacher-forced: frame-aligned mels); [] when neither is there."""
    from ebtk.metrics.stats import bootstrap_interval
    from ebtk.tts.evaluate import read_per_utterance_csv

    lines = []
    for remedy, names in REMEDIES.items():
        for name in names:
            if mse := training_residual_mse(results, name):
                lines.append(f"| {remedy} | {name} | {len(mse)} logged windows | {fmt_ci(bootstrap_interval(mse))} |")
    own = base_name(results, default)
    base = raw_path(results, own, CONDITIONS[0], "val")  # the hypothesis rows
    val_mse = [float(r["mel_mse"]) for r in (read_per_utterance_csv(base) if base.is_file() else [])
               if r["system"] == "hypothesis" and r["mel_mse"] is not None]
    if val_mse:
        val = bootstrap_interval(val_mse)
        lines.append(f"| what the refiner meets: the val hypotheses | {own} | "
                     f"{val.n} utterances | {fmt_ci(val)} |")
    return ["", "| training pairs of | run | n | mel MSE of Y − Ŷ |", "|---|---|---|---|", *lines] if lines else []


def training_residual_mse(results: Path, name: str) -> list[float]:
    """target_rms² per logged step of `raw/<name>.train-curve.csv`: about the mel MSE between the reference
    and the hypothesis of the batches the delta refiner trained on (the square of a window's mean rms, a little
    under its mean square; empty without the file or the column)."""
    import csv

    path = curve_path(results, name)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [float(r["target_rms"]) ** 2 for r in csv.DictReader(f) if r.get("target_rms")]


RESUME = ("OMP_NUM_THREADS=1 python benchmarks/tts_study2.py --acoustic runs/ship/acoustic --restore-acoustic "
          "--out runs/tts2 "
          "--results results/tts/v2 --set train.threads=1 --refiners NAMES [--fm] [--probe NAMES]  # one copy per core")
# the broad-corpus rerun (a results dir named in this dict resumes with its own command)
RESUME_OF = {"results/tts/v2-broad": (
    "OMP_NUM_THREADS=1 python benchmarks/tts_study2.py --acoustic runs/broad/acoustic --out runs/broad "
    "--results results/tts/v2-broad --refiners delta,ssm-path,nce,sa-nce --conditions from-text "
    "--set train.threads=1 --restore-acoustic --restore-set data.n_utts=10000 data.bucket=8 train.amp=true"
    "  # one copy per core")}


def status_report(results: Path, out: Path, names: list[str], fm: bool = True) -> str:
    """Which stages have landed (from the result files; training progress from `out` when it is here)."""
    import datetime

    def mark(path: Path) -> str:
        return "done" if path.is_file() else "–"

    def trained(run: Path) -> str:
        m = run / "metrics.json"
        if m.is_file():
            return f"{json.loads(m.read_text()).get('steps')} steps"
        ck = run / "checkpoint.pt"
        if ck.is_file():
            from ebtk.train.checkpoint import load_checkpoint

            return f"at step {load_checkpoint(ck).get('step')}"
        return "–"

    shown = out.resolve().relative_to(ROOT) if out.resolve().is_relative_to(ROOT) else out
    shown_results = str(results.resolve().relative_to(ROOT)) if results.resolve().is_relative_to(ROOT) else ""
    lines = [f"Generated {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC from the files in this folder "
             f"(training state from {shown}/ where present).", "",
             "| refiner | trained | acoustic run | first step | teacher-forced val / test | from text val / test |",
             "|---|---|---|---|---|---|"]
    for name in [*names, FM] if fm else names:
        fs = first_step_path(results, name, "val")
        tf = " / ".join(mark(raw_path(results, name, "teacher-forced", sp)) for sp in ("val", "test"))
        ft = " / ".join(mark(raw_path(results, name, "from-text", sp)) for sp in ("val", "test"))
        state = trained(out / name)
        started = state != "–" or any((results / "raw").glob(f"{name}.*"))
        ac = "rebuilt" if rebuilt_path(results, name).is_file() else "original" if started else "–"
        lines.append(f"| {name} | {state} | {ac} | {mark(fs) if name != FM else 'n/a'} | {tf} | {ft} |")
    curve = sorted((results / "raw" / "fm-curve").glob("*.csv"))
    lines += ["", "Acoustic run: *original* is tts_ship's run; *rebuilt* is that run restored from the shipped "
              "bundle's fp16 weights after its run dir was lost (--restore-acoustic; "
              "raw/<name>.acoustic-rebuilt.json).",
              *(["", f"FM learning curve: {len(curve)} snapshot(s) scored."] if fm else []),
              "", "Resume (every stage resumes; copies running at once claim different refiners):", "", "```",
              RESUME_OF.get(shown_results, RESUME), "```"]
    return "\n".join(lines)


PLAN = "plan.json"  # in results: {"refiners": [...]}, every refiner any copy was started with (`--refiners`)


def planned(results: Path) -> list[str]:
    """The study's refiners in `REFINERS` order (fm included if planned): those of `plan.json`, so a study of a
    few objectives (the broad-corpus rerun) reports exactly those, pending ones too; without it, all."""
    if not (results / PLAN).is_file():
        return [*REFINERS, FM]
    names = set(json.loads((results / PLAN).read_text())["refiners"])
    return [n for n in [*REFINERS, FM] if n in names]


def add_to_plan(results: Path, names: list[str]) -> None:
    """Add `names` to `plan.json` (copies started with other `--refiners` add theirs)."""
    from ebtk.io import atomic_write_text

    results.mkdir(parents=True, exist_ok=True)
    have = set(json.loads((results / PLAN).read_text())["refiners"]) if (results / PLAN).is_file() else set()
    if not set(names) <= have:
        atomic_write_text(results / PLAN, json.dumps({"refiners": [n for n in [*REFINERS, FM]
                                                                    if n in have | set(names)]}) + "\n")


def write_reports(results: Path, out: Path) -> str:
    """Every report from the raw files, over every planned refiner (`planned`), not the ones a copy runs, so
    whichever copy writes last leaves complete tables."""
    from ebtk.io import atomic_write_text

    names = [n for n in planned(results) if n != FM]

    table = report(results, names)
    atomic_write_text(results / "table.md", table + "\n")
    atomic_write_text(results / "first_step.md", first_step_report(results, names) + "\n")
    if any(small_eta_path(results, n).is_file() for n in names):
        atomic_write_text(results / "small_eta.md", small_eta_report(results, names) + "\n")
    if any(n in names for runs in SEEDS.values() for n in runs[1:]):  # only a study with extra seeds
        atomic_write_text(results / "seeds.md", seeds_report(results) + "\n")
    if any(n in names for runs in REMEDIES.values() for n in runs if n not in SEEDS["delta"]):
        atomic_write_text(results / "ablation.md", ablation_report(results) + "\n")
    if any(raw_path(results, REBUILT_BASE, c, sp).is_file() for c in CONDITIONS for sp in ("val", "test")):
        atomic_write_text(results / "rebuilt_acoustic.md", rebuilt_report(results) + "\n")
    atomic_write_text(results / "STATUS.md", status_report(results, out, names, FM in planned(results)) + "\n")
    if (results / "step_costs.json").is_file():
        atomic_write_text(results / "step_costs.md",
                          costs_report(json.loads((results / "step_costs.json").read_text()), STEPS) + "\n")
    return table


def split_inputs(acoustic: Path, run: Path) -> Any:
    """The val / test / train utterances of the acoustic run's split, read through `run`'s synthesizer
    (made once per copy: every refiner shares the acoustic model, hence the split)."""
    from ebtk.tts.bundle import Synthesizer, bundle_from_run
    from ebtk.tts.splits import SplitUtterances

    return SplitUtterances(acoustic, Synthesizer(bundle_from_run(run)), teacher_forced=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acoustic", default=str(ROOT / "runs" / "ship" / "acoustic"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "tts2"))
    ap.add_argument("--results", default=str(ROOT / "results" / "tts" / "v2"))
    ap.add_argument("--refiners", default=",".join(REFINERS))
    ap.add_argument("--refiner-steps", type=int, default=STEPS)
    ap.add_argument("--steps-grid", default="1,2,5")
    ap.add_argument("--eta-grid", default="0.5,1.0")
    ap.add_argument("--set", nargs="*", default=[], help="extra config overrides for the refiner runs")
    ap.add_argument("--fm", action="store_true", help="also the flow-matching baseline (after the refiners)")
    ap.add_argument("--probe", default="", help="trained refiners to run the small-η probe on (small_eta.md)")
    ap.add_argument("--costs", action="store_true",
                    help="measure each refiner's CPU cost per training step side by side (step_costs.json)")
    ap.add_argument("--restore-acoustic", action="store_true",
                    help="rebuild a lost --acoustic run dir from the shipped bundle's fp16 weights (restored.json)")
    ap.add_argument("--restore-set", nargs="*", default=[],
                    help="config overrides of the rebuilt acoustic run beyond tts_ship's acoustic stage (model v2: "
                         "data.n_utts=10000 data.bucket=8 train.amp=true)")
    ap.add_argument("--conditions", default=",".join(CONDITIONS),
                    help="duration conditions to score (from-text alone: what `ebtk synthesize` does)")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    from ebtk.io import atomic_write_text

    results, out = Path(a.results), Path(a.out)
    names = [n for n in a.refiners.split(",") if n]
    unknown = sorted(set(names) - set(REFINERS))
    if unknown:
        raise SystemExit(f"error: unknown refiners {unknown}; known: {', '.join(REFINERS)}")
    if not a.report_only:
        add_to_plan(results, [*names, *([FM] if a.fm else [])])
        acoustic = Path(a.acoustic).resolve()
        if a.restore_acoustic:
            restore_acoustic(acoustic, overrides=[*SHIP_ACOUSTIC, *a.restore_set])
        grid = [(int(k), float(e)) for e in a.eta_grid.split(",") for k in a.steps_grid.split(",")]
        conditions = tuple(c for c in a.conditions.split(",") if c)
        if not conditions or set(conditions) - set(CONDITIONS):
            raise SystemExit(f"error: --conditions {a.conditions!r}: choose from {', '.join(CONDITIONS)}")
        inputs = None
        if a.costs:
            refiner_costs(out, acoustic, results)
        if "delta-oof" in names and not all(raw_path(results, "delta-oof", c, "test").is_file()
                                            for c in CONDITIONS):
            fold_runs(out, acoustic, wait=False)  # copies started together train the two folds side by side
        pending = list(names)
        while pending:
            for name in list(pending):
                inputs, busy = run_refiner(name, out, acoustic, results, grid, a.refiner_steps, a.set, inputs,
                                           conditions)
                if not busy:
                    pending.remove(name)
                write_reports(results, out)
            if pending:
                time.sleep(60)  # another copy is training these; score a condition when it is done
        for name in [n for n in a.probe.split(",") if n]:
            if trained_to(out / name, a.refiner_steps):
                inputs = split_inputs(acoustic, out / name) if inputs is None else inputs
                small_eta_probe(out / name, name, inputs, results)
        if a.fm:
            with claim(out / f"{FM}.lock") as mine:
                if mine:
                    budget = fm_budget(out, acoustic, results)
                    run = train_fm(out, acoustic, budget)
                    inputs = split_inputs(acoustic, run) if inputs is None else inputs
                    evaluate_fm_run(run, inputs, results)
                    atomic_write_text(results / "fm_curve.md", fm_curve_report(results, budget) + "\n")
                else:
                    log("fm: another copy has it")
    print(write_reports(results, out))


if __name__ == "__main__":
    main()
