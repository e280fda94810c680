"""The one result store: ``OUT/artifacts.sqlite`` plus ``OUT/items/<key>/`` for each item's files.

Schema (version in ``PRAGMA user_version``; later work adds a migration to :data:`MIGRATIONS`,
never a second store):

- ``runs``: one row per run (task, model, weights, config, package version, command, counts).
- ``results``: one row per (item content, model, weights, config) = ``key``: item id, kind,
  input SHA-256 (bundle digest) and per-file hashes, status (``ok``/``not_applicable``/``error``),
  error message, reason (why not applicable), score, threshold, label, categories, files
  (relative to OUT), meta, package version, the run that wrote it.

Commit protocol, safe against SIGKILL at any instruction (invariant: a committed row has its
files): files are written to a staging folder; a result being replaced first loses its row (its
own transaction), then the folders are swapped, then the new row is inserted (SQLite WAL). A key
without a row is not done and is recomputed on the next run. Staging leftovers and result folders
without a row are removed when a run starts; nothing else in OUT is ever deleted.

The key covers the item's id (its path relative to the input), its content, the model, weights
and output-relevant config: two files with equal bytes are two results, and when a file changes
its old result is replaced (one row per item and model setting).
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sqlite3
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from artifacts.types import json_default

DB_NAME = "artifacts.sqlite"
KEY_PATTERN = re.compile(r"[0-9a-f]{32}")
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
RESULT_COLUMNS = ("key", "item_id", "kind", "task", "model", "weights", "config", "input_sha256", "inputs", "status",
                  "error", "reason", "score", "threshold", "label", "categories", "files", "meta", "package_version",
                  "run_id", "created_at")


class StoreError(RuntimeError):
    """The store cannot be used: locked by another run, written by a newer version, or writing failed."""


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
            raise StoreError(
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
    def done(self) -> dict[str, str]:
        """key -> status of every stored result."""
        with self._lock:
            return dict(self._db.execute("SELECT key, status FROM results").fetchall())

    def commit(self, row: dict[str, Any], files: dict[str, bytes] | None = None) -> None:
        """Store one result: its files (name -> bytes) in ``items/<key>/`` and its row.

        Crash-safe ordering (see module docstring): files are staged first; a result that is
        being replaced loses its row before its folder is swapped, so a committed row always has
        its files. Rows of the same item under the same model/weights/config with another key
        (the file changed, or it could not be read before) are replaced in the same transaction.
        """
        key = row["key"]
        if not KEY_PATTERN.fullmatch(key):
            raise ValueError(f"not a result key: {key!r}")
        final = self.items_dir / key
        staged = None
        if files:
            staged = self.items_dir / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
            staged.mkdir(parents=True)
            for name, content in files.items():
                (staged / name).write_bytes(content)
        values = {col: None for col in RESULT_COLUMNS} | row | {"created_at": now()}
        for col in JSON_COLUMNS:
            if col in values and values[col] is not None and not isinstance(values[col], str):
                values[col] = json.dumps(values[col], sort_keys=True, default=json_default)
        with self._lock:
            exists = self._db.execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone() is not None
            if exists:
                with self._db:
                    self._db.execute("DELETE FROM results WHERE key = ?", (key,))
        trash = []
        if final.exists():
            trash.append(self.items_dir / f".old-{key}-{uuid.uuid4().hex[:8]}")
            final.rename(trash[-1])
        if staged is not None:
            staged.rename(final)
        same_item = "item_id = ? AND model = ? AND weights = ? AND config = ? AND key != ?"
        same_args = (values["item_id"], values["model"], values["weights"], values["config"], key)
        with self._lock, self._db:
            stale = [r[0] for r in self._db.execute(f"SELECT key FROM results WHERE {same_item}", same_args)]
            self._db.execute(f"DELETE FROM results WHERE {same_item}", same_args)
            self._db.execute(f"INSERT INTO results ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                             list(values.values()))
        for path in trash + [self.items_dir / k for k in stale]:
            shutil.rmtree(path, ignore_errors=True)

    def clean(self) -> int:
        """Remove staging leftovers and result folders whose row is gone; return how many.
        Only names this store creates are touched (32 hex digits, ``.tmp-*``, ``.old-*``)."""
        keys = self.done()
        removed = 0
        for path in self.items_dir.iterdir():
            ours = path.name.startswith((".tmp-", ".old-")) or KEY_PATTERN.fullmatch(path.name)
            if path.is_dir() and ours and path.name not in keys:
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
        """The stored :class:`~artifacts.types.Detection` (or, for a restorer's row,
        :class:`~artifacts.types.Restoration`) of ``key``; None if absent or an error."""
        from artifacts.registry import RESTORATION_TASKS
        from artifacts.types import RESTORATION_JSON, Detection, Restoration

        with self._lock:
            found = self._db.execute("SELECT * FROM results WHERE key = ?", (key,)).fetchone()
        if found is None or found["status"] == "error":
            return None
        row = self._decode(found)
        folder = self.items_dir / key
        if (folder / "detection.json").is_file():
            return Detection.load(folder)
        if (folder / RESTORATION_JSON).is_file():
            return Restoration.load(folder)
        if row["task"] in RESTORATION_TASKS:
            return Restoration(status=row["status"], reason=row["reason"], meta=row["meta"] or {}) \
                if row["status"] != "ok" else None
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
    CSV_COLUMNS = ("item_id", "status", "score", "label", "threshold", "error", "reason", "task", "model", "weights",
                   "input_sha256", "key", "heatmap", "mask", "overlay", "restored", "created_at")

    def export(self, directory: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``results.csv`` (flat columns) and ``results.jsonl`` (full rows) in one pass."""
        directory = Path(directory)
        paths = directory / "results.csv", directory / "results.jsonl"
        tmps = [p.with_name(p.name + ".tmp") for p in paths]
        with self._lock, open(tmps[0], "w", newline="") as fc, open(tmps[1], "w") as fj:
            writer = csv.DictWriter(fc, fieldnames=self.CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for raw in self._db.execute("SELECT * FROM results ORDER BY item_id, model"):
                r = self._decode(raw)
                fj.write(json.dumps(r, sort_keys=True, default=json_default) + "\n")
                files = {k: f"{ITEMS_DIR}/{r['key']}/{v}" for k, v in (r.get("files") or {}).items()}
                writer.writerow({**r, **files})
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
        return paths

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
