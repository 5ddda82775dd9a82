"""TensorBoard media of a TTS run: mel images and audio of one validation utterance per evaluation.

Scalars show that a number moved; a mel and a wav show *what* moved (smearing, buzz, wrong pitch). The
events go to their own file in the run's ``tb/`` dir, beside the trainer's scalars, so one TensorBoard shows
both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ebtk.tts.audio import SAMPLE_RATE


def mel_image(mel: torch.Tensor) -> np.ndarray:
    """A log-mel (80, T) as a (1, 80, T) image in [0, 1], low frequencies at the bottom."""
    m = mel.detach().float().cpu().numpy()
    lo, hi = float(m.min()), float(m.max())
    return ((m - lo) / max(hi - lo, 1e-6))[::-1][None].copy()


def log_media(tb_dir: str | Path, step: int, uid: str, mels: dict[str, torch.Tensor],
              wavs: dict[str, np.ndarray]) -> bool:
    """Write `mels` as images (``mel/<name>``) and `wavs` (22 050 Hz) as audio (``audio/<name>``) at `step`.
    Returns False (and writes nothing) when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return False
    writer = SummaryWriter(str(tb_dir), filename_suffix=".media")
    try:
        for name, mel in mels.items():
            writer.add_image(f"mel/{name}", mel_image(mel), step, dataformats="CHW")
        for name, wav in wavs.items():
            w = np.clip(np.asarray(wav, dtype=np.float32).reshape(-1), -1.0, 1.0)
            writer.add_audio(f"audio/{name}", torch.from_numpy(w)[None], step, sample_rate=SAMPLE_RATE)
        writer.add_text("media/utterance", f"validation utterance {uid}", step)
    finally:
        writer.close()
    return True
