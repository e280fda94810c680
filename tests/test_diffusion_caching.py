"""Step caching on tiny random UNets: interval 1 reproduces the uncached output exactly, reuse
skips the deep blocks, the wrappers are removed afterwards, and caching is off for one-step use."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from artifacts.restoration.diffusion.caching import StepCache, caching_applies  # noqa: E402


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(8, 16, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")).eval()


def _sample(unet, steps=6, cache=None, seed=0):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, clip_sample=False)
    sched.set_timesteps(steps)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x).prev_sample
    return x


def _count_calls(module):
    """Count real computations of ``module`` (a submodule of a block: a skipped block returns its
    cached output without calling its children; a hook on the block itself would fire anyway)."""
    calls = []
    h = module.register_forward_pre_hook(lambda m, a: calls.append(1))
    return calls, h


def test_interval_one_equals_uncached(unet):
    ref = _sample(unet)
    with StepCache(unet, interval=1, num_inference_steps=6) as c:
        out = _sample(unet)
    assert torch.equal(out, ref)
    assert not c.active  # nothing to reuse at interval 1: the UNet is not even wrapped


@pytest.mark.parametrize("correction", [None, "extrapolate"])
def test_reuse_skips_deep_blocks_and_restores(unet, correction):
    ref = _sample(unet)
    calls, h = _count_calls(unet.mid_block.resnets[0])
    outer, h2 = _count_calls(unet.up_blocks[-1].resnets[0])
    with StepCache(unet, interval=3, branch=1, correction=correction, num_inference_steps=6) as c:
        out = _sample(unet)
    h.remove(), h2.remove()
    assert c.stats()["full_steps"] == 2 and c.stats()["cached_steps"] == 4
    assert len(calls) == 2 and len(outer) == 6  # deep part twice, outer branch every step
    assert torch.isfinite(out).all() and not torch.equal(out, ref)
    rel = (torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref)).item()
    assert rel < 0.5
    for m in [unet, unet.mid_block, *unet.down_blocks, *unet.up_blocks]:
        assert "forward" not in m.__dict__  # wrappers removed
    assert torch.equal(_sample(unet), ref)


def test_branch_recomputes_more_levels(unet):
    deep, h = _count_calls(unet.up_blocks[0].resnets[0])
    mid_level, h2 = _count_calls(unet.up_blocks[1].resnets[0])
    with StepCache(unet, interval=2, branch=2, num_inference_steps=4):
        _sample(unet, steps=4)
    h.remove(), h2.remove()
    assert len(deep) == 2 and len(mid_level) == 4
    with pytest.raises(ValueError):
        StepCache(unet, branch=3)


def test_caching_off_for_one_step(unet):
    assert not caching_applies(1) and not caching_applies(4, one_step=True)
    assert caching_applies(4) and caching_applies(None) and not caching_applies(4, interval=1)
    for kw in ({"num_inference_steps": 1}, {"num_inference_steps": 30, "one_step": True}):
        with StepCache(unet, interval=3, **kw) as c:
            assert not c.active
            assert "forward" not in unet.__dict__ and "forward" not in unet.mid_block.__dict__
            ref = _sample(unet, steps=1)
        assert torch.equal(ref, _sample(unet, steps=1))
        assert c.stats()["full_steps"] == 0


def test_conditional_unet_two_calls_per_step_cached_per_call():
    """CFG run as two UNet calls per step (here of different batch): each call reuses its own
    features from the last full step, never the other call's."""
    from artifacts.restoration.diffusion.editing import tiny_sd_unet

    sd = tiny_sd_unet(cross_attention_dim=8)
    emb = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(1))
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(2))

    def run(calls):
        outs = []
        with torch.no_grad():
            for t in (900, 600, 300):
                for b in calls:
                    outs.append(sd(x[:b], t, encoder_hidden_states=emb[:b]).sample)
        return outs

    ref = run((2, 1))
    with StepCache(sd, interval=3, num_inference_steps=3) as c:
        out = run((2, 1))
    assert c.stats()["full_steps"] == 1 and c.stats()["cached_steps"] == 2
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])  # step 0: full
    assert not torch.equal(out[2], ref[2]) and not torch.equal(out[3], ref[3])  # reused
    with StepCache(sd, interval=3, num_inference_steps=3):
        alone = run((1,))
    assert torch.equal(out[3], alone[1]) and torch.equal(out[5], alone[2])
    with StepCache(sd, interval=3, num_inference_steps=3):
        with torch.no_grad():
            sd(x, 900, encoder_hidden_states=emb)
            y = sd(x[:1], 600, encoder_hidden_states=emb[:1]).sample  # shape differs from call 0
    assert torch.equal(y, sd(x[:1], 600, encoder_hidden_states=emb[:1]).sample.detach())


