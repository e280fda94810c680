"""diffusion/difix: the one-step reference-guided restorer (tiny random networks, CPU)."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from artifacts.restoration.diffusion import difix_layout as L  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return L.build_tiny(0).eval()


@pytest.fixture(scope="module")
def restorer():
    from artifacts import create

    return create("diffusion/difix", weights="none", tiny=True, device="cpu")


def _images(seed=0, shape=(24, 40, 3), n=3):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def test_registered_needs_weights_and_eval_accepts_it():
    from artifacts.eval.refrepair import RefRepairAdapter
    from artifacts.registry import list_models, model_info

    assert "diffusion/difix" in list_models(task="diffusion")
    info = model_info("diffusion/difix")
    assert info.needs_weights and info.cls.item_kind == "view" and info.cls.recipe == "difix"
    assert "diffusion" in RefRepairAdapter.model_tasks


def test_output_depends_on_reference(restorer):
    img, ref_a, ref_b = _images()
    a = restorer.restore(img, refs=[ref_a])
    b = restorer.restore(img, refs=[ref_b])
    again = restorer.restore(img, refs=[ref_a])
    assert a.image.shape == img.shape and a.image.dtype == np.uint8 and a.mask is None
    assert np.array_equal(a.image, again.image)  # deterministic
    assert not np.array_equal(a.image, b.image)  # the reference matters
    assert a.meta["views"] == 2 and a.meta["timestep"] == 199


def test_without_references_not_applicable(restorer):
    img, *_ = _images()
    assert restorer.restore(img).status.value == "not_applicable"


def test_one_fixed_timestep(tiny):
    seen = []
    hook = tiny.unet.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(args[1].clone()), with_kwargs=True)
    try:
        with torch.no_grad():
            tiny(torch.rand(2, 3, 3, 32, 32) * 2 - 1)
            tiny(torch.rand(1, 2, 3, 32, 32) * 2 - 1)
    finally:
        hook.remove()
    assert len(seen) == 2  # one UNet call per restoration: one step
    assert all(t.unique().tolist() == [199] for t in seen)
    assert [t.numel() for t in seen] == [6, 2]  # every view of every sample at t = 199


def test_references_joined_in_self_attention(tiny):
    """The target's UNet output changes with a reference's latent only when attn1 sees all views."""
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(2, 4, 8, 8, generator=gen)
    z2 = z.clone()
    z2[1, :, 3, 3] += 5.0  # one token of the reference
    t = torch.full((2,), 199)
    cond = tiny.prompt_embeds.expand(2, -1, -1)
    outs = {}
    with torch.no_grad():
        for views in (2, 1):
            L.set_views(tiny.unet, views)
            outs[views] = [tiny.unet(x, t, encoder_hidden_states=cond).sample[0] for x in (z, z2)]
    assert (outs[2][0] - outs[2][1]).abs().max() > 1e-4  # joined: the reference reaches the target
    assert torch.allclose(outs[1][0], outs[1][1], atol=1e-6)  # per-view attention: it does not
    procs = tiny.unet.attn_processors
    assert all(isinstance(p, L.MultiViewAttnProcessor) for n, p in procs.items() if n.endswith("attn1.processor"))
    assert not any(isinstance(p, L.MultiViewAttnProcessor) for n, p in procs.items() if n.endswith("attn2.processor"))


def test_multiview_processor_is_attention_over_concatenated_tokens():
    from diffusers.models.attention_processor import Attention, AttnProcessor

    torch.manual_seed(0)
    attn = Attention(16, heads=2, dim_head=8)
    x = torch.randn(2 * 3, 5, 16)  # (b v) n c with b=2, v=3
    joined = x.reshape(2, 15, 16)
    attn.set_processor(AttnProcessor())
    want = attn(joined).reshape(6, 5, 16)
    for sdpa in (True, False):
        attn.set_processor(L.MultiViewAttnProcessor(3, sdpa=sdpa))
        assert torch.allclose(attn(x), want, atol=1e-5)


def test_official_layout_round_trip(tmp_path, tiny):
    from artifacts.restoration.diffusion.restorer import load_state

    src = L.build_tiny(0)  # same base weights as `fresh` below, then "trained" where Difix trains
    with torch.no_grad():
        for name, p in src.named_parameters():  # the whole UNet, the VAE's LoRA and skip convolutions
            if name.startswith("unet.") or "lora" in name or "skip" in name:
                p.add_(torch.randn_like(p) * 0.01)
    sd = src.official_state(optimizer=torch.optim.AdamW(src.parameters()))
    assert set(L.CHECKPOINT_KEYS) <= set(sd)
    vae_keys = set(sd["state_dict_vae"])
    assert all("lora" in k or "skip" in k for k in vae_keys)
    assert "decoder.skip_conv_1.base_layer.weight" in vae_keys  # the skip convs are LoRA targets too
    assert "decoder.conv_in.lora_A.vae_skip.weight" in vae_keys and "decoder.conv_in.lora_B.vae_skip.weight" in vae_keys
    assert sd["rank_vae"] == 4 and "decoder.skip_conv_4" in sd["vae_lora_target_modules"]
    assert set(sd["state_dict_unet"]) == set(src.unet.state_dict())
    path = tmp_path / "model_1.pkl"
    torch.save(sd, path)
    fresh = L.build_tiny(0)
    fresh.load_official(load_state(path))
    for a, b in ((src.unet, fresh.unet), (src.vae, fresh.vae)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.rand(1, 2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(src.eval()(x), fresh.eval()(x))
    # strict: a missing or an unexpected key is an error
    broken = load_state(path)
    broken["state_dict_vae"].pop("decoder.skip_conv_2.base_layer.weight")
    with pytest.raises(ValueError, match="missing"):
        L.build_tiny(0).load_official(broken)
    broken = load_state(path)
    broken["state_dict_unet"]["not.a.key"] = torch.zeros(1)
    with pytest.raises(ValueError, match="unexpected"):
        L.build_tiny(0).load_official(broken)


def test_official_checkpoint_onto_a_local_base_folder(tmp_path):
    """base=DIR (diffusers layout) + a model_*.pkl whose UNet dict is partial, as one official
    variant saves it: given entries replace the base's, the rest stays the base's."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from artifacts import create

    torch.manual_seed(0)
    unet, vae = UNet2DConditionModel(**L.TINY_UNET), AutoencoderKL(**L.TINY_VAE)
    base = tmp_path / "sd-turbo"
    unet.save_pretrained(base / "unet")
    vae.save_pretrained(base / "vae")
    with pytest.raises(FileNotFoundError, match="prompt"):
        create("diffusion/difix", weights="none", base=str(base), device="cpu").network()
    prompt = torch.randn(*L.TINY_PROMPT)
    torch.save(prompt, base / "prompt_embeds.pt")
    src = L.build_from_base(str(base), None, prompt)
    with torch.no_grad():
        for name, p in src.named_parameters():
            if name.startswith("unet.") or "lora" in name or "skip" in name:
                p.add_(torch.randn_like(p) * 0.01)
    sd = src.official_state()
    sd["state_dict_unet"] = {k: v for k, v in sd["state_dict_unet"].items() if "conv_in" in k}
    torch.save(sd, tmp_path / "model_1.pkl")
    model = create("diffusion/difix", weights=str(tmp_path / "model_1.pkl"), base=str(base), device="cpu")
    net = model.network()
    assert torch.equal(net.unet.conv_in.weight, src.unet.conv_in.weight)  # from the checkpoint
    assert torch.equal(net.unet.conv_out.weight, unet.conv_out.weight)  # from the base folder
    own, want = net.vae.state_dict(), src.vae.state_dict()
    assert all(torch.equal(own[k], want[k]) for k in want)  # encoder/decoder from base, LoRA + skips from the file
    img, ref, _ = _images(6, (32, 32, 3))
    assert model.restore(img, refs=[ref]).image.shape == (32, 32, 3)


