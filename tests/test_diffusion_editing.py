"""Latent editing mechanics on tiny random UNets: DesignEdit key masking (exact zero weight for
masked keys, processors swapped and restored, active for the first K steps only), layer fusion,
and LatentEditor masked DDIM updates (latents outside the edit mask unchanged).

At the end, issue #9 item 4 (``ldsr``): the x4 upscaler loader round-trips a tiny pipeline saved in
the Stable Diffusion x4 upscaler layout and fails fast on a broken one, x4 upscaling runs whole and
tiled, and the frequency-compensation branch is the identity at init and learns."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from artifacts.restoration.diffusion import editing as ed  # noqa: E402
from artifacts.restoration.diffusion import ldsr  # noqa: E402

EMB = 16


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def unet():
    return ed.tiny_sd_unet(cross_attention_dim=EMB)


def _mask(h=16, w=16):
    m = torch.zeros(1, 1, h, w)
    m[..., 4:10, 6:12] = 1
    return m


def _call(unet, x, t=500, seed=1):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(x.shape[0], 3, EMB, generator=g)
    with torch.no_grad():
        return unet(x, torch.tensor(t), encoder_hidden_states=emb).sample


def test_token_grid_and_mask_resize():
    assert ed.token_grid(256, (16, 16)) == (16, 16)
    assert ed.token_grid(64, (16, 16)) == (8, 8)
    assert ed.token_grid(12, (5, 7)) == (3, 4)  # ceil halving of odd sizes
    with pytest.raises(ValueError):
        ed.token_grid(10, (16, 16))
    r = ed.resize_mask_to_grid(_mask(), (8, 8))
    assert r.shape == (1, 8, 8) and r[0, 2:5, 3:6].all() and r.sum() == 9


def test_masked_keys_get_exactly_zero_attention(unet):
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with ed.key_masking(unet, _mask(), num_masked_steps=1, apply_to=[1], record=True) as ctrl:
        _call(unet, x)
    assert ctrl.records, "no self-attention layer was masked"
    for rec in ctrl.records:
        probs, keep = rec["probs"], rec["keep"]  # (B, heads, Nq, Nk), (B, Nk)
        assert probs.shape[0] == 2 and keep.shape == (2, probs.shape[-1])
        assert not keep[1].all() and keep[0].all()  # only row 1 (the background layer) is masked
        masked = probs[1][..., ~keep[1]]
        assert masked.numel() > 0 and torch.count_nonzero(masked) == 0  # exactly zero, not small
        assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)
        assert (probs[1][..., keep[1]] > 0).all()
    assert ctrl.all_masked_rows == 0


def test_sdpa_path_matches_explicit_softmax_and_masking_changes_output(unet):
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = _call(unet, x)
    with ed.key_masking(unet, _mask(), num_masked_steps=1, record=True):
        explicit = _call(unet, x)
    with ed.key_masking(unet, _mask(), num_masked_steps=1):
        fused = _call(unet, x)
    assert torch.allclose(explicit, fused, atol=1e-5)
    assert not torch.allclose(fused, ref, atol=1e-4)
    with ed.key_masking(unet, _mask(), num_masked_steps=1, mode="zero_features"):
        zeroed = _call(unet, x)
    assert not torch.allclose(zeroed, fused, atol=1e-5)  # the official variant is a different op


def test_processors_swapped_and_restored(unet):
    before = dict(unet.attn_processors)
    with ed.key_masking(unet, _mask(), num_masked_steps=3) as ctrl:
        during = unet.attn_processors
        swapped = [n for n, p in during.items() if isinstance(p, ed.KeyMaskedAttnProcessor)]
        assert swapped and all(".attn1." in n for n in swapped)  # self-attention only
        assert all(during[n] is before[n] for n in during if ".attn2." in n)
        assert ctrl.num_masked_steps == 3
    after = unet.attn_processors
    assert after.keys() == before.keys() and all(after[n] is before[n] for n in before)
    assert not unet._forward_pre_hooks
    with pytest.raises(RuntimeError):
        with ed.key_masking(unet, _mask(), num_masked_steps=3):
            raise RuntimeError("boom")
    assert all(unet.attn_processors[n] is before[n] for n in before)


def test_empty_mask_reproduces_original_attention(unet):
    """The processor is the plain SDPA computation when nothing is masked: on the SD-layout UNet
    and on a UNet2DModel whose attention blocks use group norm and a residual connection."""
    from diffusers import UNet2DModel

    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = _call(unet, x)
    with ed.key_masking(unet, torch.zeros(1, 1, 16, 16), num_masked_steps=1):
        out = _call(unet, x)
    assert torch.allclose(out, ref, atol=1e-6)
    torch.manual_seed(0)
    u2 = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                     norm_num_groups=4, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                     up_block_types=("AttnUpBlock2D", "UpBlock2D")).eval()
    y = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref2 = u2(y, 10).sample
        with ed.key_masking(u2, torch.zeros(1, 1, 16, 16), num_masked_steps=1) as ctrl:
            out2 = u2(y, 10).sample
        with ed.key_masking(u2, _mask(), num_masked_steps=1):
            masked2 = u2(y, 10).sample
    assert ctrl.step == 0 and torch.allclose(out2, ref2, atol=1e-6)
    assert not torch.allclose(masked2, ref2, atol=1e-5)


def test_masking_only_during_first_k_steps(unet):
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = [_call(unet, x, t) for t in (900, 700, 500)]
    with ed.key_masking(unet, _mask(), num_masked_steps=2) as ctrl:
        out = [_call(unet, x, t) for t in (900, 700, 500)]
    assert ctrl.step == 2
    assert not torch.allclose(out[0], ref[0], atol=1e-5) and not torch.allclose(out[1], ref[1], atol=1e-5)
    assert torch.allclose(out[2], ref[2], atol=1e-6)  # step 2 >= K: plain attention again


def test_all_masked_row_is_guarded(unet):
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with ed.key_masking(unet, torch.ones(1, 1, 16, 16), num_masked_steps=1) as ctrl:
        out = _call(unet, x)
    assert torch.isfinite(out).all() and ctrl.all_masked_rows > 0


def test_fuse_layers_and_shift():
    bg = torch.zeros(1, 4, 8, 8)
    fg = torch.ones(1, 4, 8, 8)
    m = torch.zeros(1, 1, 8, 8)
    m[..., 1:3, 1:3] = 1
    out = ed.fuse_layers(bg, [(fg, m, (2, 3))])
    assert out[..., 3:5, 4:6].eq(1).all() and out.sum() == 4 * 4
    assert ed.shift_layer(m, -1, -1)[..., 0:2, 0:2].eq(1).all()


def test_designedit_removal_keeps_outside_and_layers_fuse(unet):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=False)
    src = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    emb = torch.randn(1, 3, EMB, generator=torch.Generator().manual_seed(4))
    m = _mask()
    res = ed.designedit(unet, sched, src, m, num_inference_steps=4, mask_steps=3, blend_steps=4,
                        unet_kwargs={"encoder_hidden_states": emb})
    bg, traj = res["background"], res["trajectory"]
    assert len(traj) == 5 and bg.shape == src.shape
    # blended every step: outside the mask the background layer is the reconstruction exactly
    assert torch.equal(bg * (1 - m), traj[0] * (1 - m))
    assert not torch.allclose(bg * m, src * m, atol=1e-3)
    fg_mask = torch.zeros(1, 1, 16, 16)
    fg_mask[..., 2:5, 2:5] = 1
    res2 = ed.designedit(unet, sched, src, m, layers=[(src, fg_mask, (8, 8))], num_inference_steps=4,
                         mask_steps=3, blend_steps=3, unet_kwargs={"encoder_hidden_states": emb})
    assert res2["composite"].shape == src.shape and torch.isfinite(res2["composite"]).all()
    assert not torch.allclose(res2["composite"], res2["background"])


def test_masked_ddim_step_leaves_outside_unchanged(unet):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, clip_sample=False)
    sched.set_timesteps(10)
    t = sched.timesteps[3]
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    eps = _call(unet, x, int(t))
    m = torch.zeros(2, 1, 8, 8)  # coarser than the latents: resized (nearest)
    m[:, :, 2:6, 1:4] = 1
    out = ed.masked_ddim_step(sched, eps, t, x, m)
    full = torch.nn.functional.interpolate(m, size=(16, 16), mode="nearest").bool().expand_as(x)
    assert torch.equal(out[~full], x[~full])  # bit-identical outside the edit mask
    assert not torch.allclose(out[full], x[full])
    keep = torch.randn_like(x)
    out2 = ed.masked_ddim_step(sched, eps, t, x, m, keep_latents=keep)
    assert torch.equal(out2[~full], keep[~full])


def test_delta_mask_and_instruct_edit_outside_mask_is_source():
    from diffusers import DDIMScheduler

    ip2p = ed.tiny_sd_unet(in_channels=8, cross_attention_dim=EMB, seed=2)
    sched = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=False)
    g = torch.Generator().manual_seed(6)
    src = torch.randn(1, 4, 16, 16, generator=g)
    cond, uncond = torch.randn(1, 3, EMB, generator=g), torch.zeros(1, 3, EMB)
    mask, score = ed.delta_score_mask(ip2p, sched, src, cond, uncond, image_latents=src,
                                      generator=torch.Generator().manual_seed(0), quantile=0.8, dilate=0)
    assert mask.shape == (1, 1, 16, 16) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert 0.1 < mask.mean().item() < 0.3 and score.min() == 0 and score.max() == 1
    edited, m = ed.instruct_edit(ip2p, sched, src, cond, uncond, num_inference_steps=3,
                                 generator=torch.Generator().manual_seed(1),
                                 mask_kwargs={"quantile": 0.8, "dilate": 1})
    inside = m.bool().expand_as(src)
    assert torch.equal(edited[~inside], src[~inside])
    assert not torch.allclose(edited[inside], src[inside], atol=1e-3)
    # a plain 4-channel SD UNet works for the delta score too (no image condition)
    sd = ed.tiny_sd_unet(cross_attention_dim=EMB)
    d = ed.delta_score(sd, src, torch.tensor([500]), cond, uncond)
    assert d.shape == (1, 1, 16, 16) and (d >= 0).all()


# ---------------------------------------------------------------------------------------------
# item 4: latent-diffusion x4 super-resolution (artifacts.restoration.diffusion.ldsr)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("x4")
    pipe = ldsr.tiny_x4_upscaler()
    fc = ldsr.FrequencyCompensation(channels=4, bins=4)
    with torch.no_grad():
        fc.gain.fill_(0.1)
    pipe.frequency_compensation = fc
    pipe.save_pretrained(d)
    pipe.frequency_compensation = None
    return d, pipe


def test_loader_round_trip_and_layout_checks(saved, tmp_path):
    d, pipe = saved
    cfg = ldsr.check_x4_upscaler_dir(d)
    assert cfg["unet"]["in_channels"] == 7 and cfg["vae"]["scaling_factor"] == 0.08333
    loaded = ldsr.load_x4_upscaler(d)
    for name in ("unet", "vae"):
        a, b = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.frequency_compensation is not None
    assert torch.allclose(loaded.frequency_compensation.gain, torch.full((3, 4), 0.1))
    with pytest.raises(FileNotFoundError):
        ldsr.check_x4_upscaler_dir(tmp_path)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ValueError):
        ldsr.check_x4_upscaler_dir(tmp_path)


def test_x4_upscale_tiled(saved):
    _, pipe = saved
    up = ldsr.X4Upscaler(pipe, torch.randn(1, 3, 16, generator=torch.Generator().manual_seed(0)),
                         num_inference_steps=2)
    img = (np.random.default_rng(0).random((24, 20, 3)) * 255).astype(np.uint8)
    whole, _ = ldsr.upscale_tiled(up, img, tile=64)
    tiled, rec = ldsr.upscale_tiled(up, img, tile=8, overlap=4)
    assert whole.shape == tiled.shape == (96, 80, 3) and whole.dtype == np.uint8
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    neg = torch.zeros(1, 3, 16)
    a = pipe(x, up.prompt_embeds, neg, num_inference_steps=2, guidance_scale=5.0,
             generator=torch.Generator().manual_seed(0))
    assert a.shape == (1, 3, 96, 80) and 0 <= a.min() and a.max() <= 1
    with pytest.raises(ValueError):
        pipe(x, up.prompt_embeds, noise_level=351)


def test_frequency_compensation_identity_then_learns():
    from skimage import data

    img = data.astronaut().astype(np.float32) / 255
    crops = [img[y:y + 32, x:x + 32] for y in (100, 200, 300) for x in (100, 250)]
    clean = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    lr = torch.nn.functional.avg_pool2d(clean, 4)
    decoded = torch.nn.functional.interpolate(lr, size=(32, 32), mode="bilinear", align_corners=False)
    fc = ldsr.FrequencyCompensation(channels=8, bins=6)
    assert torch.allclose(fc(decoded, lr), decoded, atol=1e-5)  # identity at init
    losses = ldsr.fit_frequency_compensation(fc, decoded, clean, lr, steps=40, lr_rate=1e-2)
    assert losses[-1] < 0.95 * losses[0]  # seeded: 0.0410 -> 0.0365 when written
