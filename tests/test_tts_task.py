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
from tts_fixtures import SHORT

pytestmark = pytest.mark.skipif(shutil.which("flite") is None or shutil.which("espeak-ng") is None,
                                reason="needs flite (corpus) and espeak-ng (phonemes)")

TINY = ["train.steps=30", "train.batch_size=4", "train.log_every=10", "acoustic.channels=32",
        "acoustic.enc_layers=1", "acoustic.dec_layers=2", "model.channels=8", "eval.n_test=1",
        "eval.dnsmos=false", "eval.steps=[1]", "eval.step_sizes=[1.0]", "eval.fm_steps=[2]",
        "eval.n_wavs=1", "data.n_val=1", "data.n_test=1", "data.n_unseen=0", "data.crop=32"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Seven short real espeak-ng utterances in LJSpeech layout (tts_fixtures.espeak_corpus). The built-in
    flite corpus path is tested separately (test_builtin_corpus_is_made_on_first_use)."""
    from tts_fixtures import espeak_corpus

    return espeak_corpus(tmp_path_factory.mktemp("corpus") / "c")


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
    cfg, task = refiner_task(name, kind, acoustic_run[0])
    model = task.build_model(name)
    assert model.kind == kind
    obj = task.build_objective()
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


def test_out_of_fold_hypotheses_come_from_the_run_that_did_not_train_on_them(acoustic_run, corpus,
                                                                            tmp_path) -> None:
    from ebtk.tasks.base import build_task
    from ebtk.train.trainer import resolve_config, train
    from ebtk.tts.config import train_part_of

    folds = []
    for k in (0, 1):
        d = tmp_path / f"fold{k}"
        train("tts", "acoustic", d, overrides=[*TINY, "train.steps=2", f"data.path={corpus}",
                                               f"data.train_part={k}/2"], progress=False)
        folds.append(d)
    full = build_task(resolve_config("tts", "acoustic", overrides=[*TINY, f"data.path={corpus}"]))
    parts = [build_task(resolve_config("tts", "acoustic", overrides=[*TINY, f"data.path={corpus}",
                                                                    f"data.train_part={k}/2"])).train_ids()
             for k in (0, 1)]
    assert parts[0] and parts[1] and not set(parts[0]) & set(parts[1])  # the parts split the training set
    assert sorted(parts[0] + parts[1]) == sorted(full.train_ids())
    _, task = refiner_task("delta", "score", acoustic_run[0],
                           ("acoustic.hyp_remedy=oof", f"acoustic.oof_runs=[{folds[0]},{folds[1]}]"))
    oof = task.oof_hypotheses()
    assert sorted(oof) == sorted(task.train_ids())
    for uid, hyp in oof.items():  # each from the model that did not see it, never the main run's
        part = train_part_of(uid, 2)
        assert uid in parts[part]
        other = torch.load(folds[1 - part] / "hypotheses.pt", weights_only=True)["hyp"][uid]
        assert torch.equal(hyp, other)
        assert not torch.equal(hyp, task.hypotheses()["hyp"][uid])
    batch = task.train_batch(torch.Generator().manual_seed(0), 3)
    assert batch.hyp.shape == (3, 80, 32) and torch.isfinite(batch.hyp).all()
    for extra, needle in (((f"acoustic.oof_runs=[{folds[0]},{folds[0]}]",), "cover the parts"),
                          ((f"acoustic.oof_runs=[{folds[0]},{acoustic_run[0]}]",), "whole training split")):
        _, bad = refiner_task("delta", "score", acoustic_run[0], ("acoustic.hyp_remedy=oof", *extra))
        with pytest.raises(EbtkError, match=needle):
            bad.oof_hypotheses()
    with pytest.raises(EbtkError, match="oof_runs"):
        refiner_task("delta", "score", acoustic_run[0], ("acoustic.hyp_remedy=oof",))
    with pytest.raises(EbtkError, match="train_part"):
        resolve_config("tts", "acoustic", overrides=[*TINY, "data.train_part=2/2"])


def test_fresh_dropout_hypotheses_are_new_draws_of_the_teacher_forced_hypothesis(acoustic_run) -> None:
    _, task = refiner_task("delta", "score", acoustic_run[0], ("acoustic.hyp_remedy=dropout-fresh",))
    ids = task.train_ids()[:3]
    torch.manual_seed(0)
    a, b = task.fresh_dropout_hypotheses(ids), task.fresh_dropout_hypotheses(ids)
    h = task.hypotheses()
    for x, y, uid in zip(a, b, ids):
        assert x.shape == y.shape == h["hyp"][uid].shape and not torch.equal(x, y)  # a new draw per call
    for m in task._acoustic_model.modules():  # dropout off: exactly the stored clean hypotheses
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        elif isinstance(m, torch.nn.MultiheadAttention):
            m.dropout = 0.0
    for x, uid in zip(task.fresh_dropout_hypotheses(ids), ids):
        assert torch.allclose(x.float(), h["hyp"][uid].float(), rtol=1e-3, atol=1e-3)  # both rounded to fp16
    batch = task.train_batch(torch.Generator().manual_seed(0), 3)
    assert batch.hyp.shape == (3, 80, 32) and torch.isfinite(batch.hyp).all()


def test_refiner_needs_an_acoustic_run(tmp_path) -> None:
    from ebtk.tasks.base import build_task
    from ebtk.train.trainer import resolve_config

    task = build_task(resolve_config("tts", "delta", overrides=TINY))
    model = task.build_model("delta")  # building reads no data: a fresh run's init_weights does
    with pytest.raises(EbtkError, match="acoustic.checkpoint"):
        task.init_weights(model)
    _, task = refiner_task("delta", "score", tmp_path)
    with pytest.raises(EbtkError, match="hypotheses.pt"):
        task.init_weights(model)


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
    scorer = Scorer(task.vocoder, task.eval_utterances([uid]), dnsmos=False)  # against the recorded wav
    voc = scorer.score("vocoded reference", [ref[0]])
    refined = scorer.score("refined", [refine(model, hyp, 1, 1.0)[0][0]], steps=1, step_size=1.0)
    assert refined["mel_mse"] == pytest.approx(0.0, abs=1e-10)
    assert refined["mcd"] == pytest.approx(voc["mcd"], abs=1e-3)  # equal up to float rounding
    assert refined["logf0_rmse"] == pytest.approx(voc["logf0_rmse"], abs=1e-3)


@pytest.fixture(scope="module")
def delta_run(acoustic_run, tmp_path_factory):
    """A delta refiner trained for η = 0.5 (objective.step_size); refine.step_size is left at its default."""
    from ebtk.train.trainer import train

    out = tmp_path_factory.mktemp("runs") / "delta"
    metrics = train("tts", "delta", out, overrides=[*TINY, "train.steps=10", f"acoustic.checkpoint={acoustic_run[0]}",
                                                   "objective.step_size=0.5", "eval.step_sizes=[0.5]"],
                    progress=False)
    return out, metrics


def test_refiner_run_evaluates_and_synthesizes(delta_run, tmp_path) -> None:
    from ebtk.tts.audio import SAMPLE_RATE
    from ebtk.tts.synthesize import synthesize

    out, metrics = delta_run
    for k in ("mcd_hyp", "mcd_refined", "logf0_rmse_hyp", "logf0_rmse_refined", "vuv_hyp", "vuv_refined",
              "dnsmos_hyp", "dnsmos_refined", "rtf", "refine_steps"):
        assert k in metrics
    assert metrics["refine_steps"] == 1 and metrics["rtf"] > 0 and np.isfinite(metrics["mcd_refined"])
    assert metrics["refine_step_size"] == 0.5  # the η delta trained for, not refine.step_size's old 1.0
    table = json.loads((out / "eval_table.json").read_text())["rows"]
    assert {(r["system"], r["steps"], r["step_size"]) for r in table} == {
        ("vocoded reference", None, None), ("hypothesis", 0, None), ("refined", 1, 0.5)}
    assert "| refined | 1 | 0.50 |" in (out / "eval_table.md").read_text()
    assert (out / "mels.png").is_file() and list((out / "wavs").glob("*_refined_k1_eta0.5.wav"))
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


def test_fm_study_scoring_from_text_and_teacher_forced_and_from_a_snapshot(acoustic_run, corpus, tmp_path) -> None:
    """An FM run is scored like a refiner (`score_systems`), with one row per Euler-step setting: from text as
    `ebtk synthesize` makes it, teacher-forced on the recording's frame count; a kept snapshot loads as a
    bundle of that step's weights."""
    from ebtk.train.checkpoint import load_checkpoint, snapshot_path
    from ebtk.train.trainer import train
    from ebtk.tts.bundle import Synthesizer, bundle_from_run
    from ebtk.tts.evaluate import FM_SYSTEM, fm_mels, group_rows, score_systems
    from ebtk.tts.splits import SplitUtterances

    out = tmp_path / "fm"
    train("tts", "fm", out, overrides=[*TINY, "train.steps=3", "train.keep_every=2", f"data.path={corpus}",
                                       f"acoustic.checkpoint={acoustic_run[0]}", "acoustic.freeze=true"],
          progress=False)
    synth = Synthesizer(bundle_from_run(out))
    split = SplitUtterances(acoustic_run[0], synth, teacher_forced=True)
    utts = split.utterances("test")
    train_ids = list(split.hyps["splits"]["train"])
    assert [u.id for u in split.utterances("train", 2)] == train_ids[:2] and len(train_ids) > 2
    for cond in ("from-text", "teacher-forced"):
        sets = group_rows(score_systems(synth, utts, [(1, 1.0), (2, 1.0)], condition=cond, dnsmos=False))
        assert sorted(sets) == [(FM_SYSTEM, 1, None), (FM_SYSTEM, 2, None)]
        for rows in sets.values():
            assert [r["id"] for r in rows.values()] == [u.id for u in utts]
            assert all(r["mcd"] > 0 for r in rows.values())
            # mel MSE needs the recording's frames: only teacher-forced has them
            assert all((r["mel_mse"] is not None) == (cond == "teacher-forced") for r in rows.values())
    u = utts[0]
    tf = fm_mels(synth, [u], (2,), "teacher-forced")[2][0]
    assert tf.shape == u.mel.shape and torch.equal(tf, fm_mels(synth, [u], (2,), "teacher-forced")[2][0])
    ft = fm_mels(synth, [u], (2,), "from-text")[2][0]
    said = synth.synthesize(SHORT[int(u.id[1:])], steps=2)  # what `ebtk synthesize` says for this text
    assert np.array_equal(synth.to_audio(synth.vocoder(ft[None])[0]), said)
    snap = snapshot_path(out, 2)
    early = Synthesizer(bundle_from_run(out, snap))
    want = load_checkpoint(snap)["model"]
    got = early.acoustic.state_dict()
    assert load_checkpoint(snap)["step"] == 2 and all(torch.equal(got[k], want[k].float()) for k in got)
    assert any(not torch.equal(got[k], synth.acoustic.state_dict()[k]) for k in got)  # step 3 moved on


def test_bucketed_batches_pad_less_and_still_draw_every_utterance_alike(corpus) -> None:
    """data.bucket=k: batches of similar lengths (less padding computed), each training utterance drawn as
    often as with plain random batches; data.bucket 0 and 1 are the plain batches."""
    from ebtk.tasks.base import build_task
    from ebtk.train.trainer import resolve_config

    tasks = {k: build_task(resolve_config("tts", "acoustic", overrides=[*TINY, f"data.path={corpus}",
                                                                          f"data.bucket={k}"])) for k in (0, 1, 3)}
    ids = tasks[0].train_ids()
    counts = {k: dict.fromkeys(ids, 0) for k in tasks}
    real = {k: 0.0 for k in tasks}
    draws = 600
    for s in range(draws):
        for k, task in tasks.items():
            b = task.train_batch(torch.Generator().manual_seed(s), 2)
            lengths = b.cond["mel_lengths"]
            real[k] += float(lengths.sum()) / (2 * b.x.shape[-1]) / draws
            assert b.x.shape[-1] == int(lengths.max())
            for i, t in zip(ids, [task.mel(i).shape[-1] for i in ids]):
                counts[k][i] += int((lengths == t).sum())
        if s < 20:
            assert torch.equal(tasks[0].train_batch(torch.Generator().manual_seed(s), 2).x,
                               tasks[1].train_batch(torch.Generator().manual_seed(s), 2).x)
    assert len({tasks[0].mel(i).shape[-1] for i in ids}) == len(ids)  # lengths tell the utterances apart
    assert 1 - real[3] < 0.7 * (1 - real[0])  # less padding computed (measured: 0.016 vs 0.036 of the frames)
    for k in (0, 3):  # each of the 5 ids ~ Binomial(1200, 1/5): 240 ± 14; ±60 is beyond 4 sd
        assert all(abs(c - 2 * draws / len(ids)) < 60 for c in counts[k].values()), counts[k]


def test_builtin_corpus_is_made_on_first_use(tmp_path, monkeypatch) -> None:
    from ebtk.tasks.base import build_task
    from ebtk.train.trainer import resolve_config

    monkeypatch.setenv("EBTK_CACHE_DIR", str(tmp_path))
    small = ["data.n_utts=6", "data.n_val=1", "data.n_test=1", "data.n_unseen=1"]
    task = build_task(resolve_config("tts", "acoustic", overrides=[*small, "eval.split=unseen-words"]))
    path = task.corpus_path()
    assert path.parent == tmp_path.resolve() and len((path / "metadata.csv").read_text().splitlines()) == 6
    assert path.name == "corpus-flite-mixed-n6-s0" and json.loads((path / "corpus.json").read_text())["text"] == "mixed"
    assert task.corpus_path() == path  # the second call reuses it
    sp = task.splits()
    assert list(sp) == ["train", "val", "test", "unseen-words"]
    assert sorted(sum(sp.values(), [])) == sorted(task.corpus.ids)
    assert task.test_ids() == sp["unseen-words"]  # eval.split picks the split evaluated by name
    # a run stored before data.text existed (a complete data section without it) keeps its grammar corpus
    legacy = resolve_config("tts", "acoustic", overrides=small)
    for k in ("text", "n_unseen"):
        del legacy["data"][k]
    old = build_task(legacy)
    assert old.corpus_path().name == "corpus-flite-n6-s0" and list(old.splits()) == ["train", "val", "test"]
    with pytest.raises(EbtkError, match="no such split"):
        old.eval_cfg.split = "unseen-words"
        old.test_ids()


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
        argv = ["train", "tts", "--objective", "acoustic", "--out", tmp_path / "r", "--quiet", *TINY,
                f"data.path={broken}"]  # a fresh run: found while reading the data, before anything is written
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
    assert not (tmp_path / "r" / "config.yaml").exists()


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


# -- inference bundles -----------------------------------------------------------------------------------
SAY = "Open the door, please."


def test_export_then_synthesize_without_corpus_or_runs_from_another_dir(delta_run, acoustic_run, corpus, tmp_path,
                                                                      monkeypatch, run_cli) -> None:
    """`ebtk export` → corpus and both run dirs gone → `ebtk synthesize FILE` from another cwd writes the wav
    that synthesizing from the run dir wrote; the file is weights_only-loadable and carries the linked η."""
    import soundfile as sf

    import ebtk.tts

    run, _ = delta_run
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("synthesize", run, "--text", SAY, "--out", "from_run.wav")
    assert code == 0, err
    from_run = ebtk.tts.load(run).synthesize(SAY)
    code, out, err = run_cli("export", run, "model.pt")
    assert code == 0 and "model.pt" in out, err
    b = torch.load(tmp_path / "model.pt", weights_only=True)
    assert b["format"] == "ebtk-tts-bundle" and b["kind"] == "refiner"
    assert b["refine"] == {"steps": 1, "step_size": 0.5, "length_scale": 1.0}  # η linked to objective.step_size
    assert set(b["mel"]) >= {"mean", "std", "settings"} and b["frontend"]["symbols"]
    assert b["refiner"]["kind"] == "score" and b["acoustic"]["class"] == "acoustic"
    assert oct((tmp_path / "model.pt").stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    stash = tmp_path / "stash"  # "deleted": moved away (and back afterwards, for the module's other tests)
    stash.mkdir()
    gone = [corpus, acoustic_run[0], run]
    for k, d in enumerate(gone):
        shutil.move(d, stash / str(k))
    try:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        code, _, err = run_cli("synthesize", tmp_path / "model.pt", "--text", SAY, "--out", "from_file.wav")
        assert code == 0, err
        from_file = ebtk.tts.load(tmp_path / "model.pt").synthesize(SAY)
        code, _, err = run_cli("synthesize", run, "--text", SAY, "--out", "x.wav")  # the run dir is gone
        assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    finally:
        for k, d in enumerate(gone):
            shutil.move(stash / str(k), d)
    a, sr_a = sf.read(tmp_path / "from_run.wav", dtype="float32")
    b_wav, sr_b = sf.read(elsewhere / "from_file.wav", dtype="float32")
    assert sr_a == sr_b == 22050 and a.shape == b_wav.shape and np.abs(a - b_wav).max() < 1e-5
    assert from_run.dtype == np.float32 and from_run.ndim == 1
    assert np.abs(from_run - from_file).max() < 1e-5
    assert np.abs(from_run - a).max() < 1e-4  # the wav file is the same audio, 16-bit PCM


def _umask() -> int:
    import os

    m = os.umask(0)
    os.umask(m)
    return m


def test_bundles_of_acoustic_and_fm_runs_and_bad_files(acoustic_run, tmp_path) -> None:
    from ebtk.tts.bundle import export, load, read_bundle

    syn = load(acoustic_run[0])
    assert syn.kind == "acoustic" and syn.refiner is None and syn.settings() == (0, 1.0, 1.0)
    hyp, mel = syn.mels(syn.phonemes(SAY))
    assert torch.equal(hyp, mel) and hyp.shape[1] == 80
    long_hyp, _ = syn.mels(syn.phonemes(SAY), length_scale=2.0)
    assert long_hyp.shape[-1] > 1.5 * hyp.shape[-1]
    with pytest.raises(EbtkError, match="not an ebtk tts bundle.*ebtk export"):
        read_bundle(acoustic_run[0] / "checkpoint.pt")
    with pytest.raises(EbtkError, match="not found"):
        load(tmp_path / "nope.pt")
    path = export(acoustic_run[0], tmp_path / "ac.pt")
    again = load(path)
    assert torch.equal(again.mels(again.phonemes(SAY))[0], hyp)


def test_loading_a_run_reads_no_corpus(acoustic_run, corpus, tmp_path) -> None:
    """Mel statistics live in the checkpoint: evaluation-free loading (load_run, bundles) works without data."""
    from ebtk.train.trainer import load_run

    moved = tmp_path / "away"
    shutil.move(corpus, moved)
    try:
        _, task, model, _, _ = load_run(acoustic_run[0])
        ck = torch.load(acoustic_run[0] / "checkpoint.pt", weights_only=True)["model"]
        assert float(model.mel_mean) == float(ck["mel_mean"]) != 0.0 and float(model.mel_std) != 1.0
    finally:
        shutil.move(moved, corpus)


def test_refine_step_size_follows_the_delta_objective(acoustic_run) -> None:
    from ebtk.tts.config import TTSRefine

    assert TTSRefine().effective_step_size({"name": "delta", "step_size": 0.25}) == 0.25
    assert TTSRefine().effective_step_size({"name": "ssm+delta", "weights": [1, 1], "delta": {"step_size": 0.3},
                                            "ssm": {}}) == 0.3
    assert TTSRefine().effective_step_size({"name": "ssm"}) == 1.0
    assert TTSRefine(step_size=0.8).effective_step_size({"name": "delta", "step_size": 0.25}) == 0.8  # explicit wins
    _, task = refiner_task("delta", "score", acoustic_run[0], ("objective.step_size=0.5",))
    assert task.refine_cfg.step_size is None and task.refine_step_size == 0.5
    _, task = refiner_task("ssm+delta", "score", acoustic_run[0], ("objective.delta.step_size=0.4",))
    assert task.refine_step_size == 0.4
    _, task = refiner_task("delta", "score", acoustic_run[0], ("objective.step_size=0.5", "refine.step_size=1.0"))
    assert task.refine_step_size == 1.0


def test_paths_are_stored_absolute(tmp_path, monkeypatch) -> None:
    from ebtk.io import resolve_in
    from ebtk.tasks.tts import TTS

    monkeypatch.chdir(tmp_path)
    cfg = TTS.resolve_paths({"data": {"path": "corpus"}, "acoustic": {"checkpoint": "runs/ac"}, "model": {}})
    assert cfg["data"]["path"] == str(tmp_path.resolve() / "corpus")
    assert cfg["acoustic"]["checkpoint"] == str(tmp_path.resolve() / "runs" / "ac")
    assert TTS.resolve_paths({"data": {"path": ""}})["data"]["path"] == ""
    assert resolve_in(tmp_path / "run", "../ac") == tmp_path / "run" / ".." / "ac"  # relative: to the run dir
    from ebtk.train.trainer import resolve_config  # what `ebtk train` stores in config.yaml

    cfg = resolve_config("tts", "delta", None, ["data.path=corpus", "acoustic.checkpoint=runs/ac"])
    assert cfg["data"]["path"] == str(tmp_path.resolve() / "corpus")
    assert cfg["acoustic"]["checkpoint"] == str(tmp_path.resolve() / "runs" / "ac")


def test_evaluation_logs_val_media_to_tensorboard(acoustic_run, delta_run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for run, want in ((acoustic_run[0], {"reference", "hypothesis"}), (delta_run[0], {"reference", "hypothesis",
                                                                                      "refined"})):
        (media,) = sorted((run / "tb").glob("*.media"))
        ea = EventAccumulator(str(media), size_guidance={"images": 0, "audio": 0})
        ea.Reload()
        assert {t.split("/", 1)[1] for t in ea.Tags()["images"]} == want
        assert {t.split("/", 1)[1] for t in ea.Tags()["audio"]} == want | {"recording"}
        assert ea.Audio("audio/reference")[-1].step == (30 if run == acoustic_run[0] else 10)  # the trained steps


def test_acoustic_run_is_rebuilt_from_a_bundles_fp16_weights(acoustic_run, corpus, tmp_path) -> None:
    """tts_study2 --restore-acoustic: a lost acoustic run dir comes back from the shipped bundle (fp16 weights),
    with hypotheses a refiner run accepts, equal to the original run's up to fp16 rounding."""
    from bench_fixtures import load_benchmark
    from ebtk.tts.bundle import bundle_from_run, write_bundle

    study = load_benchmark("tts_study2")
    bundle = bundle_from_run(acoustic_run[0])
    bundle["acoustic"]["state"] = {k: v.half() if v.is_floating_point() else v
                                   for k, v in bundle["acoustic"]["state"].items()}
    path = write_bundle(bundle, tmp_path / "model.pt")
    run = tmp_path / "restored"
    study.restore_acoustic(run, path, overrides=[*TINY, f"data.path={corpus}"], config_file=None)
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 30 and state["config"]["acoustic"]["channels"] == 32
    for k, v in bundle["acoustic"]["state"].items():
        assert torch.equal(state["model"][k], v.float()), k
    old = torch.load(acoustic_run[0] / "hypotheses.pt", weights_only=True)
    new = torch.load(run / "hypotheses.pt", weights_only=True)
    assert new["splits"] == old["splits"]
    assert all(torch.equal(new["durations"][u], d) for u, d in old["durations"].items())  # the same alignments
    for kind in ("hyp", "hyp_dropout"):
        for uid, h in old[kind].items():
            assert new[kind][uid].shape == h.shape
            rel = float((new[kind][uid] - h).norm() / h.norm())
            assert rel < 2e-3, (kind, uid, rel)  # fp16 weights: 2^-11 ≈ 4.9e-4 relative each; seen ≤ 5.6e-4
    _, task = refiner_task("delta", "score", run)
    assert sorted(task.hypotheses()["hyp"]) == sorted(old["hyp"])
    stamp = (run / "checkpoint.pt").stat().st_mtime_ns
    study.restore_acoustic(run, path, overrides=[*TINY, f"data.path={corpus}"], config_file=None)
    assert (run / "checkpoint.pt").stat().st_mtime_ns == stamp  # done once; never overwrites a rebuilt run
