"""Files ebtk writes get the mode a plain open() gives (0644 under umask 022), and are still atomic:
a failing writer leaves the old file and no temp file behind (issue 15, items 4 and 6)."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ebtk.cli import main
from ebtk.io import atomic_path, atomic_write, atomic_write_text
from ebtk.train.checkpoint import load_checkpoint, save_checkpoint

TINY = ["train.batch_size=64", "sampler.steps=5", "eval.grid=40", "eval.n_samples=200", "--quiet"]


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file())


def test_run_dir_report_and_plots_are_0644(tmp_path: Path, umask022):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ebtk", "train", "toy2d", "--objective", "dsm", "--steps", "5", "--out", str(run)]
    res = subprocess.run([*cmd, *TINY], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for name in ("config.yaml", "metrics.json", "checkpoint.pt"):
        assert (run / name).is_file(), name
    assert list(run.glob("*.png")), "toy2d writes a density/samples plot"
    assert main(["sample", str(run), "--n", "16", "--out", str(tmp_path / "samples.png")]) == 0
    assert main(["evaluate", str(run)]) == 0  # rewrites metrics.json in place
    assert main(["compare", str(run), "--out", str(tmp_path / "report.html")]) == 0
    assert main(["compare", str(run), "--out", str(tmp_path / "table.md")]) == 0
    written = _files(tmp_path)
    assert {p.name for p in written} >= {"samples.png", "report.html", "table.md", "metrics.json"}
    assert not [p for p in written if p.name.startswith(".")], "temp files left behind"
    assert {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in written if _mode(p) != 0o644} == {}


def test_wav_is_0644(tmp_path: Path, umask022):
    audio = pytest.importorskip("ebtk.tts.audio")
    pytest.importorskip("soundfile")
    p = tmp_path / "a.wav"
    audio.save_wav(p, torch.zeros(2205), 22050)
    assert _mode(p) == 0o644
    assert [q.name for q in tmp_path.iterdir()] == ["a.wav"]


def test_classifier_cache_is_0644(tmp_path: Path, umask022, monkeypatch):
    """The digits classifier retrained when the shipped file is missing is cached atomically, 0644."""
    from ebtk.metrics import frechet

    monkeypatch.setattr(frechet, "_MODEL", None)
    monkeypatch.setattr(frechet, "SHIPPED", tmp_path / "missing.pt")
    monkeypatch.setattr(frechet, "train_classifier", lambda: frechet.DigitClassifier())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    frechet.load_classifier()
    cache = frechet._cache_path()
    assert cache.is_file() and _mode(cache) == 0o644
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]


def test_mode_follows_the_umask(tmp_path: Path):
    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private.txt") == 0o600


class Boom(RuntimeError):
    pass


def test_failing_writer_keeps_old_file_and_leaves_no_temp(tmp_path: Path, umask022):
    p = tmp_path / "metrics.json"
    atomic_write_text(p, '{"old": 1}\n')

    def half_then_fail(f):
        f.write(b'{"new": ')
        raise Boom("disk full")

    with pytest.raises(Boom):
        atomic_write(p, half_then_fail)
    with pytest.raises(Boom), atomic_path(tmp_path / "plot.png", suffix=".png") as tmp:
        tmp.write_bytes(b"\x89PNG partial")
        raise Boom("savefig failed")
    assert p.read_text() == '{"old": 1}\n'
    assert not (tmp_path / "plot.png").exists()
    assert [q.name for q in tmp_path.iterdir()] == ["metrics.json"]


def test_failing_checkpoint_save_keeps_old_checkpoint(tmp_path: Path):
    p = tmp_path / "checkpoint.pt"
    save_checkpoint(p, {"step": 1})
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises for an unpicklable object
        save_checkpoint(p, {"step": 2, "bad": lambda: None})
    assert load_checkpoint(p)["step"] == 1
    assert [q.name for q in tmp_path.iterdir()] == ["checkpoint.pt"]
