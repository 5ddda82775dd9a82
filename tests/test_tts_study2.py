"""benchmarks/tts_study2.py's bookkeeping on hand-made per-utterance files: val choice → test row, the seed
spread, FM rows, and the claim locks that let several copies share the work."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench_fixtures import load_benchmark

S = load_benchmark("tts_study2")
IDS = [f"u{i}" for i in range(6)]


def _write(results: Path, name: str, cond: str, split: str, rows: list[dict]) -> None:
    from ebtk.io import atomic_write_text
    from ebtk.tts.evaluate import per_utterance_csv

    atomic_write_text(S.raw_path(results, name, cond, split), per_utterance_csv(rows))


def _rows(system: str, k: int | None, eta: float | None, mcd: list[float], dns: float = 2.0) -> list[dict]:
    return [{"id": i, "system": system, "steps": k, "step_size": eta, "mcd": m, "logf0_rmse": 0.2, "vuv": 0.1,
             "dnsmos": dns, "mel_mse": None} for i, m in zip(IDS, mcd)]


HYP = [5.0, 5.2, 4.8, 5.1, 4.9, 5.0]


def _study(results: Path, shifts: dict[str, float]) -> None:
    """Base rows for both conditions; per refiner, val prefers 2 × η 0.5 and test moves MCD by its shift."""
    for cond in S.CONDITIONS:
        _write(results, S.BASE, cond, "val", _rows("hypothesis", 0, None, HYP))
        _write(results, S.BASE, cond, "test", _rows("vocoded reference", None, None, [4.0] * 6)
               + _rows("hypothesis", 0, None, HYP))
        for name, shift in shifts.items():
            _write(results, name, cond, "val", _rows("refined", 1, 1.0, [m - 0.05 for m in HYP])
                   + _rows("refined", 2, 0.5, [m - 0.1 for m in HYP]))
            _write(results, name, cond, "test", _rows("refined", 2, 0.5, [m + shift for m in HYP])
                   + _rows("refined", 1, 1.0, [m + 1.0 for m in HYP]))


def test_table_marks_the_val_choice_and_the_share_of_the_gap(tmp_path: Path):
    _study(tmp_path, {"delta": -0.25})
    table = S.report(tmp_path, ["delta"])
    chosen = [ln for ln in table.splitlines() if ln.startswith("| delta | 2 × η 0.5 | **yes**")]
    assert len(chosen) == 2  # both conditions
    # the hypothesis → reference gap is mean(HYP) − 4 = 1.0 dB; −0.25 dB closes a quarter of it
    assert "| -0.250 [-0.250, -0.250] | +25.0 % |" in chosen[0]
    assert any(ln.startswith("| delta | 1 × η 1 |  |") and "-100.0 %" in ln for ln in table.splitlines())


def test_seed_spread_is_a_t_interval_over_the_seed_means(tmp_path: Path):
    shifts = {"delta": -0.1, "delta-s1": -0.2, "delta-s2": -0.3}
    _study(tmp_path, shifts)
    line = next(ln for ln in S.seeds_report(tmp_path).splitlines() if ln.startswith("| delta | from-text"))
    # mean −0.2, sd 0.1, t_{0.975, 2} = 4.3027: half-width 4.3027 · 0.1 / √3 = 0.2484
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert f"| -0.200 | -0.300 – -0.100 | [{-0.2 - half:+.3f}, {-0.2 + half:+.3f}] |" in line
    assert "delta-s1: 2 × η 0.5, -0.200" in line
    assert line.endswith("| delta: +0.000 [+0.000, +0.000]; delta-s1: +0.000 [+0.000, +0.000]; delta-s2: "
                         "+0.000 [+0.000, +0.000] | +0.000 [+0.000, +0.000] |")  # DNSMOS unchanged by every seed


def test_seed_spread_of_dnsmos_is_a_t_interval_over_the_seed_means(tmp_path: Path):
    """ΔDNSMOS +0.1, +0.2, +0.6 (mean +0.3, s = √0.07): t-interval +0.3 ± 4.3027·√0.07/√3."""
    shifts = {"delta": (-0.1, 0.1), "delta-s1": (-0.2, 0.2), "delta-s2": (-0.3, 0.6)}
    _study(tmp_path, {name: d for name, (d, _) in shifts.items()})
    for name, (d_mcd, d_dns) in shifts.items():
        _write(tmp_path, name, "from-text", "test", _rows("refined", 2, 0.5, [m + d_mcd for m in HYP], 2.0 + d_dns))
    line = next(ln for ln in S.seeds_report(tmp_path).splitlines() if ln.startswith("| delta | from-text"))
    half = 4.302652729911275 * math.sqrt(0.07) / math.sqrt(3)
    assert "delta-s2: +0.600 [+0.600, +0.600]" in line
    assert line.endswith(f"| +0.300 [{0.3 - half:+.3f}, {0.3 + half:+.3f}] |")


def test_ablation_compares_one_remedy_run_with_the_default_seeds_prediction_interval(tmp_path: Path):
    """Default seeds' ΔMCD −0.1, −0.2, −0.3 (mean −0.2, s 0.1): one more seed falls in −0.2 ± 4.3027·0.1·√(4/3)
    = [−0.697, +0.297]; ΔDNSMOS +0.2, +0.3, +0.4 likewise in [−0.197, +0.797]. A remedy at ΔMCD +0.1 and
    ΔDNSMOS −0.5 ties on MCD and is worse on DNSMOS; one at −0.8 and +1.0 is better on both."""
    runs = {"delta": (-0.1, 0.2), "delta-s1": (-0.2, 0.3), "delta-s2": (-0.3, 0.4), "delta-none": (0.1, -0.5),
            "delta-fresh": (-0.8, 1.0)}
    _study(tmp_path, {name: d_mcd for name, (d_mcd, _) in runs.items()})
    for cond in S.CONDITIONS:  # test rows again, now with each run's DNSMOS shift (the hypothesis has 2.0)
        for name, (d_mcd, d_dns) in runs.items():
            _write(tmp_path, name, cond, "test", _rows("refined", 2, 0.5, [m + d_mcd for m in HYP], 2.0 + d_dns))
    lines = S.ablation_report(tmp_path).splitlines()
    half = 4.302652729911275 * 0.1 * math.sqrt(4 / 3)
    pred = [ln for ln in lines if ln.startswith("| default, one more seed |")]
    assert len(pred) == 2 and all(f"| [{-0.2 - half:+.3f}, {-0.2 + half:+.3f}] | [{0.3 - half:+.3f}, "
                                  f"{0.3 + half:+.3f}] |" in ln for ln in pred)
    none = [ln for ln in lines if "| delta-none |" in ln]
    fresh = [ln for ln in lines if "| delta-fresh |" in ln]
    assert len(none) == len(fresh) == 2  # both conditions
    assert all("| +0.100 [+0.100, +0.100] | -0.500 [-0.500, -0.500] |" in ln
               and ln.endswith("| inside (tie); worse |") for ln in none)
    assert all(ln.endswith("| better; better |") for ln in fresh)
    assert not any("delta-oof" in ln for ln in lines)  # not run: no row


def test_ablation_sizes_each_remedys_training_residuals_against_the_val_hypotheses(tmp_path: Path):
    """target_rms 0.6 and 0.8 in two logged windows: mean square (0.36 + 0.64) / 2 = 0.5, and a bootstrap of two
    values spans them (both resamples of one value have probability 1/4 > 2.5 %); the val hypotheses'
    per-utterance mel MSE 0.3 … 0.8 has mean 0.55. A run without a curve, a window without target_rms and the
    from-text rows (no mel MSE) add nothing."""
    from ebtk.io import atomic_write_text

    _study(tmp_path, {"delta": -0.1, "delta-oof": 0.1})
    rows = _rows("hypothesis", 0, None, HYP)
    for r, mse in zip(rows, (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)):
        r["mel_mse"] = mse
    _write(tmp_path, S.BASE, "teacher-forced", "val", rows)
    assert S.residual_size_lines(tmp_path, "delta")[-1].startswith(
        "| what the refiner meets: the val hypotheses | base | 6 utterances | 0.550 [")
    atomic_write_text(tmp_path / "raw" / "delta-oof.train-curve.csv",
                      "step,loss,target_rms\n100,0.5,0.6\n200,0.4,0.8\n300,0.4,\n")
    lines = [ln for ln in S.ablation_report(tmp_path).splitlines()
             if ln.startswith("|") and ("logged windows" in ln or "val hyp" in ln)]
    assert lines[0] == "| out-of-fold | delta-oof | 2 logged windows | 0.500 [0.360, 0.640] |"
    assert len(lines) == 2 and lines[1].startswith("| what the refiner meets:")
    assert S.residual_size_lines(tmp_path / "empty", "delta") == []


def test_fm_rows_pair_with_the_acoustic_hypothesis(tmp_path: Path):
    _study(tmp_path, {})
    for cond in S.CONDITIONS:
        _write(tmp_path, S.FM, cond, "val", _rows("flow matching", 4, None, [m + 0.5 for m in HYP])
               + _rows("flow matching", 10, None, [m + 0.3 for m in HYP]))
        _write(tmp_path, S.FM, cond, "test", _rows("flow matching", 10, None, [m + 0.4 for m in HYP]))
    fm = [ln for ln in S.report(tmp_path, []).splitlines() if ln.startswith("| fm |")]
    assert len(fm) == 2 and all(ln.startswith("| fm | 10 Euler steps | **yes** |") for ln in fm)
    assert all("| +0.400 [+0.400, +0.400] | -40.0 % |" in ln for ln in fm)


def test_a_refiner_val_rejects_reports_the_hypothesis_as_its_chosen_row(tmp_path: Path):
    _study(tmp_path, {})
    for cond in S.CONDITIONS:  # every val setting worse than the hypothesis: the choice is 0 steps
        _write(tmp_path, "bad", cond, "val", _rows("refined", 1, 1.0, [m + 3.0 for m in HYP]))
        _write(tmp_path, "bad", cond, "test", _rows("refined", 1, 1.0, [m + 3.0 for m in HYP]))
    rows = [ln for ln in S.report(tmp_path, ["bad"]).splitlines() if ln.startswith("| bad | 0 (hypothesis)")]
    # the hypothesis's own test MCD: mean(HYP) = 5.0; the bootstrap interval of HYP's mean lies within its range
    assert len(rows) == 2 and all(ln.startswith("| bad | 0 (hypothesis) | **yes** | 6 | 5.00 [4.9") for ln in rows)


def test_small_eta_probe_report_pairs_each_step_size_with_the_val_hypothesis(tmp_path: Path):
    from ebtk.io import atomic_write_text
    from ebtk.tts.evaluate import per_utterance_csv

    _study(tmp_path, {})
    atomic_write_text(S.small_eta_path(tmp_path, "ssm-hyp"),
                      per_utterance_csv(_rows("refined", 1, 0.3, [m + 2.0 for m in HYP], dns=1.5)
                                        + _rows("refined", 1, 0.01, [m - 0.02 for m in HYP], dns=2.1)))
    lines = [ln for ln in S.small_eta_report(tmp_path, ["delta", "ssm-hyp"]).splitlines() if ln.startswith("| ssm")]
    # sorted by η; every utterance moves by the same amount, so each paired interval is a point
    assert lines == ["| ssm-hyp | 0.01 | 6 | -0.020 [-0.020, -0.020] | +0.100 [+0.100, +0.100] |",
                     "| ssm-hyp | 0.3 | 6 | +2.000 [+2.000, +2.000] | -0.500 [-0.500, -0.500] |"]


def test_claim_is_exclusive_while_held_and_taken_over_from_a_dead_holder(tmp_path: Path):
    lock = tmp_path / "x.lock"
    with S.claim(lock) as mine:
        assert mine and lock.read_text() == str(os.getpid())
        with S.claim(lock) as again:
            assert not again  # this process holds it: a second claim waits its turn
    assert not lock.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    lock.write_text(dead)  # a crashed copy's claim
    with S.claim(lock) as mine:
        assert mine and lock.read_text() == str(os.getpid())


@pytest.mark.parametrize("bad", ["", "not a pid"])
def test_unreadable_claim_is_taken_over(tmp_path: Path, bad: str):
    lock = tmp_path / "x.lock"
    lock.write_text(bad)
    with S.claim(lock) as mine:
        assert mine


def test_training_curve_is_exported_from_tensorboard(tmp_path: Path):
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    w = SummaryWriter(str(run / "tb"))
    for step, (loss, trace) in enumerate([(1.0, -0.5), (-3.0, -4.0), (-9.5, -11.0)], start=1):
        w.add_scalar("train/loss", loss, step * 100)
        if step > 1:
            w.add_scalar("train/trace", trace, step * 100)
    w.add_scalar("eval/mcd", 5.0, 300)  # not a training scalar
    w.close()
    S.export_curve(run, "ssm-hyp", tmp_path)
    lines = (tmp_path / "raw" / "ssm-hyp.train-curve.csv").read_text().splitlines()
    assert lines == ["step,loss,trace", "100,1,", "200,-3,-4", "300,-9.5,-11"]


def test_scoring_one_setting_at_a_time_joins_to_the_one_call_file_and_resumes(tmp_path: Path, monkeypatch):
    """`scored` splits a grid into per-setting parts (so a stopped session loses at most one setting) and
    joins them into exactly the file one `score_systems` call over the whole grid gives; on resume only the
    settings without a part are scored again. The scoring itself is replaced by rows that depend only on the
    setting (the property `scored` relies on), so the test sees which settings were scored."""
    import ebtk.tts.evaluate as ev

    calls: list[list] = []

    def fake_score(synth, utts, grid, reference=False, hypothesis=True, **kw):
        calls.append((list(grid), reference, hypothesis))
        rows = _rows("vocoded reference", None, None, [4.0] * 6) if reference else []
        rows += _rows("hypothesis", 0, None, HYP) if hypothesis else []
        for k, eta in grid:
            rows += _rows("refined", k, eta, [m - 0.01 * k * eta for m in HYP])
        return rows

    monkeypatch.setattr(ev, "score_systems", fake_score)
    grid = [(1, 0.5), (2, 0.5), (1, 1.0)]
    whole = ev.per_utterance_csv(fake_score(None, None, grid, hypothesis=False))
    calls.clear()
    path = tmp_path / "raw" / "x.from-text.val.csv"
    # a previous session finished the second setting only
    part = path.parent / "parts" / "x.from-text.val.2x0.5.csv"
    part.parent.mkdir(parents=True)
    part.write_text(ev.per_utterance_csv(fake_score(None, None, [(2, 0.5)], hypothesis=False)))
    calls.clear()
    S.scored(path, None, None, grid, condition="from-text", hypothesis=False)
    assert calls == [([(1, 0.5)], False, False), ([(1, 1.0)], False, False)]
    assert path.read_text() == whole
    assert not any(part.parent.iterdir())  # parts removed once joined
    # the shared rows (reference, hypothesis) come once, first, as in one call over the whole grid
    both = tmp_path / "raw" / "both.csv"
    S.scored(both, None, None, grid, reference=True)
    assert both.read_text() == ev.per_utterance_csv(fake_score(None, None, grid, reference=True))
    S.scored(tmp_path / "raw" / "base.csv", None, None, [], condition="from-text")
    assert (tmp_path / "raw" / "base.csv").read_text() == ev.per_utterance_csv(_rows("hypothesis", 0, None, HYP))


def test_test_settings_show_divergence_once_per_method():
    # a main run: its val choice, the paper's 1 × η 1 and 100 steps at the chosen η (0 steps is the hypothesis)
    assert S.test_settings("delta", 2, 0.5) == [(1, 1.0), (2, 0.5), (100, 0.5)]
    assert S.test_settings("ssm-path", 0, 1.0) == [(1, 1.0), (100, 1.0)]
    assert S.test_settings("nce", 1, 1.0) == [(1, 1.0), (100, 1.0)]
    # extra seeds and ablation variants: no divergence row
    for name in ("delta-s1", "delta-s2", "nce-s2", "sa-nce-s1", "delta-none", "delta-fresh", "delta-oof"):
        assert S.test_settings(name, 2, 0.5) == [(1, 1.0), (2, 0.5)]
    assert S.SECONDARY <= set(S.REFINERS) and not S.SECONDARY & {"delta", "nce", "sa-nce", "delta-text"}


def test_status_names_the_refiners_scored_on_a_rebuilt_acoustic_run(tmp_path: Path):
    results, ac = tmp_path / "results", tmp_path / "acoustic"
    (results / "raw").mkdir(parents=True)
    ac.mkdir()
    S.note_acoustic(ac, "delta", results)  # the original run: nothing to note
    (ac / S.RESTORED).write_text('{"weights": "fp16 cast to fp32"}\n')
    S.note_acoustic(ac, "delta-s2", results)
    _write(results, "delta", "from-text", "val", _rows("refined", 1, 1.0, HYP))  # scored: it was trained
    names = ["delta", "delta-s2", "delta-s1"]
    rows = {ln.split(" | ")[0][2:]: ln.split(" | ")[2] for ln in S.status_report(results, tmp_path / "runs",
                                                                                names).splitlines()
            if ln.startswith("| delta")}
    assert rows == {"delta": "original", "delta-s2": "rebuilt", "delta-s1": "–"}  # delta-s1: not started
    assert S.rebuilt_path(results, "delta-s2").read_text() == '{"weights": "fp16 cast to fp32"}\n'


def test_a_refiner_still_training_on_a_rebuilt_acoustic_run_is_noted_before_training(tmp_path: Path, monkeypatch):
    """STATUS labels a run in progress by its acoustic run: the note is written before training starts, so a
    stopped session's half-trained refiner is not listed as trained on the original run."""
    results, ac = tmp_path / "results", tmp_path / "acoustic"
    (results / "raw").mkdir(parents=True)
    ac.mkdir()
    (ac / S.RESTORED).write_text("{}\n")
    seen: list[bool] = []

    def stopped(run, name, *a):  # the session ends while it trains
        seen.append(S.rebuilt_path(results, name).is_file())
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "train_refiner", stopped)
    with pytest.raises(KeyboardInterrupt):
        S.run_refiner("sa-nce", tmp_path / "out", ac, results, [(1, 1.0)], 3000, [])
    assert seen == [True]
    (tmp_path / "out" / "sa-nce" / "tb").mkdir(parents=True)  # started: a run dir without a checkpoint yet
    row = [ln for ln in S.status_report(results, tmp_path / "out", ["sa-nce"], fm=False).splitlines()
           if ln.startswith("| sa-nce")]
    assert row[0].split(" | ")[2] == "rebuilt"


