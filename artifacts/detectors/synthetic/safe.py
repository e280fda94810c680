"""SAFE: synthetic-image detection from the high-frequency wavelet band of unresized crops.

Method (Li, Cai, Hao, Jiang, Hu & Feng, "Improving Synthetic Image Detection Towards
Generalization: An Image Transformation Perspective", KDD 2025; official code
``Ouxiang-Li/SAFE``). Facts below were read from the official repository at commit
``46801cacbd50e4763d09783e169475dfa92c5ee4`` (``models/resnet.py`` is identical at
``78b2745a272b087517df254d668e0848b2045482`` apart from a ``sys.path`` line):

* **Input transform** (``models/resnet.py``, ``ResNet._preprocess_dwt``): a one-level 2-D DWT
  (``pytorch_wavelets.DWTForward(J=1, mode='symmetric', wave='bior1.3')``) of the RGB crop in
  ``[0, 1]`` (``transforms.ToTensor()``, *no* ImageNet normalisation); the network sees only the
  diagonal band ``Yh[0][:, :, 2]`` (HH, pywt's ``cD``), ``(H + 5) // 2`` px a side, resized back
  to the input size with ``transforms.Resize`` (bilinear). :func:`hh_band` does the same in plain
  torch with PyWavelets' ``bior1.3`` filters (tested equal to ``pywt.dwt2(..., 'bior1.3',
  mode='symmetric')``); the resize is ``F.interpolate(bilinear, antialias=True)``, the call
  torchvision's tensor ``Resize`` makes.
* **Network** (same file, ``ResNet`` / ``resnet50``): ResNet-50 bottlenecks truncated after
  ``layer2``: ``conv1`` 3x3 stride 2 (3 -> 64, no bias), ``bn1``, ReLU, ``maxpool`` 3x3 stride 2,
  ``layer1`` (3 bottlenecks, 64 -> 256), ``layer2`` (4 bottlenecks, 128 -> 512, stride 2), global
  average pooling and a linear head named **``fc1``** (512 -> 2). Kaiming-normal (fan-out)
  convolutions, BatchNorm weight 1 / bias 0, no zero-init of residual BNs. 1.44 M parameters.
  Class 1 = generated (``engine_finetune.evaluate``: softmax column 1, threshold 0.5).
* **Preprocessing** (``data/datasets.py``, ``Get_Transforms``, ``transform_mode='crop'`` as in
  ``scripts/train.sh`` / ``scripts/eval.sh``, ``--input_size 256``): training
  ``RandomCrop(256, pad_if_needed=True)`` (zero padding), testing ``CenterCrop(256)`` (zero
  padding when smaller): crops, never resizing. Training augmentations: horizontal flip (p 0.5),
  ``RandomRotation(180)`` (nearest, zero fill), ``ColorJitter(brightness=0.5, contrast=0.5,
  saturation=0.5)``, then ``RandomMask(ratio=(0, 0.75), patch_size=16, p=0.5)`` on the tensor.
* **Training** (``main_finetune.py``, ``scripts/train.sh``): from scratch (``model == 'SAFE'``
  builds ``resnet50(num_classes=2)`` without pretrained weights), AdamW, ``blr 1e-2`` scaled by
  batch/256 (4 GPUs x 32 -> lr 5e-3), weight decay 0.01 (not on biases / 1-D parameters,
  ``optim_factory.get_parameter_groups``), 1 warm-up epoch then half-cosine to ``min_lr 1e-6`` per
  iteration (``utils.adjust_learning_rate``), label smoothing 0.1, 20 epochs, best epoch by
  validation accuracy saved as ``checkpoint-best.pth``: ``{"model", "optimizer", "epoch",
  "scaler", "args": argparse.Namespace}`` (``utils.save_model``).

This package's own additions (not in the official code): several crops for large images
(``n_crops``; the official evaluation scores one centre crop, ``n_crops=1`` reproduces it), their
aggregation, uint16 input (scaled to ``[0, 1]``), and a choice of padding (``pad_mode``).
The shipped weights were trained by :func:`artifacts.train.synthetic.train_safe` on the
``synthetic`` split (see the weight spec's notes); official checkpoints load with
:func:`load_official` and ``create("safe", weights="checkpoint-best.pth")``.

What it sees: the traces upsampling / decoding layers of generators leave in the finest
frequency band. What breaks it: anything that rewrites that band: resizing (why it never
resizes), strong JPEG compression, blur, noise. Scores of images far from what the weights saw
(formats, sizes) get a warning in ``meta["warnings"]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from artifacts.detectors.synthetic.base import SyntheticDetector
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec

WAVELET = "bior1.3"
AGGREGATIONS = ("mean", "max", "median")
PAD_MODES = ("constant", "reflect")
#: a tiny architecture for fast tests (random weights only: no weights exist for it)
TINY = {"stem": 8, "widths": (4, 8), "blocks": (1, 1)}


@dataclass
class SafeConfig:
    crop: int = 256  # crop size (px); the official input size
    n_crops: int = 5  # crops scored on images larger than the crop (1 = official centre crop only)
    aggregation: str = "mean"  # how crop probabilities combine: mean | max | median
    pad_mode: str = "constant"  # images smaller than the crop: zero padding (official) or reflect
    stem: int = 64  # architecture: stem channels, bottleneck widths per stage, blocks per stage
    widths: tuple[int, ...] = (64, 128)
    blocks: tuple[int, ...] = (3, 4)
    batch: int = field(default=16, metadata={"output": False})  # crops per forward pass
    threshold: float | None = None  # operating threshold (default: the weights' threshold, 0.5)

    def __post_init__(self) -> None:
        self.widths, self.blocks = tuple(int(w) for w in self.widths), tuple(int(b) for b in self.blocks)
        if self.crop < 8 or self.n_crops < 1 or self.batch < 1:
            raise ValueError("safe: crop >= 8, n_crops >= 1 and batch >= 1 are required")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"safe: aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"safe: pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        if not self.widths or len(self.widths) != len(self.blocks) or min(self.widths + self.blocks) < 1 or self.stem < 1:
            raise ValueError("safe: widths and blocks need one positive entry per stage")

    def arch(self) -> dict[str, Any]:
        return {"stem": self.stem, "widths": self.widths, "blocks": self.blocks}


SAFE_SID = WeightSpec(
    tag="sid-v1",
    file="safe_sid-v1.safetensors",
    sha256="4d0b54acf52050580b9d8a837dc36edc1fff5e645e0add8fb02e56567cd8549d",
    license="Apache-2.0 (weights trained by this package)",
    source="trained by this package from scratch (full SAFE architecture, official key layout) on the `synthetic` "
           "split: ../shared/data/sid/train (SD 1.x, LDM, SD 2.x, Kolors fakes; SUN, inpainting-input, Set5 reals) "
           "+ ../shared/data/sr/BSD68 reals, 80 % train / 20 % held out by path hash",
    train_command="artifacts train synthetic --model safe -o DIR  (defaults: --epochs 12 --seed 0, batch 16)",
    input_spec={"color": "RGB", "range": "[0, 1]", "normalisation": None, "crop": 256, "resize": "never",
                "transform": "HH band of a one-level bior1.3 DWT (symmetric), resized back to the crop"},
    output="P(generated) per crop (softmax of class 1), aggregated over crops",
    threshold=0.5,
    package="artifacts.detectors.synthetic.weights",
    notes="A small CPU run, not the paper's model: 225 training images, 12 epochs x 14 steps of 16 crops "
          "(2017 s on 2 shared CPU cores), best epoch 10 by held-out mean AUC. Held-out (66 images of the same "
          "generators and photo sets, centre crop): AUC 0.887 as stored, 0.790 / 0.814 after re-encoding both "
          "classes as JPEG 90 / 75 (accuracy at 0.5: 0.80 / 0.71 / 0.76); the file-format alone scores AUC 0.736 "
          "there. On ../shared/data/sid/dev (other generators, 559 px JPEG fakes, 723-4024 px reals) "
          "it does not generalise: AUC 0.43 (centre crop) / 0.35 (5 crops), accuracy 0.40 / 0.46 at 0.5.",
)


# --------------------------------------------------------------------------------------------
# The wavelet band
# --------------------------------------------------------------------------------------------
def wavelet_filters(wavelet: str = WAVELET) -> tuple[np.ndarray, np.ndarray]:
    """PyWavelets' decomposition filters (low, high) of ``wavelet``."""
    import pywt

    w = pywt.Wavelet(wavelet)
    return np.asarray(w.dec_lo, dtype=np.float64), np.asarray(w.dec_hi, dtype=np.float64)


