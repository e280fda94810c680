"""The input of a view metric: a rendered (novel) view and the reference views of its scene."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REF_PREFIX = "ref"  # item file roles: "image" = the view, "ref0000", "ref0001", ... = references


@dataclass
class ViewInput:
    view: Any  # ImageData
    refs: tuple  # paths, arrays or ImageData
    refs_key: str  # identifies the reference set (for caching its features)

    @property
    def pixels(self):  # the engine draws overlays on the view
        return self.view.pixels


def refs_key(refs) -> str:
    """A key for a reference set: paths with their size and mtime, or array contents."""
    h = hashlib.sha256()
    for ref in refs:
        if isinstance(ref, (str, os.PathLike)):
            st = os.stat(ref)
            h.update(f"{Path(ref).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        else:
            pixels = getattr(ref, "pixels", ref)
            h.update(memoryview(__import__("numpy").ascontiguousarray(pixels)).cast("B"))
    return h.hexdigest()


def load_view_item(item) -> ViewInput:
    """Engine loader: decode the view; references are decoded once per reference set by the detector."""
    from artifacts.io import load_image

    roles = sorted(r for r in item.files if r.startswith(REF_PREFIX))
    refs = tuple(item.files[r] for r in roles)
    return ViewInput(load_image(item.files["image"]), refs, refs_key(refs))
