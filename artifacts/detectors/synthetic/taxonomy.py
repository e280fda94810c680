"""The X-AIGD taxonomy of perceptual artifacts in AI-generated images, as data.

X-AIGD ("Unveiling Perceptual Artifacts: A Fine-Grained Benchmark for Interpretable AI-Generated
Image Detection", Xiao et al., arXiv 2601.19430, ICLR 2026; https://github.com/Coxy7/X-AIGD)
annotates artifacts with polygons in 7 categories on 3 levels. The label strings below are the
ones its parquet ``labels`` column uses, copied from the official metric code
(``metrics/constants.py`` and ``metrics/README.md`` of Coxy7/X-AIGD, commit 36b370a / 1684082):
``low-level-edge_shape``, ``low-level-texture``, ``low-level-color``, ``low-level-symbol``,
``high-level-semantics``, ``cognitive-level-commonsense``, ``cognitive-level-physics``.

These strings are also the keys a detector uses in :attr:`artifacts.types.Detection.categories`
(a score in ``[0, 1]`` per label; a level name such as ``low-level`` may carry a level's score).
:func:`canonical_label` maps common other spellings (``edge_shape``, ``Edge & Shape``,
``low_level_colour``) to them; :func:`validate_categories` checks a Detection's keys.
"""
from __future__ import annotations

import difflib
import re
from typing import Iterable, Mapping

import numpy as np

#: level -> its labels, in the official order
LEVELS: dict[str, tuple[str, ...]] = {
    "low-level": ("low-level-edge_shape", "low-level-texture", "low-level-color", "low-level-symbol"),
    "high-level": ("high-level-semantics",),
    "cognitive-level": ("cognitive-level-commonsense", "cognitive-level-physics"),
}
#: the 7 labels, in the official order (the order of X-AIGD's ``metrics/constants.py``)
LABELS: tuple[str, ...] = tuple(label for labels in LEVELS.values() for label in labels)
#: label -> its level
LEVEL_OF: dict[str, str] = {label: level for level, labels in LEVELS.items() for label in labels}
#: label -> the short name used in the paper's prose and in tables (``edge_shape``, ``physics``)
SHORT: dict[str, str] = {label: label[len(LEVEL_OF[label]) + 1:] for label in LABELS}

#: one line per level (the paper's three levels)
LEVEL_DESCRIPTIONS: dict[str, str] = {
    "low-level": "low-level distortions: fundamental visual irregularities of the pixels themselves",
    "high-level": "high-level semantics: abnormal object structure or semantic inconsistency",
    "cognitive-level": "cognitive-level counterfactuals: content that violates commonsense or physical laws",
}
#: one line per label (our wording of the taxonomy)
DESCRIPTIONS: dict[str, str] = {
    "low-level-edge_shape": "broken, misaligned, warped or melting edges and contours; distorted local shapes",
    "low-level-texture": "unnatural, smeared, repetitive or noisy texture; plastic skin, mushy fine detail",
    "low-level-color": "implausible colour: colour bleeding, blotches, banding, oversaturated or unnatural tints",
    "low-level-symbol": "malformed symbols: garbled text and characters, broken logos, signs and digits",
    "high-level-semantics": "wrong object structure: extra or missing parts (fingers, limbs), fused or "
                            "incomplete objects, inconsistent identity",
    "cognitive-level-commonsense": "content that contradicts commonsense: impossible arrangements, wrong use or "
                                   "context of objects",
    "cognitive-level-physics": "violations of physics: inconsistent lighting, shadows, reflections, "
                               "perspective or gravity",
}

# other spellings -> label; matched after lower-casing and dropping everything but letters,
# so "low_level_edge_shape", "Edge & Shape" and "edge-shape" are one key. ("text" is not an alias
# of symbol: the official tests use "low-level-text" as an example of an unknown category.)
_ALIAS_NAMES: dict[str, tuple[str, ...]] = {
    "low-level-edge_shape": ("edge_shape", "edge and shape", "edge", "edges", "shape"),
    "low-level-texture": ("texture",),
    "low-level-color": ("color", "colour", "low-level-colour"),
    "low-level-symbol": ("symbol", "symbols"),
    "high-level-semantics": ("semantics", "semantic", "high-level-semantic"),
    "cognitive-level-commonsense": ("commonsense", "common sense", "cognitive-level-common-sense"),
    "cognitive-level-physics": ("physics", "physical", "cognitive-level-physical"),
}


def _key(name: str) -> str:
    words = re.split(r"[^a-z]+", str(name).lower())
    return "".join(w for w in words if w != "and")


