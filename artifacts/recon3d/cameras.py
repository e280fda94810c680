"""Pinhole cameras in one convention, and the conversions from the conventions of scene files.

Convention used everywhere in the package (OpenCV / COLMAP): camera looks along +z, x to the
right, y down in the image; ``c2w`` is the 4x4 camera-to-world matrix; pixel (u, v) has its
centre at (u + 0.5, v + 0.5) in continuous image coordinates, so ``cx = width / 2`` is the
image centre. Readers convert from their file's convention on load.

Other conventions (each conversion only permutes/negates the *columns* of the rotation of a
camera-to-world matrix; the camera centre, i.e. the translation column, is unchanged):

* OpenGL / Blender / NeRF-synthetic ``transform_matrix``: columns are camera (right, up,
  backwards) in world coordinates, the camera looks along -z.
  ``c2w_cv = c2w_gl @ diag(1, -1, -1, 1)`` (and the same product back).
* LLFF ``poses_bounds.npy``: one row per image, 17 numbers: a 3x5 matrix flattened row-major,
  then ``near, far`` (depth bounds of the scene content seen by that view). The 3x5 matrix is
  ``[R | t | hwf]``: a 3x4 camera-to-world with rotation columns (down, right, backwards) and
  ``hwf = (height, width, focal)`` in pixels of the full-resolution images (principal point at
  the centre, one focal for x and y). NeRF's ``load_llff.py`` reorders the columns to
  (right, up, backwards) = ``[c1, -c0, c2]``; here ``R_cv = [c1, c0, -c2]``. LLFF's
  ``imgs2poses`` writes COLMAP's poses this way without recentring or rescaling them (NeRF
  recentres at load time only).
* COLMAP ``images.bin/txt``: world-to-camera rotation as a unit quaternion ``(qw, qx, qy, qz)``
  (Hamilton, scalar first) and translation ``t`` in OpenCV axes: ``x_cam = R x_world + t``, so
  ``c2w = [R^T | -R^T t]`` and the camera centre is ``-R^T t``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Camera", "SceneError", "as_c2w", "c2w_to_colmap", "cameras_from_llff", "colmap_to_c2w",
    "llff_from_cameras", "llff_to_opencv", "look_at", "opencv_to_llff", "opencv_to_opengl",
    "opengl_to_opencv", "project", "qvec_to_rotmat", "rotmat_to_qvec",
]


class SceneError(ValueError):
    """Malformed scene or camera input. The message starts with the offending file's path."""


@dataclass
class Camera:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    c2w: np.ndarray = field(default_factory=lambda: np.eye(4))  # 4x4, OpenCV convention
    name: str = ""

    def __post_init__(self) -> None:
        self.c2w = np.asarray(self.c2w, dtype=np.float64)
        if self.c2w.shape != (4, 4) or not np.isfinite(self.c2w).all():
            raise ValueError(f"camera {self.name!r}: c2w must be a finite 4x4 matrix")
        vals = (self.width, self.height, self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(v) for v in vals) or self.width <= 0 or self.height <= 0 or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"camera {self.name!r}: size and focal lengths must be finite and positive")

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])

    @property
    def w2c(self) -> np.ndarray:
        return np.linalg.inv(self.c2w)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        return self.c2w[:3, 3].copy()

    def scaled(self, factor: float) -> Camera:
        """The camera of the image resized by ``factor`` (e.g. 1/8 for LLFF's ``images_8``).

        ``fx, fy, cx, cy`` are multiplied by ``factor`` exactly (the pixel-centre convention makes
        this right for continuous coordinates); width and height are rounded to integers.
        """
        if not (np.isfinite(factor) and factor > 0):
            raise ValueError(f"scale factor must be finite and positive, got {factor}")
        return dataclasses.replace(
            self, width=max(1, round(self.width * factor)), height=max(1, round(self.height * factor)),
            fx=self.fx * factor, fy=self.fy * factor, cx=self.cx * factor, cy=self.cy * factor)

    def resized(self, width: int, height: int) -> Camera:
        """The camera of the image resized to exactly ``width x height`` (x and y scale separately)."""
        sx, sy = width / self.width, height / self.height
        return dataclasses.replace(self, width=int(width), height=int(height), fx=self.fx * sx,
                                   fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy)


# ---------------------------------------------------------------------------------------------
# axis conventions

