"""The restorer interface shared by every restoration task (``inpaint``, ``sr``, ``refrepair``).

A restorer is built by :func:`artifacts.create` like a detector. Its input is a
:class:`RestoreInput`: the image, optionally the region to repair (a boolean ``mask`` and/or a
detector ``heatmap`` with its threshold) and optionally reference images; its output a
:class:`~artifacts.types.Restoration`. The engine (batch, resume, report), the API
(:meth:`Restorer.restore`) and the CLI (``artifacts restore``) are the ones detectors use.

A mask or heatmap whose size differs from the image is an error unless the caller asks for a
resize (``resize_mask=True``), which is then recorded in the result's meta; it is never cropped.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from artifacts.model import Model, is_batched
from artifacts.types import Restoration, Status

REF_PREFIX = "ref"  # the item roles of reference images, as for view items


@dataclass
class RestoreInput:
    """One image to restore, with what says where it is broken and what it should look like."""

    image: Any  # ImageData
    mask: np.ndarray | None = None  # H,W bool: repair here
    heatmap: np.ndarray | None = None  # H,W float32 in [0, 1] from a detector
    threshold: float | None = None  # the detector's operating threshold for ``heatmap``
    refs: tuple = ()  # reference images: paths, arrays or ImageData
    meta: dict[str, Any] = field(default_factory=dict)  # where mask/heatmap came from, resizes

    @property
    def pixels(self) -> np.ndarray:
        return self.image.pixels


def fit_map(array: np.ndarray, shape: tuple[int, int], what: str, resize: bool, meta: dict) -> np.ndarray:
    """Check that a 2-D mask/heatmap has the image's ``shape``; resize it (recorded) only if asked."""
    import cv2

    a = np.asarray(array)
    if a.ndim == 3:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array, got shape {a.shape}")
    if a.shape == tuple(shape):
        return a
    if not resize:
        raise ValueError(f"{what} is {a.shape[1]}x{a.shape[0]} but the image is {shape[1]}x{shape[0]}; "
                         "give one of the image's size, or resize it explicitly (resize_mask=True, "
                         "--set resize_mask=true)")
    interp = cv2.INTER_NEAREST if a.dtype == bool else cv2.INTER_LINEAR
    out = cv2.resize(a.astype(np.float32), (shape[1], shape[0]), interpolation=interp)
    meta.setdefault("resized", []).append({"what": what, "from": list(a.shape), "to": list(shape)})
    return out > 0.5 if a.dtype == bool else out


