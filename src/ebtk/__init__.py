"""ebtk: energy-based model toolkit.

Sign convention everywhere: p_θ(x) ∝ exp(−E_θ(x)); the score is s_θ(x) = ∇ₓ log p_θ(x) = −∇ₓ E_θ(x).

Library use, on your own net and data (no task, no config tree):

    model = ebtk.EnergyModel(net)                    # any module returning (B,) or (B, 1) energies
    loss_fn = ebtk.objective("sa-nce", interval=5)   # any registered objective, options as keywords
    out = loss_fn(model, x); out.loss.backward(); opt.step(); loss_fn.after_step(model)
    samples = ebtk.langevin(model, torch.randn(256, 2), steps=100, step_size=0.01)
"""

from ebtk.config import SamplerConfig
from ebtk.energy import EnergyModel, ScoreModel, score_of
from ebtk.errors import EbtkError
from ebtk.objectives import Batch, LossOutput, Objective, available, objective
from ebtk.sampling import descent as descend
from ebtk.sampling import langevin

__all__ = ["Batch", "EbtkError", "EnergyModel", "LossOutput", "Objective", "SamplerConfig", "ScoreModel",
           "available", "descend", "langevin", "objective", "score_of"]
__version__ = "0.1.0"
