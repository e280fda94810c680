"""The one result store: ``OUT/artifacts.sqlite`` plus ``OUT/items/<key>/`` for each item's files.

Schema (version in ``PRAGMA user_version``; later work adds a migration to :data:`MIGRATIONS`,
never a second store):

- ``runs``: one row per run (task, model, weights, config, package version, command, counts).
- ``results``: one row per (item content, model, weights, config) = ``key``: item id, kind,
  input SHA-256 (bundle digest) and per-file hashes, status (``ok``/``not_applicable``/``error``),
  error message, reason (why not applicable), score, threshold, label, categories, files
  (relative to OUT), meta, package version, the run that wrote it.

Commit protocol, safe against SIGKILL at any instruction: files are written to a staging folder,
renamed into ``items/<key>/``, then the row is upserted in its own transaction (SQLite WAL). A
key without a row is not done and is recomputed on the next run; its files are replaced.
Staging leftovers and folders without a row are removed when a run starts.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

DB_NAME = "artifacts.sqlite"
ITEMS_DIR = "items"
JSON_COLUMNS = ("inputs", "categories", "files", "meta", "config")

MIGRATIONS: list[str] = [
    # v0 -> v1
    """
    CREATE TABLE runs (
        run_id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        task TEXT NOT NULL,
        model TEXT NOT NULL,
        weights TEXT NOT NULL,
        config TEXT NOT NULL,
        package_version TEXT NOT NULL,
        command TEXT,
        n_items INTEGER, n_ok INTEGER, n_not_applicable INTEGER, n_error INTEGER, n_skipped INTEGER
    );
    CREATE TABLE results (
        key TEXT PRIMARY KEY,
        item_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        task TEXT NOT NULL,
        model TEXT NOT NULL,
        weights TEXT NOT NULL,
        config TEXT NOT NULL,
        input_sha256 TEXT NOT NULL,
        inputs TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ok', 'not_applicable', 'error')),
        error TEXT,
        reason TEXT,
        score REAL,
        threshold REAL,
        label INTEGER,
        categories TEXT,
        files TEXT,
        meta TEXT,
        package_version TEXT NOT NULL,
        run_id INTEGER REFERENCES runs(run_id),
        created_at TEXT NOT NULL
    );
    CREATE INDEX results_item ON results(item_id);
    CREATE INDEX results_input ON results(input_sha256);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Store:
    """Open (creating or migrating) the store in ``out_dir``. Safe to share between threads."""

    def __init__(self, out_dir: str | os.PathLike):
        self.root = Path(out_dir)
        self.items_dir = self.root / ITEMS_DIR
        self.items_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.root / DB_NAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable against process kills
        self._migrate()

    # -- schema ---------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema v{version}, newer than this package (v{SCHEMA_VERSION}); upgrade artifacts"
            )
        with self._lock:
            for v in range(version, SCHEMA_VERSION):
                self._db.executescript(f"BEGIN; {MIGRATIONS[v]}; PRAGMA user_version = {v + 1}; COMMIT;")

    # -- runs -----------------------------------------------------------------------------
    def begin_run(self, *, task: str, model: str, weights: str, config: dict, command: str | None) -> int:
        from artifacts._version import __version__

        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT INTO runs (started_at, task, model, weights, config, package_version, command) VALUES (?,?,?,?,?,?,?)",
                (now(), task, model, weights, json.dumps(config, sort_keys=True), __version__, command),
            )
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str, counts: dict[str, int]) -> None:
        with self._lock, self._db:
            self._db.execute(
                "UPDATE runs SET finished_at=?, status=?, n_items=?, n_ok=?, n_not_applicable=?, n_error=?, n_skipped=? WHERE run_id=?",
                (now(), status, counts.get("items", 0), counts.get("ok", 0), counts.get("not_applicable", 0),
                 counts.get("error", 0), counts.get("skipped", 0), run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        return [self._decode(r) for r in self._db.execute("SELECT * FROM runs ORDER BY run_id")]

    # -- results --------------------------------------------------------------------------
    def done_keys(self, *, include_errors: bool = True) -> set[str]:
        sql = "SELECT key FROM results" + ("" if include_errors else " WHERE status != 'error'")
        with self._lock:
            return {r[0] for r in self._db.execute(sql)}

    def commit(self, row: dict[str, Any], files: dict[str, bytes] | None = None) -> None:
        """Write ``files`` (name -> bytes) to ``items/<key>/`` through a staging folder, then
        upsert the row. A folder left by an earlier, uncommitted attempt is replaced."""
        key = row["key"]
        final = self.items_dir / key
        staged = None
        if files:
            staged = self.items_dir / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
            staged.mkdir(parents=True)
            for name, content in files.items():
                (staged / name).write_bytes(content)
        if final.exists():
            old = self.items_dir / f".old-{key}-{uuid.uuid4().hex[:8]}"
            final.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        if staged is not None:
            staged.rename(final)
        values = {**row, "created_at": now()}
        for col in JSON_COLUMNS:
            if col in values and not isinstance(values[col], str) and values[col] is not None:
                values[col] = json.dumps(values[col], sort_keys=True, default=str)
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        update = ", ".join(f"{c}=excluded.{c}" for c in values if c != "key")
        with self._lock, self._db:
            self._db.execute(
                f"INSERT INTO results ({cols}) VALUES ({marks}) ON CONFLICT(key) DO UPDATE SET {update}",
                list(values.values()),
            )

    def clean(self) -> int:
        """Remove staging leftovers and item folders that have no row; return how many."""
        keys = self.done_keys()
        removed = 0
        for path in self.items_dir.iterdir():
            if path.is_dir() and (path.name.startswith((".tmp-", ".old-")) or path.name not in keys):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed

    def rows(self, *, run_id: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM results WHERE 1=1", []
        if run_id is not None:
            sql, args = sql + " AND run_id = ?", args + [run_id]
        if status is not None:
            sql, args = sql + " AND status = ?", args + [status]
        with self._lock:
            return [self._decode(r) for r in self._db.execute(sql + " ORDER BY item_id, model", args)]

    def detection(self, key: str):
        """The stored :class:`~artifacts.types.Detection` of ``key`` (None if absent or an error)."""
        from artifacts.types import Detection

        with self._lock:
            found = self._db.execute("SELECT * FROM results WHERE key = ?", (key,)).fetchone()
        if found is None or found["status"] == "error":
            return None
        row = self._decode(found)
        folder = self.items_dir / key
        if (folder / "detection.json").is_file():
            return Detection.load(folder)
        return Detection(score=row["score"], threshold=row["threshold"], status=row["status"], reason=row["reason"],
                         categories=row["categories"] or {}, meta=row["meta"] or {})

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    @staticmethod
    def _decode(row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        for col in JSON_COLUMNS:
            if isinstance(d.get(col), str):
                d[col] = json.loads(d[col])
        return d

    # -- export ---------------------------------------------------------------------------
    CSV_COLUMNS = ("item_id", "status", "score", "label", "threshold", "error", "task", "model", "weights",
                   "input_sha256", "key", "heatmap", "mask", "overlay", "created_at")

    def export(self, path: str | os.PathLike, fmt: str | None = None) -> Path:
        """Write all results as CSV (flat columns) or JSONL (full rows); format from the suffix."""
        path = Path(path)
        fmt = fmt or path.suffix.lstrip(".")
        rows = self.rows()
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            if fmt == "jsonl":
                for r in rows:
                    f.write(json.dumps(r, sort_keys=True) + "\n")
            elif fmt == "csv":
                writer = csv.DictWriter(f, fieldnames=self.CSV_COLUMNS, extrasaction="ignore")
                writer.writeheader()
                for r in rows:
                    files = {k: f"{ITEMS_DIR}/{r['key']}/{v}" for k, v in (r.get("files") or {}).items()}
                    writer.writerow({**r, **files})
            else:
                raise ValueError(f"unknown export format {fmt!r} (csv or jsonl)")
        os.replace(tmp, path)
        return path

    def iter_items(self) -> Iterator[tuple[dict[str, Any], Path]]:
        for r in self.rows():
            yield r, self.items_dir / r["key"]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
