"""Evaluation of view metrics (task ``views``) on degraded real views with ground truth.

``--data`` is a scene folder (NeRF-synthetic, LLFF, COLMAP: :func:`artifacts.recon3d.scenes.load_scene`)
listed in the split file ``artifacts/datasets/splits/views.json``, which names its reference
views and the views to evaluate (``--split eval``, the default) or to tune on (``--split tune``).
Each evaluated view is degraded by the reconstruction-artifact generator
(:mod:`artifacts.datasets.view_artifacts`) with every kind at every severity of the split file;
the evaluated view is never one of its references. Everything is brought to ``max_side`` (400 px
long side) first. Per degraded view the true error is its PSNR and SSIM against the clean view;
the metric's per-view score should rank views like the true error (Spearman correlation of the
score with -PSNR and with -SSIM) and its map should find the generator's mask (pixel ROC AUC,
mean over views). Everything is reported pooled and per severity (curves), per kind, and for the
kinds used when tuning vs the held-out kinds.

Baselines, computed on the same views: ``ssim-fullref`` (1 - the SSIM map against the clean
view: it sees the ground truth, an upper bound), and two no-reference lower bounds that see only
the degraded view: ``edge-energy`` (gradient magnitude, normalised) and ``nr-mscn`` (loss of
natural-scene structure: 1 - local mean |MSCN| coefficient, the normalisation BRISQUE and NIQE
build on).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artifacts.metrics import bootstrap_ci, roc_auc
from artifacts.metrics.ranking import spearman

BASELINES = ("ssim-fullref", "edge-energy", "nr-mscn")


@dataclass
class ViewSample:
    name: str
    image: str  # the degraded view
    clean: str
    mask: str
    scene: str
    kind: str
    severity: float
    refs: list[str] = field(default_factory=list)
    psnr: float = float("nan")
    ssim: float = float("nan")

    @property
    def files(self) -> dict[str, str]:
        from artifacts.detectors.views.inputs import REF_PREFIX

        return {"image": self.image, **{f"{REF_PREFIX}{i:04d}": r for i, r in enumerate(self.refs)}}


class ViewsAdapter:
    task = "views"

    def __init__(self, split: str = "eval", kinds: list[str] | None = None, seed: int = 1):
        if split not in ("eval", "tune"):
            raise ValueError(f"split must be 'eval' or 'tune', got {split!r}")
        self.split, self.kinds, self.seed = split, kinds, seed

    # -- data ----------------------------------------------------------------------------
    def read(self, data: str, work: Path | None = None) -> list[ViewSample]:
        from artifacts.datasets.splits import load_split
        from artifacts.datasets.view_artifacts import DEFAULT_CONFIG, load_view, select_kinds, write_view_set
        from artifacts.io import load_image, save_image
        from artifacts.metrics.quality import psnr, ssim
        from artifacts.recon3d.scenes import load_scene

        split = load_split("views")
        name = Path(data).resolve().name
        if name not in split["scenes"]:
            raise ValueError(f"{data}: scene {name!r} is not in artifacts/datasets/splits/views.json "
                             f"(known: {', '.join(split['scenes'])}); add its reference and evaluated views there")
        spec = split["scenes"][name]
        chosen = spec[self.split]
        if not chosen:
            raise ValueError(f"scene {name!r} has no {self.split!r} views (held out: nothing is tuned on it)")
        views = {Path(v.image_path).stem: Path(v.image_path) for v in load_scene(data).views}
        missing = [v for v in list(chosen) + list(spec["ref_names"] if spec["ref_names"] != "all" else [])
                   if v not in views]
        if missing:
            raise ValueError(f"{data}: views named in the split file are missing: {', '.join(missing)}")
        ref_names = list(views) if spec["ref_names"] == "all" else list(spec["ref_names"])
        work = Path(work or Path("artifacts-eval") / name) / "data" / name
        # the tuning split only ever sees the tuning kinds; the evaluation sees every kind
        kinds = select_kinds(self.kinds or (split["tuning_kinds"] if self.split == "tune" else None))
        if self.split == "tune" and set(kinds) & set(split["held_out_kinds"]):
            raise ValueError(f"the tuning split may not use the held-out kinds {split['held_out_kinds']}")
        # references, composited and resized as the degraded views are
        ref_paths = {}
        for r in ref_names:
            path = work / "refs" / f"{r}.png"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                save_image(path, load_view(views[r], DEFAULT_CONFIG, split["max_side"])[0])
            ref_paths[r] = str(path)
        manifest = write_view_set([views[v] for v in chosen], work / self.split, seed=self.seed,
                                  severities=split["severities"], kinds=kinds, max_side=split["max_side"])
        samples = []
        for entry in manifest:
            stem = Path(entry["view"]).stem
            root = work / self.split
            s = ViewSample(entry["name"], str(root / entry["image"]), str(root / entry["clean"]),
                           str(root / entry["mask"]), name, entry["kind"], float(entry["severity"]),
                           refs=[p for r, p in ref_paths.items() if r != stem])
            clean, degraded = load_image(s.clean).pixels, load_image(s.image).pixels
            s.psnr, s.ssim = psnr(clean, degraded), ssim(clean, degraded)
            samples.append(s)
        return samples

    @staticmethod
    def describe(samples: list[ViewSample]) -> dict[str, Any]:
        return {"views": len(samples), "scenes": sorted({s.scene for s in samples}),
                "kinds": sorted({s.kind for s in samples}), "severities": sorted({s.severity for s in samples}),
                "references": sorted({len(s.refs) for s in samples})}

    @staticmethod
    def default_models() -> list[str]:
        return ["views/puzzlesim"]

    # -- per item ------------------------------------------------------------------------
    def stats(self, samples: list[ViewSample], dets: list) -> list[dict[str, Any]]:
        from artifacts.io import load_image
        from artifacts.metrics import pixel_scores

        out = []
        for s, det in zip(samples, dets):
            st = {"name": s.name, "scene": s.scene, "kind": s.kind, "severity": s.severity, "psnr": s.psnr,
                  "ssim": s.ssim, "score": None, "status": "error" if det is None else det.status.value}
            if det is not None and det.heatmap is not None:
                gt = load_image(s.mask).pixels[..., 0] > 127
                st["score"] = det.score
                if gt.any() and not gt.all():
                    st["pixel_auc"] = roc_auc(det.heatmap, gt)
                    st["f1"] = pixel_scores(det.mask, gt)["f1"]
            out.append(st)
        return out

    def baselines(self, samples: list[ViewSample], n_boot: int) -> dict[str, Any]:
        """Summaries of the reference lines (see the module docstring), computed here."""
        from artifacts.io import load_image
        from artifacts.types import Detection

        dets: dict[str, list] = {b: [] for b in BASELINES}
        for s in samples:
            clean, degraded = load_image(s.clean).pixels, load_image(s.image).pixels
            for b in BASELINES:
                heat = baseline_map(b, degraded, clean)
                dets[b].append(Detection(score=float(heat.mean()), heatmap=heat, threshold=0.5))
        return {b: self.summarise(self.stats(samples, d), n_boot=n_boot) for b, d in dets.items()}

    # -- summary -------------------------------------------------------------------------
    def summarise(self, stats: list[dict], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
        # a degradation that changed no pixel (e.g. a weak colour shift over a white background)
        # has no true error to rank: counted apart, left out of the statistics
        unchanged = sum(not np.isfinite(st["psnr"]) for st in stats)
        ok = [st for st in stats if st["score"] is not None and np.isfinite(st["psnr"])]
        summary: dict[str, Any] = {"counts": {"items": len(stats), "ok": len(ok), "unchanged": unchanged,
                                              "error": sum(st["status"] == "error" for st in stats)}}
        return {**summary, **grouped(ok, _group, n_boot, seed)}

    @staticmethod
    def picture(result: dict[str, Any], out_dir: Path) -> Path:
        """``OUT/curves.png``: pixel AUC and Spearman over severity, models and baselines."""
        from artifacts.io import save_image

        path = Path(out_dir) / "curves.png"
        save_image(path, curves_picture(result))
        return path

    # -- text ----------------------------------------------------------------------------
    @staticmethod
    def format(result: dict[str, Any]) -> str:
        d = result["samples"]
        lines = [f"data: {result['data']}  ({d['views']} degraded views of {', '.join(d['scenes'])}; kinds "
                 f"{', '.join(d['kinds'])}; references per view {d['references']}); intervals: 95 % bootstrap "
                 f"over views ({result['bootstrap']} resamples)",
                 "spearman: rank correlation of the per-view score with the true error (-PSNR, -SSIM against "
                 "the clean view); pixel AUC: the map against the generator's mask, mean per view"]
        rows = [(m, e["clean"]) for m, e in result["models"].items()]
        rows += [(f"{b} (baseline)", s) for b, s in result.get("baselines", {}).items()]
        for model, c in rows:
            n = c["counts"]
            note = f"; {n['unchanged']} left unchanged by the generator, not ranked" if n.get("unchanged") else ""
            lines += ["", f"== {model} ==  ({n['ok']}/{n['items']} views scored{note})",
                      f"{'':24}{'spearman -PSNR':>22}{'spearman -SSIM':>22}{'pixel AUC':>22}"]
            for label, g in [("all", c["all"])] + [(f"held-out kinds", c.get("held_out_kinds")),
                                                    ("tuning kinds", c.get("tuning_kinds"))]:
                if g:
                    lines.append(f"{label:<24}{_fmt(g['spearman_psnr']):>22}{_fmt(g['spearman_ssim']):>22}"
                                 f"{_fmt(g['pixel_auc']):>22}")
            for sev, g in c["by_severity"].items():
                lines.append(f"{'severity ' + sev:<24}{_fmt(g['spearman_psnr']):>22}{_fmt(g['spearman_ssim']):>22}"
                             f"{_fmt(g['pixel_auc']):>22}")
            for kind, g in c["by_kind"].items():
                lines.append(f"{'kind ' + kind:<24}{_fmt(g['spearman_psnr']):>22}{_fmt(g['spearman_ssim']):>22}"
                             f"{_fmt(g['pixel_auc']):>22}")
        return "\n".join(lines)


def grouped(ok: list[dict], group, n_boot: int, seed: int) -> dict[str, Any]:
    """``group(stats, n_boot, seed)`` over all views (with intervals), per severity and per kind
    (without), and over the tuning vs the held-out kinds of the split file (with)."""
    from artifacts.datasets.splits import load_split

    out = {"all": group(ok, n_boot, seed),
           "by_severity": {str(v): group([st for st in ok if st["severity"] == v], 0, seed)
                           for v in sorted({st["severity"] for st in ok})},
           "by_kind": {k: group([st for st in ok if st["kind"] == k], 0, seed) for k in sorted({st["kind"] for st in ok})}}
    held = set(load_split("views")["held_out_kinds"])
    for label, part in (("tuning_kinds", [st for st in ok if st["kind"] not in held]),
                        ("held_out_kinds", [st for st in ok if st["kind"] in held])):
        if part:
            out[label] = group(part, n_boot, seed)
    return out


def _group(group: list[dict], n_boot: int, seed: int) -> dict[str, Any]:
    score = np.array([st["score"] for st in group], float)
    neg_psnr = -np.array([st["psnr"] for st in group], float)
    neg_ssim = -np.array([st["ssim"] for st in group], float)
    aucs = np.array([st["pixel_auc"] for st in group if "pixel_auc" in st], float)

    def metric(fn, n):
        try:
            value = fn(np.arange(n))
        except ValueError:
            return None
        interval = bootstrap_ci(n, fn, n_boot=n_boot, seed=seed) if n_boot else None
        return {"value": float(value), "ci": None if interval is None else [float(v) for v in interval]}

    return {"n": len(group),
            "spearman_psnr": metric(lambda i: spearman(score[i], neg_psnr[i]), len(group)),
            "spearman_ssim": metric(lambda i: spearman(score[i], neg_ssim[i]), len(group)),
            "pixel_auc": metric(lambda i: _mean(aucs[i]), len(aucs))}


def _mean(x: np.ndarray) -> float:
    if x.size == 0:
        raise ValueError("empty")
    return float(x.mean())


def _fmt(m) -> str:
    from artifacts.eval.runner import fmt_metric

    return fmt_metric(m, ci_digits=2)


def baseline_map(name: str, degraded: np.ndarray, clean: np.ndarray | None = None) -> np.ndarray:
    """H x W float32 map in [0, 1] of a baseline (``ssim-fullref`` needs ``clean``)."""
    import cv2

    if name == "ssim-fullref":
        from artifacts.metrics.quality import ssim_map

        return np.clip(1.0 - ssim_map(clean, degraded), 0, 1).astype(np.float32)
    luma = cv2.cvtColor(np.ascontiguousarray(degraded), cv2.COLOR_RGB2GRAY).astype(np.float32)
    if name == "edge-energy":
        g = np.hypot(cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3))
        g = cv2.GaussianBlur(g, (0, 0), 2.0)
        return np.clip(g / max(float(np.percentile(g, 99)), 1e-6), 0, 1).astype(np.float32)
    if name == "nr-mscn":
        mu = cv2.GaussianBlur(luma, (7, 7), 7 / 6)
        sigma = np.sqrt(np.abs(cv2.GaussianBlur(luma * luma, (7, 7), 7 / 6) - mu * mu))
        mscn = (luma - mu) / (sigma + 1.0)
        activity = cv2.GaussianBlur(np.abs(mscn), (0, 0), 4.0)
        return np.clip(1.0 - activity / 0.8, 0, 1).astype(np.float32)
    raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")


COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14))  # RGB


def curves_picture(result: dict[str, Any], size: tuple[int, int] = (360, 300)) -> np.ndarray:
    """Two panels, pixel AUC and Spearman(score, -SSIM) over severity, one line per model and
    baseline (dashed: baselines); an RGB uint8 image."""
    import cv2

    rows = [(m, e["clean"]) for m, e in result["models"].items()]
    rows += [(b, s) for b, s in result.get("baselines", {}).items()]
    w, h = size
    pad_l, pad_r, pad_t, pad_b = 44, 10, 26, 34
    panels = []
    for key, title, lo in (("pixel_auc", "pixel AUC", 0.0), ("spearman_ssim", "Spearman(score, -SSIM)", -1.0)):
        img = np.full((h, w, 3), 255, np.uint8)
        x0, x1, y0, y1 = pad_l, w - pad_r, pad_t, h - pad_b
        cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
        cv2.putText(img, title, (x0, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)

        def ypix(v):
            return int(round(y1 - (v - lo) / (1.0 - lo) * (y1 - y0)))

        for tick in np.linspace(lo, 1.0, 5):
            cv2.line(img, (x0 - 3, ypix(tick)), (x0, ypix(tick)), (0, 0, 0), 1)
            cv2.putText(img, f"{tick:.2f}", (2, ypix(tick) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        sevs = sorted({float(s) for _, c in rows for s in c["by_severity"]})
        if not sevs:
            panels.append(img)
            continue

        def xpix(s):
            return x0 + 8 + int(round((sevs.index(s) / max(1, len(sevs) - 1)) * (x1 - x0 - 16)))

        for s in sevs:
            cv2.putText(img, f"{s:g}", (xpix(s) - 10, y1 + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, "severity", (x1 - 60, h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        for i, (name, c) in enumerate(rows):
            colour = COLOURS[i % len(COLOURS)]
            pts = [(xpix(float(s)), ypix(g[key]["value"])) for s, g in c["by_severity"].items() if g.get(key)]
            for a, b in zip(pts, pts[1:]):
                if i < len(result["models"]):
                    cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
                else:  # baselines dashed
                    for t in np.linspace(0, 1, 9)[::2]:
                        p = (int(a[0] + (b[0] - a[0]) * t), int(a[1] + (b[1] - a[1]) * t))
                        q = (int(a[0] + (b[0] - a[0]) * min(1, t + 0.125)), int(a[1] + (b[1] - a[1]) * min(1, t + 0.125)))
                        cv2.line(img, p, q, colour, 1, cv2.LINE_AA)
            for p in pts:
                cv2.circle(img, p, 3, colour, -1, cv2.LINE_AA)
        panels.append(img)
    legend = np.full((18 * len(rows) + 8, 2 * w, 3), 255, np.uint8)
    for i, (name, _) in enumerate(rows):
        colour = COLOURS[i % len(COLOURS)]
        cv2.line(legend, (10, 12 + 18 * i), (40, 12 + 18 * i), colour, 2)
        label = name + ("" if i < len(result["models"]) else " (baseline)")
        cv2.putText(legend, label, (48, 16 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([np.concatenate(panels, axis=1), legend], axis=0)
