"""Step caching for multi-step diffusion samplers: DeepCache-style reuse of the deep UNet features,
with an optional ERTACache-style first-order rectification of the reused feature.

How it works
------------
A UNet's deep levels (the inner down blocks, the mid block and the inner up blocks) change slowly
from one denoising step to the next, while the outer level (the highest resolution) carries the
detail of the current input. DeepCache (Ma, Fang, Wang, "DeepCache: Accelerating Diffusion Models
for Free", CVPR 2024; code horseee/DeepCache, ``DeepCache/extension/deepcache.py`` at commit
62aef9e54a6c488dd7d252fc0e3063cfbba90aea) therefore runs the full UNet only every ``N`` steps
(``cache_interval``; uniform schedule: a full step when ``step_index % N == 0``) and, on the
steps in between, only the shallow branch: every block deeper than the chosen branch (and the mid
block) returns the output it produced at the last full step (``is_skip_step`` /
``wrap_block_forward`` in that file). Its branch id counts single layers (``cache_layer_id =
id % 3``, ``cache_block_id = id // 3``); here the granularity is a whole UNet level:
``branch=b`` recomputes ``down_blocks[:b]`` and ``up_blocks[-b:]`` (plus ``conv_in``,
``conv_out`` and the time embedding) and reuses the rest. ``b=1`` is the cheapest and closest to
DeepCache's default ``cache_branch_id=0``; a larger ``b`` recomputes more and changes the output
less. The step index is counted from the timesteps the UNet sees (a new timestep value starts a
new step), so classifier-free guidance run as one doubled batch or as two calls per step both
count right: the cache is kept per call index within a step (call 0, call 1, ...), and a call
without a cached counterpart of the same input shape runs in full.

ERTACache-style rectification (``correction="extrapolate"``)
-----------------------------------------------------------
ERTACache (Bytedance, "ERTACache: Error Rectification and Timesteps Adjustment for Efficient
Diffusion", arXiv 2508.21091; README of github.com/bytedance/ERTACache) splits the error of
caching into a *feature shift* error (the reused output is stale) and a *step amplification*
error, and corrects them with (1) an offline-calibrated reuse schedule found by residual error
profiling, (2) a trajectory-aware timestep adjustment and (3) a closed-form rectification that
approximates the additive error of the reused output as linear. What is implemented here is a
documented simplification of (3) only: the additive error of reusing the deep feature ``F`` from
the last full step ``t_b`` at a later timestep ``t`` is modelled as linear in ``t``, with the slope
measured between the last two full steps ``t_a, t_b``::

    F(t) ~= F(t_b) + gain * (t - t_b) / (t_b - t_a) * (F(t_b) - F(t_a))

No offline schedule search, no timestep adjustment; ``gain`` (default 1) scales the correction.
The first cached steps (before two full steps exist) reuse plainly. The cost is one axpy per
cached step on the cached feature; whether it helps depends on the model (see
``bench/diffusion_cache.py`` and ``docs/diffusion-editing.md`` for the measured curve).

One-step models
---------------
Caching needs steps to reuse across. It switches itself off (the UNet is left untouched) when
``num_inference_steps <= 1`` or ``one_step=True`` (e.g. SD-Turbo / Difix-style one-step restorers),
or ``interval <= 1``.

Usage::

    from artifacts.restoration.diffusion.caching import StepCache
    with StepCache(pipe.unet, interval=3, branch=1, num_inference_steps=50) as cache:
        image = pipe(prompt_embeds=..., num_inference_steps=50).images[0]
    print(cache.stats())

torch is imported lazily, inside the functions that need it.
"""
from __future__ import annotations

from typing import Any

__all__ = ["StepCache", "caching_applies"]


def caching_applies(num_inference_steps: int | None, one_step: bool = False, interval: int = 2) -> bool:
    """Whether step caching can do anything: more than one step, not a one-step model, interval > 1."""
    if one_step or interval <= 1:
        return False
    return num_inference_steps is None or int(num_inference_steps) > 1


def _timestep_key(args: tuple, kwargs: dict) -> float | None:
    t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
    if t is None:
        return None
    try:
        import torch

        if isinstance(t, torch.Tensor):
            return float(t.flatten()[0].item()) if t.numel() else None
    except ImportError:  # pragma: no cover
        pass
    return float(t)


