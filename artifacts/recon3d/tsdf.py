"""TSDF fusion of RGB-D views into a triangle mesh (open3d ``t.geometry.VoxelBlockGrid``, CPU).

Why the voxel block grid: in open3d 0.20 ``ScalableTSDFVolume`` extracts empty meshes, and
``UniformTSDFVolume`` allocates a dense cube (memory grows with the cube of the scene size); the
block grid is sparse. Each integration adds 1 to a voxel's weight and extraction keeps voxels whose
weight is *strictly* above ``weight_threshold`` (open3d's default 3.0 thus needs 4 views); here
``min_views`` (default 1: keep surfaces seen once) becomes ``weight_threshold = min_views - 0.5``.

Depths are z-depths (as :func:`artifacts.recon3d.render.render` produces); open3d wants the
world-to-camera extrinsic (``camera.w2c``). open3d samples pixel ``floor(u)`` for a projected point
``u``, i.e. pixel centres at ``+0.5``, the convention of :mod:`artifacts.recon3d.cameras`, so the
intrinsics pass through unchanged.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .cameras import Camera
from .geometry import require_open3d

__all__ = ["fuse"]


def fuse(
    colors: Sequence[np.ndarray | None] | None,
    depths: Sequence[np.ndarray],
    cameras: Sequence[Camera],
    voxel_length: float,
    sdf_trunc: float | None = None,
    *,
    depth_scale: float = 1.0,
    depth_max: float | None = None,
    min_views: int = 1,
    block_resolution: int = 8,
) -> Any:
    """Fuse views into an open3d legacy ``TriangleMesh`` (with vertex colours when ``colors`` given).

    ``colors``: per view an H,W,3 uint8 RGB image (or None for all, depth-only fusion);
    ``depths``: per view an H,W array, metres after division by ``depth_scale`` (so uint16
    millimetres with ``depth_scale=1000``), 0 = no measurement; ``voxel_length`` in metres;
    ``sdf_trunc`` the truncation distance (default ``3 * voxel_length``; sharp edges bulge outwards
    by up to about ``sdf_trunc``); ``depth_max`` ignores farther measurements (default: none
    ignored); ``min_views`` drops surface voxels that fewer views saw (raise it to remove one-view
    noise when views overlap a lot); ``block_resolution`` voxels per block edge of the sparse grid.
    """
    o3d = require_open3d()
    if not (len(depths) == len(cameras) and (colors is None or len(colors) == len(cameras))):
        raise ValueError("fuse needs one depth image (and one colour image, if any) per camera")
    if min_views < 1:
        raise ValueError(f"min_views must be at least 1, got {min_views}")
    if not cameras:
        raise ValueError("fuse needs at least one view")
    if not voxel_length > 0:
        raise ValueError(f"voxel_length must be positive, got {voxel_length}")
    trunc = 3.0 * voxel_length if sdf_trunc is None else float(sdf_trunc)
    if not trunc > voxel_length:
        raise ValueError(f"sdf_trunc ({trunc}) must be larger than voxel_length ({voxel_length})")
    views = [_view(o3d, cam, depth, None if colors is None else colors[i], depth_scale)
             for i, (cam, depth) in enumerate(zip(cameras, depths))]
    far = float(depth_max) if depth_max is not None else max(float(d.max()) for d, _, _, _ in views) + trunc
    mult = trunc / voxel_length
    args = dict(depth_scale=1.0, depth_max=far, trunc_voxel_multiplier=mult)

    def make_grid(block_count: int) -> Any:
        return o3d.t.geometry.VoxelBlockGrid(("tsdf", "weight", "color"), (o3d.core.float32,) * 3,
                                             ((1,), (1,), (3,)), voxel_size=voxel_length,
                                             block_resolution=block_resolution, block_count=block_count)

    probe = make_grid(1)
    blocks = [probe.compute_unique_block_coordinates(depth_img, K, E, **args) for _, depth_img, K, E in views]
    # size the hash map (allocated up front) for exactly the blocks the views touch
    grid = make_grid(max(1, len(np.unique(np.concatenate([b.numpy().reshape(-1, 3) for b in blocks]), axis=0))))
    for i, ((_, depth_img, K, E), coords) in enumerate(zip(views, blocks)):
        color_img = _color_image(o3d, None if colors is None else colors[i])
        if color_img is None:
            grid.integrate(coords, depth_img, K, E, **args)
        else:
            grid.integrate(coords, depth_img, color_img, K, E, **args)
    mesh = grid.extract_triangle_mesh(weight_threshold=min_views - 0.5).to_legacy()
    if colors is None:
        mesh.vertex_colors = o3d.utility.Vector3dVector(np.zeros((0, 3)))
    return mesh


def _view(o3d, cam: Camera, depth: np.ndarray, color: np.ndarray | None, depth_scale: float):
    d = np.asarray(depth)
    if d.shape != (cam.height, cam.width):
        raise ValueError(f"view {cam.name!r}: depth is {d.shape}, the camera is {cam.height}x{cam.width}")
    if color is not None and np.asarray(color).shape[:2] != d.shape:
        raise ValueError(f"view {cam.name!r}: colour is {np.asarray(color).shape[:2]}, depth is {d.shape}")
    metres = np.ascontiguousarray(np.nan_to_num(d.astype(np.float32) / depth_scale, nan=0.0, posinf=0.0))
    K = o3d.core.Tensor(cam.K, o3d.core.float64)
    E = o3d.core.Tensor(cam.w2c, o3d.core.float64)
    return metres, o3d.t.geometry.Image(o3d.core.Tensor(metres)), K, E


def _color_image(o3d, color: np.ndarray | None):
    """An open3d float32 RGB image in [0, 1] from uint8 (0..255) or float ([0, 1]) pixels."""
    if color is None:
        return None
    rgb = np.asarray(color)[..., :3]
    scale = 255.0 if rgb.dtype == np.uint8 else 65535.0 if rgb.dtype == np.uint16 else 1.0
    return o3d.t.geometry.Image(o3d.core.Tensor(np.ascontiguousarray(rgb, dtype=np.float32) / scale))
