"""`ebtk demo`: a small end-to-end run of both studies on built-in data, written to one report.html.

Parts (each can be skipped with --parts): toy2d (every objective on 8-gaussians), ksweep (SA-NCE's
refresh interval K), digits (sample grids), tts (acoustic model → refiners → vocoded audio).

Progress: one `[demo i/n] part: what … done in N s` line per part on stdout; the long loops inside
(training, corpus synthesis, TTS evaluation) show tqdm bars only when stderr is a terminal, so logs and
tests stay free of bar noise.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ebtk.errors import EbtkError
from ebtk.report.html import Report

TOY_OBJECTIVES = ["nce", "fce", "sa-nce", "cd", "pcd", "ssm", "dsm"]


@dataclass
class DemoSize:
    toy_steps: int
    ksweep_steps: int
    ksweep_values: tuple[int | None, ...]  # None = never refresh (K = ∞)
    digits_steps: int
    corpus_n: int
    acoustic_steps: int
    refiner_steps: int
    eval_grid: int
    tts_eval: tuple[str, ...] = ()


SIZES = {
    "tiny": DemoSize(
        30, 20, (1, None), 10, 8, 20, 10, 60, ("eval.steps=[1,2]", "eval.step_sizes=[1.0]", "eval.n_test=1")
    ),
    "small": DemoSize(
        800, 500, (1, 5, 20, 100, None), 400, 40, 400, 300, 150, ("eval.steps=[1,2,5,10]", "eval.step_sizes=[1.0]")
    ),
    "full": DemoSize(2000, 2000, (1, 2, 5, 20, 100, None), 2000, 200, 3000, 2000, 180),
}


# The demo's TTS models: minutes, not the `ebtk train tts` defaults' CPU hours (the recipe measured to help,
# see the README); its corpus has tens of utterances, so val/test hold 2 each.
DEMO_TTS = ["data.n_val=2", "data.n_test=2", "data.n_unseen=0", "data.crop=64", "model.channels=32",
            "model.mults=[1,2]", "model.text_cond=false", "acoustic.channels=96", "acoustic.enc_layers=2",
            "acoustic.dec_layers=4", "train.batch_size=8", "train.lr=1e-3", "train.grad_clip=5.0",
            "train.log_every=25", "train.ckpt_every=100", "sampler.steps=10", "eval.n_test=2",
            "eval.steps=[1,2,5,10,100]"]


def _train(out: Path, task: str, objective: str, overrides: list[str]) -> dict[str, Any]:
    from ebtk.train.trainer import train

    return train(task, objective, out, overrides=overrides, progress=sys.stderr.isatty())


def _runs_section(rep: Report, jobs: list[tuple[Path, str, str, list[str]]], caption: str) -> list[dict[str, Any]]:
    """Train each (run dir, task, objective, overrides), then add their comparison table and plots."""
    from ebtk.report.compare import summarise

    for d, task, obj, overrides in jobs:
        _train(d, task, obj, overrides)
    runs = _load([j[0] for j in jobs])
    header, rows, _ = summarise(runs)
    rep.table(header, rows, caption)
    for d, task, _, _ in jobs:
        for png in sorted(d.glob("*.png")):
            rep.image(png, f"{task} / {d.name}")
    return runs


def _k_label(k: int | None) -> str:
    return "∞" if k is None else str(k)


def part_toy2d(root: Path, size: DemoSize, rep: Report) -> None:

    rep.heading("Toy 2-D densities: every objective on 8-gaussians", anchor="toy2d")
    rep.paragraph(
        "Same MLP energy, same number of steps for every objective. NLL uses the exact normaliser of the model on a "
        "grid; true_nll is the data density's own NLL on the same test points (the floor)."
    )
    over = [f"train.steps={size.toy_steps}", "data.name=8gaussians", f"eval.grid={size.eval_grid}"]
    jobs = [(root / "toy2d" / obj, "toy2d", obj, over) for obj in TOY_OBJECTIVES]
    _runs_section(rep, jobs, "toy2d / 8-gaussians")


def part_ksweep(root: Path, size: DemoSize, rep: Report) -> None:

    rep.heading("SA-NCE: refresh interval K", anchor="ksweep")
    rep.paragraph(
        "The noise is a frozen snapshot of the model, refreshed every K steps (K=1 ≈ maximum likelihood, "
        "K=∞ never refreshes). Lower NLL / MMD is better."
    )
    over = [f"train.steps={size.ksweep_steps}", f"eval.grid={size.eval_grid}"]
    jobs = [
        (root / "ksweep" / f"K{_k_label(k)}", "toy2d", "sa-nce", [*over, f"objective.interval={k or 'never'}"])
        for k in size.ksweep_values
    ]
    runs = _runs_section(rep, jobs, "SA-NCE K-sweep on toy2d / 8-gaussians")
    xs = [k or size.ksweep_steps * 2 for k in size.ksweep_values]
    ys = {m: [r["metrics"].get(m) for r in runs] for m in ("nll", "mmd") if all(m in r["metrics"] for r in runs)}
    if ys:
        png = _line_plot(xs, ys, root / "ksweep" / "ksweep.png", "refresh interval K (rightmost: never)")
        rep.image(png, "metric vs K")


def part_digits(root: Path, size: DemoSize, rep: Report) -> None:

    rep.heading("Digits (8×8): samples", anchor="digits")
    jobs = [(root / "digits" / obj, "digits", obj, [f"train.steps={size.digits_steps}"]) for obj in ("pcd", "sa-nce")]
    _runs_section(rep, jobs, "digits: Fréchet distance / KID in a digit classifier's feature space (lower is better)")


DEMO_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Energy based models refine a first guess with a few gradient steps.",
    "Doctor Smith paid three dollars and fifty cents, twice!",
)


def pretrained_section(root: Path, rep: Report, model: Path | None = None) -> bool:
    """The pretrained model speaking new sentences: hypothesis vs refined wavs and mels. False (and a
    paragraph saying so) when this install ships no model and none is given."""
    from ebtk.report.plots import mel_plot
    from ebtk.tts.audio import save_wav
    from ebtk.tts.bundle import load, shipped_model_path

    path = model or shipped_model_path()
    rep.heading("The pretrained model, from text", level=3)
    if path is None:
        rep.paragraph("No pretrained TTS model ships in this install; the refiner below is trained from scratch.")
        return False
    synth = load(path)
    k, eta, _ = synth.settings()
    rep.paragraph(f"{Path(path).name}: hypothesis (the acoustic model alone, its duration predictor) and "
                  f"refined ({k} step(s) at η = {eta:g}), as `ebtk synthesize` makes them, on sentences "
                  "outside its training data.")
    out = root / "tts" / "pretrained"
    for n, text in enumerate(DEMO_SENTENCES, 1):
        hyp, mel = synth.mels(synth.phonemes(text))
        rep.paragraph(f"“{text}”")
        for label, m in (("hypothesis", hyp), ("refined", mel)):
            wav = out / f"{n:02d}_{label}.wav"
            save_wav(wav, synth.vocoder(m)[0].cpu().numpy())
            rep.audio(wav, label)
        rep.image(mel_plot({"hypothesis": hyp[0].numpy(), "refined": mel[0].numpy()}, out / f"{n:02d}_mels.png"),
                  "log-mels: hypothesis and refined")
    card = Path(path).with_name("MODEL_CARD.md")
    if card.is_file():
        rep.markdown(card.read_text())
    return True


def part_tts(root: Path, size: DemoSize, rep: Report, model: Path | None = None) -> None:
    from ebtk.tts.corpus import make_corpus

    rep.heading("Energy-based TTS refinement", anchor="tts")
    shipped = pretrained_section(root, rep, model)
    rep.heading("Training a refiner on a small built-in corpus", level=3)
    corpus = root / "tts" / "corpus"
    if not (corpus / "metadata.csv").exists():
        make_corpus(corpus, n=size.corpus_n, seed=0)
    ac = root / "tts" / "acoustic"
    _train(ac, "tts", "acoustic", [*DEMO_TTS, f"train.steps={size.acoustic_steps}", f"data.path={corpus}",
                                   *size.tts_eval])
    refiners = []
    for obj in ("delta",) if shipped else ("delta", "ssm"):
        d = root / "tts" / obj
        _train(
            d,
            "tts",
            obj,
            [*DEMO_TTS, f"train.steps={size.refiner_steps}", f"data.path={corpus}", f"acoustic.checkpoint={ac}",
             *size.tts_eval],
        )
        refiners.append(d)
    for d in refiners:
        rep.heading(f"refiner trained with {d.name}", level=3)
        m = json.loads((d / "metrics.json").read_text())
        keys = [k for k in m if k.endswith(("_hyp", "_refined")) or k in ("rtf", "refine_steps")]
        rep.table(["metric", "value"], [[k, _fmt(m[k])] for k in keys])
        table = d / "eval_table.md"
        if table.exists():
            rep.markdown(table.read_text())
        for png in sorted(d.glob("*.png")):
            rep.image(png, f"{d.name}: {png.stem}")
        for wav in sorted(d.glob("wavs/*.wav")):
            rep.audio(wav, wav.stem)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _load(dirs: list[Path]) -> list[dict[str, Any]]:
    from ebtk.report.compare import load_runs

    return load_runs(dirs)


def _line_plot(xs: list[float], ys: dict[str, list[float]], path: Path, xlabel: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ebtk.report.plots import save_figure

    fig = Figure(figsize=(4.5 * len(ys), 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(ys), squeeze=False)
    for ax, (name, vals) in zip(axes[0], ys.items()):
        ax.plot(xs, vals, "o-")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


PARTS = {"toy2d": part_toy2d, "ksweep": part_ksweep, "digits": part_digits, "tts": part_tts}


def _doing(name: str, size: DemoSize) -> str:
    """What a part does, for its progress line."""
    if name == "toy2d":
        return f"training {len(TOY_OBJECTIVES)} objectives on 8-gaussians, {size.toy_steps} steps each"
    if name == "ksweep":
        ks = ", ".join(_k_label(k) for k in size.ksweep_values)
        return f"SA-NCE at K = {ks}, {size.ksweep_steps} steps each"
    if name == "digits":
        return f"training pcd and sa-nce on 8×8 digits, {size.digits_steps} steps each"
    from ebtk.tts.bundle import shipped_model_path

    shipped = shipped_model_path() is not None
    return (("the shipped model speaking, then " if shipped else "")
            + f"corpus of {size.corpus_n} utterances, acoustic model ({size.acoustic_steps} steps), "
            f"{'a delta refiner' if shipped else 'delta and ssm refiners'} ({size.refiner_steps} steps), evaluation")


def run_demo(out: Path, size: str = "small", parts: str = "toy2d,ksweep,digits,tts") -> Path:
    """Run the chosen parts into `out` (re-running resumes finished runs), write out/report.html."""
    names = [p.strip() for p in parts.split(",") if p.strip()]
    unknown = [p for p in names if p not in PARTS]
    if unknown:
        raise EbtkError(f"unknown demo part {unknown[0]!r}; known: {', '.join(PARTS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rep = Report("ebtk demo report")
    rep.paragraph(f"Size: {size}. Parts: {', '.join(names)}. Generated by `ebtk demo`.")
    timings = []
    bars = sys.stderr.isatty()  # bars print between our lines: end the "…" line rather than continue it
    for i, name in enumerate(names, 1):
        tag = f"[demo {i}/{len(names)}] {name}:"
        print(f"{tag} {_doing(name, SIZES[size])} …", end="\n" if bars else " ", flush=True)
        t0 = time.perf_counter()
        try:
            PARTS[name](out / "runs", SIZES[size], rep)
        except BaseException:
            if not bars:
                print("failed", flush=True)  # close the line, so an `error:` line stands on its own
            raise
        secs = time.perf_counter() - t0
        print(f"{tag} done in {secs:.0f} s" if bars else f"done in {secs:.0f} s", flush=True)
        timings.append([name, f"{secs:.1f}"])
    rep.heading("Wall time", anchor="timing")
    rep.table(["part", "seconds"], timings)
    return rep.save(out / "report.html")
