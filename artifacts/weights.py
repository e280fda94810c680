"""Where weights come from, and how checkpoints are read.

A :class:`WeightSpec` is a model card in code: file, sha256, licence, source, the input it
expects, what its output means, the default operating threshold and the command that produced
it. Resolution order for a spec's file:

1. an explicit path given by the user (``create(name, weights="/path/file")``),
2. ``$ARTIFACTS_HOME/weights/<file>`` (default ``~/.cache/artifacts/weights``),
3. the copy packaged inside the installed package (``spec.package``),

and nothing else: no code path downloads anything. A spec whose file is found nowhere fails
at once with the list of places searched.

:func:`load_checkpoint` reads every checkpoint through one door: safetensors directly, PyTorch
pickles only with ``torch.load(weights_only=True)`` (a short allow-list of harmless classes that
released checkpoints contain, never ``weights_only=False``), then unwraps the usual containers
(``{"model": ...}``, ``{"state_dict": ...}``) and strips ``module.`` prefixes left by
DataParallel / DDP.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

#: Container keys that official checkpoints wrap their state dict in, tried in this order.
STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict", "net", "module")
#: Prefixes added by wrappers (DataParallel / DDP, torch.compile) that are stripped on load.
STRIP_PREFIXES = ("module.", "_orig_mod.")


class WeightsNotFoundError(FileNotFoundError):
    """A weight file is not available offline; the message says where it was looked for."""


@dataclass(frozen=True)
class WeightSpec:
    tag: str
    file: str
    sha256: str | None = None
    license: str = "unknown"
    source: str = ""
    train_command: str | None = None
    input_spec: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    threshold: float = 0.5
    package: str | None = None
    pip: str | None = None  # the pip requirement that ships the packaged copy, when not this package
    notes: str = ""

    def candidates(self) -> list[Path]:
        """Places this file may be, in resolution order (explicit paths are handled by the caller)."""
        places = [artifacts_home() / "weights" / self.file]
        if self.package:
            try:
                places.append(Path(str(resources.files(self.package).joinpath(self.file))))
            except ModuleNotFoundError:  # weights that ship in a separate pip package not installed
                pass
        return places


@dataclass(frozen=True)
class ResolvedWeights:
    """A weight file found on disk, with the spec it belongs to (None for an ad-hoc user file)."""

    path: Path
    sha256: str
    spec: WeightSpec | None = None

    @property
    def id(self) -> str:
        tag = self.spec.tag if self.spec else "file"
        return f"{tag}:{self.sha256[:12]}"

    @property
    def threshold(self) -> float:
        return self.spec.threshold if self.spec else 0.5


def artifacts_home() -> Path:
    return Path(os.environ.get("ARTIFACTS_HOME", Path.home() / ".cache" / "artifacts")).expanduser()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve(spec: WeightSpec | None, explicit: str | os.PathLike | None = None) -> ResolvedWeights:
    """Find a weight file: explicit path > $ARTIFACTS_HOME/weights > packaged copy."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"weight file not found: {path}")
        sha = file_sha256(path)
        # an explicit file counts as the spec's own only when its content matches
        matches = spec is not None and spec.sha256 == sha
        return ResolvedWeights(path, sha, spec if matches else None)
    if spec is None:
        raise ValueError("resolve() needs a spec or an explicit path")
    mismatched = []
    for path in spec.candidates():
        if path.is_file():
            sha = file_sha256(path)
            if spec.sha256 and sha != spec.sha256:
                warnings.warn(f"{path}: sha256 {sha[:12]}... is not weights {spec.tag!r} ({spec.sha256[:12]}...), "
                              "skipped (a different version or a corrupt file; pass it with weights=PATH to use it)",
                              stacklevel=3)
                mismatched.append(str(path))
                continue
            return ResolvedWeights(path, sha, spec)
    searched = ", ".join(str(p) + (" (sha256 mismatch)" if str(p) in mismatched else "") for p in spec.candidates())
    raise WeightsNotFoundError(
        f"weights {spec.tag!r} ({spec.file}) are not available offline; searched: {searched}. "
        f"Put the file in {artifacts_home() / 'weights'} or pass weights=PATH. Source: {spec.source or 'n/a'}"
        + (f" (pip package: {spec.pip})" if spec.pip else "")
    )


# --------------------------------------------------------------------------------------------
# Checkpoint reading
# --------------------------------------------------------------------------------------------
def _safe_globals() -> list:
    """Classes allowed in pickled checkpoints: plain containers of hyper-parameters only."""
    import argparse

    return [argparse.Namespace]  # SAFE and timm-style trainers save their args next to the weights


def load_checkpoint(path: str | os.PathLike, *, key: str | None = None) -> dict[str, Any]:
    """Read a checkpoint into a flat ``{name: tensor}`` state dict.

    ``key`` picks a container entry explicitly (e.g. ``"ema"``); otherwise the first of
    :data:`STATE_DICT_KEYS` that holds a dict is used, or the file itself when it is already a
    state dict.
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: Any = load_file(str(path))
    else:
        with torch.serialization.safe_globals(_safe_globals()):
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # pickle.UnpicklingError and friends
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ValueError(
                    f"{path}: cannot be read safely with torch.load(weights_only=True): {first}"
                ) from None
    return unwrap_state_dict(obj, key=key, source=str(path))


def unwrap_state_dict(obj: Any, *, key: str | None = None, source: str = "checkpoint") -> dict[str, Any]:
    """Unwrap container dicts and strip wrapper prefixes (see module docstring)."""
    import torch

    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            raise KeyError(f"{source}: no entry {key!r}; top-level keys: {sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__}")
        obj = obj[key]
    else:
        while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in STATE_DICT_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                raise ValueError(f"{source}: no state dict found; top-level keys: {sorted(map(str, obj))[:10]}")
            obj = inner
    if not isinstance(obj, dict):
        raise ValueError(f"{source}: expected a state dict, got {type(obj).__name__}")
    out = {}
    for name, value in obj.items():
        for prefix in STRIP_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
        out[name] = value
    return out
