"""IML-ViT: official checkpoint layout, strict loading, attention, padding/tiling, edge loss."""
from __future__ import annotations

import argparse
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from artifacts.detectors.manipulation import imlvit as M  # registers manipulation/iml-vit
from artifacts.io import ImageData
from artifacts.registry import create
from artifacts.weights import WeightsNotFoundError


# --------------------------------------------------------------------------------------------
# The official key/shape layout, written out from the official module definitions of
# SunnyHaze/IML-ViT at commit 912ebb291cd35dd960ac084c6d617f18639ac9cc:
#   iml_vit_model.py             iml_vit_model: encoder_net / featurePyramid_net / predict_head,
#                                window_block_indexes [0, 1, 3, 4, 6, 7, 9, 10], window_size 14,
#                                input 1024, patch 16, embed 768, fpn 256, predict_head_norm "BN"
#   modules/window_attention_ViT.py  ViT (pos_embed for 224 px + cls token, patch_embed.proj,
#                                blocks.i.{norm1, attn.{rel_pos_h, rel_pos_w, qkv, proj}, norm2,
#                                mlp.{fc1, fc2}}), SimpleFeaturePyramid (simfp_2..simfp_5 Sequentials,
#                                Conv2d(bias=False) with a `norm` LayerNorm child)
#   modules/decoderhead.py       PredictHead: linear_fuse, norm (BatchNorm2d), dropout, linear_predict
# Written by hand from the source, not dumped from this package's model.
# --------------------------------------------------------------------------------------------
def official_layout() -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {
        "encoder_net.pos_embed": (1, 197, 768),
        "encoder_net.patch_embed.proj.weight": (768, 3, 16, 16),
        "encoder_net.patch_embed.proj.bias": (768,),
    }
    for i in range(12):
        rel = 127 if i in (2, 5, 8, 11) else 27  # 2 * 64 - 1 (global) or 2 * 14 - 1 (window)
        b = f"encoder_net.blocks.{i}."
        keys.update({
            b + "norm1.weight": (768,), b + "norm1.bias": (768,),
            b + "attn.rel_pos_h": (rel, 64), b + "attn.rel_pos_w": (rel, 64),
            b + "attn.qkv.weight": (2304, 768), b + "attn.qkv.bias": (2304,),
            b + "attn.proj.weight": (768, 768), b + "attn.proj.bias": (768,),
            b + "norm2.weight": (768,), b + "norm2.bias": (768,),
            b + "mlp.fc1.weight": (3072, 768), b + "mlp.fc1.bias": (3072,),
            b + "mlp.fc2.weight": (768, 3072), b + "mlp.fc2.bias": (768,),
        })
    fp = "featurePyramid_net."
    keys.update({
        # scale 4.0: ConvTranspose2d(768, 384, 2, 2), LayerNorm(384), GELU, ConvTranspose2d(384, 192, 2, 2)
        fp + "simfp_2.0.weight": (768, 384, 2, 2), fp + "simfp_2.0.bias": (384,),
        fp + "simfp_2.1.weight": (384,), fp + "simfp_2.1.bias": (384,),
        fp + "simfp_2.3.weight": (384, 192, 2, 2), fp + "simfp_2.3.bias": (192,),
        fp + "simfp_2.4.weight": (256, 192, 1, 1), fp + "simfp_2.4.norm.weight": (256,), fp + "simfp_2.4.norm.bias": (256,),
        fp + "simfp_2.5.weight": (256, 256, 3, 3), fp + "simfp_2.5.norm.weight": (256,), fp + "simfp_2.5.norm.bias": (256,),
        # scale 2.0: ConvTranspose2d(768, 384, 2, 2)
        fp + "simfp_3.0.weight": (768, 384, 2, 2), fp + "simfp_3.0.bias": (384,),
        fp + "simfp_3.1.weight": (256, 384, 1, 1), fp + "simfp_3.1.norm.weight": (256,), fp + "simfp_3.1.norm.bias": (256,),
        fp + "simfp_3.2.weight": (256, 256, 3, 3), fp + "simfp_3.2.norm.weight": (256,), fp + "simfp_3.2.norm.bias": (256,),
        # scale 1.0: no layer before the two convs
        fp + "simfp_4.0.weight": (256, 768, 1, 1), fp + "simfp_4.0.norm.weight": (256,), fp + "simfp_4.0.norm.bias": (256,),
        fp + "simfp_4.1.weight": (256, 256, 3, 3), fp + "simfp_4.1.norm.weight": (256,), fp + "simfp_4.1.norm.bias": (256,),
        # scale 0.5: MaxPool2d(2, 2) at index 0 (no parameters)
        fp + "simfp_5.1.weight": (256, 768, 1, 1), fp + "simfp_5.1.norm.weight": (256,), fp + "simfp_5.1.norm.bias": (256,),
        fp + "simfp_5.2.weight": (256, 256, 3, 3), fp + "simfp_5.2.norm.weight": (256,), fp + "simfp_5.2.norm.bias": (256,),
        # PredictHead(feature_channels=[256] * 5, embed_dim=256, norm="BN")
        "predict_head.linear_fuse.weight": (256, 1280, 1, 1), "predict_head.linear_fuse.bias": (256,),
        "predict_head.norm.weight": (256,), "predict_head.norm.bias": (256,),
        "predict_head.norm.running_mean": (256,), "predict_head.norm.running_var": (256,),
        "predict_head.norm.num_batches_tracked": (),
        "predict_head.linear_predict.weight": (1, 256, 1, 1), "predict_head.linear_predict.bias": (1,),
    })
    return keys


