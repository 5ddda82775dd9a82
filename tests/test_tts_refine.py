"""A refiner as a plug-in for another TTS model: its `<id>.npy` mels checked, DTW-aligned, trained on, refined.

The "other model" here is a fixed degradation of the reference mel (a time stretch by linear interpolation of
frames plus a blur across bands), so its lengths differ from the references' as a model run from text does.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

from ebtk.errors import EbtkError
from ebtk.tts.external import check_mel, dtw_align, dtw_path

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (corpus)")

TRAIN = ["train.steps=20", "train.batch_size=4", "train.log_every=10", "model.channels=8", "model.mults=[1,2]",
         "eval.n_test=1", "eval.dnsmos=false", "eval.steps=[1]", "eval.step_sizes=[1.0]", "eval.n_wavs=1",
         "data.n_val=1", "data.n_test=1", "data.n_unseen=0", "data.crop=32"]
STRETCHED = ("u0", "u2", "u4")  # these hypotheses are 15 % longer than their references; the others equal


def degrade(mel: np.ndarray, stretch: float) -> np.ndarray:
    """A rough "first stage" output: `mel` (80, T) time-stretched to round(T·stretch) frames (linear
    interpolation per band) and blurred across bands with a [1, 2, 1] / 4 kernel."""
    t = mel.shape[1]
    n = int(round(t * stretch))
    pos = np.linspace(0, t - 1, n)
    out = np.stack([np.interp(pos, np.arange(t), band) for band in mel])
    padded = np.pad(out, ((1, 1), (0, 0)), mode="edge")
    return ((padded[:-2] + 2 * padded[1:-1] + padded[2:]) / 4).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    from tts_fixtures import espeak_corpus

    return espeak_corpus(tmp_path_factory.mktemp("corpus") / "c")


@pytest.fixture(scope="module")
def hyp_dir(corpus, tmp_path_factory):
    from ebtk.tts.dataset import LJSpeechCorpus

    c = LJSpeechCorpus(corpus)
    d = tmp_path_factory.mktemp("hyps") / "fastspeech"
    d.mkdir()
    for uid in c.ids:
        np.save(d / f"{uid}.npy", degrade(c.mel(uid).numpy(), 1.15 if uid in STRETCHED else 1.0))
    return d


@pytest.fixture(scope="module")
def trained(corpus, hyp_dir, tmp_path_factory):
    """`ebtk train tts --objective delta data.path=C hypotheses.dir=H` for 20 steps, then `ebtk export`."""
    from ebtk.cli import main

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("runs") / "ext"
    assert main(["train", "tts", "--objective", "delta", "--out", str(run), "--quiet", f"data.path={corpus}",
                 f"hypotheses.dir={hyp_dir}", *TRAIN]) == 0
    bundle = run.parent / "refiner.pt"
    assert main(["export", str(run), str(bundle)]) == 0
    return run, bundle


# -- DTW ------------------------------------------------------------------------------------------------
def test_dtw_recovers_a_known_time_warp() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(-5, 2, size=(80, 50)).astype(np.float32)
    # stretch: a nonlinear warp, hypothesis frame j is reference frame warp[j]; every reference frame is used
    u = np.linspace(0, 1, 80)
    warp = np.minimum((50 * u**1.3).astype(int), 49)
    assert set(warp) == set(range(50)) and np.all(np.diff(warp) >= 0)
    hyp = ref[:, warp]
    path = dtw_path(hyp, ref)
    assert sorted(map(tuple, path)) == sorted((int(w), j) for j, w in enumerate(warp))
    assert np.array_equal(dtw_align(hyp, ref), ref)  # each reference frame: the mean of its (identical) copies
    # compression: every third reference frame dropped; kept frames land where they were, dropped ones on a neighbour
    kept = np.array([i for i in range(50) if i % 3 != 1])
    aligned = dtw_align(ref[:, kept], ref)
    assert aligned.shape == ref.shape
    assert np.array_equal(aligned[:, kept], ref[:, kept])
    for i in range(1, 50, 3):
        assert any(np.array_equal(aligned[:, i], ref[:, j]) for j in (i - 1, i + 1))
    # equal lengths are taken as aligned: returned unchanged even where DTW would warp
    shifted = np.roll(ref, 3, axis=1)
    assert np.array_equal(dtw_align(shifted, ref), shifted)


# -- the mel convention check ---------------------------------------------------------------------------
@needs_espeak
def test_convention_check_accepts_ebtk_mels_and_refuses_others(tmp_path) -> None:
    from ebtk.tts.audio import mel_spectrogram
    from tts_fixtures import espeak_wav

    wav = espeak_wav(tmp_path / "a.wav", "Would you like a cup of tea before we leave?")
    quiet = np.concatenate([np.zeros(len(wav), np.float32), 0.2 * wav, np.zeros(len(wav), np.float32)])
    for w in (wav, quiet):  # gain and a long silence do not matter
        mel = mel_spectrogram(torch.from_numpy(w)).numpy()
        assert check_mel(mel, "x.npy").shape == mel.shape
    # a rough model overshoots the largest value audio can give (ebtk's FM at 2 Euler steps reached 6.3)
    loud = mel_spectrogram(torch.from_numpy(wav)).numpy()
    assert check_mel(loud + (6.3 - loud.max()), "x.npy").shape == loud.shape
    mel = mel_spectrogram(torch.from_numpy(wav)).numpy()
    power = np.log(np.clip(np.exp(mel) ** 2, 1e-7, None))
    cases = {
        "log10": (mel / np.log(10), "log10"),
        "normalised": ((mel - mel.mean(1, keepdims=True)) / mel.std(1, keepdims=True), "normalised"),
        "power": (power, "power"),
        "decibels": (10 * np.log10(np.exp(mel) ** 2), "below ln"),
        "linear": (np.exp(mel) * 100, "maximum .* above 10"),
        "quiet linear": (np.exp(mel), "no quiet bins"),
        "bands": (mel[:64], "expected \\(80, T\\)"),
        "transposed": (mel.T.copy(), "save mel.T"),
        "integers": (mel.astype(np.int16), "int16"),
        "nan": (np.where(np.arange(mel.shape[1]) == 5, np.nan, mel).astype(np.float32), "NaN"),
        "empty": (np.zeros((80, 0), np.float32), "no frames"),
    }
    for name, (bad, needle) in cases.items():
        with pytest.raises(EbtkError, match=needle) as e:
            check_mel(bad, f"{name}.npy")
        assert str(e.value).startswith(f"{name}.npy: "), name


# -- train on external mels, export, refine -------------------------------------------------------------
def test_training_aligns_external_hypotheses_by_dtw(trained, corpus, hyp_dir) -> None:
    from ebtk.tasks.base import build_task
    from ebtk.train.checkpoint import load_checkpoint
    from ebtk.tts.dataset import LJSpeechCorpus

    run, _ = trained
    cfg = load_checkpoint(run / "checkpoint.pt")["config"]
    assert cfg["model"]["text_cond"] is False and cfg["acoustic"]["hyp_remedy"] == "none"
    h = build_task(cfg, run).hypotheses()
    c = LJSpeechCorpus(corpus)
    assert sorted(h["hyp"]) == sorted(c.ids) and h["n_aligned"] == len(STRETCHED)
    for uid in c.ids:
        ref = c.mel(uid).numpy()
        raw = np.load(hyp_dir / f"{uid}.npy")
        assert h["hyp"][uid].shape == ref.shape
        want = dtw_align(raw, ref) if uid in STRETCHED else raw
        assert np.array_equal(h["hyp"][uid].numpy(), want.astype(np.float16))


def test_refine_a_folder_into_mels_and_wavs(trained, hyp_dir, tmp_path, run_cli) -> None:
    import soundfile as sf

    import ebtk.tts
    from ebtk.tts.audio import HOP, SAMPLE_RATE

    _, bundle = trained
    b = torch.load(bundle, weights_only=True)
    assert b["kind"] == "refiner-only" and b["acoustic"] is None and b["frontend"] is None
    assert b["refiner"]["text_cond"] is False and b["refine"]["steps"] == 1
    out = tmp_path / "refined"
    code, stdout, err = run_cli("refine", bundle, hyp_dir, out, "--wav")
    assert code == 0, err
    assert "wrote 7 refined mels and 7 wavs" in stdout
    r = ebtk.tts.load_refiner(bundle)
    for f in sorted(hyp_dir.glob("*.npy")):
        hyp = np.load(f)
        got = np.load(out / f.name)
        assert got.shape == hyp.shape and got.dtype == np.float32 and np.isfinite(got).all()
        assert not np.array_equal(got, hyp)  # 20 steps moved the zero-initialised score off 0
        assert np.array_equal(r.refine(hyp), got)  # the library call is the command's computation
        info = sf.info(str(out / f"{f.stem}.wav"))
        assert info.samplerate == SAMPLE_RATE and info.frames == hyp.shape[1] * HOP
        audio, _ = sf.read(str(out / f"{f.stem}.wav"))
        assert np.sqrt(np.mean(audio**2)) > 0.01  # speech, not silence
    tensor = r.refine(torch.from_numpy(np.load(hyp_dir / "u1.npy")), steps=2, step_size=0.5)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (80, np.load(hyp_dir / "u1.npy").shape[1])
    # one file in, and the run dir works like its bundle
    code, _, err = run_cli("refine", trained[0], hyp_dir / "u1.npy", tmp_path / "one")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "one" / "u1.npy"), np.load(out / "u1.npy"))
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["u1.npy"]
    with pytest.raises(EbtkError, match="refiner-only"):
        ebtk.tts.load(bundle)


def _corrupt(kind: str, src, dst) -> str:  # noqa: ANN001
    """A copy of the hypotheses folder `src` at `dst` with u2.npy made bad in one way; returns the error's needle."""
    shutil.copytree(src, dst)
    f = dst / "u2.npy"
    mel = np.load(f)
    if kind == "missing":
        f.unlink()
        return "missing hypothesis"
    if kind == "bands":
        np.save(f, mel[:64])
        return r"shape \(64, "
    if kind == "nan":
        mel[3, 4] = np.nan
        np.save(f, mel)
        return "NaN"
    np.save(f, mel / np.log(10))  # log10
    return "log10"


