"""Seeded generator of realistic tampered images with exact ground-truth masks.

Every sample starts from a real photo (see :mod:`artifacts.datasets.photos`),
so the untouched pixels keep genuine camera traces, and applies one of:

``splice``
    A region of another photo (the donor) pasted with a hard mask.  The donor
    is rescaled by a random factor (default 0.6-1.6, which changes its noise
    and resampling traces like a photo from another camera), optionally
    JPEG-compressed and mildly colour/brightness adjusted.
``splice_blend``
    The same, but blended: feathered alpha (Gaussian-blurred mask, ground
    truth = ``alpha > 0.5``) or Poisson blending (``cv2.seamlessClone``,
    ground truth = the pasted region; pixels outside it are kept from the
    host, so the mask is exact).
``copymove``
    A region of the host copied to a non-overlapping place of the same host,
    optionally rotated, scaled or mirrored.  Ground truth = the pasted
    (target) region only, the usual image-manipulation-localisation convention.
``removal``
    A region, preferably an object-like segment, filled by OpenCV inpainting
    (Telea or Navier-Stokes), a clone stamp (hard copy of a nearby patch) or
    a healing brush (Poisson-blended nearby patch).  Ground truth = the
    filled region.

Regions are random smooth blobs, random polygons/ellipses, or unions of
adjacent SLIC superpixels grown by colour similarity (boundaries that follow
image edges), always one connected component.  The whole result then goes
through a random post-processing chain (resize, JPEG, blur, noise), recorded
in ``Sample.meta``.  With ``GeneratorConfig.colour_match`` a splice's donor is,
with that probability, colour-matched to the host pixels it replaces (Reinhard
transfer in Lab) instead of randomly adjusted.  :func:`authentic` passes pristine photos through the same
chain so that negatives share the post-processing.  With
``GeneratorConfig.host_jpeg`` set, every photo (host and donor) is first
JPEG-compressed at a random quality right after its crop and downscale, so
that the untouched pixels carry the traces of an earlier JPEG compression
(off by default).

Everything is driven by one ``numpy.random.default_rng(seed)``: the same seed
gives identical arrays, and :func:`write_dataset` gives byte-identical files.

The work is split across sibling modules: :mod:`.regions` (region shapes and
placement), :mod:`.edits` (the four kinds) and :mod:`.processing` (photo
preparation and the post-processing chain); this module holds the
configuration, :class:`Sample` and the public functions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
from numpy.random import Generator
from PIL import Image

from .edits import KIND_FUNCS
from .photos import Photo, as_photos
from .processing import meta_float, post_process, prepare

__all__ = [
    "KINDS",
    "POST_OPS",
    "SHAPES",
    "GeneratorConfig",
    "Sample",
    "authentic",
    "generate",
    "write_dataset",
]

KINDS = ("splice", "splice_blend", "copymove", "removal")
POST_OPS = ("resize", "jpeg", "blur", "noise")
SHAPES = ("blob", "polygon", "segment")

_NO_SPLICE = "splicing needs at least two unrelated photos in the pool"


@dataclass
class GeneratorConfig:
    """Parameters of the generator (defaults suit ~512-768 px photos)."""

    kinds: tuple[str, ...] = KINDS
    area: tuple[float, float] = (0.02, 0.25)  # mask fraction of the image
    post_prob: float = 0.5  # probability of each post-processing op
    max_side: Optional[int] = 768  # hosts/donors are downscaled to this first
    post_ops: tuple[str, ...] = POST_OPS
    shapes: tuple[str, ...] = SHAPES
    crop: tuple[float, float] = (0.7, 1.0)  # fraction of each side kept by a random crop
    donor_scale: tuple[float, float] = (0.6, 1.6)
    min_side: int = 128  # post-resize never makes the shorter side smaller than this
    # JPEG quality range (inclusive) at which every prepared photo, host and donor alike, is
    # compressed before the edit (a photo that was a JPEG before it was edited, as for the
    # JPEG-grid and double-quantisation detectors); None (default) = no compression, and
    # then no random number is drawn for it, so existing seeds give identical samples
    host_jpeg: Optional[tuple[int, int]] = None
    # probability that a splice's donor is colour-matched to the host around it (Reinhard transfer
    # in Lab) instead of the random colour adjustment; 0 (default) draws no random number for it,
    # so existing seeds give identical samples
    colour_match: float = 0.0

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {self.kinds}")
        if [op for op in self.post_ops if op not in POST_OPS]:
            raise ValueError(f"post_ops must be a subset of {POST_OPS}")
        if not self.shapes or [s for s in self.shapes if s not in SHAPES]:
            raise ValueError(f"shapes must be a non-empty subset of {SHAPES}")
        lo, hi = self.area
        if not 0 < lo < hi <= 0.5:
            raise ValueError(f"area must satisfy 0 < lo < hi <= 0.5, got {self.area}")
        if not 0.0 <= self.colour_match <= 1.0:
            raise ValueError(f"colour_match must be a probability, got {self.colour_match}")
        if self.host_jpeg is not None:
            qlo, qhi = self.host_jpeg
            if not 1 <= qlo <= qhi <= 100:
                raise ValueError(f"host_jpeg must be a quality range 1 <= lo <= hi <= 100, got {self.host_jpeg}")
            self.host_jpeg = (int(qlo), int(qhi))


@dataclass
class Sample:
    """One generated image with its ground truth."""

    image: np.ndarray  # H,W,3 uint8, tampered (or authentic if kind == "authentic")
    mask: np.ndarray  # H,W bool, True where pixels were manipulated
    kind: str  # one of KINDS or "authentic"
    name: str  # stable, filename-safe
    meta: dict  # JSON-serialisable record of every random choice
    # The host without the manipulation, through the identical post-processing
    # (same parameters and noise); for paired training and for tests.
    original: Optional[np.ndarray] = field(default=None, repr=False)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _pick_host(rng: Generator, pool: Sequence[Photo]) -> Photo:
    """A random photo; greyscale ones are drawn at 40% the weight of colour
    ones (most of the bundled greys are textures, and real tampered images
    are mostly colour)."""
    weights = np.array([0.4 if p.grey else 1.0 for p in pool])
    return pool[int(rng.choice(len(pool), p=weights / weights.sum()))]


def _usable_kinds(kinds: Sequence[str], pool: Sequence[Photo]) -> list[str]:
    """``kinds`` less the splices when the pool has no two unrelated photos."""
    can_splice = len({p.family for p in pool}) > 1
    return [k for k in kinds if can_splice or not k.startswith("splice")]


def generate(seed: int, kind: Optional[str] = None, config: Optional[GeneratorConfig] = None,
             photos: Optional[Sequence[Any]] = None) -> Sample:
    """Generate one tampered image from ``seed`` (deterministic).

    ``kind`` defaults to a seeded choice among ``config.kinds`` (splices only
    when the pool has two unrelated photos).  ``photos`` is anything
    :func:`~artifacts.datasets.photos.as_photos` accepts (default: all
    bundled photos).
    """
    cfg = config or GeneratorConfig()
    pool = as_photos(photos)
    rng = np.random.default_rng(seed)
    if kind is None:
        options = _usable_kinds(cfg.kinds, pool)
        if not options:
            raise ValueError(_NO_SPLICE)
        kind = options[int(rng.integers(len(options)))]
    elif kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    elif not _usable_kinds([kind], pool):
        raise ValueError(_NO_SPLICE)
    lo, hi = cfg.area
    for attempt in range(20):
        photo = _pick_host(rng, pool)
        host, hinfo = prepare(rng, photo, cfg)
        result = KIND_FUNCS[kind](rng, host, photo, pool, cfg)
        if result is not None and lo <= result[1].mean() <= hi:
            break
    else:
        raise RuntimeError(f"could not generate a {kind!r} sample for seed {seed}")
    image, mask, info = result
    (image, original), mask, ops = post_process(rng, [image, host], mask, cfg, photo.grey)
    donor = info.get("donor", {}).get("photo")
    name = _safe(f"{kind}_s{seed:04d}_{photo.name}" + (f"-from-{donor}" if donor else ""))
    meta = {"seed": int(seed), "kind": kind, "host": hinfo, "donor": info.pop("donor", None),
            **info, "post": ops, "area": meta_float(mask.mean()), "size": list(mask.shape),
            "attempts": attempt + 1}
    return Sample(image, mask, kind, name, meta, original)


def authentic(seed: int, config: Optional[GeneratorConfig] = None,
              photos: Optional[Sequence[Any]] = None) -> Sample:
    """A pristine photo (random crop, downscale) through the same random
    post-processing chain as :func:`generate`; the mask is all False."""
    cfg = config or GeneratorConfig()
    pool = as_photos(photos)
    rng = np.random.default_rng(seed)
    photo = _pick_host(rng, pool)
    host, hinfo = prepare(rng, photo, cfg)
    mask = np.zeros(host.shape[:2], bool)
    (image,), mask, ops = post_process(rng, [host], mask, cfg, photo.grey)
    meta = {"seed": int(seed), "kind": "authentic", "host": hinfo, "donor": None,
            "post": ops, "area": 0.0, "size": list(mask.shape), "attempts": 1}
    return Sample(image, mask, "authentic", _safe(f"authentic_s{seed:04d}_{photo.name}"), meta,
                  image)


def _save_png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path, format="PNG", compress_level=6)


def _save_image(out: Path, stem: str, arr: np.ndarray, jpeg_quality: Optional[int]) -> str:
    """Save a sample image as PNG, or as a baseline 4:2:0 JPEG at ``jpeg_quality``; returns the file name."""
    if jpeg_quality is None:
        _save_png(out / f"{stem}.png", arr)
        return f"{stem}.png"
    Image.fromarray(arr).save(out / f"{stem}.jpg", format="JPEG", quality=int(jpeg_quality), subsampling=2)
    return f"{stem}.jpg"


def write_dataset(out_dir: Union[str, Path], n: int, seed: int = 0,
                  config: Optional[GeneratorConfig] = None, photos: Optional[Sequence[Any]] = None,
                  n_authentic: int = 0, jpeg_quality: Optional[int] = None) -> list[dict]:
    """Write ``n`` tampered and ``n_authentic`` authentic samples, CASIA-like.

    Layout: ``Tp/<name>.png`` (tampered), ``Gt/<name>_gt.png`` (mask, 0/255
    uint8), ``Au/<name>.png`` (authentic) and ``manifest.json``, a list of
    ``{name, kind, image, mask, meta}`` with paths relative to ``out_dir``
    (``mask`` is null for authentic images).  Tampered sample ``i`` uses seed
    ``seed + i`` and kind ``config.kinds[i % len(kinds)]`` (balanced);
    authentic sample ``j`` uses seed ``seed + n + j``.  Same arguments give
    byte-identical files.  With ``jpeg_quality`` the tampered and authentic
    images are saved as JPEG files (``.jpg``) at that quality instead of PNG,
    as edited photos usually are; masks stay PNG.  Returns the manifest.
    """
    if jpeg_quality is not None and not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    cfg = config or GeneratorConfig()
    pool = as_photos(photos)
    kinds = _usable_kinds(cfg.kinds, pool)
    if n > 0 and not kinds:
        raise ValueError(_NO_SPLICE)
    out = Path(out_dir)
    for sub, needed in (("Tp", n > 0), ("Gt", n > 0), ("Au", n_authentic > 0)):
        if needed:
            (out / sub).mkdir(parents=True, exist_ok=True)
    manifest: list[dict] = []
    for i in range(n):
        s = generate(seed + i, kinds[i % len(kinds)], cfg, pool)
        image = _save_image(out / "Tp", s.name, s.image, jpeg_quality)
        _save_png(out / "Gt" / f"{s.name}_gt.png", s.mask.astype(np.uint8) * 255)
        manifest.append({"name": s.name, "kind": s.kind, "image": f"Tp/{image}",
                         "mask": f"Gt/{s.name}_gt.png", "meta": s.meta})
    for j in range(n_authentic):
        s = authentic(seed + n + j, cfg, pool)
        image = _save_image(out / "Au", s.name, s.image, jpeg_quality)
        manifest.append({"name": s.name, "kind": s.kind, "image": f"Au/{image}",
                         "mask": None, "meta": s.meta})
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest
