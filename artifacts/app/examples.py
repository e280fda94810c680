"""Example inputs the app offers out of the box, written at startup from photos that ship with
scikit-image (no download): a generated splice with its mask, a novel view with references, small
photos for super-resolution, inpainting (with a mask) and reference-guided repair, a real photo
whose PNG text claims it was generated (provenance vs content), a diffusion phantom with slice
dropout (dMRI QC) and a zip for the batch tab."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Examples:
    root: Path
    manipulation: list[str] = field(default_factory=list)
    view: str = ""
    refs: list[str] = field(default_factory=list)
    small: str = ""
    inpaint_image: str = ""
    inpaint_mask: str = ""
    batch_zip: str = ""
    tagged: str = ""
    dmri: list[str] = field(default_factory=list)


def _save(path: Path, pixels: np.ndarray) -> str:
    from artifacts.io import save_image

    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, pixels)
    return str(path)


def _resize(pixels: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(pixels).resize((side, side), Image.LANCZOS))


def _tagged_png(path: Path, pixels: np.ndarray) -> str:
    """A real photo saved as PNG with a Stable Diffusion WebUI-style ``parameters`` text chunk: the
    provenance record reads the claim from the file, the content score judges the pixels apart."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a photo of a cat on a blanket\nNegative prompt: blurry\n"
                  "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 451x300, Model: example")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, pnginfo=info)
    return str(path)


def _dmri_example(folder: Path) -> list[str]:
    """The diffusion phantom with slice dropout in some volumes: NIfTI, .bval, .bvec, .json."""
    from artifacts.datasets.dmri_artifacts import simulate
    from artifacts.datasets.dmri_phantom import phantom
    from artifacts.io.dmri import save_dwi

    series = phantom(seed=0)
    series.dataobj, _ = simulate(series, "dropout", severity=0.9, seed=2, fraction=0.2)
    target = save_dwi(folder / "phantom_dropout_dwi.nii.gz", series)
    stem = str(target)[: -len(".nii.gz")]
    return [str(target)] + [stem + ext for ext in (".bval", ".bvec", ".json")]


def write_examples(root: str | Path) -> Examples:
    """Write the example files under ``root`` and return their paths."""
    import skimage.data as sd

    from artifacts.datasets.manipulation import write_dataset
    from artifacts.datasets.view_artifacts import degrade

    root = Path(root)
    ex = Examples(root)
    manifest = write_dataset(root / "manipulation", n=2, seed=1, n_authentic=0)
    ex.manipulation = [str(root / "manipulation" / m["image"]) for m in manifest]

    cat = sd.chelsea()  # 300 x 451
    crops = [(20, 60), (30, 80), (10, 100)]  # (y, x) of 256 x 256 crops: overlapping views of one scene
    views = [_resize(cat[y:y + 256, x:x + 256], 128) for y, x in crops]
    ex.refs = [_save(root / "views" / "refs" / f"ref{i}.png", v) for i, v in enumerate(views[1:])]
    ex.view = _save(root / "views" / "view.png", degrade(views[0], seed=3, kind="floaters", severity=1.0).image)

    astro = sd.astronaut()
    ex.small = _save(root / "restore" / "astronaut64.png", _resize(astro, 64))
    photo = _resize(cat[20:276, 60:316], 128)
    mask = np.zeros((128, 128), np.uint8)
    mask[48:72, 40:80] = 255
    damaged = photo.copy()
    damaged[mask > 0] = (255, 0, 255)
    ex.inpaint_image = _save(root / "restore" / "damaged.png", damaged)
    ex.inpaint_mask = _save(root / "restore" / "damaged_mask.png", mask)

    ex.tagged = _tagged_png(root / "synthetic" / "tagged-real-photo.png", cat)

    ex.dmri = _dmri_example(root / "dmri")

    ex.batch_zip = str(root / "batch-example.zip")
    with zipfile.ZipFile(ex.batch_zip, "w") as zf:
        for p in ex.manipulation:
            zf.write(p, f"images/{Path(p).name}")
    return ex