_GL = np.diag([1.0, -1.0, -1.0])                                    # (right, up, back) <-> OpenCV
_LLFF = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # (down, right, back) <-> OpenCV


def _swap_axes(c2w: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Re-express the camera axes: rotation columns ``R @ perm``; ``perm`` is its own inverse."""
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.shape[-2:] not in ((3, 4), (4, 4)):
        raise ValueError(f"expected (..., 3, 4) or (..., 4, 4) camera-to-world matrices, got {c2w.shape}")
    out = c2w.copy()
    out[..., :3, :3] = c2w[..., :3, :3] @ perm
    return out


def opengl_to_opencv(c2w: np.ndarray) -> np.ndarray:
    """OpenGL/Blender/NeRF-synthetic camera-to-world -> OpenCV (same shape, batched ok)."""
    return _swap_axes(c2w, _GL)


def opencv_to_opengl(c2w: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world -> OpenGL/Blender (same shape, batched ok)."""
    return _swap_axes(c2w, _GL)


def llff_to_opencv(pose: np.ndarray) -> np.ndarray:
    """LLFF pose ``(..., 3, 5)`` or ``(..., 3, 4)`` (hwf column dropped) -> OpenCV ``(..., 4, 4)``."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape[-2:] not in ((3, 4), (3, 5)):
        raise ValueError(f"expected LLFF poses of shape (..., 3, 5) or (..., 3, 4), got {pose.shape}")
    out = np.zeros(pose.shape[:-2] + (4, 4))
    out[..., :3, :4] = pose[..., :, :4]
    out[..., 3, 3] = 1.0
    return _swap_axes(out, _LLFF)


def opencv_to_llff(c2w: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world ``(..., 4, 4)`` or ``(..., 3, 4)`` -> LLFF ``(..., 3, 4)`` (no hwf)."""
    return _swap_axes(c2w, _LLFF)[..., :3, :4]


def cameras_from_llff(poses_bounds: np.ndarray, names: list[str] | None = None) -> tuple[list[Camera], np.ndarray]:
    """``poses_bounds`` array ``(N, 17)`` -> (N OpenCV cameras at the hwf resolution, bounds ``(N, 2)``)."""
    arr = np.asarray(poses_bounds, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 17:
        raise ValueError(f"expected an (N, 17) poses_bounds array, got shape {arr.shape}")
    poses = arr[:, :15].reshape(-1, 3, 5)
    c2ws = llff_to_opencv(poses)
    cams = []
    for i, (pose, c2w) in enumerate(zip(poses, c2ws)):
        h, w, f = (float(v) for v in pose[:, 4])
        cams.append(Camera(width=int(round(w)), height=int(round(h)), fx=f, fy=f, cx=w / 2, cy=h / 2,
                           c2w=c2w, name=names[i] if names else str(i)))
    return cams, arr[:, 15:17].copy()


def llff_from_cameras(cameras: list[Camera], bounds: np.ndarray) -> np.ndarray:
    """OpenCV cameras (centred principal point, ``fx == fy``) + bounds ``(N, 2)`` -> ``(N, 17)``."""
    bounds = np.asarray(bounds, dtype=np.float64).reshape(len(cameras), 2)
    rows = []
    for cam, b in zip(cameras, bounds):
        centred = np.isclose(cam.cx, cam.width / 2) and np.isclose(cam.cy, cam.height / 2)
        if not (centred and np.isclose(cam.fx, cam.fy)):
            raise ValueError(f"camera {cam.name!r}: LLFF needs fx == fy and a centred principal point")
        pose = np.concatenate([opencv_to_llff(cam.c2w), [[cam.height], [cam.width], [cam.fx]]], axis=1)
        rows.append(np.concatenate([pose.ravel(), b]))
    return np.asarray(rows).reshape(len(cameras), 17)


# ---------------------------------------------------------------------------------------------
# COLMAP quaternions


def qvec_to_rotmat(qvec: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(qw, qx, qy, qz)`` -> 3x3 rotation (normalised first)."""
    q = np.asarray(qvec, dtype=np.float64)
    n = np.linalg.norm(q)
    if q.shape != (4,) or not np.isfinite(q).all() or n < 1e-12:
        raise ValueError(f"quaternion must be 4 finite numbers, not all zero; got {qvec}")
    w, x, y, z = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion ``(qw, qx, qy, qz)`` with ``qw >= 0`` (Shepperd's method:
    solve for the largest of |w|, |x|, |y|, |z| first, which keeps the division well conditioned)."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3) or not np.isfinite(R).all():
        raise ValueError(f"expected a finite 3x3 rotation, got shape {R.shape}")
    d = np.array([np.trace(R), R[0, 0], R[1, 1], R[2, 2]])
    i = int(np.argmax(d))
    t = 1.0 + 2 * d[i] - d[0]                                           # 4 q_i^2, q = (w, x, y, z)
    a, b, c = R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]   # 4 w (x, y, z)
    e, f, g = R[0, 1] + R[1, 0], R[0, 2] + R[2, 0], R[1, 2] + R[2, 1]   # 4 (xy, xz, yz)
    rows = ((t, a, b, c), (a, t, e, f), (b, e, t, g), (c, f, g, t))     # row i = 4 q_i q
    q = np.array(rows[i]) / (2 * np.sqrt(t))
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def colmap_to_c2w(qvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """COLMAP world-to-camera ``(qvec, tvec)`` -> OpenCV camera-to-world 4x4."""
    R = qvec_to_rotmat(qvec)
    t = np.asarray(tvec, dtype=np.float64).reshape(3)
    c2w = np.eye(4)
    c2w[:3, :3] = R.T
    c2w[:3, 3] = -R.T @ t
    return c2w


def c2w_to_colmap(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV camera-to-world -> COLMAP world-to-camera ``(qvec, tvec)``."""
    c2w = np.asarray(c2w, dtype=np.float64)
    R = c2w[:3, :3].T
    return rotmat_to_qvec(R), -R @ c2w[:3, 3]


def as_c2w(matrix, where: str, tol: float = 1e-3) -> np.ndarray:
    """Validate a camera-to-world matrix read from ``where``: finite, 3x4 or 4x4 (bottom row
    ``0 0 0 1``), rotation part orthonormal with determinant +1 within ``tol``. Returns 4x4."""
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise SceneError(f"{where}: camera matrix is not numeric") from None
    if m.shape not in ((3, 4), (4, 4)):
        raise SceneError(f"{where}: camera matrix must be 3x4 or 4x4, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise SceneError(f"{where}: camera matrix has non-finite values")
    if m.shape == (4, 4) and not np.allclose(m[3], [0, 0, 0, 1], atol=tol):
        raise SceneError(f"{where}: camera matrix bottom row must be 0 0 0 1, got {m[3].tolist()}")
    R = m[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=tol) or np.linalg.det(R) < 0:
        raise SceneError(f"{where}: camera rotation is not a proper rotation (orthonormal, det +1)")
    out = np.eye(4)
    out[:3] = m[:3]
    return out


# ---------------------------------------------------------------------------------------------
# using cameras


def project(camera: Camera, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points ``(N, 3)`` -> pixel coordinates ``uv (N, 2)`` and depths ``(N,)`` (z in the
    camera frame). ``uv`` is continuous (pixel (0, 0) spans [0, 1)); NaN where ``depth <= 0``."""
    pts = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    w2c = camera.w2c
    cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
    depth = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([camera.fx * cam[:, 0] / depth + camera.cx, camera.fy * cam[:, 1] / depth + camera.cy], axis=1)
    uv[depth <= 0] = np.nan
    return uv, depth


def look_at(eye, target, up, width: int, height: int, fov_x: float, name: str = "") -> Camera:
    """A camera at ``eye`` looking at ``target`` with ``up`` (world vector) pointing up in the
    image; ``fov_x`` is the horizontal field of view in radians; square pixels, centred."""
    eye, target, up = (np.asarray(v, dtype=np.float64).reshape(3) for v in (eye, target, up))
    z = target - eye
    if np.linalg.norm(z) < 1e-12:
        raise ValueError("look_at: eye and target coincide")
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9 * max(np.linalg.norm(up), 1e-300):
        raise ValueError("look_at: up is parallel to the viewing direction")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # image down
    if not 0 < fov_x < np.pi:
        raise ValueError(f"look_at: fov_x must be in (0, pi) radians, got {fov_x}")
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([x, y, z], axis=1)
    c2w[:3, 3] = eye
    f = 0.5 * width / np.tan(0.5 * fov_x)
    return Camera(width=int(width), height=int(height), fx=f, fy=f, cx=width / 2, cy=height / 2, c2w=c2w, name=name)
