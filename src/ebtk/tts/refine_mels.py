"""A trained refiner applied to log-mels from any TTS model: `ebtk refine MODEL IN OUT` and `load_refiner`.

The model is a refiner-only bundle (`ebtk export` of a refiner run on `hypotheses.dir`), a refiner bundle or
run dir whose refiner conditions on the hypothesis only (`model.text_cond=false`), or such a run dir. The
input mels must follow ebtk's convention (ebtk.tts.external.check_mel). Refinement is `steps` first-order
steps Y ← Y + η·s(Y | Ŷ) from Y = Ŷ on the mel's own frames (no alignment at inference), as
ebtk.tts.refiner.refine. No trainer, corpus or acoustic model is involved.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ebtk.errors import EbtkError
from ebtk.tts.external import check_mel, read_mel


class MelRefiner:
    """`refine(mel)` → refined mel with a bundle's refiner; `vocode(mel)` → 22 050 Hz waveform (HiFi-GAN).

    `steps` / `step_size` default to the bundle's refinement defaults (the η the refiner was trained for)."""

    def __init__(self, bundle: dict[str, Any], device: str | torch.device = "cpu"):
        from ebtk.tts.bundle import build_refiner

        sec = bundle.get("refiner")
        if not sec:
            raise EbtkError(f"this is a {bundle.get('kind')!r} bundle with no refiner; hint: export a refiner run "
                            "(e.g. one trained with hypotheses.dir=YOUR_MELS)")
        if sec["text_cond"]:
            raise EbtkError("this refiner conditions on its acoustic model's text encoding (model.text_cond=true), "
                            "which given mels do not have; hint: train one on your mels with hypotheses.dir=DIR")
        self.bundle = bundle
        self.device = torch.device(device)
        self.model = build_refiner(sec).to(self.device)
        self.steps = int(bundle["refine"]["steps"])
        self.step_size = float(bundle["refine"]["step_size"])
        self._vocoder = None

    def settings(self, steps: int | None = None, step_size: float | None = None) -> tuple[int, float]:
        """The effective (steps, η) of a call: the arguments, else the bundle's defaults."""
        k = self.steps if steps is None else int(steps)
        eta = self.step_size if step_size is None else float(step_size)
        if k < 0 or not eta > 0:
            raise EbtkError(f"steps must be ≥ 0 and the step size > 0; got {k}, {eta:g}")
        return k, eta

    @torch.no_grad()
    def refine(self, mel: np.ndarray | torch.Tensor, steps: int | None = None,
               step_size: float | None = None) -> np.ndarray | torch.Tensor:
        """The refined log-mel of `mel` (80, T), checked against ebtk's convention first; returns the same
        type (numpy or torch) and shape, float32. Raises EbtkError for a mel in another convention or a
        non-finite result."""
        from ebtk.tts.refiner import refine

        k, eta = self.settings(steps, step_size)
        as_torch = isinstance(mel, torch.Tensor)
        a = check_mel(mel.detach().cpu().numpy() if as_torch else mel, "the mel")
        hyp = torch.from_numpy(np.ascontiguousarray(a))[None].to(self.device)
        out = refine(self.model, hyp, k, eta, {"hyp": hyp})[0][0].float().cpu()
        if not torch.isfinite(out).all():
            raise EbtkError("refinement produced non-finite values; hint: fewer steps or a smaller step size")
        return out if as_torch else out.numpy()

    @property
    def vocoder(self) -> Any:
        """HiFi-GAN (LJSpeech weights), loaded on first use."""
        if self._vocoder is None:
            from ebtk.tts.vocoder import Vocoder

            self._vocoder = Vocoder.load(self.device)
        return self._vocoder

    def vocode(self, mel: np.ndarray | torch.Tensor) -> np.ndarray:
        """float32 waveform at 22 050 Hz of a log-mel (80, T)."""
        m = torch.as_tensor(np.asarray(mel, dtype=np.float32))[None].to(self.device)
        return self.vocoder(m)[0].detach().float().cpu().numpy()


