"""The ONNX Runtime vocoder backend against the eager torch generator, its cache, and its fallbacks."""

from __future__ import annotations

import sys

import pytest
import torch

from ebtk.errors import EbtkError
from ebtk.tts.audio import HOP, mel_spectrogram
from tts_fixtures import SENTENCES, espeak_wav, needs_espeak

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """One export per test module, in a private cache dir (never the user's)."""
    d = tmp_path_factory.mktemp("ebtk-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("EBTK_CACHE_DIR", str(d))
    torch.set_num_threads(1)
    yield d
    mp.undo()


@pytest.fixture(scope="module")
def vocoders(cache_dir):
    from ebtk.tts.vocoder import Vocoder

    return Vocoder.load("cpu", backend="torch"), Vocoder.load("cpu", backend="onnx")


@needs_espeak
def test_onnx_matches_torch_on_real_speech(tmp_path, vocoders):
    from ebtk.metrics.speech import mcd_dtw

    ref_voc, fast = vocoders
    assert ref_voc.backend == "torch" and fast.backend == "onnx" and fast.onnx_path.is_file()
    wav = espeak_wav(tmp_path / "a.wav", "Seven silver spoons.")
    mel = mel_spectrogram(torch.from_numpy(wav))[:, :96]  # ~1.1 s keeps the eager reference quick
    ref, out = ref_voc(mel), fast(mel)
    assert out.shape == ref.shape == (mel.shape[-1] * HOP,)
    assert (out - ref).abs().max().item() < 1e-3
    assert mcd_dtw(ref.numpy(), out.numpy()) < 0.3


@needs_espeak
def test_onnx_dynamic_batch_and_length(tmp_path, vocoders):
    """Another batch size and length than the export's probe: each row equals the torch row."""
    ref_voc, fast = vocoders
    mels = [mel_spectrogram(torch.from_numpy(espeak_wav(tmp_path / f"{i}.wav", s[:20])))
            for i, s in enumerate(SENTENCES[:2])]
    n = min(40, *(m.shape[-1] for m in mels))
    batch = torch.stack([m[:, :n] for m in mels])
    out = fast(batch)
    assert out.shape == (2, n * HOP)
    assert (out - ref_voc(batch)).abs().max().item() < 1e-3


def test_cache_is_reused_and_a_corrupt_file_is_reexported(cache_dir, vocoders):
    from ebtk.tts.vocoder import Vocoder, _probe_mel

    _, fast = vocoders
    path = fast.onnx_path
    assert path.parent == cache_dir / "vocoder"
    mtime = path.stat().st_mtime_ns
    again = Vocoder.load("cpu", backend="auto")
    assert again.backend == "onnx" and again.onnx_path == path and path.stat().st_mtime_ns == mtime
    path.write_bytes(b"not an onnx graph")  # e.g. a disk-full partial write
    healed = Vocoder.load("cpu", backend="onnx")
    assert healed.backend == "onnx" and path.stat().st_size > 10_000_000
    mel = _probe_mel()
    with torch.inference_mode():
        ref = healed.generator(mel).squeeze(1)
    assert (healed(mel) - ref).abs().max().item() < 1e-3


def test_auto_falls_back_to_torch_without_onnxruntime(monkeypatch, cache_dir):
    from ebtk.tts.vocoder import Vocoder, _probe_mel

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    voc = Vocoder.load("cpu", backend="auto")
    assert voc.backend == "torch" and voc.session is None and "onnxruntime" in voc.fallback
    mel = _probe_mel()
    with torch.inference_mode():
        expected = voc.generator(mel).squeeze(1).clamp(-1, 1)
    assert torch.equal(voc(mel), expected)
    with pytest.raises(EbtkError, match="onnxruntime"):
        Vocoder.load("cpu", backend="onnx")


def test_backend_errors():
    from ebtk.tts.vocoder import Vocoder

    with pytest.raises(EbtkError, match="backend"):
        Vocoder.load("cpu", backend="tensorrt")
    with pytest.raises(EbtkError, match="CPU only"):
        Vocoder.load("meta", backend="onnx")
