"""One factory for every model: ``create(name, **overrides)`` and ``list_models(task, pattern)``.

A model is a class, a config dataclass and zero or more :class:`~artifacts.weights.WeightSpec`,
registered under ``task/name`` (e.g. ``manipulation/noise-residual``) with :func:`register_model`.
Built-in model modules are imported on first use of the registry (never at ``import
artifacts``); third-party packages add models through the ``artifacts.models`` entry-point group,
whose entries are modules (imported) or callables (called once).

Tasks are one vocabulary used everywhere (registry, CLI, API, store, app):
detection ``manipulation, synthetic, dmri, views``; restoration ``inpaint, sr, refrepair,
diffusion``.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

from artifacts.weights import ResolvedWeights, WeightSpec, WeightsNotFoundError, resolve

DETECTION_TASKS = ("manipulation", "synthetic", "dmri", "views")
RESTORATION_TASKS = ("inpaint", "sr", "refrepair", "diffusion")
TASKS = DETECTION_TASKS + RESTORATION_TASKS
ENTRY_POINT_GROUP = "artifacts.models"

#: Modules that register the built-in models; imported lazily by :func:`_ensure_loaded`.
BUILTIN_MODULES = (
    "artifacts.detectors.manipulation.noise_residual",
    "artifacts.detectors.manipulation.jpeg_dq",
    "artifacts.detectors.manipulation.jpeg_grid",
    "artifacts.detectors.manipulation.ela",
    "artifacts.detectors.manipulation.copymove",
    "artifacts.detectors.manipulation.fusion",
    "artifacts.detectors.manipulation.imlvit",
    "artifacts.detectors.manipulation.learned",
    "artifacts.detectors.synthetic.spectral",
    "artifacts.detectors.synthetic.correlation",
    "artifacts.detectors.synthetic.fusion",
    "artifacts.detectors.synthetic.safe",
    "artifacts.detectors.dmri.qcnet",
    "artifacts.detectors.views.puzzlesim",
    "artifacts.detectors.dmri.outliers", "artifacts.detectors.dmri.checks", "artifacts.detectors.dmri.qc",
    "artifacts.restoration.sr.backends", "artifacts.restoration.sr.sd_x4",
    "artifacts.restoration.inpainters",
    "artifacts.restoration.repairers",
    "artifacts.restoration.diffusion.restorer",
)

#: ``weights=`` values that ask for a model with no weights (random init / uncalibrated).
NO_WEIGHTS = ("none", "random")


@dataclass(frozen=True)
class ModelInfo:
    task: str
    name: str
    cls: type
    config_cls: type
    weights: tuple[WeightSpec, ...] = ()
    description: str = ""
    default: bool = False  # the task's default model
    needs_weights: bool = False  # True: without weights it is not a detector (random init)

    @property
    def full_name(self) -> str:
        return f"{self.task}/{self.name}"

    @property
    def opt_in(self) -> bool:
        """A model that runs only on the user's own files (e.g. a local model folder given with
        ``--set model_dir=DIR``): left out of default model lists (``artifacts eval``, the app)."""
        return bool(getattr(self.cls, "opt_in", False))

    def weight_spec(self, tag: str | None = None) -> WeightSpec | None:
        if not self.weights:
            return None
        if tag is None:
            return self.weights[0]
        for spec in self.weights:
            if spec.tag == tag:
                return spec
        raise KeyError(f"{self.full_name} has no weights {tag!r}; known: {[s.tag for s in self.weights]}")

    def weight_status(self) -> str:
        """'found' (in $ARTIFACTS_HOME), 'packaged', 'missing' or 'none' (no weights defined);
        a file whose sha256 differs from the spec's does not count."""
        from artifacts.weights import file_sha256

        spec = self.weight_spec()
        if spec is None:
            return "none"
        for i, place in enumerate(spec.candidates()):
            if place.is_file() and (spec.sha256 is None or file_sha256(place) == spec.sha256):
                return "found" if i == 0 else "packaged"
        return "missing"


