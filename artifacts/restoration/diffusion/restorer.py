"""Reference-guided one-step diffusion restorer in the Difix3D+ style: ``diffusion/difix``.

An item is a novel view with its reference views (as for ``refrepair``): the view and the
``n_refs`` references most like it (32 px thumbnails, mean squared difference; Difix3D+ picks the
nearest training camera, which a view item does not carry) are encoded by the VAE, the UNet runs
once at the fixed timestep 199 with the references joined in its self-attention, and the VAE
decoder (with encoder skip connections) returns the restored view. The whole view is processed
(no mask): the result's ``mask`` is None. The network, its facts and sources and the official
checkpoint layout: :mod:`artifacts.restoration.diffusion.difix_layout`.

**Weights** (``needs_weights``): a checkpoint in the official layout (``model_*.pkl`` written by
Difix3D's ``save_model``: ``state_dict_unet``, ``state_dict_vae`` (LoRA + skip), ``rank_vae``,
``vae_lora_target_modules``) together with ``base=DIR``, a local SD-Turbo folder in the diffusers
layout (``unet/``, ``vae/``, ``scheduler/``), and the prompt's text embedding ("remove
degradation", ``1 x 77 x 1024`` from SD-Turbo's text encoder; this package has no text encoder) in
``prompt_embeds=FILE`` or ``DIR/prompt_embeds.pt``; or a checkpoint trained here by ``artifacts
train diffusion --model difix``, which carries its own architecture. Nothing is downloaded:
``from_pretrained(..., local_files_only=True)``. ``weights="none"`` with ``tiny=True`` builds the
random tiny network of the tests.

**GPU options** (config): ``dtype`` (``bfloat16``/``float16``), ``attention`` (``sdpa``: torch's
``scaled_dot_product_attention``; ``math``: explicit softmax), ``channels_last``, ``compile``
(``torch.compile``), ``cuda_graphs`` (captured once per input shape and replayed; with
``compile`` it is ``mode="reduce-overhead"``). On the CPU the network runs in float32 and
``dtype``, ``channels_last``, ``compile`` and ``cuda_graphs`` are accepted and ignored (recorded in
the result's meta as ``gpu_options_ignored``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from artifacts.registry import register_model
from artifacts.restoration.base import Restorer, RestoreInput
from artifacts.types import Restoration
from artifacts.weights import WeightSpec

DTYPES = ("float32", "bfloat16", "float16")
NOT_OUTPUT = {"output": False}

WEIGHTS = WeightSpec(
    tag="difix",
    file="diffusion-difix.pkl",
    license="see the checkpoint's source (Difix3D: NVIDIA licence; SD-Turbo: Stability AI community licence)",
    source="a Difix checkpoint in the official model_*.pkl layout (nv-tlabs/Difix3D) plus base=SD-Turbo folder, or "
           "one trained by `artifacts train diffusion --model difix`; none ships with this package",
    train_command="artifacts train diffusion --model difix -o OUT",
    input_spec={"color": "RGB", "range": "[-1, 1]", "size": "padded (reflect) to a multiple of the network's stride"},
    output="the restored view (whole image)",
    notes="put the file at $ARTIFACTS_HOME/weights/diffusion-difix.pkl or pass weights=PATH",
)


@dataclass
class DifixConfig:
    base: str | None = None  # local SD-Turbo folder (diffusers layout) for an official checkpoint
    prompt_embeds: str | None = None  # .pt / .safetensors tensor (1 x tokens x dim); default BASE/prompt_embeds.pt
    timestep: int = 199
    n_refs: int = 1  # references joined in attention (the most similar ones)
    ref_select: str = "similar"  # "similar" (thumbnail distance) or "first" (given order)
    tiny: bool = False  # weights='none': the random tiny network (tests)
    seed: int = 0  # tiny network / latent sampling seed
    lora_rank_vae: int = 4  # without a checkpoint: the VAE decoder LoRA rank
    sample_latent: bool = False  # sample the VAE posterior as the official code does (default: its mean)
    dtype: str = "float32"  # GPU: bfloat16 / float16; the CPU always runs float32
    attention: str = "sdpa"  # "sdpa" or "math"
    channels_last: bool = field(default=False, metadata=NOT_OUTPUT)
    compile: bool = field(default=False, metadata=NOT_OUTPUT)
    cuda_graphs: bool = field(default=False, metadata=NOT_OUTPUT)

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.attention not in ("sdpa", "math"):
            raise ValueError(f"attention must be 'sdpa' or 'math', got {self.attention!r}")
        if self.ref_select not in ("similar", "first"):
            raise ValueError(f"ref_select must be 'similar' or 'first', got {self.ref_select!r}")
        if int(self.n_refs) < 0 or not 0 <= int(self.timestep) < 1000:
            raise ValueError("n_refs must be >= 0 and timestep in [0, 1000)")


def select_refs(target: np.ndarray, refs: list[np.ndarray], n: int, how: str = "similar") -> list[int]:
    """Indices of the ``n`` references to use: the most similar 32 px thumbnails, or the first ``n``."""
    if how == "first" or len(refs) <= n:
        return list(range(min(n, len(refs))))
    import cv2

    def thumb(a):
        return cv2.resize(a[..., :3].astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)

    t = thumb(target)
    dist = [float(((thumb(r) - t) ** 2).mean()) for r in refs]
    return [int(i) for i in np.argsort(dist, kind="stable")[:n]]


def load_state(path) -> dict:
    """A Difix checkpoint dict, read with ``torch.load(weights_only=True)``."""
    import torch

    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(sd, dict) or "state_dict_unet" not in sd:
        raise ValueError(f"{path}: not a Difix checkpoint (no 'state_dict_unet'; keys: {list(sd)[:6] if isinstance(sd, dict) else type(sd)})")
    return sd


def _prompt(cfg: DifixConfig):
    from pathlib import Path

    path = cfg.prompt_embeds or (str(Path(cfg.base) / "prompt_embeds.pt") if cfg.base else None)
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"diffusion/difix needs the prompt's text embedding ({path or 'prompt_embeds=FILE'} "
                                "not found): encode 'remove degradation' with SD-Turbo's text encoder once and save the "
                                "1 x 77 x 1024 tensor (torch.save or safetensors key 'prompt_embeds')")
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)["prompt_embeds"]
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


@register_model("diffusion", "difix", config=DifixConfig, weights=(WEIGHTS,), needs_weights=True,
                description="one-step reference-guided diffusion restorer of novel views (Difix3D+ style)")
class DifixRestorer(Restorer):
    """A novel view restored in one diffusion step with its reference view(s) in attention."""

    item_kind = "view"
    needs = ("refs",)
    recipe = "difix"
    _net = None
    _runner = None

    # -- building -------------------------------------------------------------------------
    def network(self):
        if self._net is None:
            self._net = self._build()
            self._net.eval().requires_grad_(False)
            self._runner = self._prepare(self._net)
        return self._net

    def _build(self):
        try:
            import diffusers  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("diffusion/difix needs diffusers: pip install 'artifacts[diffusion]'") from exc
        from artifacts.restoration.diffusion import difix_layout as L

        cfg, sdpa = self.config, self.config.attention == "sdpa"
        if self.weights is not None:
            sd = load_state(self.weights.path)
            if "artifacts_arch" in sd:
                net = L.build_from_arch(sd["artifacts_arch"], sd, sdpa=sdpa)
                net.timestep = int(cfg.timestep)
                return net
            if not cfg.base:
                raise ValueError("an official Difix checkpoint needs base=DIR: the local SD-Turbo folder (unet/, vae/, "
                                 "scheduler/) it was trained from")
            return L.build_from_base(cfg.base, sd, _prompt(cfg), cfg.timestep, sdpa=sdpa)
        if cfg.tiny:
            return L.build_tiny(cfg.seed, cfg.timestep, cfg.lora_rank_vae, sdpa=sdpa)
        if cfg.base:
            return L.build_from_base(cfg.base, None, _prompt(cfg), cfg.timestep, cfg.lora_rank_vae, sdpa=sdpa)
        raise ValueError("diffusion/difix without weights needs tiny=True (random tiny network) or base=DIR")

    def gpu_options(self) -> dict:
        """The GPU options asked for, and which of them this device ignores."""
        cfg = self.config
        asked = {"dtype": cfg.dtype, "channels_last": cfg.channels_last, "compile": cfg.compile,
                 "cuda_graphs": cfg.cuda_graphs}
        if str(self.device).startswith("cuda"):
            return {"applied": asked, "ignored": {}}
        ignored = {k: v for k, v in asked.items() if v not in (False, "float32")}
        return {"applied": {"dtype": "float32"}, "ignored": ignored}

    def _prepare(self, net):
        import torch

        cfg = self.config
        net.sample_latent = bool(cfg.sample_latent)
        net.to(self.device)
        if not str(self.device).startswith("cuda"):
            return net
        net.to(getattr(torch, cfg.dtype))
        if cfg.channels_last:
            net.to(memory_format=torch.channels_last)
        run = net
        if cfg.compile:
            run = torch.compile(net, mode="reduce-overhead" if cfg.cuda_graphs else None)
        elif cfg.cuda_graphs:
            run = _CudaGraphed(net)
        return run

    # -- restoring ------------------------------------------------------------------------
    def stride(self) -> int:
        net = self.network()
        return 2 ** (len(net.vae.config.block_out_channels) - 1) * 2 ** (len(net.unet.config.block_out_channels) - 1)

    def restore_one(self, inp: RestoreInput) -> Restoration:
        import time

        import torch

        from artifacts.io import as_images

        cfg = self.config
        target = inp.pixels
        if target.dtype == np.uint16:
            target = np.rint(target / 257.0).astype(np.uint8)
        refs = [img.pixels for ref in inp.refs for img in as_images(ref)]
        refs = [np.rint(r / 257.0).astype(np.uint8) if r.dtype == np.uint16 else r for r in refs]
        chosen = select_refs(target, refs, int(cfg.n_refs), cfg.ref_select)
        net = self.network()
        t0 = time.perf_counter()
        views = [target] + [_fit(refs[i], target.shape[:2]) for i in chosen]
        x, pad = _to_input(views, self.stride())
        dtype = next(net.parameters()).dtype
        with torch.inference_mode():
            out = self._runner(x.to(self.device, dtype))[0, 0].float()
        h, w = target.shape[:2]
        out = out[:, pad[0]:pad[0] + h, pad[1]:pad[1] + w]
        image = np.rint((out.clamp(-1, 1).cpu().numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
        gpu = self.gpu_options()
        meta = {"timestep": int(net.timestep), "views": len(views), "refs_used": [int(i) for i in chosen],
                "ref_select": cfg.ref_select, "network_s": round(time.perf_counter() - t0, 4),
                "dtype": str(dtype).replace("torch.", "")}
        if gpu["ignored"]:
            meta["gpu_options_ignored"] = gpu["ignored"]
        return Restoration(image, None, meta=meta)


def _fit(ref: np.ndarray, shape) -> np.ndarray:
    """A reference at the target's size (the official code resizes it the same way)."""
    if ref.shape[:2] == tuple(shape):
        return ref[..., :3]
    import cv2

    return cv2.resize(ref[..., :3], (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _to_input(views: list[np.ndarray], stride: int):
    """``1 x V x 3 x H' x W'`` in [-1, 1], reflect-padded to a multiple of ``stride``; and the
    (top, left) padding."""
    import torch
    from torch.nn import functional as F

    x = torch.from_numpy(np.stack([v[..., :3] for v in views])).permute(0, 3, 1, 2).float() / 127.5 - 1
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    top, left = ph // 2, pw // 2
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (left, pw - left, top, ph - top), mode=mode)
    return x[None], (top, left)


class _CudaGraphed:
    """``net(x)`` captured as a CUDA graph per input shape and replayed (static input/output)."""

    def __init__(self, net):
        self.net, self.graphs = net, {}

    def __call__(self, x):
        import torch

        key = (tuple(x.shape), x.dtype)
        if key not in self.graphs:
            static = x.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):
                    self.net(static)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self.net(static)
            self.graphs[key] = (graph, static, out)
        graph, static, out = self.graphs[key]
        static.copy_(x)
        graph.replay()
        return out.clone()
