"""`first_step_alignment`: a refiner's first step against the residual it should remove, by hand."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ebtk.energy import EnergyModel, ScoreModel
from ebtk.tts.evaluate import EvalUtterance, first_step_alignment

T = 7


class Exact(ScoreModel):
    """The ideal delta-trained score: reference − hypothesis."""

    def __init__(self, ref: torch.Tensor):
        super().__init__()
        self.ref = ref

    def forward(self, x: torch.Tensor, cond=None) -> torch.Tensor:  # noqa: ANN001
        return self.ref - cond["hyp"]


class Precision(EnergyModel):
    """E(x) = ½ Σ_d w_d (x_d − Y_d)²: the score at Ŷ is W(Y − Ŷ), what score matching at the reference
    learns for a Gaussian residual with precision W (the SSM-at-data argument)."""

    def __init__(self, ref: torch.Tensor, w: torch.Tensor):
        super().__init__()
        self.ref, self.w = ref, w

    def forward(self, x: torch.Tensor, cond=None) -> torch.Tensor:  # noqa: ANN001
        return 0.5 * (self.w * (x - self.ref) ** 2).sum((1, 2))


def _utt(hyp: torch.Tensor, ref: torch.Tensor) -> EvalUtterance:
    return EvalUtterance(id="u", wav=np.zeros(1, np.float32), mel=ref, hyp=hyp)


def _synth(model: torch.nn.Module) -> SimpleNamespace:
    return SimpleNamespace(refiner=model, device=torch.device("cpu"), text_cond=False)


def test_the_exact_delta_field_points_at_the_reference_with_the_right_length():
    g = torch.Generator().manual_seed(0)
    hyp, ref = torch.randn(80, T, generator=g), torch.randn(80, T, generator=g)
    (row,) = first_step_alignment(_synth(Exact(ref[None])), [_utt(hyp, ref)])
    for k in ("cos", "norm_ratio", "eta_star", "mse_gain", "gv_step"):  # one step lands on Y
        assert row[k] == pytest.approx(1.0, abs=1e-7)  # float32 model output (observed 2.4e-9)
    h, r = hyp.double().numpy(), ref.double().numpy()
    assert row["gv_hyp"] == pytest.approx(np.mean(h.std(1, ddof=1) / r.std(1, ddof=1)), rel=1e-12)


def test_a_precision_weighted_field_needs_a_shorter_step_by_hand():
    # r = Y − Ŷ = 1 everywhere; W = 1 on the first 40 bins, 9 on the others:
    # rᵀWr = 400T, ‖Wr‖² = (40 + 81·40)T = 3280T, ‖r‖² = 80T
    hyp = torch.zeros(80, T)
    ref = torch.ones(80, T)
    w = torch.ones(1, 80, 1)
    w[:, 40:] = 9.0
    (row,) = first_step_alignment(_synth(Precision(ref[None], w)), [_utt(hyp, ref)])
    assert row["cos"] == pytest.approx(400 / math.sqrt(3280 * 80), rel=1e-6)
    assert row["norm_ratio"] == pytest.approx(math.sqrt(41), rel=1e-6)
    assert row["eta_star"] == pytest.approx(400 / 3280, rel=1e-6)
    assert row["mse_gain"] == pytest.approx(400**2 / (3280 * 80), rel=1e-6)