def _analysis(x, kernel, dim: int):
    """One filter + downsample-by-2 step of pywt's DWT along ``dim`` (-1 width, -2 height) of
    a (N, 1, H, W) tensor, with half-sample symmetric extension (pywt ``mode='symmetric'``).

    pywt keeps the odd samples of the full convolution of the extended signal:
    ``out[k] = sum_j f[j] x[2k + 1 - j]``; as a cross-correlation that is the reversed filter
    run with stride 2 from extended position 1. Output length ``(n + len(f) - 1) // 2``."""
    import torch
    import torch.nn.functional as F

    p = kernel.numel() - 1
    n = x.shape[dim]
    if n < p:
        raise ValueError(f"the wavelet transform needs at least {p} px a side, got {n}")
    head, tail = x.narrow(dim, 0, p).flip(dim), x.narrow(dim, n - p, p).flip(dim)
    ext = torch.cat([head, x, tail], dim).narrow(dim, 1, n + 2 * p - 1)
    k = kernel.flip(0).to(x.dtype)
    if dim == -1:
        return F.conv2d(ext, k.view(1, 1, 1, -1), stride=(1, 2))
    return F.conv2d(ext, k.view(1, 1, -1, 1), stride=(2, 1))


def dwt_hh(x, high=None):
    """The HH (diagonal detail, pywt ``cD``) band of a one-level ``bior1.3`` DWT of each channel:
    (B, C, H, W) -> (B, C, (H + 5) // 2, (W + 5) // 2)."""
    import torch

    if high is None:
        high = torch.as_tensor(wavelet_filters()[1], dtype=torch.float32, device=x.device)
    b, c, h, w = x.shape
    y = _analysis(x.reshape(b * c, 1, h, w), high, -1)
    y = _analysis(y, high, -2)
    return y.reshape(b, c, y.shape[-2], y.shape[-1])


