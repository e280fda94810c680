"""``artifacts recon3d render|clean|fuse``: files in, files out; the work happens in the library modules.

::

    artifacts recon3d render MESH --cameras CAMERAS.json -o OUT [--format png|npy] [--normal-frame world|camera]
    artifacts recon3d clean CLOUD.ply -o CLEAN.ply [--report R.json] [--picture P.png] [criteria options]
    artifacts recon3d fuse FOLDER -o MESH.ply --voxel-length 0.01 [--cameras FOLDER/cameras.json]

``render`` writes ``OUT/color/NAME.png`` (RGB), ``OUT/depth/NAME.png`` (16-bit, z-depth in
millimetres, 0 = background) or ``NAME.npy`` (float32 metres), ``OUT/normal/NAME.png`` (8-bit,
``(n + 1) / 2`` of world-frame unit normals, 0 = background) or ``NAME.npy`` (float32), and
``OUT/cameras.json``; ``fuse`` reads exactly that layout, so ``fuse OUT`` rebuilds the mesh.
``clean`` takes a point cloud or a Gaussian-splat PLY (told apart by its header) and writes the
cleaned file, a JSON report and a before/after PNG (default: next to the output).

``--cameras`` is a JSON list (or ``{"cameras": [...]}``) of ``{"width", "height", "fx", "fy",
"cx", "cy", "c2w", "name"}`` with ``c2w`` a 4x4 camera-to-world matrix, OpenCV axes, or a scene
folder that :func:`artifacts.recon3d.scenes.load_scene` reads (NeRF-synthetic, LLFF, COLMAP).

Exit codes: 0 done; 2 bad arguments or input (one line on stderr); 4 cannot write the output.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, Sequence

import numpy as np

__all__ = ["add_parser", "load_cameras", "main", "save_cameras"]

_DESCRIPTION = "Render meshes, clean point clouds and Gaussian splats, fuse RGB-D views (open3d, CPU, headless)."
_EPILOG = """examples:
  artifacts recon3d render mesh.ply --cameras cams.json -o views
  artifacts recon3d fuse views --voxel-length 0.01 -o fused.ply
  artifacts recon3d clean splats.ply -o clean.ply