def test_a_refiner_on_the_rebuilt_acoustic_run_pairs_with_its_own_hypothesis(tmp_path: Path):
    _study(tmp_path, {"delta": -0.25, "delta-s2": -0.25})
    (tmp_path / "acoustic").mkdir()
    (tmp_path / "acoustic" / S.RESTORED).write_text("{}\n")
    S.note_acoustic(tmp_path / "acoustic", "delta-s2", tmp_path)
    rebuilt = [m + 0.5 for m in HYP]  # its hypothesis scores differ from the original run's
    for cond in S.CONDITIONS:
        for split in ("val", "test"):
            _write(tmp_path, S.REBUILT_BASE, cond, split, _rows("hypothesis", 0, None, rebuilt))
    rows = S.study_rows(tmp_path, "delta-s2", "from-text", "test")
    assert [r["mcd"] for r in rows if r["system"] == "hypothesis"] == rebuilt
    assert [r["mcd"] for r in rows if r["system"] == "vocoded reference"] == [4.0] * 6  # the original's
    assert S.base_name(tmp_path, "delta") == S.BASE and S.base_name(tmp_path, "delta-s2") == S.REBUILT_BASE
    lines = S.report(tmp_path, ["delta", "delta-s2"]).splitlines()
    chosen = {ln.split(" | ")[0][2:]: ln for ln in lines if "| 2 × η 0.5 | **yes**" in ln}
    assert "| -0.250 [-0.250, -0.250] |" in chosen["delta"]
    assert "| -0.750 [-0.750, -0.750] |" in chosen["delta-s2"]  # paired with its own (worse) hypothesis


