import os

import pytest
import torch

# Two cores, several test processes: keep each one single-threaded so timings stay predictable.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def run_cli(capsys):
    """Run `ebtk ...` in-process; returns (exit_code, stdout, stderr)."""
    from ebtk.cli import main

    def _run(*argv: str):
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run
