"""Headless rendering of triangle meshes with ``open3d.t.geometry.RaycastingScene`` (CPU, no display).

For every :class:`~artifacts.recon3d.cameras.Camera` one ray per pixel is cast through the pixel
centre ``(u + 0.5, v + 0.5)`` and :func:`render` returns a :class:`View` with

* ``depth``: float32 metres, **z-depth** (distance along the camera's +z axis, as depth sensors and
  TSDF fusion use it), not the length of the ray; 0 where the ray hits nothing;
* ``normal``: float32 unit normals of the surface hit, in the **world** frame by default or in the
  camera's OpenCV frame (x right, y down, +z forward, so a surface facing the camera has
  ``n_z < 0``) with ``normal_frame="camera"``; the mesh's vertex normals interpolated when it has
  them, else the triangle's geometric normal (oriented by the triangle winding); 0 on background;
* ``color``: uint8 RGB: the mesh's vertex colours interpolated with the barycentric coordinates of
  the hit, unshaded; for a mesh without colours a grey Lambert shading, lit by a directional light
  along the camera's viewing axis (both faces of a triangle are lit);
  ``background`` where nothing is hit;
* ``mask``: bool, True where the mesh was hit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .cameras import Camera
from .geometry import require_open3d

__all__ = ["View", "camera_rays", "render"]


@dataclass
class View:
    """One rendered camera: ``color`` (H,W,3 uint8), ``depth`` (H,W float32 z-depth in metres, 0 = no
    hit), ``normal`` (H,W,3 float32, frame given by ``normal_frame``), ``mask`` (H,W bool)."""

    camera: Camera
    color: np.ndarray
    depth: np.ndarray
    normal: np.ndarray
    mask: np.ndarray
    normal_frame: str = "world"


def camera_rays(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """World-space ray ``origins`` and ``directions`` (H,W,3 each) through the pixel centres.

    A direction has camera-frame z equal to 1 (it is not normalised), so the ray parameter of a hit
    is its z-depth.
    """
    u = (np.arange(camera.width) + 0.5 - camera.cx) / camera.fx
    v = (np.arange(camera.height) + 0.5 - camera.cy) / camera.fy
    uu, vv = np.meshgrid(u, v)
    local = np.stack([uu, vv, np.ones_like(uu)], axis=-1)
    directions = local @ camera.c2w[:3, :3].T
    origins = np.broadcast_to(camera.c2w[:3, 3], directions.shape)
    return origins, directions


def render(
    mesh: Any,
    cameras: Sequence[Camera],
    *,
    normal_frame: str = "world",
    background: Sequence[int] = (0, 0, 0),
    ambient: float = 0.25,
) -> list[View]:
    """Render ``mesh`` (an open3d legacy ``TriangleMesh``) from each camera; see the module notes.

    ``ambient`` is the light level of the Lambert shading used for meshes without vertex colours.
    """
    if normal_frame not in ("world", "camera"):
        raise ValueError(f"normal_frame must be 'world' or 'camera', got {normal_frame!r}")
    o3d = require_open3d()
    triangles = np.asarray(mesh.triangles)
    if len(triangles) == 0:
        raise ValueError("render needs a triangle mesh; this geometry has no triangles")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    colors = np.asarray(mesh.vertex_colors) if mesh.has_vertex_colors() else None
    normals = np.asarray(mesh.vertex_normals) if mesh.has_vertex_normals() else None
    back = np.asarray(background, dtype=np.uint8)
    return [_render_one(scene, o3d, cam, triangles, colors, normals, normal_frame, back, ambient) for cam in cameras]


def _render_one(scene, o3d, cam, triangles, colors, normals, normal_frame, background, ambient) -> View:
    origins, directions = camera_rays(cam)
    rays = np.concatenate([origins, directions], axis=-1).astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy()
    mask = np.isfinite(t)
    prim = hit["primitive_ids"].numpy()[mask].astype(np.int64)
    uv = hit["primitive_uvs"].numpy()[mask]
    # barycentric weights of the triangle's three vertices: p = (1-u-v) a + u b + v c
    weights = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=-1)[..., None]
    corner = triangles[prim]

    n = hit["primitive_normals"].numpy()[mask].astype(np.float64)
    if normals is not None:
        n = (normals[corner] * weights).sum(axis=1)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)

    color = np.empty((cam.height, cam.width, 3), np.uint8)
    color[:] = background
    if colors is not None:
        rgb = (colors[corner] * weights).sum(axis=1)
    else:
        lambert = np.abs(n @ cam.c2w[:3, 2])
        rgb = np.repeat((0.8 * (ambient + (1.0 - ambient) * lambert))[:, None], 3, axis=1)
    color[mask] = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)

    if normal_frame == "camera":
        n = n @ cam.c2w[:3, :3]  # rows times R == (R^T n) per row: world -> camera
    normal = np.zeros((cam.height, cam.width, 3), np.float32)
    normal[mask] = n
    depth = np.where(mask, t, 0.0).astype(np.float32)
    return View(camera=cam, color=color, depth=depth, normal=normal, mask=mask, normal_frame=normal_frame)
