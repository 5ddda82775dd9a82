"""Samplers: Langevin (SGLD), noise-free descent, and a replay buffer for persistent chains."""

from ebtk.sampling.descent import Descent, descent
from ebtk.sampling.langevin import Langevin, Sampler, langevin
from ebtk.sampling.replay import ReplayBuffer

__all__ = ["Descent", "Langevin", "ReplayBuffer", "Sampler", "descent", "langevin"]
