"""Where a study's outputs may go: never over its store, and over an existing file only of the same kind.

A study store holds hours of computation. An export or a report written to the store's own path
(or its ``-wal``/``-shm`` companions) would destroy every run, and one written over an unrelated
file would destroy that; so an output path is checked before anything is written, and the file
itself is written aside and renamed into place, never half-written.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

_SNIFF = {
    "csv": lambda head: head.startswith(b"run_id,"),
    "parquet": lambda head: head.startswith(b"PAR1"),
    "html": lambda head: head.lstrip().lower().startswith((b"<!doctype html", b"<html")),
    "jsonl": lambda head: head.startswith((b"\x1f\x8b", b'{"acc"')),
}
_NAMES = {"csv": "a CSV table written by blackout export", "parquet": "a Parquet file",
          "html": "an HTML page", "jsonl": "a results archive"}


def check_output(out: Path, kind: str, store: Path) -> Path:
    """``out`` if blackout may write a file of ``kind`` ("csv", "parquet", "html") there, else ConfigError."""
    target = out.resolve()
    base = store.resolve()
    if target in (base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm"), base.with_name(base.name + "-journal")):
        raise ConfigError(f"--out {out}: is the study's results store; choose another file")
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder, expected a file path")
    if out.exists():
        try:
            with open(out, "rb") as f:
                head = f.read(64)
        except OSError as e:
            raise ConfigError(f"--out {out}: cannot read the existing file ({e.strerror})") from None
        if head and not _SNIFF[kind](head):
            raise ConfigError(f"--out {out}: exists and is not {_NAMES[kind]}; refusing to replace it")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise ConfigError(f"--out {out}: folder {out.parent} is not writable")
    return out


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
