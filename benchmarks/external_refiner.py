"""The refiner as a plug-in for another model: a cheap first stage (flow matching at 2 Euler steps) refined by a
delta refiner trained on its `.npy` mels only, against the better first stage (the same FM at 10 steps).

Stages (each resumes; a finished stage is not redone):

1. corpus: the built-in corpus (2400 flite utterances, seed 0; `--quick`: 10) in LJSpeech layout;
2. fm: `ebtk train tts --objective fm` on it (the recipe's encoder and U-Net sizes, ACOUSTIC_STEPS steps);
3. hypotheses: the FM run's mels from text (its own durations) at 2 Euler steps for every utterance, written as
   `<id>.npy` through the public API only (`ebtk.tts.load(run).mels(...)`, `numpy.save`): the external model's
   output, as another toolkit would write it;
4. refiner: `ebtk train tts --objective delta data.path=CORPUS hypotheses.dir=HYPS` (DTW-aligned to the
   references where the lengths differ, which is every utterance: FM speaks from text);
5. val: the hypothesis and the refined mel at each (steps, η) of GRID on the val split (50), MCD-DTW and DNSMOS
   against the recording; the setting is chosen on val (`ebtk.tts.evaluate.choose_setting`; 0 steps = do not
   refine is a candidate);
6. test (100 utterances): the hypothesis (FM 2 steps), the refined mel at the val choice and FM at 10 steps,
   each from text, vocoded by HiFi-GAN and scored against the recording; one raw CSV per system;
7. timing: the mel-making wall time of each path per test utterance (FM 2 steps, the refinement, FM 10 steps;
   the median of 3 interleaved repeats, one torch thread; phonemes and vocoder excluded: both paths share
   them, the vocoder's time is reported beside them), plus thread CPU time, which other processes' load does
   not inflate;
8. report: table.md from the raw CSVs: per system n, mean and 95 % percentile bootstrap interval; paired
   differences (10 000 resamples, seed 0).

    nice -n 10 python benchmarks/external_refiner.py                # runs/external -> results/tts/external
    python benchmarks/external_refiner.py --report-only
    python benchmarks/external_refiner.py --quick --out /tmp/x --results /tmp/x/res   # CI: a few utterances

Raw rows: results/tts/external/raw/{val,test}.<system>.csv (per utterance) and raw/timing.csv.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from tts_study2 import claim, fmt_ci, trained_to  # noqa: E402  (a sibling script's helpers)

HYP_STEPS, FM_BEST = 2, 10  # the cheap first stage's and the better first stage's Euler steps
GRID = [(1, 1.0), (2, 1.0), (1, 0.5), (2, 0.5)]  # refinement (steps, η) scored on val
TIE_DB = 0.01
HYP, REFINED, FM10 = "hypothesis", "refined", "fm10"
SYSTEM_NAMES = {HYP: f"FM {HYP_STEPS} steps (external hypothesis)", REFINED: f"FM {HYP_STEPS} steps + refiner",
                FM10: f"FM {FM_BEST} steps"}
SMALL = ["acoustic.channels=32", "acoustic.enc_layers=1", "acoustic.dec_layers=2", "model.channels=8",
         "model.mults=[1,2]", "data.crop=32", "train.batch_size=4", "train.log_every=5"]


@dataclass(frozen=True)
class Setup:
    """The sizes of one run of the study: the full one, or `--quick` (CI: tiny models, a few utterances)."""

    n_utts: int
    n_val: int
    n_test: int
    fm_steps: int
    refiner_steps: int
    overrides: tuple[str, ...] = ()
    grid: tuple[tuple[int, float], ...] = tuple(GRID)
    repeats: int = 3
    text: str = "grammar"  # the corpus text: the grammar sentences (this study predates the broad corpus)


FULL = Setup(n_utts=2400, n_val=50, n_test=100, fm_steps=2000, refiner_steps=3000)
QUICK = Setup(n_utts=10, n_val=1, n_test=2, fm_steps=10, refiner_steps=10, overrides=tuple(SMALL),
              grid=((1, 1.0),), repeats=1)
EVAL = ["eval.n_test=1", "eval.dnsmos=false", "eval.n_wavs=1", "eval.steps=[1]", "eval.step_sizes=[1.0]",
        f"eval.fm_steps=[{HYP_STEPS},{FM_BEST}]"]


def log(msg: str) -> None:
    print(f"[external {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- stages ---------------------------------------------------------------------------------------------
def make_corpus(out: Path, setup: Setup) -> Path:
    """The built-in corpus of `setup.n_utts` flite utterances (made once; `--quick`: in `out`)."""
    from ebtk.tts.corpus import builtin_corpus
    from ebtk.tts.corpus import make_corpus as make

    if setup is FULL:
        return builtin_corpus(setup.n_utts, 0, "flite", text=setup.text)
    path = out / "corpus"
    if not (path / "metadata.csv").is_file():
        log(f"corpus: {setup.n_utts} flite utterances")
        make(path, n=setup.n_utts, seed=0, engine="flite", text=setup.text)
    return path.resolve()


def check_corpus(run: Path, corpus: Path) -> None:
    """A run kept from an earlier invocation must have been trained on this corpus (hypotheses and scores
    are matched to references by utterance id, so another corpus would pair them with other sentences)."""
    from ebtk.config import load_yaml

    cfg = run / "config.yaml"
    if cfg.is_file() and Path(load_yaml(cfg)["data"]["path"]).resolve() != corpus.resolve():
        raise SystemExit(f"error: {run} was trained on {load_yaml(cfg)['data']['path']}, not {corpus}; "
                         "hint: a new --out")


def data_overrides(corpus: Path, setup: Setup) -> list[str]:
    return [f"data.path={corpus}", f"data.n_val={setup.n_val}", f"data.n_test={setup.n_test}", "data.seed=0",
            "data.n_unseen=0", "train.threads=1", *EVAL, *setup.overrides]


def train_fm(out: Path, corpus: Path, setup: Setup) -> Path:
    from ebtk.train.trainer import train

    run = out / "fm"
    if not trained_to(run, setup.fm_steps):
        log(f"fm: training to {setup.fm_steps} steps")
        train("tts", "fm", run, overrides=[*data_overrides(corpus, setup), f"train.steps={setup.fm_steps}",
                                           "train.ckpt_every=100"], progress=sys.stderr.isatty())
    return run


def write_hypotheses(fm_run: Path, corpus: Path, hyp_dir: Path) -> None:
    """`<id>.npy` (80, T) float32 of every utterance: the FM run from text at HYP_STEPS Euler steps, noise seed
    0, through the public API (`ebtk.tts.load`) only. Existing files are kept (resume)."""
    import numpy as np

    import ebtk.tts
    from ebtk.io import atomic_path
    from ebtk.tts.dataset import LJSpeechCorpus

    items = [u for u in LJSpeechCorpus(corpus).items if not (hyp_dir / f"{u.id}.npy").is_file()]
    if not items:
        return
    log(f"hypotheses: {len(items)} utterances, FM at {HYP_STEPS} Euler steps from text")
    syn = ebtk.tts.load(fm_run)
    for u in items:
        mel = syn.mels(syn.phonemes(u.text), steps=HYP_STEPS, seed=0)[1][0].float().cpu().numpy()
        with atomic_path(hyp_dir / f"{u.id}.npy", suffix=".tmp.npy") as tmp:
            np.save(tmp, mel)


def train_refiner(out: Path, corpus: Path, hyp_dir: Path, setup: Setup) -> Path:
    from ebtk.train.trainer import train

    run = out / "refiner"
    if not trained_to(run, setup.refiner_steps):
        log(f"refiner: delta, {setup.refiner_steps} steps on the FM-{HYP_STEPS} mels (DTW-aligned)")
        train("tts", "delta", run, overrides=[*data_overrides(corpus, setup), f"hypotheses.dir={hyp_dir}",
                                              f"train.steps={setup.refiner_steps}", "model.kind=score",
                                              "train.ckpt_every=100"], progress=sys.stderr.isatty())
    return run


class Study:
    """The scoring side: the corpus' val / test utterances, the FM synthesizer and the refiner."""

    def __init__(self, corpus: Path, fm_run: Path, refiner_run: Path, hyp_dir: Path, setup: Setup):
        import ebtk.tts
        from ebtk.tts.dataset import LJSpeechCorpus

        self.corpus = LJSpeechCorpus(corpus)
        self.splits = self.corpus.splits(val=setup.n_val, test=setup.n_test, seed=0)
        self.hyp_dir = hyp_dir
        self.syn = ebtk.tts.load(fm_run)
        self.refiner = ebtk.tts.load_refiner(refiner_run)
        self.setup = setup
        self._utts: dict[str, list[Any]] = {}

    def utterances(self, split: str) -> list[Any]:
        from ebtk.tts.evaluate import EvalUtterance

        if split not in self._utts:
            self._utts[split] = [EvalUtterance(i, self.corpus.wav(i), self.corpus.mel(i)) for i in self.splits[split]]
        return self._utts[split]

    def hypothesis(self, uid: str) -> Any:
        from ebtk.tts.external import read_mel

        return read_mel(self.hyp_dir / f"{uid}.npy")

    def mels(self, system: str, split: str, k: int = 0, eta: float = 1.0) -> list[Any]:
        import torch

        ids = self.splits[split]
        if system == HYP:
            return [torch.from_numpy(self.hypothesis(i)) for i in ids]
        if system == REFINED:
            return [torch.from_numpy(self.refiner.refine(self.hypothesis(i), k, eta)) for i in ids]
        with torch.no_grad():
            return [self.syn.mels(self.syn.phonemes(self.corpus[i].text), steps=FM_BEST, seed=0)[1][0].float()
                    for i in ids]


