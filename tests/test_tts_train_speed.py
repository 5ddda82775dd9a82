"""benchmarks/tts_train_speed.py runs with --quick (tiny corpus and model): every variant trains and is timed."""

from __future__ import annotations

import math
import re
import shutil

import pytest

from bench_fixtures import load_benchmark

pytestmark = pytest.mark.skipif(shutil.which("flite") is None or shutil.which("espeak-ng") is None,
                                reason="needs flite (corpus) and espeak-ng (phonemes)")


def test_train_speed_quick_times_every_variant(capsys):
    bench = load_benchmark("tts_train_speed")
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    speed, rest = out.split("Validation loss after 2 steps")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (\S+) \| [^|]+ \| ([0-9.]+) \|", speed, re.M)}
    assert set(rows) == set(bench.VARIANTS)
    assert all(math.isfinite(float(v)) and float(v) > 0 for v in rows.values())  # steps/s
    # each variant trained on towards the baseline's val loss: matched within 4 steps, or said it was not
    val, match = rest.split("**At equal validation loss.**")
    assert all(f"| {n} |" in val for n in bench.VARIANTS)
    matched = dict(re.findall(r"^\| (\S+) \| (\d+|not reached in 4) \|", match, re.M))
    assert set(matched) == set(bench.VARIANTS) - {"baseline"}
    assert all(v == "not reached in 4" or 2 <= int(v) <= 4 for v in matched.values())


def test_val_losses_are_per_val_utterance(tmp_path):
    bench = load_benchmark("tts_train_speed")
    corpus = bench.quick_corpus(tmp_path / "c")
    tr = bench.make_trainer(corpus, bench.QUICK_MODEL, bf16=True, batch=4, threads=1, run_dir=tmp_path / "r")
    bench.timed_step(tr)
    losses = bench.val_losses(tr)
    assert 0 < len(losses) <= len(tr.task.splits()["val"]) and all(math.isfinite(x) for x in losses)
    assert tr.model.training  # back in training mode afterwards
