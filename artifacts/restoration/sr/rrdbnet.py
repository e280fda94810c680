"""RRDBNet: the ESRGAN generator used by Real-ESRGAN (x4plus, x4plus-anime, x2plus).

Layout (Wang et al., ESRGAN 2018; Real-ESRGAN 2021)::

    x -> conv_first -> [RRDB] * num_block -> conv_body -> (+ conv_first output)
      -> nearest x2 -> conv_up1 -> LeakyReLU(0.2)
      -> nearest x2 -> conv_up2 -> LeakyReLU(0.2)
      -> conv_hr -> LeakyReLU(0.2) -> conv_last

An RRDB is three residual dense blocks followed by ``out * 0.2 + x``; a residual dense block is
five 3x3 convolutions, each seeing the concatenation of the block input and all earlier outputs
(``num_grow_ch`` channels each), the first four followed by LeakyReLU(0.2), and returns
``conv5 * 0.2 + x``. All convolutions are 3x3, stride 1, zero padding 1, with bias.

Parameter names follow BasicSR's ``basicsr/archs/rrdbnet_arch.py`` (checked against
XPixelGroup/BasicSR at commit ``323cc143d4813648c9c1b21008d545f2be4bf811``, the class that
Real-ESRGAN's ``RealESRGANer`` builds for x4plus with ``num_feat=64, num_block=23, num_grow_ch=32,
scale=4``): ``conv_first``, ``body.{i}.rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up1``,
``conv_up2``, ``conv_hr``, ``conv_last``. So the ``params_ema`` entry of an official
``RealESRGAN_x4plus.pth`` (``params`` when there is no EMA) loads with ``strict=True`` (see
:func:`artifacts.restoration.sr.ncnn_weights.convert_checkpoint`).

Scales 2 and 1 work as in BasicSR: the input is pixel-unshuffled by 2 (or 4) first, so the trunk
always upsamples by 4 (``RealESRGAN_x2plus`` uses ``scale=2``).

Input: RGB float in [0, 1], shape ``(B, num_in_ch, H, W)`` (H, W divisible by 4 / scale for scales
2 and 1). Output: ``(B, num_out_ch, H * scale, W * scale)``, nominally in [0, 1] but not clamped
(Real-ESRGAN clamps to [0, 1] after the network; :meth:`RRDBNet.forward` leaves that to the caller
so that it matches the reference implementations number for number).

This module imports torch; ``artifacts.restoration`` and ``artifacts.restoration.sr`` do not.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResidualDenseBlock", "RRDB", "RRDBNet", "TINY_CONFIG", "X4PLUS_CONFIG", "tiny_rrdbnet"]

#: Real-ESRGAN x4plus (and ESRGAN x4): 23 RRDBs, 64 features, growth 32 -> 16.7 M parameters.
X4PLUS_CONFIG = dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4)
#: A few-thousand-parameter network with the same structure, for tests.
TINY_CONFIG = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions; returns ``conv5 * 0.2 + x``."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32, res_scale: float = 0.2):
        super().__init__()
        self.res_scale = res_scale
        # conv{k} sees the block input plus the k-1 earlier growth maps
        for k in range(1, 5):
            setattr(self, f"conv{k}", _conv3x3(num_feat + (k - 1) * num_grow_ch, num_grow_ch))
        self.conv5 = _conv3x3(num_feat + 4 * num_grow_ch, num_feat)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.lrelu(conv(torch.cat(feats, dim=1))))
        return self.conv5(torch.cat(feats, dim=1)) * self.res_scale + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three :class:`ResidualDenseBlock`, then ``out * 0.2 + x``."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32, res_scale: float = 0.2):
        super().__init__()
        self.res_scale = res_scale
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch, res_scale)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch, res_scale)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch, res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * self.res_scale + x


class RRDBNet(nn.Module):
    """ESRGAN / Real-ESRGAN generator (see the module docstring for layout and names).

    ``RRDBNet()`` is the Real-ESRGAN x4plus configuration (16,697,987 parameters).
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32, scale: int = 4):
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet supports scale 1, 2 or 4, got {scale}")
        self.scale = scale
        self.num_in_ch, self.num_out_ch = num_in_ch, num_out_ch
        self.config = dict(num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat, num_block=num_block,
                           num_grow_ch=num_grow_ch, scale=scale)
        # scales 2 and 1 fold 2x2 (4x4) pixel blocks into channels first; the trunk always upsamples x4
        self._unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.conv_first = _conv3x3(num_in_ch * self._unshuffle ** 2, num_feat)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = _conv3x3(num_feat, num_feat)
        self.conv_up1 = _conv3x3(num_feat, num_feat)
        self.conv_up2 = _conv3x3(num_feat, num_feat)
        self.conv_hr = _conv3x3(num_feat, num_feat)
        self.conv_last = _conv3x3(num_feat, num_out_ch)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.num_in_ch:
            raise ValueError(f"expected input (B, {self.num_in_ch}, H, W), got {tuple(x.shape)}")
        if self._unshuffle > 1:
            f = self._unshuffle
            if x.shape[-2] % f or x.shape[-1] % f:
                raise ValueError(f"scale {self.scale} needs H and W divisible by {f}, got {tuple(x.shape[-2:])}")
            x = F.pixel_unshuffle(x, f)  # same channel order as BasicSR's pixel_unshuffle
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))

    def conv_names(self) -> list[str]:
        """Names of the convolutions in module order (the order of the ncnn export's blobs)."""
        return [name for name, m in self.named_modules() if isinstance(m, nn.Conv2d)]


def tiny_rrdbnet(**overrides) -> RRDBNet:
    """A tiny randomly initialised RRDBNet (1 block, 8 features, growth 4) for tests."""
    return RRDBNet(**{**TINY_CONFIG, **overrides})
