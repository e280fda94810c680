"""``artifacts detect TASK --example``: a seeded example set with ground truth, and its summary.

For ``manipulation`` the generator makes manipulations (splices with and without blending,
copy-move, removal, plus authentic photos) of photos that ship with scikit-image, from the
``example`` split (never used for calibration). The scenario is the classic one of image
forensics: the photos were JPEGs (quality 60-85) before the edit, and the edited result is saved
as a JPEG again at a higher quality (90), so the pasted regions lack the first compression the
rest of the image carries. The summary compares each predicted mask with
its ground truth and draws a picture ``OUT/example-summary.png``. It is a demonstration on
synthetic data, not a benchmark: ``artifacts eval`` on real tampered images gives the numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXAMPLE_SEED = 7
N_TAMPERED, N_AUTHENTIC = 6, 2
EXAMPLE_HOST_JPEG = (60, 85)  # quality range of the JPEG the photos were before the edit
EXAMPLE_SAVE_JPEG = 90  # quality the edited (and the authentic) images are saved at


@dataclass
class Example:
    task: str
    data_dir: Path
    inputs: list[str]
    manifest: list[dict]


def make_example(task: str, out: str | Path) -> Example:
    if task != "manipulation":
        raise ValueError(f"--example is available for: manipulation (not {task!r} yet)")
    from artifacts.datasets.manipulation import GeneratorConfig, write_dataset
    from artifacts.datasets.splits import load_split

    data = Path(out) / "example-data"
    # photos usually arrive as JPEGs, and edited photos are saved as JPEGs again
    manifest = write_dataset(data, n=N_TAMPERED, seed=EXAMPLE_SEED, photos=load_split("manipulation")["example"],
                             n_authentic=N_AUTHENTIC, config=GeneratorConfig(host_jpeg=EXAMPLE_HOST_JPEG),
                             jpeg_quality=EXAMPLE_SAVE_JPEG)
    return Example(task, data, [str(data / "Tp"), str(data / "Au")], manifest)


def summarise_example(example: Example, summary) -> str:
    """Per-item score and pixel F1/IoU against the generator's ground truth; writes a picture."""
    from artifacts.engine import open_store
    from artifacts.io import load_image, save_image
    from artifacts.metrics import pixel_scores
    from artifacts.types import Detection
    from artifacts.viz import contact_sheet, overlay

    with open_store(summary.out) as store:
        rows = {Path(r["inputs"]["image"]["path"]).resolve(): r for r in store.rows()
                if r["model"] == summary_model(store, summary.run_id)}
    lines = [f"{'item':<44} {'kind':<13} {'score':>5}  {'F1':>5}  {'IoU':>5}"]
    pictures, labels = [], []
    for entry in example.manifest:
        image_path = (example.data_dir / entry["image"]).resolve()
        row = rows.get(image_path)
        if row is None or row["status"] != "ok":
            lines.append(f"{entry['name'][:44]:<44} {entry['kind']:<13} {'-':>5}  (not processed: {row and row['error']})")
            continue
        det = Detection.load(Path(summary.out) / "items" / row["key"])
        gt = (np.zeros(det.heatmap.shape, bool) if entry["mask"] is None
              else load_image(example.data_dir / entry["mask"]).pixels[..., 0] > 127)
        f1 = iou = "-"
        if gt.any():
            s = pixel_scores(det.mask, gt)
            f1, iou = f"{s['f1']:.2f}", f"{s['iou']:.2f}"
        lines.append(f"{entry['name'][:44]:<44} {entry['kind']:<13} {det.score:5.2f}  {f1:>5}  {iou:>5}")
        pixels = load_image(image_path).pixels
        pictures.append([pixels, gt, overlay(pixels, det.heatmap, det.mask)])
        labels.append(f"{entry['kind']}: score {det.score:.2f}  F1 {f1}   (input | ground truth | heatmap + mask outline)")
    picture = Path(summary.out) / "example-summary.png"
    if pictures:
        save_image(picture, contact_sheet(pictures, labels))
    lines.append(f"picture: {picture}   (F1/IoU: predicted mask vs the generator's ground truth at threshold "
                 f"{det.threshold if pictures else 0.5:.2f}; synthetic demo, not a benchmark)")
    return "\n".join(lines)


def summary_model(store, run_id: int) -> str:
    return next(r["model"] for r in store.runs() if r["run_id"] == run_id)
