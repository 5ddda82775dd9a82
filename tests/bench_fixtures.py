"""Load a script of benchmarks/ as a module, for the tests of its helpers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as the module ``bench_<name>`` (registered, so dataclasses find their module)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # a script may import a sibling script, as when run directly
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def needs_speech_engines():  # noqa: ANN201  (a pytest mark)
    """Skip a test that makes a flite corpus and phonemizes it when flite or espeak-ng is not installed."""
    import shutil

    import pytest

    return pytest.mark.skipif(shutil.which("flite") is None or shutil.which("espeak-ng") is None,
                              reason="needs flite (corpus) and espeak-ng (phonemes)")


def run_quick(name: str, tmp: Path) -> tuple[ModuleType, Path, Path]:
    """Run benchmark `name` with ``--quick`` into `tmp` (runs in tmp/runs, results in tmp/res), asserting
    it exits 0; returns (its module, the runs dir, the results dir)."""
    bench = load_benchmark(name)
    out, res = tmp / "runs", tmp / "res"
    assert bench.main(["--quick", "--out", str(out), "--results", str(res)]) == 0
    return bench, out, res
