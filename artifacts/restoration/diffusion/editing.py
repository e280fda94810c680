"""Latent editing on diffusers SD-family UNets: DesignEdit key masking + layer fusion, LatentEditor
delta-score masks with mask-restricted DDIM updates.

DesignEdit (Jia et al., "DesignEdit: Multi-Layered Latent Decomposition and Fusion for Unified &
Accurate Image Editing", arXiv 2403.14487, AAAI 2025; code design-edit/DesignEdit at commit
75d783f4c273cbb257c6f136cf270180b2dcf300, ``src/demo/model.py``, ``utils/sdxl.py``,
``utils/utils.py``). Facts used:

* **Key-masking self-attention.** In the self-attention of the layer being inpainted, the keys
  inside the removal mask are excluded, ``softmax(Q((1-M) o K)^T / sqrt(d)) V``, so the hole is
  filled from the surroundings and not from the object being removed. Only self-attention
  (``encoder_hidden_states is None``) is changed; the mask is resized to every layer's token grid;
  it is active for the first ``mask_time = [0, 40]`` of 50 DDIM steps (``register_attention_control``
  in model.py), on the background layer of the batch only (``idx = 1``). The official code
  multiplies the hidden states that feed ``to_k`` by ``(1 - M)`` (a zeroed key still gets weight
  ``exp(0)/Z``); this module's default ``mode="exclude"`` gives masked keys *exactly* zero weight
  (a boolean mask through ``scaled_dot_product_attention``); ``mode="zero_features"`` reproduces
  the official code's feature zeroing.
* **Removal mask.** The union of the object masks, dilated (``attend_mask``: square kernel of
  ``attend_scale`` = 20 px at 1024 px for removal, 30 for zoom/pan), resized to the 128x128 latent.
* **Multi-layer decomposition and fusion.** The source is DDIM-inverted (``utils/inversion.py``);
  the batch holds layers that start from the same inverted noise: 0 = reconstruction, 1 =
  background (object removed), 2 = canvas, 3.. = foreground layers. During ``blend_time = [0, 41]``
  the background layer is blended with the reconstruction outside the mask, ``x1 = x1 M + x0 (1-M)``
  (``LayerFusion.__call__``); at the end of the blend window each foreground layer is moved
  (shift / flip, ``mv_op``) and composited onto the background, ``canvas = bg (1-M_fg) + fg M_fg``
  (``mv_layer``), and denoising continues on the canvas. Here the reconstruction layer follows the
  inverted trajectory exactly (the official code approximates it with proximal guidance towards
  that trajectory, ``proximal_guidance`` in utils/sdxl.py).

LatentEditor (Khalid et al., "LatentEditor: Text Driven Local Editing of 3D Scenes", arXiv
2312.09313; its repository umarkhalidAI/LatentEditor at adfc3c2413ad15c92f642a3c23f1320a30c6566e
holds only the README, no code, so this follows the paper's description): a *delta module*
localises an instruction edit from the difference between the InstructPix2Pix noise predictions
with and without the instruction (both conditioned on the source image), and the edit is applied
only inside that mask. The same relevance-map idea is "Watch Your Steps" (Mirzaei et al., arXiv
2308.08947). How the difference becomes a mask follows the ProxEdit-style code in DesignEdit
(``prox_regularization`` in utils/sdxl.py: ``|eps_text - eps_uncond|`` thresholded at its 0.75
quantile, then dilated by a max-pool of radius 2); here the channel-mean absolute difference is
smoothed, min-max normalised per image and thresholded, then dilated.
InstructPix2Pix guidance (Brooks et al., arXiv 2211.09800, eq. 3): ``eps = eps(0, 0) +
s_I (eps(c_I, 0) - eps(0, 0)) + s_T (eps(c_I, c_T) - eps(c_I, 0))``; the image condition is the
source latent concatenated on the channel axis (8-channel UNet input).

Everything works with any diffusers ``UNet2DConditionModel`` (tiny random ones in the tests; a
real checkpoint through ``UNet2DConditionModel.from_pretrained(local_dir, subfolder="unet",
local_files_only=True)``) and, for the attention processor, ``UNet2DModel`` with attention
blocks. torch and diffusers are imported lazily.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterable, Sequence

__all__ = [
    "KeyMaskedAttnProcessor", "EditController", "key_masking", "token_grid", "resize_mask_to_grid",
    "ddim_invert", "shift_layer", "fuse_layers", "designedit", "delta_score", "delta_score_mask",
    "masked_ddim_step", "instruct_edit", "tiny_sd_unet",
]


# ---------------------------------------------------------------------------------------------
# mask geometry
# ---------------------------------------------------------------------------------------------
def token_grid(n_tokens: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) grid of an attention layer with ``n_tokens`` tokens in a UNet whose input is
    ``latent_hw``: each level halves the grid with ceil (stride-2 conv with padding 1)."""
    h, w = int(latent_hw[0]), int(latent_hw[1])
    while h * w > n_tokens:
        h, w = -(-h // 2), -(-w // 2)
    if h * w != n_tokens:
        raise ValueError(f"{n_tokens} tokens do not match a halving of the latent grid {latent_hw}")
    return h, w


def resize_mask_to_grid(mask, hw: tuple[int, int]):
    """Boolean ``(B, h, w)`` mask on a token grid: a token is masked if any mask pixel falls in its
    cell (adaptive max-pool; exact for integer ratios, conservative otherwise)."""
    import torch.nn.functional as F

    m = mask.float()
    if m.ndim == 3:
        m = m[:, None]
    return F.adaptive_max_pool2d(m, hw)[:, 0] > 0.5


# ---------------------------------------------------------------------------------------------
# key-masking self-attention (DesignEdit)
# ---------------------------------------------------------------------------------------------
def _timestep_value(args: tuple, kwargs: dict):
    t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
    if t is None:
        return None
    return float(t.flatten()[0]) if hasattr(t, "flatten") else float(t)


class EditController:
    """State shared by the key-masking processors: the mask, the step counter, the batch rows it
    applies to, and (optionally) a record of the attention probabilities for inspection.

    ``mask``: ``(B or 1, 1, H, W)`` at the UNet's input (latent) resolution, nonzero = excluded
    keys. ``num_masked_steps``: active during steps ``0 .. K-1`` (a step = a new timestep value seen
    by the UNet, counted by a forward pre-hook; :meth:`set_step` sets it by hand). ``apply_to``:
    batch indices whose self-attention is masked (``None`` = all), e.g. only the background layer.
    """

    def __init__(self, mask, num_masked_steps: int, apply_to: Sequence[int] | None = None,
                 mode: str = "exclude", record: bool = False):
        if mode not in ("exclude", "zero_features"):
            raise ValueError(f"mode must be 'exclude' or 'zero_features', got {mode!r}")
        m = mask if mask.ndim == 4 else mask[None] if mask.ndim == 3 else mask[None, None]
        self.mask = m
        self.latent_hw = tuple(m.shape[-2:])
        self.num_masked_steps = int(num_masked_steps)
        self.apply_to = None if apply_to is None else list(apply_to)
        self.mode = mode
        self.record = record
        self.records: list[dict] = []
        self.step = -1
        self._last_t = None
        self.all_masked_rows = 0  # rows where every key was masked (mask dropped for them)
        self._grid_cache: dict = {}

    @property
    def active(self) -> bool:
        return 0 <= self.step < self.num_masked_steps

    def set_step(self, step: int) -> None:
        self.step = int(step)

    def _pre_hook(self, module, args, kwargs):
        t = _timestep_value(args, kwargs)
        if t is None or t != self._last_t:
            self.step += 1
            self._last_t = t

    def key_keep(self, n_tokens: int, batch: int, device):
        """``(batch, n_tokens)`` bool, True = the key takes part. Rows outside ``apply_to`` keep
        all keys; a row whose every key would be masked keeps all keys (guard against an all
        ``-inf`` softmax row) and is counted in ``all_masked_rows``."""
        import torch

        key = (n_tokens, batch, str(device))
        if key in self._grid_cache:
            return self._grid_cache[key]
        hw = token_grid(n_tokens, self.latent_hw)
        masked = resize_mask_to_grid(self.mask.to(device), hw).reshape(self.mask.shape[0], -1)
        if masked.shape[0] == 1:
            masked = masked.expand(batch, -1)
        elif masked.shape[0] != batch:
            raise ValueError(f"mask batch {masked.shape[0]} does not match attention batch {batch}")
        keep = ~masked
        if self.apply_to is not None:
            rows = torch.zeros(batch, dtype=torch.bool, device=device)
            rows[[i % batch for i in self.apply_to]] = True
            keep = keep | ~rows[:, None]
        empty = ~keep.any(dim=1)
        if bool(empty.any()):
            self.all_masked_rows += int(empty.sum())
            keep = keep | empty[:, None]
        self._grid_cache[key] = keep
        return keep


class KeyMaskedAttnProcessor:
    """Self-attention processor with DesignEdit key masking; any other call (cross-attention, or
    outside the active steps) is plain scaled-dot-product attention, numerically the computation
    of diffusers' ``AttnProcessor2_0``."""

    def __init__(self, controller: EditController, name: str = ""):
        self.controller = controller
        self.name = name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):
        import torch
        import torch.nn.functional as F

        ctrl = self.controller
        is_self = encoder_hidden_states is None
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, seq_len, _ = hidden_states.shape if is_self else encoder_hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, seq_len, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if is_self:
            context = hidden_states
        elif attn.norm_cross:
            context = attn.norm_encoder_hidden_states(encoder_hidden_states)
        else:
            context = encoder_hidden_states

        masking = is_self and ctrl.active
        keep = ctrl.key_keep(seq_len, batch_size, hidden_states.device) if masking else None
        if masking and ctrl.mode == "zero_features":  # the official code: K = W_k((1 - M) o x)
            key = attn.to_k(context * keep[..., None].to(context.dtype))
        else:
            key = attn.to_k(context)
        value = attn.to_v(context)

        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        mask = attention_mask
        if masking and ctrl.mode == "exclude":
            kb = keep[:, None, None, :]  # (B, 1, 1, N): True = attend
            if mask is None:
                mask = kb
            else:
                if mask.dtype == torch.bool:  # to an additive bias before adding the key mask
                    mask = torch.zeros_like(mask, dtype=query.dtype).masked_fill(~mask, float("-inf"))
                bias = mask
                mask = bias.masked_fill(~kb, float("-inf"))
        scale = attn.scale
        if ctrl.record and masking:
            scores = (query @ key.transpose(-1, -2)) * scale
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
            probs = scores.softmax(dim=-1)
            ctrl.records.append({"name": self.name, "step": ctrl.step, "probs": probs.detach(),
                                 "keep": keep.detach()})
            out = probs @ value
        else:
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0,
                                                 is_causal=False, scale=scale)
        out = out.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _attention_modules(unet) -> dict:
    """``{name: Attention module}`` for every module with a swappable processor (works for
    ``UNet2DConditionModel`` and for ``UNet2DModel``, which has no ``attn_processors``)."""
    return {name: m for name, m in unet.named_modules()
            if hasattr(m, "set_processor") and hasattr(m, "processor")}


