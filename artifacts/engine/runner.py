"""The batch runner: items -> (hash, decode in parallel) -> detector in batches -> store.

Three stages overlap:

1. worker threads hash each item's files, skip it if the store already has its key, and decode
   it (Pillow and OpenCV release the GIL while decoding);
2. the calling thread runs the detector on batches of ``batch_size`` items;
3. one writer thread renders and writes each item's files and commits its row.

Memory: at most ``workers * 2 + batch_size`` decoded items wait for the detector and
``WRITER_QUEUE`` results (with their input and heatmap) wait for the writer.

Errors stay with their item: a file that cannot be read, or a detector failure on one item,
becomes an ``error`` row with a one-line message, and the batch goes on. A run killed at any
moment resumes: rows are committed per item (see :mod:`artifacts.engine.store`).
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from artifacts.engine.items import (Item, discover_dwi, discover_images, discover_views, hash_item, input_digest,
                                    result_key)
from artifacts.engine.store import Store, StoreError

ITEM_FINDERS: dict[str, Callable[..., list[Item]]] = {"image": discover_images, "view": discover_views,
                                                       "dwi": discover_dwi}
WRITER_QUEUE = 2
MAX_MESSAGE = 500


class StoreBusyError(StoreError):
    """Another run holds the store's lock."""


@dataclass
class RunSummary:
    run_id: int
    out: Path
    counts: dict[str, int]
    elapsed_s: float
    errors: list[tuple[str, str]] = field(default_factory=list)  # (item id, message) of this run
    status: str = "finished"

    @property
    def exit_code(self) -> int:
        """0 all done, 1 some items failed (now or in an earlier run), 3 every item processed now
        failed (see ``artifacts detect --help``)."""
        c = self.counts
        processed = c["items"] - c["skipped"]
        if c["error"] and c["error"] == processed:
            return 3
        return 1 if c["error"] or c["skipped_errors"] else 0

    def text(self) -> str:
        c = self.counts
        rate = (c["items"] - c["skipped"]) / self.elapsed_s if self.elapsed_s > 0 else 0.0
        earlier = f", {c['skipped_errors']} of them failed earlier (--retry-errors)" if c["skipped_errors"] else ""
        lines = [
            f"{c['items']} items: {c['ok']} ok, {c['not_applicable']} not applicable, {c['error']} errors, "
            f"{c['skipped']} already done (skipped){earlier} in {self.elapsed_s:.1f} s ({rate:.2f} items/s)",
            f"store: {self.out / 'artifacts.sqlite'}   files: {self.out / 'items'}   table: {self.out / 'results.csv'}",
        ]
        for item_id, msg in self.errors[:10]:
            lines.append(f"  error: {msg if item_id in msg else f'{item_id}: {msg}'}")
        if len(self.errors) > 10:
            lines.append(f"  ... and {len(self.errors) - 10} more errors (see results.csv)")
        return "\n".join(lines)


def one_line(exc: BaseException) -> str:
    """A one-line message for an exception (no traceback); the type is named unless it is a
    ValueError (the input's fault, already worded for users)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


class _Lock:
    """Exclusive lock on OUT so two runs never write the same store at once."""

    def __init__(self, out: Path):
        self.file = open(out / ".lock", "a+")
        try:
            if os.name == "nt":  # pragma: no cover - Windows
                import msvcrt

                msvcrt.locking(self.file.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            raise StoreBusyError(f"another artifacts run is writing to {out}; wait for it or use another -o") from None

    def release(self) -> None:
        self.file.close()  # closing the file releases the lock


def _count_skip(counts: dict[str, int], status: str) -> None:
    counts["skipped"] += 1
    counts["skipped_errors"] += status == "error"


def _prepare(item: Item, fingerprint: dict, done: dict[str, str], load: Callable) -> tuple:
    """Worker: hash, skip if done, else decode. Returns (item, key, hashes, payload, error)."""
    try:
        hashes = hash_item(item)
    except OSError as exc:
        return item, result_key(item, None, fingerprint), None, None, f"cannot read file: {exc.strerror or exc}"
    key = result_key(item, hashes, fingerprint)
    if key in done:
        return item, key, hashes, None, None
    try:
        return item, key, hashes, load(item), None
    except Exception as exc:  # decoding errors are per item
        return item, key, hashes, None, one_line(exc)


def run_batch(
    inputs: list[str] | None = None,
    out: str | os.PathLike = "artifacts-out",
    *,
    task: str = "manipulation",
    model: str | None = None,
    detector: Any = None,
    weights: str | None = None,
    device: str | None = None,
    batch_size: int = 1,
    workers: int | None = None,
    resume: bool = True,
    retry_errors: bool = False,
    items: list[Item] | None = None,
    files_from: str | None = None,
    recursive: bool = True,
    progress: bool = True,
    save_files: bool = True,
    command: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    actors: int | None = None,
    refs: list[str] | None = None,
    masks: str | None = None,
    **overrides: Any,
) -> RunSummary:
    """Run a detector or restorer over many inputs and store every result in ``out`` (see module
    docstring).

    Pass ``detector`` (an already built detector or restorer) or ``model``/``weights``/``device``/
    overrides (built with :func:`artifacts.create`; default model of ``task``). ``refs``: the
    reference views (files, folders) of a ``views`` or ``refrepair`` run, bundled with every view.
    ``masks``: restoration only, one mask file or a folder of masks named like the inputs (see
    :func:`artifacts.engine.items.attach_masks`). ``engine="ray"`` runs the model in a Ray actor
    pool (:mod:`artifacts.engine.ray_engine`) and writes the same store.
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r} (local or ray)")
    from artifacts.registry import create, default_model, model_info

    t_start = time.perf_counter()
    if detector is None:
        name = model_info(model, task=task).full_name if model else default_model(task)
        if not name.startswith(f"{task}/"):
            raise ValueError(f"model {name} belongs to task {name.split('/')[0]!r}, not {task!r}")
        detector = create(name, weights=weights, device=device, **overrides)
    task = detector.task or task
    out = Path(out)
    if refs is not None and detector.item_kind != "view":
        raise ValueError(f"references (--refs) apply to view metrics and reference-guided repair, not to "
                         f"{detector.model_id}")
    if masks is not None and not hasattr(detector, "restore_one"):
        raise ValueError(f"masks (--masks) are regions to repair; {detector.model_id} is not a restorer")
    if items is None:
        found = {"refs": refs} if detector.item_kind == "view" else {}
        items = ITEM_FINDERS[detector.item_kind](list(inputs or []), recursive=recursive, files_from=files_from,
                                                 exclude=[out / "items", out / "report"], **found)
    if masks is not None:
        from artifacts.engine.items import attach_masks

        items = attach_masks(items, masks)
    if not items:
        raise FileNotFoundError("no input items found (folders are searched for image files by extension)")
    workers = max(1, workers if workers is not None else min(8, os.cpu_count() or 1))
    batch_size = max(1, batch_size)

    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    lock = _Lock(out)
    try:
        with Store(out) as store:
            return _run(store, out, items, detector, task, workers, batch_size, resume, retry_errors, progress,
                        save_files, command, engine, ray_address, actors, t_start)
    finally:
        lock.release()


