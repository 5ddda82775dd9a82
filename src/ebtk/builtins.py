"""Imports every module that registers a built-in objective or task (explicit, once).

Nets and samplers are plain classes that tasks and objectives construct directly; no config names them,
so they have no registry (a name nobody looks up is indirection without use)."""

from __future__ import annotations

import importlib

MODULES = [
    "ebtk.objectives.nce",
    "ebtk.objectives.sa_nce",
    "ebtk.objectives.fce",
    "ebtk.objectives.cd",
    "ebtk.objectives.ssm",
    "ebtk.objectives.dsm",
    "ebtk.objectives.delta",
    "ebtk.objectives.acoustic",
    "ebtk.objectives.fm",
    "ebtk.tasks.toy2d",
    "ebtk.tasks.digits",
    "ebtk.tasks.tts",
]
_loaded = False


def load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # only an optional extra (`pip install ebtk[tts]`) may be missing
            if (e.name or "").split(".")[0] not in OPTIONAL_DEPS:
                raise


OPTIONAL_DEPS = {"librosa", "soundfile", "pyworld", "phonemizer", "speechmos", "onnxruntime", "numba"}
