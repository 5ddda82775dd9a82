"""benchmarks/sa_nce_converged.py: the plateau rule and time to quality on synthetic curves with hand-computed
answers, the budget and compute-plan arithmetic, the curve bands, and `--quick` (the whole pipeline on a tiny
budget, then the reports regenerated from its CSVs alone)."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from bench_fixtures import load_benchmark
from ebtk.metrics.stats import t_interval


@pytest.fixture(scope="module")
def conv():
    return load_benchmark("sa_nce_converged")


EVERY = 250
CANDS = [1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000]


def _curve(f, end=10_000, every=EVERY):
    return [(x, f(x)) for x in range(0, end + 1, every)]


def test_plateau_rule_finds_the_step_a_curve_flattens(conv):
    """Falls linearly by 1 nat per 1000 steps to step 4000, flat after. With windows (0.6B, 0.8B] and
    (0.8B, B]: B=5000 gains 0.375 (3250..4000 vs flat), B=6000 gains 0.05 (the 3750 point of value 0.25 among
    5 in the earlier window), B=8000 gains 0 → the budget is 8000 (and it stays plateaued at 10000)."""
    pts = _curve(lambda x: 3 + max(0, 4000 - x) / 1000)
    assert conv.plateau_gain(pts, 5000) == pytest.approx(0.375)
    assert conv.plateau_gain(pts, 6000) == pytest.approx(0.05)
    assert conv.plateau_gain(pts, 8000) == 0
    assert conv.plateau_budget(pts, CANDS, 0.01) == 8000
    # a budget is only one where the curve stays flat at every larger candidate: a late second drop resets it
    late = _curve(lambda x: 3 + max(0, 4000 - x) / 1000 - (0.5 if x > 9000 else 0))
    assert conv.plateau_budget(late, CANDS, 0.01) is None


def test_plateau_rule_on_a_still_falling_and_a_plateaued_curve(conv):
    falling = _curve(lambda x: 3 + 10 / (1 + x / 1000))  # still gains ~0.23 over the last fifth at 10 000
    assert conv.plateau_gain(falling, 10_000) > 0.2
    assert conv.plateau_budget(falling, CANDS, 0.01) is None
    flat = _curve(lambda x: 2.9)
    assert conv.plateau_budget(flat, CANDS, 0.01) == 1000
    # a curve that gets worse has no improvement left: plateaued
    rising = _curve(lambda x: 3 + x / 10_000)
    assert conv.plateau_budget(rising, CANDS, 0.01) == 1000
    # a window with no evaluation in it (the curve ends before B) is no evidence either way
    short = _curve(lambda x: 3.0, end=3000)
    assert conv.plateau_gain(short, 5000) is None and not conv.plateaued(short, 5000, 0.01)
    assert conv.plateau_budget(short, CANDS, 0.01) == 1000  # candidates beyond the curve are not judged


def test_relative_plateau_rule_for_fd(conv):
    """FD falling 1 % per 2000 steps: under the 2 % relative rule it is flat everywhere, while an absolute
    tolerance of 0.001 sees the ~0.095 it still gains over the last fifth (10·0.99^3.5 − 10·0.99^4.5)."""
    pts = _curve(lambda x: 10 * 0.99 ** (x / 2000))
    assert conv.plateau_budget(pts, CANDS, 0.02, relative=True) == 1000
    assert conv.plateau_gain(pts, 10_000) == pytest.approx(10 * 0.99**3.5 - 10 * 0.99**4.5, rel=0.05)
    assert conv.plateau_budget(pts, CANDS, 0.001) is None


def test_plateau_at_budget_judges_each_test_seeds_val_curve(conv):
    """Two toy2d test seeds at B = 10 000: one flat after step 4000 (gain 0), one still falling (the
    falling curve above, gain > 0.2); a tuning run and a failed seed are not counted. On digits the rule is
    relative: 10·0.99^(x/2000)'s two windows are the same points shifted by 2000 steps, so the earlier mean is
    the later one / 0.99: a gain of 1/0.99 − 1 = 1.01 % of the last window's mean, under the 2 % tolerance."""
    def rows_curves(ds, fs):
        rows, curves = [], []
        for seed, f in enumerate(fs):
            rd = f"{ds}/m/c/seed{seed}-test"
            rows.append({"dataset": ds, "method": "m", "stage": "test", "status": "ok", "steps": "10000",
                         "run_dir": rd})
            curves += [{"run_dir": rd, "step": x, "seconds": x / 100, "value": v} for x, v in _curve(f)]
        rows.append({**rows[0], "stage": "tune2", "run_dir": f"{ds}/m/c/seed1000-val"})
        rows.append({**rows[0], "status": "failed", "run_dir": f"{ds}/m/c/seed9-test"})
        return rows, curves

    def flat(x):
        return 3 + max(0, 4000 - x) / 1000

    def falling(x):
        return 3 + 10 / (1 + x / 1000)

    rows, curves = rows_curves("8gaussians", [flat, falling])
    n_pl, n, gain = conv.plateau_at_budget(rows, curves, "8gaussians", "m")
    assert (n_pl, n) == (1, 2)
    assert gain == pytest.approx((0 + conv.plateau_gain(_curve(falling), 10_000)) / 2)
    rows, curves = rows_curves("digits", [lambda x: 10 * 0.99 ** (x / 2000)])
    n_pl, n, gain = conv.plateau_at_budget(rows, curves, "digits", "m")
    assert (n_pl, n) == (1, 1) and gain == pytest.approx(1 / 0.99 - 1, rel=1e-9)


