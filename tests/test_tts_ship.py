"""benchmarks/tts_ship.py --quick end to end (tiny models, a 40-utterance mixed corpus): val selection, the
test and unseen-words tables, the bundle and its model card, never shipped; a second run redoes nothing.
And --acoustic-from: a copied run resumes under the source's corpus settings."""

from __future__ import annotations

import csv
import re

import pytest
import torch

from bench_fixtures import load_benchmark, needs_speech_engines, run_quick

pytestmark = needs_speech_engines()


def test_quick_run_scores_test_and_unseen_words_and_writes_the_card(tmp_path) -> None:
    from ebtk.tts.bundle import shipped_model_path
    from ebtk.tts.dataset import LJSpeechCorpus, vocabulary, words

    card = shipped_model_path().parent / "MODEL_CARD.md"
    shipped = shipped_model_path().read_bytes(), card.read_bytes()
    bench, out, res = run_quick("tts_ship", tmp_path)
    assert (shipped_model_path().read_bytes(), card.read_bytes()) == shipped  # --quick never ships

    corpus = LJSpeechCorpus(out / "corpus")
    splits = torch.load(out / "acoustic" / "hypotheses.pt", weights_only=False)["splits"]
    unseen, train = splits["unseen-words"], splits["train"]
    vocab = vocabulary([corpus[i].normalized for i in train])
    assert unseen and all(set(words(corpus[i].normalized)) - vocab for i in unseen)

    # per-utterance rows: every held-out utterance of each split, for each scored system
    for name, split in (("val", "val"), ("test", "test"), ("unseen", "unseen-words")):
        rows = list(csv.DictReader(open(res / f"{name}_per_utterance.csv")))
        by_system: dict[str, set[str]] = {}
        for r in rows:
            by_system.setdefault(r["system"], set()).add(r["id"])
        assert by_system and all(ids == set(splits[split]) for ids in by_system.values()), name
        assert {"vocoded reference", "hypothesis"} <= set(by_system), name

    # the previously shipped model on the same texts: its hypothesis and its own default refinement, and the
    # paired table's ΔMCD is the mean of the per-utterance differences of the two CSVs
    for name, split, new_csv in (("test", "test", "test"), ("unseen", "unseen-words", "unseen")):
        prev = list(csv.DictReader(open(res / f"previous_{name}_per_utterance.csv")))
        systems = {r["system"] for r in prev}
        assert systems == {"hypothesis (previous model)", "refined (previous model)"}, systems
        assert all({r["id"] for r in prev if r["system"] == s} == set(splits[split]) for s in systems)
        new_hyp = {r["id"]: float(r["mcd"]) for r in csv.DictReader(open(res / f"{new_csv}_per_utterance.csv"))
                   if r["system"] == "hypothesis"}
        old_hyp = {r["id"]: float(r["mcd"]) for r in prev if r["system"] == "hypothesis (previous model)"}
        want = sum(new_hyp[i] - old_hyp[i] for i in old_hyp) / len(old_hyp)
        line = next(x for x in (res / "previous.md").read_text().splitlines()
                    if x.startswith(f"| {split} | hypotheses | {len(old_hyp)} |"))
        assert float(line.split("|")[6].split("[")[0]) == pytest.approx(want, abs=6e-4)

    interval = r"[+-]?[0-9.]+ \[[+-]?[0-9.]+, [+-]?[0-9.]+\]"
    unseen_md = (res / "unseen.md").read_text()
    n_pair = len(splits["unseen-words"]) + len(splits["test"])
    assert re.search(rf"^\| hypothesis \| {n_pair} \| {interval} \|$", unseen_md, re.M), unseen_md
    card = (out / "MODEL_CARD.md").read_text()
    flat = " ".join(card.split())
    assert f"Training vocabulary: {len(vocab)} words." in flat
    assert f"Split {len(train)}/{len(splits['val'])}/{len(splits['test'])}/{len(unseen)} " in flat
    assert "## Unseen words" in card and unseen_md.splitlines()[0] in card
    assert "## Against the model it replaces" in card
    # the tiny run's 4 steps are all logged: the first and the last fifth (a step each)
    assert re.search(r"Acoustic training loss: [0-9.]+ → [0-9.]+ over its last 4 steps\.", flat), flat
    bundle = torch.load(out / "tts_model.pt", weights_only=True)
    assert bundle["record"]["summary"]["n"] == len(splits["test"])

    before = {p: p.stat().st_mtime_ns for p in [*res.glob("*.csv"), out / "acoustic" / "checkpoint.pt",
                                                 out / "delta-text" / "checkpoint.pt"]}
    assert bench.main(["--quick", "--out", str(out), "--results", str(res)]) == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert (res / "unseen.md").read_text() == unseen_md


