"""`ebtk --version` names the package version and exits 0 (scripts and bug reports rely on it)."""

import subprocess
import sys

import ebtk


def test_version_flag():
    res = subprocess.run([sys.executable, "-m", "ebtk", "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"ebtk {ebtk.__version__}"