def test_rebuilt_acoustic_check_pairs_the_two_runs_hypotheses(tmp_path: Path):
    _study(tmp_path, {})
    _write(tmp_path, S.REBUILT_BASE, "teacher-forced", "val", _rows("hypothesis", 0, None, [m + 0.01 for m in HYP]))
    lines = S.rebuilt_report(tmp_path).splitlines()
    rows = [ln for ln in lines if ln.startswith("| teacher-forced")]
    assert len(rows) == 1 and not any(ln.startswith("| from-text") for ln in lines)  # only where both exist
    assert rows[0].startswith("| teacher-forced | val | this study's | 6 | +0.0100 [+0.0100, +0.0100] | "
                              "+0.0000 [+0.0000, +0.0000]")
    assert rows[0].endswith("| 0.0100 |")


def test_rebuilt_acoustic_check_reads_the_original_rows_kept_by_another_script(tmp_path: Path, monkeypatch):
    """A study whose only acoustic run is rebuilt pairs it with the original's rows as another script kept them
    (originals.json: CSV path and system name), e.g. tts_ship's fp32 and fp16 hypotheses."""
    import json

    from ebtk.io import atomic_write_text
    from ebtk.tts.evaluate import per_utterance_csv

    monkeypatch.setattr(S, "ROOT", tmp_path)
    _write(tmp_path / "res", S.REBUILT_BASE, "from-text", "test", _rows("hypothesis", 0, None, HYP))
    atomic_write_text(tmp_path / "ship.csv", per_utterance_csv(
        _rows("hypothesis", 0, None, [m - 0.02 for m in HYP]) + _rows("hypothesis (fp16)", 0, None, HYP)
        + _rows("refined", 1, 1.0, [3.0] * 6)))
    (tmp_path / "res" / S.ORIGINALS).write_text(json.dumps(
        {"from-text": {"test": [["ship.csv", "hypothesis"], ["ship.csv", "hypothesis (fp16)"]]}}))
    rows = [ln for ln in S.rebuilt_report(tmp_path / "res").splitlines() if ln.startswith("| from-text")]
    assert len(rows) == 2
    assert rows[0].startswith("| from-text | test | `ship.csv` hypothesis | 6 | +0.0200 [+0.0200, +0.0200] |")
    assert rows[1].startswith("| from-text | test | `ship.csv` hypothesis (fp16) | 6 | +0.0000 [+0.0000, +0.0000] |")
    assert rows[1].endswith("| 0.0000 |")


