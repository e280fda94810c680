"""Choose PuzzleSim's layers, layer weights, per-view score and threshold on the tuning split.

    python tools/tune_puzzlesim.py [--scenes ../shared/data/views/lego ../shared/data/views/fern] [-o OUT]

Uses only the ``tune`` views and the ``tuning_kinds`` of ``artifacts/datasets/splits/views.json``
(never the evaluated views, the held-out kinds or the held-out scene). Per-layer similarity maps
are computed once per degraded view (EfficientNet-Lite0, strides 8, 16, 32); then every weight
triple on a 0.1 grid and every candidate per-view score is scored by the mean over scenes of
Spearman(score, -SSIM), Spearman(score, -PSNR) and the mean pixel AUC. Prints the ranking and
writes OUT/tune.json. The winner is what ``PuzzleSimConfig``'s defaults say (see the model card).
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

STRIDES = (8, 16, 32)
SCORES = ("mean", "top10", "top25")


def per_layer_maps(scene: str, work: Path):
    """[(sample, L x H x W similarity maps, ground-truth mask)], cached in WORK/maps-<scene>.npz."""
    import artifacts
    from artifacts.detectors.views.inputs import ViewInput
    from artifacts.eval.views import ViewsAdapter
    from artifacts.io import load_image

    samples = ViewsAdapter(split="tune").read(scene, work)
    cache = work / f"maps-{Path(scene).name}-s{'-'.join(map(str, STRIDES))}.npz"
    if cache.exists():
        maps = np.load(cache)
        return [(s, maps[s.name], load_image(s.mask).pixels[..., 0] > 127) for s in samples]
    det = artifacts.create("views/puzzlesim", device="cpu", layers=STRIDES, layer_weights=(1, 1, 1))
    out = []
    for s in samples:
        vi = ViewInput(load_image(s.image), tuple(s.refs))
        size = vi.view.pixels.shape[:2]
        maps = [det.upsample(m, size).numpy() for m in det.layer_maps(vi).values()]
        out.append((s, np.stack(maps).astype(np.float16), load_image(s.mask).pixels[..., 0] > 127))
        print(f"  {s.name}", flush=True)
    np.savez_compressed(cache, **{s.name: m for s, m, _ in out})
    return out


def view_score(heat: np.ndarray, kind: str) -> float:
    from artifacts.detectors.views.puzzlesim import view_score as score

    return score(heat, {"mean": 1.0, "top25": 0.25, "top10": 0.1}[kind])


def main() -> None:
    from artifacts.metrics import roc_auc
    from artifacts.metrics.ranking import spearman

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", nargs="+", default=["../shared/data/views/lego", "../shared/data/views/fern"])
    ap.add_argument("-o", "--out", default="artifacts-eval/tune-puzzlesim")
    args = ap.parse_args()
    out = Path(args.out)
    data = {Path(sc).name: per_layer_maps(sc, out) for sc in args.scenes}
    grid = [w for w in itertools.product(np.round(np.arange(0, 1.01, 0.1), 1), repeat=3) if abs(sum(w) - 1) < 1e-6]
    rows = []
    for w in grid:
        per_scene = {score: [] for score in SCORES}
        for scene, items in data.items():
            heats = [np.clip(1 - np.tensordot(np.array(w), m.astype(np.float32), axes=1), 0, 1) for _, m, _ in items]
            # pixel AUC on every 2nd row and column (it does not depend on the per-view score)
            auc = np.mean([roc_auc(h[::2, ::2], g[::2, ::2]) for h, (_, _, g) in zip(heats, items)
                           if g[::2, ::2].any() and not g[::2, ::2].all()])
            ssim = [-s.ssim for s, _, _ in items]
            psnr = [-s.psnr for s, _, _ in items]
            for score in SCORES:
                sc = [view_score(h, score) for h in heats]
                per_scene[score].append((spearman(sc, ssim), spearman(sc, psnr), auc))
        for score in SCORES:
            m = np.mean(per_scene[score], axis=0)
            rows.append({"weights": list(map(float, w)), "score": score, "spearman_ssim": float(m[0]),
                         "spearman_psnr": float(m[1]), "pixel_auc": float(m[2]), "objective": float(m.mean())})
    rows.sort(key=lambda r: -r["objective"])
    best = rows[0]
    # threshold: the best mean F1 over the tuning views with the chosen weights
    w = np.array(best["weights"])
    heats = [(np.clip(1 - np.tensordot(w, m.astype(np.float32), axes=1), 0, 1), g)
             for items in data.values() for _, m, g in items]
    ts = np.round(np.arange(0.05, 0.6, 0.01), 2)
    f1 = []
    for t in ts:
        vals = []
        for h, g in heats:
            p = h >= t
            tp = float((p & g).sum())
            vals.append(2 * tp / max(p.sum() + g.sum(), 1))
        f1.append(float(np.mean(vals)))
    result = {"strides": list(STRIDES), "ranking": rows[:15], "best": best,
              "threshold": float(ts[int(np.argmax(f1))]), "f1_at_threshold": float(max(f1)),
              "views": {k: len(v) for k, v in data.items()}}
    print(json.dumps({k: v for k, v in result.items() if k != "ranking"}, indent=1))
    for r in rows[:10]:
        print(r)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
