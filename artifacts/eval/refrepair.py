"""Evaluation of reference-guided repair (task ``refrepair``) on degraded real views.

``artifacts eval refrepair --data SCENE [--split eval|tune] [--kinds ...]``: the same degraded
views as ``eval views`` (the view-artifact generator on the scene's evaluated views, the clean
views held out as ground truth, the other views as references; see :mod:`artifacts.eval.views`).
First the no-reference metric ``views/puzzlesim`` maps every degraded view (through the engine,
cached in ``OUT/maps``); each repair model then gets the view, its references and that map, never
the ground truth. Per view: PSNR and SSIM of the repaired view against the clean one, their gain
over the degraded view, the fraction of pixels repaired, and the fraction of pixels the repair
changed where the generator had changed nothing ("collateral"). Reported: mean gain with a 95 %
bootstrap interval over views, per severity, per kind, tuning vs held-out kinds.

Baseline, on the same maps: ``inpaint/telea`` (the map at the metric's threshold, grown by 2
pixels, filled by Telea inpainting: repair without references), evaluated like any model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artifacts.eval.runner import fmt_metric
from artifacts.eval.views import ViewSample, ViewsAdapter, grouped

METRIC = "views/puzzlesim"


@dataclass
class RepairSample(ViewSample):
    extra: dict[str, str] = field(default_factory=dict)  # the metric run's heatmap and detection files

    @property
    def files(self) -> dict[str, str]:
        return {**super().files, **self.extra}


class RefRepairAdapter(ViewsAdapter):
    task = "refrepair"
    model_tasks = ("refrepair", "inpaint", "diffusion")  # the repair and its baseline without references

    def read(self, data: str, work: Path | None = None) -> list[RepairSample]:
        from artifacts.engine.items import Item, hash_item, result_key
        from artifacts.eval.runner import detections
        from artifacts.registry import create

        work = Path(work or Path("artifacts-eval") / Path(data).resolve().name)
        views = super().read(data, work)
        metric = create(METRIC)
        store = work / "maps"
        dets = detections(metric, views, store, workers=None, progress=True, desc=f"{METRIC} maps")
        fingerprint = metric.fingerprint()
        samples = []
        for v, det in zip(views, dets):
            s = RepairSample(**{f: getattr(v, f) for f in v.__dataclass_fields__})
            if det is not None and det.heatmap is not None:
                key = result_key(Item(v.name, v.files), hash_item(Item(v.name, v.files)), fingerprint)
                folder = store / "items" / key
                s.extra = {"heatmap": str(folder / "heatmap.png"), "detection": str(folder / "detection.json")}
            samples.append(s)
        return samples

    @staticmethod
    def default_models() -> list[str]:
        """The repair, and the baseline without references: ``inpaint/telea`` on the same map at the
        metric's own threshold (recorded with each map), grown by its default 2 pixels."""
        return ["refrepair/warp", "inpaint/telea"]

    def stats(self, samples: list[RepairSample], results: list) -> list[dict[str, Any]]:
        from artifacts.io import load_image
        from artifacts.metrics.quality import psnr, ssim

        out = []
        for s, res in zip(samples, results):
            st = {"name": s.name, "kind": s.kind, "severity": s.severity, "status": "error" if res is None else res.status.value}
            if res is not None and res.image is not None and np.isfinite(s.psnr):
                clean, degraded = load_image(s.clean).pixels, load_image(s.image).pixels
                changed = load_image(s.mask).pixels[..., 0] > 127
                after, ssim_after = psnr(clean, res.image), ssim(clean, res.image)
                touched = np.any(res.image != degraded, axis=-1)
                st.update(psnr_before=s.psnr, psnr_after=after, gain_psnr=min(after, 60.0) - min(s.psnr, 60.0),
                          gain_ssim=ssim_after - s.ssim, repaired=float(res.mask.mean()) if res.mask is not None else 1.0,
                          collateral=float(touched[~changed].mean()) if (~changed).any() else 0.0)
            out.append(st)
        return out

    def summarise(self, stats: list[dict], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
        ok = [st for st in stats if "gain_psnr" in st]
        summary = {"counts": {"items": len(stats), "ok": len(ok), "error": sum(st["status"] == "error" for st in stats)}}
        return {**summary, **grouped(ok, _group, n_boot, seed)}

    picture = None  # the table says it (no curves, unlike the view metric's evaluation)
    baselines = None  # the baseline is a model (see default_models), not the view metric's baselines

    @staticmethod
    def format(result: dict[str, Any]) -> str:
        d = result["samples"]
        lines = [f"data: {result['data']}  ({d['views']} degraded views of {', '.join(d['scenes'])}; kinds "
                 f"{', '.join(d['kinds'])}; references per view {d['references']}); the map: {METRIC} (no "
                 "ground truth); gains against the clean view, mean over views, 95 % bootstrap intervals",
                 "", f"{'':24}{'PSNR before':>12}{'PSNR after':>12}{'PSNR gain (dB)':>24}{'SSIM gain':>11}"
                     f"{'repaired':>10}{'collateral':>12}"]
        for model, c in ((m, e["clean"]) for m, e in result["models"].items()):
            n = c["counts"]
            lines.append(f"== {model} ==  ({n['ok']}/{n['items']} views)")
            groups = [("all", c["all"]), ("tuning kinds", c.get("tuning_kinds")),
                      ("held-out kinds", c.get("held_out_kinds"))]
            groups += [(f"severity {k}", g) for k, g in c["by_severity"].items()]
            groups += [(f"kind {k}", g) for k, g in c["by_kind"].items()]
            for label, g in groups:
                if g and g["n"]:
                    lines.append(f"{label:<24}{g['psnr_before']:>12.2f}{g['psnr_after']:>12.2f}"
                                 f"{fmt_metric(g['gain_psnr'], ci_digits=2):>24}{g['gain_ssim']:>11.4f}{g['repaired']:>10.3f}"
                                 f"{g['collateral']:>12.4f}")
        lines.append("repaired: fraction of the view the repair replaced; collateral: fraction of the pixels the "
                     "generator left unchanged that the repair changed")
        return "\n".join(lines)


def _group(group: list[dict], n_boot: int, seed: int) -> dict[str, Any]:
    from artifacts.metrics import bootstrap_ci

    if not group:
        return {"n": 0}
    gain = np.array([st["gain_psnr"] for st in group], float)
    interval = bootstrap_ci(len(gain), lambda i: float(gain[i].mean()), n_boot=n_boot, seed=seed) if n_boot else None
    mean = {k: float(np.mean([st[k] for st in group])) for k in
            ("psnr_before", "psnr_after", "gain_ssim", "repaired", "collateral")}
    return {"n": len(group), "gain_psnr": {"value": float(gain.mean()),
                                           "ci": None if interval is None else [float(v) for v in interval]}, **mean}

