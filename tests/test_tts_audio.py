"""Audio I/O, the vocoder-matched mel, and the HiFi-GAN vocoder on real (espeak-ng) speech."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from ebtk.errors import EbtkError
from ebtk.tts import audio
from ebtk.tts.audio import HOP, SAMPLE_RATE, load_wav, mel_spectrogram, save_wav
from tts_fixtures import SENTENCES, espeak_wav, needs_espeak


def _reference_mel(wav: np.ndarray) -> np.ndarray:
    """Independent computation with librosa: |STFT| (hann, centre, reflect) -> Slaney mel -> ln(clamp 1e-7)."""
    import librosa

    spec = librosa.stft(wav.astype(np.float64), n_fft=1024, hop_length=256, win_length=1024, window="hann",
                        center=True, pad_mode="reflect")
    mag = np.sqrt(np.abs(spec) ** 2 + 1e-9)
    basis = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0, norm="slaney")
    return np.log(np.maximum(basis @ mag, 1e-7))


def test_mel_matches_librosa_reference_and_frame_count():
    rng = np.random.default_rng(0)
    t = np.arange(20_000) / SAMPLE_RATE
    wav = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    mel = mel_spectrogram(torch.from_numpy(wav))
    ref = _reference_mel(wav)
    assert mel.shape == (80, 20_000 // HOP + 1) == ref.shape
    assert np.max(np.abs(mel.numpy() - ref)) < 1e-3
    batch = mel_spectrogram(torch.from_numpy(np.stack([wav, wav[::-1].copy()])))
    assert batch.shape == (2, 80, 20_000 // HOP + 1)
    assert torch.allclose(batch[0], mel, atol=1e-5)
    for n in (100, 513, 1024, 25_600):
        assert mel_spectrogram(torch.zeros(n)).shape[-1] == n // HOP + 1
    # digital silence: the 1e-9 magnitude epsilon sets the floor (about -13.4), above the ln(1e-7) clamp
    sil = mel_spectrogram(torch.zeros(4096))
    assert torch.isfinite(sil).all() and (sil == sil[:, :1]).all()
    assert audio.LOG_FLOOR < sil.min() and sil.max() < -13.0


def test_save_load_roundtrip_and_resample_warning(tmp_path):
    wav = (0.5 * np.sin(np.linspace(0, 400, 22050))).astype(np.float32)
    p = tmp_path / "a.wav"
    save_wav(p, wav)
    info = sf.info(str(p))
    assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
    assert not list(tmp_path.glob(".*tmp"))
    back = load_wav(p)
    assert back.dtype == np.float32 and np.max(np.abs(back - wav)) < 1e-4
    sf.write(str(tmp_path / "b.wav"), np.stack([wav[:16000], wav[:16000]], 1), 16000)
    with pytest.warns(UserWarning, match="resampling"):
        b = load_wav(tmp_path / "b.wav")
    assert b.ndim == 1 and abs(len(b) - 22050) <= 1


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(EbtkError, match="nope.wav"):
        load_wav(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(EbtkError, match="bad.wav"):
        load_wav(bad)


@needs_espeak
def test_vocoder_resynthesis_is_close(tmp_path):
    from ebtk.metrics.speech import mcd_dtw
    from ebtk.tts.vocoder import Vocoder

    torch.set_num_threads(1)
    a = espeak_wav(tmp_path / "a.wav", SENTENCES[0])
    b = espeak_wav(tmp_path / "b.wav", SENTENCES[1])
    voc = Vocoder.load("cpu", "LJSpeech")
    mel = mel_spectrogram(torch.from_numpy(a))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation noise leaks out of the vocoder
        y = voc(mel)
    assert y.shape == (mel.shape[-1] * HOP,) and y.abs().max() <= 1.0
    assert voc(mel.unsqueeze(0).repeat(2, 1, 1)).shape == (2, mel.shape[-1] * HOP)
    y = y.numpy()[: len(a)]
    same, other = mcd_dtw(a, y), mcd_dtw(b, y)
    assert same < 8.0, same
    assert other > same + 4.0, (same, other)
    with pytest.raises(EbtkError):
        voc(torch.zeros(3, 40, 10))
    with pytest.raises(EbtkError, match="weights"):
        Vocoder.load(weights="nope")