def test_time_to_quality_on_synthetic_curves(conv):
    floor = 2.8
    # floor + e^{−t/100}, evaluated every 50 s: within 0.1 nats once t ≥ 100·ln 10 = 230.3 → first at 250
    reach = [(t, floor + math.exp(-t / 100)) for t in range(0, 1001, 50)]
    thr = conv.quality_threshold("toy2d", floor)
    assert thr == pytest.approx(2.9)
    assert conv.first_reach(reach, thr) == 250
    assert conv.first_reach(list(reversed(reach)), thr) == 250  # order of the rows does not matter
    never = [(t, floor + 0.5) for t in range(0, 1001, 50)]
    assert conv.first_reach(never, thr) is None
    # a NaN evaluation (a diverged point) is not "reached"
    assert conv.first_reach([(0, math.nan), (10, 2.85)], thr) == 10
    assert conv.quality_threshold("digits", 0.136) == pytest.approx(0.272)


def _pilot(ds, method, final, wall, steps=10_000):
    row = {"dataset": ds, "method": method, "stage": "pilot", "status": "ok", "value": final, "steps": steps,
           "run_dir": f"{ds}/{method}", "cpu_seconds": wall, "wall_seconds": 2 * wall}
    return row


def test_budget_is_the_best_pilot_methods_plateau_and_the_plan_cuts_in_order(conv):
    rows = [_pilot("8gaussians", "nce", 3.0, 100.0), _pilot("8gaussians", "pcd", 2.9, 300.0)]
    shapes = {"nce": lambda x: 3.0, "pcd": lambda x: 2.9 + max(0, 4000 - x) / 1000}
    curves = [{"run_dir": f"8gaussians/{m}", "step": x, "seconds": x / 100, "cpu_seconds": x / 100, "value": v,
               "floor": 2.8} for m, f in shapes.items() for x, v in _curve(f)]
    b = conv.budgets_from_pilot(rows, curves)["8gaussians"]
    # pcd ends lowest, so its plateau (8000, as in the test above) is the budget; nce's own would be 1000
    assert b["best"] == "pcd" and b["budget"] == 8000 and b["per_method"]["nce"] == 1000
    # cost: (9 runs of B/4 + 3 continued by 3B/4 + 5 seeds of B) = 9.5·B steps at the pilot's CPU s/step
    lines, cuts = conv.compute_plan(rows, {"8gaussians": b}, ["pcd", "nce", "sa-nce-K100"])
    extra = 5 * 41 * 1.3  # the test runs' 41 evaluations with 2000 samples: 1.3 s more each
    expect = {"pcd": (9.5 * 8000 * 0.03 + extra) / 3600, "nce": (9.5 * 8000 * 0.01 + extra) / 3600}
    cells = {ln.split(" | ")[0].lstrip("| "): ln.split(" | ")[1].rstrip(" |") for ln in lines
             if ln.count("|") == 3 and not ln.startswith("|-")}
    for m in ("pcd", "nce"):
        assert float(cells[m]) == pytest.approx(expect[m], abs=0.005)  # hours printed to 2 decimals
    assert cells["sa-nce K=100"] == "–" and cells["wall rows"] == "–" and cuts == []  # no SA-NCE pilot: no cost
    # a K without its own pilot run borrows SA-NCE's pilot K (marked †); a dataset without a pilot borrows the
    # same task's numbers at B = the pilot length; over the available hours the stated cut order applies
    big = [_pilot("8gaussians", "sa-nce-K100", 2.95, 30_000.0), *rows]
    lines, cuts = conv.compute_plan(big, {"8gaussians": b}, ["pcd", "nce", "sa-nce-K100", "sa-nce-K2"],
                                    datasets=["8gaussians", "checkerboard"])
    row = next(ln for ln in lines if ln.startswith("| sa-nce K=2 |"))
    assert row == f"| sa-nce K=2 | {(9.5 * 8000 * 3 + extra) / 3600:.2f}† | {(9.5 * 10_000 * 3 + extra) / 3600:.2f}† |"
    wall = next(ln for ln in lines if ln.startswith("| wall rows |"))
    assert wall.split(" | ")[1] == f"{4 * 5 * 8000 * 3 / 3600:.2f}†"
    assert cuts == ["sa-nce-K100", "sa-nce-K2", "checkerboard"]