BAD = ["missing", "bands", "nan", "log10"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_training_hypotheses_stop_before_training(kind, corpus, hyp_dir, tmp_path, run_cli) -> None:
    bad = tmp_path / "hyps"
    needle = _corrupt(kind, hyp_dir, bad)
    run = tmp_path / "run"
    code, _, err = run_cli("train", "tts", "--objective", "delta", "--out", run, "--quiet", f"data.path={corpus}",
                           f"hypotheses.dir={bad}", *TRAIN)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad / "u2.npy") in lines[0], err
    assert re.search(needle, lines[0]), lines[0]
    assert not (run / "checkpoint.pt").exists()


@pytest.mark.parametrize("kind", BAD[1:])
def test_bad_mels_to_refine_are_refused_before_anything_is_written(kind, trained, hyp_dir, tmp_path,
                                                                   run_cli) -> None:
    bad = tmp_path / "hyps"
    needle = _corrupt(kind, hyp_dir, bad)
    out = tmp_path / "out"
    code, _, err = run_cli("refine", trained[1], bad, out)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad / "u2.npy") in lines[0], err
    assert re.search(needle, lines[0]), lines[0]
    assert not out.exists()


def test_refine_output_and_input_paths_are_checked(trained, hyp_dir, tmp_path, run_cli) -> None:
    (tmp_path / "file").write_text("keep me")
    cases = [((hyp_dir, tmp_path / "file"), "exists and is not a folder"),
             ((hyp_dir, hyp_dir), "is the input folder"),
             ((tmp_path / "nothing", tmp_path / "o"), "input not found"),
             ((tmp_path / "file", tmp_path / "o"), "is not a .npy file"),
             ((tmp_path / "empty", tmp_path / "o"), "has no .npy files")]
    (tmp_path / "empty").mkdir()
    for (src, out), needle in cases:
        code, _, err = run_cli("refine", trained[1], src, out)
        assert code == 2 and err.startswith("error: ") and needle in err, err
    assert (tmp_path / "file").read_text() == "keep me" and not (tmp_path / "o").exists()


