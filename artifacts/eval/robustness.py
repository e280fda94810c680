"""Robustness sweeps applicable to any image detector: the same inputs after common processing.

Each perturbation is deterministic (noise is seeded from the item name). JPEG perturbations
are stored as ``.jpg`` files, so JPEG-aware detectors see a real JPEG; every other perturbed
image is stored losslessly as PNG (a JPEG input then loses its JPEG container, which is part of
what the sweep measures). ``resize`` rescales the ground-truth mask with it (nearest neighbour).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Perturbation:
    kind: str  # jpeg | blur | noise | resize
    value: float

    @property
    def name(self) -> str:
        return f"{self.kind}{self.value:g}"

    def apply(self, pixels: np.ndarray, seed_text: str = "") -> tuple[np.ndarray, bytes | None]:
        """Perturbed uint8 pixels and, for ``jpeg``, the encoded file bytes."""
        import cv2

        from artifacts.viz import to_uint8

        img = to_uint8(pixels)
        if self.kind == "jpeg":
            from artifacts.io import encode_image, load_image

            data = encode_image(img, ".jpg", quality=int(self.value))
            return load_image(data).pixels, data
        if self.kind == "blur":
            return cv2.GaussianBlur(img, (0, 0), float(self.value)), None
        if self.kind == "noise":
            seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "little")
            noise = np.random.default_rng(seed).normal(0.0, float(self.value), img.shape)
            return np.clip(np.rint(img + noise), 0, 255).astype(np.uint8), None
        if self.kind == "resize":
            interp = cv2.INTER_AREA if self.value < 1 else cv2.INTER_CUBIC
            return cv2.resize(img, None, fx=self.value, fy=self.value, interpolation=interp), None
        raise ValueError(f"unknown perturbation {self.kind!r}")


#: the default sweep (JPEG quality 50-100, Gaussian blur, Gaussian noise, downscaling)
SWEEP = (
    Perturbation("jpeg", 100), Perturbation("jpeg", 90), Perturbation("jpeg", 70), Perturbation("jpeg", 50),
    Perturbation("blur", 1.0), Perturbation("blur", 2.0),
    Perturbation("noise", 3.0), Perturbation("noise", 7.0),
    Perturbation("resize", 0.75), Perturbation("resize", 0.5),
)


def perturbed_path(stem, p: Perturbation):
    """Where the perturbed copy of an image goes: ``<stem>.jpg`` for JPEG perturbations, else ``.png``."""
    from pathlib import Path

    stem = Path(stem)
    return stem.with_name(stem.name + (".jpg" if p.kind == "jpeg" else ".png"))


def write_perturbed(src, p: Perturbation, dest, *, seed_text: str = "") -> tuple[tuple, tuple]:
    """Write the perturbed copy of image file ``src`` to ``dest`` (atomically; JPEG perturbations
    as the encoded JPEG bytes); returns the (H, W) of the source and of the copy."""
    from pathlib import Path

    from artifacts.io import load_image, save_image

    src_pixels = load_image(src).pixels
    pixels, encoded = p.apply(src_pixels, seed_text=seed_text)
    dest = Path(dest)
    if encoded is not None:
        tmp = dest.with_suffix(".tmp")
        tmp.write_bytes(encoded)
        tmp.replace(dest)
    else:
        save_image(dest, pixels)
    return tuple(src_pixels.shape[:2]), tuple(pixels.shape[:2])


def parse_sweep(text: str | None) -> tuple[Perturbation, ...]:
    """``"jpeg90,blur1,resize0.5"`` -> perturbations; None or ``"default"`` -> :data:`SWEEP`."""
    if text in (None, "", "default"):
        return SWEEP
    out = []
    for token in text.split(","):
        token = token.strip()
        kind = token.rstrip("0123456789.")
        if kind not in ("jpeg", "blur", "noise", "resize") or kind == token:
            raise ValueError(f"bad perturbation {token!r}: use jpegQ, blurSIGMA, noiseSIGMA or resizeFACTOR")
        out.append(Perturbation(kind, float(token[len(kind):])))
    return tuple(out)
