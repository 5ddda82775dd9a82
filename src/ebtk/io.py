"""The one way ebtk writes a file: atomically, with the mode a plain ``open()`` would give.

A temp file in the target's directory is written, flushed, fsynced and renamed over the target, so a
crash (even kill -9) leaves the old file or the new one, never a torn one. ``mkstemp`` creates files
0600; the temp file is chmod-ed to ``0666 & ~umask`` before the rename, so outputs are 0644 under the
usual umask 022 instead of private.

A symlink at the target is written *through*: the new file replaces the link's target, and the link
stays. Output paths the user gives are checked before any work starts (`check_output_file`,
`check_output_dir`): a directory where a file is wanted, a device, FIFO or socket, and an unwritable place
are EbtkErrors; an OS error while writing is an EbtkError naming the path, never a traceback.

Run-dir paths: `resolve_in(run_dir, p)` reads a path stored in a run dir's config (absolute, or relative
to the run dir) and `store_path(run_dir, p)` writes one, so a run dir can be moved or used from any cwd.

One writer per run dir: `lock_run_dir` holds an exclusive `fcntl` lock on ``RUN_DIR/.lock`` (with the
holder's PID in it) for as long as a process trains, evaluates or exports there.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ebtk.errors import EbtkError, one_line

__all__ = ["AtomicFile", "atomic_path", "atomic_write", "atomic_write_bytes", "atomic_write_text",
           "check_output_dir", "check_output_file", "default_mode", "load_torch", "lock_run_dir", "resolve_in",
           "store_path", "write_target"]


def default_mode() -> int:
    """The mode `open(path, "w")` gives a new file: ``0o666 & ~umask``.

    ``mkstemp`` makes private (0600) files; ebtk gives its outputs this mode instead, so they are readable as
    any other file the user writes (0644 under the usual umask 022).

    Returns:
        The permission bits, e.g. ``0o644``.
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_target(path: str | os.PathLike) -> Path:
    """Where writing `path` really lands: a symlink's final target, else `path` itself.

    ebtk writes *through* a symlink (the link stays, its target is replaced), so checks and temp files must
    be about the target, not the link. ``~`` is expanded.

    Args:
        path: the output path the user gave.

    Returns:
        The resolved target of a symlink, or `path` (expanded) when it is not one.
    """
    path = Path(os.path.expanduser(str(path)))
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _os_error(path: Path, e: OSError, doing: str = "write") -> EbtkError:
    why = e.strerror or one_line(e)
    return EbtkError(f"cannot {doing} {path}: {why}")