def test_a_trained_refiners_conditions_are_scored_by_whichever_copy_claims_each(tmp_path: Path, monkeypatch):
    """Training (and the first step) is claimed per refiner, scoring per condition: while another live process
    holds the teacher-forced claim, a copy scores only from text; while another trains, it comes back later."""
    import ebtk.tts.bundle as bundle

    calls: list[tuple] = []
    trained = {"yes": True}
    monkeypatch.setattr(S, "train_refiner", lambda run, name, *a: calls.append(("train", name)))
    monkeypatch.setattr(S, "trained_to", lambda run, steps: trained["yes"])
    for f in ("note_acoustic", "export_curve", "first_step"):
        monkeypatch.setattr(S, f, lambda *a, **k: None)
    monkeypatch.setattr(S, "split_inputs", lambda acoustic, run: "inputs")
    monkeypatch.setattr(bundle, "bundle_from_run", lambda run: None)
    monkeypatch.setattr(bundle, "Synthesizer", lambda b: None)
    monkeypatch.setattr(S, "evaluate_refiner", lambda run, name, inputs, results, grid, conds: calls.append(
        ("score", name, inputs, conds)))
    out, results = tmp_path / "out", tmp_path / "results"
    args = (out, tmp_path / "acoustic", results, [(1, 1.0)], 3000, [])
    with S.claim(out / "delta.teacher-forced.lock") as held:  # a live process (this one) scores teacher-forced
        assert held
        assert S.run_refiner("delta", *args) == ("inputs", False)
    assert calls == [("train", "delta"), ("score", "delta", "inputs", ("from-text",))]
    calls.clear()
    trained["yes"] = False
    with S.claim(out / "delta.lock"):  # another copy is training it
        assert S.run_refiner("delta", *args) == (None, True)
    assert calls == []
    for cond in S.CONDITIONS:  # both conditions scored: nothing left to do, no claim taken
        _write(results, "delta", cond, "test", _rows("refined", 1, 1.0, HYP))
    assert S.run_refiner("delta", *args, inputs="kept") == ("kept", False) and calls == []


