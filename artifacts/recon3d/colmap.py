"""COLMAP sparse models: read and write ``cameras``, ``images`` and ``points3D`` as text or binary.

Formats (COLMAP's documented "output format"; binary is little-endian):

* ``cameras.bin``: ``uint64 n``, then per camera ``uint32 id, int32 model_id, uint64 width,
  uint64 height, float64 params[k]`` (k fixed by the model). Text: ``ID MODEL W H PARAMS...``.
* ``images.bin``: ``uint64 n``, then per image ``uint32 id, float64 qw qx qy qz tx ty tz,
  uint32 camera_id, name (bytes, NUL-terminated), uint64 n2d, n2d x (float64 x, float64 y,
  int64 point3D_id)`` (-1: no 3D point). Text: two lines per image, ``ID QW QX QY QZ TX TY TZ
  CAMERA_ID NAME`` then ``X Y POINT3D_ID ...`` (the second line may be empty).
* ``points3D.bin``: ``uint64 n``, then per point ``uint64 id, float64 x y z, uint8 r g b,
  float64 error, uint64 track_length, track_length x (uint32 image_id, uint32 point2D_idx)``.
  Text: ``ID X Y Z R G B ERROR IMAGE_ID POINT2D_IDX ...``.

The pose ``(qvec, tvec)`` is world-to-camera in OpenCV axes (see :mod:`.cameras`). Pixel
coordinates use the same pixel-centre convention as :class:`~.cameras.Camera` (centre of the
top-left pixel at (0.5, 0.5)). Text is written with Python's shortest round-trip float repr,
so text -> binary -> text reproduces the same text. Every malformed file raises
:class:`~.cameras.SceneError` whose message starts with the file path.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cameras import Camera, SceneError, colmap_to_c2w

__all__ = ["CAMERA_MODELS", "ColmapCamera", "ColmapImage", "ColmapModel", "ColmapPoint3D",
           "find_model", "pinhole_params", "read_model", "to_camera", "write_model"]

# name: (model_id, parameter names)
CAMERA_MODELS: dict[str, tuple[int, tuple[str, ...]]] = {
    "SIMPLE_PINHOLE": (0, ("f", "cx", "cy")),
    "PINHOLE": (1, ("fx", "fy", "cx", "cy")),
    "SIMPLE_RADIAL": (2, ("f", "cx", "cy", "k")),
    "RADIAL": (3, ("f", "cx", "cy", "k1", "k2")),
    "OPENCV": (4, ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2")),
    "OPENCV_FISHEYE": (5, ("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4")),
    "FULL_OPENCV": (6, ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")),
    "FOV": (7, ("fx", "fy", "cx", "cy", "omega")),
    "SIMPLE_RADIAL_FISHEYE": (8, ("f", "cx", "cy", "k")),
    "RADIAL_FISHEYE": (9, ("f", "cx", "cy", "k1", "k2")),
    "THIN_PRISM_FISHEYE": (10, ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "sx1", "sy1")),
}
_MODEL_BY_ID = {mid: name for name, (mid, _) in CAMERA_MODELS.items()}
# models whose projection is a pinhole plus (ignorable) lens distortion
PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray

    def __post_init__(self) -> None:
        self.params = np.asarray(self.params, dtype=np.float64).reshape(-1)


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray  # (qw, qx, qy, qz), world-to-camera
    tvec: np.ndarray
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    point3D_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        self.qvec = np.asarray(self.qvec, dtype=np.float64).reshape(4)
        self.tvec = np.asarray(self.tvec, dtype=np.float64).reshape(3)
        self.xys = np.asarray(self.xys, dtype=np.float64).reshape(-1, 2)
        self.point3D_ids = np.asarray(self.point3D_ids, dtype=np.int64).reshape(-1)

    @property
    def c2w(self) -> np.ndarray:
        return colmap_to_c2w(self.qvec, self.tvec)


@dataclass
class ColmapPoint3D:
    id: int
    xyz: np.ndarray
    rgb: np.ndarray
    error: float
    image_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    point2D_idxs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        self.xyz = np.asarray(self.xyz, dtype=np.float64).reshape(3)
        self.rgb = np.asarray(self.rgb, dtype=np.uint8).reshape(3)
        self.image_ids = np.asarray(self.image_ids, dtype=np.int64).reshape(-1)
        self.point2D_idxs = np.asarray(self.point2D_idxs, dtype=np.int64).reshape(-1)


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera] = field(default_factory=dict)
    images: dict[int, ColmapImage] = field(default_factory=dict)
    points3D: dict[int, ColmapPoint3D] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# public entry points

def find_model(path: str | Path) -> tuple[Path, str] | None:
    """``(model folder, ".bin" | ".txt")`` for ``path`` itself, ``path/sparse/0`` or ``path/sparse``."""
    path = Path(path)
    for folder in (path, path / "sparse" / "0", path / "sparse"):
        for ext in (".bin", ".txt"):
            if (folder / f"cameras{ext}").is_file() and (folder / f"images{ext}").is_file():
                return folder, ext
    return None


def read_model(path: str | Path, ext: str | None = None, points3D: bool = True) -> ColmapModel:
    """Read the model in folder ``path`` (``ext`` ".bin"/".txt", default: whichever exists, binary
    first). ``points3D=False`` skips the points (faster when only cameras are needed)."""
    path = Path(path)
    if ext is None:
        found = find_model(path)
        if found is None or found[0] != path:
            raise SceneError(f"{path}: no COLMAP model (cameras.bin/images.bin or cameras.txt/images.txt)")
        ext = found[1]
    read = {".bin": (_read_cameras_bin, _read_images_bin, _read_points_bin),
            ".txt": (_read_cameras_txt, _read_images_txt, _read_points_txt)}[ext]
    model = ColmapModel(cameras=read[0](path / f"cameras{ext}"), images=read[1](path / f"images{ext}"))
    if points3D:
        model.points3D = read[2](path / f"points3D{ext}")
    for img in model.images.values():
        if img.camera_id not in model.cameras:
            raise SceneError(f"{path / f'images{ext}'}: image {img.name!r} uses camera {img.camera_id}, "
                             f"which is not in cameras{ext}")
    return model


def write_model(model: ColmapModel, path: str | Path, ext: str = ".bin") -> None:
    """Write ``model`` into folder ``path`` (created if needed) as ".bin" or ".txt"."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if ext == ".bin":
        _write_bin(model, path)
    elif ext == ".txt":
        _write_txt(model, path)
    else:
        raise ValueError(f"ext must be '.bin' or '.txt', got {ext!r}")