def test_external_config_is_checked(tmp_path) -> None:
    from ebtk.train.trainer import resolve_config

    cfg = resolve_config("tts", "delta", overrides=[f"data.path={tmp_path}", f"hypotheses.dir={tmp_path}"])
    assert cfg["model"]["text_cond"] is False and cfg["acoustic"]["hyp_remedy"] == "none"
    kept = resolve_config("tts", "delta", overrides=[f"data.path={tmp_path}", f"hypotheses.dir={tmp_path}",
                                                     "acoustic.hyp_remedy=noise"])
    assert kept["acoustic"]["hyp_remedy"] == "noise"
    for extra, needle in (([f"acoustic.checkpoint={tmp_path}"], "give one"),
                          (["acoustic.hyp_remedy=oof"], "needs an ebtk acoustic run")):
        with pytest.raises(EbtkError, match=needle):
            resolve_config("tts", "delta", overrides=[f"data.path={tmp_path}", f"hypotheses.dir={tmp_path}", *extra])
    with pytest.raises(EbtkError, match="needs data.path"):
        resolve_config("tts", "delta", overrides=[f"hypotheses.dir={tmp_path}"])
    with pytest.raises(EbtkError, match="refiner objectives"):
        resolve_config("tts", "fm", overrides=[f"data.path={tmp_path}", f"hypotheses.dir={tmp_path}"])


def test_a_text_conditioned_refiner_is_refused_for_given_mels() -> None:
    from ebtk.tts.bundle import read_bundle, shipped_model_path
    from ebtk.tts.refine_mels import MelRefiner

    path = shipped_model_path()
    if path is None:
        pytest.skip("no shipped model in this install")
    b = read_bundle(path)
    assert b["refiner"]["text_cond"] is True  # the shipped recipe conditions on the text encoding
    with pytest.raises(EbtkError, match="text encoding"):
        MelRefiner(b)
    with pytest.raises(EbtkError, match="no refiner"):
        MelRefiner({**b, "kind": "acoustic", "refiner": None})
