"""Tasks bundle data, a default network, an evaluation and plots; registered by name."""

from ebtk.tasks.base import Task, build_task

__all__ = ["Task", "build_task"]