ALIASES: dict[str, str] = {}
for _label, _names in _ALIAS_NAMES.items():
    for _name in (_label, *_names):
        ALIASES[_key(_name)] = _label
for _level in LEVELS:
    ALIASES.setdefault(_key(_level), _level)
    ALIASES.setdefault(_key(_level.split("-")[0]), _level)  # "low", "high", "cognitive"


def canonical_label(name: str, *, levels: bool = False) -> str:
    """The official label string for ``name`` (an exact label or one of :data:`ALIASES`); with
    ``levels=True`` a level name (``low-level``, ``cognitive``) is accepted too and returned as
    the level. Raises ValueError naming the nearest known label otherwise."""
    if name in LEVEL_OF or (levels and name in LEVELS):
        return name
    found = ALIASES.get(_key(name))
    if found is not None and (found in LEVEL_OF or levels):
        return found
    known = list(LABELS) + (list(LEVELS) if levels else [])
    near = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise ValueError(f"unknown X-AIGD artifact label {name!r}{hint} (labels: {', '.join(LABELS)})")


def validate_categories(categories: Mapping[str, float], *, levels: bool = True, aliases: bool = False) -> None:
    """Check the keys of :attr:`Detection.categories` against the taxonomy: each must be one of
    :data:`LABELS` (or, with ``levels``, a level name); with ``aliases`` other spellings pass
    too. Raises ValueError listing every unknown key (values are checked by Detection itself)."""
    bad = []
    for key in categories:
        if key in LEVEL_OF or (levels and key in LEVELS):
            continue
        try:
            if not aliases:
                raise ValueError
            canonical_label(key, levels=levels)
        except ValueError:
            bad.append(key)
    if bad:
        hints = []
        for key in bad:
            try:
                hints.append(f"{key!r} (write {canonical_label(key, levels=levels)!r})")
            except ValueError as exc:
                hints.append(str(exc).split(" (labels:")[0].replace("unknown X-AIGD artifact label ", ""))
        raise ValueError(f"Detection.categories has key(s) outside the X-AIGD taxonomy: {'; '.join(hints)}. "
                         f"Known: {', '.join(LABELS + (tuple(LEVELS) if levels else ()))}")


def normalise_categories(categories: Mapping[str, float], *, levels: bool = True) -> dict[str, float]:
    """``categories`` with every key in its official spelling (aliases resolved; when two keys
    meet, the higher score is kept). Raises ValueError for a key outside the taxonomy."""
    out: dict[str, float] = {}
    for key, value in categories.items():
        label = canonical_label(key, levels=levels)
        out[label] = max(float(value), out.get(label, float("-inf")))
    return out


def level_scores(categories: Mapping[str, float]) -> dict[str, float]:
    """Level -> the highest score among its labels present in ``categories`` (levels with no
    scored label are left out)."""
    out = {}
    for level, labels in LEVELS.items():
        values = [float(categories[label]) for label in labels if label in categories]
        if values:
            out[level] = max(values)
    return out


def category_scores(heatmap: np.ndarray, masks: Mapping[str, np.ndarray], *, reduce: str = "mean") -> dict[str, float]:
    """How strongly a (category-agnostic) heatmap responds inside each label's region: label ->
    the mean (``reduce="mean"``) or maximum (``"max"``) of ``heatmap`` over that label's mask.
    Labels whose mask is empty are left out. A helper to read which kinds of artifact a
    detector's map looks at; it is not a category prediction."""
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    heatmap = np.asarray(heatmap, dtype=np.float32)
    out = {}
    for label, mask in masks.items():
        mask = np.asarray(mask, bool)
        if mask.shape != heatmap.shape:
            raise ValueError(f"mask of {label!r} is {mask.shape}, heatmap is {heatmap.shape}")
        if mask.any():
            values = heatmap[mask]
            out[label] = float(values.mean() if reduce == "mean" else values.max())
    return out


def categories_from_maps(maps: Mapping[str, np.ndarray], *, reduce: str = "max") -> dict[str, float]:
    """``Detection.categories`` from per-label score maps (a detector that segments each label):
    label -> the map's maximum (``"max"``) or mean (``"mean"``), keys checked and normalised."""
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    scores = {k: float(np.max(v) if reduce == "max" else np.mean(v)) for k, v in maps.items()}
    return normalise_categories(scores, levels=False)


def labels_in(names: Iterable[str]) -> list[str]:
    """The distinct labels among ``names`` (aliases resolved), in the official order."""
    found = {canonical_label(n) for n in names}
    return [label for label in LABELS if label in found]