def hh_band(x, high=None):
    """SAFE's input transform: the HH band brought back to the input size (bilinear)."""
    import torch.nn.functional as F

    hh = dwt_hh(x, high)
    return F.interpolate(hh, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False, antialias=True)


# --------------------------------------------------------------------------------------------
# The network (module names follow the official models/resnet.py so its state dict loads)
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _net_classes() -> dict[str, type]:
    """The torch modules, defined on first use so that registering SAFE does not import torch."""
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
            super().__init__()
            out = planes * self.expansion
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    class SAFENet(nn.Module):
        """Truncated ResNet-50 on the HH wavelet band; input (B, 3, H, W) RGB in [0, 1],
        output (B, 2) logits (class 1 = generated)."""

        def __init__(self, stem: int = 64, widths=(64, 128), blocks=(3, 4), num_classes: int = 2):
            super().__init__()
            high = torch.as_tensor(wavelet_filters()[1], dtype=torch.float32)
            self.register_buffer("wavelet_high", high, persistent=False)  # not in the state dict
            self.conv1 = nn.Conv2d(3, stem, 3, stride=2, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(stem)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            inplanes = stem
            for i, (planes, n) in enumerate(zip(widths, blocks)):
                stride = 1 if i == 0 else 2
                out = planes * Bottleneck.expansion
                down = None
                if stride != 1 or inplanes != out:
                    down = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
                layers = [Bottleneck(inplanes, planes, stride, down)]
                layers += [Bottleneck(out, planes) for _ in range(1, n)]
                setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
                inplanes = out
            self.n_stages = len(widths)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc1 = nn.Linear(inplanes, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

        def features(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(hh_band(x, self.wavelet_high)))))
            for i in range(self.n_stages):
                x = getattr(self, f"layer{i + 1}")(x)
            return self.avgpool(x).flatten(1)

        def forward(self, x):
            return self.fc1(self.features(x))

    return {"SAFENet": SAFENet, "Bottleneck": Bottleneck}