@contextlib.contextmanager
def key_masking(unet, mask, num_masked_steps: int = 40, apply_to: Sequence[int] | None = None,
                mode: str = "exclude", record: bool = False, layers: Iterable[str] | None = None):
    """Swap :class:`KeyMaskedAttnProcessor` into every self-attention layer of ``unet``
    (``Attention.is_cross_attention`` false; or only those whose name contains one of ``layers``)
    for the duration of the block; cross-attention keeps its processor. The original processor
    objects are put back on exit, also on error. Yields the :class:`EditController`."""
    ctrl = EditController(mask, num_masked_steps, apply_to=apply_to, mode=mode, record=record)
    wanted = None if layers is None else list(layers)
    modules = _attention_modules(unet)
    original = {name: m.processor for name, m in modules.items()}
    hook = unet.register_forward_pre_hook(ctrl._pre_hook, with_kwargs=True)
    try:
        for name, m in modules.items():
            if not getattr(m, "is_cross_attention", False) and (wanted is None or any(w in name for w in wanted)):
                m.set_processor(KeyMaskedAttnProcessor(ctrl, f"{name}.processor"))
        yield ctrl
    finally:
        hook.remove()
        for name, m in modules.items():
            if m.processor is not original[name]:
                m.set_processor(original[name])


# ---------------------------------------------------------------------------------------------
# DDIM inversion, layer fusion, DesignEdit removal / multi-layer editing
# ---------------------------------------------------------------------------------------------
def _eps(unet, x, t, unet_kwargs: dict | None):
    return unet(x, t, **(unet_kwargs or {})).sample