def test_explicit_schedule_runs_full_exactly_at_the_listed_steps(unet):
    """Non-uniform schedule: the deep part runs at steps 0, 1, 2 and 6 of 8 (and only there), the
    outer branch every step; the same count as uniform interval 2 gives another output."""
    from artifacts.restoration.diffusion.caching import uniform_full_steps

    deep_at, step = [], {"k": -1}
    h = unet.mid_block.resnets[0].register_forward_pre_hook(lambda m, a: deep_at.append(step["k"]))
    h2 = unet.conv_in.register_forward_pre_hook(lambda m, a: step.__setitem__("k", step["k"] + 1))
    with StepCache(unet, full_steps=[6, 2, 1], num_inference_steps=8) as c:
        out = _sample(unet, steps=8)
    h.remove(), h2.remove()
    assert deep_at == [0, 1, 2, 6]  # step 0 is always full
    st = c.stats()
    assert st["full_step_indices"] == [0, 1, 2, 6] and st["full_steps"] == 4 and st["cached_steps"] == 4
    assert st["schedule"] == [0, 1, 2, 6] and st["interval"] is None
    with StepCache(unet, full_steps=uniform_full_steps(8, 2), num_inference_steps=8) as u:
        uni = _sample(unet, steps=8)
    with StepCache(unet, interval=2, num_inference_steps=8) as u2:
        uni2 = _sample(unet, steps=8)
    assert u.stats()["full_step_indices"] == u2.stats()["full_step_indices"] == [0, 2, 4, 6]
    assert torch.equal(uni, uni2) and not torch.equal(out, uni)
    with StepCache(unet, full_steps=range(8), num_inference_steps=8) as everything:
        assert not everything.active  # every step full: nothing to reuse, UNet untouched


def test_schedule_from_measured_feature_changes(unet):
    from artifacts.restoration.diffusion.caching import feature_changes, schedule_from_changes

    ch = feature_changes(unet, lambda: _sample(unet, steps=8), branch=1)
    assert len(ch) == 8 and ch[0] == 0 and all(c > 0 for c in ch[1:])
    assert "forward" not in unet.__dict__ and not unet.up_blocks[1]._forward_hooks
    for n in (1, 3, 5, 8):
        s = schedule_from_changes(ch, n)
        assert len(s) == n and s[0] == 0 and s == sorted(set(s))
    # fast change at the end: the full steps crowd there
    assert schedule_from_changes([0, 0.01, 0.01, 0.01, 0.01, 0.5, 0.5, 0.5], 4) == [0, 5, 6, 7]
    assert schedule_from_changes([0, 0.5, 0.5, 0.01, 0.01, 0.01, 0.01, 0.01], 3) == [0, 1, 2]


def test_sensitivity_weighted_schedule_is_the_optimum(unet):
    """With per-step sensitivities the schedule minimises the modelled cost exactly (checked
    against brute force); sensitivity concentrated early pulls the full steps early."""
    import itertools
    import random

    from artifacts.restoration.diffusion.caching import reuse_sensitivity, schedule_from_changes

    def cost(full, f, sens):
        total, drift = 0.0, 0.0
        for k in range(1, len(f)):
            drift = 0.0 if k in full else drift + f[k]
            total += 0.0 if k in full else sens[k] / f[k] * drift
        return total

    rnd = random.Random(0)
    f = [0.0] + [rnd.uniform(0.01, 0.2) for _ in range(8)]
    sens = [0.0] + [rnd.uniform(0.0, 0.05) for _ in range(8)]
    for n_full in (2, 3, 5):
        got = schedule_from_changes(f, n_full, sensitivity=sens)
        best = min(([0, *c] for c in itertools.combinations(range(1, 9), n_full - 1)), key=lambda s: cost(s, f, sens))
        assert len(got) == n_full and cost(got, f, sens) == pytest.approx(cost(best, f, sens))
    early = [0, 0.5, 0.5, 0.5, 0.01, 0.01, 0.01, 0.01]
    assert schedule_from_changes([0] + [0.1] * 7, 4, sensitivity=early) == [0, 1, 2, 3]
    sens = reuse_sensitivity(unet, lambda: _sample(unet, steps=5), 5)
    assert len(sens) == 5 and sens[0] == 0 and max(sens) > 0
    assert "forward" not in unet.__dict__ and "forward" not in unet.mid_block.__dict__
