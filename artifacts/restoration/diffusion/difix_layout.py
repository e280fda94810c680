"""The Difix network on diffusers parts, and the official checkpoint layout (``diffusion/difix``).

Facts (read from the public code of nv-tlabs/Difix3D; the index searched here holds forks of it,
cited with the commits read: ``src/model.py`` as in cxzhou35/Difix3D@82858cb81f6c and
sinoyou/difix3d@53c033dc82b1, ``src/mv_unet.py`` as in ludekcizinsky/Difix3D@efdc53d9bbdd,
``src/dataset.py`` as in cxzhou35/Difix3D@4774306dc23a; the official README for the JSON layout,
the training command and the pipeline call ``timesteps=[199]``). Code here is written from those
facts, none is copied.

* **Base model:** SD-Turbo (``stabilityai/sd-turbo``): ``UNet2DConditionModel``, ``AutoencoderKL``
  and its scheduler config (read as a ``DDPMScheduler``), text encoder for the prompt
  "remove degradation". Here the prompt's embedding is given (no text encoder at run time).
* **One step at a fixed timestep:** ``timestep=199`` in the training command and the pipeline call
  (the ``Difix`` constructor defaults to 999; the released model and README use 199). The VAE latent
  of the input is treated as the noisy sample at that timestep, the UNet predicts the noise and the
  DDPM step with one inference step returns the clean-sample estimate
  ``x0 = (z - sqrt(1 - a_t) eps) / sqrt(a_t)`` (the DDPM step's variance term at ``prev_t < 0`` is
  ~1e-10 and left out here).
* **Reference views through self-attention:** the input is ``B x V x C x H x W`` (view 0 the
  target, views 1.. the references), flattened to ``(B V)`` for every per-view layer. In each
  ``BasicTransformerBlock`` the self-attention (``attn1``) runs on ``(b v) n d -> b (v n) d``, i.e.
  on the concatenated tokens of all views, and back; cross-attention (prompt) and the
  feed-forward stay per view. Here this is an attention processor on every ``attn1``
  (:class:`MultiViewAttnProcessor`): LayerNorm and the residual are per token, so reshaping inside
  the processor is the same computation.
* **VAE skip connections** (from img2img-turbo): the encoder keeps the input of each down block;
  the decoder adds ``skip_conv_i(act * gamma)`` (1x1, no bias; ``gamma = 1``) of the reversed list
  to the input of up block ``i``. For SD's VAE: ``skip_conv_1`` 512->512, ``_2`` 256->512,
  ``_3`` 128->512, ``_4`` 128->256; initialised to the constant 1e-5 when training from scratch.
* **VAE decoder LoRA:** a peft LoRA adapter named ``vae_skip`` (rank ``lora_rank_vae``, default 4;
  peft's default ``lora_alpha`` 8; ``init_lora_weights="gaussian"``) on every decoder module whose
  name ends with one of ``conv1 conv2 conv_in conv_shortcut conv conv_out skip_conv_1..4 to_k to_q
  to_v to_out.0``; the VAE encoder is frozen, the UNet trained in full.
* **Checkpoint (``model_*.pkl``, ``torch.save``):** ``{"vae_lora_target_modules": [names],
  "rank_vae": int, "state_dict_unet": the UNet state dict (in full in most copies; only the entries
  containing "lora" or "conv_in" in cxzhou35/Difix3D@82858cb81f6c), "state_dict_vae": the VAE state
  dict entries whose key contains "lora" or "skip", "optimizer": optimizer state}``. The official
  loader overwrites the base model's entries with those given, so a partial UNet dict loads onto
  a base folder (``partial_unet``); unknown keys or other shapes are errors. With peft, a
  wrapped layer's own weight is ``<name>.base_layer.weight`` and the adapter's are
  ``<name>.lora_A.vae_skip.weight`` / ``<name>.lora_B.vae_skip.weight`` (so the skip convs, LoRA
  targets themselves, appear as ``decoder.skip_conv_i.base_layer.weight``). This module builds the
  same key names without peft (:class:`LoraLayer`).

What is ours: ``"artifacts_arch"`` (UNet / VAE configs, scheduler betas, timestep, prompt
embedding) may be added to a checkpoint so that a model trained here loads without a base folder.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

ADAPTER = "vae_skip"
LORA_SUFFIXES = ("conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out", "skip_conv_1", "skip_conv_2",
                 "skip_conv_3", "skip_conv_4", "to_k", "to_q", "to_v", "to_out.0")
CHECKPOINT_KEYS = ("vae_lora_target_modules", "rank_vae", "state_dict_unet", "state_dict_vae", "optimizer")
PEFT_DEFAULT_ALPHA = 8

# --------------------------------------------------------------------------------------------
# Tiny random configs (tests, training from scratch on a CPU)
# --------------------------------------------------------------------------------------------
TINY_UNET = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                 attention_head_dim=2, norm_num_groups=8)
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=(8, 16, 32, 32),
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                norm_num_groups=4, sample_size=64)
TINY_PROMPT = (1, 8, 32)  # random prompt embedding: batch, tokens, cross_attention_dim
# SD-Turbo's scheduler betas (scaled_linear 0.00085 -> 0.012, 1000 steps): the default when none is given
SD_BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                prediction_type="epsilon")


# --------------------------------------------------------------------------------------------
# LoRA with peft's key names
# --------------------------------------------------------------------------------------------
class LoraLayer(nn.Module):
    """``base_layer`` + ``scaling * lora_B(lora_A(x))`` for a Conv2d or Linear, with the state-dict
    keys of a peft adapter (``lora_A.<adapter>.weight``)."""

    def __init__(self, base: nn.Module, rank: int, alpha: float = PEFT_DEFAULT_ALPHA, adapter: str = ADAPTER):
        super().__init__()
        self.base_layer, self.adapter, self.scaling = base, adapter, alpha / rank
        if isinstance(base, nn.Conv2d):
            a = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding, bias=False)
            b = nn.Conv2d(rank, base.out_channels, 1, 1, bias=False)
        elif isinstance(base, nn.Linear):
            a, b = nn.Linear(base.in_features, rank, bias=False), nn.Linear(rank, base.out_features, bias=False)
        else:
            raise TypeError(f"LoRA wraps Conv2d or Linear, not {type(base).__name__}")
        nn.init.normal_(a.weight, std=1.0 / rank)  # peft's "gaussian" init
        nn.init.zeros_(b.weight)
        self.lora_A, self.lora_B = nn.ModuleDict({adapter: a}), nn.ModuleDict({adapter: b})

    def forward(self, x, *args, **kwargs):
        return self.base_layer(x) + self.lora_B[self.adapter](self.lora_A[self.adapter](x)) * self.scaling


def lora_targets(vae: nn.Module) -> list[str]:
    """The official target list: decoder modules whose name ends with one of :data:`LORA_SUFFIXES`."""
    return [n for n, m in vae.named_modules() if "decoder" in n and any(n.endswith(s) for s in LORA_SUFFIXES)
            and isinstance(m, (nn.Conv2d, nn.Linear))]


def add_lora(vae: nn.Module, targets: list[str], rank: int) -> None:
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = vae.get_submodule(parent_name)
        base = parent.get_submodule(child)
        if isinstance(base, LoraLayer):
            continue
        wrapped = LoraLayer(base, rank)
        if isinstance(parent, nn.ModuleList) or child.isdigit():
            parent[int(child)] = wrapped
        else:
            setattr(parent, child, wrapped)


# --------------------------------------------------------------------------------------------
# VAE skip connections
# --------------------------------------------------------------------------------------------
def skip_channels(vae) -> list[tuple[int, int]]:
    """(in, out) of ``skip_conv_1..n``: the encoder's down-block inputs, reversed, into the
    decoder's up-block inputs."""
    ch = list(vae.config.block_out_channels)
    enc = [ch[0]] + ch[:-1]  # input of each down block
    rev = ch[::-1]
    dec = [rev[0]] + rev[:-1]  # input of each up block
    return list(zip(enc[::-1], dec))


