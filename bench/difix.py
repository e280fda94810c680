"""One-step reference-guided restorer (``diffusion/difix``): milliseconds per frame.

A frame = one target view restored with ``--refs`` reference view(s) (so ``1 + refs`` views go
through the VAE encoder, the UNet at t = 199 with the views joined in self-attention, and the VAE
decoder), at ``--size`` x ``--size`` (default 512). Timed: the network call alone, under
``torch.inference_mode``, after one warm-up call at the same size; median of ``--repeats``.

Networks (``--net``):

* ``tiny``: the tiny configuration of :mod:`artifacts.restoration.diffusion.difix_layout`
  (UNet 32/64 channels, VAE 8/16/32/32), random or the weights given with ``--weights`` (e.g. the
  model trained by ``artifacts train diffusion --model difix``);
* ``sd-turbo``: SD-Turbo-sized random-init networks built from the SD 2.1 configs (UNet
  320/640/1280/1280, 2 layers per block, linear projections, heads 5/10/20/20, cross-attention 1024;
  VAE 128/256/512/512) with the skip convolutions and a rank-4 decoder LoRA: the timing of the real
  model, not its output.

GPU options (``--device cuda``): ``--dtype bfloat16``, ``--channels-last``, ``--compile``,
``--cuda-graphs``; on the CPU they are ignored, as in the restorer.

    python bench/difix.py --net tiny --weights OUT/diffusion-difix.pkl --repeats 5
    python bench/difix.py --net sd-turbo --repeats 1 --json bench/results/difix_cpu.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

SD_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
               block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=1024,
               attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
SD_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
              block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
              up_block_types=("UpDecoderBlock2D",) * 4, sample_size=768, scaling_factor=0.18215)


def build(net: str, weights: str | None, sdpa: bool):
    import torch

    from artifacts.restoration.diffusion import difix_layout as L

    if net == "tiny":
        if weights:
            from artifacts.restoration.diffusion.restorer import load_state

            sd = load_state(weights)
            return L.build_from_arch(sd["artifacts_arch"], sd, sdpa=sdpa)
        return L.build_tiny(0, sdpa=sdpa)
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    unet, vae = UNet2DConditionModel(**SD_UNET), AutoencoderKL(**SD_VAE)
    return L.DifixNet(unet, vae, L.SD_BETAS, torch.randn(1, 77, 1024), 199, 4, sdpa=sdpa)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", choices=("tiny", "sd-turbo"), default="tiny")
    p.add_argument("--weights", help="tiny: a checkpoint trained here (default: random)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--refs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--attention", default="sdpa", choices=("sdpa", "math"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--cuda-graphs", action="store_true")
    p.add_argument("--json", help="write the result here")
    args = p.parse_args(argv)

    import torch

    from artifacts.restoration.diffusion.difix_layout import count_params
    from artifacts.restoration.diffusion.restorer import _CudaGraphed

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    net = build(args.net, args.weights, args.attention == "sdpa").eval().requires_grad_(False)
    build_s = time.perf_counter() - t0
    cuda = args.device.startswith("cuda")
    net.to(args.device)
    applied = {"dtype": "float32"}
    run = net
    if cuda:
        net.to(getattr(torch, args.dtype))
        applied = {"dtype": args.dtype, "channels_last": args.channels_last, "compile": args.compile,
                   "cuda_graphs": args.cuda_graphs}
        if args.channels_last:
            net.to(memory_format=torch.channels_last)
        if args.compile:
            run = torch.compile(net, mode="reduce-overhead" if args.cuda_graphs else None)
        elif args.cuda_graphs:
            run = _CudaGraphed(net)
    dtype = next(net.parameters()).dtype
    x = (torch.rand(1, 1 + args.refs, 3, args.size, args.size) * 2 - 1).to(args.device, dtype)

    def once() -> float:
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.inference_mode():
            run(x)
        if cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - t) * 1000

    warm = once()
    times = [once() for _ in range(args.repeats)]
    result = {"net": args.net, "weights": args.weights or "random", "size": args.size, "views": 1 + args.refs,
              "device": args.device, "applied": applied, "attention": args.attention, "threads": args.threads,
              "params": {"unet": count_params(net.unet), "vae": count_params(net.vae)},
              "build_s": round(build_s, 1), "warmup_ms": round(warm, 1), "ms_per_frame": round(statistics.median(times), 1),
              "runs_ms": [round(t, 1) for t in times], "machine": f"{platform.machine()}, python {sys.version.split()[0]}, "
              f"torch {torch.__version__}"}
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
