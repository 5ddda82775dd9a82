"""The `tts` task end to end on a tiny synthesized corpus: acoustic run → hypotheses → refiners → synthesis."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import ebtk.objectives.acoustic  # noqa: F401  (registers `acoustic`; builtins lists it too once wired)
import ebtk.objectives.fm  # noqa: F401
from ebtk.energy import ScoreModel
from ebtk.errors import EbtkError

pytestmark = pytest.mark.skipif(shutil.which("flite") is None or shutil.which("espeak-ng") is None,
                                reason="needs flite (corpus) and espeak-ng (phonemes)")

TINY = ["train.steps=30", "train.batch_size=4", "train.log_every=10", "acoustic.channels=32",
        "acoustic.enc_layers=1", "acoustic.dec_layers=2", "model.channels=8", "eval.n_test=1",
        "eval.dnsmos=false", "eval.steps=[1]", "eval.step_sizes=[1.0]", "eval.fm_steps=[2]",
        "eval.n_wavs=1", "data.n_val=1", "data.n_test=1", "data.crop=32"]


SHORT = ["Open the door.", "It is cold today.", "She has three cats.", "We left at noon.", "Call me later!",
         "Tea, or coffee?", "The sky was blue."]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Seven short real espeak-ng utterances (about a second each: vocoding is the slow part) in LJSpeech
    layout. The built-in flite corpus path is tested separately (test_builtin_corpus_is_made_on_first_use)."""
    from tts_fixtures import espeak_wav

    root = tmp_path_factory.mktemp("corpus") / "c"
    (root / "wavs").mkdir(parents=True)
    lines = []
    for k, text in enumerate(SHORT):
        espeak_wav(root / "wavs" / f"u{k}.wav", text, pitch=40 + 3 * k, rate=170 + 4 * k)
        lines.append(f"u{k}|{text}|{text}\n")
    (root / "metadata.csv").write_text("".join(lines))
    return root


@pytest.fixture(scope="module")
def acoustic_run(corpus, tmp_path_factory):
    from ebtk.train.trainer import train

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("runs") / "acoustic"
    metrics = train("tts", "acoustic", out, overrides=[*TINY, f"data.path={corpus}"], progress=False)
    return out, metrics


def refiner_task(name: str, kind: str, acoustic_dir, extra: tuple[str, ...] = ()):  # noqa: ANN001, ANN201
    from ebtk.tasks.base import build_task
    from ebtk.train.trainer import resolve_config

    cfg = resolve_config("tts", name, overrides=[*TINY, f"acoustic.checkpoint={acoustic_dir}",
                                                 f"model.kind={kind}", *extra])
    return cfg, build_task(cfg)


def test_acoustic_run_writes_frame_aligned_hypotheses(acoustic_run, corpus) -> None:
    from ebtk.tts.dataset import LJSpeechCorpus

    out, metrics = acoustic_run
    h = torch.load(out / "hypotheses.pt", weights_only=True)
    c = LJSpeechCorpus(corpus)
    ids = [i for split in ("train", "val", "test") for i in h["splits"][split]]
    assert sorted(ids) == sorted(c.ids)
    for uid in ids:  # ground-truth durations: every hypothesis has exactly its reference's frame count
        t = c.mel(uid).shape[-1]
        assert h["hyp"][uid].shape == (80, t) and h["text"][uid].shape == (80, t)
        assert int(h["durations"][uid].sum()) == t
    # the dropout remedy: MC-dropout hypotheses exist for (and only for) the training split and differ
    assert set(h["hyp_dropout"]) == set(h["splits"]["train"])
    uid = h["splits"]["train"][0]
    assert not torch.equal(h["hyp_dropout"][uid], h["hyp"][uid])
    for k in ("mel_mse_train", "mel_mse_train_dropout", "mel_mse_val", "mcd_hyp", "logf0_rmse_hyp", "vuv_hyp"):
        assert metrics[k] is not None and np.isfinite(metrics[k]), k
    assert metrics["task"] == "tts" and metrics["objective"] == "acoustic"
    assert (out / "eval_table.md").is_file() and (out / "mels.png").is_file()


