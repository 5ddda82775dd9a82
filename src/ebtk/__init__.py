"""ebtk: energy-based model toolkit.

Sign convention everywhere: p_θ(x) ∝ exp(−E_θ(x)); the score is s_θ(x) = ∇ₓ log p_θ(x) = −∇ₓ E_θ(x).
"""

from ebtk.energy import EnergyModel, ScoreModel, score_of
from ebtk.errors import EbtkError

__all__ = ["EbtkError", "EnergyModel", "ScoreModel", "score_of"]
__version__ = "0.1.0"
