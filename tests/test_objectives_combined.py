"""Combined objectives (a+b), registry wiring, and the energy/score model contract for every objective."""

from __future__ import annotations

import pytest
import torch

from ebtk.errors import EbtkError
from ebtk.objectives import objective_class
from ebtk.objectives.base import Batch
from ebtk.objectives.combined import combined_class
from ebtk.registry import names
from gaussian_task import ConvEnergy, ConvScore, GaussianEnergy, LinearScore, build, make_task

torch.set_num_threads(1)

SAMPLER = {"steps": 3, "step_size": 0.01}


def _refiner_batch() -> Batch:
    torch.manual_seed(0)
    ref = torch.randn(3, 4, 6)
    hyp = ref + 0.3 * torch.randn_like(ref)
    mask = torch.ones(3, 1, 6)
    mask[0, :, 4:] = 0
    return Batch(x=ref, cond=hyp, hyp=hyp, mask=mask)


def test_every_objective_is_registered():
    assert {"nce", "sa-nce", "fce", "cd", "pcd", "ssm", "dsm", "delta"} <= set(names("objective"))


@pytest.mark.parametrize("model", [ConvScore(4), ConvEnergy(4)], ids=["score", "energy"])
def test_combined_loss_is_the_weighted_sum_of_its_parts(model):
    task = make_task()
    batch = _refiner_batch()
    section = {"weights": [0.5, 2.0], "ssm": {"n_projections": 2}, "delta": {"step_size": 0.5}}
    obj = build("ssm+delta", task, **section)
    assert type(obj).__name__.startswith("Combined") and not obj.needs_energy
    torch.manual_seed(7)
    out = obj(model, batch)
    torch.manual_seed(7)
    ssm = build("ssm", task, n_projections=2)(model, batch).loss
    delta = build("delta", task, step_size=0.5)(model, batch).loss
    torch.testing.assert_close(out.loss, 0.5 * ssm + 2.0 * delta)
    torch.testing.assert_close(out.metrics["ssm/loss"], ssm.detach())
    torch.testing.assert_close(out.metrics["delta/loss"], delta.detach())
    out.loss.backward()


def test_combined_sections_defaults_and_errors():
    cls = objective_class("ssm+delta")
    assert cls is combined_class("ssm+delta")
    d = cls.default_section()
    assert d["weights"] == [1.0, 1.0] and d["ssm"]["n_projections"] == 1 and d["delta"]["step_size"] == 1.0
    cfg = cls.parse_section({"name": "ssm+delta", "delta": {"hyp_noise": 0.1}})
    assert cfg.weights == [1.0, 1.0] and cfg.parts["delta"].hyp_noise == 0.1
    for bad, msg in [({"weights": [1.0]}, "entries"), ({"weights": [-1.0, 1.0]}, "≥ 0"),
                     ({"weights": [0, 0]}, "> 0"), ({"nce": {}}, "unknown"), ({"ssm": {"bogus": 1}}, "ssm.bogus"),
                     ({"delta": {"step_size": 0}}, "step_size"), ({"ssm": 3}, "section")]:
        with pytest.raises(EbtkError, match=msg):
            cls.parse_section(bad)
    for name in ("ssm+", "ssm+ssm", "ssm+nope"):
        with pytest.raises(EbtkError):
            objective_class(name)


def test_combined_delegates_state_to_its_parts():
    """sa-nce inside a sum keeps its snapshot, refreshes on schedule and is checkpointed."""
    task = make_task(sampler=SAMPLER)
    obj = build("sa-nce+cd", task, weights=[1.0, 0.1], **{"sa-nce": {"interval": 2}})
    assert obj.needs_energy
    model = GaussianEnergy(2)
    obj.check_model(model)
    obj.setup(model)
    out = obj(model, task.train_batch(torch.Generator().manual_seed(0), 16))
    assert {"e_pos", "e_neg", "sa-nce/c", "cd/cd_gap"} <= set(out.metrics)
    with torch.no_grad():
        model.mu.add_(1.0)
    snap = obj.parts["sa-nce"].snapshot
    obj.after_step(model, 1)
    assert not torch.equal(snap.mu, model.mu)
    obj.after_step(model, 2)
    assert torch.equal(snap.mu, model.mu)
    assert any(k.startswith("parts.sa-nce.snapshot.") for k in obj.state_dict())
    with pytest.raises(EbtkError, match="energy"):
        obj.check_model(LinearScore(2))


@pytest.mark.parametrize("name", ["nce", "sa-nce", "cd", "pcd", "fce"])
def test_energy_objectives_refuse_score_models(name):
    task = make_task(sampler=SAMPLER)
    obj = build(name, task)
    assert obj.needs_energy
    with pytest.raises(EbtkError, match="score network"):
        obj.check_model(LinearScore(2))
    with pytest.raises(EbtkError, match="score network"):
        obj.setup(LinearScore(2)) if name == "sa-nce" else obj(LinearScore(2), task.train_batch(
            torch.Generator().manual_seed(0), 4))


@pytest.mark.parametrize("name", ["ssm", "dsm"])
@pytest.mark.parametrize("model", [LinearScore(2), GaussianEnergy(2)], ids=["score", "energy"])
def test_score_objectives_accept_both_model_kinds(name, model):
    task = make_task()
    obj = build(name, task)
    obj.check_model(model)
    out = obj(model, task.train_batch(torch.Generator().manual_seed(0), 32))
    model.zero_grad()
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad
               and p is not getattr(model, "b", None))
