"""The results store: one SQLite database per study folder, one row per run.

A sweep adds every run of its grid as ``pending`` and then loops claim -> run -> finish/fail.
Because each step is a short transaction on a shared WAL-mode database, an interrupted sweep
resumes by doing only what is pending or failed, and several sweep processes (on one machine
or on a shared filesystem that honours SQLite locks) can work on one study at once without
losing or duplicating a row. A process killed mid-run leaves its rows ``running``;
``reclaim_stale`` returns them to ``pending`` once their owner is known to be dead.

A store at rest is an ordinary (rollback-journal) database with no companion files: a writer
switches it to WAL at its first write and the last writer to close it switches it back, so that a
reader, which opens it read-only, leaves nothing behind, and a process that only reads (a refused
sweep) leaves every byte as it was. Every open checks the file's kind, its header, its table layout and its pages, and every
SQLite error on a damaged file becomes a StoreError naming it.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..experiment.result import Result, jsonable
from ..files import atomic_write, first_line, need_file, need_folder
from ..numerics import numerics_of

SCHEMA_VERSION = 1

STATUSES = ("pending", "running", "done", "failed")

_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = (
    """CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
    """CREATE TABLE runs (
    run_id        TEXT PRIMARY KEY,
    config        TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error         TEXT,
    owner         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created       REAL NOT NULL,
    started       REAL,
    finished      REAL,
    seconds       REAL,
    version       TEXT,
    seed          INTEGER,
    blackout_task INTEGER,
    avg_acc       REAL,
    result        TEXT
)""",
    "CREATE INDEX runs_status ON runs (status)",
)

_COLUMNS = (
    "run_id",
    "config",
    "status",
    "error",
    "owner",
    "attempts",
    "created",
    "started",
    "finished",
    "seconds",
    "version",
    "seed",
    "blackout_task",
    "avg_acc",
    "result",
)

_EXPORT_LEAD = ("run_id", "status", "error", "seconds", "version", "seed")
_EXPORT_TAIL = (
    "avg_acc",
    "bwt",
    "fwt",
    "forgetting",
    "blackout_task",
    "blackout_cause",
    "retained",
    "tasks_run",
    "n_params",
    "acc",
    "diagnostics",
)


@functools.lru_cache(maxsize=1)
def _layout() -> dict[str, list[tuple[str, str]]]:
    """Each table's (column, declared type), as ``_SCHEMA`` makes them: what an opened store must have."""
    conn = sqlite3.connect(":memory:")
    for statement in _SCHEMA:
        conn.execute(statement)
    layout = {t: _columns(conn, t) for t in ("meta", "runs")}
    conn.close()
    return layout


def _columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    return [(r[1], r[2].upper()) for r in conn.execute(f"PRAGMA table_info({table})")]


def _is_export_columns(names: list[str]) -> bool:
    lead, tail = len(_EXPORT_LEAD), len(_EXPORT_TAIL)
    return len(names) >= lead + tail and tuple(names[:lead]) == _EXPORT_LEAD and tuple(names[-tail:]) == _EXPORT_TAIL


def is_export_csv(path: Path) -> bool:
    """A table ``export`` wrote: its header has the export's lead and tail columns."""
    return _is_export_columns(next(csv.reader([first_line(path)])))


def is_export_parquet(path: Path) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return _is_export_columns(pq.read_schema(path).names)
    except pa.ArrowException:  # not a Parquet file
        return False


def is_archive(path: Path) -> bool:
    """A results archive: its first line is a whole blackout result."""
    Result.from_dict(json.loads(first_line(path)))
    return True


#: how each export format recognises a file of its own (``files.check_output``)
EXPORTS = {"csv": is_export_csv, "parquet": is_export_parquet, "jsonl": is_archive}


