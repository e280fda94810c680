"""``sr/sd-x4``: the Stable Diffusion x4 upscaler (latent diffusion) as a super-resolution backend.

The model itself, its loader and the tiled sampling live in
:mod:`artifacts.restoration.diffusion.ldsr`; this module only registers it in the ``sr`` task
with a config and runs it through :func:`artifacts.restoration.tiling.run_tiled`.

**No weights ship.** ``model_dir`` (required) is a local copy of the diffusers folder of
``stabilityai/stable-diffusion-x4-upscaler`` (``model_index.json``, ``unet/``, ``vae/``,
``scheduler/``, ``low_res_scheduler/``; ``text_encoder/`` and ``tokenizer/`` are not used). It
is read with ``local_files_only=True``: nothing is downloaded, and a missing or wrong folder fails
at :func:`artifacts.create` with what is missing.

**Prompt embeddings.** This package has no text encoder, so the text conditioning comes in as a
tensor (``1 x tokens x cross_attention_dim``; 1 x 77 x 1024 for the official model):
``prompt_embeds=FILE`` (``.pt`` or ``.safetensors`` with key ``prompt_embeds``), else
``MODEL_DIR/prompt_embeds.pt|.safetensors`` if present, else **zeros**. Zeros are not the text
encoder's encoding of the empty prompt; the model was never trained on them, and what they do to
quality was not measured here (no real weights on these machines). Encode a prompt (e.g. ``""``)
once where ``transformers`` is installed and save it as ``MODEL_DIR/prompt_embeds.pt`` (see
``docs/models/sr-sd-x4.md``). ``guidance > 1`` (classifier-free guidance, two UNet passes per
step) needs a prompt embedding file; the negative one is ``negative_prompt_embeds=FILE``, else
``MODEL_DIR/negative_prompt_embeds.*``, else zeros.

Tiling: unlike the CNN backends, every tile samples its own seeded noise, so ``tile`` and
``overlap`` change the output: they are part of the store key here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from artifacts.registry import register_model
from artifacts.restoration.base import Restorer, RestoreInput
from artifacts.types import Restoration

__all__ = ["SdX4Config", "SdX4SR", "load_embedding"]

HELP = ("a local copy of the diffusers folder of stabilityai/stable-diffusion-x4-upscaler (model_index.json, unet/, "
        "vae/, scheduler/, low_res_scheduler/); nothing is downloaded")
EMBED_NAMES = ("prompt_embeds", "negative_prompt_embeds")


@dataclass
class SdX4Config:
    model_dir: str | None = None  # required: the local x4 upscaler folder (diffusers layout)
    steps: int = 20  # denoising steps (diffusers' pipeline default is 75)
    noise_level: int = 20  # noise added to the low-res image, 0 .. max_noise_level (350)
    guidance: float = 1.0  # classifier-free guidance scale; > 1 needs a prompt embedding file
    seed: int = 0  # noise seed (each tile draws from it)
    prompt_embeds: str | None = None  # 1 x tokens x dim tensor file; default MODEL_DIR/prompt_embeds.*, else zeros
    negative_prompt_embeds: str | None = None  # guidance > 1: default MODEL_DIR/negative_prompt_embeds.*, else zeros
    frequency_compensation: str | None = None  # None: MODEL_DIR's own if present; "off"; or a file / folder
    tile: int | None = 128  # input pixels per tile side (None = whole image); changes the output
    overlap: int = 16  # context pixels around each tile; changes the output
    precision: str = "fp32"  # CUDA: fp16 / bf16 autocast (the VAE may overflow in fp16); CPU: always fp32

    def __post_init__(self) -> None:
        if int(self.steps) < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not 0 <= int(self.noise_level) <= 350:
            raise ValueError(f"noise_level must be in [0, 350] (the x4 upscaler's max_noise_level), "
                             f"got {self.noise_level}")
        if float(self.guidance) < 0:
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")
        if (self.tile is not None and int(self.tile) < 1) or int(self.overlap) < 0:
            raise ValueError(f"tile must be >= 1 (or None) and overlap >= 0, got {self.tile}, {self.overlap}")


def load_embedding(path, key: str = "prompt_embeds"):
    """A tensor from ``.safetensors`` (``key``, or its only tensor) or a ``.pt`` file (torch.load,
    weights_only); a 2-D tensor gets a batch axis."""
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(p))
        if key not in tensors and len(tensors) != 1:
            raise KeyError(f"{p}: no tensor {key!r} (found {sorted(tensors)})")
        t = tensors.get(key, next(iter(tensors.values())))
    else:
        import torch

        t = torch.load(str(p), map_location="cpu", weights_only=True)
    return t[None] if t.ndim == 2 else t


@register_model("sr", "sd-x4", config=SdX4Config,
                description="Stable Diffusion x4 upscaler (latent diffusion) from a local folder (model_dir=); "
                            "no weights ship")
class SdX4SR(Restorer):
    """Latent-diffusion x4 super-resolution from a local Stable Diffusion x4 upscaler folder."""

    scale = 4
    #: never among the default models of ``artifacts eval sr``: it needs a folder the user names
    opt_in: ClassVar[bool] = True
    weights_note: ClassVar[str] = "your folder (model_dir=)"  # shown by `artifacts models`

    def __init__(self, config, weights=None, device=None):
        super().__init__(config, weights, device)
        if weights is not None:
            raise ValueError(f"{self.model_id} takes no weights file: give the folder as model_dir=DIR ({HELP})")
        if not config.model_dir:
            raise ValueError(f"{self.model_id} needs model_dir=DIR (CLI: --set model_dir=DIR): {HELP}")
        root = Path(config.model_dir).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{self.model_id}: model_dir {root} is not a directory ({HELP})")
        try:
            import diffusers  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(f"{self.model_id} needs diffusers: pip install 'artifacts-toolkit[diffusion]'") from exc
        from artifacts.restoration.diffusion.ldsr import check_x4_upscaler_dir

        self.root = root
        try:
            self.layout = check_x4_upscaler_dir(root)  # fails fast, naming what is missing
        except (FileNotFoundError, ValueError) as exc:
            raise type(exc)(f"{self.model_id}: {exc} (model_dir must be {HELP})") from None
        self.embeds = {name: self._embedding_source(name) for name in EMBED_NAMES}
        if float(config.guidance) > 1 and self.embeds["prompt_embeds"] == "zeros":
            raise ValueError(f"{self.model_id}: guidance > 1 needs a prompt embedding (prompt_embeds=FILE or "
                             f"{root}/prompt_embeds.pt); with zeros it only doubles the cost")
        self._upscaler = None

    @property
    def weight_id(self) -> str:
        """The folder's identity: a hash of its configs, of the names and sizes of its weight files
        and of the embedding / frequency-compensation files found in it (computed once)."""
        if getattr(self, "_weight_id", None) is None:
            import hashlib
            import json

            from artifacts.restoration.diffusion.ldsr import FREQ_FILE

            h = hashlib.sha256(json.dumps(self.layout, sort_keys=True).encode())
            files = [f for sub in ("unet", "vae") for f in sorted((self.root / sub).glob("diffusion_pytorch_model*"))]
            files += [Path(src) for src in self.embeds.values() if src != "zeros"] + [self.root / FREQ_FILE]
            for f in files:
                if f.is_file():
                    h.update(f"{f.name}:{f.stat().st_size}".encode())
            self._weight_id = f"dir:{self.root.name}:{h.hexdigest()[:12]}"
        return self._weight_id

    def _embedding_source(self, name: str) -> str:
        given = getattr(self.config, name)
        if given:
            if not Path(given).is_file():
                raise FileNotFoundError(f"{self.model_id}: {name} file {given} not found")
            return str(given)
        for ext in (".pt", ".safetensors"):
            if (self.root / f"{name}{ext}").is_file():
                return str(self.root / f"{name}{ext}")
        return "zeros"

    def upscaler(self):
        """The :class:`~artifacts.restoration.diffusion.ldsr.X4Upscaler`, loaded on first use."""
        if self._upscaler is None:
            import torch

            from artifacts.restoration.diffusion import ldsr

            c = self.config
            pipe = ldsr.load_x4_upscaler(self.root, device="cpu")
            if c.frequency_compensation == "off":
                pipe.frequency_compensation = None
            elif c.frequency_compensation:
                pipe.frequency_compensation = ldsr.load_frequency_compensation(c.frequency_compensation)
            dim = pipe.unet.config.cross_attention_dim
            emb = {n: load_embedding(src, n).float() for n, src in self.embeds.items() if src != "zeros"}
            for name, e in emb.items():
                if e.ndim != 3 or e.shape[-1] != dim:
                    raise ValueError(f"{self.model_id}: {name} from {self.embeds[name]} has shape {tuple(e.shape)}; "
                                     f"the UNet needs 1 x tokens x {dim}")
            tokens = next(iter(emb.values())).shape[1] if emb else 77  # zeros take the other's length
            for name in EMBED_NAMES:
                emb.setdefault(name, torch.zeros(1, tokens, dim))
            if emb["prompt_embeds"].shape != emb["negative_prompt_embeds"].shape:
                raise ValueError(f"{self.model_id}: prompt_embeds {tuple(emb['prompt_embeds'].shape)} and "
                                 f"negative_prompt_embeds {tuple(emb['negative_prompt_embeds'].shape)} differ in shape")
            neg = emb["negative_prompt_embeds"] if float(c.guidance) > 1 else None
            self._upscaler = ldsr.X4Upscaler(pipe.to(self.device), emb["prompt_embeds"], neg,
                                             num_inference_steps=int(c.steps), guidance_scale=float(c.guidance),
                                             noise_level=int(c.noise_level), seed=int(c.seed))
        return self._upscaler

    def restore_one(self, inp: RestoreInput) -> Restoration:
        from artifacts.restoration.tiling import run_tiled

        c = self.config
        up = self.upscaler()
        out, record = run_tiled(up, inp.pixels, self.scale, tile=c.tile, overlap=c.overlap, device=self.device,
                                precision=c.precision)
        meta = {"scale": self.scale, "tiling": record, "steps": int(c.steps), "noise_level": int(c.noise_level),
                "guidance": float(c.guidance), "seed": int(c.seed),
                "prompt_embeds": self.embeds["prompt_embeds"],
                "frequency_compensation": up.pipe.frequency_compensation is not None}
        if float(c.guidance) > 1:
            meta["negative_prompt_embeds"] = self.embeds["negative_prompt_embeds"]
        return Restoration(out, meta=meta)
