"""Evaluation adapter for X-AIGD: where a synthetic-image detector's heatmap falls, per artifact label.

``--data`` is one X-AIGD parquet file or a folder of them (:mod:`artifacts.datasets.xaigd`); the
images and per-label masks are written once under ``OUT/xaigd-files`` and every ``synthetic/*``
model usable offline runs over the images through the engine.

Localisation is reported per *region*: each of the 7 labels of
:mod:`artifacts.detectors.synthetic.taxonomy`, each of its 3 levels (the union of the level's
labels) and ``any`` (every annotated artifact). A label or level row uses the images where it is
annotated; the ``any`` row uses every image with a heatmap, images without artifacts adding
false positives only (as X-AIGD's official category-agnostic evaluation). Per region:

- ``auc``: pixel ROC AUC of the heatmap against the region's mask, mean over images (threshold-free;
  images where the region covers the whole image have no AUC);
- ``f1_fixed`` / ``iou_fixed`` / ``precision_fixed`` / ``recall_fixed``: ``heatmap >= 0.5`` against the
  mask with TP/FP/FN pooled over the images, X-AIGD's PixF1 / IoU / PixP / PixR;
- ``f1_best``: the same at the one threshold that maximises it on this data (optimistic, labelled so;
  chosen again inside every bootstrap resample);
- ``hit_fixed`` / ``hit_best``: the share of the region's area with ``heatmap >= t``, mean over
  images ("hit rate"), at 0.5 and at the best-F1 threshold;
- ``f1_every_pixel``: pooled F1 of calling every pixel an artifact, for reference;
- ``category``: when Detections carry ``categories`` for the label (or level), the image-level ROC
  AUC of that score for "this label is annotated here" against "it is not".

Image level: the mean ``score`` and the share called synthetic at 0.5, overall and per generator
(X-AIGD's annotated images are generated, so this is a detection rate, not an accuracy).
Detections without a heatmap count as ``no_heatmap`` (localisation n/a); ``not_applicable`` and
errors are counted and left out. Every figure but the per-generator ones has a 95 % bootstrap
interval over images.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from artifacts.datasets.xaigd import XAIGDFiles, iter_xaigd, materialise
from artifacts.detectors.synthetic.taxonomy import LABELS, LEVEL_OF, LEVELS, canonical_label
from artifacts.metrics import THRESHOLDS, bootstrap_ci, roc_auc, scores_from_counts

FIXED = 0.5
I_FIXED = int(np.flatnonzero(THRESHOLDS == FIXED)[0])
ANY = "any"
#: the rows of the tables: labels, then levels, then every artifact
REGIONS: tuple[str, ...] = LABELS + tuple(LEVELS) + (ANY,)


def region_labels(region: str) -> tuple[str, ...]:
    """The labels a region unites."""
    if region == ANY:
        return LABELS
    return LEVELS.get(region, (region,))


class XAIGDAdapter:
    task = "xaigd"  # the evaluation's name
    model_task = "synthetic"  # the models evaluated

    def __init__(self, resize_masks: bool = False, strict: bool = True):
        self.resize_masks, self.strict = resize_masks, strict

    # -- data ----------------------------------------------------------------------------
    def read(self, data: str, work: Path | None = None) -> list[XAIGDFiles]:
        folder = Path(work) / "xaigd-files" if work is not None else Path(tempfile.mkdtemp(prefix="xaigd-"))
        samples = materialise(iter_xaigd(data, strict=self.strict), folder)
        if not samples:
            raise FileNotFoundError(f"{data}: no rows in the X-AIGD parquet file(s)")
        return samples

    @staticmethod
    def describe(samples: list[XAIGDFiles]) -> dict[str, Any]:
        return {
            "images": len(samples),
            "annotated": sum(bool(s.masks) for s in samples),
            "generators": len({s.generator for s in samples}),
            "labels": {label: sum(label in s.masks for s in samples) for label in LABELS},
            "skipped_labels": sum(len(s.skipped) for s in samples),
        }

    @staticmethod
    def default_models() -> list[str]:
        from artifacts.eval.runner import usable_models

        return usable_models("synthetic")

    def perturb(self, samples: list[XAIGDFiles], p, folder: Path) -> list[XAIGDFiles]:
        """Perturbed copies (written once, reused); masks follow a resize (nearest neighbour)."""
        import cv2

        from artifacts.eval.robustness import perturbed_path, write_perturbed
        from artifacts.io import save_image

        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for i, s in enumerate(samples):
            stem = f"{i:05d}_{Path(s.image).stem}"
            image = perturbed_path(folder / stem, p)
            size_file = folder / f"{stem}.size"
            if not image.exists() or not size_file.exists():
                _, (h, w) = write_perturbed(s.image, p, image, seed_text=s.name)
                size_file.write_text(f"{w} {h}")
            w, h = (int(v) for v in size_file.read_text().split())
            masks = dict(s.masks)
            if (h, w) != (s.height, s.width):
                masks = {}
                for label in s.masks:
                    target = folder / f"{stem}_{label}.png"
                    if not target.exists():
                        m = cv2.resize(s.load_mask(label).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
                        save_image(target, m > 0)
                    masks[label] = str(target)
            out.append(XAIGDFiles(s.name, str(image), s.generator, s.uid, w, h, masks, s.skipped))
        return out

    # -- per item ------------------------------------------------------------------------
    def stats(self, samples: list[XAIGDFiles], dets: list) -> list[dict[str, Any]]:
        out = []
        for s, det in zip(samples, dets):
            st: dict[str, Any] = {"name": s.name, "generator": s.generator, "present": s.present,
                                  "score": None, "categories": {}, "regions": {}}
            if det is None:
                st["status"] = "error"
                out.append(st)
                continue
            st["status"] = det.status.value
            st["score"] = det.score
            st["categories"] = _taxonomy_scores(det.categories)
            if det.score is not None and det.heatmap is None:
                st["status"] = "no_heatmap"
            if det.heatmap is not None:
                try:
                    masks = {label: self._mask(s, label, det.heatmap.shape) for label in s.present}
                except ValueError as exc:
                    st.update(status="mask_error", error=str(exc))
                    out.append(st)
                    continue
                image = _ImageCounts(det.heatmap)
                for region in REGIONS:
                    parts = [masks[label] for label in region_labels(region) if label in masks]
                    if parts or region == ANY:
                        gt = np.logical_or.reduce(parts) if parts else np.zeros(det.heatmap.shape, bool)
                        st["regions"][region] = image.region(gt)
            out.append(st)
        return out

    def _mask(self, s: XAIGDFiles, label: str, shape: tuple[int, int]) -> np.ndarray:
        mask = s.load_mask(label)
        if mask.shape != tuple(shape):
            if not self.resize_masks:
                raise ValueError(f"mask {label} of {s.name} is {mask.shape[1]}x{mask.shape[0]} but the heatmap is "
                                 f"{shape[1]}x{shape[0]} (pass resize_masks to resize masks with nearest neighbour)")
            import cv2

            mask = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        return mask

    # -- summary -------------------------------------------------------------------------
    def summarise(self, stats: list[dict], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
        def ci(n, fn):
            return bootstrap_ci(n, fn, n_boot=n_boot, seed=seed) if n_boot else None

        keys = ("ok", "not_applicable", "error", "no_heatmap", "mask_error")
        summary: dict[str, Any] = {"counts": {"items": len(stats), **{k: sum(st["status"] == k for st in stats)
                                                                       for k in keys}}}
        scored = [st for st in stats if st["score"] is not None]
        if scored:
            s = np.array([st["score"] for st in scored], float)
            called = s >= FIXED
            gens = {g: np.array([st["score"] for st in scored if st["generator"] == g], float)
                    for g in sorted({st["generator"] for st in scored})}
            summary["image"] = {
                "n": len(s),
                "mean_score": _metric(s.mean(), ci(len(s), lambda i: s[i].mean())),
                "called_fixed": _metric(called.mean(), ci(len(s), lambda i: called[i].mean())),
                "per_generator": {g: {"n": len(v), "mean_score": float(v.mean()), "called_fixed": float((v >= FIXED).mean())}
                                  for g, v in gens.items()},
            }
        regions = {}
        for region in REGIONS:
            labels = region_labels(region)
            n_present = sum(any(label in st["present"] for label in labels) for st in stats)
            entries = [st["regions"][region] for st in stats if region in st["regions"]]
            regions[region] = {
                "level": LEVEL_OF.get(region, region if region in LEVELS else None),
                "n_present": n_present,
                "n_localised": len(entries),
                "localisation": _localisation(entries, ci) if entries else None,
                "category": _category(stats, region, ci) if region != ANY else None,
            }
        summary["regions"] = regions
        return summary

    # -- text ----------------------------------------------------------------------------
    @staticmethod
    def format(result: dict[str, Any]) -> str:
        d = result["samples"]
        lines = [f"data: {result['data']}  ({d['images']} images, {d['annotated']} with annotated artifacts, "
                 f"{d['generators']} generators" + (f", {d['skipped_labels']} labels skipped" if d["skipped_labels"]
                                                    else "") + ")",
                 f"intervals: 95 % bootstrap over images ({result['bootstrap']} resamples); pixel F1 pools TP/FP/FN "
                 "over images (X-AIGD's PixF1); 'best' = one threshold chosen on this data (optimistic); "
                 "hit = share of the region's area with heatmap >= t; F1 all = F1 if every pixel is called an "
                 "artifact (a best F1 near it at a low t means the map does not localise); n = images localised / "
                 "annotated"]
        for model, entry in result["models"].items():
            c = entry["clean"]
            n = c["counts"]
            lines += ["", f"== {model}  (weights {entry['weights']}) ==",
                      f"items {n['items']}: ok {n['ok']}, no heatmap (localisation n/a) {n['no_heatmap']}, "
                      f"not applicable {n['not_applicable']}, errors {n['error']}"
                      + (f", mask size errors {n['mask_error']}" if n["mask_error"] else "")]
            img = c.get("image")
            if img:
                lines.append(f"image score: mean {_fmt(img['mean_score'])}; called synthetic at 0.5: "
                             f"{_fmt(img['called_fixed'])}")
                lines.append("  per generator: " + ", ".join(
                    f"{g} {v['mean_score']:.3f}/{v['called_fixed']:.2f} (n={v['n']})"
                    for g, v in img["per_generator"].items()) + "  (mean score / called at 0.5)")
            lines.append(f"{'region':<29}{'n':>7}  {'pixel AUC':<22}{'F1@0.5':>7}{'IoU@0.5':>8}  "
                         f"{'F1 best (t)':<14}{'F1 all':>7}{'hit@0.5':>8}{'hit best':>9}  category AUC")
            for region, r in c["regions"].items():
                loc = r["localisation"]
                cat = r["category"]
                cat_txt = "n/a" if cat is None or cat.get("auc") is None else _fmt(cat["auc"])
                count = f"{r['n_localised']}/{r['n_present']}" if region != ANY else str(r["n_localised"])
                if loc is None:
                    lines.append(f"{region:<29}{count:>7}  {'n/a':<22}{'':>7}{'':>8}  {'':<14}{'':>7}{'':>8}{'':>9}"
                                 f"  {cat_txt}")
                    continue
                best = f"{loc['f1_best']['value']:.3f} ({loc['best_threshold']:.2f})"
                lines.append(f"{region:<29}{count:>7}  {_fmt(loc['auc']):<22}"
                             f"{loc['f1_fixed']['value']:>7.3f}{loc['iou_fixed']['value']:>8.3f}  {best:<14}"
                             f"{loc['f1_every_pixel']:>7.3f}{_val(loc['hit_fixed']):>8}{_val(loc['hit_best']):>9}"
                             f"  {cat_txt}")
            if entry.get("sweep"):
                lines.append(f"robustness ('any' region): {'setting':<12}{'F1@0.5':>8}{'pixel AUC':>10}"
                             f"{'mean score':>11}  applicable")
                for name, sw in [("clean", c)] + list(entry["sweep"].items()):
                    loc = sw["regions"][ANY]["localisation"] or {}
                    lines.append(f"{'':26}{name:<12}{_val(loc.get('f1_fixed')):>8}{_val(loc.get('auc')):>10}"
                                 f"{_val((sw.get('image') or {}).get('mean_score')):>11}"
                                 f"  {sw['counts']['ok'] + sw['counts']['no_heatmap']}/{sw['counts']['items']}")
        return "\n".join(lines)


def _taxonomy_scores(categories: dict[str, float]) -> dict[str, float]:
    """The Detection's categories that name a label or level (aliases resolved), others dropped."""
    out: dict[str, float] = {}
    for key, value in categories.items():
        try:
            name = canonical_label(key, levels=True)
        except ValueError:
            continue
        out[name] = max(float(value), out.get(name, float("-inf")))
    return out


