"""`ebtk synthesize` and `ebtk.tts.load(...)`: the shipped default model, `--file` batches with per-line errors,
the options, batched == one-by-one, and streaming == whole-utterance vocoding. The vocoder is the real HiFi-GAN;
the acoustic model and refiner are tiny trained runs made as in test_tts_task (its corpus and settings)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from ebtk.errors import EbtkError

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (phonemes)")

LINES = ["Open the door.", "She has three cats and two dogs.", "Call me later!"]


@pytest.fixture(scope="module")
def delta_run(tmp_path_factory):
    """(run dir,) of a delta refiner (η 0.5, 10 steps) on a 30-step acoustic run, as test_tts_task's."""
    from ebtk.train.trainer import train
    from test_tts_task import SHORT, TINY
    from tts_fixtures import espeak_wav

    root = tmp_path_factory.mktemp("corpus") / "c"
    (root / "wavs").mkdir(parents=True)
    for k, text in enumerate(SHORT):
        espeak_wav(root / "wavs" / f"u{k}.wav", text, pitch=40 + 3 * k, rate=170 + 4 * k)
    (root / "metadata.csv").write_text("".join(f"u{k}|{t}|{t}\n" for k, t in enumerate(SHORT)))
    runs = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    train("tts", "acoustic", runs / "acoustic", overrides=[*TINY, f"data.path={root}"], progress=False)
    train("tts", "delta", runs / "delta", progress=False,
          overrides=[*TINY, "train.steps=10", f"acoustic.checkpoint={runs / 'acoustic'}", "objective.step_size=0.5",
                     "eval.step_sizes=[0.5]"])
    return (runs / "delta",)


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# -- the shipped model -------------------------------------------------------------------------------
def test_default_model_out_of_the_box(run_cli, tmp_path, monkeypatch) -> None:
    """No model argument: the model shipped as package data speaks, with an empty cache dir and no run dir;
    while no model is shipped, the one-line error says so and what to give instead."""
    import ebtk.tts
    from ebtk.tts.bundle import shipped_model_path

    monkeypatch.setenv("EBTK_CACHE_DIR", str(tmp_path / "empty_cache"))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("synthesize", "--text", "Hello, this is a test.", "--out", "x.wav")
    if shipped_model_path() is None:
        line = _one_error_line(err)
        assert code == 2 and "no model is shipped in this install" in line and "bundle" in line and \
            "run dir" in line
        with pytest.raises(EbtkError, match="no model is shipped"):
            ebtk.tts.load()
        assert not (tmp_path / "x.wav").exists()
    else:
        assert code == 0, err
        wav, sr = sf.read(tmp_path / "x.wav", dtype="float32")
        assert sr == 22050 and wav.ndim == 1 and len(wav) > sr // 2
        assert np.sqrt(np.mean(wav**2)) > 1e-3 and "RTF" in out


def test_missing_shipped_model_is_one_error_line(run_cli, tmp_path, monkeypatch) -> None:
    """The no-model error, checked even once a model ships (its file name pointed elsewhere)."""
    import ebtk.tts
    import ebtk.tts.bundle as bundle

    monkeypatch.setattr(bundle, "SHIPPED_MODEL", "data/no_such_model.pt")
    assert bundle.shipped_model_path() is None
    code, _, err = run_cli("synthesize", "--file", tmp_path / "l.txt", "--out-dir", tmp_path / "o")
    assert code == 2 and "text file not found" in _one_error_line(err)  # the file is read first
    (tmp_path / "l.txt").write_text("Hello.\n")
    code, _, err = run_cli("synthesize", "--file", tmp_path / "l.txt", "--out-dir", tmp_path / "o")
    assert code == 2 and "no model is shipped" in _one_error_line(err)
    with pytest.raises(EbtkError, match="no model is shipped in this install.*bundle.*run dir"):
        ebtk.tts.load(None)


