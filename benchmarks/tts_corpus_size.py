"""Corpus size (issue 35, part 1): does a bigger built-in corpus make the acoustic model generalise to words it
never heard? Two acoustic models, the same recipe and steps, trained on half and on all of one corpus'
training split, are scored from text on the SAME held-out utterances: the test split (random sentences) and
the unseen-words split (each sentence holds a word no training sentence has).

Why: the shipped model learns from a corpus of synthetic speech whose size we choose. If doubling the training
utterances lowers the error on unseen words (more than on the test split), a bigger corpus is worth its flite
and training time; if the two models tie, the model's capacity or the steps, not the corpus, is the limit.
Halving one corpus (rather than making two) keeps the held-out utterances, the voice and the text mix fixed.

Stages (each resumes; a finished stage is not redone):

1. corpus: the built-in corpus of N (default 10 000) flite utterances, `mixed` text (WordNet + grammar
   sentences), seed 0, made once in the user cache (`ebtk.tts.corpus.builtin_corpus`; flite makes about
   2000 utterances per 3 CPU minutes: progress is logged every minute). Splits: val 50, test 100,
   unseen-words 100, seed 0 (`data.*`; the same for both models);
2. half / full: `ebtk train tts --objective acoustic --config configs/tts_paper.yaml` on it, to
   `--acoustic-steps` (2000) steps, one torch thread; half adds `data.train_part=0/2` (part 0 of 2 of the
   training split, by a hash of the id); `--set` overrides go to both. A run whose metrics.json has the
   steps is skipped; an interrupted one resumes from its checkpoint;
3. info: each model's training utterances (the ids it trained on), its training vocabulary (distinct
   lower-case words of those sentences' normalized text, `ebtk.tts.dataset.vocabulary`) and how many held-out
   utterances hold a word outside it; its training wall-clock (metrics.json `train_seconds`);
4. scoring: each model's hypothesis mel from text (its own duration predictor, as `ebtk synthesize` makes
   it) on the test and the unseen-words split, vocoded by HiFi-GAN and scored against the recording (MCD-DTW,
   log-F0 RMSE, V/UV error, DNSMOS; `ebtk.tts.evaluate.Scorer`); the vocoded recording once per split (the
   floor). One per-utterance CSV per (system, split) under raw/;
5. report: table.md from the raw files: per (model, split) n, mean and 95 % percentile bootstrap interval;
   full − half paired by utterance on each split; unseen-words − test per model (different utterances:
   an unpaired bootstrap); and whether the full corpus helps unseen words more than test words (the two
   splits' paired differences, unpaired). 10 000 resamples, seed 0; a difference whose interval holds 0 is
   a tie.

    nice -n 10 python benchmarks/tts_corpus_size.py                  # runs/corpus_size -> results/tts/corpus_size
    nice -n 10 python benchmarks/tts_corpus_size.py --set data.bucket=8 train.amp=true   # faster CPU training
    python benchmarks/tts_corpus_size.py --report-only               # table.md from the raw CSVs
    python benchmarks/tts_corpus_size.py --quick --out /tmp/cs --results /tmp/cs/res   # CI: about a minute

Raw rows: results/tts/corpus_size/raw/{test,unseen-words}.{half,full,reference}.csv (per utterance),
raw/train.{half,full}.json (training set and time), setup.json (the settings every raw file was made with).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from tts_study2 import claim, fmt_ci, trained_to  # noqa: E402  (a sibling script's helpers)

from ebtk.metrics.stats import unpaired_bootstrap_interval  # noqa: E402

CONFIG = ROOT / "configs" / "tts_paper.yaml"
MODELS = {"half": ["data.train_part=0/2"], "full": []}  # name -> its own overrides
REFERENCE = "reference"
SPLITS = ("test", "unseen-words")
METRICS = {"mcd": "MCD-DTW dB", "logf0_rmse": "log-F0 RMSE", "vuv": "V/UV error", "dnsmos": "DNSMOS OVRL"}
HIGHER_IS_BETTER = {"dnsmos"}
# the runs' own end-of-training evaluation (teacher-forced, not what this study reports): kept small
EVAL = ["eval.n_test=10", "eval.steps=[1]", "eval.step_sizes=[1.0]", "eval.dnsmos=false", "eval.n_wavs=1"]
TINY = ["acoustic.channels=32", "acoustic.enc_layers=1", "acoustic.dec_layers=2", "train.batch_size=4",
        "train.log_every=5", "eval.n_test=1"]  # --quick: the acoustic part of external_refiner's SMALL


@dataclass(frozen=True)
class Setup:
    """The sizes of one run of the study: the full one, or `--quick` (CI: a tiny corpus in --out, tiny models)."""

    n_utts: int
    n_val: int
    n_test: int
    n_unseen: int
    steps: int
    overrides: tuple[str, ...] = ()  # the setup's own (quick: tiny models)
    extra: tuple[str, ...] = ()  # --set, for both models
    dnsmos: bool = True
    quick: bool = False


FULL = Setup(n_utts=10_000, n_val=50, n_test=100, n_unseen=100, steps=2000)
QUICK = Setup(n_utts=40, n_val=2, n_test=4, n_unseen=4, steps=4, overrides=tuple(TINY), dnsmos=False, quick=True)


def log(msg: str) -> None:
    print(f"[corpus-size {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- stage 1: the corpus --------------------------------------------------------------------------------
@contextlib.contextmanager
def wav_progress(wav_dir: Path, total: int, every_s: float = 60.0) -> Iterator[None]:
    """Log how many wavs `wav_dir` holds every `every_s` seconds while the block runs (the corpus maker's own
    bar shows only on a terminal)."""
    stop = threading.Event()

    def watch() -> None:
        t0 = time.perf_counter()
        while not stop.wait(every_s):
            with contextlib.suppress(OSError):
                n = sum(1 for e in os.scandir(wav_dir) if e.name.endswith(".wav"))
                log(f"corpus: {n}/{total} utterances ({(time.perf_counter() - t0) / 60:.0f} min)")

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def make_corpus(out: Path, setup: Setup) -> Path:
    """The built-in `mixed` corpus of `setup.n_utts` flite utterances (user cache; `--quick`: in `out`)."""
    from ebtk.tts.corpus import builtin_corpus
    from ebtk.tts.corpus import make_corpus as make
    from ebtk.tts.dataset import user_cache_dir

    if setup.quick:
        path = out / "corpus"
        if not (path / "metadata.csv").is_file():
            log(f"corpus: {setup.n_utts} flite utterances in {path}")
            make(path, n=setup.n_utts, seed=0, engine="flite", text="mixed")
        return path.resolve()
    final = user_cache_dir() / f"corpus-flite-mixed-n{setup.n_utts}-s0"
    if not (final / "metadata.csv").is_file():
        log(f"corpus: making {setup.n_utts} flite utterances in {final} (~{setup.n_utts / 2000 * 3:.0f} CPU min)")
    # builtin_corpus builds in a private temporary copy beside the final path (named by our pid)
    with wav_progress(final.parent / f".{final.name}.{os.getpid()}.tmp" / "wavs", setup.n_utts):
        return builtin_corpus(setup.n_utts, 0, "flite", text="mixed")


def splits(corpus: Path, setup: Setup) -> dict[str, list[str]]:
    """The corpus' train / val / test / unseen-words ids, as the tts task makes them for both runs."""
    from ebtk.tts.dataset import LJSpeechCorpus

    return LJSpeechCorpus(corpus).splits(val=setup.n_val, test=setup.n_test, seed=0, unseen=setup.n_unseen)