def test_fold_runs_are_claimed_one_per_copy(tmp_path: Path, monkeypatch):
    """The out-of-fold ablation's two acoustic runs: a copy trains the fold no other live copy holds, so two
    copies train both side by side; without waiting it returns at once."""
    import ebtk.train.checkpoint as checkpoint
    import ebtk.train.trainer as trainer

    trained: list[str] = []
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path: {"config": {"train": {"steps": 2000}}})
    monkeypatch.setattr(trainer, "train", lambda task, obj, run, **kw: trained.append(
        next(o for o in kw["overrides"] if o.startswith("data.train_part="))))
    monkeypatch.setattr(S, "trained_to", lambda run, steps: run.name in done)
    done: set[str] = set()
    out = tmp_path / "out"
    with S.claim(out / "acoustic-part0of2.lock") as held:  # another live copy trains fold 0
        assert held
        runs = S.fold_runs(out, tmp_path / "acoustic", wait=False)
    assert trained == ["data.train_part=1/2"]
    assert [r.name for r in runs] == ["acoustic-part0of2", "acoustic-part1of2"]
    trained.clear()
    done |= {"acoustic-part0of2", "acoustic-part1of2"}
    assert S.fold_runs(out, tmp_path / "acoustic") == runs and trained == []  # both trained: nothing, no wait


