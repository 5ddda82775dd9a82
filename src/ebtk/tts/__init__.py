"""Speech side of ebtk: audio I/O and mels, vocoder, text front-end, corpora, models and inference bundles.

Kept import-light: import the submodules (`ebtk.tts.audio`, `ebtk.tts.vocoder`, ...) where needed, so that
`import ebtk.tts` costs nothing when only the EBM studies are used.

Inference: ``ebtk.tts.load(path).synthesize("Hello.")`` with `path` a bundle from ``ebtk export`` or a tts
run dir gives a float32 waveform at 22 050 Hz (see ebtk.tts.bundle); ``ebtk.tts.load()`` loads the model
shipped with ebtk. ``.synthesize_batch(texts)`` speaks many texts as one batch and ``.stream(text)`` yields
audio chunks as they are vocoded.

Another model's mels: ``ebtk.tts.load_refiner(path).refine(mel)`` refines a log-mel (80, T) in ebtk's
convention with a refiner trained on that model's mels (ebtk.tts.refine_mels, `ebtk refine`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ebtk.tts.bundle import Synthesizer
    from ebtk.tts.refine_mels import MelRefiner


def load(path: str | Path | None = None, device: Any = "cpu") -> Synthesizer:
    """Load a text-to-speech model: a bundle file (``ebtk export``), a tts run dir, or the shipped model.

    ``ebtk.tts.load().synthesize("Hello.")`` speaks with the model shipped as package data.

    Args:
        path: a bundle file or a tts run dir; None = the shipped model (``ebtk/data/tts_model.pt``).
        device: where the models run ("cpu", "cuda", a ``torch.device``).

    Returns:
        A `Synthesizer` (ebtk.tts.bundle.Synthesizer).

    Raises:
        EbtkError: the file is missing, corrupt or not an ebtk bundle; the run dir is not a tts run; or no
            path was given and this install ships no model.
    """
    from ebtk.tts.bundle import load as _load

    return _load(path, device)


def load_refiner(path: str | Path, device: Any = "cpu") -> MelRefiner:
    """Load a refiner for log-mels you already have (another TTS model's output, say).

    `load_refiner(path).refine(mel)` takes a (80, T) log-mel in HiFi-GAN's convention (numpy or torch) and
    returns the refined (80, T) mel; `.vocode(mel)` speaks it. See `ebtk.tts.refine_mels.MelRefiner`.

    Args:
        path: a bundle file (`ebtk export` of a refiner run) or a tts refiner run dir, whose refiner
            conditions on the hypothesis only (``model.text_cond=false``).
        device: where the refiner and the vocoder run ("cpu", "cuda", a ``torch.device``).

    Returns:
        A `MelRefiner` (ebtk.tts.refine_mels.MelRefiner).

    Raises:
        EbtkError: the file is missing, corrupt or not an ebtk bundle; the run dir is not a tts refiner
            run; the bundle has no refiner, or a text-conditioned one.
    """
    from ebtk.tts.refine_mels import load_refiner as _load

    return _load(path, device)


__all__ = ["load", "load_refiner"]
