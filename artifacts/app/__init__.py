"""The Gradio app: one page with a tab per landed task (manipulation, novel views, restoration,
batch), a door into the same API as the CLI (``artifacts.create``, ``detect``, ``restore``,
``run_batch``), with no detection or restoration logic of its own.

``import artifacts.app`` is light: gradio is imported only by :func:`launch` / :func:`build_app`
(extra ``[app]``). The upload guards (:mod:`artifacts.app.safety`) need no gradio.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "launch": "artifacts.app.ui",
    "build_app": "artifacts.app.ui",
    "safe_extract_zip": "artifacts.app.safety",
    "resolve_under_root": "artifacts.app.safety",
    "UnsafeInputError": "artifacts.app.safety",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'artifacts.app' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
