"""The SA-NCE study's machinery (benchmarks/sa_nce_study.py) on tiny real toy2d runs, and its statistics.

- selection reads the validation runs only (a test-split result can never choose a config);
- the t-interval and the paired comparison against closed forms;
- a second invocation reuses every finished run (no training) and a failed run is recorded, not retried.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from ebtk.metrics.stats import paired_t_interval, t_interval

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study_mod():
    spec = importlib.util.spec_from_file_location("sa_nce_study", ROOT / "benchmarks" / "sa_nce_study.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["sa_nce_study"] = mod
    spec.loader.exec_module(mod)
    return mod


# -- statistics -------------------------------------------------------------------------------------------
def test_t_interval_matches_the_closed_form():
    # x = 1..5: mean 3, s = √2.5, t_{0.975, 4} = 2.7764451051977987 (tables), half = t·s/√5
    iv = t_interval([1, 2, 3, 4, 5])
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert iv.n == 5 and iv.mean == pytest.approx(3.0)
    assert iv.lo == pytest.approx(3 - half, abs=1e-12) and iv.hi == pytest.approx(3 + half, abs=1e-12)
    assert half == pytest.approx(1.9632432, abs=1e-6)
    # n = 2: t_{0.975, 1} = 12.706204736174698; values 0, 2: mean 1, s = √2
    iv2 = t_interval([0.0, 2.0])
    assert iv2.half_width == pytest.approx(12.706204736174698 * math.sqrt(2) / math.sqrt(2), abs=1e-9)
    # 90 %: t_{0.95, 4} = 2.1318467863266495
    assert t_interval([1, 2, 3, 4, 5], level=0.9).half_width == pytest.approx(
        2.1318467863266495 * math.sqrt(0.5), abs=1e-9
    )
    one = t_interval([4.0])
    assert one.n == 1 and one.mean == 4.0 and math.isnan(one.lo) and not one.excludes_zero()
    assert t_interval([]).n == 0


def test_paired_interval_is_the_interval_of_the_differences():
    a = [1.0, 2.0, 3.0, 4.0]
    b = [0.5, 1.0, 2.5, 3.0]  # differences 0.5, 1, 0.5, 1: mean 0.75, s = 0.288675…
    d = paired_t_interval(a, b)
    half = 3.182446305284263 * (math.sqrt(1 / 12)) / 2  # t_{0.975, 3}·s/√4
    assert d.mean == pytest.approx(0.75) and d.half_width == pytest.approx(half, abs=1e-12)
    assert d.excludes_zero()
    # pairing matters: the unpaired spread of a and b is far larger than that of their differences
    assert t_interval(a).half_width > 4 * d.half_width
    with pytest.raises(ValueError):
        paired_t_interval([1.0], [1.0, 2.0])


def test_report_pairs_by_seed_and_leaves_out_missing_seeds(study_mod):
    def row(method, seed, value, stage="test", split="test"):
        return {
            "dataset": "8gaussians",
            "task": "toy2d",
            "method": method,
            "stage": stage,
            "config": "c",
            "lr": "0.003",
            "param": "objective.alpha",
            "param_value": "0.01",
            "seed": str(seed),
            "split": split,
            "steps": "10",
            "status": "ok",
            "value": str(value),
            "train_seconds": "1",
        }

    best = {0: 1.0, 1: 2.0, 2: 3.0}
    other = {0: 1.5, 1: 2.4, 3: 9.0}  # seed 3 has no partner, seed 2 failed
    d = study_mod.paired(other, best)
    assert d.n == 2 and d.mean == pytest.approx(0.45)
    rows = [row("nce", s, v) for s, v in best.items()] + [row("pcd", s, v) for s, v in other.items()]
    md = study_mod.report(rows, levels=2, n_seeds=3)
    assert "PARTIAL" in md  # the other datasets have no runs
    line = next(ln for ln in md.splitlines() if ln.startswith("| pcd "))
    assert "| 0.45 |" in line


# -- the study on tiny real runs ---------------------------------------------------------------------------
def _study(mod, tmp_path, runner=None, **kw):
    s = mod.Study(
        root=tmp_path / "runs",
        csv_path=tmp_path / "res" / "runs.csv",
        md_path=tmp_path / "res" / "tuned.md",
        datasets=["8gaussians"],
        steps={"toy2d": 6, "digits": 6},
        levels=2,
        seeds=[0, 1],
        methods=["nce"],
        variants=[],
        walls=False,
        tune_eval={"toy2d": ["eval.n_samples=16", "eval.grid=40", "eval.sample_steps=2"]},
        log=lambda s: None,
        **kw,
    )
    if runner is not None:
        s.runner = runner
    return s


def _counting(mod, calls):
    def runner(task, objective, out, overrides):
        calls.append((Path(out), list(overrides)))
        # test runs: a small evaluation too (eval is a free key, like the study's own tune_eval)
        extra = [] if "eval.split=val" in overrides else ["eval.n_samples=16", "eval.grid=40", "eval.sample_steps=2"]
        return mod.default_runner(task, objective, out, [*overrides, *extra, "data.n_test=200"])

    return runner


@pytest.fixture(scope="module")
def finished(study_mod, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    calls: list = []
    s = _study(study_mod, tmp, _counting(study_mod, calls))
    s.run()
    return s, tmp, calls


def test_tuning_runs_score_on_val_and_test_runs_on_test(finished):
    s, tmp, calls = finished
    tune = [c for c in calls if c[0].name.endswith("-val")]
    test = [c for c in calls if c[0].name.endswith("-test")]
    assert len(tune) == 4 and len(test) == 2  # a 2 × 2 grid, then the 2 test seeds of the chosen config
    assert all("eval.split=val" in ov and "train.seed=1000" in ov for _, ov in tune)
    assert all("eval.split=test" in ov for _, ov in test)
    assert {next(o for o in ov if o.startswith("train.seed=")) for _, ov in test} == {"train.seed=0", "train.seed=1"}
    # the val and the test samples differ (seed-separated): the same model scores differently on them
    from ebtk.train.trainer import load_run

    cfg, task, model, obj, _ = load_run(test[0][0])
    assert not (task.val_data() == task.test_data()).all()


def test_selection_uses_val_only(finished, study_mod):
    s, tmp, calls = finished
    rows = study_mod.read_csv(tmp / "res" / "runs.csv")
    tune = [r for r in rows if r["stage"] == "tune"]
    assert len(tune) == 4 and all(r["split"] == "val" for r in tune)
    by_val = min(tune, key=lambda r: float(r["value"]))["config"]
    test_cfgs = {r["config"] for r in rows if r["stage"] == "test"}
    assert test_cfgs == {by_val}
    # poisoning the test results cannot move the choice; poisoning val does
    poisoned = [dict(r, value="-1000") if r["split"] == "test" else r for r in rows]
    assert study_mod.select(poisoned, "8gaussians", "nce")[0] == by_val
    other = next(r["config"] for r in tune if r["config"] != by_val)
    flipped = [dict(r, value="-1000") if r["stage"] == "tune" and r["config"] == other else r for r in rows]
    assert study_mod.select(flipped, "8gaussians", "nce")[0] == other
    md = (tmp / "res" / "tuned.md").read_text()
    assert "95 % CI (t)" in md and "| nce |" in md
    # the table regenerates from the CSV alone
    assert study_mod.report(rows, 2, 2) == md


def test_resume_reuses_finished_runs(finished, study_mod):
    s, tmp, _ = finished
    stamps = {p: p.stat().st_mtime_ns for p in (tmp / "runs").rglob("metrics.json")}
    calls: list = []
    again = _study(study_mod, tmp, _counting(study_mod, calls))
    again.run()
    assert calls == []  # nothing retrained
    assert {p: p.stat().st_mtime_ns for p in (tmp / "runs").rglob("metrics.json")} == stamps
    rows = study_mod.read_csv(tmp / "res" / "runs.csv")
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)


def test_a_failed_run_is_recorded_and_not_retried(study_mod, tmp_path):
    def boom(task, objective, out, overrides):
        raise RuntimeError("training diverged at step 3")

    s = _study(study_mod, tmp_path, boom)
    s.run()  # every tuning config fails: nothing is chosen, no test runs are planned
    rows = study_mod.read_csv(tmp_path / "res" / "runs.csv")
    assert len(rows) == 4 and all(r["status"] == "failed" for r in rows)
    assert "diverged" in rows[0]["error"]
    calls: list = []
    _study(study_mod, tmp_path, lambda *a: calls.append(a)).run()
    assert calls == []
    md = (tmp_path / "res" / "tuned.md").read_text()
    assert "PARTIAL" in md and "8gaussians/nce: test seeds 0/2" in md


def test_wall_and_variant_methods_parse(study_mod):
    assert study_mod.method_spec("sa-nce-K20") == ("sa-nce", ["objective.interval=20"], "langevin")
    assert study_mod.method_spec("sa-nce-Kinf-nu4") == (
        "sa-nce",
        ["objective.interval=never", "objective.nu=4"],
        "langevin",
    )
    assert study_mod.method_spec("sa-nce-K5-cestimated")[1][-1] == "objective.c=estimated"
    assert study_mod.method_spec("nce@wall4600") == ("nce", [], "nce")
    assert study_mod.method_spec("pcd")[2] == "langevin"
    # every method gets a grid of the same size
    sizes = {len(study_mod.grid(t, m, 3)) for t in ("toy2d", "digits") for m in study_mod.main_methods()}
    assert sizes == {9}


def test_digits_val_split_is_disjoint_from_train_and_test():
    import torch

    from ebtk.errors import EbtkError
    from ebtk.tasks.digits import Digits
    from ebtk.train.trainer import resolve_config

    t = Digits(resolve_config("digits", "cd", overrides=["data.val_fraction=0.2", "eval.split=val"]))
    assert t.x_train.shape[0] + t.x_val.shape[0] + t.x_test.shape[0] == 1797
    assert t.x_val.shape[0] == 288  # 20 % of the 1437 training digits, stratified

    def rows(x):
        return {tuple(r.tolist()) for r in x.flatten(1)}

    # sklearn's digits hold a few exact duplicates; compare by index-free content only where unique
    assert len(rows(t.x_val) & rows(t.x_test)) <= 5 and len(rows(t.x_val) & rows(t.x_train)) <= 5
    again = Digits(resolve_config("digits", "cd", overrides=["data.val_fraction=0.2", "eval.split=val"]))
    assert torch.equal(again.x_val, t.x_val)  # deterministic
    plain = Digits(resolve_config("digits", "cd"))
    assert plain.x_val is None and plain.x_train.shape[0] == 1437  # default: no val split, as before
    with pytest.raises(EbtkError, match="val_fraction"):
        Digits(resolve_config("digits", "cd", overrides=["eval.split=val"]))


def test_shared_langevin_settings():
    from ebtk.train.trainer import resolve_config

    for task in ("toy2d", "digits"):
        cfgs = {o: resolve_config(task, o) for o in ("cd", "pcd", "sa-nce")}
        for key in ("lr", "batch_size"):
            assert len({c["train"][key] for c in cfgs.values()}) == 1, (task, key)
        assert len({c["objective"]["alpha"] for c in cfgs.values()}) == 1, task
        samplers = [{k: v for k, v in c["sampler"].items() if k != "persistent"} for c in cfgs.values()]
        assert samplers[0] == samplers[1] == samplers[2], task


def test_csv_keeps_rows_whose_run_dirs_are_gone(finished, study_mod, tmp_path):
    import shutil

    s, tmp, _ = finished
    root = tmp_path / "runs"
    shutil.copytree(tmp / "runs", root)
    res = tmp_path / "res"
    res.mkdir()
    shutil.copy(tmp / "res" / "runs.csv", res / "runs.csv")
    before = study_mod.read_csv(res / "runs.csv")
    victim = next(r["run_dir"] for r in before if r["stage"] == "test")
    shutil.rmtree(root / victim)
    again = _study(study_mod, tmp_path, lambda *a: None)
    again.write_outputs()
    after = study_mod.read_csv(res / "runs.csv")
    assert sorted(r["run_dir"] for r in after) == sorted(r["run_dir"] for r in before)
    assert (
        next(r for r in after if r["run_dir"] == victim)["value"]
        == next(r for r in before if r["run_dir"] == victim)["value"]
    )