class _ImageCounts:
    """One heatmap's threshold bins, fixed-threshold decision and pixel ranks, computed once and
    shared by every region of the image. ``region(gt)`` gives what
    :func:`artifacts.metrics.threshold_counts` and :func:`artifacts.metrics.roc_auc` would for
    that mask (the same binning, the same midrank AUC), exact at the fixed threshold 0.5."""

    def __init__(self, heatmap: np.ndarray):
        self.heatmap = heatmap
        self.bins = np.clip(np.floor(heatmap * 100.0 + 1e-6), 0, 100).astype(np.int64)  # as threshold_counts
        self.hist = np.bincount(self.bins.ravel(), minlength=101)
        self.pred = heatmap >= FIXED
        self.n_pred = int(np.count_nonzero(self.pred))
        self._ranks = None

    def ranks(self) -> np.ndarray:
        if self._ranks is None:
            from scipy.stats import rankdata

            self._ranks = rankdata(self.heatmap.astype(np.float64)).reshape(self.heatmap.shape)
        return self._ranks

    def region(self, gt: np.ndarray) -> dict[str, Any]:
        pos = np.bincount(self.bins[gt], minlength=101)
        tp = pos[::-1].cumsum()[::-1]  # pixels with bin >= k
        fp = (self.hist - pos)[::-1].cumsum()[::-1]
        area, size = int(pos.sum()), int(gt.size)
        fn = area - tp
        hit = int(np.count_nonzero(self.pred[gt]))  # exact counts at the fixed threshold
        tp[I_FIXED], fp[I_FIXED], fn[I_FIXED] = hit, self.n_pred - hit, area - hit
        st: dict[str, Any] = {"tp": tp, "fp": fp, "fn": fn, "area": area, "size": size}
        if area:
            st["hit"] = tp / area
        if 0 < area < size:  # Mann-Whitney U with midranks, as roc_auc
            st["auc"] = float((self.ranks()[gt].sum() - area * (area + 1) / 2) / (area * (size - area)))
        return st