def test_checkpoint_trained_here_loads_through_the_registry(tmp_path):
    from artifacts import create

    src = L.build_tiny(3, lora_rank_vae=0).eval()
    path = tmp_path / "diffusion-difix.pkl"
    torch.save(src.official_state(arch=True), path)
    model = create("diffusion/difix", weights=str(path), device="cpu")
    img, ref, _ = _images(2, (32, 32, 3))
    res = model.restore(img, refs=[ref])
    x = torch.from_numpy(np.stack([img, ref])).permute(0, 3, 1, 2).float()[None] / 127.5 - 1
    with torch.no_grad():
        want = np.rint((src(x)[0, 0].numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
    assert np.array_equal(res.image, want)
    assert res.meta["weights"].startswith("file:")


def test_needs_weights_without_a_file(tmp_path, monkeypatch):
    from artifacts import create
    from artifacts.weights import WeightsNotFoundError

    monkeypatch.setenv("ARTIFACTS_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError):
        create("diffusion/difix", device="cpu")
    with pytest.raises(ValueError, match="tiny=True"):
        create("diffusion/difix", weights="none", device="cpu").network()


def test_gpu_options_accepted_and_ignored_on_cpu(restorer):
    from artifacts import create

    img, ref, _ = _images(4)
    fast = create("diffusion/difix", weights="none", tiny=True, device="cpu", dtype="bfloat16", channels_last=True,
                  compile=True, cuda_graphs=True, attention="sdpa")
    res = fast.restore(img, refs=[ref])
    assert res.meta["gpu_options_ignored"] == {"dtype": "bfloat16", "channels_last": True, "compile": True,
                                               "cuda_graphs": True}
    assert res.meta["dtype"] == "float32"
    assert np.array_equal(res.image, restorer.restore(img, refs=[ref]).image)
    math = create("diffusion/difix", weights="none", tiny=True, device="cpu", attention="math")
    diff = np.abs(math.restore(img, refs=[ref]).image.astype(int) - res.image.astype(int)).max()
    assert diff <= 1  # the explicit softmax and the sdpa kernel agree up to rounding
    with pytest.raises(ValueError, match="dtype"):
        create("diffusion/difix", weights="none", tiny=True, dtype="float8")


def test_reference_selection_picks_the_most_similar():
    from artifacts.restoration.diffusion.restorer import select_refs

    img, other, _ = _images(5)
    near = np.clip(img.astype(int) + 3, 0, 255).astype(np.uint8)
    assert select_refs(img, [other, near, other], 1) == [1]
    assert select_refs(img, [other, near], 1, "first") == [0]


def _tiny_json(tmp_path):
    from artifacts.io import save_image

    rng = np.random.default_rng(0)
    clean = (np.linspace(0, 255, 32)[None, :, None] * np.ones((32, 1, 3))).astype(np.uint8)
    deg = np.clip(clean.astype(int) + rng.integers(-40, 40, clean.shape), 0, 255).astype(np.uint8)
    for name, a in (("clean", clean), ("deg", deg), ("ref", clean[:, ::-1])):
        save_image(tmp_path / f"{name}.png", a)
    entry = {"image": str(tmp_path / "deg.png"), "target_image": str(tmp_path / "clean.png"),
             "ref_image": str(tmp_path / "ref.png"), "prompt": "remove degradation"}
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"train": {"a": entry}, "test": {"b": entry}}))
    return path


