"""The output folder of a learned-model recipe (``iml``, ``qcnet``, ``safe``).

:class:`TrainRun` keeps the epoch history and the best epoch, and after every epoch rewrites
``OUT/<weights file>`` (the best epoch's state dict, safetensors) and ``OUT/train.json`` (the
recipe's own fields plus the shared ones: ``complete``, ``stopped_early``, ``epochs``,
``best_epoch``, ``held_out``, ``seconds``, ``weights`` with its sha256, ``torch``), so an
interrupted run keeps its best epoch so far and says that it did not complete.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from artifacts.weights import file_sha256


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


def optimiser_step(opt, loss, epoch: int, step: int) -> float:
    """One optimiser step on ``loss``, refused (``FloatingPointError``) when the loss is not finite;
    returns the loss value."""
    import torch

    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch} step {step}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


class TrainRun:
    """Best-epoch weights and ``train.json`` of one training run (see the module docstring).

    ``fields()`` returns the recipe's own record fields (called at every write, so it may report
    values that change during the run); ``dtype`` (e.g. ``torch.float16``) casts floating tensors
    when saving."""

    def __init__(self, out: str | Path, weights_file: str, *, epochs: int, t_start: float,
                 fields: Callable[[], dict], metadata: dict | None = None, dtype: Any = None,
                 weights_info: dict | None = None):
        self.dir = Path(out)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.weights = self.dir / weights_file
        self.epochs, self.t_start, self.fields = int(epochs), t_start, fields
        self.metadata, self.dtype, self.weights_info = dict(metadata or {}), dtype, dict(weights_info or {})
        self.history: list[dict] = []
        self.best: dict | None = None
        self.sha: str | None = None

    def better(self, key: Callable[[dict], float], row: dict) -> bool:
        """Whether ``row`` beats the best epoch so far by ``key`` (the first epoch always does)."""
        return self.best is None or key(row) > key(self.best)

    def end_epoch(self, row: dict, state: dict, *, better: bool, time_limit_s: float | None = None) -> bool:
        """Record an epoch (``row`` with ``epoch``, ``seconds``, ``held_out``), save ``state`` (the
        model's state dict) when ``better``, rewrite the outputs; True when the run should stop
        (another epoch as long as this one would pass ``time_limit_s``)."""
        stop = time_limit_s is not None and row["epoch"] + 1 < self.epochs and \
            time.perf_counter() - self.t_start + row["seconds"] > time_limit_s
        self.history.append(row)
        if better:
            self.best = row
            self._save(state)
        self.write(final=row["epoch"] + 1 == self.epochs or stop)
        return stop

    def _save(self, state: dict) -> None:
        from safetensors.torch import save_file

        cast = {}
        for k, v in state.items():
            v = v.detach()
            v = v.to(self.dtype) if self.dtype is not None and v.is_floating_point() else v.clone()
            cast[k] = v.contiguous()
        save_file(cast, str(self.weights), metadata={**self.metadata, "best_epoch": str(self.best["epoch"])})
        self.sha = file_sha256(self.weights)

    def seconds(self) -> float:
        return round(time.perf_counter() - self.t_start, 1)

    def write(self, *, final: bool) -> None:
        import torch

        record = {
            **self.fields(),
            "complete": final,
            "stopped_early": final and len(self.history) < self.epochs,
            "epochs": self.history,
            "best_epoch": self.best["epoch"] if self.best else None,
            "held_out": self.best["held_out"] if self.best else None,
            "seconds": self.seconds(),
            "weights": {"file": self.weights.name, "sha256": self.sha, **self.weights_info},
            "torch": torch.__version__,
        }
        (self.dir / "train.json").write_text(json.dumps(record, indent=1, default=_json_default) + "\n")

    def result(self) -> dict:
        """What a recipe returns: the file, its sha256, the best epoch and its held-out metrics."""
        return {"file": str(self.weights), "sha256": self.sha,
                "best_epoch": self.best["epoch"] if self.best else None,
                "held_out": self.best["held_out"] if self.best else None,
                "epochs_run": len(self.history), "seconds": self.seconds()}
