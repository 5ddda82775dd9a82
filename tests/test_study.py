"""benchmarks/sa_nce_study.py end to end at a tiny size: real runs, then the K-sweep table and plot."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path


def _load_study():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sa_nce_study.py"
    spec = importlib.util.spec_from_file_location("bench_sa_nce_study", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_study_runs_k_and_baselines_and_tabulates_mean_and_std(tmp_path, monkeypatch):
    study = _load_study()
    tiny = ["data.name=8gaussians", "train.batch_size=64", "sampler.steps=5", "eval.grid=40", "eval.n_samples=200"]
    monkeypatch.setitem(study.DATASETS, "8gaussians", ("toy2d", tiny, ("nll", "kl", "mmd")))
    monkeypatch.setattr(study, "BASELINES", ["nce"])
    jobs = study.plan(tmp_path, ["8gaussians"], [0, 1], {"toy2d": 4}, [1, None])
    assert len(jobs) == 2 * 3
    never = [j for j in jobs if j[0].parent.name == "sa-nce-Kinf"]
    assert never and all("objective.interval=never" in j[3] for j in never)
    for d, task, obj, over in jobs:
        study._job(str(d), task, obj, over, 1)
    md = study.report(tmp_path, ["8gaussians"], [1, None], seeds=2).read_text()
    nll = [json.loads((tmp_path / "8gaussians" / "sa-nce-K1" / f"seed{s}" / "metrics.json").read_text())["nll"]
           for s in (0, 1)]
    row = next(line for line in md.splitlines() if line.startswith("| sa-nce K=1 |"))
    mean, std = statistics.mean(nll), statistics.stdev(nll)
    assert "| 2/2 |" in row and f"{mean:.4g} ± {std:.2g}" in row, (row, nll)
    assert any(line.startswith("| sa-nce K=∞ | 2/2 |") for line in md.splitlines())
    assert any(line.startswith("| nce | 2/2 |") for line in md.splitlines())
    assert (tmp_path / "ksweep.png").stat().st_size > 1000


def test_cheap_baselines_get_the_same_wall_clock_budget(tmp_path):
    study = _load_study()

    def put(method: str, seconds: list[float], steps: int = 2000) -> None:
        for s, sec in enumerate(seconds):
            d = tmp_path / "8gaussians" / method / f"seed{s}"
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps({"train_seconds": sec, "steps": steps, "nll": 3.0}))

    put("sa-nce-K100", [50.0, 60.0, 55.0])
    put("nce", [12.0, 11.0, 13.0])  # 4.6× cheaper per step → 2000 · 55/12 ≈ 9200 steps
    put("cd", [54.0, 50.0, 52.0])  # as costly as SA-NCE: no extra run
    jobs = study.plan_wall_matched(tmp_path, ["8gaussians"], [0, 1, 2], 100)
    assert {j[0].parent.name for j in jobs} == {"nce-wall"} and len(jobs) == 3
    assert all("train.steps=9200" in j[3] for j in jobs)