exit codes: 0 done; 2 bad arguments or input; 4 cannot write the output"""
_CAMERA_KEYS = ("width", "height", "fx", "fy", "cx", "cy", "c2w")
_MM_MAX = np.iinfo(np.uint16).max


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``recon3d`` command to the main CLI's subparsers; it runs through :func:`main`."""
    p = subparsers.add_parser("recon3d", help="3D: render meshes, clean point clouds / splats, fuse RGB-D views",
                              description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _fill(p)
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    """Run a ``recon3d`` namespace parsed by the main CLI (which maps errors to exit codes)."""
    return args.recon3d_func(args)


def _fill(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="recon3d_command", required=True, metavar="{render,clean,fuse}")

    r = sub.add_parser("render", help="render colour, depth and normal images of a mesh (headless, CPU)")
    r.add_argument("mesh", help="mesh file (PLY, OBJ, GLB/glTF, ...)")
    r.add_argument("--cameras", required=True, help="JSON list of cameras, or a scene folder (NeRF, LLFF, COLMAP)")
    r.add_argument("-o", "--out", required=True, help="output folder")
    r.add_argument("--format", choices=("png", "npy"), default="png",
                   help="depth and normal maps: png (16-bit mm depth, 8-bit normals) or npy (float32); default png")
    r.add_argument("--normal-frame", choices=("world", "camera"), default="world", help="frame of the normals")
    r.set_defaults(recon3d_func=cmd_render)

    c = sub.add_parser("clean", help="remove outliers and floaters from a point cloud or a Gaussian-splat PLY")
    c.add_argument("input", help="point cloud (PLY, PCD, ...) or Gaussian-splat PLY (detected from the header)")
    c.add_argument("-o", "--out", required=True, help="cleaned file (same format for splats)")
    c.add_argument("--report", help="report JSON (default: OUT with .report.json)")
    c.add_argument("--picture", help="before/after PNG (default: OUT with .before_after.png)")
    c.add_argument("--kind", choices=("auto", "points", "gaussians"), default="auto", help="input kind (default auto)")
    c.add_argument("--std-ratio", type=float, default=2.5, help="point clouds: statistical test, 0 = off (default 2.5)")
    c.add_argument("--nb-neighbors", type=int, default=20, help="point clouds: neighbours of the statistical test")
    c.add_argument("--radius", type=float, help="isolation radius (default 5 x point spacing; 0 = off)")
    c.add_argument("--min-neighbors", type=int, default=4, help="fewest other points within --radius (default 4)")
    c.add_argument("--cluster-eps", type=float, help="DBSCAN eps (default 4 x point spacing; 0 = off)")
    c.add_argument("--cluster-min-points", type=int, default=5, help="DBSCAN min points (default 5)")
    c.add_argument("--min-cluster-fraction", type=float, default=0.02,
                   help="clusters with fewer points than this fraction are floaters (default 0.02)")
    c.add_argument("--min-opacity", type=float, default=0.005, help="splats: lowest opacity kept (default 0.005)")
    c.add_argument("--max-scale", type=float, help="splats: absolute largest axis length (default: relative limit)")
    c.add_argument("--max-aspect", type=float, default=100.0, help="splats: longest / middle axis, 0 = off (default 100)")
    c.set_defaults(recon3d_func=cmd_clean)

    f = sub.add_parser("fuse", help="TSDF-fuse a folder of colour/depth images into a mesh")
    f.add_argument("folder", help="folder with depth/NAME.png|.npy and optional color/NAME.png (render's layout)")
    f.add_argument("--cameras", help="JSON list of cameras or scene folder (default FOLDER/cameras.json)")
    f.add_argument("-o", "--out", required=True, help="mesh file to write (PLY, OBJ, GLB)")
    f.add_argument("--voxel-length", type=float, required=True, help="voxel size in metres")
    f.add_argument("--sdf-trunc", type=float, help="truncation distance in metres (default 3 x voxel)")
    f.add_argument("--depth-max", type=float, help="ignore depths beyond this (metres)")
    f.add_argument("--min-views", type=int, default=1, help="keep surfaces seen by at least this many views")
    f.set_defaults(recon3d_func=cmd_fuse)


# ---------------------------------------------------------------- cameras

def load_cameras(path: str) -> list:
    """Cameras from a JSON file or a scene folder (:func:`artifacts.recon3d.scenes.load_scene`).

    Names default to ``view_000``... and are made file-name safe; they must stay unique."""
    from .cameras import Camera

    if os.path.isdir(path):
        from .scenes import load_scene

        views = [v for v in load_scene(path).views if v.camera is not None]
        if not views:
            raise ValueError(f"{path}: the scene has no cameras")
        return _named(path, [(v.camera, v.name) for v in views])
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
    items = data.get("cameras") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected a non-empty JSON list of cameras")
    cameras = []
    for i, item in enumerate(items):
        missing = [k for k in _CAMERA_KEYS if not isinstance(item, dict) or k not in item]
        if missing:
            raise ValueError(f"{path}: camera {i} lacks {', '.join(missing)}")
        try:
            cam = Camera(int(item["width"]), int(item["height"]), float(item["fx"]), float(item["fy"]),
                         float(item["cx"]), float(item["cy"]), np.asarray(item["c2w"], dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: camera {i}: {exc}") from None
        cameras.append((cam, item.get("name")))
    return _named(path, cameras)


def _named(path: str, cameras: list) -> list:
    out, seen = [], set()
    for i, (cam, name) in enumerate(cameras):
        cam.name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name or f"view_{i:03d}"))
        if cam.name in seen:
            raise ValueError(f"{path}: two cameras are named {cam.name!r}")
        seen.add(cam.name)
        out.append(cam)
    return out


def save_cameras(cameras: Sequence[Any], path: str) -> None:
    """Write cameras in the JSON form :func:`load_cameras` reads."""
    items = [{"name": c.name, "width": c.width, "height": c.height, "fx": c.fx, "fy": c.fy, "cx": c.cx, "cy": c.cy,
              "c2w": np.asarray(c.c2w).tolist()} for c in cameras]
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(items, fh, indent=1)


# ---------------------------------------------------------------- render

def cmd_render(args: argparse.Namespace) -> int:
    from artifacts.io import save_image

    from .geometry import load_mesh
    from .render import render

    cameras = load_cameras(args.cameras)
    views = render(load_mesh(args.mesh), cameras, normal_frame=args.normal_frame)
    for sub in ("color", "depth", "normal"):
        os.makedirs(os.path.join(args.out, sub), exist_ok=True)
    for view in views:
        name = view.camera.name
        save_image(os.path.join(args.out, "color", f"{name}.png"), view.color)
        if args.format == "npy":
            np.save(os.path.join(args.out, "depth", f"{name}.npy"), view.depth)
            np.save(os.path.join(args.out, "normal", f"{name}.npy"), view.normal)
            continue
        mm = np.rint(view.depth * 1000.0)
        if mm.max() > _MM_MAX:
            raise ValueError(f"view {name}: depth beyond {_MM_MAX / 1000} m does not fit a 16-bit mm PNG; use --format npy")
        save_image(os.path.join(args.out, "depth", f"{name}.png"), mm.astype(np.uint16))
        encoded = np.where(view.mask[..., None], np.rint((view.normal + 1.0) * 127.5), 0)
        save_image(os.path.join(args.out, "normal", f"{name}.png"), encoded.astype(np.uint8))
    save_cameras(cameras, os.path.join(args.out, "cameras.json"))
    print(f"rendered {len(views)} views to {args.out}")
    return 0


# ---------------------------------------------------------------- clean

def _side_file(out: str, given: str | None, suffix: str) -> str:
    return given or os.path.splitext(out)[0] + suffix


def cmd_clean(args: argparse.Namespace) -> int:
    from .gaussians import is_gaussian_ply

    if not os.path.isfile(args.input):
        raise FileNotFoundError(f"{args.input}: file not found")
    spatial = dict(radius=args.radius, min_neighbors=args.min_neighbors, cluster_eps=args.cluster_eps,
                   cluster_min_points=args.cluster_min_points, min_cluster_fraction=args.min_cluster_fraction)
    kind = args.kind if args.kind != "auto" else "gaussians" if is_gaussian_ply(args.input) else "points"
    if kind == "gaussians":
        from .gaussians import clean_gaussians, read_gaussian_ply, write_gaussian_ply

        if not args.out.lower().endswith(".ply"):
            raise ValueError(f"{args.out}: a Gaussian-splat file is written as .ply")
        result = clean_gaussians(read_gaussian_ply(args.input), min_opacity=args.min_opacity,
                                 max_scale=args.max_scale, max_aspect=args.max_aspect or None, **spatial)
        write_gaussian_ply(result.cleaned, args.out)
    else:
        from .cleanup import clean_point_cloud
        from .geometry import load_point_cloud, save_point_cloud

        result = clean_point_cloud(load_point_cloud(args.input), nb_neighbors=args.nb_neighbors,
                                   std_ratio=args.std_ratio or None, **spatial)
        save_point_cloud(result.cleaned, args.out)
    report = dict(result.report, input_file=args.input, output_file=args.out)
    report_path = _side_file(args.out, args.report, ".report.json")
    with open(report_path, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    with open(_side_file(args.out, args.picture, ".before_after.png"), "wb") as fh:
        fh.write(result.picture)
    removed = ", ".join(f"{k} {v}" for k, v in report["removed"].items())
    print(f"{args.input}: kept {report['kept']} of {report['input']} ({removed}); report: {report_path}")
    return 0


# ---------------------------------------------------------------- fuse

def cmd_fuse(args: argparse.Namespace) -> int:
    from .geometry import save_mesh
    from .tsdf import fuse

    if not os.path.isdir(args.folder):
        raise NotADirectoryError(f"{args.folder}: not a folder")
    cameras = load_cameras(args.cameras or os.path.join(args.folder, "cameras.json"))
    depths = [_read_depth(args.folder, cam.name) for cam in cameras]
    colors = [_read_color(args.folder, cam.name) for cam in cameras]
    if all(c is None for c in colors):
        colors = None
    elif any(c is None for c in colors):
        raise ValueError(f"{args.folder}: colour images exist for some views only")
    mesh = fuse(colors, depths, cameras, args.voxel_length, args.sdf_trunc, depth_max=args.depth_max,
                min_views=args.min_views)
    if not len(mesh.triangles):
        raise ValueError(f"{args.folder}: fusion gave an empty mesh (check cameras, depth units, --voxel-length)")
    save_mesh(mesh, args.out)
    print(f"fused {len(cameras)} views into {args.out} ({len(mesh.vertices)} vertices, {len(mesh.triangles)} triangles)")
    return 0


def _read_depth(folder: str, name: str) -> np.ndarray:
    from artifacts.io import load_image

    npy, png = (os.path.join(folder, "depth", f"{name}{ext}") for ext in (".npy", ".png"))
    if os.path.isfile(npy):
        return np.load(npy, allow_pickle=False).astype(np.float32)
    if not os.path.isfile(png):
        raise FileNotFoundError(f"{png}: no depth image for view {name!r} (.png or .npy)")
    image = load_image(png)
    if image.pixels.dtype != np.uint16:
        raise ValueError(f"{png}: a depth PNG must be 16-bit (millimetres)")
    return image.pixels[..., 0].astype(np.float32) / 1000.0


def _read_color(folder: str, name: str) -> np.ndarray | None:
    from artifacts.io import load_image

    path = os.path.join(folder, "color", f"{name}.png")
    return load_image(path).pixels if os.path.isfile(path) else None


