"""Energy-based TTS study: one acoustic model, refiners trained by every objective, the FM baseline, one table.

Stages (each an ordinary ebtk run dir under --out; re-running resumes unfinished runs and skips done ones):
  acoustic                 FastSpeech-style hypothesis model (MAS durations)
  delta, ssm               direct score refiners (model.kind=score)
  nce, sa-nce              scalar-energy refiners (model.kind=energy; their objectives need an energy)
  delta-noremedy           delta on clean (over-fitted) training hypotheses: measures acoustic.hyp_remedy
  delta-text               delta also conditioned on the upsampled text encoding (model.text_cond=true)
  fm                       conditional flow-matching decoder (OT-CFM, Euler steps) on the same data and the
                           acoustic run's encoder, frozen (--fm-scratch: encoder trained jointly from scratch)

Then every run's eval_table.json is merged into one markdown table (same test utterances for all) and a
few wavs are copied next to it.

    python benchmarks/tts_study.py --out runs/tts-paper --results results/tts               # paper config
    python benchmarks/tts_study.py --out runs/tts-paper --acoustic-steps 3000 --refiner-steps 1500 \\
        --fm-steps 3000 --set eval.n_test=12                                                   # CPU budget
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from ebtk.io import atomic_write_text

REFINERS: dict[str, tuple[str, list[str]]] = {  # run name -> (objective, extra overrides)
    "delta": ("delta", ["model.kind=score"]),
    "ssm": ("ssm", ["model.kind=score"]),
    "nce": ("nce", ["model.kind=energy"]),
    "sa-nce": ("sa-nce", ["model.kind=energy"]),
    "delta-noremedy": ("delta", ["model.kind=score", "acoustic.hyp_remedy=none"]),
    "delta-text": ("delta", ["model.kind=score", "model.text_cond=true"]),
}


def _done(run: Path, steps: int) -> bool:
    m = run / "metrics.json"
    return m.is_file() and json.loads(m.read_text()).get("steps") == steps


def _train(run: Path, objective: str, config: str, overrides: list[str], steps: int, device: str) -> float:
    from ebtk.train.trainer import train

    if _done(run, steps):
        return 0.0
    t0 = time.perf_counter()
    print(f"== {run.name}: {objective}, {steps} steps", flush=True)
    train(
        "tts",
        objective,
        run,
        config_file=config,
        overrides=[*overrides, f"train.steps={steps}", f"train.device={device}"],
        progress=True,
    )
    return time.perf_counter() - t0


def _fmt(v: Any, nd: int = 2) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def table(out: Path, runs: list[str]) -> str:
    """One markdown table over every run's eval_table.json (rows as `ebtk evaluate` wrote them)."""
    lines = []
    hyp_mcd = None
    header_done = False
    for name in runs:
        p = out / name / "eval_table.json"
        if not p.is_file():
            continue
        rows = json.loads(p.read_text())["rows"]
        m = json.loads((out / name / "metrics.json").read_text())
        if not header_done:
            base = [r for r in rows if r["system"] in ("vocoded reference", "hypothesis")]
            lines += [
                "| system | trained by | steps | step size | mel MSE | MCD (dB) | ΔMCD vs hyp | log-F0 RMSE "
                "| V/UV | DNSMOS | mel RTF |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in base:
                if r["system"] == "hypothesis":
                    hyp_mcd = r["mcd"]
                lines.append(_row(r, "–" if r["system"] == "vocoded reference" else "acoustic", hyp_mcd))
            header_done = True
        for r in rows:
            if r["system"] in ("vocoded reference", "hypothesis"):
                continue
            sps = m.get("steps_per_second")  # of the last attempt: a resumed run's minutes would undercount
            cost = f", {1 / sps:.2f} s/step" if sps else ""
            if r["system"] == "refined" and r.get("rtf") is not None:  # mel stage only, as FM's rows
                r = {**r, "rtf": m.get("rtf_refine")}
            lines.append(_row(r, f"{name} ({m['steps']} steps{cost})", hyp_mcd))
    return "\n".join(lines)


def _row(r: dict[str, Any], by: str, hyp_mcd: float | None) -> str:
    rel = "–"
    if hyp_mcd and r.get("mcd") is not None and r["system"] != "vocoded reference":
        rel = f"{100 * (r['mcd'] - hyp_mcd) / hyp_mcd:+.1f} %"
    steps = "–" if r["steps"] is None else str(r["steps"])
    eta = "–" if r["step_size"] is None else f"{r['step_size']:g}"
    return (
        f"| {r['system']} | {by} | {steps} | {eta} | {_fmt(r['mel_mse'], 3)} | {_fmt(r['mcd'])} | {rel} | "
        f"{_fmt(r['logf0_rmse'], 3)} | {_fmt(r['vuv'], 3)} | {_fmt(r['dnsmos'])} | {_fmt(r['rtf'], 3)} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/tts-paper")
    ap.add_argument("--config", default="configs/tts_paper.yaml")
    ap.add_argument("--results", default=None, help="also write the table and a few wavs here")
    ap.add_argument("--acoustic-steps", type=int, default=100000)
    ap.add_argument("--refiner-steps", type=int, default=30000)
    ap.add_argument("--fm-steps", type=int, default=100000)
    ap.add_argument("--refiners", default=",".join(REFINERS))
    ap.add_argument("--no-fm", action="store_true")
    ap.add_argument("--fm-scratch", action="store_true",
                    help="train FM's encoder jointly from scratch instead of on the acoustic run's frozen encoder")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--set", nargs="*", default=[], help="extra config overrides for every run, e.g. eval.n_test=12")
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: tabulate the finished runs under --out (their steps may differ)",
    )
    a = ap.parse_args()
    out = Path(a.out)
    ac = out / "acoustic"
    names = [n for n in a.refiners.split(",") if n] + ([] if a.no_fm else ["fm"])
    if a.report_only:
        names = [n for n in names if (out / n / "metrics.json").is_file()]
    else:
        _train(ac, "acoustic", a.config, a.set, a.acoustic_steps, a.device)
        for name in names:
            if name == "fm":
                enc = [] if a.fm_scratch else [f"acoustic.checkpoint={ac}", "acoustic.freeze=true"]
                _train(out / "fm", "fm", a.config, [*enc, *a.set], a.fm_steps, a.device)
                continue
            obj, extra = REFINERS[name]
            ref_over = [*extra, f"acoustic.checkpoint={ac}", *a.set]
            _train(out / name, obj, a.config, ref_over, a.refiner_steps, a.device)
    am = json.loads((ac / "metrics.json").read_text())
    remedy = (
        "Training-hypothesis remedy (acoustic run, mel MSE against the reference): train clean "
        f"{_fmt(am.get('mel_mse_train'), 3)}, train with dropout on {_fmt(am.get('mel_mse_train_dropout'), 3)}, "
        f"val {_fmt(am.get('mel_mse_val'), 3)}, test {_fmt(am.get('mel_mse_test'), 3)}."
    )
    cfg = yaml.safe_load((ac / "config.yaml").read_text())
    md = "\n".join(
        [
            "# Energy-based TTS: hypothesis vs refiners vs flow matching",
            "",
            f"Corpus: {cfg['data'].get('path') or 'built-in flite'} ({cfg['data']['n_utts']} utterances, "
            f"{cfg['data']['n_test']} test); evaluated on {cfg['eval']['n_test']} test utterances with ground-truth "
            f"durations. Acoustic model: {am['steps']} steps; each row's training steps and seconds per step are "
            f"in 'trained by'. Overrides {' '.join(a.set) or 'per run (see its config.yaml)'}. mel RTF "
            f"(compute seconds per audio second, vocoder excluded, on the run's device) is timed at a refiner's "
            f"default steps × step size (without the acoustic model's hypothesis) and at every FM step count "
            f"(encoder included).",
            "",
            table(out, names),
            "",
            remedy,
            "",
        ]
    )
    atomic_write_text(out / "tts_study.md", md)
    print(md)
    if a.results:
        res = Path(a.results)
        (res / "wavs").mkdir(parents=True, exist_ok=True)
        atomic_write_text(res / "paper.md", md)
        _copy_wavs(out, names, res / "wavs")


def _copy_wavs(out: Path, names: list[str], dest: Path) -> None:
    """One test utterance through every system (recording, copy synthesis, hypothesis, each refiner's one
    default step, FM at its most steps): small enough to commit, enough to listen side by side."""
    first = sorted((out / names[0] / "wavs").glob("*_reference.wav"))
    if not first:
        return
    uid = first[0].name.split("_")[0]
    picks = [(names[0], f"{uid}_{k}.wav") for k in ("reference", "vocoded_reference", "hypothesis_k0")]
    for name in names:
        found = sorted((out / name / "wavs").glob(f"{uid}_refined_k1_eta1.wav"))
        found += sorted((out / name / "wavs").glob(f"{uid}_flow_matching_k*.wav"), key=lambda p: len(p.name))[-1:]
        picks += [(name, f.name) for f in found]
    for name, fname in picks:
        src = out / name / "wavs" / fname
        if src.is_file():
            prefix = "" if "_refined_" not in fname and "_flow_" not in fname else f"{name}-"
            shutil.copy(src, dest / f"{prefix}{fname}")


if __name__ == "__main__":
    main()
