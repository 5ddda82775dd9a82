"""Speech metrics on real espeak-ng speech, cross-checked against the independent mel_cepstral_distance package."""

from __future__ import annotations

import numpy as np
import pytest

from ebtk.errors import EbtkError
from ebtk.metrics import speech as S
from tts_fixtures import SENTENCES, espeak_wav, needs_espeak


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("speech")
    return {
        "a": espeak_wav(d / "a.wav", SENTENCES[0]),
        "a_high": espeak_wav(d / "a_high.wav", SENTENCES[0], pitch=80),
        "b": espeak_wav(d / "b.wav", SENTENCES[2]),
        "dir": d,
    }


def test_freqt_is_the_sptk_warping():
    # alpha = 0 is the identity on the first coefficients; warping by alpha then -alpha returns the cepstrum
    c = np.zeros((1, 64))
    c[0, :6] = [0.5, -0.8, 0.3, 0.1, -0.05, 0.02]
    assert np.allclose(c[:, :25] @ np.eye(25), c[:, :25] @ S._freqt_matrix(25, 24, 0.0))
    warped = c @ S._freqt_matrix(64, 63, 0.42)
    back = warped @ S._freqt_matrix(64, 24, -0.42)
    assert np.allclose(back[0, :6], c[0, :6], atol=1e-3)


@needs_espeak
def test_mcd_self_zero_and_ordering(wavs):
    a, ah, b = wavs["a"], wavs["a_high"], wavs["b"]
    f0_a, mc_a = S.analyze(a)
    f0_h, mc_h = S.analyze(ah)
    f0_b, mc_b = S.analyze(b)
    self_m = S._path_metrics(f0_a, mc_a, f0_a, mc_a)
    assert self_m == {"mcd": 0.0, "logf0_rmse": 0.0, "vuv": 0.0}
    pitch = S._path_metrics(f0_a, mc_a, f0_h, mc_h)
    other = S._path_metrics(f0_a, mc_a, f0_b, mc_b)
    assert 0 < pitch["mcd"] < other["mcd"]
    assert pitch["logf0_rmse"] > 0.1  # espeak -p 80 vs -p 50 raises F0 by a good fraction of an octave
    for m in (pitch, other):
        assert 0.0 <= m["vuv"] <= 1.0
    # the public functions agree with the shared path
    assert S.mcd_dtw(a, ah) == pytest.approx(pitch["mcd"])

    # same recipe through mel_cepstral_distance's DTW + distance: identical up to the constant 10/ln10·√2
    from mel_cepstral_distance import compare_audio_files, compare_mfccs

    for mc_s, ours in ((mc_h, pitch["mcd"]), (mc_b, other["mcd"])):
        theirs, _ = compare_mfccs(mc_a.T, mc_s.T, s=1, D=25, dtw_radius=None)
        assert theirs * S.MCD_CONST == pytest.approx(ours, rel=1e-6)
    # and the package's own (MFCC, 20 bands) recipe orders the pairs the same way
    d = wavs["dir"]
    pkg_self = compare_audio_files(d / "a.wav", d / "a.wav")[0]
    pkg_pitch = compare_audio_files(d / "a.wav", d / "a_high.wav")[0]
    pkg_other = compare_audio_files(d / "a.wav", d / "b.wav")[0]
    assert pkg_self == 0.0 and pkg_pitch < pkg_other


@needs_espeak
def test_dnsmos_speech_vs_noise(wavs):
    speech = S.dnsmos(wavs["a"], 22050)
    assert set(speech) >= {"ovrl", "sig", "bak"}
    assert all(np.isfinite(v) and 1.0 <= v <= 5.0 for v in speech.values())
    noise = S.dnsmos(np.random.default_rng(0).normal(0, 0.1, 3 * 22050).astype(np.float32), 22050)
    assert noise["ovrl"] < speech["ovrl"]


def test_rtf_and_errors():
    assert S.rtf(1.0, 44100, 22050) == pytest.approx(0.5)
    with pytest.raises(EbtkError):
        S.rtf(1.0, 0)
    with pytest.raises(EbtkError, match="too short"):
        S.mcd_dtw(np.zeros(10, np.float32), np.zeros(10, np.float32))
    with pytest.raises(EbtkError, match="sample rate"):
        S.alpha_for(12345)


@needs_espeak
def test_evaluate_dirs(wavs, tmp_path):
    import shutil

    ref, syn = tmp_path / "ref", tmp_path / "syn"
    ref.mkdir()
    syn.mkdir()
    shutil.copy(wavs["dir"] / "a.wav", ref / "x.wav")
    shutil.copy(wavs["dir"] / "a_high.wav", syn / "x.wav")
    shutil.copy(wavs["dir"] / "b.wav", ref / "only_in_ref.wav")
    out = S.evaluate_dirs(ref, syn, with_dnsmos=False)
    assert out["n"] == 1 and out["mcd"] > 0 and list(out["per_file"]) == ["x.wav"]
    with pytest.raises(EbtkError, match="in common"):
        S.evaluate_dirs(ref, tmp_path)


@needs_espeak
def test_cli_evaluate_audio(wavs, tmp_path, run_cli):
    import json
    import shutil

    ref, syn = tmp_path / "ref", tmp_path / "syn"
    ref.mkdir()
    syn.mkdir()
    shutil.copy(wavs["dir"] / "a.wav", ref / "x.wav")
    shutil.copy(wavs["dir"] / "a.wav", syn / "x.wav")
    code, out, err = run_cli("evaluate-audio", ref, syn, "--out", tmp_path / "m.json", "--no-dnsmos")
    assert code == 0, err
    assert "mcd" in out and "x.wav" in out
    assert json.loads((tmp_path / "m.json").read_text())["mcd"] == 0.0
    code, _, err = run_cli("evaluate-audio", ref, tmp_path / "nope")
    assert code == 2 and "not a directory" in err
