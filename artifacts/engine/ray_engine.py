"""``--engine ray``: the same batch on Ray Data, beyond one machine.

The driver hashes the items and skips what the store already has (exactly as the local
engine), then a Ray Data pipeline runs an actor pool: each actor holds one copy of the same
detector object (shipped to it once), decodes its items, runs ``process_batch`` and renders each
item's files with :func:`artifacts.engine.runner.item_result` — the code the local engine runs.
Results stream back to the driver, whose writer commits them to the one store, one item at a
time (resume works as locally). Without an address the command starts a local Ray instance;
``--ray-address`` (or ``RAY_ADDRESS``) joins a running cluster, whose workers must see the same
input paths (a shared file system) and have this package installed.
"""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from artifacts.engine.items import hash_item, result_key
from artifacts.engine.runner import _count_skip
from artifacts.types import json_default


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError('the Ray engine needs the [distributed] extra: pip install "artifacts-toolkit[distributed]"') from None
    return ray


class _DetectActor:
    """One detector per actor; a batch of items in, rendered results out."""

    def __init__(self, detector, save_files: bool):
        self.detector, self.save_files = detector, save_files

    def __call__(self, batch: dict) -> dict:
        from artifacts.engine.runner import _loader_for, item_result, one_line
        from artifacts.io import load_image
        from artifacts.engine.items import Item

        load = _loader_for(self.detector, load_image)
        items = [Item(i, json.loads(f)) for i, f in zip(batch["id"], batch["files"])]
        payloads, errors = [], []
        for item in items:
            try:
                payloads.append(load(item))
                errors.append(None)
            except Exception as exc:
                payloads.append(None)
                errors.append(one_line(exc))
        ok = [k for k, e in enumerate(errors) if e is None]
        dets = [None] * len(items)
        if ok:
            try:
                for k, det in zip(ok, self.detector.process_batch([payloads[k] for k in ok])):
                    dets[k] = det
            except Exception:  # isolate the failing item(s), as the local engine does
                for k in ok:
                    try:
                        dets[k] = self.detector.process_batch([payloads[k]])[0]
                    except Exception as exc:
                        errors[k] = one_line(exc)
        fields, names, blobs = [], [], []
        for k in range(len(items)):
            f, files = item_result(payloads[k], dets[k], errors[k], save_files=self.save_files)
            fields.append(json.dumps(f, default=json_default))
            names.append(json.dumps(list(files)))
            blobs.append(b"".join(len(v).to_bytes(8, "little") + v for v in files.values()))
        return {"key": batch["key"], "fields": fields, "names": names, "blobs": blobs}


def _unpack(names: str, blob: bytes) -> dict[str, bytes]:
    files, pos = {}, 0
    for name in json.loads(names):
        size = int.from_bytes(blob[pos:pos + 8], "little")
        files[name] = blob[pos + 8:pos + 8 + size]
        pos += 8 + size
    return files


def pump(items, detector, fingerprint, done, workers, batch_size, writer, bar, counts, *,
         address: str | None = None, actors: int | None = None, save_files: bool = True) -> None:
    ray = _ray()
    from ray.data import ActorPoolStrategy

    todo = {}
    with ThreadPoolExecutor(workers) as pool:
        for item, hashes in zip(items, pool.map(_hash_or_error, items)):
            if isinstance(hashes, str):  # unreadable file: an error row, as locally
                writer.put(item, result_key(item, None, fingerprint), None, None, None, hashes)
                bar.update(1)
                continue
            key = result_key(item, hashes, fingerprint)
            if key in done:
                _count_skip(counts, done[key])
                bar.update(1)
            else:
                todo[key] = (item, hashes)
    if not todo:
        return
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        ray.init(address=address, num_cpus=None if address else max(1, workers), include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING)
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    rows = [{"key": k, "id": it.id, "files": json.dumps(it.files)} for k, (it, _) in todo.items()]
    ds = ray.data.from_items(rows).map_batches(
        _DetectActor, fn_constructor_kwargs={"detector": detector, "save_files": save_files},
        batch_size=batch_size, batch_format="numpy",
        compute=ActorPoolStrategy(size=max(1, actors or workers)),
    )
    for row in ds.iter_rows():
        item, hashes = todo[row["key"]]
        writer.put_rendered(item, row["key"], hashes, json.loads(row["fields"]), _unpack(row["names"], row["blobs"]))
        bar.update(1)


def _hash_or_error(item):
    from artifacts.engine.runner import one_line

    try:
        return hash_item(item)
    except OSError as exc:
        return f"cannot read file: {one_line(exc)}"