def test_acoustic_from_copies_the_run_and_reproduces_its_corpus_settings(tmp_path) -> None:
    from ebtk.config import load_yaml

    bench = load_benchmark("tts_ship")
    src = tmp_path / "src"
    src.mkdir()
    (src / "checkpoint.pt").write_bytes(b"x")
    (src / ".lock").write_text("123\n")
    (src / "config.yaml").write_text("data:\n  path: /some/corpus\n  n_utts: 10000\n  n_unseen: 100\n"
                                     "  text: mixed\ntrain:\n  amp: true\n")
    data, kept = bench.seed_acoustic(tmp_path / "run", src)
    assert sorted(data) == ["data.n_unseen=100", "data.n_utts=10000", "data.path=/some/corpus", "data.text=mixed"]
    assert kept == ["train.amp=True"]  # the acoustic continuation keeps bf16; the refiner does not inherit it
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == b"x" and not (tmp_path / "run" / ".lock").exists()
    assert load_yaml(tmp_path / "run" / "config.yaml")["train"]["amp"] is True
    (src / "checkpoint.pt").write_bytes(b"y")  # a second call keeps the copy (it may have trained on)
    bench.seed_acoustic(tmp_path / "run", src)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == b"x"
    (src / "checkpoint.pt").unlink()
    try:
        bench.seed_acoustic(tmp_path / "other", src)
    except SystemExit as e:
        assert str(e).startswith("error:") and "checkpoint.pt" in str(e)
    else:
        raise AssertionError("a source without a checkpoint was accepted")


def test_from_text_refiner_trains_on_the_models_own_mels_and_ships_joined(tmp_path) -> None:
    """--refiner-input from-text: one `.npy` per corpus utterance, equal to what the acoustic model says from
    text; the refiner is a `hypotheses.dir` run on the acoustic run's own train split (nothing held out leaks
    in); the shipped bundle's refined mel equals refining the acoustic bundle's hypothesis with the refiner-only
    bundle (`attach_refiner`, checked against `load_refiner`), and the wrong kinds are refused. `--val-only`
    stops after the val selection."""
    import numpy as np

    import ebtk.tts
    from ebtk.errors import EbtkError
    from ebtk.tts.bundle import attach_refiner, bundle_from_run

    bench = load_benchmark("tts_ship")
    out, res = tmp_path / "runs", tmp_path / "res"
    args = ["--quick", "--refiner-input", "from-text", "--previous", "none", "--out", str(out), "--results", str(res)]
    assert bench.main([*args, "--val-only"]) == 0  # to compare recipes on val first: stops after the selection
    assert (res / "selection.md").is_file() and not (res / "test_per_utterance.csv").exists()
    assert not (out / "tts_model.pt").exists()
    assert bench.main(args) == 0  # resumes: the same val rows, then test and the bundle
    ac, rf, hyps = out / "acoustic", out / "delta-fromtext", out / "fromtext-hyps"
    task = bench.acoustic_task(ac)
    assert {p.stem for p in hyps.glob("*.npy")} == set(task.items())
    acoustic = ebtk.tts.load(ac)
    uid = sorted(task.items())[0]
    want = acoustic.mels(acoustic.phonemes(task.items()[uid][0]))[0][0].numpy()
    np.testing.assert_allclose(np.load(hyps / f"{uid}.npy"), np.maximum(want, np.log(1e-7)), atol=1e-4)

    rf_task = bench.acoustic_task(rf)
    assert rf_task.train_ids() == task.train_ids()
    for split in ("val", "test", "unseen-words"):
        assert not set(task.splits()[split]) & set(rf_task.train_ids())

    shipped = ebtk.tts.load(out / "tts_model.pt")
    assert shipped.kind == "refiner" and not shipped.text_cond
    for k, eta in ((1, 1.0), (2, 0.5)):  # whatever the default chosen on val (0 steps ships the hypothesis)
        hyp, refined = shipped.mels(acoustic.phonemes(task.items()[uid][0]), steps=k, step_size=eta)
        alone = ebtk.tts.load_refiner(rf).refine(hyp[0].float().numpy(), k, eta)
        assert np.abs(alone - hyp[0].float().numpy()).max() > 1e-3  # the refiner does move the mel
        np.testing.assert_allclose(refined[0].float().numpy(), alone, atol=2e-4)  # fp16 weights vs fp32: 4e-5 seen
    with pytest.raises(EbtkError, match="acoustic bundle and a refiner-only"):
        attach_refiner(bundle_from_run(ac), bundle_from_run(ac))
    assert "own mels from text" in " ".join((out / "MODEL_CARD.md").read_text().split())