# -- --file ------------------------------------------------------------------------------------------
def test_file_writes_one_wav_per_line_batched_as_one_by_one(delta_run, run_cli, tmp_path) -> None:
    """Three lines → 0001..0003.wav (batches of 2, so one batch is padded), one RTF line; each wav is the one
    `synthesize` gives for its line alone (PCM-16 rounding apart)."""
    import ebtk.tts

    run = delta_run[0]
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(LINES) + "\n\n")  # blank lines at the end of the file are not lines
    out_dir = tmp_path / "wavs"
    code, out, err = run_cli("synthesize", run, "--file", lines, "--out-dir", out_dir, "--batch-size", "2",
                             "--hypothesis")
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["0001.wav", "0001_hyp.wav", "0002.wav", "0002_hyp.wav",
                                                         "0003.wav", "0003_hyp.wav"]
    assert out.count("RTF") == 1 and "wrote 3 wavs" in out
    syn = ebtk.tts.load(run)
    for n, text in enumerate(LINES, 1):
        wav, sr = sf.read(out_dir / f"{n:04d}.wav", dtype="float32")
        alone = syn.synthesize(text)
        assert sr == 22050 and len(wav) == len(alone) and len(wav) % 256 == 0
        assert np.abs(wav - alone).max() < 1e-3  # 16-bit quantisation is 3e-5; a padding leak would be ~1e-2
        hyp, _ = sf.read(out_dir / f"{n:04d}_hyp.wav", dtype="float32")
        assert len(hyp) == len(wav) and not np.allclose(hyp, wav, atol=1e-3)


@pytest.mark.parametrize("bad", ["", "☃ ♪ ☃"], ids=["empty line", "only unknown symbols"])
def test_file_bad_line_is_one_error_naming_it_and_good_lines_are_written(delta_run, run_cli, tmp_path,
                                                                       bad) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text(f"{LINES[0]}\n{bad}\n{LINES[2]}\n")
    out_dir = tmp_path / "wavs"
    code, out, err = run_cli("synthesize", delta_run[0], "--file", lines, "--out-dir", out_dir)
    line = _one_error_line(err)
    assert code == 2 and "line 2" in line and "line 1" not in line and "line 3" not in line
    assert ("empty line" if not bad else "no known symbols") in line
    assert sorted(p.name for p in out_dir.iterdir()) == ["0001.wav", "0003.wav"]
    assert "wrote 2 wavs" in out and out.count("RTF") == 1


def test_options_length_scale_steps_and_api_batch(delta_run, run_cli, tmp_path) -> None:
    """--length-scale stretches the audio, --steps changes the refined wav; synthesize_batch == synthesize."""
    import ebtk.tts

    run = delta_run[0]
    syn = ebtk.tts.load(run)
    base = syn.synthesize(LINES[1])
    code, out, err = run_cli("synthesize", run, "--text", LINES[1], "--out", tmp_path / "slow.wav",
                             "--length-scale", "1.6", "--steps", "3", "--step-size", "0.5")
    assert code == 0, err
    assert out.count("RTF") == 1 and "3 refinement steps of size 0.5" in out
    slow, _ = sf.read(tmp_path / "slow.wav", dtype="float32")
    assert len(slow) > 1.3 * len(base)
    assert len(syn.synthesize(LINES[1], steps=3)) == len(base)
    assert not np.allclose(syn.synthesize(LINES[1], steps=3), base, atol=1e-3)
    batch = syn.synthesize_batch(LINES)
    for text, wav in zip(LINES, batch):
        alone = syn.synthesize(text)
        assert wav.dtype == np.float32 and len(wav) == len(alone) and np.abs(wav - alone).max() < 1e-4
    with pytest.raises(EbtkError, match="text 1 .*no known symbols"):
        syn.synthesize_batch([LINES[0], "☃"])


def test_padded_vocoder_batch_equals_one_by_one(delta_run) -> None:
    """`Vocoder.many(batch=True)` (the CUDA default): the padded batch, with each shorter mel's tail
    re-vocoded, gives what vocoding each mel alone gives; a mel shorter than the tail window too."""
    import ebtk.tts

    syn = ebtk.tts.load(delta_run[0])
    ids, errors = syn.encode_lines([*LINES, "Hi."])
    assert not errors
    mels = [m for _, m in syn.mels_batch(ids)]
    assert len({m.shape[-1] for m in mels}) == 4 and min(m.shape[-1] for m in mels) < 32
    for got, m in zip(syn.vocoder.many(mels, batch=True), mels):
        alone = syn.vocoder(m)
        assert got.shape == alone.shape and (got - alone).abs().max() < 1e-4