_REGISTRY: dict[str, ModelInfo] = {}
_loaded = False


def register_model(
    task: str,
    name: str,
    *,
    config: type,
    weights: tuple[WeightSpec, ...] | list[WeightSpec] = (),
    description: str = "",
    default: bool = False,
    needs_weights: bool = False,
) -> Callable[[type], type]:
    """Class decorator registering a model under ``task/name``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config for {task}/{name} must be a dataclass")

    def decorator(cls: type) -> type:
        info = ModelInfo(task, name, cls, config, tuple(weights), description or (cls.__doc__ or "").strip().split("\n")[0], default, needs_weights)
        old = _REGISTRY.get(info.full_name)
        if old is not None and old.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"model {info.full_name} is already registered by {old.cls.__module__}")
        _REGISTRY[info.full_name] = info
        cls.task, cls.name = task, name
        return cls

    return decorator


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    _loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type):
                obj()
        except Exception as exc:  # a broken plugin must not break the toolkit
            warnings.warn(f"artifacts: plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)


def list_models(task: str | None = None, pattern: str | None = None) -> list[str]:
    """Registered ``task/name`` strings, optionally filtered by task and a wildcard pattern
    (matched against the full name and the bare name, e.g. ``"*noise*"``)."""
    _ensure_loaded()
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    names = []
    for full, info in sorted(_REGISTRY.items()):
        if task and info.task != task:
            continue
        if pattern and not (fnmatch.fnmatch(full, pattern) or fnmatch.fnmatch(info.name, pattern)):
            continue
        names.append(full)
    return names


def model_info(name: str, task: str | None = None) -> ModelInfo:
    """Look a model up by ``task/name``, by a bare name within ``task`` when given, or by a bare
    name that is unique across tasks."""
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if task is not None and f"{task}/{name}" in _REGISTRY:
        return _REGISTRY[f"{task}/{name}"]
    matches = [info for info in _REGISTRY.values() if info.name == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise KeyError(f"model name {name!r} is ambiguous: {', '.join(i.full_name for i in matches)}")
    pool = list(_REGISTRY) + [i.name for i in _REGISTRY.values()]
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise KeyError(f"unknown model {name!r}{hint} (see `artifacts models`)")


def default_model(task: str) -> str:
    _ensure_loaded()
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    for info in _REGISTRY.values():
        if info.task == task and info.default:
            return info.full_name
    available = list_models(task)
    if not available:
        raise KeyError(f"no model is registered for task {task!r} yet")
    return available[0]


def build_config(info: ModelInfo, overrides: dict[str, Any]) -> Any:
    fields = {f.name for f in dataclasses.fields(info.config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"{info.full_name}: unknown option(s) {unknown}; valid options: {sorted(fields)}")
    return info.config_cls(**overrides)


def resolve_weights(info: ModelInfo, weights: str | None) -> ResolvedWeights | None:
    """``None`` -> the model's default weights (if it has any); ``"none"`` -> no weights;
    a tag -> that spec; anything else -> an explicit file path."""
    if weights is not None and str(weights).lower() in NO_WEIGHTS:
        return None
    if weights is None:
        spec = info.weight_spec()
        if spec is None:
            return None
        try:
            return resolve(spec)
        except WeightsNotFoundError as exc:
            raise WeightsNotFoundError(
                f"{info.full_name}: {exc}. Without weights it is not a detector; pass weights='none' "
                "only to build it with random/uncalibrated parameters for tests."
            ) from None
    tags = {s.tag for s in info.weights}
    if weights in tags:
        return resolve(info.weight_spec(weights))
    return resolve(info.weight_spec(), explicit=weights)


def create(name: str, *, weights: str | None = None, device: str | None = None, **overrides: Any) -> Any:
    """Build a registered model: ``create("noise-residual", weights=None, device="cpu", **config)``."""
    info = model_info(name)
    config = build_config(info, overrides)
    resolved = resolve_weights(info, weights)
    return info.cls(config=config, weights=resolved, device=device)