def _run(store, out, items, detector, task, workers, batch_size, resume, retry_errors, progress, save_files,
         command, engine, ray_address, actors, t_start) -> RunSummary:
    store.clean()
    fingerprint = detector.fingerprint()
    done = store.done() if resume else {}
    if retry_errors:
        done = {k: v for k, v in done.items() if v != "error"}
    run_id = store.begin_run(task=task, model=detector.model_id, weights=detector.weight_id,
                             config=fingerprint["config"], command=command)
    counts = {"items": len(items), "ok": 0, "not_applicable": 0, "error": 0, "skipped": 0, "skipped_errors": 0}
    errors: list[tuple[str, str]] = []
    writer = _Writer(store, detector, fingerprint, run_id, counts, errors, save_files)
    bar = _progress(len(items), progress)
    status = "failed"
    try:
        if engine == "ray":
            from artifacts.engine import ray_engine

            ray_engine.pump(items, detector, fingerprint, done, workers, batch_size, writer, bar, counts,
                            address=ray_address, actors=actors, save_files=save_files)
        else:
            _pump(items, detector, fingerprint, done, workers, batch_size, writer, bar, counts)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        try:
            writer.close()  # commits what is queued; raises if writing failed
        except BaseException:
            status = "failed"
            raise
        finally:
            bar.close()
            store.finish_run(run_id, status, counts)
            store.export(out)  # also after an interruption: the tables match the store
    return RunSummary(run_id, out, counts, time.perf_counter() - t_start, errors, status)


def _pump(items, detector, fingerprint, done, workers, batch_size, writer, bar, counts) -> None:
    from artifacts.io import load_image

    load = _loader_for(detector, load_image)
    window = workers * 2 + batch_size
    pool = ThreadPoolExecutor(workers, thread_name_prefix="artifacts-decode")
    try:
        pending: deque = deque()
        feed = iter(items)
        batch: list[tuple] = []
        while True:
            while len(pending) < window:
                item = next(feed, None)
                if item is None:
                    break
                pending.append(pool.submit(_prepare, item, fingerprint, done, load))
            if not pending:
                break
            item, key, hashes, payload, error = pending.popleft().result()
            if error is not None:
                writer.put(item, key, hashes, None, None, error)
            elif payload is None:
                _count_skip(counts, done[key])
            else:
                batch.append((item, key, hashes, payload))
            if len(batch) >= batch_size or (not pending and batch):
                _run_detector(detector, batch, writer)
                batch = []
            bar.update(1)
            bar.set_postfix(ok=counts["ok"], err=counts["error"], skip=counts["skipped"], refresh=False)
        if batch:
            _run_detector(detector, batch, writer)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C, do not decode what is queued


def _loader_for(detector, load_image):
    custom = getattr(detector, "load_item", None)
    if custom is not None:
        return custom
    return lambda item: load_image(item.files["image"])


