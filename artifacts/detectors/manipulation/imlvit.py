"""IML-ViT: manipulation localisation with a plain windowed ViT at 1024 px.

Method: Ma, Du, Jiang, Al Hammadi & Zhou, "IML-ViT: Benchmarking Image Manipulation
Localization by Vision Transformer", arXiv:2307.14863 (2023); official code
``SunnyHaze/IML-ViT``. The facts below were read from that repository at commit
``912ebb291cd35dd960ac084c6d617f18639ac9cc`` (files ``iml_vit_model.py``,
``modules/window_attention_ViT.py``, ``modules/decoderhead.py``, ``utils/iml_transforms.py``,
``utils/edge_generator.py``, ``utils/evaluation.py``, ``main_train.py``) and
``utils/datasets.py`` / ``checkpoints/ckpt_download_page.md`` at ``90b8f947d3da6be14b054556846720dbd9ac94be``.
This file is an independent implementation; only the module *names* follow the official code, so
that the released checkpoint loads with ``strict=True``.

* **Encoder** (``encoder_net``, ViTDet-style ViT-B/16): 1024x1024 input, patch 16 (64x64
  tokens), width 768, 12 blocks of 12 heads, MLP ratio 4, qkv bias, LayerNorm eps 1e-6, GELU,
  stochastic depth 0.1 (linear over depth). Blocks 0, 1, 3, 4, 6, 7, 9, 10 attend inside 14x14
  windows (the 64x64 grid is zero-padded to 70x70 *after* ``norm1``; padded tokens are keys like
  any other, unmasked); blocks 2, 5, 8, 11 attend globally. Every block adds decomposed relative
  position embeddings (``rel_pos_h``/``rel_pos_w``: 27 x 64 in window blocks, 127 x 64 in global
  ones). An absolute embedding ``pos_embed`` (1, 197, 768) kept at the MAE pre-training size
  (224 px + class token) is bicubically resized to the token grid at every forward pass.
* **Simple feature pyramid** (``featurePyramid_net``): four stages from the last feature map,
  ``simfp_2`` (x4: ConvT 768->384, channel LayerNorm, GELU, ConvT 384->192), ``simfp_3`` (x2:
  ConvT 768->384), ``simfp_4`` (x1), ``simfp_5`` (x1/2: max-pool 2), each followed by a bias-free
  1x1 conv to 256 and a bias-free 3x3 conv, each with a channel LayerNorm (eps 1e-6) named
  ``norm``; a fifth level (1/64) subsamples ``p5`` by 2 (``LastLevelMaxPool``: max-pool with
  kernel 1, stride 2). Levels 1/4 .. 1/64, 256 channels.
* **Predict head** (``predict_head``, after SegFormer): the five levels bilinearly resized to
  1/4, concatenated (1280 channels), ``linear_fuse`` (1x1 conv to 256, bias), ``norm`` (``BN`` =
  BatchNorm2d by default; ``LN`` = channel LayerNorm; ``IN`` = InstanceNorm2d with
  ``affine=True, track_running_stats=True``), dropout 0.5, ``linear_predict`` (1x1 conv to one
  logit). The per-level MLPs of SegFormer are commented out in the official head, so it has no
  parameters per level. The 1/4 logits are bilinearly upsampled to 1024 and passed through a
  sigmoid. BN and IN have the same state-dict keys and compute the same thing in eval mode
  (both use the running statistics), so a checkpoint cannot tell them apart; LN has no running
  statistics.
* **Preprocessing** (``utils/iml_transforms.py``, ``get_albu_transforms("pad")``): RGB scaled to
  [0, 1], *zero-padded* at the bottom and right to 1024 (``PadIfNeeded(..., position="top_left",
  value=0)``), then ImageNet mean/std normalisation (so padding becomes ``-mean/std``), then
  ``Crop(0, 0, 1024, 1024)``: never resized. Larger images are simply cropped to the top-left
  1024 px in the official code; this package tiles them instead (below).
* **Loss** (``iml_vit_model.py``): ``BCE(logits, mask) + lambda * mean(edge * BCE)`` with
  ``lambda = 20``; the edge mask (``utils/edge_generator.py``, ``edge_broaden=7`` in
  ``main_train.py``) is ``dilate(mask) AND dilate(1 - mask)`` with a *cross-shaped* 7x7
  structuring element, i.e. a band 6 px wide across a straight boundary (3 px on each side). It
  is computed on the unpadded mask and padded with zeros.
* **Evaluation** (``utils/evaluation.py``): pixel-level F1 at threshold 0.5 over the unpadded
  region only; the paper and code define **no image-level score**. This package's rule: the
  mean of the top ``score_top_fraction`` (default 1%) of heatmap values; a plain mean scales
  with the size of the edited region, a plain max is a single noisy pixel.
* **Checkpoint**: ``iml-vit_checkpoint.pth`` (Google Drive / Baidu links on the download page),
  a plain state dict with top-level prefixes ``encoder_net.``, ``featurePyramid_net.``,
  ``predict_head.``, loaded through :func:`artifacts.weights.load_checkpoint` (``torch.load``
  with ``weights_only=True``; training-style checkpoints ``{"model": ..., "args": Namespace}`` unwrap
  too). Not shipped: put it in ``$ARTIFACTS_HOME/weights`` or pass ``weights=PATH``.

This package's additions: images larger than ``img_size`` run as overlapping tiles (at least
``tile_overlap`` px of overlap, each tile zero-padded like a small image) whose probability maps
are blended with linear ramps across each overlap. Because 4 of the 12 blocks attend over the
whole 1024 px input, a tile sees less context than a whole-image pass would, so tiled maps differ
from what a larger model input would give. Measured on images small enough for a whole pass,
with tiles forced smaller (``tile``) and random weights, so only indicative: tiny config, 64 px
image, 9 tiles of 30 px: mean |diff| 0.044, max 0.17 (``tests/test_imlvit.py`` prints it); full
config, 1024 px image, 4 tiles of 640 px: mean |diff| 0.10, max 0.24 (``bench/imlvit.py
--tiling-diff``). With the released weights the difference is not measured here (no checkpoint).
Attention runs through ``scaled_dot_product_attention`` with the relative-position bias as an
additive mask, in chunks of ``attn_chunk`` queries so that the 4096 x 4096 bias of a global block
is never held at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from artifacts.detectors.base import Detector
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec

OFFICIAL_REPO = "SunnyHaze/IML-ViT"
OFFICIAL_COMMIT = "912ebb291cd35dd960ac084c6d617f18639ac9cc"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEAD_NORMS = ("BN", "LN", "IN")
PRECISIONS = ("fp32", "bf16", "fp16")
#: a tiny architecture for fast tests (random weights only): 8x8 tokens, windows of 3 (so the
#: window padding path runs, as 64 tokens in windows of 14 do in the full model), two global blocks
TINY = {"img_size": 64, "patch_size": 8, "embed_dim": 32, "depth": 4, "num_heads": 2, "window_size": 3,
        "global_blocks": (1, 3), "pretrain_img_size": 32, "fpn_channels": 16, "tile_overlap": 16}


@dataclass
class IMLViTConfig:
    img_size: int = 1024  # model input side (px); smaller images are zero-padded, never resized
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    window_size: int = 14  # window side (tokens) of the windowed blocks
    global_blocks: tuple[int, ...] = (2, 5, 8, 11)  # blocks with global attention; all others windowed
    pretrain_img_size: int = 224  # grid size of pos_embed (MAE pre-training), resized on the fly
    fpn_channels: int = 256  # feature pyramid and predict head width
    head_norm: str = "BN"  # predict head norm: BN | LN | IN (official default BN)
    tile: int | None = None  # tile side (px) for larger images; None = img_size (tiles are zero-padded to it)
    tile_overlap: int = 128  # minimum overlap (px) between neighbouring tiles
    score_top_fraction: float = 0.01  # image score = mean of this top fraction of the heatmap
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast)
    drop_path: float = field(default=0.1, metadata={"output": False})  # training only
    edge_lambda: float = field(default=20.0, metadata={"output": False})  # training only (loss weight)
    edge_width: int = field(default=7, metadata={"output": False})  # training only (edge kernel side)
    attn_chunk: int = field(default=1024, metadata={"output": False})  # queries per attention call
    batch: int = field(default=1, metadata={"output": False})  # tiles per forward pass
    threshold: float | None = None  # operating threshold (default: the weights' threshold, 0.5)

    def __post_init__(self) -> None:
        self.global_blocks = tuple(int(i) for i in self.global_blocks)
        if self.img_size % self.patch_size or self.img_size < self.patch_size:
            raise ValueError("iml-vit: img_size must be a positive multiple of patch_size")
        if self.embed_dim % self.num_heads or self.embed_dim % 4:
            raise ValueError("iml-vit: embed_dim must be divisible by num_heads and by 4")
        if self.pretrain_img_size % self.patch_size or self.window_size < 1 or self.depth < 1:
            raise ValueError("iml-vit: pretrain_img_size must be a multiple of patch_size; window_size, depth >= 1")
        if any(not 0 <= i < self.depth for i in self.global_blocks):
            raise ValueError(f"iml-vit: global_blocks must be block indexes below depth {self.depth}")
        if self.head_norm not in HEAD_NORMS:
            raise ValueError(f"iml-vit: head_norm must be one of {HEAD_NORMS}, got {self.head_norm!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"iml-vit: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.tile is not None and not 1 <= self.tile <= self.img_size:
            raise ValueError(f"iml-vit: tile must be in [1, img_size={self.img_size}], got {self.tile}")
        if not 0 <= self.tile_overlap < (self.tile or self.img_size):
            raise ValueError("iml-vit: tile_overlap must be >= 0 and smaller than the tile")
        if not 0 < self.score_top_fraction <= 1 or self.edge_width < 1 or self.edge_width % 2 == 0:
            raise ValueError("iml-vit: score_top_fraction in (0, 1] and an odd edge_width >= 1 are required")
        if self.attn_chunk < 1 or self.batch < 1:
            raise ValueError("iml-vit: attn_chunk and batch must be >= 1")

    def arch(self) -> dict[str, Any]:
        """Keyword arguments of :class:`IMLViT` (the architecture part of the config)."""
        keys = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "window_size",
                "global_blocks", "pretrain_img_size", "fpn_channels", "head_norm", "drop_path", "attn_chunk")
        return {k: getattr(self, k) for k in keys}


OFFICIAL = WeightSpec(
    tag="official",
    file="iml-vit_checkpoint.pth",
    sha256=None,  # several releases share this file name (2023 CASIAv2; 2024-03 CASIAv2 and CAT-Net protocol)
    license="MIT (SunnyHaze/IML-ViT)",
    source="https://github.com/SunnyHaze/IML-ViT (README / checkpoints/ckpt_download_page.md: Google Drive or "
           "Baidu NetDisk); not shipped, never downloaded by this package",
    train_command=None,
    input_spec={"color": "RGB", "range": "[0, 1]", "size": 1024, "resize": "never",
                "pad": "zeros at bottom/right to 1024, before normalisation",
                "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
                "larger": "overlapping 1024 px tiles, linear blending (this package)"},
    output="heatmap: P(pixel manipulated) (sigmoid); score: mean of the top 1% of the heatmap (this package's rule)",
    threshold=0.5,  # the official evaluation and demo threshold
    package=None,
    notes="plain state dict with prefixes encoder_net., featurePyramid_net., predict_head.; predict_head_norm BN",
)


# --------------------------------------------------------------------------------------------
# Edge-weighted loss (pure tensor functions)
# --------------------------------------------------------------------------------------------
def edge_band(mask, width: int = 7):
    """The official "edge mask": pixels within ``width // 2`` px (along rows or columns) of both
    the mask and its complement, i.e. ``dilate(mask) * dilate(1 - mask)`` with a cross-shaped
    ``width x width`` element (max-pooling along rows and along columns). ``mask``: (..., H, W),
    binarised at 0.5; the result has the same shape, float 0/1. A straight boundary gets a band
    ``width - 1`` px wide."""
    import torch
    import torch.nn.functional as F

    if width < 1 or width % 2 == 0:
        raise ValueError(f"edge width must be odd and >= 1, got {width}")
    shape = mask.shape
    m = (mask.reshape(-1, 1, shape[-2], shape[-1]) > 0.5).float()
    r = width // 2

    def dilate(t):
        rows = F.max_pool2d(t, (1, width), stride=1, padding=(0, r))
        cols = F.max_pool2d(t, (width, 1), stride=1, padding=(r, 0))
        return torch.maximum(rows, cols)

    return (dilate(m) * dilate(1.0 - m)).reshape(shape)


def edge_loss(logits, mask, edge_width: int = 7, lam: float = 20.0, edge=None, return_parts: bool = False):
    """IML-ViT's training loss: ``BCE(logits, mask) + lam * mean(edge * BCE)`` (means over every
    pixel). ``edge`` defaults to :func:`edge_band` of ``mask``; pass the band of the unpadded mask
    (padded with zeros) to match the official data pipeline exactly when masks are padded.
    ``return_parts`` also returns the two terms (plain BCE, weighted edge term)."""
    import torch.nn.functional as F

    mask = mask.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    if edge is None:
        edge = edge_band(mask, edge_width)
    plain, edged = bce.mean(), lam * (bce * edge.to(bce.dtype)).mean()
    total = plain + edged
    return (total, plain, edged) if return_parts else total


# --------------------------------------------------------------------------------------------
# The network (torch modules defined on first use: registering the model does not import torch)
# --------------------------------------------------------------------------------------------
def window_partition(x, size: int):
    """(B, H, W, C) -> (B * nWindows, size, size, C), zero-padding H, W up to multiples of size;
    also returns the padded (Hp, Wp)."""
    import torch.nn.functional as F

    b, h, w, c = x.shape
    ph, pw = -h % size, -w % size
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // size, size, wp // size, size, c).transpose(2, 3)
    return x.reshape(-1, size, size, c), (hp, wp)


def window_merge(windows, size: int, padded: tuple[int, int], hw: tuple[int, int]):
    """Inverse of :func:`window_partition`: windows -> (B, H, W, C) without the padding."""
    hp, wp = padded
    h, w = hw
    c = windows.shape[-1]
    b = windows.shape[0] // ((hp // size) * (wp // size))
    x = windows.view(b, hp // size, wp // size, size, size, c).transpose(2, 3).reshape(b, hp, wp, c)
    return x[:, :h, :w].contiguous() if (hp, wp) != (h, w) else x


def rel_pos_table(rel_pos, size: int):
    """Relative embeddings for a ``size``-long query/key axis: (size, size, C) with entry
    [i, j] = embedding of offset i - j (the table is linearly resized when its length is not
    ``2 * size - 1``)."""
    import torch
    import torch.nn.functional as F

    n = 2 * size - 1
    if rel_pos.shape[0] != n:
        rel_pos = F.interpolate(rel_pos.T[None], size=n, mode="linear")[0].T
    idx = torch.arange(size, device=rel_pos.device)
    return rel_pos[idx[:, None] - idx[None, :] + (size - 1)]


def rel_pos_bias(q, rel_pos_h, rel_pos_w, h: int, w: int):
    """Decomposed relative-position terms (MViTv2) for queries ``q`` (B, heads, h*w, C):
    returns (B, heads, h*w, h) and (B, heads, h*w, w); the bias of query (i, j) for key (k, l)
    is ``rh[..., k] + rw[..., l]``."""
    import torch

    b, nh, n, c = q.shape
    qg = q.reshape(b, nh, h, w, c)
    rh = torch.einsum("bnhwc,hkc->bnhwk", qg, rel_pos_table(rel_pos_h, h).to(q.dtype))
    rw = torch.einsum("bnhwc,wkc->bnhwk", qg, rel_pos_table(rel_pos_w, w).to(q.dtype))
    return rh.reshape(b, nh, n, h), rw.reshape(b, nh, n, w)


@lru_cache(maxsize=1)
def _net_classes() -> dict[str, type]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ChannelNorm(nn.Module):
        """LayerNorm over the channels of (N, C, H, W) maps (the official ``LayerNorm``, eps 1e-6)."""

        def __init__(self, channels: int, eps: float = 1e-6):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
            self.eps = eps

        def forward(self, x):
            x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
            return x.permute(0, 3, 1, 2)

    class ConvNorm(nn.Conv2d):
        """Bias-free 'same' convolution followed by a channel LayerNorm (child ``norm``)."""

        def __init__(self, cin: int, cout: int, k: int):
            super().__init__(cin, cout, k, padding=k // 2, bias=False)
            self.norm = ChannelNorm(cout)

        def forward(self, x):
            return self.norm(super().forward(x))

    class DropPath(nn.Module):
        """Stochastic depth on the residual branch (training only)."""

        def __init__(self, p: float):
            super().__init__()
            self.p = float(p)

        def forward(self, x):
            if not self.training or self.p == 0.0:
                return x
            keep = 1.0 - self.p
            return x * x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep) / keep

    class Mlp(nn.Module):
        def __init__(self, dim: int, hidden: int):
            super().__init__()
            self.fc1 = nn.Linear(dim, hidden)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(hidden, dim)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class Attention(nn.Module):
        """Multi-head self-attention over a (B, H, W, C) grid with decomposed relative positions,
        computed by ``scaled_dot_product_attention`` (bias as additive mask) in query chunks."""

        def __init__(self, dim: int, heads: int, grid: int, chunk: int):
            super().__init__()
            self.num_heads, self.chunk = heads, chunk
            self.qkv = nn.Linear(dim, dim * 3)
            self.proj = nn.Linear(dim, dim)
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid - 1, dim // heads))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid - 1, dim // heads))

        def forward(self, x):
            b, h, w, c = x.shape
            n = h * w
            q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
            rh, rw = rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, h, w)
            out = []
            for s in range(0, n, self.chunk):
                e = min(n, s + self.chunk)
                bias = (rh[:, :, s:e, :, None] + rw[:, :, s:e, None, :]).reshape(b, self.num_heads, e - s, n)
                out.append(F.scaled_dot_product_attention(q[:, :, s:e], k, v, attn_mask=bias))
            x = torch.cat(out, 2) if len(out) > 1 else out[0]
            return self.proj(x.transpose(1, 2).reshape(b, h, w, c))

    class Block(nn.Module):
        def __init__(self, dim: int, heads: int, mlp_ratio: float, window: int, grid: int, drop_path: float, chunk: int):
            super().__init__()
            self.window_size = window  # 0 = global attention over the whole grid
            self.norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.attn = Attention(dim, heads, window or grid, chunk)
            self.drop_path = DropPath(drop_path)
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
            self.mlp = Mlp(dim, int(dim * mlp_ratio))

        def forward(self, x):
            y = self.norm1(x)
            if self.window_size:
                hw = y.shape[1:3]
                y, padded = window_partition(y, self.window_size)
                y = window_merge(self.attn(y), self.window_size, padded, hw)
            else:
                y = self.attn(y)
            x = x + self.drop_path(y)
            return x + self.drop_path(self.mlp(self.norm2(x)))

    class PatchEmbed(nn.Module):
        def __init__(self, patch: int, dim: int):
            super().__init__()
            self.proj = nn.Conv2d(3, dim, patch, stride=patch)

        def forward(self, x):
            return self.proj(x).permute(0, 2, 3, 1)  # B, H, W, C

    class Encoder(nn.Module):
        """ViTDet-style plain ViT (window + global blocks, relative positions)."""

        def __init__(self, img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, window_size,
                     global_blocks, pretrain_img_size, drop_path, attn_chunk):
            super().__init__()
            grid = img_size // patch_size
            self.pos_embed = nn.Parameter(torch.zeros(1, (pretrain_img_size // patch_size) ** 2 + 1, embed_dim))
            self.patch_embed = PatchEmbed(patch_size, embed_dim)
            rates = np.linspace(0.0, drop_path, depth).tolist()
            self.blocks = nn.ModuleList(
                Block(embed_dim, num_heads, mlp_ratio, 0 if i in global_blocks else window_size, grid, rates[i], attn_chunk)
                for i in range(depth))

        def abs_pos(self, h: int, w: int):
            pos = self.pos_embed[:, 1:]  # drop the class-token slot
            side = int(math.isqrt(pos.shape[1]))
            pos = pos.reshape(1, side, side, -1)
            if (side, side) != (h, w):
                pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False)
                pos = pos.permute(0, 2, 3, 1)
            return pos

        def forward(self, x):
            x = self.patch_embed(x)
            x = x + self.abs_pos(x.shape[1], x.shape[2])
            for blk in self.blocks:
                x = blk(x)
            return x.permute(0, 3, 1, 2)

    class FeaturePyramid(nn.Module):
        """ViTDet simple feature pyramid: 1/4, 1/8, 1/16, 1/32 stages, plus 1/64 (p5 subsampled)."""

        def __init__(self, dim: int, out: int):
            super().__init__()
            self.simfp_2 = nn.Sequential(nn.ConvTranspose2d(dim, dim // 2, 2, stride=2), ChannelNorm(dim // 2), nn.GELU(),
                                         nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2),
                                         ConvNorm(dim // 4, out, 1), ConvNorm(out, out, 3))
            self.simfp_3 = nn.Sequential(nn.ConvTranspose2d(dim, dim // 2, 2, stride=2),
                                         ConvNorm(dim // 2, out, 1), ConvNorm(out, out, 3))
            self.simfp_4 = nn.Sequential(ConvNorm(dim, out, 1), ConvNorm(out, out, 3))
            self.simfp_5 = nn.Sequential(nn.MaxPool2d(2, stride=2), ConvNorm(dim, out, 1), ConvNorm(out, out, 3))

        def forward(self, x):
            p5 = self.simfp_5(x)
            return [self.simfp_2(x), self.simfp_3(x), self.simfp_4(x), p5, p5[:, :, ::2, ::2]]

    class PredictHead(nn.Module):
        """SegFormer-style fusion head: all levels at 1/4, concat, 1x1 fuse, norm, dropout, 1x1."""

        def __init__(self, channels: int, norm: str, levels: int = 5):
            super().__init__()
            self.linear_fuse = nn.Conv2d(channels * levels, channels, 1)
            if norm == "BN":
                self.norm = nn.BatchNorm2d(channels)
            elif norm == "LN":
                self.norm = ChannelNorm(channels)
            else:
                self.norm = nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)
            self.dropout = nn.Dropout(0.5)
            self.linear_predict = nn.Conv2d(channels, 1, 1)

        def forward(self, feats):
            size = feats[0].shape[-2:]
            x = torch.cat([feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                                        for f in feats[1:]], 1)
            return self.linear_predict(self.dropout(self.norm(self.linear_fuse(x))))

    class IMLViT(nn.Module):
        """IML-ViT: (B, 3, S, S) RGB in [0, 1] (already zero-padded to S) -> (B, 1, S, S) logits.
        ImageNet normalisation happens inside (buffers not in the state dict)."""

        def __init__(self, img_size=1024, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0,
                     window_size=14, global_blocks=(2, 5, 8, 11), pretrain_img_size=224, fpn_channels=256,
                     head_norm="BN", drop_path=0.1, attn_chunk=1024):
            super().__init__()
            self.img_size = img_size
            self.encoder_net = Encoder(img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, window_size,
                                       tuple(global_blocks), pretrain_img_size, drop_path, attn_chunk)
            self.featurePyramid_net = FeaturePyramid(embed_dim, fpn_channels)
            self.predict_head = PredictHead(fpn_channels, head_norm)
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
            self._init_weights()

        def _init_weights(self) -> None:
            for m in self.modules():
                if isinstance(m, nn.Linear):  # xavier-uniform linears, zero biases (as the official model)
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
            nn.init.trunc_normal_(self.encoder_net.pos_embed, std=0.02)

        def forward(self, x, normalise: bool = True):
            if normalise:
                x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
            logits = self.predict_head(self.featurePyramid_net(self.encoder_net(x)))
            return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

        def loss(self, logits, mask, edge=None, edge_width: int = 7, lam: float = 20.0, return_parts: bool = False):
            return edge_loss(logits, mask, edge_width, lam, edge=edge, return_parts=return_parts)

    return {"IMLViT": IMLViT, "Attention": Attention, "Block": Block, "ChannelNorm": ChannelNorm}


def __getattr__(name: str):
    if name in ("IMLViT", "Attention", "Block", "ChannelNorm"):
        return _net_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(config: IMLViTConfig | None = None, **overrides):
    """An :class:`IMLViT` for ``config`` (default: the full paper configuration)."""
    cfg = config or IMLViTConfig(**overrides)
    return _net_classes()["IMLViT"](**cfg.arch())


def load_official(net, state: dict) -> None:
    """Load an official-layout state dict into ``net`` strictly, with a short, useful error."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        hint = ""
        if any(k.startswith("predict_head.norm.running") for k in missing):
            hint = " (the checkpoint's head has no running statistics: try head_norm='LN')"
        elif any(k.startswith("predict_head.norm.running") for k in unexpected):
            hint = " (the checkpoint's head norm has running statistics: use head_norm='BN' or 'IN')"
        raise ValueError(f"not an IML-ViT state dict for this config{hint}: {len(missing)} missing "
                         f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, "
                         f"{len(shapes)} shape mismatches {shapes[:3]}")
    net.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------------------------