def _batched_kwargs(unet_kwargs: dict | None, batch: int) -> dict:
    """Repeat batch-1 tensors in ``unet_kwargs`` (e.g. ``encoder_hidden_states``) to ``batch``."""
    out = {}
    for k, v in (unet_kwargs or {}).items():
        if hasattr(v, "shape") and v.ndim >= 1 and v.shape[0] == 1 and batch > 1:
            v = v.expand(batch, *v.shape[1:])
        out[k] = v
    return out


def ddim_invert(unet, scheduler, latents, num_inference_steps: int, unet_kwargs: dict | None = None):
    """Deterministic DDIM inversion (eta = 0) of clean ``latents``. Returns the trajectory
    ``[x_0, x_1, ..., x_T]`` (length ``num_inference_steps + 1``; ``x_k`` is the latent at the
    k-th smallest timestep), so sampling step ``i`` (timesteps descending) starts from
    ``traj[n - i]`` and should land on ``traj[n - i - 1]``. As in DesignEdit's ``Inversion`` /
    prompt-to-prompt ``next_step``: eps is predicted at the target timestep from the current latent."""
    import torch

    scheduler.set_timesteps(num_inference_steps)
    ts = list(scheduler.timesteps.flip(0))
    ac = scheduler.alphas_cumprod
    final = getattr(scheduler, "final_alpha_cumprod", torch.tensor(1.0))
    x = latents
    traj = [x]
    prev = None
    with torch.no_grad():
        for t in ts:
            a_prev = final if prev is None else ac[int(prev)]
            a_t = ac[int(t)]
            eps = _eps(unet, x, t, unet_kwargs)
            x0 = (x - (1 - a_prev).sqrt() * eps) / a_prev.sqrt()
            x = a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps
            traj.append(x)
            prev = t
    return traj


