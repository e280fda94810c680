"""The one evaluation runner: samples -> engine (cached, resumable store) -> per-item stats ->
metrics with bootstrap confidence intervals, optionally under a robustness sweep.

Each task supplies a small adapter (:mod:`artifacts.eval.manipulation`, :mod:`artifacts.eval.views`)
that reads a dataset into samples (a sample's ``files`` are its item's files when it has more
than an image), turns a stored Detection and the sample's truth into per-item stats,
summarises them, and writes perturbed copies of a sample for the sweep. Detections are computed
through the same engine and store as ``artifacts detect`` (``OUT/store``), so an interrupted or
repeated evaluation only computes what is missing.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from artifacts.engine.items import Item, hash_item, result_key

ADAPTERS = {"manipulation": "artifacts.eval.manipulation:ManipulationAdapter",
            "views": "artifacts.eval.views:ViewsAdapter",
            "sr": "artifacts.eval.sr:SRAdapter",
            "refrepair": "artifacts.eval.refrepair:RefRepairAdapter",
            "synthetic": "artifacts.eval.synthetic:SyntheticAdapter",
            "xaigd": "artifacts.eval.xaigd:XAIGDAdapter",
            "dmri": "artifacts.eval.dmri:DMRIAdapter"}


def get_adapter(task: str, **options: Any):
    import importlib

    if task not in ADAPTERS:
        raise ValueError(f"no evaluation for task {task!r} yet (available: {', '.join(ADAPTERS)})")
    module, cls = ADAPTERS[task].split(":")
    return getattr(importlib.import_module(module), cls)(**options)


def usable_models(task: str) -> list[str]:
    """The models of ``task`` whose weights are found offline (or that need none)."""
    from artifacts.registry import list_models, model_info

    return [m for m in list_models(task=task) if model_info(m).weight_status() != "missing"]


def detections(detector, samples: list, store_dir: Path, *, workers: int | None, progress: bool, desc: str) -> list:
    """Detections of every sample (None for errors), computed through the engine when missing."""
    from artifacts.engine import Store, run_batch

    items = [Item(s.name, getattr(s, "files", None) or {"image": s.image}) for s in samples]
    if progress:
        print(f"  {desc}: {len(items)} items", flush=True)
    run_batch(items=items, out=store_dir, detector=detector, workers=workers, progress=progress,
              command=f"artifacts eval ({desc})")
    fingerprint = detector.fingerprint()
    with Store(store_dir) as store:
        return [store.detection(result_key(item, hash_item(item), fingerprint)) for item in items]


def evaluate(task: str, data: str, *, models: list[str] | None = None, out: str | None = None,
             sweep: tuple = (), n_boot: int = 1000, device: str | None = None, workers: int | None = None,
             progress: bool = True, **adapter_options: Any) -> dict[str, Any]:
    """Evaluate ``models`` (default: every model of ``task`` usable offline) on ``data``."""
    from artifacts.registry import create, model_info

    adapter = get_adapter(task, **adapter_options)
    model_task = getattr(adapter, "model_task", task)
    model_tasks = getattr(adapter, "model_tasks", (model_task,))  # the tasks whose models it can judge
    if sweep and not hasattr(adapter, "perturb"):
        raise ValueError(f"no robustness sweep for task {task!r}")
    out_dir = Path(out or Path("artifacts-eval") / Path(data).name)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = adapter.read(data, out_dir)
    result: dict[str, Any] = {
        "task": task, "data": str(data), "samples": adapter.describe(samples), "bootstrap": n_boot,
        "sweep": [p.name for p in sweep], "models": {},
    }
    for name in models or adapter.default_models():
        t0 = time.perf_counter()
        info = model_info(name, task=model_task)
        if info.task not in model_tasks:
            raise ValueError(f"eval {task}: model {info.full_name} belongs to task {info.task!r}, not "
                             f"{' or '.join(repr(t) for t in model_tasks)}")
        detector = create(info.full_name, device=device)
        entry = {"weights": detector.weight_id}
        dets = detections(detector, samples, out_dir / "store", workers=workers, progress=progress, desc=name)
        entry["clean"] = adapter.summarise(adapter.stats(samples, dets), n_boot=n_boot)
        entry["sweep"] = {}
        for p in sweep:
            perturbed = adapter.perturb(samples, p, out_dir / "perturbed" / p.name)
            dets = detections(detector, perturbed, out_dir / "store", workers=workers, progress=progress,
                              desc=f"{name} {p.name}")
            entry["sweep"][p.name] = adapter.summarise(adapter.stats(perturbed, dets), n_boot=0)
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        result["models"][detector.model_id] = entry
    if getattr(adapter, "baselines", None) is not None:
        if progress:
            print(f"  baselines: {len(samples)} items", flush=True)
        result["baselines"] = adapter.baselines(samples, n_boot)
    if getattr(adapter, "picture", None) is not None:  # curves people would rather look at than read
        result["picture"] = str(adapter.picture(result, out_dir))
    (out_dir / "eval.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    result["json"] = str(out_dir / "eval.json")
    return result


def fmt_metric(m: dict | None, ci_digits: int = 3) -> str:
    """``value [lo, hi]`` of a ``{"value", "ci"}`` metric for the printed tables; ``n/a`` for None."""
    if m is None:
        return "n/a"
    if m["ci"] is None:
        return f"{m['value']:.3f}"
    return f"{m['value']:.3f} [{m['ci'][0]:.{ci_digits}f}, {m['ci'][1]:.{ci_digits}f}]"
