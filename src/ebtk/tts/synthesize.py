"""`ebtk synthesize`: text → wav files through an inference bundle (ebtk.tts.bundle), with the RTF.

The model is a bundle file from ``ebtk export``, a tts run dir (a refiner run, whose `acoustic.checkpoint`
gives the acoustic model; an acoustic run: hypothesis only; a flow-matching run: `steps` = Euler steps), or
None: the model shipped with ebtk (`ebtk.tts.bundle.shipped_model_path`). No trainer, objective or corpus is
involved.

RTF (compute seconds / audio seconds) is measured once per call over all of its texts: the text front-end,
acoustic model, refiner and vocoder, not loading the model or writing files. No synthesis runs as a warm-up:
the ONNX Runtime vocoder's first call is no slower than later ones (its session is built when the vocoder is
loaded, untimed), and the acoustic model's and refiner's first calls cost a few ms more than later ones,
well under 1 % of the vocoder's time. The one start-up cost inside synthesis is espeak-ng's (~0.1 s, once per
process); it is paid on a one-letter text before the clock starts, like loading the model.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ebtk.errors import EbtkError
from ebtk.tts.audio import HOP, SAMPLE_RATE
from ebtk.tts.bundle import Synthesizer, load


def _synthesizer(model: str | Path | Synthesizer | None, device: str) -> Synthesizer:
    return model if isinstance(model, Synthesizer) else load(model, device)


def _describe(syn: Synthesizer, k: int, eta: float) -> str:
    if syn.kind == "fm":
        return f"{k} Euler steps"
    if syn.kind == "acoustic":
        return "hypothesis only (no refiner)"
    return f"{k} refinement step{'' if k == 1 else 's'} of size {eta:g}"


def synthesize_texts(syn: Synthesizer, texts: Sequence[str], outs: Sequence[str | Path],
                     steps: int | None = None, step_size: float | None = None, length_scale: float | None = None,
                     write_hypothesis: bool = False, batch_size: int = 8,
                     progress: bool | None = None) -> dict[str, Any]:
    """Speak each of `texts` into the wav at the same place in `outs`, in order.

    Each text is split into pieces (sentences, then clauses: `ebtk.tts.segment`); pieces go `batch_size` at a
    time, in reading order across texts, through the acoustic model and the refiner, then one by one through
    the vocoder over overlapping mel chunks (`Synthesizer.piece_audio`), and are streamed into their wav
    (`WavWriter`) with a short pause between pieces. Memory therefore depends on the longest piece, not on the
    length of a text, and wavs are completed in the order of `texts` (an interrupted run leaves outs 1..n
    complete and nothing half-written: a wav appears only when all its pieces are in it).

    Texts that cannot be spoken (empty, no known symbols in any piece) are skipped and reported in
    ``errors`` ({index: why}); the others are written. `write_hypothesis` also writes each unrefined
    hypothesis as ``<stem>_hyp.wav``. `progress`: a tqdm bar on stderr (None: only when stderr is a terminal).
    Returns {written, hypotheses, errors, seconds, frames, compute_seconds, rtf, steps, step_size,
    length_scale}: `seconds` is the audio written (pauses included); rtf = compute_seconds / seconds of
    *speech* (pauses excluded, so long texts get no credit for silence), without the hypotheses' vocoding."""
    from tqdm.auto import tqdm

    from ebtk.tts.audio import WavWriter
    from ebtk.tts.segment import split_text

    if batch_size < 1:
        raise EbtkError(f"the batch size must be ≥ 1, got {batch_size}")
    if len(texts) != len(outs):
        raise EbtkError(f"{len(texts)} texts but {len(outs)} output paths")
    k, eta, ls = syn.settings(steps, step_size, length_scale)
    _ = syn.vocoder  # loaded (and its ONNX session built) before the clock starts
    syn.frontend.phonemize(["a"])  # starts espeak-ng (once per process), untimed like loading
    errors: dict[int, str] = {}
    pieces: dict[int, list] = {}
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            errors[i] = "empty line"
        else:
            pieces[i] = split_text(t)
    queue = [(i, j) for i in sorted(pieces) for j in range(len(pieces[i]))]
    writers: dict[int, tuple[WavWriter, WavWriter | None]] = {}
    failed: dict[int, list[str]] = {}
    written: list[str] = []
    hypotheses: list[str] = []
    compute, samples, speech = 0.0, 0, 0
    bar = tqdm(total=len(texts), desc="synthesize", unit="line", file=sys.stderr, leave=False,
               disable=None if progress is None else not progress)

    def finish(i: int) -> None:
        pair = writers.pop(i, None)
        if pair is None:  # no piece of this text could be spoken
            errors[i] = failed[i][0] if len(pieces[i]) == 1 else f"no piece could be spoken ({failed[i][0]})"
        else:
            for why in failed.get(i, []):
                warnings.warn(f"{outs[i]}: skipped a piece: {why}", stacklevel=3)
            written.append(str(pair[0].commit()))
            if pair[1] is not None:
                hypotheses.append(str(pair[1].commit()))
        bar.update(1)

    try:
        for start in range(0, len(queue), batch_size):
            batch = queue[start:start + batch_size]
            t0 = time.perf_counter()
            ids, bad = syn.encode_lines([pieces[i][j].text for i, j in batch])
            good = [n for n in range(len(batch)) if ids[n] is not None]
            pairs = syn.mels_batch([ids[n] for n in good], k, eta, ls)
            compute += time.perf_counter() - t0
            mels = dict(zip(good, pairs))
            for n, (i, j) in enumerate(batch):
                last = j == len(pieces[i]) - 1
                if n in bad:
                    failed.setdefault(i, []).append(bad[n])
                else:
                    if i not in writers:
                        hyp_out = Path(outs[i]).with_name(f"{Path(outs[i]).stem}_hyp.wav") if write_hypothesis else None
                        writers[i] = (WavWriter(outs[i]), WavWriter(hyp_out) if hyp_out else None)
                    w, hw = writers[i]
                    hyp, mel = mels[n]
                    t0 = time.perf_counter()
                    blocks = list(syn.piece_audio(mel, j > 0, not last))
                    compute += time.perf_counter() - t0
                    for b in blocks:
                        w.write(b)
                        speech += b.size
                    if hw is not None:  # extra output: not timed
                        for b in syn.piece_audio(hyp, j > 0, not last):
                            hw.write(b)
                    if not last:
                        pause = np.zeros(int(round(pieces[i][j].pause * SAMPLE_RATE)), np.float32)
                        for x in (w, hw) if hw is not None else (w,):
                            x.write(pause)
                if last:
                    if i in writers:
                        samples += writers[i][0].samples
                    finish(i)
    finally:
        bar.close()
        for w, hw in writers.values():  # interrupted or failed: nothing half-written is left
            w.discard()
            if hw is not None:
                hw.discard()
    seconds = samples / SAMPLE_RATE
    return {"written": written, "hypotheses": hypotheses, "errors": dict(sorted(errors.items())),
            "seconds": seconds, "frames": samples // HOP, "compute_seconds": compute,
            "rtf": compute / (speech / SAMPLE_RATE) if speech else float("nan"), "steps": k, "step_size": eta,
            "length_scale": ls}