def test_mean_band_is_the_t_interval_at_each_grid_point(conv):
    xs = [[0.0, 10.0], [0.0, 20.0], [0.0, 10.0]]
    ys = [[4.0, 2.0], [5.0, 1.0], [6.0, 3.0]]
    mean, lo, hi = conv.mean_band(xs, ys, [0.0, 10.0])
    # at x=10 the second curve is interpolated halfway: 5 + (1 − 5)·10/20 = 3
    for j, vals in enumerate(([4.0, 5.0, 6.0], [2.0, 3.0, 3.0])):
        iv = t_interval(vals)
        assert (mean[j], lo[j], hi[j]) == pytest.approx((iv.mean, iv.lo, iv.hi))


def test_quick_runs_the_whole_pipeline_and_the_reports_regenerate_from_the_csvs(conv, tmp_path):
    res = tmp_path / "res"
    conv.main(["--quick", "--root", str(tmp_path / "runs"), "--results", str(res)])
    pilot = conv.read_csv(res / "pilot_runs.csv")
    assert sorted(r["method"] for r in pilot) == ["nce", "pcd", "sa-nce-K1"]
    assert all(r["stage"] == "pilot" and r["split"] == "val" and r["status"] == "ok" for r in pilot)
    budget = conv.budgets_from_pilot(pilot, conv.read_csv(res / "pilot_curves.csv"))["8gaussians"]
    b = budget["budget"] or budget["pilot_steps"]
    rows = conv.read_csv(res / "converged_runs.csv")
    curves = conv.read_csv(res / "converged_curves.csv")
    for m in ("nce", "pcd", "sa-nce-K1"):
        mine = [r for r in rows if r["method"] == m]
        t1 = [r for r in mine if r["stage"] == "tune1"]
        t2 = [r for r in mine if r["stage"] == "tune2"]
        test = [r for r in mine if r["stage"] == "test"]
        assert len(t1) == 4 and {int(r["steps"]) for r in t1} == {b // 4}
        assert len(t2) == 3 and {int(r["steps"]) for r in t2} == {b} and all(r["split"] == "val" for r in t2)
        # stage 2 = the 3 best stage-1 configs by val, continued: their curves start at step 0
        best3 = sorted(t1, key=lambda r: float(r["value"]))[:3]
        assert {r["config"] for r in t2} == {r["config"] for r in best3}
        for r in t2:
            assert conv.curve_of(curves, r["run_dir"])[0][0] == 0
        # the test seeds run the config with the lowest val metric at B, scored on test, curves on val
        chosen = min(t2, key=lambda r: float(r["value"]))["config"]
        assert {r["config"] for r in test} == {chosen} and {r["split"] for r in test} == {"test"}
        assert sorted(int(r["seed"]) for r in test) == [0, 1]
    assert any("@wall" in r["method"] for r in rows)  # the same-wall-clock rows of the sampler-free method
    md = (res / "converged.md").read_text()
    assert "| sa-nce K=1 |" in md and "Time to quality" in md and "K-sweep" in md and "2/2" in md
    assert (res / "curves_8gaussians.png").stat().st_size > 10_000
    # --report-only from a copy of the CSVs alone gives the same reports
    again = tmp_path / "again"
    again.mkdir()
    for name in ("pilot_runs.csv", "pilot_curves.csv", "converged_runs.csv", "converged_curves.csv"):
        shutil.copy(res / name, again / name)
    conv.main(["--quick", "--report-only", "--results", str(again)])
    assert (again / "converged.md").read_text() == md
    assert (again / "pilot.md").read_text() == (res / "pilot.md").read_text()
    assert (again / "curves_8gaussians.png").exists()

    # the run dirs lost (a new checkout): resuming restores the finished runs from the CSVs and trains none
    shutil.rmtree(tmp_path / "runs")
    conv.main(["--quick", "--root", str(tmp_path / "runs"), "--results", str(res)])
    assert not list((tmp_path / "runs").rglob("checkpoint.pt"))
    restored = list((tmp_path / "runs").rglob("restored.json"))
    assert len(restored) == len(pilot) + len(rows)
    def key(r: dict) -> tuple:
        return r["run_dir"], int(r.get("step", 0))

    assert sorted(conv.read_csv(res / "converged_runs.csv"), key=key) == sorted(rows, key=key)
    assert sorted(conv.read_csv(res / "converged_curves.csv"), key=key) == sorted(curves, key=key)
    assert (res / "converged.md").read_text() == md

    # a test seed whose model put most of its mass outside the grid is counted as escaped, kept in the mean
    # (a result), and the median shows the typical seed
    seed0 = next(r for r in rows if r["method"] == "nce" and r["stage"] == "test" and r["seed"] == "0")
    seed0.update(mass_outside="0.9", value="5000.0")
    assert conv.escaped_seeds(rows, "8gaussians", "nce") == [0]
    assert conv.escaped_seeds(rows, "8gaussians", "pcd") == []
    md2 = conv.converged_report(rows, curves, pilot, conv.read_csv(res / "pilot_curves.csv"), [],
                                ["nce", "pcd", "sa-nce-K1"], 2, None)
    line = next(x for x in md2.splitlines() if x.startswith("| nce |"))
    other = next(r for r in rows if r["method"] == "nce" and r["stage"] == "test" and r["seed"] == "1")
    cells = [c.strip() for c in line.split("|")]
    assert cells[9] == "1/2" and float(cells[6]) == pytest.approx((5000 + float(other["value"])) / 2, rel=1e-3)
    assert float(cells[8]) == pytest.approx((5000 + float(other["value"])) / 2, rel=1e-3)  # median of two


@pytest.mark.parametrize("args", [["--pilot-steps", "toy2d=many"], ["--datasets", "nope"],
                                  ["--stage", "main", "--budget", "8gaussians=x"]])
def test_bad_arguments_are_one_error_line_and_exit_2(conv, tmp_path, capsys, args):
    with pytest.raises(SystemExit) as e:
        conv.main([*args, "--root", str(tmp_path / "runs"), "--results", str(tmp_path / "res")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert not (tmp_path / "runs").exists()


def test_beyond_budget_continues_the_b_step_run_with_the_longer_one(conv):
    """Seed 0's B-step run ends at 3.0 and its longer run dips to 2.9 after B, ending at 3.2; seed 1 only gets
    worse after B (best after B 3.5 > 3.4 at B); seed 2 has no B-step run (no pair). Points at or before B of the
    longer run are not 'after B', whatever their value."""
    def run(rd, method, stage, seed, steps, pts):
        row = {"dataset": "8gaussians", "method": method, "stage": stage, "status": "ok", "seed": str(seed),
               "steps": str(steps), "run_dir": rd}
        return row, [{"run_dir": rd, "step": x, "seconds": x / 100, "value": v} for x, v in pts]

    rows, curves = [], []
    for args in [("a", "nce", "test", 0, 1000, [(0, 9.0), (500, 4.0), (1000, 3.0)]),
                 ("b", "nce@wall3000", "wall", 0, 3000, [(0, 9.0), (900, 1.0), (1800, 2.9), (2700, 3.2)]),
                 ("c", "nce", "test", 1, 1000, [(0, 9.0), (1000, 3.4)]),
                 ("d", "nce@wall3000", "wall", 1, 3000, [(900, 3.3), (1800, 3.5), (2700, 4.0)]),
                 ("e", "nce@wall3000", "wall", 2, 3000, [(1800, 2.0)])]:
        r, c = run(*args)
        rows.append(r)
        curves += c
    assert conv.beyond_budget(rows, curves, "8gaussians", "nce@wall3000") == {0: (3.0, 2.9, 3.2), 1: (3.4, 3.5, 4.0)}
    assert conv.beyond_budget(rows, curves, "digits", "nce@wall3000") == {}


def test_restored_identity_has_the_runs_own_fields(conv, tmp_path):
    """restore_run_dirs writes `study_run.json` from a CSV row by `IDENTITY_FIELDS`: they must be exactly the
    keys of `Run.identity()` (what a live run writes and the resume compares), typed the same."""
    base = conv.base
    run = base.Run("8gaussians", "nce", "test", base.grid("toy2d", "nce", 3)[0], 2, "test", 1000, tmp_path)
    ident = run.identity()
    assert tuple(ident) == base.IDENTITY_FIELDS
    row = {**{k: str(v) for k, v in ident.items()}, "status": "failed", "error": "x", "run_dir": "r", "metric": "nll"}
    assert conv.restore_run_dirs(tmp_path, [row], []) == 1
    assert json.loads((tmp_path / "r" / "study_run.json").read_text()) == ident