def _guarded(method):
    """SQLite errors from a damaged or unusable file become one StoreError naming it."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise _error(self.path, e) from None

    return call


def _error(path: Path, e: sqlite3.DatabaseError) -> StoreError:
    if isinstance(e, sqlite3.OperationalError) and "malformed" not in str(e):
        return StoreError(f"{path}: cannot use store ({e})")
    return StoreError(f"{path}: damaged store ({e})")


class Store:
    """One study's runs in ``path`` (e.g. ``STUDY/results.sqlite``).

    Each process opens its own ``Store``; the object holds one connection and is not meant to
    be shared between threads. Ownership of a running row is ``host:pid`` so that a later
    process on the same host can tell whether the owner is still alive.
    """

    def __init__(
        self, path: str | Path, study: str | None, *, create: bool = True, readonly: bool = False, timeout: float = 30.0
    ):
        """``study`` None accepts whatever study the store belongs to; ``readonly`` never writes a byte."""
        self.path = Path(path)
        self.study = study
        self.readonly = readonly
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._conn: sqlite3.Connection | None = None
        self._wal = False  # whether this connection has written (and so put the store in WAL mode)

        if need_file(self.path, "a results store (an SQLite file)"):
            _check_header(self.path)
        elif not create or readonly:
            raise StoreError(f"{self.path}: no results store here")
        elif not need_folder(self.path.parent, "a study folder"):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"{self.path.parent}: cannot create the study folder ({e.strerror})") from None

        try:
            conn = (
                _connect_readonly(self.path, timeout)
                if readonly
                else sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            )
        except sqlite3.DatabaseError as e:
            raise _error(self.path, e) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            meta = _read_meta(conn, self.path)
            if meta is None:
                if not create or readonly:
                    raise StoreError(f"{self.path}: not a blackout store (no meta table)")
                self._conn = conn
                self._init_schema()
            else:
                self._check_meta(meta, conn)
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:  # one line: SQLite's report spans several, with a banner
                lines = [" ".join(ln.split()) for p in problems for ln in p.splitlines() if not ln.startswith("***")]
                raise StoreError(f"{self.path}: damaged store ({'; '.join(lines)})")
        except sqlite3.DatabaseError as e:
            conn.close()
            self._conn = None
            raise _error(self.path, e) from None
        except BaseException:
            conn.close()
            self._conn = None
            raise
        self._conn = conn

    # -- opening ----------------------------------------------------------------------------
    def _init_schema(self) -> None:
        """Create tables and meta; re-checked inside the lock since another process may race us."""
        with self._write(wal=False) as conn:  # a new store's first commit: no WAL to set up first
            meta = _read_meta(conn, self.path)
            if meta is not None:
                self._check_meta(meta, conn)
                return
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("study", self.study), ("schema", str(SCHEMA_VERSION)), ("created", repr(time.time()))],
            )

    def _check_meta(self, meta: dict[str, str], conn: sqlite3.Connection) -> None:
        if "study" not in meta or "schema" not in meta:
            raise StoreError(f"{self.path}: not a blackout store (meta lacks study or schema)")
        try:
            schema = int(meta["schema"])
        except ValueError:
            raise StoreError(f"{self.path}: unreadable schema version {meta['schema']!r}") from None
        if schema > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store has newer schema {schema}; upgrade blackout "
                f"(this version reads schema {SCHEMA_VERSION})"
            )
        _check_layout(conn, self.path)
        if self.study is None:
            self.study = meta["study"]
        elif meta["study"] != self.study:
            raise StoreError(f"{self.path}: belongs to study {meta['study']!r}, not {self.study!r}")

    @contextmanager
    def _write(self, wal: bool = True) -> Iterator[sqlite3.Connection]:
        """A short write transaction; IMMEDIATE takes the write lock up front so that WAL
        never fails an upgrade from read to write with an immediate SQLITE_BUSY."""
        conn = self._connection()
        if conn.in_transaction:  # a write interrupted before its block began or before its COMMIT
            conn.execute("ROLLBACK")  # whoever started it saw the interrupt, so it did not happen
        if wal and not self._wal:  # only a write changes the file: switching to WAL rewrites its header
            conn.execute("PRAGMA journal_mode = WAL")
            self._wal = True
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            with suppress(sqlite3.ProgrammingError):  # closed meanwhile: closing rolled it back
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: store is closed")
        return self._conn

    # -- writing ----------------------------------------------------------------------------
    @_guarded
    def add(self, runs: Iterable[tuple[str, dict]]) -> int:
        """Insert each ``(run_id, config)`` as pending unless present; returns how many were new.

        Existing rows are left alone whatever their status, so re-adding a grid is how a sweep resumes.
        """
        now = time.time()
        rows = []
        for run_id, config in runs:
            if not isinstance(run_id, str) or not run_id:
                raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
            rows.append((run_id, json.dumps(jsonable(config)), now))
        if not rows:
            return 0
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO runs (run_id, config, status, created) VALUES (?, ?, 'pending', ?)",
                rows,
            )
            return conn.total_changes - before

    @_guarded
    def reclaim_stale(self) -> int:
        """Return to pending the running rows whose owner is a dead process on this host.

        Rows owned by other hosts are left alone: their liveness cannot be checked from here.
        A reused pid makes a dead owner look alive, which only delays the reclaim.
        """
        host = socket.gethostname()
        n = 0
        with self._write() as conn:
            for row in conn.execute("SELECT run_id, owner FROM runs WHERE status = 'running'").fetchall():
                owner_host, _, pid = (row[1] or "").rpartition(":")
                if owner_host != host or not pid.isdigit() or _pid_alive(int(pid)):
                    continue
                n += conn.execute(
                    "UPDATE runs SET status = 'pending', owner = NULL, started = NULL "
                    "WHERE run_id = ? AND status = 'running' AND owner = ?",
                    (row[0], row[1]),
                ).rowcount
        return n

    @_guarded
    def claim(self, run_id: str) -> bool:
        """Atomically move a pending or failed run to running under this process.

        False if it is running elsewhere or done; KeyError if the store has no such run,
        since that means the caller forgot to ``add`` it.
        """
        with self._write() as conn:
            n = conn.execute(
                "UPDATE runs SET status = 'running', owner = ?, started = ?, attempts = attempts + 1, "
                "error = NULL, finished = NULL, seconds = NULL "
                "WHERE run_id = ? AND status IN ('pending', 'failed')",
                (self.owner, time.time(), run_id),
            ).rowcount
            if n == 0 and conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise KeyError(f"{self.path}: no run {run_id!r} in the store")
        return n == 1

    @_guarded
    def release(self, run_id: str) -> bool:
        """Hand a run this process claimed back to pending (an interrupted sweep's in-flight runs)."""
        with self._write() as conn:
            return (
                conn.execute(
                    "UPDATE runs SET status = 'pending', owner = NULL, started = NULL "
                    "WHERE run_id = ? AND status = 'running' AND owner = ?",
                    (run_id, self.owner),
                ).rowcount
                == 1
            )

    @_guarded
    def finish(self, run_id: str, result: dict, seconds: float) -> None:
        """Mark done and store the result, with a few fields copied to columns for querying.

        The first result recorded wins: a run already done is left unchanged, since run ids are
        deterministic and a second result can only repeat the first.
        """
        result = jsonable(result)
        metrics = result.get("metrics") or {}
        blackout = result.get("blackout") or {}
        with self._write() as conn:
            n = conn.execute(
                "UPDATE runs SET status = 'done', error = NULL, finished = ?, seconds = ?, version = ?, "
                "seed = ?, blackout_task = ?, avg_acc = ?, result = ? "
                "WHERE run_id = ? AND status != 'done'",
                (
                    time.time(),
                    float(seconds),
                    result.get("version"),
                    result.get("seed"),
                    blackout.get("task"),
                    metrics.get("avg_acc"),
                    json.dumps(result),
                    run_id,
                ),
            ).rowcount
            if n == 0 and conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise KeyError(f"{self.path}: no run {run_id!r} in the store")

    @_guarded
    def fail(self, run_id: str, message: str, seconds: float | None = None) -> None:
        """Mark failed with the message; the next sweep will claim it again."""
        with self._write() as conn:
            n = conn.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished = ?, seconds = ? "
                "WHERE run_id = ? AND status != 'done'",
                (str(message), time.time(), None if seconds is None else float(seconds), run_id),
            ).rowcount
            if n == 0 and conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise KeyError(f"{self.path}: no run {run_id!r} in the store")

    # -- reading ----------------------------------------------------------------------------
    @_guarded
    def unknown(self, run_ids: Iterable[str]) -> list[str]:
        """The ids among ``run_ids`` that the store has no row for."""
        have = {r[0] for r in self._connection().execute("SELECT run_id FROM runs")}
        return [rid for rid in run_ids if rid not in have]

    @_guarded
    def todo(self, run_ids: Iterable[str] | None = None) -> list[str]:
        """Ids still to run (pending or failed): in insertion order, or in the order given.

        Ids absent from the store are not returned; ``add`` them first.
        """
        open_ids = [
            r[0]
            for r in self._connection().execute(
                "SELECT run_id FROM runs WHERE status IN ('pending', 'failed') ORDER BY rowid"
            )
        ]
        if run_ids is None:
            return open_ids
        wanted = set(open_ids)
        out: list[str] = []
        for rid in run_ids:
            if rid in wanted:
                out.append(rid)
                wanted.discard(rid)
        return out

    @_guarded
    def running(self, run_ids: Iterable[str]) -> list[str]:
        """Of ``run_ids``, those running now, under this process or another."""
        wanted = set(run_ids)
        return [
            r[0]
            for r in self._connection().execute("SELECT run_id FROM runs WHERE status = 'running'")
            if r[0] in wanted
        ]

    @_guarded
    def status_counts(self) -> dict[str, int]:
        """Number of runs in each status, zeros included."""
        counts = dict.fromkeys(STATUSES, 0)
        for status, n in self._connection().execute("SELECT status, COUNT(*) FROM runs GROUP BY status"):
            counts[status] = n
        return counts

    @_guarded
    def rows(self, status: str | None = None) -> list[dict]:
        """Every column of every run (or of one status), ordered by run_id, JSON fields parsed as stored."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM runs"
        args: tuple = ()
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
            sql += " WHERE status = ?"
            args = (status,)
        out = []
        for r in self._connection().execute(sql + " ORDER BY run_id", args):
            d = dict(zip(_COLUMNS, r))
            for key in ("config", "result"):
                try:
                    d[key] = json.loads(d[key]) if d[key] is not None else None
                except (ValueError, TypeError, RecursionError) as e:
                    raise StoreError(f"{self.path}: run {d['run_id']}: damaged stored {key} ({e})") from None
            out.append(d)
        return out

    @_guarded
    def results(self) -> list[Result]:
        """The results of done runs, ordered by run_id; a damaged stored result is a StoreError naming it."""
        rows = self._connection().execute("SELECT run_id, result FROM runs WHERE status = 'done' ORDER BY run_id")
        return [self._result(rid, text) for rid, text in rows]

    def _result(self, rid: str, text: Any) -> Result:
        """The one reading of a stored result, whatever it is read for."""
        try:
            return Result.from_dict(json.loads(text) if isinstance(text, (str, bytes)) else text)
        except (ValueError, TypeError, KeyError, RecursionError) as e:
            raise StoreError(f"{self.path}: run {rid}: damaged stored result ({e})") from None

    @_guarded
    def done_numerics(self) -> list[tuple[dict, int]]:
        """(config, numerics version) of every done run; results written before numerics versions read as 0."""
        out = []
        for rid, config, version in self._connection().execute(
            "SELECT run_id, config, json_extract(result, '$.numerics') FROM runs WHERE status = 'done'"
        ):
            try:
                out.append((json.loads(config), numerics_of({"numerics": version})))
            except (ValueError, TypeError) as e:
                raise StoreError(f"{self.path}: run {rid}: damaged stored JSON ({e})") from None
        return out

    @_guarded
    def failures(self) -> list[dict]:
        """Failed runs: run_id, config, error and attempts, ordered by run_id."""
        rows = (
            self._connection()
            .execute("SELECT run_id, config, error, attempts FROM runs WHERE status = 'failed' ORDER BY run_id")
            .fetchall()
        )
        out = []
        for rid, cfg, err, attempts in rows:
            try:
                config = json.loads(cfg)
            except (ValueError, TypeError):
                config = None
            out.append({"run_id": rid, "config": config, "error": err, "attempts": attempts})
        return out

    # -- export -----------------------------------------------------------------------------
    @_guarded
    def export(self, out: str | Path, fmt: str) -> Path:
        """Write one flat row per run to ``out`` as csv or parquet, for pandas, R or a spreadsheet.

        Config becomes ``section.field`` columns (lists as ``"50,50"``); acc and diagnostics are
        JSON strings. The file is written aside and renamed, so a crash never leaves half a table.
        """
        out = Path(out)
        fmt = fmt.lower()
        if fmt not in ("csv", "parquet", "jsonl"):
            raise ValueError(f"unknown export format {fmt!r}; expected 'csv', 'parquet' or 'jsonl'")
        if fmt == "jsonl":
            return self._export_archive(out)
        if fmt == "parquet":
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                raise StoreError(
                    f"{out}: parquet export needs pyarrow (pip install 'blackout[parquet]'), or use csv"
                ) from None
        header, records = self._export_table()
        if fmt == "csv":
            text = io.StringIO(newline="")
            w = csv.DictWriter(text, fieldnames=header)
            w.writeheader()
            w.writerows(records)
            data = text.getvalue().encode("utf-8")
        else:
            columns = {}
            for name in header:
                values = [rec[name] for rec in records]
                try:
                    columns[name] = pa.array(values)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    columns[name] = pa.array([None if v is None else str(v) for v in values])
            buf = io.BytesIO()
            pq.write_table(pa.table(columns), buf)
            data = buf.getvalue()
        atomic_write(out, data)
        return out

    def _export_archive(self, out: Path) -> Path:
        """Every finished run's whole result, one JSON object per line (gzipped for a .gz path): an
        archive from which ``ResultSet.load`` rebuilds the results, so analyses and reports need no store."""
        import gzip

        lines = "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in self.results())
        data = lines.encode()
        if out.name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        atomic_write(out, data)
        return out

    def _export_table(self) -> tuple[list[str], list[dict[str, Any]]]:
        rows = self.rows()
        fixed = set(_EXPORT_LEAD) | set(_EXPORT_TAIL)
        config_cols: dict[str, None] = {}
        records = []
        for row in rows:
            # a finished run's result is checked as every reader checks it
            res = self._result(row["run_id"], row["result"]).to_dict() if row["status"] == "done" else {}
            cfg = row["config"] if row["config"] is not None else res.get("config") or {}
            flat = {(k if k not in fixed else f"config.{k}"): v for k, v in _flatten(cfg).items()}
            config_cols.update(dict.fromkeys(flat))
            metrics = res.get("metrics") or {}
            blackout = res.get("blackout") or {}
            rec: dict[str, Any] = {k: row[k] for k in ("run_id", "status", "error", "seconds", "version", "seed")}
            rec.update(flat)
            rec.update(
                avg_acc=metrics.get("avg_acc"),
                bwt=metrics.get("bwt"),
                fwt=metrics.get("fwt"),
                forgetting=metrics.get("forgetting"),
                blackout_task=blackout.get("task"),
                blackout_cause=blackout.get("cause"),
                retained=blackout.get("retained"),
                tasks_run=res.get("tasks_run"),
                n_params=res.get("n_params"),
                acc=json.dumps(res["acc"]) if "acc" in res else None,
                diagnostics=json.dumps(res["diagnostics"]) if "diagnostics" in res else None,
            )
            records.append(rec)
        header = [*_EXPORT_LEAD, *config_cols, *_EXPORT_TAIL]
        return header, [{k: rec.get(k) for k in header} for rec in records]

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close; the last writer also leaves the store at rest (no -wal, no -shm), while any other
        connection keeps it in WAL mode for its readers and writers."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        if self._wal:
            try:
                conn.execute("PRAGMA busy_timeout = 0")
                conn.execute("PRAGMA journal_mode = DELETE")
            except sqlite3.Error:  # another connection is open: it, or the last one, does this
                pass
        conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, study={self.study!r})"


def _check_header(path: Path) -> None:
    """Refuse a non-SQLite file before SQLite touches it; an empty file is a database yet to be made."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as e:
        raise StoreError(f"{path}: cannot read store ({e.strerror or e})") from None
    if head and head != _SQLITE_MAGIC:
        raise StoreError(f"{path}: not a SQLite database")


