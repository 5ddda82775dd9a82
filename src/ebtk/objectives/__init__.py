"""Training objectives, one file each, registered by name (see ebtk.objectives.base)."""

from ebtk.objectives.base import Batch, LossOutput, Objective, build_objective, objective_class

__all__ = ["Batch", "LossOutput", "Objective", "build_objective", "objective_class"]