def synthesize(model: str | Path | Synthesizer | None, text: str, out: str | Path, steps: int | None = None,
               step_size: float | None = None, write_hypothesis: bool = False, device: str = "cpu",
               quiet: bool = False, length_scale: float | None = None) -> dict[str, Any]:
    """Synthesize `text` into `out` (wav); `model` None is the shipped model. Returns {out, hypothesis,
    seconds, rtf, steps, step_size, length_scale, frames}.

    steps / step_size / length_scale default to the model's refinement defaults. `write_hypothesis` also
    writes the unrefined hypothesis next to `out` as ``<stem>_hyp.wav`` (its vocoding is not in the RTF).
    """
    syn = _synthesizer(model, device)
    if not isinstance(text, str) or not text.strip():
        raise EbtkError("the text is empty; hint: give a sentence to speak")
    res = synthesize_texts(syn, [text], [out], steps, step_size, length_scale, write_hypothesis, progress=False)
    if res["errors"]:
        raise EbtkError(res["errors"][0])
    result = {"out": str(out), "hypothesis": res["hypotheses"][0] if write_hypothesis else None,
              "seconds": res["seconds"], "rtf": res["rtf"], "steps": res["steps"], "step_size": res["step_size"],
              "length_scale": res["length_scale"], "frames": res["frames"]}
    if not quiet:
        print(f"wrote {out}: {res['seconds']:.2f} s of audio, {_describe(syn, res['steps'], res['step_size'])}, "
              f"RTF {res['rtf']:.3f}")
    return result


def read_lines(lines_file: str | Path) -> list[str]:
    """The lines of a text file, stripped; blank lines at the end of the file are not lines to speak."""
    path = Path(lines_file)
    if not path.is_file():
        raise EbtkError(f"text file not found: {path}")
    try:
        lines = [t.strip() for t in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as e:
        raise EbtkError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise EbtkError(f"{path} has no text lines")
    return lines


def synthesize_lines(model: str | Path | Synthesizer | None, lines_file: str | Path, out_dir: str | Path,
                     steps: int | None = None, step_size: float | None = None, write_hypothesis: bool = False,
                     device: str = "cpu", quiet: bool = False, length_scale: float | None = None,
                     batch_size: int = 8, progress: bool | None = None) -> dict[str, Any]:
    """One wav per line of `lines_file`: line n → ``<out_dir>/<n:04d>.wav`` (0001.wav, 0002.wav, ...),
    `batch_size` lines at a time, with a progress bar (`progress`, see `synthesize_texts`).

    Prints (unless `quiet`) and returns one summary with the RTF of the whole call. A line that cannot be
    spoken (empty, or only unknown symbols) is an EbtkError naming its line number, raised after the wavs of
    all the good lines are written."""
    path = Path(lines_file)
    lines = read_lines(path)
    syn = _synthesizer(model, device)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise EbtkError(f"--out-dir {out_dir} is a file, not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    res = synthesize_texts(syn, lines, [out_dir / f"{n:04d}.wav" for n in range(1, len(lines) + 1)], steps,
                           step_size, length_scale, write_hypothesis, batch_size,
                           progress=False if quiet else progress)
    n = len(res["written"])
    if not quiet and n:
        print(f"wrote {n} wav{'s' if n != 1 else ''} to {out_dir}: {res['seconds']:.2f} s of audio, "
              f"{_describe(syn, res['steps'], res['step_size'])}, RTF {res['rtf']:.3f}")
    if res["errors"]:
        bad = "; ".join(f"line {i + 1}: {why}" for i, why in res["errors"].items())
        raise EbtkError(f"{path}: {bad} (the wavs of the other {n} line{'s' if n != 1 else ''} were written "
                        f"to {out_dir})")
    return res