def _check_layout(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a store whose tables have columns other than those ``_SCHEMA`` makes (a foreign database
    with a blackout-like meta table), before any query of them can fail."""
    for table, want in _layout().items():
        have = _columns(conn, table)
        if [c for c, _ in have] != [c for c, _ in want]:
            raise StoreError(
                f"{path}: not a blackout store (table {table} has columns "
                f"{', '.join(c for c, _ in have)}; expected {', '.join(c for c, _ in want)})"
            )
        for (column, got), (_, expected) in zip(have, want):
            if got != expected:
                raise StoreError(
                    f"{path}: not a blackout store (table {table}: column {column} is {got or 'untyped'}, "
                    f"expected {expected})"
                )


def _read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, str] | None:
    """The meta table as a dict; None for an empty database; StoreError for someone else's database."""
    tables = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not r[0].startswith("sqlite_")
    }
    if "meta" not in tables:
        if tables:
            raise StoreError(f"{path}: not a blackout store (no meta table)")
        return None
    if "runs" not in tables:
        raise StoreError(f"{path}: not a blackout store (a meta table but no runs table)")
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}


def _connect_readonly(path: Path, timeout: float) -> sqlite3.Connection:
    """A connection that cannot write and leaves no file behind.

    A store at rest, or one a writer holds in WAL mode (its -wal and -shm exist), opens with mode=ro,
    which creates nothing. A WAL store without a -wal file (closed by an older blackout, or copied)
    has no writer, so it opens as immutable=1, as does a WAL store whose shared-memory file cannot be
    made in a folder that is not writable; both would otherwise need -wal and -shm files created.
    """
    from urllib.parse import quote

    uri = "file:" + quote(str(path.resolve()))
    with open(path, "rb") as f:
        wal_header = f.read(20)[18:20] == b"\x02\x02"
    if wal_header and not path.with_name(path.name + "-wal").exists():
        return sqlite3.connect(uri + "?immutable=1", timeout=timeout, isolation_level=None, uri=True)
    try:
        conn = sqlite3.connect(uri + "?mode=ro", timeout=timeout, isolation_level=None, uri=True)
        conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError:
        return sqlite3.connect(uri + "?immutable=1", timeout=timeout, isolation_level=None, uri=True)


def _pid_alive(pid: int) -> bool:
    """Whether a local process exists; unsure answers count as alive so a live run is never taken."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    try:  # a killed child not yet reaped by its parent is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except (OSError, IndexError):
        return True


def _pid_alive_windows(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return kernel32.GetLastError() == 5  # access denied: exists, but not ours
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"hidden": [50, 50]}}`` -> ``{"model.hidden": "50,50"}``: one cell per setting."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(json.dumps(v) if isinstance(v, (dict, list, tuple)) else str(v) for v in value)
        else:
            out[name] = value
    return out