def test_choose_recipe_on_val_rows(tmp_path) -> None:
    """Two recipes on the same val hypotheses: recipe B's (1, η 1) has the lowest MCD (4.80), its (2, η 0.5)
    is within TIE_DB (4.805) with a higher DNSMOS, so it wins; A's best (4.90) loses. If nothing beats the
    hypothesis, 0 steps; hypotheses that differ between recipes are refused."""
    bench = load_benchmark("tts_ship")

    def rows(system, k, eta, mcds, dnsmos):
        return [{"id": f"u{i}", "system": system, "steps": k, "step_size": eta, "mcd": m, "logf0_rmse": None,
                 "vuv": None, "dnsmos": dnsmos} for i, m in enumerate(mcds)]

    hyp = rows("hypothesis", 0, None, [5.0, 5.2], 2.0)
    a = hyp + rows("refined", 1, 1.0, [4.85, 4.95], 2.1)
    b = hyp + rows("refined", 1, 1.0, [4.75, 4.85], 2.1) + rows("refined", 2, 0.5, [4.76, 4.85], 2.3)
    name, k, eta, lines = bench.choose_recipe({"A": a, "B": b})
    assert (name, k, eta) == ("B", 2, 0.5)
    assert sum("**yes**" in x for x in lines) == 1 and "| B | 2 | 0.5 | 2 | 4.805 | 2.300 | **yes** |" in lines
    worse = hyp + rows("refined", 1, 1.0, [5.3, 5.4], 2.5)
    assert bench.choose_recipe({"A": worse, "B": worse})[1:3] == (0, 1.0)
    with pytest.raises(SystemExit, match="differ"):
        bench.choose_recipe({"A": a, "C": rows("hypothesis", 0, None, [5.0, 5.3], 2.0)})

    # the command line: the --val-only runs' CSVs in, recipe.md out
    from ebtk.tts.evaluate import per_utterance_csv

    for name, r in (("A", a), ("B", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "val_per_utterance.csv").write_text(per_utterance_csv(r))
    assert bench.main(["--choose-recipe", f"A={tmp_path / 'A'}", f"B={tmp_path / 'B'}",
                       "--results", str(tmp_path / "res")]) == 0
    assert "Chosen on val: **B**, 2 step(s) at η = 0.5." in (tmp_path / "res" / "recipe.md").read_text()
    with pytest.raises(SystemExit, match="no val_per_utterance.csv"):
        bench.main(["--choose-recipe", f"A={tmp_path / 'A'}", f"D={tmp_path / 'D'}", "--results", str(tmp_path)])
