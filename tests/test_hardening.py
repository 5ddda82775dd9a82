"""Real use's rough edges (issue 31): unsafe output paths, two writers in one run dir, Ctrl-C, partial name
matches, long error messages, NUL in text. Where a process matters the real command runs in a subprocess;
each case asserts the exit code, the one `error:` line, and that nothing already there changed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ebtk.errors import EbtkError, one_line

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (phonemes)")


def ebtk(*argv: str | Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ebtk.cli", *map(str, argv)], capture_output=True, text=True,
                          env=ENV, timeout=600, **kw)


def one_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str):
    """A real tmpfs (read-only, or tiny for a full disk) at `where`; skips the test where mounting is not
    allowed (not root, or no mount in this sandbox)."""
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


# -- output paths --------------------------------------------------------------------------------------
FILE_COMMANDS = {  # every command that writes one file; {P} is the path under test
    "synthesize": ["synthesize", "--text", "Hello.", "--out", "{P}"],
    "sample": ["sample", "no_such_run", "--out", "{P}"],
    "compare": ["compare", "no_such_run", "--out", "{P}"],
    "export": ["export", "no_such_run", "{P}"],
    "evaluate-audio": ["evaluate-audio", "no_ref", "no_syn", "--out", "{P}"],
}
DIR_COMMANDS = {  # every command that writes into a directory
    "train": ["train", "toy2d", "--objective", "ssm", "--out", "{P}"],
    "demo": ["demo", "--out", "{P}"],
    "corpus make": ["corpus", "make", "{P}"],
    "synthesize --file": ["synthesize", "--file", "no_such_lines.txt", "--out-dir", "{P}"],
}


def _bad_paths(tmp_path: Path, want_dir: bool) -> dict[str, tuple[Path, str]]:
    existing_dir = tmp_path / "a_dir"
    existing_dir.mkdir()
    (existing_dir / "keep.txt").write_text("keep me")
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("keep me too")
    cases = {
        "device": (Path("/dev/full"), "not a regular file" if not want_dir else "not a directory"),
        "parent is a file": (a_file / "x.out", "is not a directory"),
        "unwritable": (Path("/sys/ebtk-out-test"), "cannot write in"),
    }
    if want_dir:
        cases["existing file"] = (a_file, "exists and is not a directory")
    else:
        cases["existing directory"] = (existing_dir, "is a directory")
    return cases


@pytest.mark.parametrize("want_dir", [False, True], ids=["file", "dir"])
def test_every_writing_command_refuses_a_bad_output_path_before_any_work(run_cli, tmp_path, want_dir):
    commands = DIR_COMMANDS if want_dir else FILE_COMMANDS
    for label, (path, needle) in _bad_paths(tmp_path, want_dir).items():
        for name, argv in commands.items():
            before = _snapshot(tmp_path)
            t0 = time.perf_counter()
            code, out, err = run_cli(*[a.replace("{P}", str(path)) for a in argv])
            line = one_error(err)
            assert code == 2 and needle in line and str(path) in line, (name, label, line)
            assert time.perf_counter() - t0 < 10, (name, label)  # refused up front, not after the work
            assert _snapshot(tmp_path) == before, (name, label)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # the device node was never replaced


def test_device_output_in_a_subprocess_keeps_the_device():
    r = ebtk("synthesize", "--text", "Hello there.", "--out", "/dev/full")
    assert r.returncode == 2 and "/dev/full is not a regular file" in one_error(r.stderr)
    assert "wrote" not in r.stdout and stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_read_only_filesystem_is_refused_before_synthesis(tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        t0 = time.perf_counter()
        r = ebtk("synthesize", "--text", "Hello there.", "--out", ro / "x.wav")
        assert r.returncode == 2 and "Read-only file system" in one_error(r.stderr)
        assert time.perf_counter() - t0 < 30 and list(ro.iterdir()) == []


@needs_espeak
def test_symlinked_output_is_written_through_and_the_link_kept(tmp_path):
    target = tmp_path / "real.wav"
    target.write_bytes(b"old")
    link = tmp_path / "link.wav"
    link.symlink_to(target)
    dangling = tmp_path / "dangling.wav"
    dangling.symlink_to(tmp_path / "new_target.wav")
    for out, real in ((link, target), (dangling, tmp_path / "new_target.wav")):
        r = ebtk("synthesize", "--text", "Hello there.", "--out", out)
        assert r.returncode == 0, r.stderr
        assert out.is_symlink() and os.readlink(out) == str(real)
        wav, sr = sf.read(real)
        assert sr == 22050 and np.abs(wav).max() > 0.05
        assert stat.S_IMODE(real.stat().st_mode) == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.wav", "link.wav", "new_target.wav", "real.wav"]


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


@needs_espeak
def test_disk_full_while_writing_is_one_error_and_leaves_the_old_file(tmp_path):
    with mounted_tmpfs(tmp_path / "full", "size=64k") as full:
        old = full / "x.wav"
        old.write_bytes(b"previous take")
        text = "This sentence is long enough that its audio will not fit in sixty four kilobytes. " * 3
        r = ebtk("synthesize", "--text", text, "--out", old)
        line = one_error(r.stderr)
        assert r.returncode == 2 and "cannot write" in line and "No space left on device" in line
        assert old.read_bytes() == b"previous take" and [p.name for p in full.iterdir()] == ["x.wav"]


# -- one writer per run dir ------------------------------------------------------------------------------
def test_second_process_is_refused_and_a_killed_holder_is_taken_over(tmp_path):
    run = tmp_path / "run"
    a = subprocess.Popen([sys.executable, "-m", "ebtk.cli", "train", "toy2d", "--objective", "ssm", "--out",
                          str(run), "--steps", "1000000", "--quiet", "train.ckpt_every=20", "train.eval_every=0"],
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / "checkpoint.pt").exists():
            assert a.poll() is None, "the first training exited early"
            time.sleep(0.05)
        assert (run / ".lock").read_text().strip() == str(a.pid)
        for argv in (["train", "toy2d", "--objective", "ssm", "--out", run, "--steps", "1000000", "--quiet",
                      "train.ckpt_every=20", "train.eval_every=0"],
                     ["evaluate", run], ["export", run, tmp_path / "bundle.pt"]):
            r = ebtk(*argv)
            assert r.returncode == 2, r.stderr
            assert one_error(r.stderr) == f"error: {run} is in use by process {a.pid}; hint: wait for it, or " \
                                          "choose another --out"
        assert not (run / "metrics.json").exists() and not (tmp_path / "bundle.pt").exists()
        assert len(list((run / "tb").iterdir())) == 1  # no second run's event file
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait()
    assert (run / ".lock").exists()  # kill -9: the holder could not clean up
    r = ebtk("evaluate", run)
    assert r.returncode == 0, r.stderr
    assert f"warning: took over the lock of {run} left by process {a.pid} (no longer running)" in r.stderr
    assert json.loads((run / "metrics.json").read_text())["task"] == "toy2d"
    assert not (run / ".lock").exists()  # released


def test_lock_is_exclusive_between_processes_and_reentrant_within_one(tmp_path):
    from ebtk.io import lock_run_dir

    run = tmp_path / "r"
    code = f"from ebtk.io import lock_run_dir\nwith lock_run_dir({str(run)!r}):\n    print('held', flush=True)\n" \
           "    import time; time.sleep(60)\n"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(EbtkError, match=f"in use by process {holder.pid}"):
            with lock_run_dir(run):
                pass
    finally:
        holder.kill()
        holder.wait()
    with pytest.warns(UserWarning, match=f"left by process {holder.pid}"), lock_run_dir(run) as path:
        with lock_run_dir(run):  # the holder itself may enter again
            assert path.read_text().strip() == str(os.getpid())
    assert not path.exists()


@pytest.mark.parametrize("command", [["evaluate"], ["export", "{tmp}/model.pt"]])
def test_reading_commands_neither_create_a_missing_run_dir_nor_leave_a_lock(run_cli, tmp_path, command):
    argv = [c.format(tmp=tmp_path) for c in command]
    missing = tmp_path / "missing"
    code, _, err = run_cli(argv[0], missing, *argv[1:])
    assert (code, err.strip()) == (2, f"error: run dir not found: {missing}")
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(argv[0], empty, *argv[1:])
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert list(empty.iterdir()) == [] and not (tmp_path / "model.pt").exists()


# -- Ctrl-C and --file order ----------------------------------------------------------------------------
@needs_espeak
def test_ctrl_c_during_file_synthesis_leaves_the_first_lines_complete(tmp_path):
    lines = tmp_path / "lines.txt"
    texts = ["Open the door, please.", "It is late.", "We will go home now, said the tall man at the gate.",
             "Yes.", "The rain fell all night long.", "Good morning to you all.", "See you tomorrow.", "Bye."] * 2
    lines.write_text("\n".join(texts) + "\n")
    out = tmp_path / "wavs"
    p = subprocess.Popen([sys.executable, "-m", "ebtk.cli", "synthesize", "--file", str(lines), "--out-dir",
                          str(out), "--batch-size", "2"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "0002.wav").exists():
        assert p.poll() is None, p.communicate()
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130
    line = one_error(err)
    assert "checkpoint" not in line and "wavs already written are complete" in line
    names = sorted(q.name for q in out.iterdir())
    n = len(names)
    assert 2 <= n < len(texts) and names == [f"{k:04d}.wav" for k in range(1, n + 1)]  # in line order, no gaps
    for name in names:  # each complete: a valid wav, no temp files left
        wav, sr = sf.read(out / name)
        assert sr == 22050 and wav.size > 22050 * 0.3


# -- evaluate-audio: partly overlapping names ------------------------------------------------------------
@needs_espeak
def test_evaluate_audio_lists_unmatched_files_and_counts_each_side(run_cli, tmp_path):
    from tts_fixtures import espeak_wav

    ref, syn = tmp_path / "ref", tmp_path / "syn"
    ref.mkdir()
    syn.mkdir()
    for name, rate in (("a", 160), ("b", 170), ("c", 180)):
        espeak_wav(ref / f"{name}.wav", "The quick brown fox jumps.", rate=rate)
    for name, rate in (("a", 150), ("b", 175), ("z", 165)):
        espeak_wav(syn / f"{name}.wav", "The quick brown fox jumps.", rate=rate)
    code, out, err = run_cli("evaluate-audio", ref, syn, "--no-dnsmos", "--out", tmp_path / "r.json")
    assert code == 0, err
    assert "matched 2 of 3 reference and 3 synthesized wavs" in out
    assert f"unmatched, only in {ref} (1): c.wav" in out and f"unmatched, only in {syn} (1): z.wav" in out
    res = json.loads((tmp_path / "r.json").read_text())
    assert (res["n"], res["n_ref"], res["n_syn"], res["only_ref"], res["only_syn"]) == (2, 3, 3, ["c.wav"], ["z.wav"])
    assert sorted(res["per_file"]) == ["a.wav", "b.wav"]
    assert res["mcd"] == pytest.approx(np.mean([m["mcd"] for m in res["per_file"].values()]))


# -- whole error messages ---------------------------------------------------------------------------------
def test_one_line_keeps_start_and_end_and_never_cuts_a_word():
    err = None
    try:
        torch.nn.Linear(3, 2).load_state_dict(torch.nn.Linear(4, 2).state_dict())
    except RuntimeError as e:
        err = e
    msg = one_line(err)
    assert msg.startswith("Error(s) in loading state_dict for Linear:") and "size mismatch for weight" in msg
    assert "\n" not in msg
    words = [f"w{i:03d}" for i in range(200)]
    short = one_line(" ".join(words), limit=100)
    head, tail = short.split(" … ")
    assert len(short) <= 100 and head.startswith("w000") and tail.endswith("w199")
    assert set(head.split() + tail.split()) <= set(words)  # every kept word is whole


def test_a_corrupt_checkpoint_error_is_whole(tmp_path):
    from ebtk.io import load_torch

    bad = tmp_path / "c.pt"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 64)  # a zip header and nothing else
    with pytest.raises(EbtkError) as e:
        load_torch(bad, "checkpoint")
    msg = str(e.value)
    reason = msg.split(f"{bad}: ", 1)[1]
    assert reason.endswith(("directory", "archive", "header", "file")) or reason[-1] in ".)", msg


# -- NUL and other control characters ----------------------------------------------------------------------
@needs_espeak
def test_nul_is_read_like_any_other_control_character():
    from ebtk.tts.text import TextFrontend

    fe = TextFrontend()
    plain = fe.encode("Hello world, again.")
    for ch in ("\x00", "\x01", "\x1b", "\x7f"):
        assert fe.encode(f"Hello{ch} world, again.") == plain, repr(ch)
