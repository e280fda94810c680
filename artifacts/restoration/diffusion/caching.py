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

Non-uniform schedules (``full_steps=[...]``)
--------------------------------------------
DeepCache's paper also gives a non-uniform 1:N strategy: full steps placed more densely where
they matter (in its code, sampled around a ``center`` step with a power law). Here the schedule
is explicit: ``full_steps`` lists the step indices (0-based, in sampling order) that run the full
UNet; every other step reuses (step 0 always runs in full: there is nothing to reuse yet).
:func:`uniform_full_steps` gives the uniform schedule's steps for comparison at the same count.
Two ways to pick them, calibrated offline on other inputs than the ones sampled:

* :func:`feature_changes` measures the relative change from step to step of the deep feature
  caching reuses (or of the UNet output when that feature is stale); :func:`schedule_from_changes`
  without ``sensitivity`` splits the steps so that the change accumulated since the last full
  step stays below the smallest threshold possible (dense where the feature moves fast). On the
  bench model this is *worse* than uniform: the feature moves fastest at the last steps, but the
  output is most sensitive to reuse at the first ones.
* :func:`reuse_sensitivity` measures, per step, the change of the final output when that step
  alone reuses (one sampling run per step, a one-off cost); :func:`schedule_from_changes` with
  ``sensitivity`` then models reusing full step ``s``'s feature at step ``k`` as costing
  ``sensitivity_k / f_k * (f_(s+1) + ... + f_k)`` (feature drift times the output's sensitivity
  to it) and finds the schedule of least summed cost by dynamic programming. This is the one the
  bench reports (``bench/diffusion_cache.py --nonuniform``).

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

