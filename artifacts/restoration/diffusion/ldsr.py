"""Latent-diffusion super-resolution: the Stable Diffusion x4 upscaler from a local directory, tiled,
with an optional frequency-compensation branch after the VAE decoder.

Layout (diffusers ``StableDiffusionUpscalePipeline``, as in diffusers 0.42.1
``pipelines/stable_diffusion/pipeline_stable_diffusion_upscale.py``): ``model_index.json`` naming
``StableDiffusionUpscalePipeline`` and the sub-folders ``unet/`` (``UNet2DConditionModel`` whose
``in_channels`` = 4 latent + 3 image channels = 7; the noise level of the low-res image enters as
``class_labels`` through ``num_class_embeds``), ``vae/`` (``AutoencoderKL`` with 3 levels, i.e. a
latent 4x smaller than the output and the same size as the low-res input; ``scaling_factor``
0.08333), ``scheduler/``, ``low_res_scheduler/`` (``DDPMScheduler`` that noises the low-res image
by ``noise_level`` <= ``max_noise_level`` = 350), ``text_encoder/`` and ``tokenizer/`` (optional
here: pass ``prompt_embeds``). :func:`check_x4_upscaler_dir` checks that layout and fails fast
with what is missing; :func:`load_x4_upscaler` loads the components with ``local_files_only=True``
into :class:`X4Pipeline`, this module's own copy of the pipeline's sampling loop, which needs
diffusers only (diffusers' pipeline class requires ``transformers`` even without a text encoder).

Frequency compensation. Luo et al., "Image Super-resolution Via Latent Diffusion: A Sampling-space
Mixture Of Experts And Frequency-augmented Decoder Approach" (arXiv 2310.12004; code
tencent-ailab/Frequency_Aug_VAE_MoESR, README at 2023b31a59f4d79da8378e4ba875a62268973f9f):
compressing to the latent space loses high frequencies; a frequency-augmented VAE decoder
(FA-VAE, conditioned on the low-res input through fuse layers in the SR model) restores them. The
repository's decoder code was not readable in the index used here, so :class:`FrequencyCompensation`
is this project's own, simpler module in that spirit, applied *after* the decoder: a learnable
radial gain on the 2-D spectrum of the decoded image (``1 + G(|f|)``, K bins) plus a small conv
branch on ``(decoded, bicubic(low-res))`` whose output is high-passed (minus its Gaussian blur),
both initialised to the identity. :func:`fit_frequency_compensation` trains it on (decoded,
clean, low-res) triplets with L1 + spectrum-magnitude L1.

This module imports torch at import (it is loaded only when used; the package does not import it).

Tiling: :class:`X4Upscaler` is an image-to-image callable (``B,3,h,w`` in [0, 1] ->
``B,3,4h,4w``) for :func:`artifacts.restoration.tiling.run_tiled`. Diffusion sampling is not
translation-equivariant like a CNN (each tile draws its own seeded noise), so tiled output differs
from whole-image output inside the overlap band; larger ``overlap`` hides seams, it does not make
the result equal.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["check_x4_upscaler_dir", "load_x4_upscaler", "load_frequency_compensation", "tiny_x4_upscaler",
           "X4Pipeline", "X4Upscaler", "FrequencyCompensation", "fit_frequency_compensation", "upscale_tiled"]

REQUIRED = ("unet", "vae", "scheduler", "low_res_scheduler")
FREQ_FILE = "frequency_compensation.safetensors"


def check_x4_upscaler_dir(path) -> dict:
    """Check a local Stable Diffusion x4 upscaler directory; return its configs. Raises
    ``FileNotFoundError`` / ``ValueError`` naming the missing or inconsistent part."""
    root = Path(path)
    index = root / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(f"{root}: no model_index.json (expected a diffusers StableDiffusionUpscalePipeline directory)")
    idx = json.loads(index.read_text())
    if idx.get("_class_name") != "StableDiffusionUpscalePipeline":
        raise ValueError(f"{index}: _class_name is {idx.get('_class_name')!r}, not StableDiffusionUpscalePipeline")
    cfg = {}
    for sub in REQUIRED:
        names = ("config.json",) if sub in ("unet", "vae") else ("scheduler_config.json",)
        f = root / sub / names[0]
        if not f.is_file():
            raise FileNotFoundError(f"{root}: missing {sub}/{names[0]}")
        cfg[sub] = json.loads(f.read_text())
        if sub in ("unet", "vae") and not any((root / sub).glob("diffusion_pytorch_model*")):
            raise FileNotFoundError(f"{root}: missing {sub}/diffusion_pytorch_model.* weights")
    u, v = cfg["unet"], cfg["vae"]
    lat = v.get("latent_channels", 4)
    if u.get("in_channels") != lat + 3:
        raise ValueError(f"unet in_channels {u.get('in_channels')} != latent {lat} + 3 image channels")
    if not u.get("num_class_embeds"):
        raise ValueError("unet has no num_class_embeds: the noise level of the low-res image cannot enter")
    if len(v.get("block_out_channels", ())) != 3:
        raise ValueError(f"vae has {len(v.get('block_out_channels', ()))} levels; the x4 upscaler's has 3 (x4)")
    cfg["model_index"] = idx
    return cfg


class X4Pipeline:
    """The x4 upscaler's sampling loop on diffusers components only (no ``transformers``: the
    text conditioning comes in as ``prompt_embeds``). Same steps as diffusers'
    ``StableDiffusionUpscalePipeline.__call__`` (0.42.1): the low-res image in [-1, 1] is noised by
    ``low_res_scheduler`` to ``noise_level``, concatenated to the scaled latents on channels every
    step, ``noise_level`` enters as ``class_labels``, classifier-free guidance with the negative
    embeddings first, and the latents are decoded with ``vae.decode(z / scaling_factor)``."""

    def __init__(self, unet, vae, scheduler, low_res_scheduler, max_noise_level: int = 350,
                 frequency_compensation=None):
        self.unet, self.vae = unet.eval(), vae.eval()
        self.scheduler, self.low_res_scheduler = scheduler, low_res_scheduler
        self.max_noise_level = int(max_noise_level)
        self.frequency_compensation = frequency_compensation

    def to(self, device):
        self.unet.to(device)
        self.vae.to(device)
        if self.frequency_compensation is not None:
            self.frequency_compensation.to(device)
        return self

    @torch.no_grad()
    def __call__(self, image, prompt_embeds, negative_prompt_embeds=None, num_inference_steps: int = 20,
                 guidance_scale: float = 9.0, noise_level: int = 20, generator=None, compensate: bool = True):
        """``image`` ``B,3,h,w`` in [0, 1] -> ``B,3,4h,4w`` in [0, 1]."""
        if not 0 <= noise_level <= self.max_noise_level:
            raise ValueError(f"noise_level must be in [0, {self.max_noise_level}], got {noise_level}")
        dev = self.unet.device
        b = image.shape[0]
        low = image.to(dev, torch.float32) * 2 - 1
        cfg = guidance_scale > 1.0 and negative_prompt_embeds is not None
        emb = prompt_embeds.to(dev).expand(b, -1, -1)
        if cfg:
            emb = torch.cat([negative_prompt_embeds.to(dev).expand(b, -1, -1), emb])
        nl = torch.tensor([noise_level], dtype=torch.long, device=dev)
        noise = torch.randn(low.shape, generator=generator).to(dev)
        low = self.low_res_scheduler.add_noise(low, noise, nl)
        low = torch.cat([low] * (2 if cfg else 1))
        nl = nl.expand(low.shape[0])
        self.scheduler.set_timesteps(num_inference_steps, device=dev)
        c = self.vae.config.latent_channels
        z = torch.randn((b, c, *low.shape[2:]), generator=generator).to(dev) * self.scheduler.init_noise_sigma
        for t in self.scheduler.timesteps:
            zi = self.scheduler.scale_model_input(torch.cat([z] * (2 if cfg else 1)), t)
            eps = self.unet(torch.cat([zi, low], 1), t, encoder_hidden_states=emb, class_labels=nl).sample
            if cfg:
                e_u, e_t = eps.chunk(2)
                eps = e_u + guidance_scale * (e_t - e_u)
            z = self.scheduler.step(eps, t, z).prev_sample
        out = ((self.vae.decode(z / self.vae.config.scaling_factor).sample.clamp(-1, 1) + 1) / 2)
        if compensate and self.frequency_compensation is not None:
            out = self.frequency_compensation(out, image.to(dev, torch.float32)).clamp(0, 1)
        return out

    def save_pretrained(self, directory) -> None:
        """Write the x4 upscaler layout (``model_index.json`` + component folders; no text encoder)."""
        import diffusers

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(d / "unet")
        self.vae.save_pretrained(d / "vae")
        self.scheduler.save_pretrained(d / "scheduler")
        self.low_res_scheduler.save_pretrained(d / "low_res_scheduler")
        index = {"_class_name": "StableDiffusionUpscalePipeline", "_diffusers_version": diffusers.__version__,
                 "max_noise_level": self.max_noise_level,
                 "unet": ["diffusers", type(self.unet).__name__], "vae": ["diffusers", type(self.vae).__name__],
                 "scheduler": ["diffusers", type(self.scheduler).__name__],
                 "low_res_scheduler": ["diffusers", type(self.low_res_scheduler).__name__],
                 "text_encoder": [None, None], "tokenizer": [None, None]}
        (d / "model_index.json").write_text(json.dumps(index, indent=2))
        if self.frequency_compensation is not None:
            self.frequency_compensation.save(d)


def load_x4_upscaler(path, device: str = "cpu", torch_dtype=None) -> X4Pipeline:
    """Load the x4 upscaler from a local directory (``local_files_only``; never the hub). The text
    encoder and tokenizer, if present, are not loaded (pass ``prompt_embeds``). A
    ``frequency_compensation.safetensors`` beside it is loaded as the compensation branch."""
    cfg = check_x4_upscaler_dir(path)
    import diffusers

    kw = {"local_files_only": True}
    if torch_dtype is not None:
        kw["torch_dtype"] = torch_dtype
    unet = diffusers.UNet2DConditionModel.from_pretrained(str(path), subfolder="unet", **kw)
    vae = diffusers.AutoencoderKL.from_pretrained(str(path), subfolder="vae", **kw)
    idx = cfg["model_index"]
    scheds = {}
    for name, default in (("scheduler", "DDIMScheduler"), ("low_res_scheduler", "DDPMScheduler")):
        cls_name = (idx.get(name) or [None, default])[1] or default
        cls = getattr(diffusers, cls_name, None) or getattr(diffusers, default)
        scheds[name] = cls.from_pretrained(str(path), subfolder=name, local_files_only=True)
    fc = load_frequency_compensation(path) if (Path(path) / FREQ_FILE).is_file() else None
    pipe = X4Pipeline(unet, vae, scheds["scheduler"], scheds["low_res_scheduler"],
                      idx.get("max_noise_level", 350), fc)
    return pipe.to(device)


def load_frequency_compensation(path) -> "FrequencyCompensation":
    """A saved :class:`FrequencyCompensation`: a directory holding ``frequency_compensation.safetensors``
    + ``.json`` (as :meth:`FrequencyCompensation.save` writes), or a ``.safetensors`` file with its
    ``.json`` config of the same stem beside it."""
    from safetensors.torch import load_file

    p = Path(path)
    f = p / FREQ_FILE if p.is_dir() else p
    cfg = f.with_suffix(".json")
    for need in (f, cfg):
        if not need.is_file():
            raise FileNotFoundError(f"frequency compensation: {need} not found (expected {FREQ_FILE} and its .json "
                                    "config, as FrequencyCompensation.save writes them)")
    fc = FrequencyCompensation(**json.loads(cfg.read_text()))
    fc.load_state_dict(load_file(str(f)))
    return fc.eval()


def tiny_x4_upscaler(seed: int = 0) -> X4Pipeline:
    """A random tiny x4 upscaler (UNet 8/16 channels, 3-level VAE, no text encoder): for tests."""
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=7, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        norm_num_groups=4, cross_attention_dim=16, attention_head_dim=4, num_class_embeds=1000,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8),
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        layers_per_block=1, norm_num_groups=4, scaling_factor=0.08333)
    return X4Pipeline(unet, vae,
                      DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", clip_sample=False),
                      DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear"), 350)


class FrequencyCompensation(nn.Module):
    """``y' = irfft2(rfft2(y) (1 + G(|f|))) + highpass(conv([y, up(lr)]))``, identity at init
    (``G = 0``, last conv zero). ``y``: decoded image ``B,3,H,W``; ``lr``: the low-res input
    (bicubic-upsampled inside) or ``None``."""

    def __init__(self, channels: int = 16, bins: int = 8, sigma: float = 1.0):
        super().__init__()
        self.channels, self.bins, self.sigma = channels, bins, sigma
        self.gain = nn.Parameter(torch.zeros(3, bins))
        self.body = nn.Sequential(
            nn.Conv2d(6, channels, 3, padding=1), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.SiLU(),
            nn.Conv2d(channels, 3, 3, padding=1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def config(self) -> dict:
        return {"channels": self.channels, "bins": self.bins, "sigma": self.sigma}

    def _radial_gain(self, h: int, w: int, device):
        fy = torch.fft.fftfreq(h, device=device)[:, None]
        fx = torch.fft.rfftfreq(w, device=device)[None, :]
        pos = ((fy ** 2 + fx ** 2).sqrt() / math.sqrt(0.5)).clamp(0, 1) * (self.bins - 1)
        i0 = pos.floor().long().clamp(max=self.bins - 1)
        i1 = (i0 + 1).clamp(max=self.bins - 1)
        a = pos - i0
        return self.gain[:, i0] * (1 - a) + self.gain[:, i1] * a  # (3, h, w // 2 + 1)

    def forward(self, y, lr=None):
        from artifacts.restoration.diffusion.editing import _gaussian_blur

        h, w = y.shape[-2:]
        spec = torch.fft.rfft2(y, norm="ortho")
        y = torch.fft.irfft2(spec * (1 + self._radial_gain(h, w, y.device)), s=(h, w), norm="ortho")
        up = y if lr is None else F.interpolate(lr, size=(h, w), mode="bicubic", align_corners=False)
        r = self.body(torch.cat([y, up], 1))
        b, c = r.shape[:2]
        r = r - _gaussian_blur(r.reshape(b * c, 1, h, w), self.sigma).reshape(b, c, h, w)
        return y + r

    def save(self, directory) -> None:
        """Write ``frequency_compensation.safetensors`` + ``.json`` into a pipeline directory."""
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(directory) / FREQ_FILE))
        (Path(directory) / "frequency_compensation.json").write_text(json.dumps(self.config()))


def fit_frequency_compensation(module, decoded, clean, lr=None, steps: int = 200, lr_rate: float = 1e-3,
                               spectral_weight: float = 0.1, seed: int = 0) -> list[float]:
    """Train ``module`` on tensors ``decoded``/``clean`` (``N,3,H,W``; ``lr`` ``N,3,H/4,W/4`` or None),
    full batch, Adam; loss = L1 + ``spectral_weight`` * L1 of the rFFT magnitudes. Returns the
    loss per step (seeded, deterministic on the CPU)."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr_rate)
    target_mag = torch.fft.rfft2(clean, norm="ortho").abs()
    losses = []
    module.train()
    for _ in range(steps):
        out = module(decoded, lr)
        loss = (out - clean).abs().mean() + spectral_weight * (
            torch.fft.rfft2(out, norm="ortho").abs() - target_mag).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    module.eval()
    return losses