def shift_layer(x, dy: int = 0, dx: int = 0, flip: Sequence[int] | None = None):
    """Move a latent (or mask) by whole latent pixels with zero fill, optionally flip dims
    (DesignEdit ``mv_op``: shift by ``scale * W``, then ``torch.flip``)."""
    import torch

    out = torch.zeros_like(x)
    H, W = x.shape[-2:]
    ys, yd = (slice(0, H - dy), slice(dy, H)) if dy >= 0 else (slice(-dy, H), slice(0, H + dy))
    xs, xd = (slice(0, W - dx), slice(dx, W)) if dx >= 0 else (slice(-dx, W), slice(0, W + dx))
    out[..., yd, xd] = x[..., ys, xs]
    if flip:
        out = torch.flip(out, dims=list(flip))
    return out


def fuse_layers(background, layers: Sequence[tuple]):
    """Composite foreground layers onto a background latent: for each ``(latent, mask[, (dy, dx)
    [, flip]])`` in order, ``canvas = canvas (1 - M') + fg' M'`` with ``fg', M'`` moved
    (DesignEdit ``mv_layer``)."""
    canvas = background
    for layer in layers:
        fg, m = layer[0], layer[1].to(background.dtype)
        dy, dx = layer[2] if len(layer) > 2 and layer[2] is not None else (0, 0)
        flip = layer[3] if len(layer) > 3 else None
        fg, m = shift_layer(fg, dy, dx, flip), shift_layer(m, dy, dx, flip)
        canvas = canvas * (1 - m) + fg * m
    return canvas


def designedit(unet, scheduler, source_latents, remove_mask, layers: Sequence[tuple] = (),
               num_inference_steps: int = 50, mask_steps: int = 40, blend_steps: int = 41,
               unet_kwargs: dict | None = None, mode: str = "exclude", trajectory=None):
    """DesignEdit removal / multi-layer editing on latents.

    ``source_latents`` ``(1, C, h, w)`` (VAE latents of the image, scaled); ``remove_mask``
    ``(1, 1, h, w)`` in {0, 1} at latent resolution (dilate it first, see the module docstring);
    ``layers``: foreground layers ``(source_latents_fg, mask_fg, (dy, dx)[, flip])`` composited
    on the background after the blend window (empty = plain removal). Returns a dict with
    ``background`` (object removed), ``composite`` (background + moved layers; equals
    ``background`` when there are no layers), ``reconstruction`` and the inversion ``trajectory``.
    """
    import torch

    n = num_inference_steps
    traj = trajectory or ddim_invert(unet, scheduler, source_latents, n, unet_kwargs)
    fg_trajs = [ddim_invert(unet, scheduler, lay[0], n, unet_kwargs) for lay in layers]
    scheduler.set_timesteps(n)
    m = (remove_mask > 0.5).to(source_latents.dtype)
    # The reconstruction layer is the inverted trajectory itself, so only the background layer
    # (and, after fusion, the canvas) is denoised: one UNet row instead of DesignEdit's batch.
    x = traj[-1].clone()
    kw = _batched_kwargs(unet_kwargs, 1)
    fuse_at = max(0, min(blend_steps, n) - 1) if layers else None
    k = min(mask_steps, fuse_at + 1) if layers else mask_steps  # never mask the canvas row
    fused = False
    with torch.no_grad(), key_masking(unet, m, num_masked_steps=k, apply_to=[0], mode=mode):
        for i, t in enumerate(scheduler.timesteps):
            x = scheduler.step(_eps(unet, x, t, kw), t, x).prev_sample
            if fused:
                continue
            if i < blend_steps:  # outside the mask: the source trajectory
                x = x * m + traj[n - i - 1] * (1 - m)
            if i == fuse_at:
                fgs = [(ft[n - i - 1],) + tuple(lay[1:]) for ft, lay in zip(fg_trajs, layers)]
                x = torch.cat([x, fuse_layers(x, fgs)])  # from here on: background, canvas
                kw = _batched_kwargs(unet_kwargs, 2)
                fused = True
    return {"background": x[0:1], "composite": x[-1:], "reconstruction": traj[0], "trajectory": traj}


