"""Multi-view scenes: the views (image + OpenCV :class:`~.cameras.Camera`) of a capture on disk.

:func:`load_scene` recognises these layouts (checked in this order):

``nerf-synthetic``
    ``transforms_<split>.json`` (or, for "train", ``transforms.json``): ``camera_angle_x`` (horizontal field of
    view, radians) and ``frames`` with ``file_path`` (relative to the folder; ``.png`` is added
    when it has no extension) and a 4x4 OpenGL/Blender ``transform_matrix``. Optional keys, at the
    top level or per frame (frame wins), as written by instant-ngp/nerfstudio: ``w``, ``h``,
    ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``camera_angle_y``. Views keep the file's frame order.
``llff``
    ``poses_bounds.npy`` (see :mod:`.cameras`) with ``images/`` or ``images_<N>/``: image files
    sorted by name are the rows in order; per-view ``bounds`` are LLFF's near/far.
``colmap``
    ``sparse/0/``, ``sparse/`` or the folder itself holding ``cameras``/``images`` ``.bin`` (or
    ``.txt``); image names are relative to ``images/``. Views are sorted by image name. Models
    SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV are used as pinholes: their distortion
    parameters are kept in ``scene.meta["distortion"]`` and ignored by :class:`Camera`. The 3D
    points are not read here: :func:`.colmap.read_model` has them.
``images``
    a plain folder of images (sorted by name), ``camera=None``.

Intrinsics always describe the image file actually found: when its size differs from the size the
cameras were given for (LLFF's ``images_8`` with full-size ``hwf``, a downscaled COLMAP image
folder) the camera is resized to it (same aspect ratio within a pixel, else an error). Image sizes
are read from the file headers (stored pixel grid, EXIF orientation not applied). Malformed input
raises :class:`SceneError` (a ``ValueError``) whose message starts with the offending file.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cameras import Camera, SceneError, as_c2w, cameras_from_llff, opengl_to_opencv
from .colmap import find_model, pinhole_params, read_model, to_camera

__all__ = ["IMAGE_EXTENSIONS", "LAYOUTS", "Scene", "SceneError", "View", "detect_layout", "load_scene"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
LAYOUTS = ("nerf-synthetic", "llff", "colmap", "images")


@dataclass
class View:
    name: str
    image_path: Path
    camera: Camera | None
    bounds: tuple[float, float] | None = None  # near/far depth of the content, when the format has it


@dataclass
class Scene:
    """Views in the format's order; ``near``/``far``: min/max of the views' bounds (LLFF) or None;
    ``meta["layout"]`` is one of :data:`LAYOUTS`, ``meta["source"]`` the file or model folder read,
    plus per layout: ``split`` (NeRF-synthetic), ``images`` (LLFF folder used), ``camera_models``,
    ``distortion`` (camera id -> ignored parameters), ``distortion_ignored``, ``image_ids`` (COLMAP)."""

    name: str
    root: Path
    views: list[View]
    near: float | None = None
    far: float | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.views)

    @property
    def cameras(self) -> list[Camera | None]:
        return [v.camera for v in self.views]


def detect_layout(path: str | Path, split: str = "train") -> str:
    """Which of :data:`LAYOUTS` the folder ``path`` holds (``SceneError`` when none)."""
    root = Path(path)
    if not root.is_dir():
        raise SceneError(f"{root}: not a folder")
    if _transforms_file(root, split) is not None:
        return "nerf-synthetic"
    if (root / "poses_bounds.npy").is_file():
        return "llff"
    if find_model(root) is not None:
        return "colmap"
    if _image_files(root):
        return "images"
    raise SceneError(f"{root}: no scene found (expected transforms_{split}.json, poses_bounds.npy, "
                     "a COLMAP model in sparse/0, or image files)")


def load_scene(path: str | Path, split: str = "train", *, layout: str | None = None,
               factor: int | None = None) -> Scene:
    """Load the scene in folder ``path``; ``layout`` forces one of :data:`LAYOUTS` (e.g. "colmap"
    for a folder that also has LLFF poses). ``split`` selects NeRF-synthetic's
    ``transforms_<split>.json``; other layouts have one split, "train". ``factor`` picks the
    ``images_<factor>`` folder (LLFF, COLMAP; 1 = ``images``); by default LLFF takes the folder
    whose image size matches ``hwf``, else the only or least downscaled folder."""
    root = Path(path)
    layout = layout or detect_layout(root, split)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if layout != "nerf-synthetic" and split != "train":
        raise ValueError(f"{root}: layout {layout!r} has no {split!r} split (only 'train')")
    if layout == "nerf-synthetic":
        return _load_nerf(root, split)
    if layout == "llff":
        return _load_llff(root, factor)
    if layout == "colmap":
        return _load_colmap(root, factor)
    views = [View(p.stem, p, None) for p in _image_files(root)]
    return Scene(root.name, root, views, meta={"layout": "images"})


# ---------------------------------------------------------------------------------------------
# helpers

def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file())


def _image_size(path: Path, source: Path) -> tuple[int, int]:
    """``(width, height)`` of the image ``path`` listed by ``source``."""
    from ..io import image_info  # numpy + Pillow only

    if not path.is_file():
        raise SceneError(f"{source}: image {path} is missing")
    try:
        w, h = image_info(path)["size"]
    except ValueError as exc:  # ImageReadError: "<image>: <reason>"
        raise SceneError(f"{source}: {exc}") from None
    return int(w), int(h)


def _fit_to_image(camera: Camera, image: Path, source: Path) -> Camera:
    """``camera`` resized to the size of ``image`` (x and y scale must agree within a pixel)."""
    w, h = _image_size(image, source)
    if (w, h) == (camera.width, camera.height):
        return camera
    # a common scale s must give both sizes within one pixel: the intervals must overlap
    lo = max((w - 1) / camera.width, (h - 1) / camera.height)
    hi = min((w + 1) / camera.width, (h + 1) / camera.height)
    if lo > hi:
        raise SceneError(f"{source}: image {image} is {w}x{h}, which is not a rescaling of the "
                         f"{camera.width}x{camera.height} the camera was given for")
    return camera.resized(w, h)


def _finite(value, where: str, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise SceneError(f"{where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise SceneError(f"{where}: {what} must be finite, got {value!r}")
    return out


def _image_folder(root: Path, factor: int | None) -> list[Path]:
    """Candidate image folders: ``images/`` then ``images_<N>/`` by increasing N (or the one asked)."""
    if factor is not None:
        folder = root / ("images" if factor == 1 else f"images_{factor}")
        if not folder.is_dir():
            raise SceneError(f"{folder}: image folder does not exist")
        return [folder]
    found = [p for p in root.glob("images_*") if p.is_dir() and p.name[7:].isdigit()]
    return [p for p in [root / "images", *sorted(found, key=lambda p: int(p.name[7:]))] if p.is_dir()]


# ---------------------------------------------------------------------------------------------
# NeRF-synthetic / instant-ngp transforms

def _transforms_file(root: Path, split: str) -> Path | None:
    """``transforms_<split>.json``; a split-less ``transforms.json`` (instant-ngp) counts as "train"."""
    for name in (f"transforms_{split}.json", "transforms.json" if split == "train" else None):
        if name and (root / name).is_file():
            return root / name
    return None


def _load_nerf(root: Path, split: str) -> Scene:
    src = _transforms_file(root, split)
    if src is None:
        raise SceneError(f"{root / f'transforms_{split}.json'}: file not found")
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneError(f"{src}: cannot read JSON ({exc})") from None
    frames = doc.get("frames") if isinstance(doc, dict) else None
    if not isinstance(frames, list) or not frames:
        raise SceneError(f"{src}: needs a non-empty 'frames' list")
    views = []
    for i, frame in enumerate(frames):
        where = f"{src}: frames[{i}]"
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise SceneError(f"{where}: needs 'file_path' and 'transform_matrix'")
        rel = Path(str(frame["file_path"]))
        image = root / (rel if rel.suffix.lower() in IMAGE_EXTENSIONS else rel.with_name(rel.name + ".png"))
        c2w = opengl_to_opencv(as_c2w(frame["transform_matrix"], where))
        camera = _nerf_camera({**doc, **frame}, image, c2w, src, where)
        views.append(View(rel.stem, image, camera))
    return Scene(root.name, root, views, meta={"layout": "nerf-synthetic", "split": split, "source": str(src)})


def _nerf_camera(keys: dict, image: Path, c2w: np.ndarray, src: Path, where: str) -> Camera:
    num = {k: _finite(keys[k], where, k) for k in ("w", "h", "fl_x", "fl_y", "cx", "cy",
                                                   "camera_angle_x", "camera_angle_y") if k in keys}
    if "w" in num and "h" in num:
        w, h = num["w"], num["h"]
    else:
        w, h = _image_size(image, src)
    if "fl_x" in num:
        fx = num["fl_x"]
    elif "camera_angle_x" in num and 0 < num["camera_angle_x"] < math.pi:
        fx = 0.5 * w / math.tan(0.5 * num["camera_angle_x"])
    else:
        raise SceneError(f"{where}: needs 'camera_angle_x' in (0, pi) or 'fl_x'")
    if "fl_y" in num:
        fy = num["fl_y"]
    elif "camera_angle_y" in num and 0 < num["camera_angle_y"] < math.pi:
        fy = 0.5 * h / math.tan(0.5 * num["camera_angle_y"])
    else:
        fy = fx
    try:
        cam = Camera(width=int(round(w)), height=int(round(h)), fx=fx, fy=fy, cx=num.get("cx", w / 2),
                     cy=num.get("cy", h / 2), c2w=c2w, name=image.stem)
    except ValueError as exc:
        raise SceneError(f"{where}: {exc}") from None
    return _fit_to_image(cam, image, src)


# ---------------------------------------------------------------------------------------------
# LLFF

def _load_llff(root: Path, factor: int | None) -> Scene:
    src = root / "poses_bounds.npy"
    try:
        arr = np.load(src, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SceneError(f"{src}: cannot read ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] != 17 or len(arr) == 0 or not np.issubdtype(arr.dtype, np.number):
        raise SceneError(f"{src}: expected a numeric (N, 17) array, got {arr.dtype} {arr.shape}")
    if not np.isfinite(arr).all():
        raise SceneError(f"{src}: non-finite values in rows {np.unique(np.nonzero(~np.isfinite(arr))[0]).tolist()}")
    bad = np.nonzero((arr[:, [4, 9, 14]] <= 0).any(1) | (arr[:, 15] < 0) | (arr[:, 16] <= arr[:, 15]))[0]
    if bad.size:
        raise SceneError(f"{src}: rows {bad.tolist()} need positive h, w, focal and 0 <= near < far")
    for i, pose in enumerate(arr[:, :15].reshape(-1, 3, 5)):
        as_c2w(pose[:, :4], f"{src}: row {i}")
    folder, files = _pick_llff_folder(src, _image_folder(root, factor), arr)
    cams, bounds = cameras_from_llff(arr, [p.stem for p in files])
    views = [View(p.stem, p, _fit_to_image(c, p, src), (float(b[0]), float(b[1])))
             for p, c, b in zip(files, cams, bounds)]
    return Scene(root.name, root, views, near=float(bounds[:, 0].min()), far=float(bounds[:, 1].max()),
                 meta={"layout": "llff", "source": str(src), "images": folder.name})


def _pick_llff_folder(src: Path, folders: list[Path], arr: np.ndarray) -> tuple[Path, list[Path]]:
    """The first folder whose images match ``hwf`` in size, else the first with the right count."""
    listed = [(f, _image_files(f)) for f in folders]
    counted = [(f, files) for f, files in listed if len(files) == len(arr)]
    if not counted:
        seen = ", ".join(f"{f.name}/ has {len(files)}" for f, files in listed) or "no images/ folder"
        raise SceneError(f"{src}: {len(arr)} poses but {seen} image files")
    h, w = arr[0, 4], arr[0, 9]
    for f, files in counted:
        if _image_size(files[0], src) == (int(round(w)), int(round(h))):
            return f, files
    return counted[0]


# ---------------------------------------------------------------------------------------------
# COLMAP

def _load_colmap(root: Path, factor: int | None) -> Scene:
    found = find_model(root)
    if found is None:
        raise SceneError(f"{root}: no COLMAP model in sparse/0, sparse or the folder itself")
    model_dir, ext = found
    model = read_model(model_dir, ext, points3D=False)
    if not model.images:
        raise SceneError(f"{model_dir / f'images{ext}'}: the model has no images")
    folders = _image_folder(root, factor if factor is not None else 1)
    src = model_dir / f"images{ext}"
    views = []
    for img in sorted(model.images.values(), key=lambda im: im.name):
        name = str(Path(img.name).with_suffix(""))
        try:
            cam = to_camera(img, model.cameras[img.camera_id], name)
        except ValueError as exc:
            raise SceneError(f"{model_dir / f'cameras{ext}'}: {exc}") from None
        path = folders[0] / img.name
        views.append(View(name, path, _fit_to_image(cam, path, src)))
    used = sorted({im.camera_id for im in model.images.values()})
    distortion = {cid: pinhole_params(model.cameras[cid])[4] for cid in used}
    meta = {"layout": "colmap", "source": str(model_dir), "format": ext,
            "camera_models": {cid: model.cameras[cid].model for cid in used},
            "distortion": distortion, "distortion_ignored": any(any(d.values()) for d in distortion.values()),
            "image_ids": [im.id for im in sorted(model.images.values(), key=lambda im: im.name)]}
    return Scene(root.name, root, views, meta=meta)