def _run_detector(detector, batch: list[tuple], writer: "_Writer") -> None:
    try:
        results = detector.process_batch([b[3] for b in batch])
    except Exception as exc:
        if len(batch) > 1:  # isolate the failing item(s)
            for one in batch:
                _run_detector(detector, [one], writer)
            return
        item, key, hashes, _ = batch[0]
        writer.put(item, key, hashes, None, None, one_line(exc))
        return
    for (item, key, hashes, payload), det in zip(batch, results):
        writer.put(item, key, hashes, payload, det, None)


def item_result(payload, result, error: str | None, *, save_files: bool = True) -> tuple[dict, dict[str, bytes]]:
    """The per-item part of a row and the item's files (name -> bytes). A detection with arrays
    gets its JSON, heatmap, mask and an overlay on the input; a restoration its JSON, the
    restored image, the mask it repaired and a before/after picture (``overlay.png``, the
    report's picture column). Scores, categories and meta live in the row. Used by every engine
    (locally in the writer thread, in the actors on Ray)."""
    from artifacts.types import Restoration

    files: dict[str, bytes] = {}
    if error is None and save_files:
        try:
            files = (_restoration_files if isinstance(result, Restoration) else _detection_files)(result, payload)
        except Exception as exc:
            error, files = f"saving results failed: {one_line(exc)}", {}
    if error is not None:
        return {"status": "error", "error": error, "files": {}}, {}
    fields = {"status": result.status.value, "error": None, "reason": result.reason,
              "score": getattr(result, "score", None), "threshold": getattr(result, "threshold", None),
              "label": None if getattr(result, "label", None) is None else int(result.label),
              "categories": getattr(result, "categories", {}),
              "files": {name.split(".")[0]: name for name in files}, "meta": result.meta}
    return fields, files


def _detection_files(det, payload) -> dict[str, bytes]:
    if det.heatmap is None and not det.elements:
        return {}
    files = det.to_files()
    if hasattr(payload, "bvals"):  # a diffusion series: its QC page, picture and volume table
        from artifacts.report.dmri import series_files

        files.update(series_files(det, payload))
    pixels = getattr(payload, "pixels", None)
    if det.heatmap is not None and pixels is not None and pixels.shape[:2] == det.heatmap.shape:
        from artifacts.io import encode_image
        from artifacts.viz import overlay

        files["overlay.png"] = encode_image(overlay(pixels, det.heatmap, det.mask))
    return files


def _restoration_files(res, payload) -> dict[str, bytes]:
    if res.image is None:
        return {}
    from artifacts.io import encode_image
    from artifacts.viz import before_after

    files = res.to_files()
    pixels = getattr(payload, "pixels", None)
    if pixels is not None:
        files["overlay.png"] = encode_image(before_after(pixels, res.image, res.mask))
    return files


class _Writer:
    """One thread that renders files and commits rows, so the detector never waits on disk."""

    def __init__(self, store, detector, fingerprint, run_id, counts, errors, save_files):
        from artifacts._version import __version__

        self.store, self.counts, self.errors, self.save_files = store, counts, errors, save_files
        self.base = {"task": detector.task, "model": fingerprint["model"], "weights": fingerprint["weights"],
                     "config": fingerprint["config"], "package_version": __version__, "run_id": run_id}
        self.q: queue.Queue = queue.Queue(maxsize=WRITER_QUEUE)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="artifacts-writer", daemon=True)
        self.thread.start()

    def put(self, item, key, hashes, payload, det, error) -> None:
        """Queue a detection (or an error) to be rendered and committed."""
        self._put(("render", item, key, hashes, payload, det, error))

    def put_rendered(self, item, key, hashes, fields, files) -> None:
        """Queue a result already rendered by :func:`item_result` (e.g. in a remote actor)."""
        self._put(("commit", item, key, hashes, fields, files))

    def _put(self, job) -> None:
        if self.failure is not None:
            raise StoreError(f"writing results failed: {one_line(self.failure)}") from self.failure
        self.q.put(job)

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.failure is not None:
            raise StoreError(f"writing results failed: {one_line(self.failure)}") from self.failure

    def _loop(self) -> None:
        while (job := self.q.get()) is not None:
            if self.failure is None:
                try:
                    if job[0] == "render":
                        _, item, key, hashes, payload, det, error = job
                        fields, files = item_result(payload, det, error, save_files=self.save_files)
                    else:
                        _, item, key, hashes, fields, files = job
                    self._commit(item, key, hashes, fields, files)
                except BaseException as exc:  # disk full, permissions: stop the run, keep what is committed
                    self.failure = exc

    def _commit(self, item, key, hashes, fields: dict, files: dict[str, bytes]) -> None:
        row = {
            "key": key,
            "item_id": item.id,
            "kind": item.kind,
            "input_sha256": input_digest(hashes) if hashes else "",
            "inputs": hashes or {role: {"path": p} for role, p in item.files.items()},
            **self.base,
            **fields,
        }
        self.store.commit(row, files)
        self.counts[fields["status"]] += 1
        if fields["status"] == "error":
            self.errors.append((item.id, fields["error"]))


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="item", disable=not enabled, dynamic_ncols=True, file=sys.stderr)
