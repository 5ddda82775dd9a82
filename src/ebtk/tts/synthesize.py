"""`ebtk synthesize`: text → wav files through an inference bundle (ebtk.tts.bundle), with the RTF.

The model is a bundle file from ``ebtk export`` or a tts run dir: a refiner run (its `acoustic.checkpoint`
gives the acoustic model), an acoustic run (hypothesis only, no refinement) or a flow-matching run (`steps` =
Euler steps). No trainer, objective or corpus is involved.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ebtk.errors import EbtkError
from ebtk.tts.audio import N_MELS, SAMPLE_RATE, save_wav
from ebtk.tts.bundle import Synthesizer, load


def _synthesizer(model: str | Path | Synthesizer, device: str) -> Synthesizer:
    return model if isinstance(model, Synthesizer) else load(model, device)


def synthesize(model: str | Path | Synthesizer, text: str, out: str | Path, steps: int | None = None,
               step_size: float | None = None, write_hypothesis: bool = False, device: str = "cpu",
               quiet: bool = False, length_scale: float | None = None) -> dict[str, Any]:
    """Synthesize `text` into `out` (wav). Returns {out, hypothesis, seconds, rtf, steps, step_size, frames,
    phonemes}.

    steps / step_size / length_scale default to the model's refinement defaults. `write_hypothesis` also
    writes the unrefined hypothesis next to `out` as ``<stem>_hyp.wav``. RTF counts everything after the
    text front-end (acoustic model, refinement, vocoder), after a warm-up call.
    """
    syn = _synthesizer(model, device)
    out = Path(out)
    k, eta, ls = syn.settings(steps, step_size, length_scale)
    ph = syn.phonemes(text)
    voc = syn.vocoder
    syn.mels(ph, k, eta, ls)  # warm-up (first-call allocations), so the RTF describes steady-state synthesis
    voc(torch.zeros(1, N_MELS, 8, device=syn.device))
    t0 = time.perf_counter()
    hyp, mel = syn.mels(ph, k, eta, ls)
    wav = voc(mel)[0].cpu()
    secs_compute = time.perf_counter() - t0
    if not torch.isfinite(wav).all():
        raise EbtkError("synthesis produced non-finite audio; hint: fewer --steps or a smaller --step-size")
    save_wav(out, wav.numpy(), SAMPLE_RATE)
    hyp_path = None
    if write_hypothesis:
        hyp_path = out.with_name(f"{out.stem}_hyp.wav")
        save_wav(hyp_path, voc(hyp)[0].cpu().numpy(), SAMPLE_RATE)
    seconds = wav.numel() / SAMPLE_RATE
    result = {"out": str(out), "hypothesis": None if hyp_path is None else str(hyp_path), "seconds": seconds,
              "rtf": secs_compute / seconds, "steps": k, "step_size": eta, "frames": int(mel.shape[-1]),
              "phonemes": int(ph.shape[1])}
    if not quiet:
        what = f"{k} Euler steps" if syn.kind == "fm" else f"{k} refinement steps of size {eta:g}"
        print(f"wrote {out}: {seconds:.2f} s of audio, {what}, RTF {result['rtf']:.3f}")
    return result


def synthesize_lines(model: str | Path | Synthesizer, lines_file: str | Path, out_dir: str | Path,
                     **kw: Any) -> list[dict[str, Any]]:
    """One wav per non-empty line of `lines_file`, named ``0001.wav``, ``0002.wav``, ... in `out_dir`."""
    path = Path(lines_file)
    if not path.is_file():
        raise EbtkError(f"text file not found: {path}")
    lines = [t.strip() for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    if not lines:
        raise EbtkError(f"{path} has no text lines")
    syn = _synthesizer(model, kw.pop("device", "cpu"))
    return [synthesize(syn, t, Path(out_dir) / f"{i:04d}.wav", **kw) for i, t in enumerate(lines, 1)]