# -- stage 2: the two acoustic models -------------------------------------------------------------------
def check_corpus(run: Path, corpus: Path) -> None:
    """A run kept from an earlier invocation must have been trained on this corpus (its scores are matched
    to recordings by utterance id)."""
    from ebtk.config import load_yaml

    cfg = run / "config.yaml"
    if cfg.is_file() and Path(load_yaml(cfg)["data"]["path"]).resolve() != corpus.resolve():
        raise SystemExit(f"error: {run} was trained on {load_yaml(cfg)['data']['path']}, not {corpus}; "
                         "hint: a new --out")


def overrides(corpus: Path, setup: Setup, model: str) -> list[str]:
    """Every config override of `model`'s training run (both models share all but MODELS[model])."""
    return [f"data.path={corpus}", f"data.n_utts={setup.n_utts}", f"data.n_val={setup.n_val}",
            f"data.n_test={setup.n_test}", f"data.n_unseen={setup.n_unseen}", "data.seed=0", "train.threads=1",
            "train.ckpt_every=100", "train.log_every=20", *EVAL, *setup.overrides, *setup.extra, *MODELS[model],
            f"train.steps={setup.steps}"]


def train_model(out: Path, corpus: Path, setup: Setup, model: str) -> Path:
    from ebtk.train.trainer import train

    run = out / model
    if trained_to(run, setup.steps):
        log(f"{model}: done ({setup.steps} steps)")
        return run
    log(f"{model}: training the acoustic model to {setup.steps} steps (resumes from its checkpoint)")
    train("tts", "acoustic", run, config_file=str(CONFIG), overrides=overrides(corpus, setup, model),
          progress=sys.stderr.isatty())
    return run


