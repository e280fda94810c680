"""Evaluation adapter for ``manipulation``: pixel- and image-level metrics on IML datasets.

Pixel level (tampered images with a heatmap): F1 and IoU of ``heatmap >= t`` averaged over
images, at the fixed threshold 0.5 and at the best single threshold for the whole dataset (the
threshold is chosen on the data it is reported on: an optimistic upper reference, labelled so),
and the mean per-image ROC AUC (threshold-free). Image level (tampered vs authentic, where both
exist): ROC AUC and average precision of the score (threshold-free), accuracy at 0.5 and at the
best threshold. For reference the pixel F1 of calling every pixel manipulated is reported too
(a low-threshold "best" F1 near it means the map does not localise). Every figure carries a 95 % bootstrap interval over images (the best threshold is
chosen again inside every resample). Images a detector reports ``not_applicable`` are left out
and counted; so are errors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from artifacts.datasets.iml import IMLSample, read_iml
from artifacts.eval.scores import fmt as _fmt
from artifacts.eval.scores import FIXED, I_FIXED, image_lines, image_summary
from artifacts.eval.scores import metric as _metric
from artifacts.metrics import THRESHOLDS, bootstrap_ci, pixel_scores, roc_auc, scores_from_counts, threshold_counts



class ManipulationAdapter:
    task = "manipulation"

    def __init__(self, resize_masks: bool = False):
        self.resize_masks = resize_masks

    # -- data ----------------------------------------------------------------------------
    def read(self, data: str, work: Path | None = None) -> list[IMLSample]:
        samples = read_iml(data)
        if not samples:
            raise FileNotFoundError(f"{data}: no images found")
        return samples

    @staticmethod
    def describe(samples: list[IMLSample]) -> dict[str, int]:
        n_tp = sum(s.tampered for s in samples)
        return {"tampered": n_tp, "authentic": len(samples) - n_tp}

    @staticmethod
    def default_models() -> list[str]:
        from artifacts.eval.runner import usable_models

        return usable_models("manipulation")

    def perturb(self, samples: list[IMLSample], p, folder: Path) -> list[IMLSample]:
        """Perturbed copies (written once, reused) with masks resized along when needed."""
        from artifacts.eval.robustness import perturbed_path, write_perturbed
        from artifacts.io import save_image

        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for i, s in enumerate(samples):
            stem = folder / f"{i:05d}_{Path(s.image).stem}"
            image = perturbed_path(stem, p)
            mask = None if s.mask is None else stem.with_name(stem.name + "_gt.png")
            if not image.exists() or (mask is not None and not mask.exists()):
                src_shape, new_shape = write_perturbed(s.image, p, image, seed_text=s.name)
                if mask is not None:
                    save_image(mask, s.load_mask(src_shape, resize=self.resize_masks) if new_shape == src_shape
                               else _resized_mask(s, src_shape, new_shape, self.resize_masks))
            out.append(IMLSample(str(image), None if mask is None else str(mask), s.name))
        return out

    # -- per item ------------------------------------------------------------------------
    def stats(self, samples: list[IMLSample], dets: list) -> list[dict[str, Any]]:
        out = []
        for s, det in zip(samples, dets):
            st: dict[str, Any] = {"name": s.name, "tampered": s.tampered, "score": None}
            if det is None:
                st["status"] = "error"
            else:
                st["status"] = det.status.value
                st["score"] = det.score
            if det is not None and det.heatmap is not None and s.tampered:
                try:
                    gt = s.load_mask(det.heatmap.shape, resize=self.resize_masks)
                except ValueError as exc:
                    st.update(status="mask_error", error=str(exc))
                    out.append(st)
                    continue
                fixed = pixel_scores(det.heatmap >= FIXED, gt)
                tp, fp, fn = threshold_counts(det.heatmap, gt)
                curve = scores_from_counts(tp, fp, fn)
                curve["f1"][I_FIXED], curve["iou"][I_FIXED] = fixed["f1"], fixed["iou"]  # exact at 0.5
                st.update(f1_curve=curve["f1"], iou_curve=curve["iou"],
                          f1_all=2 * gt.sum() / (gt.sum() + gt.size))  # F1 of calling every pixel manipulated
                if gt.any() and not gt.all():
                    st["pixel_auc"] = roc_auc(det.heatmap, gt)
            out.append(st)
        return out

    # -- summary -------------------------------------------------------------------------
    def summarise(self, stats: list[dict], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
        def ci(n, fn):
            return bootstrap_ci(n, fn, n_boot=n_boot, seed=seed) if n_boot else None

        counts = {k: sum(st["status"] == k for st in stats) for k in ("ok", "not_applicable", "error", "mask_error")}
        summary: dict[str, Any] = {"counts": {"items": len(stats), **counts}}
        pix = [st for st in stats if "f1_curve" in st]
        if pix:
            f1 = np.stack([st["f1_curve"] for st in pix])
            iou = np.stack([st["iou_curve"] for st in pix])

            def best(idx):
                return int(np.argmax(f1[idx].mean(0)))

            t_best = best(np.arange(len(pix)))
            aucs = np.array([st["pixel_auc"] for st in pix if "pixel_auc" in st])
            summary["pixel"] = {
                "n_images": len(pix),
                "f1_fixed": _metric(f1[:, I_FIXED].mean(), ci(len(pix), lambda i: f1[i, I_FIXED].mean())),
                "iou_fixed": _metric(iou[:, I_FIXED].mean(), ci(len(pix), lambda i: iou[i, I_FIXED].mean())),
                "f1_best": _metric(f1[:, t_best].mean(), ci(len(pix), lambda i: f1[i, best(i)].mean())),
                "iou_best": _metric(iou[:, t_best].mean(), ci(len(pix), lambda i: iou[i, best(i)].mean())),
                "best_threshold": float(THRESHOLDS[t_best]),
                "f1_every_pixel": float(np.mean([st["f1_all"] for st in pix])),
                "auc": _metric(aucs.mean(), ci(len(aucs), lambda i: aucs[i].mean())) if aucs.size else None,
            }
        img = [st for st in stats if st["score"] is not None]
        image = image_summary(np.array([st["tampered"] for st in img], bool),
                              np.array([st["score"] for st in img], float), n_boot=n_boot, seed=seed)
        if image:
            image["n_tampered"], image["n_authentic"] = image.pop("n_positive"), image.pop("n_negative")
            summary["image"] = image
        return summary

    # -- text ----------------------------------------------------------------------------
    @staticmethod
    def format(result: dict[str, Any]) -> str:
        lines = [f"data: {result['data']}  ({result['samples']['tampered']} tampered, "
                 f"{result['samples']['authentic']} authentic); intervals: 95 % bootstrap over images "
                 f"({result['bootstrap']} resamples); 'best' = one threshold chosen on this data (optimistic)"]
        for model, entry in result["models"].items():
            c = entry["clean"]
            n = c["counts"]
            lines += ["", f"== {model}  (weights {entry['weights']}) ==",
                      f"items {n['items']}: ok {n['ok']}, not applicable {n['not_applicable']}, errors {n['error']}"
                      + (f", mask size errors {n['mask_error']}" if n["mask_error"] else "")]
            p, i = c.get("pixel"), c.get("image")
            lines.append(f"{'':22}{'fixed threshold 0.5':<26}best threshold")
            if p:
                lines.append(f"{'pixel F1':<22}{_fmt(p['f1_fixed']):<26}{_fmt(p['f1_best'])}  t={p['best_threshold']:.2f}")
                lines.append(f"{'pixel IoU':<22}{_fmt(p['iou_fixed']):<26}{_fmt(p['iou_best'])}  t={p['best_threshold']:.2f}")
                lines.append(f"{'pixel AUC':<22}{_fmt(p['auc'])}   (mean per image, threshold-free)")
                lines.append(f"{'  reference':<22}pixel F1 {p['f1_every_pixel']:.3f} if every pixel is called manipulated")
            else:
                lines.append("pixel metrics         n/a (no applicable tampered image)")
            if i:
                lines += image_lines(i, prefix="image ", width=22)
            else:
                lines.append("image metrics         n/a (needs scored tampered and authentic images)")
            if entry["sweep"]:
                lines.append(f"robustness at 0.5: {'setting':<12}{'pixel F1':>9}{'pixel AUC':>10}{'image AUC':>10}  applicable")
                for name, sw in [("clean", c)] + list(entry["sweep"].items()):
                    lines.append(f"{'':19}{name:<12}{_val(sw, 'pixel', 'f1_fixed'):>9}{_val(sw, 'pixel', 'auc'):>10}"
                                 f"{_val(sw, 'image', 'auc'):>10}  {sw['counts']['ok']}/{sw['counts']['items']}")
        return "\n".join(lines)


def _resized_mask(s: IMLSample, src_shape, new_shape, resize_masks: bool) -> np.ndarray:
    import cv2

    mask = s.load_mask(src_shape, resize=resize_masks).astype(np.uint8)
    return cv2.resize(mask, (new_shape[1], new_shape[0]), interpolation=cv2.INTER_NEAREST) > 0


def _val(summary, part, key) -> str:
    m = (summary.get(part) or {}).get(key)
    return "n/a" if m is None else f"{m['value']:.3f}"
