"""Synthetic-image detection data: real/fake folder layouts read into labelled samples.

Three layouts are recognised, anywhere below the given root (searched recursively):

``0_real/`` + ``1_fake/``
    the common layout (also CNNDetection / ForenSynths, where they sit below one folder per
    object class or generator, e.g. ``progan/car/0_real``). The ``source`` is the file-name prefix
    before ``__`` when there is one (``sd1__0001.png``), else the folders between the root and
    ``0_real``/``1_fake`` joined by ``/`` (``progan/car``), else ``None``.
``nature/`` + ``ai/``
    GenImage (``<generator>/{train,val}/{nature,ai}``): the source is the folder above
    ``train``/``val``.

Real images count as label 0, generated ones as 1. Files are image files by extension; hidden
files are skipped; order is stable (natural sort of the relative path).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

REAL_DIRS = {"0_real": 0, "nature": 0}
FAKE_DIRS = {"1_fake": 1, "ai": 1}
SPLIT_DIRS = {"train", "val", "test"}


@dataclass(frozen=True)
class SIDSample:
    image: str
    label: int  # 0 real, 1 generated
    source: str | None  # generator of a fake, photo collection of a real (None when unknown)
    name: str  # path relative to the root, '/'-separated

    @property
    def fake(self) -> bool:
        return self.label == 1


def read_sid(root: str | Path) -> list[SIDSample]:
    """Every labelled image below ``root`` (see the module doc for the layouts)."""
    from artifacts.engine.items import IMAGE_EXTENSIONS, natural_key

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    out = []
    for path in sorted(root.rglob("*"), key=lambda p: natural_key(str(p.relative_to(root)))):
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        label, gen = _label(rel)
        if label is not None:
            out.append(SIDSample(str(path), label, gen, rel.as_posix()))
    if not out:
        raise FileNotFoundError(f"{root}: no images in a 0_real/1_fake (or GenImage nature/ai) layout")
    return out


def _label(rel: Path) -> tuple[int | None, str | None]:
    parts = rel.parts[:-1]
    for depth in range(len(parts) - 1, -1, -1):  # the deepest class folder decides
        name = parts[depth]
        if name in REAL_DIRS or name in FAKE_DIRS:
            label = REAL_DIRS.get(name, FAKE_DIRS.get(name))
            above = [p for p in parts[:depth] if p not in SPLIT_DIRS]
            stem = rel.name
            if "__" in stem:
                gen = stem.split("__", 1)[0]
            elif above:
                gen = "/".join(above)
            else:
                gen = None
            return label, gen
    return None, None


def holdout(samples: list[SIDSample], fraction: float, seed: int = 0) -> tuple[list[SIDSample], list[SIDSample]]:
    """(train, held-out): each sample goes to held-out when a hash of (seed, name) falls below
    ``fraction``: stable under adding files, independent of order."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    train, held = [], []
    for s in samples:
        h = int.from_bytes(hashlib.sha256(f"{seed}:{s.name}".encode()).digest()[:8], "little") / 2**64
        (held if h < fraction else train).append(s)
    return train, held