def raw_path(results: Path, split: str, system: str, k: int = 0, eta: float = 1.0) -> Path:
    tail = f".{k}x{eta:g}" if system == REFINED else ""
    return results / "raw" / f"{split}.{system}{tail}.csv"


def score(study: Study, results: Path, split: str, system: str, k: int = 0, eta: float = 1.0) -> Path:
    """One system's per-utterance rows on `split` (MCD-DTW, log-F0, V/UV against the recording; DNSMOS),
    written once to raw/<split>.<system>.csv."""
    from ebtk.io import atomic_write_text
    from ebtk.tts.evaluate import Scorer, per_utterance_csv

    path = raw_path(results, split, system, k, eta)
    if path.is_file():
        return path
    log(f"{split}: scoring {system}" + (f" {k} × η {eta:g}" if system == REFINED else ""))
    scorer = Scorer(study.syn.vocoder, study.utterances(split), dnsmos=True)
    name = {HYP: "hypothesis", REFINED: "refined", FM10: SYSTEM_NAMES[FM10]}[system]
    scorer.score(name, study.mels(system, split, k, eta), steps=k if system == REFINED else 0,
                 step_size=eta if system == REFINED else None)
    atomic_write_text(path, per_utterance_csv(scorer.per_utt))
    return path


def rows(path: Path) -> dict[str, dict[str, Any]]:
    from ebtk.tts.evaluate import read_per_utterance_csv

    return {r["id"]: r for r in read_per_utterance_csv(path)}


