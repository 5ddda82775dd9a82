"""`train.compile` (torch.compile of the loss's energy call and of the Langevin ∇ₓE step), the wrappers the
samplers see, and CD's loss after its peak-memory change (two model calls instead of one on a concatenation).

The compiled tests are `slow`: one inductor compilation takes 30–60 s on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from ebtk.config import SamplerConfig
from ebtk.energy import is_compiled, strip_ddp, unwrap
from ebtk.nets.mlp import MLPEnergy
from ebtk.objectives.base import Batch
from ebtk.objectives.cd import CD, CDConfig


class _FakeDDP(torch.nn.Module):  # DDP's wrapping shape (`.module`) without a process group
    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module


def test_strip_ddp_keeps_the_compiled_module_unwrap_strips_both():
    net = MLPEnergy(2, hidden=8, depth=1)
    comp = torch.compile(net, dynamic=False)  # lazy: nothing is compiled until it is called
    wrapped = _FakeDDP(comp)
    assert is_compiled(comp) and not is_compiled(net) and not is_compiled(wrapped)
    assert strip_ddp(wrapped) is comp and strip_ddp(comp) is comp and strip_ddp(_FakeDDP(net)) is net
    assert unwrap(wrapped) is net and unwrap(comp) is net


def _old_cd_loss(model, x, x_neg, alpha):  # noqa: ANN001, ANN202
    """The loss as CD computed it before the memory change: one forward on torch.cat([x, x_neg])."""
    b = len(x)
    e = model(torch.cat([x, x_neg], 0))
    e_pos, e_neg = e[:b], e[b:]
    return e_pos.mean() - e_neg.mean() + alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())


def _langevin_by_hand(model, x0, steps, eta):  # noqa: ANN001, ANN202
    """x ← x − η∇E(x) + √(2η)ξ written out (same RNG calls, in the same order, as ebtk.sampling.Langevin)."""
    x, sigma = x0.clone(), math.sqrt(2 * eta)
    for _ in range(steps):
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xg).sum(), xg)
        x = (x + g * (-eta)) + torch.randn_like(x) * sigma
    return x.detach()


@pytest.mark.parametrize("dim,batch", [(2, 256), (64, 512)])
def test_cd_loss_unchanged_by_the_split_forward(dim: int, batch: int):
    torch.manual_seed(0)
    model = MLPEnergy(dim)
    x = torch.randn(batch, dim)
    alpha, steps, eta = 0.1, 5, 0.01
    cd = CD(CDConfig(alpha=alpha), sampler=SamplerConfig(steps=steps, step_size=eta))
    torch.manual_seed(1)
    out = cd(model, Batch(x=x))
    out.loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    # independent re-computation: the chains by hand from the same RNG state, then the old cat-based loss
    torch.manual_seed(1)
    x_neg = _langevin_by_hand(model, torch.randn(batch, dim), steps, eta)
    assert torch.allclose(out.negatives, x_neg, rtol=0, atol=1e-6)
    ref = _old_cd_loss(model, x, x_neg, alpha)
    ref.backward()
    assert abs(out.loss.item() - ref.item()) <= 1e-6 * max(1.0, abs(ref.item()))
    for g, p in zip(grads, model.parameters()):
        assert torch.allclose(g, p.grad, rtol=1e-5, atol=1e-7)


# -- compiled training (slow) --------------------------------------------------------------------------------
def _trainer(tmp: Path, objective: str, compile_: bool, extra: tuple[str, ...] = ()):  # noqa: ANN202
    from ebtk.train.trainer import Trainer, resolve_config

    cfg = resolve_config("toy2d", objective, None, ["train.steps=6", f"train.compile={str(compile_).lower()}",
                                                     *extra])
    return Trainer(cfg, tmp, progress=False)


def _steps(tr, n: int, batch_size: int | None = None) -> list[float]:  # noqa: ANN001
    """n training steps as `Trainer.fit` takes them; the losses."""
    out = []
    for _ in range(n):
        batch = tr._batch(tr.step)
        if batch_size is not None:
            batch = Batch(x=batch.x[:batch_size])
        o = tr.step_module(batch)
        tr.optimizer.zero_grad(set_to_none=True)
        o.loss.backward()
        tr.optimizer.step()
        tr.step += 1
        tr.objective.after_step(tr.model, tr.step)
        out.append(o.loss.item())
    return out


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["cd", "sa-nce"])
def test_compiled_training_matches_eager_and_compiles_once_per_shape(tmp_path: Path, objective: str):
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    eager = _steps(_trainer(tmp_path / "eager", objective, False), 3)
    assert _graphs() == 0
    tr = _trainer(tmp_path / "compiled", objective, True)
    compiled = _steps(tr, 3)
    assert compiled == pytest.approx(eager, abs=1e-5, rel=0)
    # two compiled functions (the Langevin ∇ₓE step and the loss's model call), one graph each per shape
    assert _graphs() == 2
    _steps(tr, 2)
    assert _graphs() == 2  # more steps of the same shape: no recompilation
    _steps(tr, 1, batch_size=64)
    assert _graphs() == 4  # a new batch shape: one compilation per compiled function
    _steps(tr, 1)
    assert _graphs() == 4  # back to the first shape: cached


@pytest.mark.slow
def test_compiled_run_checkpoints_bare_keys_and_resumes_either_way(tmp_path: Path):
    from ebtk.train.trainer import CHECKPOINT, train

    args = ["train.batch_size=64", "eval.grid=40", "eval.n_samples=200", "eval.sample_steps=20",
            "train.ckpt_every=2"]
    out = tmp_path / "run"
    train("toy2d", "cd", out, overrides=[*args, "train.steps=2", "train.compile=true"], progress=False)
    state = torch.load(out / CHECKPOINT, weights_only=False)
    assert not any("_orig_mod" in k for k in state["model"]) and set(state["model"]) == set(
        MLPEnergy(2).state_dict())
    m = train("toy2d", "cd", out, overrides=[*args, "train.steps=4", "train.compile=false"], progress=False)
    assert m["steps"] == 4
    m = train("toy2d", "cd", out, overrides=[*args, "train.steps=6", "train.compile=true"], progress=False)
    assert m["steps"] == 6 and math.isfinite(m["nll"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_compiled_ddp_run_trains_and_resumes(tmp_path: Path):
    """2 gloo processes, compiled model inside the DDP-wrapped step; resumed compiled from its checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["toy2d", "--objective", "cd", "train.batch_size=128", "train.ckpt_every=2", "train.compile=true",
            "eval.grid=40", "eval.n_samples=200", "eval.sample_steps=20", "--quiet", "--out", str(tmp_path)]
    for steps in (2, 4):
        r = subprocess.run(["torchrun", "--standalone", "--nproc_per_node=2", "-m", "ebtk", "train", *args,
                            "--steps", str(steps)], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["steps"] == 4 and math.isfinite(m["nll"])
