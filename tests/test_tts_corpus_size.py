"""benchmarks/tts_corpus_size.py --quick end to end: a tiny flite corpus, the half and the full acoustic model,
per-utterance rows on the test and unseen-words splits, the table; a second run redoes nothing."""

from __future__ import annotations

import csv
import re

from bench_fixtures import needs_speech_engines, run_quick

pytestmark = needs_speech_engines()


def test_quick_run_scores_both_models_on_the_same_held_out_utterances(tmp_path) -> None:
    from ebtk.tts.config import train_part_of
    from ebtk.tts.dataset import LJSpeechCorpus, vocabulary, words

    bench, out, res = run_quick("tts_corpus_size", tmp_path)
    q = bench.QUICK
    corpus = LJSpeechCorpus(out / "corpus")
    splits = corpus.splits(val=q.n_val, test=q.n_test, seed=0, unseen=q.n_unseen)
    assert len(splits["unseen-words"]) >= q.n_unseen and len(splits["test"]) >= q.n_test

    # one raw CSV per (system, split), a row per held-out utterance: the same utterances for every system
    raw = {p.name: list(csv.DictReader(open(p))) for p in (res / "raw").glob("*.csv")}
    systems = ("half", "full", "reference")
    assert sorted(raw) == sorted(f"{s}.{m}.csv" for s in ("test", "unseen-words") for m in systems)
    for name, got in raw.items():
        split = name.rsplit(".", 2)[0]
        assert sorted(r["id"] for r in got) == splits[split], name
        assert all(float(r["mcd"]) > 0 for r in got), name

    # each model's training texts: the training split (half: its part 0 of 2); every unseen-words utterance
    # holds a word neither model heard, and the table's vocabulary sizes are those texts'
    train = {"full": splits["train"], "half": [i for i in splits["train"] if train_part_of(i, 2) == 0]}
    table = (res / "table.md").read_text()
    for model, ids in train.items():
        vocab = vocabulary([corpus[i].normalized for i in ids])
        for uid in splits["unseen-words"]:
            assert set(words(corpus[uid].normalized)) - vocab, (model, uid)
        assert re.search(rf"^\| {model} \| {len(ids)} \| {len(vocab)} \| {q.steps} \| [0-9.]+ \|", table, re.M), model

    # both models on both splits with intervals, the paired and the unpaired differences, the verdict
    interval = r"-?[0-9.]+ \[-?[0-9.]+, -?[0-9.]+\]"
    for model in ("half", "full", "vocoded recording"):
        for split, n in (("test", len(splits["test"])), ("unseen-words", len(splits["unseen-words"]))):
            assert re.search(rf"^\| {model} \| {split} \| {n} \| {interval} \|", table, re.M), (model, split)
    for split in ("test", "unseen-words"):
        assert re.search(rf"^\| {split} \| \d+ \| [+-][0-9.]+ \[[+-][0-9.]+, [+-][0-9.]+\] \((tie|full better|"
                         r"half better)\)", table, re.M), split
    assert "unpaired bootstrap" in table and "**Unseen-words MCD-DTW:** full − half" in table

    # resume: nothing is trained or scored again, and the table regenerates identically
    before = {p: p.stat().st_mtime_ns for p in [*(res / "raw").iterdir(), out / "half" / "checkpoint.pt",
                                                 out / "full" / "checkpoint.pt"]}
    assert bench.main(["--quick", "--out", str(out), "--results", str(res)]) == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert (res / "table.md").read_text() == table
    assert bench.main(["--report-only", "--results", str(res)]) == 0
    assert (res / "table.md").read_text() == table
