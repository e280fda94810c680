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

    @property
    def pixels(self):  # the engine draws overlays on the view
        return self.view.pixels


def array_key(ref) -> str:
    """Identity of an in-memory reference: shape, dtype and bytes of its pixels and alpha."""
    import numpy as np

    h = hashlib.sha256()
    for part in (getattr(ref, "pixels", ref), getattr(ref, "alpha", None)):
        if part is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(part)
        h.update(f"{a.shape}|{a.dtype}|".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def ref_key(ref) -> str:
    """Identity of one reference: a file by resolved path, size and mtime, an array by content."""
    if isinstance(ref, (str, os.PathLike)):
        st = os.stat(ref)
        return f"{Path(ref).resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return array_key(ref)


def load_view_item(item) -> ViewInput:
    """Engine loader: decode the view; the detector decodes each reference once (feature cache)."""
    from artifacts.io import load_image

    roles = sorted(r for r in item.files if r.startswith(REF_PREFIX))
    refs = tuple(item.files[r] for r in roles)
    return ViewInput(load_image(item.files["image"]), refs)