@pytest.mark.parametrize("name", ["delta", "ssm", "nce", "sa-nce", "ssm+delta"])
@pytest.mark.parametrize("kind", ["score", "energy"])
def test_refiner_objectives_train_a_step_or_refuse(acoustic_run, name: str, kind: str) -> None:
    from ebtk.objectives.base import build_objective

    cfg, task = refiner_task(name, kind, acoustic_run[0])
    model = task.build_model(name)
    assert model.kind == kind
    obj = build_objective(name, cfg["objective"], cfg["sampler"], task)
    if kind == "score" and name in ("nce", "sa-nce"):
        with pytest.raises(EbtkError, match="scalar energy"):
            obj.check_model(model)
        return
    obj.check_model(model)
    obj.setup(model)
    batch = task.train_batch(torch.Generator().manual_seed(0), 3)
    assert batch.x.shape == batch.hyp.shape == (3, 80, 32) and batch.mask.shape == (3, 1, 32)
    out = obj(model, batch)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    grads = [p.grad.abs().sum() for p in model.parameters() if p.grad is not None]
    assert grads and float(sum(grads)) > 0


def test_refiner_needs_an_acoustic_run(tmp_path) -> None:
    from ebtk.tasks.base import build_task
    from ebtk.train.trainer import resolve_config

    task = build_task(resolve_config("tts", "delta", overrides=TINY))
    with pytest.raises(EbtkError, match="acoustic.checkpoint"):
        task.build_model("delta")
    _, task = refiner_task("delta", "score", tmp_path)
    with pytest.raises(EbtkError, match="hypotheses.pt"):
        task.build_model("delta")


class ExactDelta(ScoreModel):
    """The ideal delta-trained score: the constant field reference − hypothesis (closed form)."""

    def __init__(self, ref: torch.Tensor):
        super().__init__()
        self.ref = ref
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, cond=None) -> torch.Tensor:  # noqa: ANN001
        return self.ref - cond["hyp"]


def test_exact_score_recovers_the_reference(acoustic_run) -> None:
    from ebtk.tts.evaluate import Scorer
    from ebtk.tts.refiner import refine

    _, task = refiner_task("delta", "score", acoustic_run[0])
    uid = task.splits()["test"][0]
    ref = task.mel(uid)[None]
    hyp = task.hypotheses()["hyp"][uid].float()[None]
    assert (ref - hyp).abs().max() > 0.1  # the hypothesis is not already the reference
    model = ExactDelta(ref)
    for steps, eta in ((1, 1.0), (4, 0.25)):
        y, _ = refine(model, hyp, steps, eta)
        assert torch.allclose(y, ref, atol=1e-5)  # mel-level distortion 0
    scorer = Scorer(task, [uid], dnsmos=False)  # against the recorded wav, as the evaluation does
    voc = scorer.score("vocoded reference", [ref[0]])
    refined = scorer.score("refined", [refine(model, hyp, 1, 1.0)[0][0]], steps=1, step_size=1.0)
    assert refined["mel_mse"] == pytest.approx(0.0, abs=1e-10)
    assert refined["mcd"] == pytest.approx(voc["mcd"], abs=1e-3)  # equal up to float rounding
    assert refined["logf0_rmse"] == pytest.approx(voc["logf0_rmse"], abs=1e-3)


def test_refiner_run_evaluates_and_synthesizes(acoustic_run, tmp_path) -> None:
    from ebtk.train.trainer import train
    from ebtk.tts.audio import SAMPLE_RATE
    from ebtk.tts.synthesize import synthesize

    out = tmp_path / "delta"
    metrics = train("tts", "delta", out, overrides=[*TINY, "train.steps=10", f"acoustic.checkpoint={acoustic_run[0]}"],
                    progress=False)
    for k in ("mcd_hyp", "mcd_refined", "logf0_rmse_hyp", "logf0_rmse_refined", "vuv_hyp", "vuv_refined",
              "dnsmos_hyp", "dnsmos_refined", "rtf", "refine_steps"):
        assert k in metrics
    assert metrics["refine_steps"] == 1 and metrics["rtf"] > 0 and np.isfinite(metrics["mcd_refined"])
    table = json.loads((out / "eval_table.json").read_text())["rows"]
    assert {(r["system"], r["steps"]) for r in table} == {("vocoded reference", None), ("hypothesis", 0),
                                                          ("refined", 1)}
    assert "| refined | 1 | 1.00 |" in (out / "eval_table.md").read_text()
    assert (out / "mels.png").is_file() and list((out / "wavs").glob("*_refined_k1_eta1.wav"))
    _check_study_table(out, table)

    import soundfile as sf

    wav_path = tmp_path / "say.wav"
    res = synthesize(out, "Dr. Smith paid $3.50, twice!", wav_path, steps=2, step_size=0.5,
                     write_hypothesis=True, quiet=True)
    wav, sr = sf.read(wav_path)
    assert sr == SAMPLE_RATE and wav.ndim == 1 and len(wav) == res["frames"] * 256
    assert np.sqrt(np.mean(wav**2)) > 1e-3 and res["steps"] == 2 and res["rtf"] > 0
    hyp_wav, _ = sf.read(res["hypothesis"])
    assert len(hyp_wav) == len(wav) and not np.allclose(hyp_wav, wav)  # two refinement steps changed it
    with pytest.raises(EbtkError, match="text"):
        synthesize(out, "  ", wav_path)