def add_skip_convs(vae, init: float | None = 1e-5) -> None:
    for i, (cin, cout) in enumerate(skip_channels(vae), start=1):
        conv = nn.Conv2d(cin, cout, 1, 1, bias=False)
        if init is not None:
            nn.init.constant_(conv.weight, init)
        setattr(vae.decoder, f"skip_conv_{i}", conv)
    vae.decoder.gamma = 1.0


def vae_encode(vae, x: torch.Tensor, sample: bool = False, generator=None) -> tuple[torch.Tensor, list]:
    """Latent (before the scaling factor) and the encoder's down-block inputs."""
    enc = vae.encoder
    h = enc.conv_in(x)
    acts = []
    for block in enc.down_blocks:
        acts.append(h)
        h = block(h)
    h = enc.conv_act(enc.conv_norm_out(enc.mid_block(h)))
    h = enc.conv_out(h)
    if getattr(vae, "quant_conv", None) is not None:
        h = vae.quant_conv(h)
    mean, logvar = h.chunk(2, dim=1)
    if sample:
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        mean = mean + std * torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean, acts


def vae_decode(vae, z: torch.Tensor, acts: list) -> torch.Tensor:
    dec = vae.decoder
    if getattr(vae, "post_quant_conv", None) is not None:
        z = vae.post_quant_conv(z)
    h = dec.mid_block(dec.conv_in(z), None)
    for i, block in enumerate(dec.up_blocks):
        skip = getattr(dec, f"skip_conv_{i + 1}")
        h = block(h + skip(acts[::-1][i] * dec.gamma), None)
    return dec.conv_out(dec.conv_act(dec.conv_norm_out(h)))