def pinhole_params(camera: ColmapCamera) -> tuple[float, float, float, float, dict[str, float]]:
    """``(fx, fy, cx, cy, distortion)`` of a pinhole-compatible model; ``distortion`` maps the
    model's extra parameter names (k, k1, k2, p1, p2) to values. Raises for fisheye/FOV models."""
    if camera.model not in PINHOLE_MODELS:
        raise SceneError(f"camera {camera.id}: model {camera.model} is not supported "
                         f"(pinhole-compatible models: {', '.join(PINHOLE_MODELS)})")
    p = dict(zip(CAMERA_MODELS[camera.model][1], camera.params.tolist()))
    fx, fy = (p["f"], p["f"]) if "f" in p else (p["fx"], p["fy"])
    return fx, fy, p["cx"], p["cy"], {k: v for k, v in p.items() if k not in ("f", "fx", "fy", "cx", "cy")}


def to_camera(image: ColmapImage, camera: ColmapCamera, name: str | None = None) -> Camera:
    """The pinhole :class:`Camera` of ``image`` (distortion dropped: see :func:`pinhole_params`),
    named ``name`` (default: the image name)."""
    fx, fy, cx, cy, _ = pinhole_params(camera)
    return Camera(width=camera.width, height=camera.height, fx=fx, fy=fy, cx=cx, cy=cy,
                  c2w=image.c2w, name=image.name if name is None else name)


# ---------------------------------------------------------------------------------------------
# validation shared by both formats

def _check_camera(cam: ColmapCamera, where: str) -> ColmapCamera:
    n = len(CAMERA_MODELS[cam.model][1])
    if cam.params.size != n:
        raise SceneError(f"{where}: camera {cam.id} ({cam.model}) needs {n} parameters, got {cam.params.size}")
    if not np.isfinite(cam.params).all() or cam.width <= 0 or cam.height <= 0:
        raise SceneError(f"{where}: camera {cam.id} has a non-positive size or non-finite parameters")
    return cam


def _check_image(img: ColmapImage, where: str) -> ColmapImage:
    if not (np.isfinite(img.qvec).all() and np.isfinite(img.tvec).all()) or np.linalg.norm(img.qvec) < 1e-12:
        raise SceneError(f"{where}: image {img.id} ({img.name!r}) has a non-finite pose or a zero quaternion")
    if not img.name:
        raise SceneError(f"{where}: image {img.id} has an empty name")
    return img


def _check_point(pt: ColmapPoint3D, where: str) -> ColmapPoint3D:
    if not (np.isfinite(pt.xyz).all() and np.isfinite(pt.error)):
        raise SceneError(f"{where}: point {pt.id} has non-finite coordinates or error")
    return pt