# ---------------------------------------------------------------------------------------------
# LatentEditor: delta-score mask and mask-restricted DDIM updates
# ---------------------------------------------------------------------------------------------
def _unet_input(noisy, image_latents):
    import torch

    return noisy if image_latents is None else torch.cat([noisy, image_latents], dim=1)


def delta_score(unet, noisy_latents, timestep, cond_embeds, uncond_embeds, image_latents=None):
    """Channel-mean ``|eps(z_t, c_I, c_T) - eps(z_t, c_I, 0)|``, shape ``(B, 1, h, w)``: where the
    instruction changes the prediction. ``image_latents`` (InstructPix2Pix image condition) is
    concatenated on channels; ``None`` for a plain 4-channel SD UNet."""
    import torch

    b = noisy_latents.shape[0]
    inp = _unet_input(noisy_latents, image_latents)
    emb = torch.cat([cond_embeds.expand(b, *cond_embeds.shape[1:]),
                     uncond_embeds.expand(b, *uncond_embeds.shape[1:])])
    with torch.no_grad():
        eps = unet(torch.cat([inp, inp]), timestep, encoder_hidden_states=emb).sample
    eps_c, eps_u = eps.chunk(2)
    return (eps_c - eps_u).abs().mean(dim=1, keepdim=True)


def _gaussian_blur(x, sigma: float):
    import torch
    import torch.nn.functional as F

    if sigma <= 0:
        return x
    r = max(1, int(math.ceil(2 * sigma)))
    g = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))


def delta_score_mask(unet, scheduler, source_latents, cond_embeds, uncond_embeds, image_latents=None,
                     timesteps: Sequence[int] | None = None, quantile: float = 0.75,
                     threshold: float | None = None, sigma: float = 1.0, dilate: int = 1,
                     generator=None):
    """LatentEditor-style edit mask at latent resolution.

    The source latents are noised to each of ``timesteps`` (default: 3 timesteps at 30/50/70 % of
    the schedule) with seeded noise, the delta score (:func:`delta_score`) is averaged over them,
    Gaussian-smoothed (``sigma`` latent pixels), min-max normalised per image and thresholded
    (``threshold`` on the normalised score, or the per-image ``quantile``), then dilated by a
    max-pool of radius ``dilate``. Returns ``(mask (B, 1, h, w) float {0, 1}, score in [0, 1])``.
    For InstructPix2Pix, ``image_latents`` is the (unscaled-mode) image condition, usually the
    source latents themselves.
    """
    import torch
    import torch.nn.functional as F

    T = scheduler.config.num_train_timesteps
    ts = timesteps or [int(T * f) for f in (0.3, 0.5, 0.7)]
    acc = None
    for t in ts:
        noise = torch.randn(source_latents.shape, generator=generator, dtype=source_latents.dtype)
        tt = torch.tensor([int(t)])
        noisy = scheduler.add_noise(source_latents, noise, tt)
        d = delta_score(unet, noisy, tt, cond_embeds, uncond_embeds, image_latents)
        acc = d if acc is None else acc + d
    s = _gaussian_blur(acc / len(ts), sigma)
    lo = s.amin(dim=(2, 3), keepdim=True)
    hi = s.amax(dim=(2, 3), keepdim=True)
    s = (s - lo) / (hi - lo).clamp_min(1e-12)
    if threshold is None:
        thr = torch.quantile(s.flatten(1), quantile, dim=1).view(-1, 1, 1, 1)
    else:
        thr = torch.full((s.shape[0], 1, 1, 1), float(threshold), dtype=s.dtype)
    mask = (s > thr).to(s.dtype)
    if dilate > 0:
        mask = F.max_pool2d(mask, 2 * dilate + 1, stride=1, padding=dilate)
    return mask, s