# --------------------------------------------------------------------------------------------
# Reference views joined in self-attention
# --------------------------------------------------------------------------------------------
class MultiViewAttnProcessor:
    """Self-attention over the tokens of all ``num_views`` views of a sample (batch laid out
    ``(b v)``); ``num_views=1`` is plain per-view attention. ``sdpa``: torch's
    ``scaled_dot_product_attention`` kernel, else the explicit softmax (same result)."""

    def __init__(self, num_views: int = 1, sdpa: bool = True):
        self.num_views, self.sdpa = int(num_views), bool(sdpa)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("MultiViewAttnProcessor is for self-attention without a mask")
        residual, spatial = hidden_states, hidden_states.ndim == 4
        if spatial:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        bv, n, c = hidden_states.shape
        v = self.num_views
        if bv % v:
            raise ValueError(f"batch {bv} is not a multiple of num_views={v}")
        x = hidden_states.reshape(bv // v, v * n, c)  # (b v) n c -> b (v n) c
        q, k, val = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        heads = attn.heads
        q, k, val = (t.view(t.shape[0], -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, val))
        if attn.norm_q is not None:
            q, k = attn.norm_q(q), attn.norm_k(k)
        if self.sdpa:
            out = F.scaled_dot_product_attention(q, k, val, scale=attn.scale)
        else:
            weights = torch.softmax((q @ k.transpose(-1, -2)) * attn.scale, dim=-1)
            out = weights @ val
        out = out.transpose(1, 2).reshape(bv // v, v * n, -1).reshape(bv, n, -1)  # back to (b v) n c
        out = attn.to_out[1](attn.to_out[0](out))
        if spatial:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def set_views(unet, num_views: int, sdpa: bool = True) -> None:
    """Every ``attn1`` (self-attention) of the UNet gets a :class:`MultiViewAttnProcessor`; the
    cross-attention processors are left as they are."""
    procs = {name: (MultiViewAttnProcessor(num_views, sdpa) if name.endswith("attn1.processor") else proc)
             for name, proc in unet.attn_processors.items()}
    unet.set_attn_processor(procs)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------
class DifixNet(nn.Module):
    """UNet + VAE with skips/LoRA + fixed timestep + prompt embedding; ``forward(x)`` with
    ``x``: ``B x V x 3 x H x W`` in [-1, 1] (view 0 the target) -> ``B x V x 3 x H x W``."""

    def __init__(self, unet, vae, betas: dict[str, Any], prompt_embeds: torch.Tensor, timestep: int = 199,
                 lora_rank_vae: int = 4, lora_targets_: list[str] | None = None, skip_init: float | None = 1e-5,
                 sdpa: bool = True):
        super().__init__()
        from diffusers import DDPMScheduler

        self.unet, self.vae = unet, vae
        add_skip_convs(vae, skip_init)
        self.lora_rank_vae = int(lora_rank_vae)
        self.lora_targets = [] if self.lora_rank_vae <= 0 else (list(lora_targets_) if lora_targets_ is not None
                                                                 else lora_targets(vae))
        if self.lora_rank_vae > 0:
            add_lora(vae, self.lora_targets, self.lora_rank_vae)
        sched = DDPMScheduler(**{k: v for k, v in betas.items() if k in SD_BETAS})
        self.prediction_type = sched.config.prediction_type
        self.register_buffer("alphas_cumprod", sched.alphas_cumprod.clone().float(), persistent=False)
        self.register_buffer("prompt_embeds", prompt_embeds.detach().clone().float(), persistent=False)
        self.betas, self.timestep, self.sdpa = dict(betas), int(timestep), sdpa
        self.sample_latent = False

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        b, v = x.shape[:2]
        flat = x.reshape(b * v, *x.shape[2:])
        set_views(self.unet, v, self.sdpa)
        z, acts = vae_encode(self.vae, flat, self.sample_latent, generator)
        sf = self.vae.config.scaling_factor
        z = z * sf
        t = torch.full((b * v,), self.timestep, device=x.device, dtype=torch.long)
        cond = self.prompt_embeds.to(z.dtype).expand(b * v, -1, -1)
        pred = self.unet(z, t, encoder_hidden_states=cond).sample
        a = self.alphas_cumprod[self.timestep].to(z.dtype)
        if self.prediction_type == "epsilon":
            x0 = (z - (1 - a).sqrt() * pred) / a.sqrt()
        elif self.prediction_type == "v_prediction":
            x0 = a.sqrt() * z - (1 - a).sqrt() * pred
        else:
            x0 = pred
        out = vae_decode(self.vae, x0 / sf, acts).clamp(-1, 1)
        return out.reshape(b, v, *out.shape[1:])

    # -- official checkpoint layout ---------------------------------------------------------
    def official_state(self, optimizer=None, arch: bool = False) -> dict[str, Any]:
        """The dict the official ``save_model`` writes (plus ``artifacts_arch`` if asked)."""
        sd = {"vae_lora_target_modules": list(self.lora_targets), "rank_vae": self.lora_rank_vae,
              "state_dict_unet": {k: v.detach().cpu() for k, v in self.unet.state_dict().items()},
              "state_dict_vae": {k: v.detach().cpu() for k, v in self.vae.state_dict().items()
                                 if "lora" in k or "skip" in k},
              "optimizer": optimizer.state_dict() if optimizer is not None else {}}
        if arch:
            sd["artifacts_arch"] = {"unet": dict(self.unet.config), "vae": dict(self.vae.config),
                                    "betas": self.betas, "timestep": self.timestep,
                                    "prompt_embeds": self.prompt_embeds.detach().cpu(),
                                    "state_dict_vae_full": {k: v.detach().cpu() for k, v in self.vae.state_dict().items()}}
        return sd

    def load_official(self, sd: dict[str, Any], partial_unet: bool = False) -> None:
        """Strict: every checkpoint key exists with its shape, and every LoRA/skip key and (unless
        ``partial_unet``: a base folder supplies the rest) every UNet key of the model is in it."""
        for part, module, want in (("state_dict_unet", self.unet, ()), ("state_dict_vae", self.vae, ("lora", "skip"))):
            given, own = sd[part], module.state_dict()
            extra = sorted(set(given) - set(own))
            if part == "state_dict_unet":
                needed = set() if partial_unet else set(own)
            else:
                needed = {k for k in own if any(w in k for w in want)}
            missing = sorted(needed - set(given))
            bad = [k for k in given if k in own and tuple(given[k].shape) != tuple(own[k].shape)]
            if extra or missing or bad:
                raise ValueError(f"{part}: {len(missing)} missing (e.g. {missing[:3]}), {len(extra)} unexpected "
                                 f"(e.g. {extra[:3]}), {len(bad)} of another shape (e.g. {bad[:3]})")
            merged = {**own, **{k: v.to(own[k].dtype) for k, v in given.items()}}
            module.load_state_dict(merged, strict=True)


def build_tiny(seed: int = 0, timestep: int = 199, lora_rank_vae: int = 4, sdpa: bool = True) -> DifixNet:
    """A random tiny Difix network (tests, training from scratch here)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    g = torch.random.fork_rng()
    with g:
        torch.manual_seed(seed)
        unet, vae = UNet2DConditionModel(**TINY_UNET), AutoencoderKL(**TINY_VAE)
        prompt = torch.randn(*TINY_PROMPT)
        net = DifixNet(unet, vae, SD_BETAS, prompt, timestep, lora_rank_vae, sdpa=sdpa)
    return net


def build_from_arch(arch: dict[str, Any], sd: dict[str, Any], sdpa: bool = True) -> DifixNet:
    """A network from a checkpoint trained here (``artifacts_arch`` present)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(arch["unet"])
    vae = AutoencoderKL.from_config(arch["vae"])
    net = DifixNet(unet, vae, arch["betas"], arch["prompt_embeds"], arch["timestep"], sd["rank_vae"],
                   sd["vae_lora_target_modules"], skip_init=None, sdpa=sdpa)
    full = arch.get("state_dict_vae_full")
    if full is not None:  # from scratch the whole VAE was trained: its base weights come from here
        net.vae.load_state_dict(full, strict=True)
    net.load_official(sd)
    return net


def build_from_base(base: str, sd: dict[str, Any] | None, prompt_embeds: torch.Tensor, timestep: int = 199,
                    lora_rank_vae: int = 4, sdpa: bool = True) -> DifixNet:
    """SD-Turbo-layout folder (``unet/``, ``vae/``, ``scheduler/``) + an official checkpoint dict."""
    from pathlib import Path

    from diffusers import AutoencoderKL, UNet2DConditionModel

    root = Path(base)
    for sub in ("unet", "vae"):
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"{root}: no {sub}/ folder (expected the SD-Turbo diffusers layout)")
    unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", local_files_only=True)
    vae = AutoencoderKL.from_pretrained(root, subfolder="vae", local_files_only=True)
    betas = dict(SD_BETAS)
    cfg = root / "scheduler" / "scheduler_config.json"
    if cfg.is_file():
        import json

        betas.update({k: v for k, v in json.loads(cfg.read_text()).items() if k in SD_BETAS})
    rank = sd["rank_vae"] if sd else lora_rank_vae
    targets = sd["vae_lora_target_modules"] if sd else None
    net = DifixNet(unet, vae, betas, prompt_embeds, timestep, rank, targets, skip_init=1e-5, sdpa=sdpa)
    if sd:
        net.load_official(sd, partial_unet=True)
    return net


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["DifixNet", "LoraLayer", "MultiViewAttnProcessor", "build_tiny", "build_from_arch", "build_from_base",
           "set_views", "lora_targets", "skip_channels", "CHECKPOINT_KEYS"]
