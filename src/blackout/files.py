"""The paths blackout reads and writes, each checked for its kind before it is used.

An input must be a regular file and a folder a folder (or nothing yet). What is there is found with
``os.stat`` alone: a FIFO, a device or a socket is refused without being opened, since opening a
FIFO blocks for ever and writing "a file" over ``/dev/null`` would replace the device.

An output goes only where nothing is, where an empty file is, or over a file that blackout wrote as
the same kind of output. Each writer says how to recognise its own files by their content (a CSV's
exact header, a report's generator tag, an archive whose first record is a result), never by name;
the rule itself lives here. A study store holds hours of computation, so no output may be the store
or its companions. Every output is written aside and renamed into place, never half-written.
"""

from __future__ import annotations

import gzip
import os
import stat
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError

FILE, FOLDER = "a file", "a folder"
_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)
HEAD = 1 << 20  # how much of an existing file is read to recognise it


def given(value: str | Path, what: str) -> Path:
    """A path the user gave; an empty or blank one is refused, since ``Path('')`` is the current folder."""
    if isinstance(value, str) and not value.strip():
        raise ConfigError(f"{what}: expected a path, got {value!r}")
    return Path(value)


def describe(mode: int) -> str:
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return FOLDER
    return next((name for test, name in _SPECIAL if test(mode)), "a special file")


def kind(path: Path, *, follow: bool = True) -> str | None:
    """What is at ``path`` (``describe``), or None if nothing; a parent that is no folder is a ConfigError."""
    try:
        return describe((os.stat if follow else os.lstat)(path).st_mode)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        parent = next(p for p in reversed(Path(path).parents) if p.exists() and not p.is_dir())
        raise ConfigError(f"{parent}: is {kind(parent)}, expected a folder") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot tell what it is ({e.strerror})") from None


def need_file(path: Path, expected: str = "a regular file", label: str | None = None) -> bool:
    """Whether a regular file is at ``path``; nothing there is False, anything else a ConfigError."""
    what = kind(path)
    if what not in (None, FILE):
        raise ConfigError(f"{label or path}: is {what}, expected {expected}")
    return what is not None


def need_folder(path: Path, expected: str = "a folder", label: str | None = None) -> bool:
    """Whether a folder is at ``path``; nothing there is False, anything else a ConfigError."""
    what = kind(path)
    if what not in (None, FOLDER):
        raise ConfigError(f"{label or path}: is {what}, expected {expected}")
    return what is not None


def check_output(
    out: Path, is_ours: Callable[[Path], bool], *, label: str | None = None, store: Path | None = None
) -> Path:
    """``out`` if blackout may write there: nothing, an empty file, or a file that ``is_ours`` recognises
    as the same kind of output that blackout wrote (it reads at most ``HEAD`` bytes); else ConfigError."""
    out = Path(out)
    label = label or f"--out {out}"
    if store is not None:
        base = store.resolve()
        if out.resolve() in [base] + [base.with_name(base.name + s) for s in ("-wal", "-shm", "-journal")]:
            raise ConfigError(f"{label}: is the study's results store; choose another file")
    replaceable(out, is_ours, label)
    if not need_folder(out.parent, label=f"{label}: folder {out.parent}"):
        raise ConfigError(f"{label}: folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise ConfigError(f"{label}: folder {out.parent} is not writable")
    return out


def replaceable(path: Path, is_ours: Callable[[Path], bool], label: str | None = None) -> None:
    """Refuse (ConfigError) to replace or remove what is at ``path`` unless it is nothing, an empty file,
    or a file that ``is_ours``; a link, a folder, a FIFO or a device is never replaced."""
    label = label or str(path)
    what = kind(path, follow=False)
    if what == FOLDER:
        raise ConfigError(f"{label}: is a folder, expected a file path")
    if what not in (None, FILE):
        raise ConfigError(f"{label}: is {what}, expected a regular file; refusing to replace it")
    if what == FILE and os.stat(path).st_size and not _recognised(path, is_ours):
        raise ConfigError(f"{label}: exists and was not written by blackout; refusing to replace it")


def _recognised(path: Path, is_ours: Callable[[Path], bool]) -> bool:
    try:
        return bool(is_ours(path))
    except (OSError, EOFError, ValueError, UnicodeDecodeError, gzip.BadGzipFile):
        return False


def head(path: Path, size: int = HEAD) -> bytes:
    """The first ``size`` bytes of a regular file."""
    with open(path, "rb") as f:
        return f.read(size)


def first_line(path: Path) -> str:
    """The first line of a text file, gzipped or not (up to ``HEAD`` characters): how a table or an
    archive is recognised without reading all of it."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if not gzipped:
            return raw.readline(HEAD).decode("utf-8")
        with gzip.open(raw) as f:
            return f.readline(HEAD).decode("utf-8")


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` beside ``path`` and rename it into place: readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