def _model_name(model_id: int, where: str) -> str:
    if model_id not in _MODEL_BY_ID:
        raise SceneError(f"{where}: unknown camera model id {model_id}")
    return _MODEL_BY_ID[model_id]


def _put(table: dict, key: int, value, where: str) -> None:
    if key in table:
        raise SceneError(f"{where}: duplicate id {key}")
    table[key] = value


# ---------------------------------------------------------------------------------------------
# binary

class _Bytes:
    """Cursor over a file's bytes; running past the end is a "truncated" SceneError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as exc:
            raise SceneError(f"{path}: cannot read ({exc.strerror or exc})") from None
        self.pos = 0

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise SceneError(f"{self.path}: truncated file (needs {self.pos + n} bytes, has {len(self.data)})")

    def take(self, fmt: str) -> tuple:
        n = struct.calcsize("<" + fmt)
        self._need(n)
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += n
        return out

    def array(self, dtype: np.dtype, count: int) -> np.ndarray:
        self._need(np.dtype(dtype).itemsize * count)
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise SceneError(f"{self.path}: truncated file (unterminated image name)")
        out = self.data[self.pos:end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return out

    def count(self, item_size: int) -> int:
        """A uint64 element count, sanity-checked against the bytes left (items >= item_size)."""
        (n,) = self.take("Q")
        if n * item_size > len(self.data) - self.pos:
            raise SceneError(f"{self.path}: truncated file (count {n} at byte {self.pos - 8} exceeds the data)")
        return n

    def done(self) -> None:
        if self.pos != len(self.data):
            raise SceneError(f"{self.path}: {len(self.data) - self.pos} unexpected bytes after the last record")


_XY_ID = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
_TRACK = np.dtype([("image_id", "<u4"), ("idx", "<u4")])


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    f, out = _Bytes(path), {}
    for _ in range(f.count(24)):
        cid, mid, w, h = f.take("IiQQ")
        model = _model_name(mid, str(path))
        params = f.array("<f8", len(CAMERA_MODELS[model][1]))
        _put(out, cid, _check_camera(ColmapCamera(cid, model, w, h, params.copy()), str(path)), str(path))
    f.done()
    return out


def _read_images_bin(path: Path) -> dict[int, ColmapImage]:
    f, out = _Bytes(path), {}
    for _ in range(f.count(73)):
        iid, qw, qx, qy, qz, tx, ty, tz, cid = f.take("I7dI")
        name = f.cstring()
        pts = f.array(_XY_ID, f.count(_XY_ID.itemsize))
        img = ColmapImage(iid, (qw, qx, qy, qz), (tx, ty, tz), cid, name,
                          np.stack([pts["x"], pts["y"]], axis=1), pts["id"].copy())
        _put(out, iid, _check_image(img, str(path)), str(path))
    f.done()
    return out


def _read_points_bin(path: Path) -> dict[int, ColmapPoint3D]:
    f, out = _Bytes(path), {}
    for _ in range(f.count(51)):
        pid, x, y, z, r, g, b, err = f.take("Q3d3Bd")
        track = f.array(_TRACK, f.count(_TRACK.itemsize))
        pt = ColmapPoint3D(pid, (x, y, z), (r, g, b), err, track["image_id"], track["idx"])
        _put(out, pid, _check_point(pt, str(path)), str(path))
    f.done()
    return out


def _write_bin(model: ColmapModel, path: Path) -> None:
    parts = [struct.pack("<Q", len(model.cameras))]
    for c in model.cameras.values():
        _check_camera(c, "write_model")
        parts += [struct.pack("<IiQQ", c.id, CAMERA_MODELS[c.model][0], c.width, c.height),
                  c.params.astype("<f8").tobytes()]
    (path / "cameras.bin").write_bytes(b"".join(parts))

    parts = [struct.pack("<Q", len(model.images))]
    for im in model.images.values():
        pts = np.empty(len(im.point3D_ids), _XY_ID)
        pts["x"], pts["y"], pts["id"] = im.xys[:, 0], im.xys[:, 1], im.point3D_ids
        parts += [struct.pack("<I7dI", im.id, *im.qvec, *im.tvec, im.camera_id), im.name.encode() + b"\0",
                  struct.pack("<Q", len(pts)), pts.tobytes()]
    (path / "images.bin").write_bytes(b"".join(parts))

    parts = [struct.pack("<Q", len(model.points3D))]
    for p in model.points3D.values():
        track = np.empty(len(p.image_ids), _TRACK)
        track["image_id"], track["idx"] = p.image_ids, p.point2D_idxs
        parts += [struct.pack("<Q3d3Bd", p.id, *p.xyz, *p.rgb.tolist(), p.error),
                  struct.pack("<Q", len(track)), track.tobytes()]
    (path / "points3D.bin").write_bytes(b"".join(parts))


# ---------------------------------------------------------------------------------------------
# text

def _lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of every non-comment line, blank lines kept (images.txt needs them)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SceneError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), 1) if not ln.lstrip().startswith("#")]


def _numbers(where: str, tokens: list[str], kind=float) -> list:
    try:
        return [kind(t) for t in tokens]
    except ValueError:
        raise SceneError(f"{where}: expected numbers, got {' '.join(tokens)!r}") from None


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    out = {}
    for no, line in _lines(path):
        if not line:
            continue
        where, tok = f"{path}:{no}", line.split()
        if len(tok) < 5 or tok[1] not in CAMERA_MODELS:
            raise SceneError(f"{where}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...' with a known model")
        cid, w, h = _numbers(where, [tok[0], tok[2], tok[3]], int)
        _put(out, cid, _check_camera(ColmapCamera(cid, tok[1], w, h, _numbers(where, tok[4:])), where), where)
    return out


def _read_images_txt(path: Path) -> dict[int, ColmapImage]:
    out, lines, i = {}, _lines(path), 0
    while i < len(lines):
        no, line = lines[i]
        i += 1
        if not line:
            continue
        where, tok = f"{path}:{no}", line.split(maxsplit=9)
        if len(tok) != 10:
            raise SceneError(f"{where}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'")
        iid, cid = _numbers(where, [tok[0], tok[8]], int)
        pose = _numbers(where, tok[1:8])
        pts = lines[i][1].split() if i < len(lines) else []
        i += 1
        if len(pts) % 3:
            raise SceneError(f"{path}:{no + 1}: 2D points must be 'X Y POINT3D_ID' triples")
        xyid = np.array(_numbers(f"{path}:{no + 1}", pts), dtype=np.float64).reshape(-1, 3)
        img = ColmapImage(iid, pose[:4], pose[4:], cid, tok[9], xyid[:, :2], xyid[:, 2].astype(np.int64))
        _put(out, iid, _check_image(img, where), where)
    return out


def _read_points_txt(path: Path) -> dict[int, ColmapPoint3D]:
    out = {}
    for no, line in _lines(path):
        if not line:
            continue
        where, tok = f"{path}:{no}", line.split()
        if len(tok) < 8 or (len(tok) - 8) % 2:
            raise SceneError(f"{where}: expected 'POINT3D_ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)...'")
        pid, r, g, b = _numbers(where, [tok[0], *tok[4:7]], int)
        x, y, z, err = _numbers(where, [*tok[1:4], tok[7]])
        if not all(0 <= v <= 255 for v in (r, g, b)):
            raise SceneError(f"{where}: colour values must be 0..255")
        track = np.array(_numbers(where, tok[8:], int), dtype=np.int64).reshape(-1, 2)
        pt = ColmapPoint3D(pid, (x, y, z), (r, g, b), err, track[:, 0], track[:, 1])
        _put(out, pid, _check_point(pt, where), where)
    return out


def _fmt(values) -> str:
    return " ".join(repr(float(v)) for v in values)


def _write_txt(model: ColmapModel, path: Path) -> None:
    lines = ["# Camera list with one line of data per camera:",
             "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
             f"# Number of cameras: {len(model.cameras)}"]
    for c in model.cameras.values():
        _check_camera(c, "write_model")
        lines.append(f"{c.id} {c.model} {c.width} {c.height} {_fmt(c.params)}")
    (path / "cameras.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)",
             f"# Number of images: {len(model.images)}"]
    for im in model.images.values():
        lines.append(f"{im.id} {_fmt(im.qvec)} {_fmt(im.tvec)} {im.camera_id} {im.name}")
        lines.append(" ".join(f"{x!r} {y!r} {int(p)}" for (x, y), p in zip(im.xys.tolist(), im.point3D_ids)))
    (path / "images.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    lines = ["# 3D point list with one line of data per point:",
             "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
             f"# Number of points: {len(model.points3D)}"]
    for p in model.points3D.values():
        track = " ".join(f"{int(i)} {int(j)}" for i, j in zip(p.image_ids, p.point2D_idxs))
        rgb = " ".join(str(int(v)) for v in p.rgb)
        lines.append(f"{p.id} {_fmt(p.xyz)} {rgb} {float(p.error)!r} {track}".rstrip())
    (path / "points3D.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
