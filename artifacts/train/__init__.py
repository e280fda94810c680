"""Training recipes, run by ``artifacts train TASK --model NAME -o DIR``.

A model names its recipe in its class attribute ``recipe``; this module maps recipe names to
functions, so no generic code branches on model names. Every recipe is seeded, uses only data
its split list allows (``artifacts/datasets/splits/``), and writes the weights file plus a JSON
record of what it did.
"""
from __future__ import annotations

import importlib
from typing import Any

#: recipe name -> "module:function"
RECIPES = {"calibration": "artifacts.train.calibration:calibrate", "safe": "artifacts.train.synthetic:train_safe",
           "synthetic-calibration": "artifacts.train.synthetic_calibration:calibrate_synthetic"}


def train(task: str, model: str, out: str, **kwargs: Any) -> dict[str, Any]:
    from artifacts.registry import model_info

    info = model_info(model, task=task)
    if info.task != task:
        raise ValueError(f"model {info.full_name} belongs to task {info.task!r}, not {task!r}")
    recipe = getattr(info.cls, "recipe", None)
    if recipe not in RECIPES:
        raise ValueError(f"{info.full_name} has no training recipe yet")
    module, func = RECIPES[recipe].split(":")
    return getattr(importlib.import_module(module), func)(info, out, **kwargs)
