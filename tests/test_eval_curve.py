"""The trainer's learning curve (`train.eval_every` → eval_curve.jsonl): its rows are the task's own evaluation
of the model at that step on `train.eval_split`, the training clock excludes them, they leave training
untouched, and a resume keeps the rows up to its checkpoint and redoes the rest."""

from __future__ import annotations

import json
import time

import pytest

from ebtk.errors import EbtkError
from ebtk.train.trainer import CURVE, Trainer, load_run, read_curve, resolve_config, train

TINY = ["data.n_test=200", "eval.grid=40", "eval.n_samples=16", "eval.sample_steps=2", "train.threads=1"]


def _train(out, *extra):
    return train("toy2d", "nce", out, overrides=[*TINY, *extra], progress=False)


def test_curve_rows_are_the_tasks_evaluation_on_the_curve_split(tmp_path):
    m = _train(tmp_path, "train.steps=12", "train.eval_every=4", "train.eval_split=val")
    rows = read_curve(tmp_path)
    assert [r["step"] for r in rows] == [0, 4, 8, 12] and {r["split"] for r in rows} == {"val"}
    secs = [r["train_seconds"] for r in rows]
    assert secs[0] == 0.0 and secs == sorted(secs) and secs[-1] == pytest.approx(m["train_seconds"], abs=1e-3)
    # the instrument: the last row is the toy2d task's val NLL of the final model; metrics.json scores test
    config, task, model, objective, step = load_run(tmp_path)
    task.eval_cfg.split = "val"
    assert rows[-1]["nll"] == pytest.approx(task.evaluate(model)["nll"], abs=1e-9)
    task.eval_cfg.split = "test"
    assert m["nll"] == pytest.approx(task.evaluate(model)["nll"], abs=1e-9)
    assert abs(rows[-1]["nll"] - m["nll"]) > 1e-6  # two different samples of the density


def test_same_split_reuses_the_final_evaluation(tmp_path):
    m = _train(tmp_path, "train.steps=8", "train.eval_every=4")
    rows = read_curve(tmp_path)
    assert [r["step"] for r in rows] == [0, 4, 8] and rows[-1]["split"] == "test"
    assert rows[-1]["nll"] == m["nll"]


def test_evaluation_leaves_training_untouched(tmp_path):
    a = _train(tmp_path / "a", "train.steps=10")
    b = _train(tmp_path / "b", "train.steps=10", "train.eval_every=3", "train.eval_split=val")
    assert a["nll"] == b["nll"] and a["mmd"] == b["mmd"]
    assert not (tmp_path / "a" / CURVE).exists()


def test_the_clock_excludes_the_evaluations(tmp_path, monkeypatch):
    """Each evaluation made 0.3 CPU seconds slower (the real one, then a busy wait): neither training clock
    (wall, process CPU) may see it."""
    cfg = resolve_config("toy2d", "nce", overrides=[*TINY, "train.steps=8", "train.eval_every=2"])
    tr = Trainer(cfg, tmp_path, progress=False)
    real = tr.task.evaluate

    def slow(*a, **k):
        out = real(*a, **k)
        t = time.process_time()
        while time.process_time() - t < 0.3:
            pass
        return out

    monkeypatch.setattr(tr.task, "evaluate", slow)
    t0 = time.perf_counter()
    m = tr.fit()
    wall = time.perf_counter() - t0
    rows = read_curve(tmp_path)
    assert len(rows) == 5  # steps 0, 2, 4, 6, 8 (the last one is the final evaluation)
    assert m["train_seconds"] < wall - 5 * 0.3
    assert rows[-1]["train_cpu_seconds"] < wall - 5 * 0.3 and rows[-1]["train_seconds"] == m["train_seconds"]


def test_resume_keeps_rows_to_the_checkpoint_and_redoes_the_rest(tmp_path):
    _train(tmp_path, "train.steps=8", "train.eval_every=4", "train.eval_split=val", "train.ckpt_every=4")
    # an interrupted attempt had evaluated step 10 after the checkpoint at 8: that row is redone
    path = tmp_path / CURVE
    path.write_text(path.read_text() + json.dumps({"step": 10, "train_seconds": 99.0, "split": "val"}) + "\n")
    _train(tmp_path, "train.steps=12", "train.eval_every=4", "train.eval_split=val", "train.ckpt_every=4")
    rows = read_curve(tmp_path)
    assert [r["step"] for r in rows] == [0, 4, 8, 12]
    assert rows[-1]["train_seconds"] > rows[-2]["train_seconds"] and rows[-1]["train_seconds"] < 99.0
    # the CPU clock continues across the resume too (the checkpoint carries it)
    cpu = [r["train_cpu_seconds"] for r in rows]
    assert cpu == sorted(cpu) and cpu[0] == 0.0 and cpu[-1] > cpu[-2] > 0
    # the same curve as one uninterrupted run of 12 steps (the training is the same; only clocks differ)
    _train(tmp_path / "once", "train.steps=12", "train.eval_every=4", "train.eval_split=val")
    once = read_curve(tmp_path / "once")
    assert [r["nll"] for r in rows] == pytest.approx([r["nll"] for r in once], abs=1e-9)


def test_bad_curve_settings_are_clear_errors(tmp_path):
    with pytest.raises(EbtkError, match="eval_split"):
        resolve_config("toy2d", "nce", overrides=["train.eval_split=train"])
    with pytest.raises(EbtkError, match="eval_every"):
        resolve_config("toy2d", "nce", overrides=["train.eval_every=-1"])
    (tmp_path / CURVE).write_text("{not json\n")
    with pytest.raises(EbtkError, match="corrupt"):
        read_curve(tmp_path)
    assert read_curve(tmp_path / "none") == []
