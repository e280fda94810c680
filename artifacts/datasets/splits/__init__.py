"""Committed split lists: which data each recipe may use (``<name>.json`` beside this file)."""
from __future__ import annotations

import json
from importlib import resources


def load_split(name: str) -> dict:
    path = resources.files(__name__).joinpath(f"{name}.json")
    if not path.is_file():
        raise KeyError(f"no split list {name!r} in artifacts/datasets/splits")
    return json.loads(path.read_text())