class StepCache:
    """DeepCache-style feature reuse for a diffusers ``UNet2DModel`` / ``UNet2DConditionModel``.

    Parameters
    ----------
    unet : the UNet (anything with ``down_blocks``, ``mid_block``, ``up_blocks``).
    interval : full UNet pass every ``interval`` steps (1 = never reuse: output identical).
    branch : number of outer UNet levels recomputed on cached steps (1 .. len(down_blocks) - 1).
    correction : ``None`` (plain reuse) or ``"extrapolate"`` (ERTACache-style linear
        rectification of the reused feature, see the module docstring).
    gain : scale of the rectification.
    num_inference_steps, one_step : caching is off for one-step use (see :func:`caching_applies`).

    Use as a context manager (wraps on enter, restores the original ``forward`` methods on exit)
    or call :meth:`enable` / :meth:`disable`. :meth:`stats` counts full and cached steps.
    """

    def __init__(self, unet, interval: int = 3, branch: int = 1, correction: str | None = None,
                 gain: float = 1.0, num_inference_steps: int | None = None, one_step: bool = False):
        n = len(unet.up_blocks)
        if not 1 <= branch <= n - 1:
            raise ValueError(f"branch must be in 1..{n - 1} for a UNet with {n} levels, got {branch}")
        if correction not in (None, "extrapolate"):
            raise ValueError(f"correction must be None or 'extrapolate', got {correction!r}")
        self.unet = unet
        self.interval = int(interval)
        self.branch = int(branch)
        self.correction = correction
        self.gain = float(gain)
        self.active = caching_applies(num_inference_steps, one_step, self.interval)
        self._wrapped: list = []
        self.reset()

    # -- state -----------------------------------------------------------------------------
    def reset(self) -> None:
        self._step = -1
        self._call = 0  # index of the UNet call within the current step (CFG may call twice)
        self._last_t: float | None = None
        self._step_full = True
        self._full = True  # whether the current call runs in full
        self._cache: dict[tuple[int, int], Any] = {}  # (call, block) -> output of the last full step
        self._shapes: dict[int, tuple] = {}  # call -> input shape at the last full step
        self._history: dict[int, list] = {}  # call -> [(t, feature)] of the last two full steps
        self._t: float | None = None
        self.full_steps = 0
        self.cached_steps = 0

    def stats(self) -> dict:
        return {"active": self.active, "interval": self.interval, "branch": self.branch,
                "correction": self.correction, "full_steps": self.full_steps,
                "cached_steps": self.cached_steps}

    # -- wrapping --------------------------------------------------------------------------
    def _skipped_blocks(self):
        u, b = self.unet, self.branch
        n = len(u.up_blocks)
        blocks = list(u.down_blocks)[b:]
        if getattr(u, "mid_block", None) is not None:
            blocks.append(u.mid_block)
        ups = list(u.up_blocks)[: n - b]
        return blocks + ups, ups[-1]

    def enable(self) -> "StepCache":
        if not self.active or self._wrapped:
            return self
        self.reset()
        skipped, feature_block = self._skipped_blocks()
        unet_fwd = self.unet.forward

        def unet_forward(*args, **kwargs):
            sample = args[0] if args else kwargs["sample"]
            t = _timestep_key(args, kwargs)
            if t is None or t != self._last_t:
                self._step += 1
                self._call = 0
                self._last_t = t
                self._t = t
                self._step_full = self._step % self.interval == 0 or not self._cache
                self.full_steps += self._step_full
                self.cached_steps += not self._step_full
            else:
                self._call += 1
            # a call without a matching cached call (another batch, an extra call) runs in full
            self._full = self._step_full or self._shapes.get(self._call) != tuple(sample.shape)
            if self._full:
                self._shapes[self._call] = tuple(sample.shape)
            return unet_fwd(*args, **kwargs)

        self._install(self.unet, unet_forward)
        for i, block in enumerate(skipped):
            self._install(block, self._block_forward(i, block.forward, block is feature_block))
        return self

    def _install(self, module, fn) -> None:
        had_own = "forward" in module.__dict__
        self._wrapped.append((module, module.__dict__.get("forward"), had_own))
        module.forward = fn

    def _block_forward(self, key: int, original, is_feature: bool):
        def forward(*args, **kwargs):
            ck = (self._call, key)
            if self._full:
                out = original(*args, **kwargs)
                self._cache[ck] = out
                if is_feature and self.correction is not None:
                    self._history[self._call] = (self._history.get(self._call, []) + [(self._t, out)])[-2:]
                return out
            out = self._cache[ck]
            if is_feature and self.correction == "extrapolate":
                out = self._rectify(out, self._history.get(self._call, []))
            return out

        return forward

    def _rectify(self, out, history):
        if len(history) < 2 or self._t is None:
            return out
        (ta, fa), (tb, fb) = history
        if ta is None or tb is None or ta == tb:
            return out
        w = self.gain * (self._t - tb) / (tb - ta)
        if isinstance(fb, tuple):
            return tuple(b + w * (b - a) if hasattr(b, "shape") else b for a, b in zip(fa, fb))
        return fb + w * (fb - fa)

    def disable(self) -> None:
        for module, fn, had_own in reversed(self._wrapped):
            if had_own:
                module.forward = fn
            else:
                del module.forward
        self._wrapped = []
        self._cache = {}
        self._history = {}

    def __enter__(self) -> "StepCache":
        return self.enable()

    def __exit__(self, *exc) -> bool:
        self.disable()
        return False
