"""torch DDP via torchrun on the CPU (gloo, 2 processes) against a 1-process run with the same global batch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ebtk.objectives.base import Batch

ARGS = [
    "toy2d",
    "--objective",
    "dsm",
    "--steps",
    "300",
    "train.batch_size=128",
    "eval.grid=80",
    "eval.n_samples=500",
    "train.ckpt_every=100",
    "--quiet",
]


def test_shard_partitions_global_batch():
    x = torch.arange(10.0).reshape(5, 2)
    b = Batch(x=x, cond={"a": torch.arange(5), "scalar": 3}, hyp=x * 2)
    parts = [b.shard(r, 2) for r in range(2)]
    assert torch.equal(torch.cat([parts[0].x, parts[1].x]).sort(0).values, x.sort(0).values)
    assert torch.equal(parts[1].cond["a"], torch.tensor([1, 3])) and parts[1].cond["scalar"] == 3
    assert torch.equal(parts[0].hyp, parts[0].x * 2)


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_two_process_gloo_matches_one_process(tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        [sys.executable, "-m", "ebtk", "train", *ARGS, "--out", str(one)], check=True, env=env, capture_output=True
    )
    r = subprocess.run(
        ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "ebtk", "train", *ARGS, "--out", str(two)],
        env=env,
        capture_output=True,
        text=True,
    )
    # on failure show each rank's own error lines, not only torchrun's closing traceback
    assert r.returncode == 0, [ln for ln in r.stderr.splitlines() if "rror" in ln or "Signal" in ln][:12]
    seeds = []
    for seed in (1, 2):
        d = tmp_path / f"seed{seed}"
        subprocess.run([sys.executable, "-m", "ebtk", "train", *ARGS, "--seed", str(seed), "--out", str(d)],
                       check=True, env=env, capture_output=True)
        seeds.append(json.loads((d / "metrics.json").read_text())["nll"])
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert b["steps"] == a["steps"] == 300
    # Same data and global batch; only the per-rank DSM noise differs. The 2-process fit must be as close to the
    # 1-process fit as a change of seed moves it (300 steps: seeds 0/1/2 gave NLL 3.30/3.37/3.46), plus a floor.
    spread = max(abs(a["nll"] - c) for c in seeds)
    assert abs(a["nll"] - b["nll"]) <= 2 * spread + 0.05, (a["nll"], b["nll"], seeds)
    init = torch.load(one / "checkpoint.pt", weights_only=True)
    assert init["step"] == 300
    # rank-0-only outputs: one checkpoint, one metrics file, one TensorBoard run
    assert len(list((two / "tb").glob("events.*"))) == 1