# -- stage 3: what each model trained on ----------------------------------------------------------------
def info_path(results: Path, model: str) -> Path:
    return results / "raw" / f"train.{model}.json"


def train_info(run: Path, corpus: Path, setup: Setup, results: Path, model: str) -> Path:
    """raw/train.<model>.json: the utterances the run trained on (its task's `train_ids`: the training split,
    its part for half, less any too short to align), their vocabulary, how many held-out utterances of each
    split hold a word outside it, and the run's steps and training wall-clock."""
    from ebtk.io import atomic_write_text
    from ebtk.tasks.base import build_task
    from ebtk.train.checkpoint import load_checkpoint
    from ebtk.tts.dataset import LJSpeechCorpus, vocabulary, words

    path = info_path(results, model)
    if path.is_file():
        return path
    task = build_task(load_checkpoint(run / "checkpoint.pt")["config"], run)
    ids = task.train_ids()
    c = LJSpeechCorpus(corpus)
    vocab = vocabulary([c[i].normalized for i in ids])
    sp = splits(corpus, setup)
    metrics = json.loads((run / "metrics.json").read_text())
    info = {"model": model, "train_part": task.data_cfg.train_part, "n_train_split": len(sp["train"]),
            "n_train": len(ids), "vocabulary": len(vocab), "steps": metrics.get("steps"),
            "train_seconds": metrics.get("train_seconds"),
            "held_out_with_unknown_word": {s: sum(any(w not in vocab for w in words(c[i].normalized)) for i in sp[s])
                                           for s in SPLITS},
            "n_held_out": {s: len(sp[s]) for s in SPLITS}}
    atomic_write_text(path, json.dumps(info, indent=1) + "\n")
    return path


# -- stage 4: scoring from text -------------------------------------------------------------------------
def raw_path(results: Path, split: str, system: str) -> Path:
    return results / "raw" / f"{split}.{system}.csv"


