"""The one way ebtk writes a file: atomically, with the mode a plain ``open()`` would give.

A temp file in the target's directory is written, flushed, fsynced and renamed over the target, so a
crash (even kill -9) leaves the old file or the new one, never a torn one. ``mkstemp`` creates files
0600; the temp file is chmod-ed to ``0666 & ~umask`` before the rename, so outputs are 0644 under the
usual umask 022 instead of private.

Run-dir paths: `resolve_in(run_dir, p)` reads a path stored in a run dir's config (absolute, or relative
to the run dir) and `store_path(run_dir, p)` writes one, so a run dir can be moved or used from any cwd.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "atomic_write_bytes", "atomic_write_text", "default_mode", "load_torch",
           "resolve_in", "store_path"]


def default_mode() -> int:
    """0666 & ~umask: the mode `open(path, "w")` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path beside `path` for a writer that wants a file name (soundfile, onnx, np.save).

    On success the file gets the default mode, is fsynced and renamed over `path`; on failure it is removed
    and `path` is untouched. Missing parent directories are created.

    Args:
        path: the target file.
        suffix: the temp file's suffix, for writers that pick a format by extension (e.g. ".tmp.wav").

    Yields:
        The temp file's path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, default_mode())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """Call `write(f)` on a binary file object, then atomically put the result at `path`.

    Args:
        path: the target file (parents created).
        write: writes the content into the open binary file it is given.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` as UTF-8 to `path` atomically (see `atomic_write`)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def load_torch(path: str | os.PathLike, what: str, map_location: Any = "cpu") -> Any:
    """Load a torch file with ``weights_only=True``, so that a file cannot run code.

    Args:
        path: the file.
        what: what the file is, for the error message (e.g. "checkpoint").
        map_location: passed to ``torch.load``.

    Returns:
        The loaded object (tensors, dicts, lists, strings, numbers).

    Raises:
        EbtkError: an unreadable, truncated or unsafe file, as one line
            "corrupt or unreadable <what> <path>: <first line of the reason>".
    """
    import torch

    from ebtk.errors import EbtkError

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise EbtkError(f"corrupt or unreadable {what} {path}: {why}") from None


def resolve_in(run_dir: str | os.PathLike | None, p: str | os.PathLike) -> Path:
    """A path stored in a run dir's config: absolute as is, relative to the run dir otherwise."""
    p = Path(os.path.expanduser(str(p)))
    if p.is_absolute() or run_dir is None:
        return p
    return Path(run_dir) / p


def store_path(p: str | os.PathLike) -> str:
    """The form a path is stored in a run dir's config: absolute, ``~`` expanded.

    Resolved against the caller's working directory once, at the command line, so the run dir works from
    any working directory.
    """
    return str(Path(os.path.expanduser(str(p))).resolve())