class X4Upscaler:
    """Callable ``B,3,h,w`` [0, 1] -> ``B,3,4h,4w`` [0, 1]: an :class:`X4Pipeline` with fixed prompt
    embeddings, steps, noise level and seed (the frequency compensation included if loaded). Pass it to :func:`artifacts.restoration.tiling.run_tiled` (``scale=4``)."""

    def __init__(self, pipe, prompt_embeds, negative_prompt_embeds=None, num_inference_steps: int = 20,
                 guidance_scale: float = 1.0, noise_level: int = 20, seed: int = 0):
        self.pipe = pipe
        self.prompt_embeds = prompt_embeds
        self.negative_prompt_embeds = negative_prompt_embeds
        self.steps = num_inference_steps
        self.guidance = guidance_scale
        self.noise_level = noise_level
        self.seed = seed

    def __call__(self, x):
        out = self.pipe(x.float(), self.prompt_embeds, self.negative_prompt_embeds,
                        num_inference_steps=self.steps, guidance_scale=self.guidance,
                        noise_level=self.noise_level, generator=torch.Generator().manual_seed(self.seed))
        return out.to(x.device, x.dtype)


def upscale_tiled(upscaler: X4Upscaler, pixels, tile: int = 128, overlap: int = 16):
    """x4 upscale of an ``H,W,3`` uint8 image in tiles of ``tile`` input pixels (bounded memory);
    returns ``(image, tiling record)``."""
    from artifacts.restoration.tiling import run_tiled

    return run_tiled(upscaler, pixels, 4, tile=tile, overlap=overlap)
