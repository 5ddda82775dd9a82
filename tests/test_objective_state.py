"""Every registered objective's state round-trips: save → a freshly built objective (and model and optimiser,
the README's recipe) → load → 3 more steps equals 3 more steps of the uninterrupted run, bit for bit."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
from torch import nn

import ebtk
from ebtk.objectives import Batch, available
from gaussian_task import ConvScore, build, make_task

DIM, B = 2, 16


def energy_net() -> nn.Module:
    return ebtk.EnergyModel(nn.Sequential(nn.Linear(DIM, 16), nn.SiLU(), nn.Linear(16, 1)))


def toy_batch(step: int) -> Batch:
    g = torch.Generator().manual_seed(1000 + step)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])
    return Batch(x=centers[torch.randint(0, 2, (B,), generator=g)] + 0.3 * torch.randn(B, DIM, generator=g))


def refiner_batch(step: int) -> Batch:
    g = torch.Generator().manual_seed(2000 + step)
    ref = torch.randn(4, 3, 12, generator=g)
    hyp = ref + 0.5 * torch.randn(4, 3, 12, generator=g)
    mask = torch.ones(4, 1, 12)
    mask[0, :, 9:] = 0
    return Batch(x=ref, cond={"hyp": hyp, "mask": mask}, hyp=hyp, mask=mask)


def tts_batch(step: int) -> Batch:
    g = torch.Generator().manual_seed(3000 + step)
    ph = torch.randint(1, 20, (2, 6), generator=g)
    ph[1, 5:] = 0
    mel = torch.randn(2, 80, 20, generator=g) - 4
    mel[1, :, 17:] = 0
    cond = {"phonemes": ph, "ph_lengths": torch.tensor([6, 5]), "mel_lengths": torch.tensor([20, 17])}
    return Batch(x=mel, cond=cond)


def tts_model(name: str) -> nn.Module:
    from ebtk.tts.acoustic import AcousticConfig, AcousticModel
    from ebtk.tts.flow_matching import FlowMatchingTTS

    cfg = AcousticConfig(channels=16, enc_layers=1, dropout=0.1)
    return FlowMatchingTTS(20, cfg, -4.0, 1.0, unet_channels=8) if name == "fm" else AcousticModel(20, cfg, -4.0, 1.0)


SAMPLER = {"steps": 5, "step_size": 0.05, "persistent": True, "buffer_size": 64}
# name → (make model, make objective, batch of a step). Objectives get what the trainer hands them.
CASES: dict[str, tuple[Callable[[], nn.Module], Callable[[], nn.Module], Callable[[int], Batch]]] = {
    "nce": (energy_net, lambda: build("nce", make_task()), toy_batch),
    "fce": (energy_net, lambda: build("fce", make_task()), toy_batch),
    "cd": (energy_net, lambda: build("cd", make_task(sampler={"steps": 5, "step_size": 0.05})), toy_batch),
    "pcd": (energy_net, lambda: build("pcd", make_task(sampler=SAMPLER)), toy_batch),
    "sa-nce": (energy_net, lambda: build("sa-nce", make_task(sampler=SAMPLER), interval=2), toy_batch),
    "sa-nce-estimated": (energy_net, lambda: build("sa-nce", make_task(sampler=SAMPLER), interval=2, c="estimated"),
                         toy_batch),
    "ssm": (energy_net, lambda: build("ssm", make_task()), toy_batch),
    "dsm": (energy_net, lambda: build("dsm", make_task()), toy_batch),
    "delta": (lambda: ConvScore(3), lambda: ebtk.objective("delta", hyp_noise=0.1), refiner_batch),
    "ssm+delta": (lambda: ConvScore(3), lambda: ebtk.objective("ssm+delta"), refiner_batch),
    "acoustic": (lambda: tts_model("acoustic"), lambda: ebtk.objective("acoustic"), tts_batch),
    "fm": (lambda: tts_model("fm"), lambda: ebtk.objective("fm"), tts_batch),
}


def test_every_registered_objective_has_a_case():
    assert set(available()) <= set(CASES)


def _parts(case: str, seed: int):
    make_model, make_objective, batch = CASES[case]
    torch.manual_seed(seed)
    model, objective = make_model(), make_objective()
    opt = torch.optim.Adam([*model.parameters(), *objective.parameters()], lr=1e-2)  # the README's recipe
    return model, objective, opt, batch


def _steps(model, objective, opt, batch, steps: range) -> None:
    for step in steps:
        out = objective(model, batch(step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        objective.after_step(model)


def _via_file(state: dict) -> dict:
    """Through torch.save / weights_only torch.load, as a checkpoint file goes."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_round_trips_into_a_fresh_objective(case):
    model, objective, opt, batch = _parts(case, seed=0)
    _steps(model, objective, opt, batch, range(3))
    saved = _via_file({"model": model.state_dict(), "objective": objective.state_dict(),
                       "optimizer": opt.state_dict(), "rng": torch.get_rng_state()})
    _steps(model, objective, opt, batch, range(3, 6))

    model2, objective2, opt2, _ = _parts(case, seed=99)  # fresh: other initial weights, no snapshot yet
    model2.load_state_dict(saved["model"])
    objective2.load_state_dict(saved["objective"])  # strict: every key is expected
    opt2.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    _steps(model2, objective2, opt2, batch, range(3, 6))

    for got, want in ((model2, model), (objective2, objective)):
        a, b = got.state_dict(), want.state_dict()
        assert a.keys() == b.keys()
        bad = [k for k in a if not torch.equal(a[k], b[k])]
        assert not bad, f"{case}: {bad} differ after resuming"
    if case.startswith("sa-nce"):
        assert int(objective2.refreshes) == int(objective.refreshes) > 0
        assert list(objective2.parameters()) == [objective2.c]  # the snapshot is buffers, never optimised


def test_sa_nce_optimizer_state_loads_after_setup():
    """Issue: after setup() the snapshot's weights were parameters, so an optimiser built before the first
    call had fewer parameters than one built after, and could not load its own saved state."""
    model, objective, opt, batch = _parts("sa-nce", seed=0)
    n_before = len(list(objective.parameters()))
    _steps(model, objective, opt, batch, range(2))
    assert len(list(objective.parameters())) == n_before == 1
    opt_after = torch.optim.Adam([*model.parameters(), *objective.parameters()], lr=1e-2)
    opt_after.load_state_dict(opt.state_dict())  # the same parameter groups


def test_sa_nce_fresh_load_refuses_a_snapshot_of_another_model():
    model, objective, opt, batch = _parts("sa-nce", seed=0)
    _steps(model, objective, opt, batch, range(1))
    fresh = CASES["sa-nce"][1]()
    fresh.load_state_dict(objective.state_dict())
    other = ebtk.EnergyModel(nn.Sequential(nn.Linear(DIM, 8), nn.SiLU(), nn.Linear(8, 1)))
    with pytest.raises(ebtk.EbtkError, match="snapshot does not fit"):
        fresh(other, batch(0))