def test_flow_matching_run(corpus, tmp_path) -> None:
    from ebtk.train.trainer import train

    out = tmp_path / "fm"
    metrics = train("tts", "fm", out, overrides=[*TINY, "train.steps=10", f"data.path={corpus}"], progress=False)
    assert metrics["refine_steps"] == 2 and np.isfinite(metrics["mcd_refined"]) and metrics["mcd_hyp"] is None
    rows = json.loads((out / "eval_table.json").read_text())["rows"]
    assert [r["steps"] for r in rows if r["system"] == "flow matching"] == [2]


def test_flow_matching_starts_from_the_acoustic_encoder_and_can_freeze_it(acoustic_run, corpus, tmp_path) -> None:
    from ebtk.tasks.base import build_task
    from ebtk.train.checkpoint import load_checkpoint
    from ebtk.train.trainer import load_run, resolve_config, train

    ac = load_checkpoint(acoustic_run[0] / "checkpoint.pt")["model"]
    shared = [k for k in ac if not k.startswith("decoder.")]
    assert shared and any(k.startswith("encoder.") for k in shared)
    over = [*TINY, "train.steps=3", f"data.path={corpus}", f"acoustic.checkpoint={acoustic_run[0]}"]
    def fm_model(overrides: list[str]) -> tuple[object, torch.nn.Module]:  # as the trainer builds a fresh run's
        task = build_task(resolve_config("tts", "fm", overrides=overrides))
        model = task.build_model("fm")
        task.init_weights(model)
        return task, model

    fresh = fm_model(over)[1].state_dict()
    assert all(torch.equal(fresh[k], ac[k]) for k in shared)  # warm start: every non-decoder weight

    out = tmp_path / "fm-frozen"
    train("tts", "fm", out, overrides=[*over, "acoustic.freeze=true"], progress=False)
    _, _, model, _, step = load_run(out)
    trained = model.state_dict()
    assert step == 3 and all(torch.equal(trained[k], ac[k]) for k in shared)  # frozen: untouched
    task, frozen = fm_model([*over, "acoustic.freeze=true"])
    frozen.eval()
    b = task.train_batch(torch.Generator().manual_seed(0), 2)  # decoder crops of (reference, μ_y)
    assert b.x.shape == b.cond["text"].shape == (2, 80, 32) and "phonemes" not in b.cond
    uid = task.splits()["test"][0]
    h = task.hypotheses()
    mu_y = frozen.hypothesis(*[t[None] for t in (task.phonemes([uid])[0], torch.tensor(len(h["durations"][uid])),
                                                  h["durations"][uid])])[1][0]
    assert torch.allclose(mu_y, h["text"][uid].float(), atol=2e-2)  # the frozen encoder's own μ_y (fp16 store)
    trainable = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("decoder.") for n in trainable)  # the decoder alone is optimised
    assert trainable == {n for n, _ in frozen.named_parameters() if n.startswith("decoder.")}

    with pytest.raises(EbtkError, match="needs acoustic.checkpoint"):
        build_task(resolve_config("tts", "fm", overrides=[*TINY, f"data.path={corpus}", "acoustic.freeze=true"]
                                  )).build_model("fm")
    with pytest.raises(EbtkError, match="does not fit"):
        fm_model([*over, "acoustic.channels=48"])
    # a finished run loads from its own checkpoint alone: the acoustic run may be gone
    shutil.move(acoustic_run[0] / "checkpoint.pt", tmp_path / "ac.pt")
    try:
        _, _, again, _, _ = load_run(out)
    finally:
        shutil.move(tmp_path / "ac.pt", acoustic_run[0] / "checkpoint.pt")
    assert all(torch.equal(again.state_dict()[k], v) for k, v in trained.items())