def grow_mask(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` (H,W bool) grown by ``px`` pixels with a disk: the one dilation restorers use."""
    mask = np.asarray(mask, bool)
    if px <= 0 or not mask.any():
        return mask
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k) > 0


def make_input(image, *, mask=None, heatmap=None, threshold: float | None = None, refs=(),
               resize_mask: bool = False) -> RestoreInput:
    """A :class:`RestoreInput` from API arguments: ``image`` anything :func:`artifacts.io.as_images`
    takes; ``mask`` a bool/0-255 array or an image path; ``heatmap`` a float array in [0, 1] or a
    16-bit heatmap PNG path (as detectors write them)."""
    from artifacts.io import as_images

    (img,) = as_images(image)
    meta: dict[str, Any] = {}
    shape = img.pixels.shape[:2]
    m = h = None
    if mask is not None:
        m = fit_map(_read_map(mask, binary=True), shape, "mask", resize_mask, meta) > 0
        meta["mask_source"] = str(mask) if isinstance(mask, (str, bytes)) or hasattr(mask, "__fspath__") else "array"
    if heatmap is not None:
        h = fit_map(_read_map(heatmap, binary=False), shape, "heatmap", resize_mask, meta).astype(np.float32)
        if not np.isfinite(h).all() or h.min(initial=0) < 0 or h.max(initial=0) > 1:
            raise ValueError("heatmap values must be finite and in [0, 1]")
    return RestoreInput(img, m, h, threshold, _expand_refs(refs, image), meta)


def _expand_refs(refs, image) -> tuple:
    """References as given; files, folders and globs among them become their image files (the
    image itself left out when it is one of them)."""
    import os

    refs = [refs] if isinstance(refs, (str, os.PathLike)) else list(refs or ())
    paths = [r for r in refs if isinstance(r, (str, os.PathLike))]
    if not paths:
        return tuple(refs)
    from pathlib import Path

    from artifacts.engine.items import reference_paths

    own = Path(image).resolve() if isinstance(image, (str, os.PathLike)) else None
    files = [p for p in reference_paths(paths) if own is None or p.resolve() != own]
    return tuple([r for r in refs if not isinstance(r, (str, os.PathLike))] + [str(p) for p in files])


def _read_map(source, *, binary: bool) -> np.ndarray:
    """An array as given, or a mask / 16-bit heatmap image file read to [0, 1] (mask: > 0)."""
    if isinstance(source, np.ndarray):
        return source
    from artifacts.io import load_image

    px = load_image(source).pixels[..., 0]
    if binary:
        return px > 0
    return px.astype(np.float32) / (65535.0 if px.dtype == np.uint16 else 255.0)


def load_restore_item(item, *, resize_mask: bool = False) -> RestoreInput:
    """Engine loader: roles ``image``, optional ``mask`` / ``heatmap`` / ``detection`` (a
    detection.json whose threshold applies to the heatmap) files and ``ref*`` files."""
    roles = sorted(r for r in item.files if r.startswith(REF_PREFIX))
    threshold = None
    if "detection" in item.files:  # a detection run's result: its operating threshold goes with the heatmap
        import json
        from pathlib import Path

        threshold = json.loads(Path(item.files["detection"]).read_text()).get("threshold")
    inp = make_input(item.files["image"], mask=item.files.get("mask"), heatmap=item.files.get("heatmap"),
                     threshold=threshold, refs=tuple(item.files[r] for r in roles), resize_mask=resize_mask)
    if "heatmap" in item.files:
        inp.meta["heatmap_source"] = item.files["heatmap"]
    return inp


class Restorer(Model):
    """Base class: config + weights in, :class:`~artifacts.types.Restoration` out.

    Subclasses implement :meth:`restore_one`. ``needs`` says what an input must carry besides
    the image: ``"region"`` (a mask or a heatmap) or ``"refs"`` (reference images).
    """

    needs: ClassVar[tuple[str, ...]] = ()

    def load_item(self, item) -> RestoreInput:
        return load_restore_item(item, resize_mask=bool(getattr(self.config, "resize_mask", False)))

    def restore_one(self, inp: RestoreInput) -> Restoration:  # pragma: no cover - abstract
        raise NotImplementedError

    def region(self, inp: RestoreInput) -> np.ndarray | None:
        """The pixels to repair: the mask, else the heatmap at the config's ``threshold`` (or the
        detector's threshold recorded with it), dilated by the config's ``dilate`` pixels."""
        mask = inp.mask
        if mask is None and inp.heatmap is not None:
            thr = getattr(self.config, "threshold", None)
            thr = thr if thr is not None else (inp.threshold if inp.threshold is not None else 0.5)
            mask = inp.heatmap >= thr
            inp.meta["threshold"] = float(thr)
        return None if mask is None else grow_mask(mask, int(getattr(self.config, "dilate", 0) or 0))

    def restore_batch(self, inputs: list[RestoreInput]) -> list[Restoration]:
        out = []
        for inp in inputs:
            t0 = time.perf_counter()
            missing = self._missing(inp)
            res = Restoration.not_applicable(missing) if missing else self.restore_one(inp)
            res.meta = {**self.base_meta(), **inp.meta, **res.meta}
            res.meta.setdefault("timings", {})["restore_s"] = round(time.perf_counter() - t0, 6)
            out.append(res)
        return out

    def _missing(self, inp: RestoreInput) -> str | None:
        if "region" in self.needs and inp.mask is None and inp.heatmap is None:
            return f"{self.model_id} needs a mask or a heatmap of the region to repair"
        if "refs" in self.needs and not inp.refs:
            return f"{self.model_id} needs reference images"
        return None

    def process_batch(self, payloads: list) -> list[Restoration]:
        return self.restore_batch(payloads)

    def restore(self, x, *, mask=None, heatmap=None, threshold: float | None = None, refs=None):
        """Python API: an image (path, array, PIL, tensor; or a batch without masks) -> Restoration(s)."""
        if is_batched(x) or isinstance(x, (list, tuple)):
            if mask is not None or heatmap is not None:
                raise ValueError("pass one image at a time with a mask or heatmap")
            from artifacts.io import as_images

            return self.restore_batch([make_input(img, refs=refs or ()) for img in as_images(x)])
        inp = make_input(x, mask=mask, heatmap=heatmap, threshold=threshold, refs=refs or (),
                         resize_mask=bool(getattr(self.config, "resize_mask", False)))
        return self.restore_batch([inp])[0]

    def __call__(self, x, **kwargs):
        return self.restore(x, **kwargs)


class Chain(Restorer):
    """A restorer followed by another on its output (e.g. inpaint, then super-resolution)."""

    def __init__(self, first: Restorer, then: Restorer):
        self.first, self.then = first, then
        self.config, self.weights, self.device = first.config, first.weights, first.device
        self.task, self.name = first.task, f"{first.name}+{then.model_id}"
        self.needs = first.needs

    def load_item(self, item) -> RestoreInput:
        return self.first.load_item(item)

    def fingerprint(self) -> dict[str, Any]:
        a, b = self.first.fingerprint(), self.then.fingerprint()
        return {"model": self.model_id, "weights": f"{a['weights']}+{b['weights']}",
                "config": {"first": a["config"], "then": b["config"]}}

    def restore_one(self, inp: RestoreInput) -> Restoration:
        from artifacts.io import ImageData

        first = self.first.restore_batch([inp])[0]
        if first.status is not Status.OK:
            return first
        second = self.then.restore_batch([RestoreInput(ImageData(first.image))])[0]
        meta = {"steps": [first.meta, second.meta]}
        return Restoration(second.image, first.mask, second.status, second.reason, meta)