class AtomicFile:
    """A temp file beside `path` that becomes `path` on `commit()`, or vanishes on `discard()`.

    For writers that stream into a file over a long time (a wav written sentence by sentence): until
    `commit()` the old file (if any) stays whole, so an interrupted write never leaves a torn output. The
    temp file lives in the directory of `path`'s symlink target, so the final rename is atomic.

    Args:
        path: the file to write (a symlink is written through; missing parent directories are made).
        suffix: the temp file name's ending; lets writers that pick a format by extension see the right
            one (e.g. ``".tmp.wav"``).

    Attributes:
        path: where the file lands (`write_target` of the given path).
        tmp: the temp file's path, to write into.

    Raises:
        EbtkError: the temp file cannot be made (the message names `path`).
    """

    def __init__(self, path: str | os.PathLike, suffix: str = ".tmp"):
        self.path = write_target(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix, dir=self.path.parent)
        except OSError as e:
            raise _os_error(self.path, e) from None
        os.close(fd)
        self.tmp = Path(tmp)

    def commit(self) -> Path:
        """Fsync the temp file, give it the default mode and rename it over `path`.

        Returns:
            `path`, now holding the new content.

        Raises:
            EbtkError: the fsync, chmod or rename fails (the message names `path`); the temp file is removed.
        """
        try:
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(self.tmp, default_mode())
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            raise _os_error(self.path, e) from None
        return self.path

    def discard(self) -> None:
        """Remove the temp file; the old `path`, if any, is untouched. Safe to call twice."""
        self.tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Write `path` atomically through a temp file name, for writers that want a path (soundfile, onnx, np.save).

    On a normal exit from the block the temp file gets the default mode, is fsynced and renamed over
    `path`; on any exception it is removed and `path` is left as it was.

    Args:
        path: the file to write (a symlink is written through).
        suffix: the temp file name's ending; lets writers that pick a format by extension see the right
            one (e.g. ``".tmp.wav"``).

    Yields:
        The temp file's path, beside `path`'s target.

    Raises:
        EbtkError: an OSError while making, writing or renaming the file (the message names `path`).
    """
    f = AtomicFile(path, suffix)
    try:
        yield f.tmp
    except OSError as e:
        f.discard()
        raise _os_error(f.path, e) from None
    except BaseException:
        f.discard()
        raise
    f.commit()


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """Call `write(f)` on a binary file object, then atomically put the result at `path`.

    Args:
        path: the file to write (a symlink is written through).
        write: writes the content into the open binary file it is given (its return value is ignored).

    Raises:
        EbtkError: an OSError while writing or renaming (the message names `path`); `path` is unchanged.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically replace `path` with `data` (see `atomic_write`).

    Raises:
        EbtkError: an OSError while writing or renaming (the message names `path`); `path` is unchanged.
    """
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically replace `path` with `text`, encoded as UTF-8 (see `atomic_write`).

    Raises:
        EbtkError: an OSError while writing or renaming (the message names `path`); `path` is unchanged.
    """
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def load_torch(path: str | os.PathLike, what: str, map_location: Any = "cpu") -> Any:
    """Load a checkpoint or bundle with ``torch.load(weights_only=True)``, so that a file cannot run code.

    Args:
        path: the file to read.
        what: what the file is, for the message (e.g. ``"checkpoint"``, ``"model file"``).
        map_location: passed to ``torch.load`` (default: load onto the CPU).

    Returns:
        The loaded object (tensors, dicts, lists, strings, numbers).

    Raises:
        EbtkError: the file is unreadable, truncated or not a weights-only torch file; one line,
            "corrupt or unreadable <what> <path>: <reason, shortened>".
    """
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise EbtkError(f"corrupt or unreadable {what} {path}: {one_line(e, 300)}") from None


def resolve_in(run_dir: str | os.PathLike | None, p: str | os.PathLike) -> Path:
    """Read a path stored in a run dir's config: absolute as is, relative to the run dir otherwise.

    Paths relative to the run dir keep a moved or copied run dir working. ``~`` is expanded.

    Args:
        run_dir: the run dir the config belongs to; None leaves a relative `p` as it is.
        p: the stored path.

    Returns:
        The path to open.
    """
    p = Path(os.path.expanduser(str(p)))
    if p.is_absolute() or run_dir is None:
        return p
    return Path(run_dir) / p


def store_path(p: str | os.PathLike) -> str:
    """The form a path is stored in a run dir's config: absolute, resolved against the caller's cwd.

    It is resolved once, at the command line, so that the run dir then works from any working directory.
    ``~`` is expanded.

    Args:
        p: a path as the user gave it.

    Returns:
        The absolute, resolved path as a string.
    """
    return str(Path(os.path.expanduser(str(p))).resolve())


# ------------------------------------------------------------------------------------------ output checks

def _probe_dir(d: Path, what: str, shown: Path) -> None:
    """Check that `d` (an existing directory) takes a new file by making and removing a temp file there.

    This is the only check that also holds for root, read-only mounts and full quotas.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ebtk-probe.", dir=d)
    except OSError as e:
        raise EbtkError(f"{what} {shown}: cannot write in {d}: {e.strerror or one_line(e)}") from None
    os.close(fd)
    os.unlink(tmp)


def _nearest_existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Check, before any work starts, that a file can be written at `path`.

    A command fails at once on a bad output path instead of after minutes of work. Nothing is created.

    Args:
        path: the output file the user gave.
        what: the option that gave it, named in the message (e.g. ``"--out"``).

    Returns:
        Where the file will land: a symlink's target (ebtk writes through links and keeps them), else `path`.

    Raises:
        EbtkError: an empty name; an existing directory; an existing device, FIFO or socket (ebtk never
            replaces one); a parent that is a file; or a place this process cannot create files in
            (read-only mount, permissions).
    """
    shown = Path(os.path.expanduser(str(path)))
    if str(path) == "" or shown.name == "":
        raise EbtkError(f"{what}: give a file name")
    target = write_target(shown)
    if target.exists():
        mode = target.stat().st_mode
        if stat.S_ISDIR(mode):
            raise EbtkError(f"{what} {shown} is a directory; give a file path")
        if not stat.S_ISREG(mode):
            raise EbtkError(f"{what} {shown} is not a regular file (a device, FIFO or socket); ebtk writes only "
                            "regular files")
    parent = _nearest_existing(target.parent)
    if not parent.is_dir():
        raise EbtkError(f"{what} {shown}: {parent} is not a directory")
    _probe_dir(parent, what, shown)
    return target


