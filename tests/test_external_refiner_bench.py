"""benchmarks/external_refiner.py --quick end to end: corpus, FM first stage, its .npy mels, a refiner on them,
val choice, test rows, timing and the table; a second run resumes without redoing anything."""

from __future__ import annotations

import csv

from bench_fixtures import needs_speech_engines, run_quick

pytestmark = needs_speech_engines()


def test_quick_run_writes_raw_rows_and_a_table(tmp_path) -> None:
    from ebtk.tts.dataset import LJSpeechCorpus
    from ebtk.tts.external import read_mel

    bench, out, res = run_quick("external_refiner", tmp_path)
    q = bench.QUICK
    corpus = LJSpeechCorpus(out / "corpus")
    splits = corpus.splits(val=q.n_val, test=q.n_test, seed=0)
    # the external model's files: one checked (80, T) mel per utterance, written through the public format
    assert sorted(p.stem for p in (out / "hyps").glob("*.npy")) == sorted(corpus.ids)
    assert all(read_mel(p).shape[0] == 80 for p in (out / "hyps").glob("*.npy"))
    raw = {p.name: list(csv.DictReader(open(p))) for p in (res / "raw").glob("*.csv")}
    k, eta = bench.choose(res, q)  # the test split is refined only when val chose to refine
    chosen = [bench.raw_path(res, "test", bench.REFINED, k, eta).name] if k else []
    assert sorted(raw) == sorted(["test.fm10.csv", "test.hypothesis.csv", "timing.csv", "val.hypothesis.csv",
                                  "val.refined.1x1.csv", *chosen])
    for name, rows in raw.items():
        split = "test" if name.startswith(("test", "timing")) else "val"
        assert sorted(r["id"] for r in rows) == splits[split], name
    for r in raw["timing.csv"]:
        assert all(float(r[k]) > 0 for k in ("fm2_wall", "refine_wall", "fm10_wall", "vocoder_wall"))
    table = (res / "table.md").read_text()
    for key, system in bench.SYSTEM_NAMES.items():
        assert (f"| {system} | {q.n_test} |" in table) == (key != bench.REFINED or k > 0), system
    assert "Paired differences" in table and "CPU-time ratio" in table
    # resume: nothing is trained or scored again, and the table regenerates identically
    before = {p: p.stat().st_mtime_ns for p in [*(res / "raw").glob("*.csv"), out / "fm" / "checkpoint.pt",
                                                 out / "refiner" / "checkpoint.pt"]}
    assert bench.main(["--quick", "--out", str(out), "--results", str(res)]) == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert (res / "table.md").read_text() == table