def __getattr__(name: str):  # PEP 562: ``from ...safe import SAFENet`` builds the classes lazily
    if name in ("SAFENet", "Bottleneck"):
        return _net_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_official(path) -> dict:
    """An official SAFE checkpoint (``checkpoint-best.pth``: ``{"model": ..., "args":
    argparse.Namespace, ...}``), a DDP-prefixed one, or a safetensors file in the same key layout
    -> a flat state dict for :class:`SAFENet` (read with ``torch.load(weights_only=True)``:
    :func:`artifacts.weights.load_checkpoint` allow-lists ``argparse.Namespace``)."""
    from artifacts.weights import load_checkpoint

    return load_checkpoint(path)


def arch_from_state_dict(state: dict) -> dict[str, Any]:
    """The architecture (stem, widths, blocks) a state dict in the official layout was built with."""
    stem = int(state["conv1.weight"].shape[0])
    widths, blocks = [], []
    i = 1
    while f"layer{i}.0.conv1.weight" in state:
        widths.append(int(state[f"layer{i}.0.conv1.weight"].shape[0]))
        blocks.append(len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}))
        i += 1
    return {"stem": stem, "widths": tuple(widths), "blocks": tuple(blocks)}


# --------------------------------------------------------------------------------------------
# Crops
# --------------------------------------------------------------------------------------------
def to_unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 / uint16 H,W,3 -> float32 in [0, 1]."""
    scale = 65535.0 if pixels.dtype == np.uint16 else 255.0
    return pixels.astype(np.float32) / scale


def pad_to(pixels: np.ndarray, size: int, mode: str = "constant") -> tuple[np.ndarray, list[int] | None]:
    """Pad an H,W,C array to at least ``size`` a side, evenly on both sides (as CenterCrop /
    RandomCrop(pad_if_needed) do); returns the array and [top, bottom, left, right] or None."""
    h, w = pixels.shape[:2]
    ph, pw = max(0, size - h), max(0, size - w)
    if not ph and not pw:
        return pixels, None
    pads = [ph // 2, ph - ph // 2, pw // 2, pw - pw // 2]
    spec = ((pads[0], pads[1]), (pads[2], pads[3])) + ((0, 0),) * (pixels.ndim - 2)
    if mode == "reflect" and (pads[0] >= h or pads[1] >= h or pads[2] >= w or pads[3] >= w):
        mode = "symmetric"  # reflect needs the pad below the side; mirror-repeat covers any size
    padded = np.pad(pixels, spec, mode="constant" if mode == "constant" else mode)
    return padded, pads


def crop_boxes(h: int, w: int, size: int, n: int) -> list[tuple[int, int]]:
    """Top-left corners of up to ``n`` crops: the centre crop first (torchvision CenterCrop's
    rounding), then an evenly spaced k x k grid over the image (corners included), in row order,
    without duplicates; k is the smallest that yields ``n`` distinct crops (or every position),
    and a larger grid is thinned evenly."""
    centre = (int(round((h - size) / 2.0)), int(round((w - size) / 2.0)))
    boxes = [centre]
    if n <= 1 or (h <= size and w <= size):
        return boxes
    k = max(2, int(np.ceil(np.sqrt(n - 1))))
    while True:
        ys = np.unique(np.linspace(0, h - size, k).round().astype(int))
        xs = np.unique(np.linspace(0, w - size, k).round().astype(int))
        grid = [(int(y), int(x)) for y in ys for x in xs if (int(y), int(x)) != centre]
        if len(grid) >= n - 1 or (len(ys) < k and len(xs) < k):
            if len(grid) > n - 1:  # spread the picks over the whole grid
                grid = [grid[i] for i in np.unique(np.linspace(0, len(grid) - 1, n - 1).round().astype(int))]
            return boxes + grid
        k += 1


# --------------------------------------------------------------------------------------------
# The detector
# --------------------------------------------------------------------------------------------
@register_model(
    "synthetic",
    "safe",
    config=SafeConfig,
    weights=(SAFE_SID,),
    needs_weights=True,
    description="SAFE (KDD 2025): truncated ResNet-50 on the HH wavelet band of unresized crops",
)
class SafeDetector(SyntheticDetector):
    """SAFE synthetic-image detector (image-level score, no heatmap)."""

    recipe = "safe"
    #: what the shipped sid-v1 weights saw (see artifacts.train.synthetic): crops of PNG and JPEG
    #: files of both classes, re-encoded alike (lossless or JPEG quality 60-100), 256 px crops of
    #: images at least 256 px a side, never resized
    trained_on = {"formats": ["PNG", "JPEG"], "min_side": 256, "max_side": 1454, "crop": 256,
                  "jpeg_quality": [60, 100], "resize": "never"}

    def __init__(self, config: SafeConfig, weights=None, device: str | None = None):
        super().__init__(config, weights, device)
        import torch

        self.net = _net_classes()["SAFENet"](**config.arch())
        if weights is not None:
            state = load_official(weights.path)
            found = arch_from_state_dict(state)
            if found != config.arch():
                raise ValueError(f"{weights.path}: weights are for architecture {found}, config asks for {config.arch()}")
            self.net.load_state_dict(state, strict=True)
        self.net.eval().to(self.device)
        self._torch = torch

    def crop_scores(self, crops: np.ndarray) -> np.ndarray:
        """P(generated) for a stack of crops (N, S, S, 3) float32 in [0, 1]."""
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(crops), self.config.batch):
                x = torch.from_numpy(np.ascontiguousarray(crops[i : i + self.config.batch].transpose(0, 3, 1, 2)))
                logits = self.net(x.to(self.device))
                out.append(torch.softmax(logits.float(), 1)[:, 1].cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def analyse(self, image) -> Detection:
        cfg = self.config
        pixels = image.pixels
        h, w = pixels.shape[:2]
        padded, pads = pad_to(pixels, cfg.crop, cfg.pad_mode)
        ph, pw = padded.shape[:2]
        boxes = crop_boxes(ph, pw, cfg.crop, cfg.n_crops)
        crops = np.stack([to_unit(padded[y : y + cfg.crop, x : x + cfg.crop]) for y, x in boxes])
        scores = self.crop_scores(crops)
        agg = {"mean": np.mean, "max": np.max, "median": np.median}[cfg.aggregation]
        score = float(np.clip(agg(scores), 0.0, 1.0))
        preprocessing = {
            "resize": None,
            "crop": cfg.crop,
            "crops": [[int(y), int(x), cfg.crop, cfg.crop] for y, x in boxes],  # [top, left, h, w] in the padded image
            "n_crops": len(boxes),
            "aggregation": cfg.aggregation,
            "pad": None if pads is None else {"mode": cfg.pad_mode, "top_bottom_left_right": pads},
            "input_size": [int(h), int(w)],
            "transform": "HH band of a one-level bior1.3 DWT (symmetric), bilinear back to the crop size",
            "normalisation": None,
        }
        return Detection(score=score, threshold=self.threshold,
                         meta={"preprocessing": preprocessing, "crop_scores": [round(float(s), 6) for s in scores]})