def load_refiner(path: str | Path, device: str | torch.device = "cpu") -> MelRefiner:
    """A `MelRefiner` from a bundle file (`ebtk export`) or a tts refiner run dir."""
    from ebtk.tts.bundle import bundle_from_run, read_bundle

    p = Path(path).expanduser()
    return MelRefiner(bundle_from_run(p) if p.is_dir() else read_bundle(p), device)


def mel_files(in_path: str | Path) -> list[Path]:
    """IN of `ebtk refine`: one `.npy` file, or the `.npy` files of a folder (sorted); EbtkError otherwise."""
    p = Path(in_path)
    if p.is_dir():
        files = sorted(f for f in p.glob("*.npy") if f.is_file())
        if not files:
            raise EbtkError(f"{p} has no .npy files; give a folder of <id>.npy log-mels (80, T) or one .npy file")
        return files
    if not p.exists():
        raise EbtkError(f"input not found: {p}")
    if p.suffix != ".npy" or not p.is_file():
        raise EbtkError(f"{p} is not a .npy file; give a .npy log-mel (80, T) or a folder of them")
    return [p]


def refine_files(model: str | Path | MelRefiner, in_path: str | Path, out_dir: str | Path, steps: int | None = None,
                 step_size: float | None = None, wav: bool = False, device: str = "cpu",
                 quiet: bool = False) -> dict[str, Any]:
    """`ebtk refine`: each mel of `in_path` (`mel_files`) refined into `<out_dir>/<stem>.npy` and, with `wav`,
    vocoded into `<out_dir>/<stem>.wav` (22 050 Hz). Every input is read and checked before anything is
    written; files are written atomically. `out_dir` must be a folder (made if missing) other than the
    input folder. Returns {written, wavs, steps, step_size, refine_seconds, vocode_seconds, frames}."""
    from ebtk.io import atomic_path
    from ebtk.tts.audio import SAMPLE_RATE, save_wav

    files = mel_files(in_path)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise EbtkError(f"OUT {out} exists and is not a folder; give a folder for the refined mels")
    if out.is_dir() and any(f.parent.resolve() == out.resolve() for f in files):
        raise EbtkError(f"OUT {out} is the input folder: the refined mels would replace the inputs; give another")
    mels = [read_mel(f) for f in files]  # all checked before anything is written
    r = model if isinstance(model, MelRefiner) else load_refiner(model, device)
    k, eta = r.settings(steps, step_size)
    out.mkdir(parents=True, exist_ok=True)
    written, wavs = [], []
    t_refine = t_voc = 0.0
    for f, mel in zip(files, mels):
        t0 = time.perf_counter()
        y = r.refine(mel, k, eta)
        t_refine += time.perf_counter() - t0
        dest = out / f"{f.stem}.npy"
        with atomic_path(dest, suffix=".tmp.npy") as tmp:
            np.save(tmp, y.astype(np.float32))
        written.append(str(dest))
        if wav:
            t0 = time.perf_counter()
            audio = r.vocode(y)
            t_voc += time.perf_counter() - t0
            save_wav(out / f"{f.stem}.wav", audio, SAMPLE_RATE)
            wavs.append(str(out / f"{f.stem}.wav"))
    res = {"written": written, "wavs": wavs, "steps": k, "step_size": eta, "refine_seconds": t_refine,
           "vocode_seconds": t_voc, "frames": int(sum(m.shape[1] for m in mels))}
    if not quiet:
        extra = f" and {len(wavs)} wav{'s' if len(wavs) != 1 else ''}" if wav else ""
        print(f"wrote {len(written)} refined mel{'s' if len(written) != 1 else ''}{extra} to {out}: {k} step"
              f"{'' if k == 1 else 's'} of size {eta:g}, refinement {t_refine:.2f} s for {res['frames']} frames")
    return res


__all__ = ["MelRefiner", "load_refiner", "mel_files", "refine_files"]
