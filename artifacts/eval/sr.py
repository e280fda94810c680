"""Evaluation of super-resolution backends: ``artifacts eval sr --data FOLDER_OF_HR_IMAGES``.

Each high-resolution image is cropped to a multiple of the scale ("modcrop") and downscaled by
it with bicubic interpolation *with antialiasing* (Pillow's ``BICUBIC``, close to MATLAB's
``imresize``, the degradation SR benchmarks and the bicubic-trained networks use); the
low-resolution copies are written once under ``OUT/data/lr``. Every backend upscales them
through the same engine as ``artifacts restore sr`` (store ``OUT/store``, resumable).

Per image: PSNR and SSIM on the Y channel (BT.601, the scale shaved off each border: the SR
literature's convention) and on RGB (whole image), the deep-feature distance of
:mod:`artifacts.metrics.perceptual` (an LPIPS-like substitute, not LPIPS), and the seconds the
backend took (``restore_s`` in the result's meta; one image at a time, in the same run, so
backends are compared on the same machine state). Reported: means with 95 % bootstrap intervals
over images; the median seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artifacts.eval.runner import fmt_metric

METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "feature_distance")


@dataclass
class SRSample:
    name: str
    image: str  # the low-resolution input
    hr: str  # the (modcropped) ground truth


class SRAdapter:
    task = "sr"

    def __init__(self, scale: int = 4):
        self.scale = int(scale)

    def read(self, data: str, work: Path | None = None) -> list[SRSample]:
        from PIL import Image

        from artifacts.engine.items import discover_images
        from artifacts.io import load_image, save_image

        root = Path(data)
        if not root.is_dir():
            raise FileNotFoundError(f"{data}: expected a folder of high-resolution images")
        work = Path(work or Path("artifacts-eval") / root.name) / "data"
        (work / "hr").mkdir(parents=True, exist_ok=True)
        (work / "lr").mkdir(parents=True, exist_ok=True)
        samples = []
        for item in discover_images([str(root)], recursive=False):
            stem = Path(item.id).stem
            hr_path, lr_path = work / "hr" / f"{stem}.png", work / "lr" / f"{stem}.png"
            if not lr_path.exists():
                px = load_image(item.files["image"]).pixels
                if px.dtype != np.uint8:
                    raise ValueError(f"{item.files['image']}: 8-bit images only")
                h, w = (px.shape[0] // self.scale) * self.scale, (px.shape[1] // self.scale) * self.scale
                hr = px[:h, :w]
                lr = np.asarray(Image.fromarray(hr).resize((w // self.scale, h // self.scale), Image.BICUBIC))
                save_image(hr_path, hr)
                save_image(lr_path, lr)
            samples.append(SRSample(stem, str(lr_path), str(hr_path)))
        if not samples:
            raise FileNotFoundError(f"no images in {data}")
        return samples

    def describe(self, samples: list[SRSample]) -> dict[str, Any]:
        return {"images": len(samples), "scale": self.scale,
                "degradation": "modcrop + bicubic downscaling with antialiasing (Pillow BICUBIC)"}

    @staticmethod
    def default_models() -> list[str]:
        """Every sr model whose weights are available offline (Real-ESRGAN needs the [sr] extra), less the
        opt-in ones (``sd-x4`` needs a local folder: name it with --model and --set model_dir=DIR)."""
        from artifacts.registry import list_models, model_info

        return [m for m in list_models("sr") if model_info(m).weight_status() != "missing"
                and not model_info(m).opt_in]

    def stats(self, samples: list[SRSample], results: list) -> list[dict[str, Any]]:
        from artifacts.io import load_image
        from artifacts.metrics.perceptual import feature_distance
        from artifacts.metrics.quality import sr_quality

        out = []
        for s, res in zip(samples, results):
            st: dict[str, Any] = {"name": s.name, "status": "error" if res is None else res.status.value}
            if res is not None and res.image is not None:
                hr = load_image(s.hr).pixels
                if res.image.shape != hr.shape:
                    raise ValueError(f"{s.name}: output {res.image.shape} differs from the ground truth {hr.shape}")
                st.update(sr_quality(hr, res.image, self.scale))
                st["feature_distance"] = feature_distance(hr, res.image)
                st["seconds"] = res.meta.get("timings", {}).get("restore_s")
            out.append(st)
        return out

    def summarise(self, stats: list[dict], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
        from artifacts.metrics import bootstrap_ci

        ok = [st for st in stats if "psnr_y" in st]
        summary: dict[str, Any] = {"counts": {"items": len(stats), "ok": len(ok)}}
        for m in METRICS:
            values = np.array([st[m] for st in ok], float)
            summary[m] = None if not len(values) else {
                "value": float(values.mean()),
                "ci": bootstrap_ci(len(values), lambda idx, v=values: float(v[idx].mean()), n_boot=n_boot,
                                   seed=seed) if n_boot else None}
        secs = [st["seconds"] for st in ok if st.get("seconds") is not None]
        summary["median_seconds"] = float(np.median(secs)) if secs else None
        summary["per_image"] = {st["name"]: {k: st.get(k) for k in METRICS + ("seconds",)} for st in ok}
        return summary

    def format(self, result: dict[str, Any]) -> str:
        d = result["samples"]
        lines = [f"data: {result['data']}  ({d['images']} images, x{d['scale']}, {d['degradation']})",
                 "PSNR/SSIM Y: BT.601 luma, border of the scale shaved (SR papers' convention); RGB: whole image; "
                 "feature dist.: EfficientNet-Lite0 deep-feature distance (LPIPS-like substitute, not LPIPS; lower "
                 "is better); means with 95 % bootstrap intervals; seconds: median per image on this machine",
                 "",
                 f"{'model':<16}{'PSNR Y (dB)':>24}{'SSIM Y':>24}{'PSNR RGB':>10}{'SSIM RGB':>10}{'feature dist.':>15}"
                 f"{'s/image':>9}{'speed-up':>10}"]
        models = result["models"]
        slowest = max((e["clean"]["median_seconds"] or 0.0) for e in models.values()) if models else 0.0
        for name, e in models.items():
            c = e["clean"]
            sec = c["median_seconds"]
            speed = f"{slowest / sec:.0f}x" if sec and slowest else "n/a"
            lines.append(f"{name.split('/')[-1]:<16}{fmt_metric(c['psnr_y'], 2):>24}{fmt_metric(c['ssim_y'], 3):>24}"
                         f"{c['psnr_rgb']['value']:>10.2f}{c['ssim_rgb']['value']:>10.3f}"
                         f"{c['feature_distance']['value']:>15.4f}{sec if sec is not None else float('nan'):>9.3f}"
                         f"{speed:>10}")
        lines.append("speed-up: relative to the slowest backend in this run")
        return "\n".join(lines)