# Tiling
# --------------------------------------------------------------------------------------------
def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spaced tile starts covering ``length`` with tiles of ``tile`` px overlapping by at
    least ``overlap`` px (one tile at 0 when ``length <= tile``)."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    return [int(round(i * (length - tile) / (n - 1))) for i in range(n)]


def ramp(starts: list[int], tile: int, length: int) -> list[np.ndarray]:
    """Per-tile blending weights along one axis: 1 inside, linear ramps across each overlap with a
    neighbour (weights of two overlapping tiles sum to 1 there), never 0."""
    out = []
    for i, s in enumerate(starts):
        n = min(tile, length - s)
        pos = np.arange(n, dtype=np.float64) + 0.5
        wgt = np.ones(n)
        if i > 0:
            ov = starts[i - 1] + tile - s
            if ov > 0:
                wgt = np.minimum(wgt, pos / ov)
        if i + 1 < len(starts):
            ov = s + tile - starts[i + 1]
            if ov > 0:
                wgt = np.minimum(wgt, (n - pos) / ov)
        out.append(wgt.astype(np.float32))
    return out


# --------------------------------------------------------------------------------------------
# The detector
# --------------------------------------------------------------------------------------------
@register_model(
    "manipulation",
    "iml-vit",
    config=IMLViTConfig,
    weights=(OFFICIAL,),
    needs_weights=True,
    description="IML-ViT (Ma et al. 2023): windowed ViT-B/16 at 1024 px, simple feature pyramid, edge-supervised head",
)
class IMLViTDetector(Detector):
    """IML-ViT manipulation localisation (official checkpoint; heatmap + top-1% score)."""

    def __init__(self, config: IMLViTConfig, weights=None, device: str | None = None):
        super().__init__(config, weights, device)
        import torch

        self._torch = torch
        self.net = build(config)
        if weights is not None:
            from artifacts.weights import load_checkpoint

            load_official(self.net, load_checkpoint(weights.path))
        self.net.eval().to(self.device)

    def _autocast(self):
        torch = self._torch
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.config.precision]
        return torch.autocast(device_type=self.device.split(":")[0], dtype=dtype, enabled=dtype is not None)

    def probabilities(self, tiles: np.ndarray) -> np.ndarray:
        """Sigmoid maps (N, S, S) for zero-padded float tiles (N, S, S, 3) in [0, 1]."""
        torch = self._torch
        with torch.inference_mode(), self._autocast():
            x = torch.from_numpy(np.ascontiguousarray(tiles.transpose(0, 3, 1, 2))).to(self.device)
            return torch.sigmoid(self.net(x).float())[:, 0].cpu().numpy()

    def heatmap(self, pixels: np.ndarray) -> tuple[np.ndarray, dict]:
        """P(manipulated) per pixel at the input's size, and a record of the preprocessing."""
        cfg = self.config
        size, tile = cfg.img_size, cfg.tile or cfg.img_size
        h, w = pixels.shape[:2]
        peak = 65535.0 if pixels.dtype == np.uint16 else 255.0
        ys, xs = tile_starts(h, tile, cfg.tile_overlap), tile_starts(w, tile, cfg.tile_overlap)
        boxes = [(y, min(h, y + tile), x, min(w, x + tile)) for y in ys for x in xs]
        wy, wx = ramp(ys, tile, h), ramp(xs, tile, w)
        acc = np.zeros((h, w), np.float32)
        norm = np.zeros((h, w), np.float32)
        for i in range(0, len(boxes), cfg.batch):
            chunk = boxes[i:i + cfg.batch]
            batch = np.zeros((len(chunk), size, size, 3), np.float32)  # zero padding at bottom/right
            for j, (y0, y1, x0, x1) in enumerate(chunk):
                batch[j, :y1 - y0, :x1 - x0] = pixels[y0:y1, x0:x1].astype(np.float32) / peak
            probs = self.probabilities(batch)
            for j, (y0, y1, x0, x1) in enumerate(chunk):
                k = i + j
                weight = np.outer(wy[k // len(xs)], wx[k % len(xs)])
                acc[y0:y1, x0:x1] += probs[j, :y1 - y0, :x1 - x0] * weight
                norm[y0:y1, x0:x1] += weight
        heat = np.clip(acc / norm, 0.0, 1.0)
        overlap = [min((a + tile - b for a, b in zip(s, s[1:])), default=0) for s in (ys, xs)]
        record = {
            "input_size": [int(h), int(w)],
            "model_input": size,
            "resize": None,
            "pad": {"value": 0, "position": "top_left", "before": "normalisation",
                    "bottom_right": [[size - (y1 - y0), size - (x1 - x0)] for y0, y1, x0, x1 in boxes]},
            "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "scale": f"1/{int(peak)}"},
            "tiles": len(boxes),
            "tile": tile if len(boxes) > 1 else None,
            "tile_grid": [len(ys), len(xs)],
            "overlap": overlap,  # smallest actual overlap (px) between neighbours, [rows, columns]
            "min_overlap": cfg.tile_overlap if len(boxes) > 1 else 0,
            "blend": "linear ramps over overlaps (probabilities)" if len(boxes) > 1 else None,
            "tile_boxes": [list(map(int, b)) for b in boxes],  # [y0, y1, x0, x1]
            "precision": cfg.precision,
        }
        return heat.astype(np.float32), record

    def score(self, heat: np.ndarray) -> float:
        """Mean of the top ``score_top_fraction`` of the heatmap (at least one pixel)."""
        flat = heat.ravel()
        k = max(1, int(math.ceil(self.config.score_top_fraction * flat.size)))
        return float(np.clip(np.partition(flat, flat.size - k)[flat.size - k:].mean(), 0.0, 1.0))

    def detect_one(self, image) -> Detection:
        heat, record = self.heatmap(image.pixels)
        return Detection(score=self.score(heat), heatmap=heat, threshold=self.threshold,
                         meta={"preprocessing": record,
                               "score_rule": f"mean of the top {self.config.score_top_fraction:g} of the heatmap"})
