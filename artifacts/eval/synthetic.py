"""Evaluation adapter for ``synthetic``: real vs generated images in a 0_real/1_fake layout.

Image level only (SID data has no masks): ROC AUC and average precision (threshold-free),
accuracy at the fixed threshold 0.5 and at the best single threshold (chosen on the reported
data: optimistic, labelled so), each with a 95 % bootstrap interval over images; per source
(generator of the fakes) the share flagged at 0.5 and the AUC of that source's fakes against all
real images. Provenance is reported apart from the content score: how many inputs carried a
generation record (a declaration of generation in PNG text chunks, C2PA, XMP/IPTC) and how many drew input warnings. The robustness
sweep re-encodes or blurs both classes alike (:mod:`artifacts.eval.robustness`).

Size confounds (e.g. every fake 559x559, every real photo larger) are handled openly with
``match_size``: ``none`` (the files as they are), ``crop`` (both classes centre-cropped to the
same ``side`` x ``side``; images smaller than that are left out and counted) or ``resize`` (both
classes resized, area interpolation, to the same short side ``side``). Matched copies are
written losslessly as PNG (the container then says PNG for both classes alike); the policy is
recorded with every result.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from artifacts.datasets.sid import SIDSample, read_sid
from artifacts.eval.scores import image_lines, image_summary
from artifacts.metrics import roc_auc


MATCH_SIZE = ("none", "crop", "resize")


class SyntheticAdapter:
    task = "synthetic"

    def __init__(self, match_size: str = "none", side: int = 512):
        if match_size not in MATCH_SIZE:
            raise ValueError(f"match_size must be one of {', '.join(MATCH_SIZE)}, got {match_size!r}")
        if side < 32:
            raise ValueError(f"side must be at least 32 px, got {side}")
        self.match_size, self.side = match_size, int(side)
        self.skipped: list[str] = []

    def read(self, data: str, work: Path | None = None) -> list[SIDSample]:
        samples = read_sid(data)
        if self.match_size == "none":
            return samples
        return self._matched(samples, Path(work or ".") / f"matched-{self.match_size}{self.side}")

    def _matched(self, samples: list[SIDSample], folder: Path) -> list[SIDSample]:
        """Size-matched lossless copies (written once, reused); too-small images are left out."""
        import cv2

        from artifacts.io import image_info, load_image, save_image

        out = []
        for i, s in enumerate(samples):
            dest = folder / f"{i:05d}_{Path(s.image).stem}.png"
            if not dest.exists():
                w, h = image_info(s.image)["size"]
                if self.match_size == "crop" and min(w, h) < self.side:
                    self.skipped.append(s.name)
                    continue
                px = load_image(s.image).pixels
                if self.match_size == "crop":
                    y, x = (px.shape[0] - self.side) // 2, (px.shape[1] - self.side) // 2
                    px = px[y:y + self.side, x:x + self.side]
                else:
                    f = self.side / min(px.shape[:2])
                    px = cv2.resize(px, (max(1, round(px.shape[1] * f)), max(1, round(px.shape[0] * f))),
                                    interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
                folder.mkdir(parents=True, exist_ok=True)
                save_image(dest, px)
            out.append(dataclasses.replace(s, image=str(dest)))
        if not out:
            raise ValueError(f"no image is at least {self.side} px on its short side")
        return out

    @property
    def policy(self) -> str:
        return {"none": "files as they are (native size and container)",
                "crop": f"both classes centre-cropped to {self.side}x{self.side}, stored as PNG",
                "resize": f"both classes resized to a {self.side} px short side, stored as PNG"}[self.match_size]

    def describe(self, samples: list[SIDSample]) -> dict[str, Any]:
        n_fake = sum(s.fake for s in samples)
        return {"fake": n_fake, "real": len(samples) - n_fake, "size_policy": self.policy,
                "left_out_too_small": list(self.skipped)}

    @staticmethod
    def default_models() -> list[str]:
        from artifacts.eval.runner import usable_models

        return usable_models("synthetic")

    def perturb(self, samples: list[SIDSample], p, folder: Path) -> list[SIDSample]:
        """Perturbed copies, written once and reused."""
        from artifacts.eval.robustness import perturbed_path, write_perturbed

        if self.match_size != "none":  # matched copies of every policy share stems: keep them apart
            folder = folder / f"{self.match_size}{self.side}"
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for i, s in enumerate(samples):
            dest = perturbed_path(folder / f"{i:05d}_{Path(s.image).stem}", p)
            if not dest.exists():
                write_perturbed(s.image, p, dest, seed_text=s.name)
            out.append(dataclasses.replace(s, image=str(dest)))
        return out

    def stats(self, samples: list[SIDSample], dets: list) -> list[dict[str, Any]]:
        out = []
        for s, det in zip(samples, dets):
            st: dict[str, Any] = {"name": s.name, "fake": s.fake, "source": s.source, "score": None,
                                  "status": "error" if det is None else det.status.value}
            if det is not None:
                st["score"] = det.score
                prov = det.meta.get("provenance") or {}
                st["generation_record"] = bool(prov.get("declared_generated"))
                st["warnings"] = len(det.meta.get("warnings") or [])
            out.append(st)
        return out

    def summarise(self, stats: list[dict], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
        counts = {k: sum(st["status"] == k for st in stats) for k in ("ok", "not_applicable", "error")}
        summary: dict[str, Any] = {"counts": {"items": len(stats), **counts},
                                   "provenance": {"generation_record": sum(st.get("generation_record", False) for st in stats),
                                                  "with_warnings": sum(st.get("warnings", 0) > 0 for st in stats)}}
        scored = [st for st in stats if st["score"] is not None]
        y = np.array([st["fake"] for st in scored], bool)
        s = np.array([st["score"] for st in scored], float)
        image = image_summary(y, s, n_boot=n_boot, seed=seed)
        if image:
            image["n_fake"], image["n_real"] = image.pop("n_positive"), image.pop("n_negative")
            summary["image"] = image
        real = s[~y]
        per_source = {}
        for source in sorted({st["source"] or "?" for st, fake in zip(scored, y) if fake}):
            mine = np.array([(st["source"] or "?") == source for st in scored]) & y
            entry = {"n": int(mine.sum()), "flagged": float((s[mine] >= 0.5).mean())}
            if real.size:
                entry["auc_vs_real"] = roc_auc(np.concatenate([s[mine], real]),
                                               np.concatenate([np.ones(mine.sum(), bool), np.zeros(real.size, bool)]))
            per_source[source] = entry
        if real.size:
            per_source["(real)"] = {"n": int(real.size), "flagged": float((real >= 0.5).mean())}
        summary["per_source"] = per_source
        return summary

    @staticmethod
    def format(result: dict[str, Any]) -> str:
        left_out = result["samples"].get("left_out_too_small") or []
        lines = [f"data: {result['data']}  ({result['samples']['fake']} generated, {result['samples']['real']} real"
                 + (f"; {len(left_out)} left out, smaller than the crop" if left_out else "") + "); "
                 f"size policy: {result['samples'].get('size_policy', '?')}; "
                 f"intervals: 95 % bootstrap over images ({result['bootstrap']} resamples); "
                 "'best' = one threshold chosen on this data (optimistic)"]
        for model, entry in result["models"].items():
            c = entry["clean"]
            n = c["counts"]
            lines += ["", f"== {model}  (weights {entry['weights']}) ==",
                      f"items {n['items']}: ok {n['ok']}, not applicable {n['not_applicable']}, errors {n['error']}; "
                      f"provenance: {c['provenance']['generation_record']} with a generation record, "
                      f"{c['provenance']['with_warnings']} with input warnings"]
            i = c.get("image")
            if i:
                lines.append(f"{'':16}{'fixed threshold 0.5':<26}best threshold")
                lines += image_lines(i)
            else:
                lines.append("metrics n/a (needs scored real and generated images)")
            if c["per_source"]:
                lines.append(f"{'source':<24}{'n':>4}{'flagged@0.5':>13}{'AUC vs real':>13}")
                for src, e in c["per_source"].items():
                    auc = f"{e['auc_vs_real']:.3f}" if "auc_vs_real" in e else ""
                    lines.append(f"{src:<24}{e['n']:>4}{e['flagged']:>13.3f}{auc:>13}")
            if entry["sweep"]:
                lines.append(f"robustness: {'setting':<12}{'AUC':>7}{'acc@0.5':>9}")
                for name, sw in [("clean", c)] + list(entry["sweep"].items()):
                    im = sw.get("image") or {}
                    auc = f"{im['auc']['value']:.3f}" if im else "n/a"
                    acc = f"{im['accuracy_fixed']['value']:.3f}" if im else "n/a"
                    lines.append(f"{'':12}{name:<12}{auc:>7}{acc:>9}")
        return "\n".join(lines)