def test_a_study_on_a_rebuilt_run_alone_scores_the_vocoded_reference_with_its_hypothesis(tmp_path: Path,
                                                                                          monkeypatch):
    """The broad-corpus study has no original acoustic run: its rebuilt run's test rows carry the vocoded
    reference, so the report has its floor and share of the gap; only the condition asked for is scored."""
    import ebtk.tts.bundle as bundle
    from ebtk.io import atomic_write_text
    from ebtk.tts.evaluate import per_utterance_csv

    monkeypatch.setattr(bundle, "bundle_from_run", lambda run: None)
    monkeypatch.setattr(bundle, "Synthesizer", lambda b: None)
    (tmp_path / "acoustic").mkdir()
    (tmp_path / "acoustic" / S.RESTORED).write_text("{}\n")
    S.note_acoustic(tmp_path / "acoustic", "delta", tmp_path)
    seen = []

    def scored(path, synth, utts, grid, condition, reference=False, hypothesis=True):
        seen.append((path.name, condition, reference))
        rows = (_rows("vocoded reference", None, None, [4.0] * 6) if reference else []) \
            + (_rows("hypothesis", 0, None, HYP) if hypothesis else []) \
            + [r for k, e in grid for r in _rows("refined", k, e, [m - 0.1 * k for m in HYP])]
        atomic_write_text(path, per_utterance_csv(rows))

    monkeypatch.setattr(S, "scored", scored)
    inputs = type("Inputs", (), {"utterances": lambda self, split: []})()
    S.evaluate_refiner(tmp_path / "run", "delta", inputs, tmp_path, [(1, 1.0), (2, 1.0)], ("from-text",))
    assert seen == [(f"{S.REBUILT_BASE}.from-text.val.csv", "from-text", False),
                    (f"{S.REBUILT_BASE}.from-text.test.csv", "from-text", True),
                    ("delta.from-text.val.csv", "from-text", False),
                    ("delta.from-text.test.csv", "from-text", False)]
    table = S.report(tmp_path, ["delta"])
    assert "| vocoded reference | – | – | 6 | 4.00" in table and "### teacher-forced" not in table
    chosen = next(ln for ln in table.splitlines() if "| 2 × η 1 | **yes**" in ln)
    assert "| -0.200 [-0.200, -0.200] |" in chosen  # paired with the rebuilt run's own hypothesis


def test_the_plan_is_every_refiner_any_copy_was_started_with_and_the_status_shows_pending_ones(tmp_path: Path):
    assert S.planned(tmp_path) == [*S.REFINERS, S.FM]  # no plan: study v2's every refiner and fm
    S.add_to_plan(tmp_path, ["nce", "delta"])
    S.add_to_plan(tmp_path, ["sa-nce", "delta"])
    assert S.planned(tmp_path) == ["delta", "nce", "sa-nce"]  # REFINERS order, no fm
    _write(tmp_path, "delta", "from-text", "val", _rows("refined", 1, 1.0, HYP))
    _write(tmp_path, "delta", "from-text", "test", _rows("refined", 1, 1.0, HYP))
    status = S.status_report(tmp_path, tmp_path / "runs", ["delta", "nce", "sa-nce"], fm=False).splitlines()
    rows = {ln.split(" | ")[0][2:]: ln.split(" | ")[-1] for ln in status if ln.startswith("| ") and "|---" not in ln
            and not ln.startswith("| refiner")}
    assert rows == {"delta": "done / done |", "nce": "– / – |", "sa-nce": "– / – |"}