def choose(results: Path, setup: Setup) -> tuple[int, float]:
    """The val choice among not refining and the GRID settings (lowest mean MCD; DNSMOS breaks ties)."""
    from ebtk.tts.evaluate import choose_setting

    val = [*rows(raw_path(results, "val", HYP)).values()]
    for k, eta in setup.grid:
        val += [*rows(raw_path(results, "val", REFINED, k, eta)).values()]
    return choose_setting(val, TIE_DB)


def timing(study: Study, results: Path, k: int, eta: float) -> Path:
    """raw/timing.csv: per test utterance, the seconds (wall and thread CPU, median of `repeats` interleaved
    runs) of FM at HYP_STEPS, the refinement (k × η) and FM at FM_BEST, and of vocoding the FM_BEST mel."""
    import torch

    from ebtk.io import atomic_write_text

    path = results / "raw" / "timing.csv"
    if path.is_file():
        return path
    log(f"timing: {len(study.splits['test'])} test utterances × {study.setup.repeats} repeats")
    torch.set_num_threads(1)

    def clock(fn: Any, *args: Any, **kw: Any) -> tuple[float, float, Any]:
        w, c = time.perf_counter(), time.thread_time()
        got = fn(*args, **kw)
        return time.perf_counter() - w, time.thread_time() - c, got

    out = []
    warm = study.syn.phonemes(study.corpus[study.splits["test"][0]].text)
    study.syn.mels(warm, steps=1)  # first-call costs out of the clock
    for uid in study.splits["test"]:
        ph = study.syn.phonemes(study.corpus[uid].text)
        hyp = study.hypothesis(uid)
        runs: dict[str, list[tuple[float, float]]] = {}
        for _ in range(study.setup.repeats):
            for name, fn, args, kw in (("fm2", study.syn.mels, (ph,), {"steps": HYP_STEPS, "seed": 0}),
                                       ("refine", study.refiner.refine, (hyp, k, eta), {}),
                                       ("fm10", study.syn.mels, (ph,), {"steps": FM_BEST, "seed": 0})):
                w, c, got = clock(fn, *args, **kw)
                runs.setdefault(name, []).append((w, c))
                if name == "fm10":
                    mel10 = got[1]
        w, c, wav = clock(study.syn.vocoder, mel10)
        row = {"id": uid, "frames": int(mel10.shape[-1]), "audio_seconds": wav.shape[-1] / 22050,
               "vocoder_wall": w, "vocoder_cpu": c}
        for name, v in runs.items():
            row[f"{name}_wall"] = statistics.median(x[0] for x in v)
            row[f"{name}_cpu"] = statistics.median(x[1] for x in v)
        out.append(row)
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=list(out[0]), lineterminator="\n")
    wr.writeheader()
    wr.writerows(out)
    atomic_write_text(path, buf.getvalue())
    return path


