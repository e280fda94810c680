"""Readers for the image-manipulation-localisation (IML) benchmark layouts users already have.

- **Folders** ``Tp/`` (tampered images) + ``Gt/`` (masks) and optionally ``Au/`` (authentic
  images): the layout of CASIA ground-truth releases, NoSo, IML-ViT's ``ManiDataset`` and this
  package's generator. A mask belongs to ``Tp/<stem>.<ext>`` when it is ``Gt/<stem>_gt.*``,
  ``Gt/<stem>_mask.*`` or ``Gt/<stem>.*``.
- **JSON lists** (IML-ViT / IMDL-BenCo ``JsonDataset``): a list of ``[image, mask]`` pairs where
  the mask ``"Negative"`` marks an authentic image; relative paths are relative to the JSON file.

Masks are binarised at > 127 (the maximum over channels for colour masks). A mask whose size
differs from its image is an error naming both files, unless ``resize_masks=True`` asks for a
nearest-neighbour resize (recorded in the sample). Nothing is decoded here except masks when
loaded (:meth:`IMLSample.load_mask`), so reading a large list is cheap.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifacts.engine.items import IMAGE_EXTENSIONS, natural_key

NEGATIVE = "Negative"
MASK_SUFFIXES = ("_gt", "_mask", "")


@dataclass(frozen=True)
class IMLSample:
    image: str
    mask: str | None  # None: authentic (all pixels pristine)
    name: str

    @property
    def tampered(self) -> bool:
        return self.mask is not None

    def load_mask(self, shape: tuple[int, int], *, resize: bool = False) -> np.ndarray:
        """The H x W bool mask (all False for authentic images), checked against ``shape``."""
        if self.mask is None:
            return np.zeros(shape, bool)
        from artifacts.io import load_image

        pixels = load_image(self.mask).pixels
        mask = pixels.max(axis=-1) > (127 if pixels.dtype == np.uint8 else 32767)
        if mask.shape != tuple(shape):
            if not resize:
                raise ValueError(
                    f"mask {self.mask} is {mask.shape[1]}x{mask.shape[0]} but image {self.image} is "
                    f"{shape[1]}x{shape[0]} (pass resize_masks to resize masks with nearest neighbour)"
                )
            import cv2

            mask = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        return mask


def _images(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
             and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_key(p.name))


def _find_mask(gt_dir: Path, stem: str) -> Path | None:
    for suffix in MASK_SUFFIXES:
        for candidate in sorted(gt_dir.glob(f"{stem}{suffix}.*")):
            if candidate.suffix.lower() in IMAGE_EXTENSIONS:
                return candidate
    return None


def read_folders(root: str | Path) -> list[IMLSample]:
    root = Path(root)
    tp, gt, au = root / "Tp", root / "Gt", root / "Au"
    if not tp.is_dir() and not au.is_dir():
        raise FileNotFoundError(f"{root}: expected Tp/ (+ Gt/) and/or Au/ folders, or a JSON list")
    samples = []
    if tp.is_dir():
        if not gt.is_dir():
            raise FileNotFoundError(f"{root}: Tp/ has no Gt/ folder with its masks")
        missing = []
        for image in _images(tp):
            mask = _find_mask(gt, image.stem)
            if mask is None:
                missing.append(image.name)
            else:
                samples.append(IMLSample(str(image), str(mask), f"Tp/{image.name}"))
        if missing:
            raise FileNotFoundError(f"{root}: no mask in Gt/ for {len(missing)} image(s), e.g. {missing[:3]}")
    if au.is_dir():
        samples += [IMLSample(str(p), None, f"Au/{p.name}") for p in _images(au)]
    return samples


def read_json(path: str | Path) -> list[IMLSample]:
    path = Path(path)
    entries = json.loads(path.read_text())
    if not isinstance(entries, list) or not all(isinstance(e, (list, tuple)) and len(e) == 2 for e in entries):
        raise ValueError(f"{path}: expected a JSON list of [image, mask] pairs (mask 'Negative' for authentic)")
    samples = []
    for image, mask in entries:
        img = Path(image) if Path(image).is_absolute() else path.parent / image
        if mask == NEGATIVE:
            samples.append(IMLSample(str(img), None, str(image)))
        else:
            m = Path(mask) if Path(mask).is_absolute() else path.parent / mask
            samples.append(IMLSample(str(img), str(m), str(image)))
    missing = [s.image for s in samples if not Path(s.image).is_file()] + \
              [s.mask for s in samples if s.mask and not Path(s.mask).is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: {len(missing)} listed file(s) do not exist, e.g. {missing[:3]}")
    return samples


def read_iml(source: str | Path) -> list[IMLSample]:
    """Samples of a ``Tp/``+``Gt/``(+``Au/``) folder or a JSON list (see module docstring)."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".json":
        return read_json(source)
    if source.is_dir():
        return read_folders(source)
    raise FileNotFoundError(f"dataset not found: {source} (a folder with Tp/ Gt/ Au/ or a .json list)")