# -- streaming ---------------------------------------------------------------------------------------
def test_vocoder_reach_is_within_the_stated_receptive_field() -> None:
    """Perturb one mel frame: the torch generator's output changes only within ±RECEPTIVE_FIELD_FRAMES frames
    of it, and does change beyond 11 frames (so the stated reach is not padded either)."""
    from ebtk.tts.vocoder import CONTEXT_FRAMES, RECEPTIVE_FIELD_FRAMES, Vocoder, _probe_mel

    voc = Vocoder.load("cpu", backend="torch")
    mel = torch.cat([_probe_mel(), _probe_mel().flip(-1), _probe_mel()], -1)  # 72 frames
    c = 36
    bumped = mel.clone()
    bumped[..., c] += 1.0
    changed = torch.nonzero((voc(bumped)[0] - voc(mel)[0]).abs() > 0).flatten()
    left, right = (c * 256 - changed.min().item()) / 256, (changed.max().item() + 1 - (c + 1) * 256) / 256
    assert 11 < left <= RECEPTIVE_FIELD_FRAMES and 11 < right <= RECEPTIVE_FIELD_FRAMES
    assert CONTEXT_FRAMES >= RECEPTIVE_FIELD_FRAMES


def test_stream_matches_whole_utterance(delta_run) -> None:
    """Joined chunks = whole-utterance audio: max |diff| < 1e-4, MCD < 0.05 dB, no seam; the first chunk is
    the small one asked for. With a context below the vocoder's reach the join is visibly wrong."""
    import ebtk.tts
    from ebtk.metrics.speech import mcd_dtw

    syn = ebtk.tts.load(delta_run[0])
    text = "She has three cats and two dogs, and we left at noon."
    whole = syn.synthesize(text)
    chunks = list(syn.stream(text, chunk_frames=32, first_chunk_frames=4))
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    assert len(chunks[0]) == 4 * 256 and len(chunks[1]) == 8 * 256 and len(chunks) >= 4
    joined = np.concatenate(chunks)
    assert len(joined) == len(whole)
    diff = np.abs(joined - whole)
    assert diff.max() < 1e-4, diff.max()
    assert mcd_dtw(whole, joined) < 0.05
    seams = np.cumsum([len(c) for c in chunks])[:-1]  # no seam: around each join the audio is the whole's
    assert max(diff[s - 256:s + 256].max() for s in seams) < 1e-4
    short = np.concatenate(list(syn.stream(text, chunk_frames=32, first_chunk_frames=4, context_frames=4)))
    assert np.abs(short - whole).max() > 1e-3
    with pytest.raises(EbtkError, match="empty"):
        syn.stream("  ")


def test_demo_pretrained_section_plays_hypothesis_and_refined(delta_run, tmp_path, monkeypatch) -> None:
    """The demo's pretrained-model section on a bundle: per sentence a hypothesis and a refined player (distinct
    audio: the refiner moved the mel) and a mel plot; with no model it says so and returns False."""
    from ebtk.demo import DEMO_SENTENCES, pretrained_section
    from ebtk.report.html import Report
    from ebtk.tts.bundle import export

    bundle = export(delta_run[0], tmp_path / "model.pt")
    rep = Report("t")
    assert pretrained_section(tmp_path, rep, bundle)
    page = rep.render()
    assert page.count("<audio") == 2 * len(DEMO_SENTENCES) and page.count("<img") == len(DEMO_SENTENCES)
    out = tmp_path / "tts" / "pretrained"
    hyp, _ = sf.read(out / "01_hypothesis.wav", dtype="float32")
    ref, sr = sf.read(out / "01_refined.wav", dtype="float32")
    assert sr == 22050 and len(hyp) == len(ref) and np.abs(hyp - ref).max() > 1e-3
    import ebtk.tts.bundle as b

    empty = Report("t")
    monkeypatch.setattr(b, "shipped_model_path", lambda: None)
    assert not pretrained_section(tmp_path / "none", empty, None)
    assert "No pretrained TTS model ships" in empty.render()
