from pathlib import Path

import pytest
import torch

from ebtk.errors import EbtkError
from ebtk.train.checkpoint import load_checkpoint, save_checkpoint

TOY = ["train.batch_size=16", "data.n_test=256", "eval.grid=40", "eval.n_samples=64", "eval.sample_steps=5",
       "train.device=cpu"]


def test_roundtrip_and_atomic_replace(tmp_path: Path):
    p = tmp_path / "checkpoint.pt"
    save_checkpoint(p, {"step": 1, "w": torch.ones(3)})
    save_checkpoint(p, {"step": 2, "w": torch.zeros(3)})
    s = load_checkpoint(p)
    assert s["step"] == 2 and torch.equal(s["w"], torch.zeros(3))
    assert [f.name for f in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp files left behind


def test_failed_write_keeps_old_checkpoint(tmp_path: Path):
    p = tmp_path / "checkpoint.pt"
    save_checkpoint(p, {"step": 5})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_checkpoint(p, {"step": 6, "bad": Unpicklable()})
    assert load_checkpoint(p)["step"] == 5
    assert [f.name for f in tmp_path.iterdir()] == ["checkpoint.pt"]


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_corrupt_checkpoint_is_clear_error(tmp_path: Path, content):
    p = tmp_path / "checkpoint.pt"
    if content is None:  # truncated real checkpoint
        save_checkpoint(p, {"step": 1, "w": torch.randn(1000)})
        p.write_bytes(p.read_bytes()[:200])
    else:
        p.write_bytes(content)
    with pytest.raises(EbtkError, match="corrupt or unreadable checkpoint") as e:
        load_checkpoint(p)
    assert "\n" not in str(e.value)


def test_foreign_pickle_is_refused(tmp_path: Path):
    p = tmp_path / "x.pt"
    torch.save([1, 2, 3], p)
    with pytest.raises(EbtkError, match="not an ebtk checkpoint"):
        load_checkpoint(p)


def test_rerun_after_last_checkpoint_writes_missing_metrics_and_keeps_timing(tmp_path: Path):
    """A run stopped after its final checkpoint but before metrics.json: re-running evaluates and writes it;
    re-running a finished run keeps the train_seconds of the attempt that trained."""
    import json

    from ebtk.train.trainer import train

    run = tmp_path / "run"
    over = ["train.steps=4", *TOY]
    first = train("toy2d", "dsm", run, overrides=over, progress=False)
    assert first["steps"] == 4 and first["train_seconds"] > 0
    (run / "metrics.json").unlink()
    again = train("toy2d", "dsm", run, overrides=over, progress=False)
    written = json.loads((run / "metrics.json").read_text())
    assert written["steps"] == 4 and "train_seconds" not in written  # timing of the lost attempt is unknown
    assert again["nll"] == pytest.approx(first["nll"])  # same checkpoint, same seeded evaluation
    (run / "metrics.json").write_text(json.dumps(first))
    train("toy2d", "dsm", run, overrides=over, progress=False)
    assert json.loads((run / "metrics.json").read_text())["train_seconds"] == first["train_seconds"]


def test_time_budget_ends_the_run_and_a_larger_one_extends_it(tmp_path: Path):
    """train.time_budget stops at the first step whose accumulated training time reaches it; the checkpoint
    holds that step; re-running with the same budget trains nothing, a larger one trains on."""
    import json

    from ebtk.train.trainer import train

    run = tmp_path / "run"
    first = train("toy2d", "dsm", run, overrides=[*TOY, "train.steps=1000000", "train.time_budget=0.5"],
                  progress=False)
    state = load_checkpoint(run / "checkpoint.pt")
    assert 0 < first["steps"] < 1_000_000 and state["step"] == first["steps"]
    assert first["stopped_by"] == "time_budget" and state["train_seconds"] >= 0.5
    assert first["train_seconds"] == pytest.approx(state["train_seconds"], abs=1e-3)
    again = train("toy2d", "dsm", run, overrides=[*TOY, "train.steps=1000000", "train.time_budget=0.5"],
                  progress=False)
    assert again["steps"] == first["steps"]
    more = train("toy2d", "dsm", run, overrides=[*TOY, "train.steps=1000000", "train.time_budget=1.0"],
                 progress=False)
    assert more["steps"] > first["steps"] and more["train_seconds"] >= 1.0
    assert json.loads((run / "metrics.json").read_text())["steps"] == more["steps"]


def test_keep_every_keeps_the_checkpoints_of_those_steps(tmp_path: Path):
    from ebtk.train.checkpoint import snapshot_path
    from ebtk.train.trainer import train

    run = tmp_path / "run"
    train("toy2d", "dsm", run, overrides=[*TOY, "train.steps=7", "train.keep_every=3", "train.ckpt_every=100"],
          progress=False)
    kept = sorted(p.name for p in (run / "snapshots").iterdir())
    assert kept == [snapshot_path(run, 3).name, snapshot_path(run, 6).name]
    assert load_checkpoint(snapshot_path(run, 3))["step"] == 3
    six, last = load_checkpoint(snapshot_path(run, 6))["model"], load_checkpoint(run / "checkpoint.pt")["model"]
    assert last and any(not torch.equal(six[k], last[k]) for k in six)  # step 7 moved on from step 6


def test_cpu_training_flushes_denormals(tmp_path: Path):
    """A saturated NCE loss back-propagates float32 denormals, which x86 CPUs compute on very slowly; a CPU run
    flushes them to zero (a product that would be a denormal comes out as 0)."""
    from ebtk.train.trainer import train

    tiny = torch.tensor([1e-30])
    try:
        torch.set_flush_denormal(False)
        assert (tiny * 1e-9).item() > 0  # 1e-39: a denormal, kept
        train("toy2d", "dsm", tmp_path / "run", overrides=["train.steps=2", *TOY], progress=False)
        assert (tiny * 1e-9).item() == 0.0
        assert (tiny * 1e-7).item() == pytest.approx(1e-37)  # normal numbers are untouched
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("amp", [False, True])
def test_amp_runs_the_loss_under_bf16_autocast_on_the_cpu(tmp_path: Path, amp):
    """`train.amp=true` puts the loss under bf16 autocast on the CPU too (issue 35: bf16 matrix units); a
    linear layer inside the loss then computes in bf16, and the run still trains to a finite loss."""
    from ebtk.train.trainer import Trainer, resolve_config

    cfg = resolve_config("toy2d", "dsm", overrides=["train.steps=2", f"train.amp={str(amp).lower()}", *TOY])
    tr = Trainer(cfg, tmp_path / "run", progress=False)
    with tr._autocast():
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == (torch.bfloat16 if amp else torch.float32)
    out, _ = tr.train_step()
    assert torch.isfinite(out.loss)