def test_full_model_matches_the_official_state_dict_layout():
    with torch.device("meta"):
        net = M.build()  # the full paper configuration, never run
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    expected = official_layout()
    assert sorted(set(expected) - set(ours)) == [] and sorted(set(ours) - set(expected)) == []
    assert ours == expected
    assert sum(int(np.prod(s)) for s in expected.values()) == 91_778_242  # parameters + buffers


def test_relative_position_tables_have_the_official_sizes():
    with torch.device("meta"):
        full = M.build()
    tiny = M.build(M.IMLViTConfig(**M.TINY))
    for net, window, grid in ((full, 14, 64), (tiny, 3, 8)):
        for i, blk in enumerate(net.encoder_net.blocks):
            side = grid if i in net_globals(net) else window
            assert blk.window_size == (0 if i in net_globals(net) else window)
            assert tuple(blk.attn.rel_pos_h.shape) == (2 * side - 1, blk.attn.qkv.in_features // blk.attn.num_heads)
            assert blk.attn.rel_pos_w.shape == blk.attn.rel_pos_h.shape


def net_globals(net) -> set[int]:
    return {i for i, blk in enumerate(net.encoder_net.blocks) if blk.window_size == 0}


# --------------------------------------------------------------------------------------------
# Attention: SDPA + decomposed relative positions == a naive softmax implementation
# --------------------------------------------------------------------------------------------
def naive_attention(attn, x):
    """Plain softmax attention with the relative-position terms indexed coordinate by coordinate."""
    b, h, w, c = x.shape
    nh, hd = attn.num_heads, c // attn.num_heads
    qkv = (x.reshape(b, h * w, c) @ attn.qkv.weight.T + attn.qkv.bias).reshape(b, h * w, 3, nh, hd)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    ii, jj = np.divmod(np.arange(h * w), w)  # token -> (row, column)
    rel_h = attn.rel_pos_h[torch.as_tensor(ii[:, None] - ii[None, :] + h - 1)]  # (N, N, hd)
    rel_w = attn.rel_pos_w[torch.as_tensor(jj[:, None] - jj[None, :] + w - 1)]
    logits = (q * hd ** -0.5) @ k.transpose(-1, -2)
    logits = logits + torch.einsum("bhnc,nmc->bhnm", q, rel_h) + torch.einsum("bhnc,nmc->bhnm", q, rel_w)
    out = torch.softmax(logits, -1) @ v
    return out.transpose(1, 2).reshape(b, h, w, c) @ attn.proj.weight.T + attn.proj.bias


def naive_block(blk, x):
    """A transformer block with windows cut out one by one from the zero-padded grid."""
    y = F.layer_norm(x, x.shape[-1:], blk.norm1.weight, blk.norm1.bias, 1e-6)
    ws = blk.window_size
    if ws:
        h, w = y.shape[1:3]
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        pad = torch.zeros(y.shape[0], hp, wp, y.shape[3])
        pad[:, :h, :w] = y
        out = torch.zeros_like(pad)
        for r in range(0, hp, ws):
            for c in range(0, wp, ws):
                out[:, r:r + ws, c:c + ws] = naive_attention(blk.attn, pad[:, r:r + ws, c:c + ws])
        y = out[:, :h, :w]
    else:
        y = naive_attention(blk.attn, y)
    x = x + y
    z = F.layer_norm(x, x.shape[-1:], blk.norm2.weight, blk.norm2.bias, 1e-6)
    return x + blk.mlp.fc2(F.gelu(blk.mlp.fc1(z)))


@torch.no_grad()
def test_sdpa_attention_equals_naive_softmax_attention():
    torch.manual_seed(0)
    net = M.build(M.IMLViTConfig(**M.TINY)).eval()
    for p in net.parameters():  # relative tables start at zero: give them content
        p.copy_(torch.randn_like(p) * 0.2)
    x = torch.randn(2, 8, 8, 32)
    for blk in net.encoder_net.blocks:  # windows of 3 on an 8x8 grid (padded to 9x9), and global
        assert torch.allclose(blk(x), naive_block(blk, x), atol=1e-5), blk.window_size
    glob = net.encoder_net.blocks[1].attn
    assert glob.chunk >= 64
    full = glob(x)
    glob.chunk = 5  # query chunks of 5 of 64 tokens: the same result
    assert torch.allclose(glob(x), full, atol=1e-6)
    assert torch.allclose(full, naive_attention(glob, x), atol=1e-5)


# --------------------------------------------------------------------------------------------
# Loading through the registry
# --------------------------------------------------------------------------------------------
def tiny_state(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    net = M.build(M.IMLViTConfig(**M.TINY))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        net.predict_head.norm.running_mean.uniform_(-0.2, 0.2)
        net.predict_head.norm.running_var.uniform_(0.5, 2.0)
        net.predict_head.norm.num_batches_tracked.fill_(7)
    return net.state_dict()


def test_without_weights_it_is_not_a_detector():
    with pytest.raises(WeightsNotFoundError, match="not a detector"):
        create("iml-vit", device="cpu")


def test_official_layout_checkpoint_loads_strictly_through_the_registry(tmp_path):
    state = tiny_state()
    path = tmp_path / "iml-vit_checkpoint.pth"
    torch.save(state, path)  # a plain state dict, as released
    det = create("manipulation/iml-vit", weights=str(path), device="cpu", **M.TINY)
    loaded = det.net.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert det.weight_id.startswith("file:")

    wrapped = tmp_path / "checkpoint-144.pth"  # a training checkpoint: {"model", "args": Namespace, ...}
    torch.save({"model": state, "epoch": 144, "args": argparse.Namespace(edge_lambda=20)}, wrapped)
    det2 = create("iml-vit", weights=str(wrapped), device="cpu", **M.TINY)
    key = "predict_head.linear_predict.weight"
    assert torch.equal(det2.net.state_dict()[key], state[key])

    with pytest.raises(ValueError, match="head_norm='BN' or 'IN'"):
        create("iml-vit", weights=str(path), device="cpu", **{**M.TINY, "head_norm": "LN"})
    bad = dict(state)
    bad.pop("encoder_net.pos_embed")
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="1 missing"):
        create("iml-vit", weights=str(tmp_path / "bad.pth"), device="cpu", **M.TINY)


@torch.no_grad()
def test_bn_and_in_heads_load_the_same_keys_and_agree_in_eval(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(tiny_state(), path)
    bn = create("iml-vit", weights=str(path), device="cpu", **M.TINY)
    inn = create("iml-vit", weights=str(path), device="cpu", **{**M.TINY, "head_norm": "IN"})
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(bn.net(x), inn.net(x), atol=1e-5)


# --------------------------------------------------------------------------------------------
# Padding, tiling, the Detection
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_det(tmp_path_factory):
    path = tmp_path_factory.mktemp("imlvit") / "tiny.pth"
    torch.save(tiny_state(1), path)
    return create("iml-vit", weights=str(path), device="cpu", **M.TINY), path


def photo(h: int, w: int, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / 7.0 + c) * np.cos(yy / 5.0 - c) for c in range(3)], -1) * 0.4 + 0.5
    base = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
    peak = 65535 if dtype == np.uint16 else 255
    return (base * peak).round().astype(dtype)