class Study:
    """The held-out utterances of the corpus (recording, its mel, its WORLD analysis made once) and the
    scoring of a system on them; nothing is loaded until something is scored."""

    def __init__(self, corpus: Path, setup: Setup):
        self.corpus_path, self.setup = corpus, setup
        self._corpus: Any = None
        self._utts: dict[str, list[Any]] = {}
        self._vocoder: Any = None

    @property
    def corpus(self) -> Any:
        from ebtk.tts.dataset import LJSpeechCorpus

        if self._corpus is None:
            self._corpus = LJSpeechCorpus(self.corpus_path)
        return self._corpus

    @property
    def vocoder(self) -> Any:
        from ebtk.tts.vocoder import Vocoder

        if self._vocoder is None:
            self._vocoder = Vocoder.load("cpu")
        return self._vocoder

    def utterances(self, split: str) -> list[Any]:
        """The split's `EvalUtterance`s (no phonemes: each model encodes the text with its own front end)."""
        from ebtk.tts.evaluate import EvalUtterance

        if split not in self._utts:
            ids = splits(self.corpus_path, self.setup)[split]
            utts = [EvalUtterance(i, self.corpus.wav(i), self.corpus.mel(i)) for i in ids]
            for u in utts:
                u.features()  # the recording's analysis, shared by every system scored on the split
            self._utts[split] = utts
        return self._utts[split]

    def score(self, results: Path, split: str, system: str, run: Path | None = None) -> Path:
        """raw/<split>.<system>.csv (written once): per utterance, `system`'s mel vocoded and scored against
        the recording; `system` is a model (its hypothesis from text; `run` its run dir) or REFERENCE (the
        recording's own mel: the vocoder's floor)."""
        import torch

        import ebtk.tts
        from ebtk.errors import EbtkError
        from ebtk.io import atomic_write_text
        from ebtk.tts.evaluate import Scorer, from_text_mels, per_utterance_csv

        path = raw_path(results, split, system)
        if path.is_file():
            return path
        torch.set_num_threads(1)
        utts = self.utterances(split)
        log(f"{split}: scoring {system} on {len(utts)} utterances")
        scorer = Scorer(self.vocoder, utts, dnsmos=self.setup.dnsmos)
        if system == REFERENCE:
            scorer.score("vocoded reference", scorer.ref_mels)
        else:
            assert run is not None
            synth = ebtk.tts.load(run)
            encoded, errors = synth.encode_lines([self.corpus[u.id].text for u in utts])
            if errors:
                raise EbtkError(f"{split} texts the front end cannot speak: {errors}")
            with_ph = [replace(u, phonemes=torch.tensor(ph, dtype=torch.long)) for u, ph in zip(utts, encoded)]
            hyps, _ = from_text_mels(synth, with_ph)  # the duration predictor's hypothesis, as synthesize makes
            scorer.score(f"hypothesis ({system})", hyps, steps=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, per_utterance_csv(scorer.per_utt))
        return path


# -- stage 5: the report --------------------------------------------------------------------------------
def rows(results: Path, split: str, system: str) -> dict[str, dict[str, Any]]:
    from ebtk.tts.evaluate import read_per_utterance_csv

    return {r["id"]: r for r in read_per_utterance_csv(raw_path(results, split, system))}


def values(got: dict[str, dict[str, Any]], metric: str) -> list[float]:
    return [r[metric] for r in got.values() if r[metric] is not None]


def paired(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], metric: str) -> tuple[list[float], list[float]]:
    """The values of `metric` for the utterances both systems have it for, in the same order."""
    ids = sorted(i for i in a if i in b and a[i][metric] is not None and b[i][metric] is not None)
    return [a[i][metric] for i in ids], [b[i][metric] for i in ids]


def verdict(iv: Any, metric: str, better: str, worse: str) -> str:
    """Which side of the difference (better − worse, as named) `iv` favours; a tie when it holds 0."""
    if not iv.excludes_zero():
        return "tie"
    first_better = (iv.mean > 0) == (metric in HIGHER_IS_BETTER)
    return f"{better if first_better else worse} better"