__all__ = ["StepCache", "caching_applies", "feature_changes", "reuse_sensitivity", "schedule_from_changes",
           "uniform_full_steps"]


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
    full_steps : explicit schedule instead of ``interval``: the step indices (0-based) that run in
        full; the others reuse (non-uniform schedules, see :func:`schedule_from_changes`).
    branch : number of outer UNet levels recomputed on cached steps (1 .. len(down_blocks) - 1).
    correction : ``None`` (plain reuse) or ``"extrapolate"`` (ERTACache-style linear
        rectification of the reused feature, see the module docstring).
    gain : scale of the rectification.
    num_inference_steps, one_step : caching is off for one-step use (see :func:`caching_applies`).

    Use as a context manager (wraps on enter, restores the original ``forward`` methods on exit)
    or call :meth:`enable` / :meth:`disable`. :meth:`stats` counts full and cached steps.
    """

    def __init__(self, unet, interval: int = 3, branch: int = 1, correction: str | None = None,
                 gain: float = 1.0, num_inference_steps: int | None = None, one_step: bool = False,
                 full_steps=None):
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
        self.schedule = None if full_steps is None else sorted({int(k) for k in full_steps} | {0})
        if self.schedule is not None and self.schedule[0] < 0:
            raise ValueError(f"full_steps must be step indices >= 0, got {full_steps}")
        reuses = self.interval > 1 if self.schedule is None else (
            num_inference_steps is None or sum(k < int(num_inference_steps) for k in self.schedule)
            < int(num_inference_steps))
        self.active = reuses and caching_applies(num_inference_steps, one_step, 2)
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
        self.full_step_indices: list[int] = []

    def stats(self) -> dict:
        return {"active": self.active, "interval": None if self.schedule else self.interval,
                "schedule": self.schedule, "branch": self.branch, "correction": self.correction,
                "full_steps": self.full_steps, "cached_steps": self.cached_steps,
                "full_step_indices": list(self.full_step_indices)}

    def _is_full_step(self, k: int) -> bool:
        if self.schedule is not None:
            return k in self.schedule
        return k % self.interval == 0

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
                self._step_full = self._is_full_step(self._step) or not self._cache
                self.full_steps += self._step_full
                if self._step_full:
                    self.full_step_indices.append(self._step)
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


def uniform_full_steps(num_inference_steps: int, interval: int) -> list[int]:
    """The full steps of the uniform schedule (every ``interval``-th step from 0)."""
    return list(range(0, int(num_inference_steps), max(1, int(interval))))


def feature_changes(unet, run, branch: int = 1, measure: str = "feature") -> list[float]:
    """Run ``run()`` (one sampling loop calling ``unet``) once uncached and return, per step, how
    much reusing the previous step's deep feature would cost (entry 0 is 0; first UNet call of
    each step; a step is a new timestep value, as in :class:`StepCache`):

    ``measure="feature"``: the relative L2 change ``||F_k - F_(k-1)|| / ||F_(k-1)||`` of the deep
    feature caching reuses (the output of the last skipped up block for ``branch``).
    ``measure="output"``: the relative L2 change of the UNet's output at step ``k`` when that
    feature is replaced by step ``k-1``'s (one extra UNet pass per step during calibration).
    """
    import torch

    n = len(unet.up_blocks)
    if not 1 <= branch <= n - 1:
        raise ValueError(f"branch must be in 1..{n - 1} for a UNet with {n} levels, got {branch}")
    if measure not in ("feature", "output"):
        raise ValueError(f"measure must be 'feature' or 'output', got {measure!r}")
    block = list(unet.up_blocks)[n - branch - 1]
    state: dict = {"t": None, "feature": None, "replace": None}
    out: list[float] = []
    fwd = unet.forward

    def _tensor(x):
        x = getattr(x, "sample", x)
        return x[0] if isinstance(x, tuple) else x

    def _rel(a, b) -> float:
        return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp_min(1e-12))

    def unet_forward(*args, **kwargs):
        t = _timestep_key(args, kwargs)
        new = t is None or t != state["t"]
        state["t"] = t
        prev = state["feature"]
        result = fwd(*args, **kwargs)  # the hook keeps this call's feature in state["last"]
        if new:
            feat = _tensor(state["last"])
            if prev is None:
                out.append(0.0)
            elif measure == "feature":
                out.append(_rel(feat, prev))
            else:
                state["replace"] = True
                try:
                    stale = fwd(*args, **kwargs)
                finally:
                    state["replace"] = None
                out.append(_rel(_tensor(stale).float(), _tensor(result).float()))
            state["feature"] = feat.detach().float().clone()
            state["prev_raw"] = state["last_raw"]
        return result

    def hook(_module, _inputs, output):
        if state["replace"] is not None:
            return state.get("prev_raw")
        state["last"] = output
        state["last_raw"] = output
        return None

    handle = block.register_forward_hook(hook)
    had_own = "forward" in unet.__dict__
    own = unet.__dict__.get("forward")
    unet.forward = unet_forward
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
        if had_own:
            unet.forward = own
        else:
            del unet.forward
    return out


def _greedy_split(changes: list[float], tau: float) -> list[int]:
    """Full at step 0, then at every step where the change accumulated since the last full step
    (that step's change included) would exceed ``tau``."""
    full, acc = [0], 0.0
    for k in range(1, len(changes)):
        acc += changes[k]
        if acc > tau:
            full.append(k)
            acc = 0.0
    return full


def reuse_sensitivity(unet, run, num_inference_steps: int, branch: int = 1) -> list[float]:
    """Per step ``k``: the relative L2 change of ``run()``'s final output when step ``k`` alone
    reuses step ``k-1``'s deep features (``StepCache(full_steps=all but k)``); entry 0 is 0.
    ``run`` returns the sampled tensor. Costs ``num_inference_steps`` sampling runs: a one-off
    offline calibration (ERTACache profiles its reuse schedule offline in the same spirit)."""
    import torch

    n = int(num_inference_steps)
    with torch.no_grad():
        ref = run().float()
        out = [0.0]
        for k in range(1, n):
            with StepCache(unet, branch=branch, full_steps=[j for j in range(n) if j != k], num_inference_steps=n):
                o = run().float()
            out.append(float(torch.linalg.vector_norm(o - ref) / torch.linalg.vector_norm(ref).clamp_min(1e-12)))
    return out


def schedule_from_changes(changes, n_full: int, sensitivity=None) -> list[int]:
    """``n_full`` full-step indices (step 0 included) from per-step feature changes ``changes``
    (as :func:`feature_changes` returns).

    Without ``sensitivity``: the smallest threshold on the change accumulated between full steps
    that needs at most ``n_full`` of them (bisection, greedy split), topped up with the steps of
    largest change if the split needs fewer. Dense where the feature changes fast.

    With ``sensitivity`` (per step, as :func:`reuse_sensitivity` returns): reusing the feature of
    full step ``s`` at step ``k`` is modelled to cost ``w_k * (f_(s+1) + ... + f_k)`` with
    ``w_k = sensitivity_k / f_k`` (the output's sensitivity per unit of feature drift at step ``k``);
    the schedule minimising the summed cost is found exactly by dynamic programming."""
    f = [max(0.0, float(c)) for c in changes]
    n = len(f)
    n_full = max(1, min(int(n_full), n))
    if n_full == n:
        return list(range(n))
    if sensitivity is not None:
        return _optimal_schedule(f, [max(0.0, float(x)) for x in sensitivity], n_full)
    lo, hi = 0.0, sum(f[1:]) + 1e-12
    for _ in range(60):
        mid = (lo + hi) / 2
        if len(_greedy_split(f, mid)) > n_full:
            lo = mid
        else:
            hi = mid
    full = set(_greedy_split(f, hi))
    for k in sorted(range(1, n), key=lambda i: -f[i]):
        if len(full) >= n_full:
            break
        full.add(k)
    return sorted(full)


def _optimal_schedule(f: list[float], sens: list[float], n_full: int) -> list[int]:
    n = len(f)
    if len(sens) != n:
        raise ValueError(f"sensitivity has {len(sens)} steps, changes {n}")
    w = [sens[k] / f[k] if f[k] > 0 else 0.0 for k in range(n)]
    # seg[s][e]: cost of a segment whose full step is s and whose cached steps are s+1 .. e-1
    seg = [[0.0] * (n + 1) for _ in range(n)]
    for s in range(n):
        drift = cost = 0.0
        for k in range(s + 1, n):
            drift += f[k]
            cost += w[k] * drift
            seg[s][k + 1] = cost
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(n_full + 1)]  # best[m][e]: m segments covering steps 0 .. e-1
    arg = [[-1] * (n + 1) for _ in range(n_full + 1)]
    for e in range(1, n + 1):
        best[1][e] = seg[0][e]
    for m in range(2, n_full + 1):
        for e in range(m, n + 1):
            for s in range(m - 1, e):
                c = best[m - 1][s] + seg[s][e]
                if c < best[m][e]:
                    best[m][e], arg[m][e] = c, s
    full, e = [], n
    for m in range(n_full, 1, -1):
        s = arg[m][e]
        full.append(s)
        e = s
    return sorted([0] + full)
