"""Point-cloud artifact cleanup: statistical outliers, radius outliers and small floater clusters.

The criteria run one after the other, each on the points the previous ones kept, so every removed
point is counted once, under the first criterion that removed it. Distances left at ``None`` are
derived from the cloud's *spacing* (median distance of a point to its nearest neighbour), so the
defaults work at any scene scale; the report records the values actually used.

* statistical (open3d ``remove_statistical_outlier``): the mean distance to the ``nb_neighbors``
  nearest points is more than ``std_ratio`` standard deviations above its average over the cloud;
* radius (open3d ``remove_radius_outlier``): fewer than ``min_neighbors`` other points within
  ``radius`` (default ``5 * spacing``);
* clusters (open3d ``cluster_dbscan``): DBSCAN connected components with ``cluster_eps`` (default
  ``4 * spacing``) and ``cluster_min_points`` (the point itself included); points in no cluster and
  clusters holding less than ``min_cluster_fraction`` of the points are floaters. DBSCAN keeps every
  point's neighbour list in memory: on millions of points, subsample or disable it (``cluster_eps=0``).

The same building blocks (:func:`apply_steps`, :func:`spatial_steps`, :func:`make_report`,
:func:`before_after_png`) serve :mod:`artifacts.recon3d.gaussians`.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .geometry import require_open3d

__all__ = [
    "CleanResult", "apply_steps", "before_after_png", "bbox", "clean_point_cloud", "make_report", "point_spacing",
    "radius_outliers", "small_clusters", "spatial_steps", "statistical_outliers",
]

Step = tuple[str, Callable[[np.ndarray], np.ndarray]]


class CleanResult(NamedTuple):
    """What a cleanup returns: the cleaned geometry, the report (JSON-serialisable), the keep mask
    over the input points, and the before/after PNG (bytes, or None when not asked for)."""

    cleaned: Any
    report: dict[str, Any]
    keep: np.ndarray
    picture: bytes | None


def _cloud(points: np.ndarray) -> Any:
    o3d = require_open3d()
    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64).reshape(-1, 3)))


def _removed(n: int, kept_indices: Sequence[int]) -> np.ndarray:
    out = np.ones(n, bool)
    out[np.asarray(kept_indices, dtype=np.int64)] = False
    return out


def point_spacing(points: np.ndarray) -> float:
    """Median distance from a point to its nearest neighbour (0 for fewer than two points)."""
    if len(points) < 2:
        return 0.0
    return float(np.median(np.asarray(_cloud(points).compute_nearest_neighbor_distance())))


def statistical_outliers(points: np.ndarray, nb_neighbors: int = 20, std_ratio: float = 2.0) -> np.ndarray:
    """Boolean mask, True for statistical outliers (see the module notes)."""
    if len(points) <= nb_neighbors:
        return np.zeros(len(points), bool)
    _, kept = _cloud(points).remove_statistical_outlier(nb_neighbors=int(nb_neighbors), std_ratio=float(std_ratio))
    return _removed(len(points), kept)


def radius_outliers(points: np.ndarray, radius: float, min_neighbors: int) -> np.ndarray:
    """Boolean mask, True for points with fewer than ``min_neighbors`` other points within ``radius``."""
    if len(points) == 0:
        return np.zeros(0, bool)
    _, kept = _cloud(points).remove_radius_outlier(nb_points=int(min_neighbors), radius=float(radius))
    return _removed(len(points), kept)


def small_clusters(points: np.ndarray, eps: float, min_points: int, min_fraction: float) -> np.ndarray:
    """Boolean mask, True for DBSCAN noise and for clusters smaller than ``min_fraction`` of the points."""
    if len(points) == 0:
        return np.zeros(0, bool)
    labels = np.asarray(_cloud(points).cluster_dbscan(eps=float(eps), min_points=int(min_points)))
    noise = labels < 0
    if noise.all():
        return noise
    small = np.bincount(labels[~noise]) < min_fraction * len(points)
    return noise | (small[np.maximum(labels, 0)] & ~noise)


def apply_steps(n: int, steps: Sequence[Step]) -> tuple[np.ndarray, dict[str, int]]:
    """Run removal steps in order. Each gets the indices still kept and returns a removal mask over
    them. Returns the final keep mask and the number each step removed."""
    keep = np.ones(n, bool)
    counts: dict[str, int] = {}
    for name, step in steps:
        alive = np.flatnonzero(keep)
        drop = np.asarray(step(alive), bool) if len(alive) else np.zeros(0, bool)
        keep[alive[drop]] = False
        counts[name] = int(drop.sum())
    return keep, counts


def spatial_steps(
    points: np.ndarray,
    params: dict[str, Any],
    *,
    radius: float | None = None,
    min_neighbors: int = 4,
    cluster_eps: float | None = None,
    cluster_min_points: int = 5,
    min_cluster_fraction: float = 0.02,
) -> list[Step]:
    """The radius-outlier and small-cluster steps for ``points``, with distances resolved from the
    spacing when None; a distance of 0 (or ``min_neighbors=0``) disables the step. Resolved values are
    written into ``params``."""
    spacing = point_spacing(points) if radius is None or cluster_eps is None else None
    radius = 5.0 * spacing if radius is None else float(radius)
    cluster_eps = 4.0 * spacing if cluster_eps is None else float(cluster_eps)
    params.update(spacing=spacing, radius=radius, min_neighbors=min_neighbors, cluster_eps=cluster_eps,
                  cluster_min_points=cluster_min_points, min_cluster_fraction=min_cluster_fraction)
    steps: list[Step] = []
    if radius > 0 and min_neighbors > 0:
        steps.append(("radius", lambda idx: radius_outliers(points[idx], radius, min_neighbors)))
    if cluster_eps > 0:
        steps.append(("clusters", lambda idx: small_clusters(points[idx], cluster_eps, cluster_min_points,
                                                             min_cluster_fraction)))
    return steps


def bbox(points: np.ndarray) -> dict[str, list[float]] | None:
    """``{"min": [x, y, z], "max": [x, y, z]}``, or None for no points."""
    if len(points) == 0:
        return None
    return {"min": points.min(axis=0).tolist(), "max": points.max(axis=0).tolist()}


def make_report(kind: str, points: np.ndarray, keep: np.ndarray, counts: dict[str, int],
                params: dict[str, Any]) -> dict[str, Any]:
    """The cleanup report shared by point clouds and Gaussian splats (JSON-serialisable): input and
    kept counts, removals per criterion (in the order applied), parameters, bounding boxes."""
    return {
        "kind": kind,
        "input": int(len(points)),
        "kept": int(keep.sum()),
        "removed_total": int((~keep).sum()),
        "removed": counts,
        "order": list(counts),
        "params": params,
        "bbox_before": bbox(points),
        "bbox_after": bbox(points[keep]),
    }


def clean_point_cloud(
    pcd: Any,
    *,
    nb_neighbors: int = 20,
    std_ratio: float | None = 2.5,
    picture: bool = True,
    **spatial: Any,
) -> CleanResult:
    """Clean an open3d ``PointCloud`` (colours and normals are kept with their points).

    ``std_ratio=None`` skips the statistical test; ``spatial`` takes the keyword arguments of
    :func:`spatial_steps` (``radius``, ``min_neighbors``, ``cluster_eps``, ...); ``picture=False``
    skips the before/after PNG."""
    points = np.asarray(pcd.points)
    params: dict[str, Any] = {"nb_neighbors": nb_neighbors, "std_ratio": std_ratio}
    steps: list[Step] = []
    if std_ratio is not None and std_ratio > 0:
        steps.append(("statistical", lambda idx: statistical_outliers(points[idx], nb_neighbors, std_ratio)))
    steps += spatial_steps(points, params, **spatial)
    keep, counts = apply_steps(len(points), steps)
    colors = np.asarray(pcd.colors) if pcd.has_colors() else None
    return CleanResult(
        cleaned=pcd.select_by_index(np.flatnonzero(keep).tolist()),
        report=make_report("point_cloud", points, keep, counts, params),
        keep=keep,
        picture=before_after_png(points, keep, colors) if picture else None,
    )


def before_after_png(points: np.ndarray, keep: np.ndarray, colors: np.ndarray | None = None, size: int = 320) -> bytes:
    """PNG bytes: the cloud before (removed points in red) and after, side by side, as orthographic
    scatter projections along the axis of smallest extent, both panels at the same scale."""
    import cv2

    from artifacts.io import encode_image

    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    lo, hi = (points.min(0), points.max(0)) if len(points) else (np.zeros(3), np.ones(3))
    axes = np.argsort(hi - lo)  # [depth axis, ..., widest]
    u_axis, v_axis, d_axis = axes[2], axes[1], axes[0]
    extent = max(float((hi - lo)[u_axis]), float((hi - lo)[v_axis]), 1e-12)
    margin, header = 8, 24
    scale = (size - 2 * margin) / extent
    px = ((points[:, u_axis] - lo[u_axis]) * scale + margin).astype(int)
    py = (size - margin - (points[:, v_axis] - lo[v_axis]) * scale).astype(int)
    if colors is not None and len(colors) == len(points):
        rgb = np.clip(np.asarray(colors, dtype=np.float64) * 255.0, 0, 255).astype(np.uint8)
    else:  # grey by depth: nearer (larger depth-axis coordinate) is brighter
        depth = (points[:, d_axis] - lo[d_axis]) / max(float((hi - lo)[d_axis]), 1e-12)
        rgb = np.repeat((80 + 150 * depth).astype(np.uint8)[:, None], 3, axis=1)
    order = np.argsort(points[:, d_axis]) if len(points) else np.zeros(0, int)

    def panel(mask: np.ndarray, highlight: bool, label: str) -> np.ndarray:
        img = np.full((size + header, size, 3), 255, np.uint8)
        idx = order[mask[order]]
        img[py[idx] + header, px[idx]] = rgb[idx]
        if highlight:
            gone = np.flatnonzero(~keep)
            for dy in (0, 1):
                for dx in (0, 1):
                    img[np.clip(py[gone] + header + dy, 0, size + header - 1), np.clip(px[gone] + dx, 0, size - 1)] = (220, 30, 30)
        cv2.putText(img, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        return img

    before = panel(np.ones(len(points), bool), True, f"before: {len(points)} (red: {int((~keep).sum())} removed)")
    after = panel(keep, False, f"after: {int(keep.sum())}")
    gap = np.full((size + header, 4, 3), 160, np.uint8)
    return encode_image(np.concatenate([before, gap, after], axis=1), ".png")