def report(results: Path) -> str:
    """table.md from raw/ and setup.json (regenerates identically: fixed bootstrap seed)."""
    from ebtk.metrics.stats import bootstrap_interval, paired_bootstrap_interval

    if not (results / "setup.json").is_file():
        raise SystemExit(f"error: {results} has no setup.json; hint: run the study first (without --report-only)")
    setup = json.loads((results / "setup.json").read_text())
    info = {m: json.loads(info_path(results, m).read_text()) for m in MODELS}
    got = {(s, m): rows(results, s, m) for s in SPLITS for m in [*MODELS, REFERENCE]}
    metrics = [m for m in METRICS if any(values(r, m) for r in got.values())]  # DNSMOS only when scored
    dname = {s: s for s in SPLITS}
    extra = " ".join(setup["extra"]) or "none"
    lines = [f"# Corpus size: the acoustic model on half vs all of a {setup['n_utts']}-utterance corpus", "",
             f"Built-in corpus: {setup['n_utts']} flite utterances (voice slt, `mixed` text: WordNet + grammar "
             f"sentences, seed 0; {setup['corpus']}). Splits (seed 0): train {info['full']['n_train_split']}, "
             f"val {setup['n_val']}, test {info['full']['n_held_out']['test']}, unseen-words "
             f"{info['full']['n_held_out']['unseen-words']} (each unseen-words sentence holds a word no training "
             "sentence has). Both models: `configs/tts_paper.yaml` acoustic model, "
             f"{setup['steps']} steps, one torch thread; extra settings: {extra}"
             + (f"; quick setup: {' '.join(setup['overrides'])}" if setup["overrides"] else "") + ". "
             "half = `data.train_part=0/2` (part 0 of 2 of the training split, by a hash of the id).", "",
             "| model | training utterances | training vocabulary (words) | steps | training wall-clock min | "
             "test utts with a word outside it | unseen-words utts with a word outside it |",
             "|---|---|---|---|---|---|---|"]
    for m, d in info.items():
        mins = f"{d['train_seconds'] / 60:.1f}" if d.get("train_seconds") is not None else "n/a"
        unk = d["held_out_with_unknown_word"]
        lines.append(f"| {m} | {d['n_train']} | {d['vocabulary']} | {d['steps']} | {mins} | "
                     f"{unk['test']}/{d['n_held_out']['test']} | "
                     f"{unk['unseen-words']}/{d['n_held_out']['unseen-words']} |")
    lines += ["", "Vocabulary: distinct lower-case words of the training sentences' normalized text (numbers spelt "
              "out); training wall-clock from each run's metrics.json `train_seconds` (every attempt, "
              "evaluation excluded), on a shared CPU.", "",
              "## Scores from text", "",
              "Each model's hypothesis from text (its own duration predictor, as `ebtk synthesize` makes it, no "
              "refiner), vocoded by HiFi-GAN, against the recording; `vocoded recording` is the recording's own "
              "mel through the vocoder (the floor). Mean [95 % bootstrap interval]; lower is better except "
              "DNSMOS.", "",
              "| system | split | n | " + " | ".join(METRICS[m] for m in metrics) + " |",
              "|---|---|---|" + "---|" * len(metrics)]
    for s in SPLITS:
        for m in [*MODELS, REFERENCE]:
            r = got[(s, m)]
            cells = [fmt_ci(bootstrap_interval(values(r, k)), 3) for k in metrics]
            name = "vocoded recording" if m == REFERENCE else m
            lines.append(f"| {name} | {dname[s]} | {len(r)} | " + " | ".join(cells) + " |")
    lines += ["", "## full − half, paired by utterance", "",
              "| split | n | " + " | ".join(f"Δ{METRICS[m]}" for m in metrics) + " |",
              "|---|---|" + "---|" * len(metrics)]
    diff: dict[tuple[str, str], Any] = {}
    for s in SPLITS:
        cells = []
        for k in metrics:
            a, b = paired(got[(s, "full")], got[(s, "half")], k)
            diff[(s, k)] = paired_bootstrap_interval(a, b)
            cells.append(f"{fmt_ci(diff[(s, k)], 3, '+')} ({verdict(diff[(s, k)], k, 'full', 'half')})")
        n = len(paired(got[(s, "full")], got[(s, "half")], "mcd")[0])
        lines.append(f"| {dname[s]} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "## unseen-words − test, per model (different utterances: unpaired bootstrap)", "",
              "| system | n test / unseen | " + " | ".join(f"Δ{METRICS[m]}" for m in metrics) + " |",
              "|---|---|" + "---|" * len(metrics)]
    for m in [*MODELS, REFERENCE]:
        cells = [fmt_ci(unpaired_bootstrap_interval(values(got[("unseen-words", m)], k), values(got[("test", m)], k)),
                        3, "+") for k in metrics]
        name = "vocoded recording" if m == REFERENCE else m
        lines.append(f"| {name} | {len(got[('test', m)])} / {len(got[('unseen-words', m)])} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Does the full corpus help unseen words more than test words? (full − half on unseen-words) − "
              "(full − half on test), the two splits' paired differences resampled independently:", "",
              "| " + " | ".join(f"Δ{METRICS[m]}" for m in metrics) + " |", "|" + "---|" * len(metrics)]
    inter = {}
    for k in metrics:
        du = [x - y for x, y in zip(*paired(got[("unseen-words", "full")], got[("unseen-words", "half")], k))]
        dt = [x - y for x, y in zip(*paired(got[("test", "full")], got[("test", "half")], k))]
        inter[k] = unpaired_bootstrap_interval(du, dt)
    lines.append("| " + " | ".join(fmt_ci(inter[k], 3, "+") for k in metrics) + " |")
    u = diff[("unseen-words", "mcd")]
    v = verdict(u, "mcd", "full", "half")
    lines += ["", "**Unseen-words MCD-DTW:** full − half = " + fmt_ci(u, 3, "+") + " dB: "
              + ("a tie (the interval contains 0): the bigger corpus made no difference we can measure on unseen "
                 "words at this size" if v == "tie" else
                 f"favours the {'full' if v.startswith('full') else 'half'} corpus") + ". "
              + "(full − half) on unseen-words minus (full − half) on test: " + fmt_ci(inter["mcd"], 3, "+")
              + " dB: " + ("a tie, no evidence that corpus size matters more for unseen words"
                           if not inter["mcd"].excludes_zero() else "the full corpus helps unseen words more than "
                           "test words" if inter["mcd"].mean < 0 else "the full corpus helps unseen words less "
                           "than test words") + ".", "",
              "Intervals: 95 % percentile bootstrap over utterances (10 000 resamples, seed 0); a difference "
              "whose interval contains 0 is called a tie. Raw rows: raw/<split>.<system>.csv; training sets: "
              "raw/train.<model>.json."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "runs" / "corpus_size"), help="run dirs (and the --quick corpus)")
    ap.add_argument("--results", default=str(ROOT / "results" / "tts" / "corpus_size"))
    ap.add_argument("--n", type=int, default=None, help=f"corpus utterances (default {FULL.n_utts})")
    ap.add_argument("--acoustic-steps", type=int, default=None, help=f"training steps (default {FULL.steps})")
    ap.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                    help="config overrides for both models (repeatable), e.g. --set data.bucket=8 train.amp=true")
    ap.add_argument("--quick", action="store_true", help="a tiny corpus and tiny models (CI, about a minute)")
    ap.add_argument("--report-only", action="store_true", help="table.md from the raw CSVs only")
    a = ap.parse_args(argv)
    from ebtk.io import atomic_write_text

    setup = QUICK if a.quick else FULL
    setup = replace(setup, extra=tuple(a.set), **({"n_utts": a.n} if a.n else {}),
                    **({"steps": a.acoustic_steps} if a.acoustic_steps else {}))
    out, results = Path(a.out).resolve(), Path(a.results).resolve()
    if not a.report_only:
        out.mkdir(parents=True, exist_ok=True)
        with claim(out / "corpus_size.lock") as mine:
            if not mine:
                raise SystemExit(f"error: another copy is running in {out}")
            corpus = make_corpus(out, setup)
            record = {**asdict(setup), "corpus": str(corpus)}
            record = json.loads(json.dumps(record))  # tuples as lists, as read back
            old = results / "setup.json"
            if old.is_file() and json.loads(old.read_text()) != record:
                raise SystemExit(f"error: {results} holds results made with other settings ({old}); "
                                 "hint: a new --results (and --out)")
            results.mkdir(parents=True, exist_ok=True)
            atomic_write_text(old, json.dumps(record, indent=1) + "\n")
            sp = splits(corpus, setup)
            log("splits: " + ", ".join(f"{k} {len(v)}" for k, v in sp.items()))
            runs = {}
            for model in MODELS:
                check_corpus(out / model, corpus)
                runs[model] = train_model(out, corpus, setup, model)
                train_info(runs[model], corpus, setup, results, model)
            study = Study(corpus, setup)
            for split in SPLITS:
                study.score(results, split, REFERENCE)
                for model, run in runs.items():
                    study.score(results, split, model, run)
    table = report(results)
    atomic_write_text(results / "table.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
