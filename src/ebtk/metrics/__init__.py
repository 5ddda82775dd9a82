"""Evaluation metrics. Import the submodules directly (e.g. `ebtk.metrics.speech`); kept import-light."""