def test_builtin_corpus_is_made_on_first_use(tmp_path, monkeypatch) -> None:
    from ebtk.tasks.base import build_task
    from ebtk.train.trainer import resolve_config

    monkeypatch.setenv("EBTK_CACHE_DIR", str(tmp_path))
    task = build_task(resolve_config("tts", "acoustic", overrides=["data.n_utts=5", "data.n_val=1", "data.n_test=1"]))
    path = task.corpus_path()
    assert path.parent == tmp_path.resolve() and len((path / "metadata.csv").read_text().splitlines()) == 5
    assert task.corpus_path() == path  # the second call reuses it
    assert sorted(sum(task.splits().values(), [])) == sorted(task.corpus.ids)


def _tree(d) -> dict[str, bytes]:  # noqa: ANN001
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", ["text with only unknown symbols", "missing corpus files",
                                  "acoustic.checkpoint from another task", "checkpoint from another task"])
def test_tts_bad_input_one_line_error_and_run_dir_untouched(run_cli, acoustic_run, corpus, tmp_path, case) -> None:
    from ebtk.cli import main

    run = tmp_path / "acoustic"  # a copy: the module's run must stay usable by the other tests
    shutil.copytree(acoustic_run[0], run)
    toy = tmp_path / "toy"
    assert main(["train", "toy2d", "--objective", "cd", "--steps", "2", "--out", str(toy), "--quiet",
                 "train.batch_size=64", "sampler.steps=5", "eval.grid=20", "eval.n_samples=100"]) == 0
    if case == "text with only unknown symbols":
        argv, needle = ["synthesize", run, "--text", "☃ ♪ ☃", "--out", tmp_path / "x.wav"], "no known symbols"
    elif case == "missing corpus files":
        broken = tmp_path / "broken"
        shutil.copytree(corpus, broken)
        (broken / "wavs" / "u3.wav").unlink()
        argv = ["train", "tts", "--objective", "acoustic", "--out", run, "--quiet", *TINY, f"data.path={broken}"]
        needle = "missing audio file"
    elif case == "acoustic.checkpoint from another task":
        argv = ["train", "tts", "--objective", "delta", "--out", tmp_path / "r", "--quiet", *TINY,
                f"acoustic.checkpoint={toy}"]
        needle = "not a `tts --objective acoustic` run"
    else:
        shutil.copy(toy / "checkpoint.pt", run / "checkpoint.pt")
        argv, needle = ["evaluate", run], "is from task 'toy2d'"
    before = _tree(run)
    code, _, err = run_cli(*argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], err
    assert _tree(run) == before
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "r" / "checkpoint.pt").exists()


def _check_study_table(run, rows) -> None:  # noqa: ANN001
    """benchmarks/tts_study.py merges a run's eval table: hypothesis first, ΔMCD relative to it."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "tts_study.py"
    spec = importlib.util.spec_from_file_location("bench_tts_study", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    md = mod.table(run.parent, [run.name]).splitlines()
    hyp = next(r for r in rows if r["system"] == "hypothesis")
    ref = next(r for r in rows if r["system"] == "refined")
    assert md[2].startswith("| vocoded reference |") and md[3].startswith("| hypothesis | acoustic | 0 |")
    assert md[4].startswith(f"| refined | {run.name} (") and f"| {ref['mcd']:.2f} |" in md[4]
    assert f"| {100 * (ref['mcd'] - hyp['mcd']) / hyp['mcd']:+.1f} % |" in md[4]
    m = json.loads((run / "metrics.json").read_text())
    assert f"| refined | {run.name} ({m['steps']} steps, " in md[4]
    assert md[4].endswith(f"| {m['rtf_refine']:.3f} |")  # mel-stage RTF (vocoder excluded), as FM's rows
