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
    """A bundle's refiner applied to given log-mels: `refine(mel)` → refined mel, `vocode(mel)` → waveform.

    `steps` / `step_size` default to the bundle's refinement defaults (the η the refiner was trained for).
    Build one with `load_refiner` (or `ebtk.tts.load_refiner`).

    Args:
        bundle: a bundle dict with a refiner that conditions on the hypothesis only (a refiner-only bundle,
            or a refiner bundle with ``text_cond`` false).
        device: where the refiner and the vocoder run ("cpu", "cuda", a ``torch.device``).

    Attributes:
        bundle: the bundle dict it was built from.
        device: the ``torch.device`` the refiner runs on.
        model: the refiner network, in eval mode.
        steps: the default refinement steps.
        step_size: the default step size η.

    Raises:
        EbtkError: the bundle has no refiner, its refiner conditions on text (``model.text_cond=true``),
            or its weights do not fit its settings.
    """

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
        """The effective (steps, η) of a call: the arguments, else the bundle's defaults.

        Returns:
            ``(steps, step_size)``.

        Raises:
            EbtkError: steps < 0 or a step size that is not > 0.
        """
        k = self.steps if steps is None else int(steps)
        eta = self.step_size if step_size is None else float(step_size)
        if k < 0 or not eta > 0:
            raise EbtkError(f"steps must be ≥ 0 and the step size > 0; got {k}, {eta:g}")
        return k, eta

    @torch.no_grad()
    def refine(self, mel: np.ndarray | torch.Tensor, steps: int | None = None,
               step_size: float | None = None) -> np.ndarray | torch.Tensor:
        """Refine a log-mel with `steps` steps Y ← Y + η·s(Y | Ŷ) from Y = Ŷ = `mel`.

        The mel is checked against ebtk's convention first (`ebtk.tts.external.check_mel`), since a mel in
        another convention would refine badly without any error. No alignment: the mel's own frames are kept.

        Args:
            mel: a log-mel (80, T) in ebtk's convention, numpy or torch.
            steps: refinement steps (≥ 0); None = the bundle's default.
            step_size: the step size η (> 0); None = the bundle's default.

        Returns:
            The refined log-mel, float32 (80, T), of the same type as `mel` (a torch result is on the CPU).

        Raises:
            EbtkError: the mel fails `check_mel`, bad settings, or a non-finite result.
        """
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
        """HiFi-GAN (LJSpeech weights) on this refiner's device, loaded on first use."""
        if self._vocoder is None:
            from ebtk.tts.vocoder import Vocoder

            self._vocoder = Vocoder.load(self.device)
        return self._vocoder

    def vocode(self, mel: np.ndarray | torch.Tensor) -> np.ndarray:
        """Vocode a log-mel with HiFi-GAN, e.g. to listen to a refined mel.

        Unlike `refine`, this does not check the mel against ebtk's convention.

        Args:
            mel: a log-mel (80, T), numpy or a CPU torch tensor.

        Returns:
            The waveform, float32 numpy (256·T,) in [-1, 1] at 22 050 Hz.

        Raises:
            EbtkError: `mel` does not have 80 bands.
        """
        m = torch.as_tensor(np.asarray(mel, dtype=np.float32))[None].to(self.device)
        return self.vocoder(m)[0].detach().float().cpu().numpy()


def load_refiner(path: str | Path, device: str | torch.device = "cpu") -> MelRefiner:
    """Load a `MelRefiner` from a bundle file (`ebtk export`) or a tts refiner run dir.

    Args:
        path: a refiner-only or refiner bundle file, or a refiner run dir, whose refiner conditions on
            the hypothesis only (``model.text_cond=false``).
        device: where the refiner and the vocoder run ("cpu", "cuda", a ``torch.device``).

    Returns:
        The `MelRefiner`.

    Raises:
        EbtkError: as `ebtk.tts.bundle.read_bundle` / `bundle_from_run`, and for a bundle without a refiner
            or with a text-conditioned one.
    """
    from ebtk.tts.bundle import bundle_from_run, read_bundle

    p = Path(path).expanduser()
    return MelRefiner(bundle_from_run(p) if p.is_dir() else read_bundle(p), device)


def mel_files(in_path: str | Path) -> list[Path]:
    """The input files of `ebtk refine`: one `.npy` file, or the `.npy` files of a folder.

    Args:
        in_path: a `.npy` file or a folder of them.

    Returns:
        The files, sorted by name.

    Raises:
        EbtkError: `in_path` does not exist, is a folder without `.npy` files, or is not a `.npy` file.
    """
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
    """`ebtk refine`: refine each log-mel of `in_path` into `<out_dir>/<stem>.npy` (and `.wav`, with `wav`).

    Every input is read and checked before anything is written, so one bad file does not leave a half-done
    output folder; files are written atomically. Unless `quiet`, a one-line summary is printed.

    Args:
        model: a bundle file or refiner run dir (`load_refiner`), or a loaded `MelRefiner`.
        in_path: a `.npy` log-mel (80, T) or a folder of them (`mel_files`).
        out_dir: the output folder (made if missing); not the input folder.
        steps: refinement steps; None = the bundle's default.
        step_size: the step size η; None = the bundle's default.
        wav: also vocode each refined mel into `<out_dir>/<stem>.wav` (22 050 Hz).
        device: where the refiner and the vocoder run, when `model` is a path.
        quiet: print nothing.

    Returns:
        {"written": refined mel paths, "wavs": wav paths, "steps", "step_size", "refine_seconds",
        "vocode_seconds", "frames": total input frames}.

    Raises:
        EbtkError: bad inputs (`mel_files`, `read_mel`), `out_dir` is a file or the input folder, the model
            cannot be loaded, bad settings, a non-finite result, or a write fails.
    """
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