def _localisation(entries: list[dict], ci) -> dict[str, Any]:
    tp = np.stack([e["tp"] for e in entries]).astype(np.float64)
    fp = np.stack([e["fp"] for e in entries]).astype(np.float64)
    fn = np.stack([e["fn"] for e in entries]).astype(np.float64)
    n = len(entries)

    def pooled(idx, key="f1"):  # counts summed over the (re)sampled images, as weights: fast for many images
        w = np.bincount(idx, minlength=n).astype(np.float64)
        return scores_from_counts(w @ tp, w @ fp, w @ fn)[key]

    def best(idx):
        return int(np.argmax(pooled(idx)))

    everything = np.arange(n)
    t_best = best(everything)
    at = {k: pooled(everything, k) for k in ("f1", "iou", "precision", "recall")}
    hits = [(k, e["hit"]) for k, e in enumerate(entries) if "hit" in e]
    hit = np.stack([h for _, h in hits]) if hits else None
    aucs = np.array([e["auc"] for e in entries if "auc" in e])
    area = float(sum(e["area"] for e in entries))
    size = float(sum(e["size"] for e in entries))
    return {
        "n_images": n,
        "auc": _metric(aucs.mean(), ci(len(aucs), lambda i: aucs[i].mean())) if aucs.size else None,
        "f1_fixed": _metric(at["f1"][I_FIXED], ci(n, lambda i: pooled(i)[I_FIXED])),
        "iou_fixed": _metric(at["iou"][I_FIXED], ci(n, lambda i: pooled(i, "iou")[I_FIXED])),
        "precision_fixed": _metric(at["precision"][I_FIXED], ci(n, lambda i: pooled(i, "precision")[I_FIXED])),
        "recall_fixed": _metric(at["recall"][I_FIXED], ci(n, lambda i: pooled(i, "recall")[I_FIXED])),
        "f1_best": _metric(at["f1"][t_best], ci(n, lambda i: pooled(i)[best(i)])),
        "best_threshold": float(THRESHOLDS[t_best]),
        "hit_fixed": None if hit is None else _metric(hit[:, I_FIXED].mean(),
                                                      ci(len(hit), lambda i: hit[i, I_FIXED].mean())),
        "hit_best": None if hit is None else _metric(hit[:, t_best].mean(), None),
        "area_share": area / size if size else 0.0,
        "f1_every_pixel": 2 * area / (area + size) if size else 0.0,
    }


def _category(stats: list[dict], region: str, ci) -> dict[str, Any] | None:
    """Image-level AUC of ``categories[region]`` for "region annotated" (None when no Detection
    scores the region)."""
    labels = region_labels(region)
    rows = [st for st in stats if st["score"] is not None and region in st["categories"]]
    if not rows:
        return None
    y = np.array([any(label in st["present"] for label in labels) for st in rows], bool)
    s = np.array([st["categories"][region] for st in rows], float)
    out: dict[str, Any] = {"n_pos": int(y.sum()), "n_neg": int((~y).sum()), "auc": None}
    if y.any() and not y.all():
        out["auc"] = _metric(roc_auc(s, y), ci(len(s), lambda i: roc_auc(s[i], y[i])))
    return out


def _metric(value, interval) -> dict[str, Any]:
    return {"value": float(value), "ci": None if interval is None else [float(interval[0]), float(interval[1])]}


def _fmt(m) -> str:
    from artifacts.eval.runner import fmt_metric

    return fmt_metric(m)


def _val(m) -> str:
    return "n/a" if m is None else f"{m['value']:.3f}"
