"""The README's library snippet and the examples/ scripts run as a user would run them, on a few steps."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    res = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_readme_library_snippet_runs_and_trains():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it as a library", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own code, as a user pastes it
    samples, loss_fn = scope["samples"], scope["loss_fn"]
    assert samples.shape == (256, 2) and bool(samples.isfinite().all())
    n_batches = len(scope["my_loader"])
    # the snapshot is refreshed after steps 5, 10, …
    assert int(loss_fn.steps_seen) == n_batches and int(loss_fn.refreshes) == n_batches // 5


def test_sa_nce_example_fits_the_users_data():
    out = _run("sa_nce_own_data.py", "--steps", "200")
    m = re.search(r"test NLL ([\d.]+) \(true ([\d.]+), standard normal ([\d.]+)\)", out)
    nll, true, normal = map(float, m.groups())
    # 200 steps gave 1.217 against the true 1.118 (a standard normal: 3.05)
    assert true - 0.02 < nll < true + 0.3 and nll < normal - 1.5


def test_delta_example_one_step_approaches_the_reference():
    out = _run("delta_refiner.py", "--steps", "300")
    before, after = map(float, re.search(r"hypothesis ([\d.]+), after one step ([\d.]+)", out).groups())
    assert after < 0.25 * before  # 300 steps: 0.166 → 0.023


def test_refine_external_example_trains_on_another_systems_mels():
    import shutil

    import pytest

    if shutil.which("flite") is None or shutil.which("espeak-ng") is None:
        pytest.skip("needs flite (references) and espeak-ng (the other system)")
    out = _run("refine_external.py", "--steps", "200")
    before, after = map(float, re.search(r"hypothesis ([\d.]+), after one step ([\d.]+)", out).groups())
    assert after < 0.5 * before  # 200 steps: 5.457 → 1.859
    assert "refined 12 mels" in out and "(12 wavs at 22 050 Hz)" in out