def check_output_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Check, before any work starts, that `path` is (or can be made) a directory to write in.

    A command fails at once on a bad output folder instead of after minutes of work. Nothing is created.

    Args:
        path: the output directory the user gave.
        what: the option that gave it, named in the message (e.g. ``"--out"``).

    Returns:
        `path` (``~`` expanded).

    Raises:
        EbtkError: an empty path; `path` exists and is not a directory; an ancestor is a file; or no file
            can be created there (read-only mount, permissions).
    """
    p = Path(os.path.expanduser(str(path)))
    if str(path) == "":
        raise EbtkError(f"{what}: give a directory")
    if p.exists() and not p.is_dir():
        raise EbtkError(f"{what} {p} exists and is not a directory")
    base = _nearest_existing(p)
    if not base.is_dir():
        raise EbtkError(f"{what} {p}: {base} is not a directory")
    _probe_dir(base, what, p)
    return p


# ------------------------------------------------------------------------------------------ run-dir lock

LOCK_FILE = ".lock"
"""The writer lock's file name inside a run dir (`lock_run_dir`)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(raw) if raw.isdigit() else None


@contextmanager
def lock_run_dir(run_dir: str | os.PathLike, create: bool = True) -> Iterator[Path]:
    """Hold the run dir's writer lock for the block, so that two processes never write one run dir.

    The lock is an exclusive non-blocking `fcntl.flock` on ``RUN_DIR/.lock``, which holds the holder's PID.
    The kernel drops a lock with its process, so a lock file left by a killed process (kill -9) is free: it
    is taken over with a warning naming the dead PID. The lock file is removed on release; re-entering from
    the process that holds it is allowed (nested commands, DDP rank 0).

    Args:
        run_dir: the run dir to lock.
        create: make the run dir if it is missing (training); False for commands that read a run
            (evaluate, export), where a missing one is an error.

    Yields:
        The lock file's path, ``RUN_DIR/.lock``.

    Raises:
        EbtkError: ``RUN_DIR is in use by process PID`` when another live process holds the lock;
            ``run dir not found`` when `create` is False and it is missing; or the run dir or lock file
            cannot be created or locked (the message names the path).
    """
    import fcntl

    run_dir = Path(run_dir)
    key = str(run_dir.resolve())
    if key in _HELD:  # this process already holds it (e.g. train → final evaluation)
        yield run_dir / LOCK_FILE
        return
    if not create and not run_dir.is_dir():
        raise EbtkError(f"run dir not found: {run_dir}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _os_error(run_dir, e, "create") from None
    path = run_dir / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, default_mode())
        except OSError as e:
            raise _os_error(path, e, "create the lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _os_error(path, e, "lock") from None
            who = f"process {holder}" if holder else "another process"
            raise EbtkError(f"{run_dir} is in use by {who}; hint: wait for it, or choose another --out") from None
        try:  # the file we locked must still be the one at `path` (a releasing holder unlinks it)
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    old = _read_pid(fd)
    if old is not None and old != os.getpid():
        state = "no longer running" if not _pid_alive(old) else "running but no longer holding it"
        warnings.warn(f"took over the lock of {run_dir} left by process {old} ({state})", stacklevel=3)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD.add(key)
    try:
        yield path
    finally:
        _HELD.discard(key)
        path.unlink(missing_ok=True)  # before unlocking: a waiter that opened it re-checks the inode
        os.close(fd)


_HELD: set[str] = set()