@torch.no_grad()
def test_small_image_is_zero_padded_never_resized(tiny_det):
    det, _ = tiny_det
    pixels = photo(40, 50)
    out = det.detect(ImageData(pixels))
    assert out.heatmap.shape == (40, 50) and 0.0 <= out.score <= 1.0
    pre = out.meta["preprocessing"]
    assert pre["resize"] is None and pre["tiles"] == 1 and pre["tile"] is None
    assert pre["pad"]["bottom_right"] == [[24, 14]] and pre["pad"]["value"] == 0
    assert pre["normalisation"]["mean"] == [0.485, 0.456, 0.406]
    # the official order: zeros at bottom/right in [0, 1], then ImageNet normalisation, top-left crop back
    x = torch.zeros(1, 3, 64, 64)
    x[:, :, :40, :50] = torch.from_numpy(pixels.transpose(2, 0, 1) / 255.0).float()
    x = (x - torch.tensor(M.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(M.IMAGENET_STD).view(1, 3, 1, 1)
    ref = torch.sigmoid(det.net(x, normalise=False))[0, 0, :40, :50].numpy()
    assert np.allclose(out.heatmap, ref, atol=1e-5)
    # uint16 input reads as the same image
    out16 = det.detect(ImageData(pixels.astype(np.uint16) * 257))
    assert np.allclose(out16.heatmap, out.heatmap, atol=1e-5)
    # image score: mean of the top 1% of the heatmap
    k = int(np.ceil(0.01 * out.heatmap.size))
    assert out.score == pytest.approx(np.sort(out.heatmap.ravel())[-k:].mean(), abs=1e-6)


def test_large_image_runs_as_blended_tiles(tiny_det):
    det, _ = tiny_det
    out = det.detect(ImageData(photo(90, 150, seed=2)))
    assert out.heatmap.shape == (90, 150)
    pre = out.meta["preprocessing"]
    assert pre["tiles"] == 6 and pre["tile_grid"] == [2, 3] and pre["tile"] == 64
    assert min(pre["overlap"]) >= 16 and pre["min_overlap"] == 16 and pre["blend"].startswith("linear")
    assert pre["tile_boxes"][0] == [0, 64, 0, 64] and pre["tile_boxes"][-1] == [26, 90, 86, 150]
    assert pre["pad"]["bottom_right"] == [[0, 0]] * 6  # full tiles: no padding
    # ramps make a partition of unity: a constant map stays constant through the blending
    det.probabilities = lambda tiles: np.full(tiles.shape[:3], 0.3, np.float32)
    try:
        flat = det.detect(ImageData(photo(90, 150, seed=2)))
    finally:
        del det.probabilities
    assert np.allclose(flat.heatmap, 0.3, atol=1e-6)


def test_ramps_sum_to_one_across_overlaps():
    starts = M.tile_starts(1500, 1024, 128)
    assert starts == [0, 476]
    w = M.ramp(starts, 1024, 1500)
    total = np.zeros(1500)
    for s, r in zip(starts, w):
        total[s:s + len(r)] += r
    assert np.allclose(total, 1.0) and min(r.min() for r in w) > 0
    assert M.tile_starts(900, 1024, 128) == [0]
    starts = M.tile_starts(3000, 1024, 128)
    assert all(a + 1024 - b >= 127 for a, b in zip(starts, starts[1:])) and starts[-1] == 3000 - 1024


def test_tiled_vs_whole_difference_is_measured(tiny_det):
    """Tiles (smaller than half the image) lose the context the global blocks would see: the maps
    are not equal; the difference is measured and printed (random weights, so only indicative)."""
    _, path = tiny_det
    whole = create("iml-vit", weights=str(path), device="cpu", **M.TINY)
    tiled = create("iml-vit", weights=str(path), device="cpu", **{**M.TINY, "tile": 30, "tile_overlap": 8})
    image = ImageData(photo(64, 64, seed=3))
    a, b = whole.detect(image), tiled.detect(image)
    assert a.meta["preprocessing"]["tiles"] == 1 and b.meta["preprocessing"]["tiles"] == 9
    assert b.meta["preprocessing"]["pad"]["bottom_right"][0] == [34, 34]  # each 30 px tile padded to 64
    diff = np.abs(a.heatmap - b.heatmap)
    print(f"\nIML-ViT tiny (random weights), 64x64 image: 9 tiles of 30 px (overlap >= 8) vs one whole pass: "
          f"max |diff| {diff.max():.4f}, mean |diff| {diff.mean():.4f}, score {a.score:.4f} vs {b.score:.4f}")
    assert np.isfinite(diff).all() and diff.mean() < 0.5


# --------------------------------------------------------------------------------------------
# Edge loss
# --------------------------------------------------------------------------------------------
def official_edge(mask: torch.Tensor, k: int) -> torch.Tensor:
    """The official EdgeGenerator written naively: cross-kernel convolution > 0, on mask and 1 - mask."""
    kernel = torch.zeros(1, 1, k, k)
    kernel[0, 0, k // 2, :] = 1
    kernel[0, 0, :, k // 2] = 1
    m = mask.float().view(1, 1, *mask.shape)
    dil = (F.conv2d(m, kernel, padding=k // 2) > 0).float()
    ero = (F.conv2d(1 - m, kernel, padding=k // 2) > 0).float()
    return (((-(ero - dil).abs() + 1) > 0).float())[0, 0]


def test_edge_band_of_a_square_and_the_official_generator():
    mask = torch.zeros(32, 32)
    mask[10:22, 10:22] = 1
    band = M.edge_band(mask, 7)
    assert band.shape == mask.shape
    row = band[16].nonzero().flatten().tolist()
    assert row == list(range(7, 13)) + list(range(19, 25))  # 6 px across each straight edge, 3 on each side
    assert band[9, 10] == 1 and band[9, 9] == 0 and band[8, 8] == 0  # cross element: corners stay thin
    assert torch.equal(band, official_edge(mask, 7))
    blobs = (torch.rand(1, 1, 48, 40, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    blobs = F.max_pool2d(blobs, 3, 1, 1)[0, 0]
    for k in (3, 7, 11):
        assert torch.equal(M.edge_band(blobs, k), official_edge(blobs, k))
    with pytest.raises(ValueError, match="odd"):
        M.edge_band(mask, 6)


def test_edge_loss_is_finite_and_weighted_by_lambda():
    torch.manual_seed(0)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 6:26] = 1
    logits = torch.randn(2, 1, 32, 32, requires_grad=True)
    total, plain, edged = M.edge_loss(logits, mask, return_parts=True)
    assert torch.isfinite(total) and total.item() == pytest.approx((plain + edged).item())
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    assert plain.item() == pytest.approx(bce.mean().item(), rel=1e-6)
    assert edged.item() == pytest.approx(20 * (bce * M.edge_band(mask, 7)).mean().item(), rel=1e-5)
    assert M.edge_loss(logits, mask, lam=0.0).item() == pytest.approx(plain.item(), rel=1e-6)
    assert M.edge_loss(logits, mask, lam=40.0).item() == pytest.approx((plain + 2 * edged).item(), rel=1e-5)
    total.backward()
    assert torch.isfinite(logits.grad).all()
    # the model's forward + loss run end to end on the tiny config
    net = M.build(M.IMLViTConfig(**M.TINY)).train()
    out = net(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 1, 64, 64)
    loss = net.loss(out, torch.zeros(2, 1, 64, 64).index_fill_(2, torch.arange(20, 40), 1.0))
    loss.backward()
    assert torch.isfinite(loss)


# --------------------------------------------------------------------------------------------
# Full configuration, once
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_full_model_runs_a_1500x900_image_through_tiles(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "iml-vit_checkpoint.pth"
    torch.save(M.build().state_dict(), path)  # random weights in the official layout (~350 MiB)
    det = create("iml-vit", weights=str(path), device="cpu")
    t0 = time.perf_counter()
    out = det.detect(ImageData(photo(900, 1500, seed=4)))
    seconds = time.perf_counter() - t0
    pre = out.meta["preprocessing"]
    print(f"\nIML-ViT full config, 1500x900 on {det.device}: {seconds:.1f} s, {pre['tiles']} tiles")
    assert out.heatmap.shape == (900, 1500) and 0.0 <= out.score <= 1.0
    assert pre["tiles"] == 2 and pre["tile_grid"] == [1, 2] and pre["tile"] == 1024 and pre["model_input"] == 1024
    assert pre["tile_boxes"] == [[0, 900, 0, 1024], [0, 900, 476, 1500]] and pre["overlap"] == [0, 548]
    assert pre["pad"]["bottom_right"] == [[124, 0], [124, 0]] and pre["resize"] is None
