"""TTS speed: real-time factor (compute s / audio s) of each pipeline stage, end to end, and vocoder backends.

Stages: text front-end (phonemizer + espeak-ng), acoustic model (predicted durations -> hypothesis mel),
one refiner step (Y <- Y + eta*s(Y)), HiFi-GAN vocoder; end to end = text -> wav with 1 refinement step.
Each is timed at batch 1 and batched (`--batch` utterances, right-padded: padded frames cost compute but
count no audio). Measurements are interleaved (every repeat runs every case once, in turn) so that load
from other processes hits all cases alike; tables give medians over `--repeats` after `--warmup` calls,
and the load average (os.getloadavg) at the start and end.

Models: `--run RUN_DIR` (a refiner run whose acoustic.checkpoint names its acoustic run) or, without it,
*untrained* models of the real architectures at the task's default sizes (speed does not depend on the
weights), with the duration predictor's output set to a constant log(6.5) -> 7 frames per phoneme, about
12 phonemes/s, so that audio lengths are realistic. Texts are the built-in corpus's sentences
(`ebtk.tts.corpus.make_sentences`).

Streaming (`--streaming`): time to first audio (TTFA: from `Synthesizer.stream(text)` to its first chunk)
next to the RTF, for a sentence of about `--stream-seconds` (10) seconds, against whole-utterance synthesis
(whose first audio is its last); the joined stream against the whole waveform (max |diff|, MCD with DTW);
and TTFA against the number of refinement steps (the whole mel is made before the first chunk). Its model:
`--run`, else the shipped model (ebtk/data/tts_model.pt) when installed, else the untrained models above,
wrapped in an in-memory bundle.

Vocoder study (`--vocoder-study`): fp32 eager (the reference) against channels-last (1, k)-Conv2d eager,
ONNX Runtime on the 1-D and on the Conv2d graph, bf16 (on a short clip: no native bf16 on AVX2), and
optionally torch.compile (`--compile`; compile time reported), each with max |diff| and MCD (DTW) to
the reference wav, on a real espeak-ng utterance's mel.

    python benchmarks/tts_speed.py                      # -> benchmarks/results/tts_speed.md
    python benchmarks/tts_speed.py --run runs/refiner --device cuda
    python benchmarks/tts_speed.py --quick              # tiny smoke run, prints only

Long text (`--long-text`, issue 31): texts of `--long-chars` characters (1k, 10k, 50k) of plain English (the
built-in WordNet example sentences, in a seeded order), each spoken in its own subprocess so that peak RSS
(`ru_maxrss`) belongs to that case alone, by two paths: **pieces** (today's `ebtk.tts.synthesize`: sentences
and clauses one by one, streamed into the wav) and **whole** (the pre-#31 path: one phoneme sequence, one mel,
vocoded at once, then written). The RTF of one ordinary sentence, measured in the same subprocess before and
after the long text (mean of the two), is the reference for "within 1.3x". A whole-text case is not run when
its peak RSS, extrapolated linearly from the largest whole-text case measured (RSS after loading + increment x
size ratio), exceeds 80 % of the memory available; its row says so.

Sections not measured in a run (e.g. `--no-vocoder-study`) are carried over from the existing results file,
marked as such, and so is its hand-written "## Notes" section.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ebtk.io import atomic_write_text
from ebtk.report.machine import cpu_model, load_average

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "tts_speed.md"
FRAMES_PER_PHONEME = 6.5  # untrained models: constant duration, ceil -> 7 frames
ETA = 1.0


def machine() -> str:
    cpu = cpu_model()
    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = "absent"
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, torch "
            f"{torch.__version__}, onnxruntime {ort}, {torch.get_num_threads()} torch thread(s)")




# -- models -------------------------------------------------------------------------------------------
def build_models(run: str | None, device: str) -> tuple[Any, torch.nn.Module, torch.nn.Module, bool, str]:
    """-> (frontend, acoustic, refiner, text_cond, description)."""
    if run:
        from ebtk.train.trainer import load_run

        config, task, refiner, _, _ = load_run(run, device)
        if config["task"] != "tts" or not task.is_refiner:
            sys.exit(f"error: {run} is not a tts refiner run")
        acoustic = task.load_acoustic(device)
        return task.frontend, acoustic, refiner, bool(task.model_cfg.text_cond), f"run {run}"
    from ebtk.tasks.tts import TTSAcoustic, TTSModel
    from ebtk.tts.acoustic import AcousticModel
    from ebtk.tts.refiner import build_refiner
    from ebtk.tts.text import TextFrontend

    torch.manual_seed(0)
    fe = TextFrontend()
    ac_cfg, m = TTSAcoustic(), TTSModel()
    acoustic = AcousticModel(len(fe.symbols), ac_cfg.model_config(), mel_mean=-6.0, mel_std=2.0)
    with torch.no_grad():
        acoustic.duration.out.weight.zero_()
        acoustic.duration.out.bias.fill_(math.log(FRAMES_PER_PHONEME))
    refiner = build_refiner(m.kind, channels=m.channels, mults=tuple(m.mults), text_cond=m.text_cond,
                            mel_mean=-6.0, mel_std=2.0)
    torch.nn.init.normal_(refiner.body.unet.out.weight, std=0.01)  # not the zero init: real compute
    desc = (f"untrained, default sizes (acoustic channels {ac_cfg.channels}, {ac_cfg.enc_layers} enc / "
            f"{ac_cfg.dec_layers} dec layers; {m.kind} refiner U-Net channels {m.channels}, mults {m.mults})")
    return fe, acoustic.to(device).eval(), refiner.to(device).eval(), m.text_cond, desc


# -- timing -------------------------------------------------------------------------------------------
def interleaved(cases: dict[str, Callable[[], Any]], repeats: int, warmup: int,
                device: str) -> dict[str, float]:
    """Median seconds per case; every repeat runs every case once, in turn."""

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(warmup):
        for f in cases.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for k, f in cases.items():
            sync()
            t0 = time.perf_counter()
            f()
            sync()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def pipeline_table(args: argparse.Namespace) -> tuple[list[str], str]:
    from ebtk.tts.audio import HOP, SAMPLE_RATE
    from ebtk.tts.corpus import make_sentences
    from ebtk.tts.refiner import refine
    from ebtk.tts.vocoder import Vocoder

    dev = args.device
    fe, acoustic, refiner, text_cond, desc = build_models(args.run, dev)
    vocs = {"torch": Vocoder.load(dev, backend="torch")}
    if dev == "cpu":
        onnx = Vocoder.load(dev, backend="auto")
        if onnx.backend == "onnx":
            vocs["onnx"] = onnx
        else:
            print(f"onnx vocoder unavailable: {onnx.fallback}")
    texts = make_sentences(max(args.batch, 1), seed=0)
    rows = []
    for bs in (1, args.batch):
        batch = texts[:bs]

        def encode(batch: list[str] = batch) -> tuple[torch.Tensor, torch.Tensor]:
            ids = fe.encode_batch(batch)
            lengths = torch.tensor([len(i) for i in ids])
            ph = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
            for j, i in enumerate(ids):
                ph[j, : len(i)] = torch.tensor(i)
            return ph.to(dev), lengths.to(dev)

        def acoustic_step(ph: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, dict]:
            hyp, mu_y, mask = acoustic.infer(ph, lengths)
            cond = {"hyp": hyp, "mask": mask}
            if text_cond:
                cond["text"] = mu_y
            return hyp, cond

        ph, lengths = encode()
        hyp, cond = acoustic_step(ph, lengths)
        audio_s = float(cond["mask"].sum()) * HOP / SAMPLE_RATE  # valid frames only
        cases: dict[str, Callable[[], Any]] = {
            "text front-end": encode,
            "acoustic model": lambda ph=ph, lengths=lengths: acoustic_step(ph, lengths),
            "refiner, 1 step": lambda hyp=hyp, cond=cond: refine(refiner, hyp, 1, ETA, cond),
        }
        for name, voc in vocs.items():
            cases[f"vocoder ({name})"] = lambda voc=voc, hyp=hyp: voc(hyp)

        for name, voc in vocs.items():
            if bs > 1 and name == "torch" and len(vocs) > 1:
                continue  # the batched torch-vocoder row above gives that ratio; saves minutes

            def e2e(voc: Any = voc, encode: Callable = encode) -> torch.Tensor:
                h, c = acoustic_step(*encode())
                return voc(refine(refiner, h, 1, ETA, c)[0])

            cases[f"end to end, text -> wav ({name} vocoder)"] = e2e
        l0 = load_average()
        med = interleaved(cases, args.repeats, args.warmup, dev)
        l1 = load_average()
        frames = int(hyp.shape[-1]) * bs
        pad = 1 - float(cond["mask"].sum()) / frames
        for k, s in med.items():
            rows.append(f"| {k} | {bs} | {audio_s:.2f} | {pad:.0%} | {s * 1e3:.1f} | {s / audio_s:.4f} | "
                        f"{l0} → {l1} |")
        print("\n".join(rows[-len(med):]), flush=True)
    head = ["| stage | batch | audio s | padding | median ms | RTF | load avg (1/5/15 min) start → end |",
            "|---|---:|---:|---:|---:|---:|---|"]
    return head + rows, desc


# -- streaming ----------------------------------------------------------------------------------------
def untrained_synthesizer(device: str) -> tuple[Any, str]:
    """A `Synthesizer` of the untrained default-size models (`build_models(None, ...)`), via a bundle dict."""
    from dataclasses import asdict

    from ebtk.tasks.tts import TTSAcoustic, TTSModel
    from ebtk.tts.audio import mel_settings
    from ebtk.tts.bundle import FORMAT, VERSION, Synthesizer

    fe, acoustic, refiner, text_cond, desc = build_models(None, "cpu")
    m = TTSModel()
    bundle = {
        "format": FORMAT, "version": VERSION, "kind": "refiner", "frontend": fe.state_dict(),
        "mel": {"mean": -6.0, "std": 2.0, "settings": mel_settings()},
        "acoustic": {"class": "acoustic", "config": asdict(TTSAcoustic().model_config()),
                     "n_symbols": len(fe.symbols), "fm": None, "state": acoustic.state_dict()},
        "refiner": {"kind": m.kind, "channels": m.channels, "mults": list(m.mults), "text_cond": text_cond,
                    "state": refiner.state_dict()},
        "refine": {"steps": 1, "step_size": ETA, "length_scale": 1.0}, "source": {"objective": "untrained"},
    }
    return Synthesizer(bundle, device), desc


def stream_model(args: argparse.Namespace) -> tuple[Any, str]:
    import ebtk.tts
    from ebtk.tts.bundle import shipped_model_path

    if args.run:
        return ebtk.tts.load(args.run, args.device), f"run {args.run}"
    shipped = shipped_model_path()
    if shipped is not None:
        return ebtk.tts.load(None, args.device), f"the shipped model ({shipped.name})"
    syn, desc = untrained_synthesizer(args.device)
    return syn, f"no shipped model in this install: {desc}, 1 refinement step"


def long_sentence(syn: Any, seconds: float) -> tuple[str, float]:
    """The shortest run of the built-in corpus's words (sentences joined) that the model speaks for at least
    `seconds`, and its audio length in seconds."""
    from ebtk.tts.audio import HOP, SAMPLE_RATE
    from ebtk.tts.corpus import make_sentences

    words = " ".join(make_sentences(200, seed=1)).split()

    def length(n: int) -> float:
        hyp, _ = syn.mels(syn.phonemes(" ".join(words[:n])), steps=0 if syn.kind == "refiner" else None)
        return hyp.shape[-1] * HOP / SAMPLE_RATE

    lo, hi = 1, len(words)  # bisect on the word count (audio length grows with it)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if length(mid) < seconds else (lo, mid)
    return " ".join(words[:lo]), length(lo)


def streaming_table(args: argparse.Namespace) -> list[str]:
    import numpy as np

    from ebtk.metrics.speech import mcd_dtw
    from ebtk.tts.audio import SAMPLE_RATE
    from ebtk.tts.vocoder import CONTEXT_FRAMES, RECEPTIVE_FIELD_FRAMES

    t_load = time.perf_counter()
    syn, desc = stream_model(args)
    voc = syn.vocoder
    t_load = time.perf_counter() - t_load
    text, audio_s = long_sentence(syn, args.stream_seconds)
    k = syn.settings()[0]
    chunk, first = args.chunk_frames, args.first_chunk_frames

    def ttfa(steps: int | None = None) -> float:
        t0 = time.perf_counter()
        it = syn.stream(text, chunk_frames=chunk, first_chunk_frames=first, steps=steps)
        next(it)
        dt = time.perf_counter() - t0
        it.close()
        return dt

    cold = ttfa()  # the first synthesis after loading (espeak, allocations)
    l0 = load_average()
    got: dict[str, list[float]] = {"ttfa": [], "stream": [], "whole": []}
    for _ in range(args.stream_repeats):
        got["ttfa"].append(ttfa())
        t0 = time.perf_counter()
        chunks = list(syn.stream(text, chunk_frames=chunk, first_chunk_frames=first))
        got["stream"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        whole = syn.synthesize(text)
        got["whole"].append(time.perf_counter() - t0)
    med = {key: statistics.median(v) for key, v in got.items()}
    joined = np.concatenate(chunks)
    diff = float(np.abs(joined - whole).max())
    mcd = mcd_dtw(whole, joined)
    steps_list = sorted({0, 1, 2, 5, 10, k}) if syn.kind == "refiner" else [k]
    per_k = {s: statistics.median([ttfa(s) for _ in range(args.stream_repeats)]) for s in steps_list}
    l1 = load_average()
    rows = [f"Model: {desc} (loaded in {t_load:.1f} s, vocoder backend {voc.backend}). Text: {len(text)} "
            f"characters, {audio_s:.2f} s of audio at {k} refinement steps; chunks: first {first} frames, "
            f"doubling up to {chunk}, {CONTEXT_FRAMES} frames of context each side (HiFi-GAN's measured reach: "
            f"{RECEPTIVE_FIELD_FRAMES}). Median of {args.stream_repeats} interleaved repeats; load avg {l0} → {l1}.",
            "",
            "| synthesis | time to first audio (s) | compute s | RTF |",
            "|---|---:|---:|---:|",
            f"| whole utterance (`synthesize`) | {med['whole']:.2f} | {med['whole']:.2f} | "
            f"{med['whole'] / audio_s:.3f} |",
            f"| streamed (`stream`) | {med['ttfa']:.3f} | {med['stream']:.2f} | {med['stream'] / audio_s:.3f} |",
            f"| streamed, first call after loading | {cold:.3f} | | |",
            "",
            f"Joined stream vs whole utterance: max abs sample difference {diff:.1e}, MCD (DTW) {mcd:.1e} dB "
            f"({len(chunks)} chunks, {len(joined) / SAMPLE_RATE:.2f} s).",
            "",
            "| refinement steps | time to first audio (s) |",
            "|---:|---:|",
            *[f"| {s} | {t:.3f} |" for s, t in per_k.items()]]
    print("\n".join(rows), flush=True)
    return rows


# -- vocoder study ------------------------------------------------------------------------------------
def real_mel(seconds_text: str) -> tuple[Any, torch.Tensor]:
    from ebtk.tts.audio import load_wav, mel_spectrogram

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "a.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(p), seconds_text], check=True,
                       capture_output=True)
        wav = load_wav(p)
    return wav, mel_spectrogram(torch.from_numpy(wav))


def vocoder_study(args: argparse.Namespace) -> list[str]:
    import copy

    from ebtk.metrics.speech import mcd_dtw
    from ebtk.tts.audio import HOP, SAMPLE_RATE
    from ebtk.tts.vocoder import Vocoder, _ort_session, _run_session, as_conv2d, export_onnx

    _, mel = real_mel("The quick brown fox jumps over the lazy dog. Would you like a cup of tea?")
    mel = mel[None]
    ref_voc = Vocoder.load("cpu", backend="torch")
    gen = ref_voc.generator
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"fp32 eager (reference)": ref_voc}
    notes: dict[str, str] = {}
    cl = as_conv2d(gen).to(memory_format=torch.channels_last)

    def run_cl(m: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return cl(m).squeeze(1).clamp(-1, 1)

    variants["eager, (1,k) Conv2d channels-last"] = run_cl
    try:
        with tempfile.TemporaryDirectory() as d:
            p1 = Path(d) / "g1d.onnx"
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(gen, (mel[..., :24],), str(p1), input_names=["mel"], output_names=["wav"],
                                  opset_version=17, dynamo=False,
                                  dynamic_axes={"mel": {0: "b", 2: "t"}, "wav": {0: "b", 2: "s"}})
            s1 = _ort_session(p1, torch.get_num_threads())
        variants["ONNX Runtime, Conv1d graph"] = lambda m: _run_session(s1, m).squeeze(1).clamp(-1, 1)
        p2 = Path(tempfile.mkdtemp()) / "g2d.onnx"
        t0 = time.perf_counter()
        export_onnx(gen, p2)
        notes["ONNX Runtime, (1,k) Conv2d graph (backend=onnx)"] = f"export {time.perf_counter() - t0:.1f} s"
        s2 = _ort_session(p2, torch.get_num_threads())
        variants["ONNX Runtime, (1,k) Conv2d graph (backend=onnx)"] = (
            lambda m: _run_session(s2, m).squeeze(1).clamp(-1, 1))
    except Exception as e:  # report it, do not die: the study is informative
        notes["onnx"] = f"unavailable: {e}"
    if args.compile:
        import torch._inductor.config as ic

        ic.freezing = True
        comp = torch.compile(copy.deepcopy(gen), dynamic=True)
        t0 = time.perf_counter()
        with torch.inference_mode():
            comp(mel)
        t1 = time.perf_counter()
        with torch.inference_mode():
            comp(mel[..., : mel.shape[-1] // 2])
        notes["torch.compile (inductor, freezing)"] = (f"compile {t1 - t0:.0f} s, a new length "
                                                       f"{time.perf_counter() - t1:.0f} s")

        def run_comp(m: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return comp(m).squeeze(1).clamp(-1, 1)

        variants["torch.compile (inductor, freezing)"] = run_comp
    l0 = load_average()
    cases = {k: (lambda f=f: f(mel)) for k, f in variants.items()}
    med = interleaved(cases, args.repeats, args.warmup, "cpu")
    l1 = load_average()
    audio_s = mel.shape[-1] * HOP / SAMPLE_RATE
    ref = ref_voc(mel)[0].numpy()
    base = med["fp32 eager (reference)"]
    rows = [f"Real espeak-ng utterance, {audio_s:.2f} s ({mel.shape[-1]} frames), batch 1; "
            f"load avg {l0} → {l1}.", "",
            "| vocoder variant | median ms | RTF | speed-up vs eager | max abs diff | MCD vs eager (dB) "
            "| notes |",
            "|---|---:|---:|---:|---:|---:|---|"]
    for k, s in med.items():
        w = variants[k](mel)[0].numpy()
        diff = float(abs(w - ref).max())
        mcd = mcd_dtw(ref, w) if k != "fp32 eager (reference)" else 0.0
        rows.append(f"| {k} | {s * 1e3:.0f} | {s / audio_s:.3f} | {base / s:.2f}x | {diff:.1e} | {mcd:.3f} | "
                    f"{notes.get(k, '')} |")
        print(rows[-1], flush=True)
    # bf16: no native bf16 on AVX2 CPUs, so only a short clip (timed against eager on the same clip)
    clip = mel[..., :40]
    g16 = copy.deepcopy(gen).to(torch.bfloat16)

    def run16(m: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return g16(m.bfloat16()).float().squeeze(1).clamp(-1, 1)

    med16 = interleaved({"eager": lambda: ref_voc(clip), "bf16": lambda: run16(clip)},
                        max(1, args.repeats // 2), 1, "cpu")
    w16, r16 = run16(clip)[0].numpy(), ref_voc(clip)[0].numpy()
    clip_s = clip.shape[-1] * HOP / SAMPLE_RATE
    rows.append(f"| bf16 weights+activations (on a {clip_s:.2f} s clip) | {med16['bf16'] * 1e3:.0f} | "
                f"{med16['bf16'] / clip_s:.3f} | {med16['eager'] / med16['bf16']:.2f}x | "
                f"{float(abs(w16 - r16).max()):.1e} | {mcd_dtw(r16, w16):.3f} | eager on the clip: RTF "
                f"{med16['eager'] / clip_s:.3f} |")
    print(rows[-1], flush=True)
    for k, v in notes.items():
        if k not in med:
            rows.append(f"\n{k}: {v}")
    return rows


NOTES = "## Notes (written by hand, not generated by the script)"
CARRIED = "*Not re-measured in the run that wrote this file: carried over from the previous file.*"


# -- long text --------------------------------------------------------------------------------------
LONG_SENTENCE = "The committee will meet again on Tuesday to review the new budget for the library."


def long_text(n_chars: int, seed: int = 0) -> str:
    """About `n_chars` characters of plain English: the WordNet example sentences in a seeded order, joined by
    spaces and cut at the last sentence that fits (at least one sentence)."""
    import random

    from ebtk.tts.corpus import wordnet_sentences

    pool = wordnet_sentences()
    random.Random(seed).shuffle(pool)
    out: list[str] = []
    size = 0
    for s in pool:
        if out and size + len(s) + 1 > n_chars:
            break
        out.append(s)
        size += len(s) + 1
    return " ".join(out)


def _rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux


def long_child(path: str, n_chars: int, threads: int) -> dict[str, float]:
    """One long-text case in this (fresh) process: {chars, audio_s, rtf, sentence_rtf, loaded_gb, peak_gb}."""
    import resource

    import ebtk.tts
    from ebtk.tts.audio import SAMPLE_RATE, save_wav
    from ebtk.tts.synthesize import synthesize

    torch.set_num_threads(threads)
    syn = ebtk.tts.load(None)
    _ = syn.vocoder
    syn.frontend.phonemize(["a"])
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    text = long_text(n_chars)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "long.wav"
        before = synthesize(syn, LONG_SENTENCE, out, quiet=True)["rtf"]
        if path == "pieces":
            res = synthesize(syn, text, out, quiet=True)
            rtf, audio = res["rtf"], res["seconds"]
        else:  # the pre-#31 path: the whole text as one sequence, one mel, vocoded at once
            t0 = time.perf_counter()
            ids, errors = syn.encode_lines([text])
            if errors:
                raise SystemExit(f"error: {errors}")
            (_, mel), = syn.mels_batch(ids)
            wav = syn.to_audio(syn.vocoder.many([mel])[0])
            compute = time.perf_counter() - t0
            save_wav(out, wav)
            audio = wav.size / SAMPLE_RATE
            rtf = compute / audio
        peak = _rss_gb()
        after = synthesize(syn, LONG_SENTENCE, out, quiet=True)["rtf"]
    return {"chars": len(text), "audio_s": audio, "rtf": rtf, "sentence_rtf": (before + after) / 2,
            "loaded_gb": loaded, "peak_gb": peak}


def mem_available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024**2
    return float("inf")


def long_text_table(args: argparse.Namespace) -> list[str]:
    """Rows of the long-text section (each case in a subprocess: see the module docstring)."""
    import json

    start_load = load_average()
    rows = ["| characters | path | audio s | peak RSS (GB) | RTF | one sentence's RTF | ratio |",
            "|---:|---|---:|---:|---:|---:|---:|"]
    whole_fit: dict[str, float] | None = None
    for n in args.long_chars:
        for path in ("pieces", "whole"):
            if path == "whole" and whole_fit is not None:
                need = whole_fit["loaded_gb"] + (whole_fit["peak_gb"] - whole_fit["loaded_gb"]) * n / whole_fit["chars"]
                if need > 0.8 * mem_available_gb():
                    rows.append(f"| {n:,} | whole | | ≈ {need:.0f} (extrapolated) | not run: more than 80 % of the "
                                f"{mem_available_gb():.0f} GB available | | |")
                    continue
            cmd = [sys.executable, __file__, "--long-child", f"{path}:{n}", "--threads", str(args.threads)]
            print(f"long text: {n} chars, {path} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
                rows.append(f"| {n:,} | {path} | | | failed (exit {proc.returncode}): {tail} | | |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            if path == "whole":
                whole_fit = r
            rows.append(f"| {r['chars']:,} | {path} | {r['audio_s']:.0f} | {r['peak_gb']:.2f} | {r['rtf']:.3f} | "
                        f"{r['sentence_rtf']:.3f} | {r['rtf'] / r['sentence_rtf']:.2f} |")
    return [f"Model: the shipped model, its default refinement; {args.threads} torch thread(s). Texts: WordNet "
            "example sentences (seeded order). *pieces*: `ebtk.tts.synthesize` (sentence/clause pieces streamed "
            "into the wav; its RTF counts speech seconds, not pauses); *whole*: the pre-#31 path (one mel, vocoded "
            "at once). Peak RSS: the subprocess's `ru_maxrss` (model loading included). Ratio: RTF / one "
            f"sentence's RTF in the same process (mean of before and after). Load avg {start_load} → "
            f"{load_average()}.", "", *rows]


def previous_sections(path: Path) -> dict[str, list[str]]:
    """The `## ` sections of an existing results file: heading -> its lines (without the heading)."""
    if not path.is_file():
        return {}
    out: dict[str, list[str]] = {}
    head = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            head = line
            out[head] = []
        elif head is not None and not line.startswith("Wall time of this benchmark"):
            out[head].append(line)
    return out


def carried(old: dict[str, list[str]], heading: str) -> list[str]:
    """A section of the previous file, marked as carried over (nothing if it had none)."""
    if heading not in old:
        return []
    body = [ln for ln in old[heading] if ln != CARRIED]
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    return [heading, "", CARRIED, "", *body, ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="refiner run dir (its acoustic.checkpoint names the acoustic run)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch (and ONNX Runtime) intra-op threads")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--vocoder-study", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=True,
                    help="the per-stage pipeline table")
    ap.add_argument("--streaming", action=argparse.BooleanOptionalAction, default=True,
                    help="time to first audio of `stream` vs whole-utterance synthesis")
    ap.add_argument("--stream-seconds", type=float, default=10.0, help="length of the streamed sentence")
    ap.add_argument("--stream-repeats", type=int, default=5, help="repeats of the streaming measurements")
    ap.add_argument("--chunk-frames", type=int, default=128)
    ap.add_argument("--first-chunk-frames", type=int, default=8)
    ap.add_argument("--long-text", action=argparse.BooleanOptionalAction, default=True,
                    help="peak RSS and RTF on 1k/10k/50k-character texts, pieces vs the whole-text path")
    ap.add_argument("--long-chars", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 10000, 50000])
    ap.add_argument("--long-child", help=argparse.SUPPRESS)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (minutes to compile)")
    ap.add_argument("--quick", action="store_true", help="batch 2, 1 repeat, no study, a 3 s stream, no file")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.long_child:
        import json

        path, n = args.long_child.split(":")
        print(json.dumps(long_child(path, int(n), args.threads)))
        return 0
    if args.quick:
        args.batch, args.repeats, args.warmup, args.vocoder_study = 2, 1, 1, False
        args.stream_seconds, args.stream_repeats = 3.0, 1
        args.long_chars = [300]
    t0 = time.time()
    start_load = load_average()
    table, desc = pipeline_table(args) if args.pipeline else ([], "")
    streaming = streaming_table(args) if args.streaming else []
    study = vocoder_study(args) if args.vocoder_study and args.device == "cpu" else []
    long_rows = long_text_table(args) if args.long_text and args.device == "cpu" else []
    old = previous_sections(args.out)
    md = ["# TTS speed (RTF = compute s / audio s; < 1 is faster than real time)", "",
          f"Machine: {machine()}; device {args.device}. Load average (1/5/15 min) at start {start_load}, at "
          f"end {load_average()}: the machine is shared, so absolute times are inflated by other processes' "
          "load; compare rows measured together (interleaved), and ratios.", ""]
    if table:
        md += ["## Pipeline", "", f"Models: {desc}. End to end = text front-end + acoustic model + 1 refinement "
               f"step (η = {ETA}) + vocoder. Median of {args.repeats} interleaved repeats after {args.warmup} "
               "warm-up.", "", *table, ""]
    else:
        md += carried(old, "## Pipeline")
    md += ["## Streaming (time to first audio)", "", *streaming, ""] if streaming else carried(
        old, "## Streaming (time to first audio)")
    if study:
        md += ["## Vocoder backends (CPU)", "", *study, ""]
    else:
        md += carried(old, "## Vocoder backends (CPU)")
    md += ["## Long text (issue 31)", "", *long_rows, ""] if long_rows else carried(old, "## Long text (issue 31)")
    cmd = " ".join(argv if argv is not None else sys.argv[1:])
    md.append(f"Wall time of this benchmark: {time.time() - t0:.0f} s. Command: "
              f"`python benchmarks/tts_speed.py {cmd}`")
    notes = old.get(NOTES)
    if notes:
        md += ["", NOTES, *notes]
    text = "\n".join(md) + "\n"
    if args.quick:
        print(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
