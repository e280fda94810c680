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
           "synthetic-calibration": "artifacts.train.synthetic_calibration:calibrate_synthetic",
           "iml": "artifacts.train.iml:train_iml",
           "qcnet": "artifacts.train.dmri:train_qcnet",
           "dmri-qc-calibration": "artifacts.detectors.dmri.qc:calibrate_qc",
           "difix": "artifacts.train.diffusion:train_difix"}


def recipe_function(info):
    """The training function of a registered model (ValueError when it has no recipe)."""
    recipe = getattr(info.cls, "recipe", None)
    if recipe not in RECIPES:
        raise ValueError(f"{info.full_name} has no training recipe yet")
    module, func = RECIPES[recipe].split(":")
    return getattr(importlib.import_module(module), func)


def train(task: str, model: str, out: str, *, options: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run ``model``'s recipe. ``options`` are recipe options given by the user (e.g. the CLI's
    ``--epochs``): one the recipe does not take is an error naming it; ``kwargs`` go through as they are
    (config overrides, progress)."""
    import inspect

    from artifacts.registry import model_info

    info = model_info(model, task=task)
    if info.task != task:
        raise ValueError(f"model {info.full_name} belongs to task {info.task!r}, not {task!r}")
    fn = recipe_function(info)
    taken = inspect.signature(fn).parameters
    for key in options or {}:
        if key not in taken:
            raise ValueError(f"{info.full_name}: option --{key} does not apply to its recipe "
                             f"{info.cls.recipe!r}")
        if key in kwargs:
            raise ValueError(f"{info.full_name}: {key} given twice (as --{key} and with --set)")
    return fn(info, out, **(options or {}), **kwargs)