def masked_ddim_step(scheduler, noise_pred, timestep, latents, mask, keep_latents=None, **step_kwargs):
    """One scheduler step applied only inside ``mask``: ``where(M, step(x_t), keep)`` with
    ``keep = keep_latents`` (the source trajectory at the previous timestep) or, if ``None``, the
    current ``latents`` unchanged. Outside the mask the result is bit-identical to ``keep``."""
    import torch
    import torch.nn.functional as F

    prev = scheduler.step(noise_pred, timestep, latents, **step_kwargs).prev_sample
    keep = latents if keep_latents is None else keep_latents
    m = mask
    if m.shape[-2:] != prev.shape[-2:]:
        m = F.interpolate(m.float(), size=prev.shape[-2:], mode="nearest")
    return torch.where(m.bool().expand_as(prev), prev, keep)


def instruct_edit(unet, scheduler, source_latents, cond_embeds, uncond_embeds,
                  num_inference_steps: int = 20, text_guidance: float = 7.5, image_guidance: float = 1.5,
                  mask=None, mask_kwargs: dict | None = None, generator=None, image_latents=None):
    """Instruction edit of ``source_latents`` with an InstructPix2Pix-style UNet (input channels =
    2 x latent channels), restricted to the delta-score mask (computed if ``mask`` is None).

    Sampling starts from seeded noise; every step is the InstructPix2Pix three-way guidance,
    followed by :func:`masked_ddim_step` whose outside-mask latents are the source noised with the
    *same* noise to the next timestep, and the source itself after the last step: the output
    equals ``source_latents`` exactly outside the mask. Returns ``(edited_latents, mask)``.
    ``image_latents``: the image condition (default ``source_latents``); diffusers'
    InstructPix2Pix pipeline conditions on the *unscaled* VAE mode latents while it denoises scaled
    latents, so with a real checkpoint pass ``image_latents = vae.encode(x).latent_dist.mode()``
    and ``source_latents = image_latents * vae.config.scaling_factor``.
    """
    import torch

    cond_img = source_latents if image_latents is None else image_latents
    if mask is None:
        mask, _ = delta_score_mask(unet, scheduler, source_latents, cond_embeds, uncond_embeds,
                                   image_latents=cond_img, generator=generator, **(mask_kwargs or {}))
    scheduler.set_timesteps(num_inference_steps)
    noise = torch.randn(source_latents.shape, generator=generator, dtype=source_latents.dtype)
    x = noise * scheduler.init_noise_sigma
    ts = scheduler.timesteps
    zeros = torch.zeros_like(cond_img)
    emb = torch.cat([cond_embeds, uncond_embeds, uncond_embeds])
    with torch.no_grad():
        for i, t in enumerate(ts):
            xi = scheduler.scale_model_input(x, t)
            inp = torch.cat([torch.cat([xi, cond_img], 1), torch.cat([xi, cond_img], 1),
                             torch.cat([xi, zeros], 1)])
            e_full, e_img, e_none = unet(inp, t, encoder_hidden_states=emb).sample.chunk(3)
            eps = e_none + image_guidance * (e_img - e_none) + text_guidance * (e_full - e_img)
            if i + 1 < len(ts):
                keep = scheduler.add_noise(source_latents, noise, ts[i + 1:i + 2])
            else:
                keep = source_latents
            x = masked_ddim_step(scheduler, eps, t, x, mask, keep_latents=keep)
    return x, mask


# ---------------------------------------------------------------------------------------------
# tiny models for tests and examples
# ---------------------------------------------------------------------------------------------
def tiny_sd_unet(in_channels: int = 4, cross_attention_dim: int = 16, sample_size: int = 16, seed: int = 0):
    """A tiny random ``UNet2DConditionModel`` in the SD layout (two levels, 8/16 channels, one
    transformer block per attention level): milliseconds per call at 16x16 latents on a CPU.
    ``in_channels=8`` gives an InstructPix2Pix-style UNet."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 16), norm_num_groups=4, cross_attention_dim=cross_attention_dim,
        attention_head_dim=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    ).eval()