def test_difix_json_layout_is_read(tmp_path):
    from artifacts.train.diffusion import read_difix_json

    path = _tiny_json(tmp_path)
    (deg, clean, ref), = read_difix_json(path, "train")
    assert deg.shape == clean.shape == ref.shape == (32, 32, 3)
    assert read_difix_json(path, "test") and read_difix_json(path, "val") == []


@pytest.mark.slow
def test_training_recipe_runs_and_loads(tmp_path):
    from artifacts import create
    from artifacts.train import train

    rec = train("diffusion", "difix", str(tmp_path / "out"), options={"data": str(_tiny_json(tmp_path))},
                steps=6, crop=32, batch=2, lr=1e-3, log_every=1, progress=False, threads=1)
    assert rec["complete"] and rec["settings"]["steps"] == 6 and len(rec["log"]) == 6
    assert json.loads((tmp_path / "out" / "train.json").read_text())["sha256"] == rec["sha256"]
    assert np.mean([r["l2"] for r in rec["log"][-2:]]) < rec["log"][0]["l2"]  # the loss falls
    model = create("diffusion/difix", weights=rec["weights"], device="cpu")
    res = model.restore(str(tmp_path / "deg.png"), refs=[str(tmp_path / "ref.png")])
    assert res.image.shape == (32, 32, 3)
