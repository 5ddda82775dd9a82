"""benchmarks/time_to_quality.py: its clock, its stopping rule, and its NLL against the toy2d task's own."""

from __future__ import annotations

import math

import pytest
import torch

from bench_fixtures import load_benchmark


def test_slices_stop_at_the_limit_or_the_target_and_the_nll_is_the_tasks(tmp_path):
    ttq = load_benchmark("time_to_quality")
    torch.set_num_threads(1)
    run = ttq.ebtk_run("toy2d", "dsm", 0, "8gaussians", tmp_path)
    rows = ttq.run_group({"ebtk/dsm": run}, target=-math.inf, limit=1.0, log=lambda _: None)
    # an evaluation before training, then slices of ≥ 0.5 s until the clock passes the limit
    assert rows[0]["step"] == 0 and rows[0]["seconds"] == 0.0
    assert len(rows) == 3 and 0.5 <= rows[1]["seconds"] < rows[2]["seconds"] and rows[2]["seconds"] >= 1.0
    assert 0 < rows[1]["step"] < rows[2]["step"]
    # the instrument: the benchmark's NLL is the toy2d task's exact-normaliser NLL of the same net
    from ebtk.tasks.toy2d import Toy2d
    from ebtk.train.trainer import resolve_config

    task = Toy2d(resolve_config("toy2d", "dsm"))
    assert rows[2]["value"] == pytest.approx(task.evaluate(run.net)["nll"], abs=1e-6)
    assert ttq.true_nll("8gaussians") == pytest.approx(float(-task.dataset.log_prob(task.test_data()).mean()))
    # a reachable target ends the run at its first slice
    again = ttq.run_group({"ebtk/dsm": run}, target=math.inf, limit=10.0, log=lambda _: None)
    assert len(again) == 2


def test_first_time_and_cells():
    ttq = load_benchmark("time_to_quality")
    curve = [{"seconds": s, "value": v} for s, v in ((0.0, 5.0), (1.0, 3.0), (2.5, 2.0), (4.0, 2.5))]
    assert ttq.first_time(curve, 2.0) == 2.5 and ttq.first_time(curve, 3.0) == 1.0
    assert ttq.first_time(curve, 1.0) is None
    assert ttq.time_cell([1.0, 2.0, 4.0], 60) == "2.0 [1.0–4.0] (3/3)"
    # a seed that never reached counts as +∞ in the median
    assert ttq.time_cell([1.0, None, None], 60) == "> 60 [1.0–inf] (1/3)"
    assert ttq.time_cell([None, None], 60) == "not reached within 60 s (0/2)"