# -- report ---------------------------------------------------------------------------------------------
def report(results: Path, setup: Setup) -> str:
    """table.md from the raw files (regenerates identically: fixed bootstrap seed)."""
    from ebtk.metrics.stats import bootstrap_interval, paired_bootstrap_interval

    k, eta = choose(results, setup)
    test = {HYP: rows(raw_path(results, "test", HYP)), FM10: rows(raw_path(results, "test", FM10))}
    refined = raw_path(results, "test", REFINED, k, eta)
    if k > 0:
        test[REFINED] = rows(refined)
    ids = sorted(test[HYP])
    lines = [f"# External first stage: FM {HYP_STEPS} Euler steps + a delta refiner trained on its .npy mels", "",
             f"Test split, n = {len(ids)} utterances of the built-in {setup.text} corpus ({setup.n_utts} flite "
             "utterances), from text (each system's own durations), scored against the recording. Refinement "
             "chosen on val: " + (f"{k} step{'s' if k > 1 else ''} × η {eta:g}" if k else
                                  "0 steps (val chose not to refine)") + ".", "",
             "| system | n | MCD-DTW dB | DNSMOS OVRL | log-F0 RMSE | V/UV |", "|---|---|---|---|---|---|"]
    for key, got in test.items():
        cells = [fmt_ci(bootstrap_interval([got[i][m] for i in ids if got[i][m] is not None]), 3)
                 for m in ("mcd", "dnsmos", "logf0_rmse", "vuv")]
        lines.append(f"| {SYSTEM_NAMES[key]} | {len(ids)} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences (first minus second; MCD: lower is better, DNSMOS: higher is better):", "",
              "| difference | n | ΔMCD dB | ΔDNSMOS |", "|---|---|---|---|"]
    pairs = [(REFINED, HYP), (REFINED, FM10), (FM10, HYP)] if REFINED in test else [(FM10, HYP)]
    for a, b in pairs:
        cells = [fmt_ci(paired_bootstrap_interval([test[a][i][m] for i in ids], [test[b][i][m] for i in ids]), 3,
                        "+") for m in ("mcd", "dnsmos")]
        lines.append(f"| {SYSTEM_NAMES[a]} − {SYSTEM_NAMES[b]} | {len(ids)} | " + " | ".join(cells) + " |")
    tpath = results / "raw" / "timing.csv"
    if tpath.is_file():
        with open(tpath, newline="") as f:
            t = [{k2: (v if k2 == "id" else float(v)) for k2, v in r.items()} for r in csv.DictReader(f)]
        lines += ["", f"Mel-making time per test utterance (s; n = {len(t)}; median of {setup.repeats} interleaved "
                  "repeats per utterance, one torch thread; the same phonemes, vocoder excluded):", "",
                  "| path | wall s | thread CPU s | CPU s per audio s |", "|---|---|---|---|"]
        paths = {f"FM {HYP_STEPS} steps": ("fm2",), f"refinement ({k} × η {eta:g})": ("refine",),
                 f"FM {HYP_STEPS} steps + refinement": ("fm2", "refine"), f"FM {FM_BEST} steps": ("fm10",),
                 "HiFi-GAN vocoder (shared)": ("vocoder",)}
        for name, parts in paths.items():
            wall = [sum(r[f"{p}_wall"] for p in parts) for r in t]
            cpu = [sum(r[f"{p}_cpu"] for p in parts) for r in t]
            per = [c / r["audio_seconds"] for c, r in zip(cpu, t)]
            lines.append(f"| {name} | {fmt_ci(bootstrap_interval(wall), 4)} | {fmt_ci(bootstrap_interval(cpu), 4)} | "
                         f"{fmt_ci(bootstrap_interval(per), 4)} |")
        ratio = [(r["fm2_cpu"] + r["refine_cpu"]) / r["fm10_cpu"] for r in t]
        lines += ["", f"CPU-time ratio (FM {HYP_STEPS} + refinement) / FM {FM_BEST}, per utterance: "
                  f"{fmt_ci(bootstrap_interval(ratio), 3)}."]
    lines += ["", "Intervals: 95 % percentile bootstrap over utterances (10 000 resamples, seed 0); differences are "
              "paired by utterance. Raw rows: raw/test.*.csv, raw/val.*.csv, raw/timing.csv."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "runs" / "external"))
    ap.add_argument("--results", default=str(ROOT / "results" / "tts" / "external"))
    ap.add_argument("--quick", action="store_true", help="a few utterances and tiny models (CI)")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args(argv)
    from ebtk.io import atomic_write_text

    setup = QUICK if a.quick else FULL
    out, results = Path(a.out).resolve(), Path(a.results).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not a.report_only:
        with claim(out / "external.lock") as mine:
            if not mine:
                raise SystemExit(f"error: another copy is running in {out}")
            corpus = make_corpus(out, setup)
            for run in ("fm", "refiner"):
                check_corpus(out / run, corpus)
            fm = train_fm(out, corpus, setup)
            hyp_dir = out / "hyps"
            write_hypotheses(fm, corpus, hyp_dir)
            ref = train_refiner(out, corpus, hyp_dir, setup)
            study = Study(corpus, fm, ref, hyp_dir, setup)
            score(study, results, "val", HYP)
            for k, eta in setup.grid:
                score(study, results, "val", REFINED, k, eta)
            k, eta = choose(results, setup)
            log(f"val chose {k} steps × η {eta:g}")
            score(study, results, "test", HYP)
            if k > 0:
                score(study, results, "test", REFINED, k, eta)
            score(study, results, "test", FM10)
            timing(study, results, k if k > 0 else 1, eta)
            atomic_write_text(results / "setup.json", json.dumps({**asdict(setup), "corpus": str(corpus)},
                                                                  indent=1) + "\n")
    table = report(results, setup)
    atomic_write_text(results / "table.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
