"""recon3d on open3d (CPU, headless): geometry I/O, rendering, TSDF fusion, cleanup, Gaussian PLYs, CLI.

Render -> TSDF round trip (8 views of 128x128 px around the object, voxel 2 cm, default sdf_trunc
6 cm), measured with open3d-cpu 0.20.0 (the asserted limits are in the tests):

* sphere r = 0.5 m, vertex colours: fused vertices lie 0.0025 m from the true surface on average
  (max 0.0122 m); true-surface samples lie 0.0019 m from the fused mesh on average (max 0.0104 m);
  bounding box within 0.0038 m; vertex colour error 0.0033 on average (max 0.025, colours in [0, 1]).
* box 0.8 m, depth only: accuracy 0.0037 m on average but the edges bulge out by up to 0.046 m
  (about sdf_trunc: the known TSDF artifact at sharp edges), completeness max 0.0225 m.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

o3d = pytest.importorskip("open3d")

from artifacts.recon3d.cameras import Camera  # noqa: E402
from artifacts.recon3d.cleanup import before_after_png, clean_point_cloud  # noqa: E402
from artifacts.recon3d.geometry import GeometryError, load_geometry, load_mesh, load_point_cloud, save_mesh  # noqa: E402
from artifacts.recon3d.gaussians import (  # noqa: E402
    clean_gaussians, is_gaussian_ply, read_gaussian_ply, write_gaussian_ply,
)
from artifacts.recon3d.render import render  # noqa: E402
from artifacts.recon3d.tsdf import fuse  # noqa: E402
from artifacts.cli import main as artifacts_main  # noqa: E402
from artifacts.recon3d import cli  # noqa: E402


def recon3d(argv):
    """``artifacts recon3d ARGV`` in process."""
    return artifacts_main(["recon3d", *argv])

VOXEL = 0.02


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0), size=128, focal=None, name=""):
    """An OpenCV camera (x right, y down, +z forward) at ``eye`` looking at ``target``."""
    eye = np.asarray(eye, float)
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, np.cross(z, x), z, eye
    f = 0.9 * size if focal is None else focal
    return Camera(size, size, f, f, size / 2, size / 2, c2w, name)


def ring_cameras(n=8, size=128):
    out = []
    for i in range(n):
        a = 2 * np.pi * i / n
        out.append(look_at((2 * np.cos(a), 2 * np.sin(a), 1.2 if i % 2 else -1.2), size=size, name=f"v{i}"))
    return out


def coloured(mesh):
    v = np.asarray(mesh.vertices)
    mesh.vertex_colors = o3d.utility.Vector3dVector((v - v.min(0)) / (v.max(0) - v.min(0)))
    return mesh


def sphere():
    return coloured(o3d.geometry.TriangleMesh.create_sphere(0.5, 40))


def box():
    return coloured(o3d.geometry.TriangleMesh.create_box(0.8, 0.8, 0.8).translate((-0.4, -0.4, -0.4)))


def surface_distance(mesh, points):
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    return scene.compute_distance(o3d.core.Tensor(np.asarray(points, np.float32))).numpy()


def assert_close_mesh(fused, truth, acc_mean, acc_max, comp_mean, comp_max, bbox_tol):
    acc = surface_distance(truth, np.asarray(fused.vertices))  # fused -> truth
    comp = surface_distance(fused, np.asarray(truth.sample_points_uniformly(20000).points))  # truth -> fused
    assert acc.mean() < acc_mean and acc.max() < acc_max, (acc.mean(), acc.max())
    assert comp.mean() < comp_mean and comp.max() < comp_max, (comp.mean(), comp.max())
    np.testing.assert_allclose(fused.get_min_bound(), truth.get_min_bound(), atol=bbox_tol)
    np.testing.assert_allclose(fused.get_max_bound(), truth.get_max_bound(), atol=bbox_tol)


# ---------------------------------------------------------------- optional dependency

def test_import_artifacts_never_imports_open3d():
    code = ("import sys, artifacts, artifacts.recon3d\n"
            "from artifacts.recon3d import geometry, render, cleanup, gaussians, tsdf, cli\n"
            "assert 'open3d' not in sys.modules, 'open3d imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_open3d_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "open3d", None)
    with pytest.raises(ImportError, match=r'artifacts-toolkit\[3d\]'):
        render(None, [])


# ---------------------------------------------------------------- rendering

def _plane(z=0.0, size=10.0):
    """Square in the plane ``Z = z`` (world), normal +z, colour red = (X + size/2) / size."""
    h = size / 2
    v = np.array([[-h, -h, z], [h, -h, z], [h, h, z], [-h, h, z]], float)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector([[0, 1, 2], [0, 2, 3]]))
    mesh.vertex_colors = o3d.utility.Vector3dVector(np.stack([(v[:, 0] + h) / size, np.zeros(4), np.zeros(4)], 1))
    return mesh


def test_depth_of_a_tilted_plane_is_the_analytic_z_depth():
    cam = look_at((0.3, -1.0, 2.0), target=(0.0, 0.5, 0.0), up=(0, 1, 0), size=64)  # oblique view of Z = 0
    view = render(_plane(), [cam])[0]
    assert view.mask.all()
    # pixel centre ray d (camera z = 1) meets the plane at Z = 0: t = -C_z / (R d)_z; z-depth = t
    v, u = np.mgrid[0:64, 0:64] + 0.5
    d_cam = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], -1)
    d_world = d_cam @ cam.c2w[:3, :3].T
    expected = -cam.c2w[2, 3] / d_world[..., 2]
    np.testing.assert_allclose(view.depth, expected, rtol=1e-5)
    assert not np.allclose(expected, np.linalg.norm(d_world * expected[..., None], axis=-1))  # not ray length
    # normals: world +z; camera frame = R^T (0, 0, 1)
    np.testing.assert_allclose(view.normal, np.broadcast_to([0, 0, 1], view.normal.shape), atol=1e-6)
    cam_normal = render(_plane(), [cam], normal_frame="camera")[0].normal
    np.testing.assert_allclose(cam_normal, np.broadcast_to(cam.c2w[2, :3], cam_normal.shape), atol=1e-6)
    # colour: barycentric interpolation of the vertex colours (red = (X + 5) / 10 at the hit point)
    hit_x = cam.c2w[0, 3] + expected * d_world[..., 0]
    np.testing.assert_allclose(view.color[..., 0], np.rint((hit_x + 5) / 10 * 255), atol=1)
    assert view.color[..., 1:].max() == 0


def test_background_is_masked_and_uncoloured_meshes_are_shaded():
    mesh = o3d.geometry.TriangleMesh.create_box(0.4, 0.4, 0.4).translate((-0.2, -0.2, -0.2))
    view = render(mesh, [look_at((0, 0, 2), up=(0, 1, 0), size=48)], background=(0, 0, 255))[0]
    assert 0 < view.mask.mean() < 0.5
    assert (view.depth[~view.mask] == 0).all() and (view.normal[~view.mask] == 0).all()
    assert (view.color[~view.mask] == (0, 0, 255)).all()
    face = view.color[view.mask]
    assert np.all(face == face[0]) and face[0, 0] == round(0.8 * 255)  # facing the headlight: full Lambert
    np.testing.assert_allclose(view.depth[view.mask], 1.8, atol=1e-5)  # front face at z = 0.2, camera at 2


# ---------------------------------------------------------------- render -> TSDF

def test_render_then_tsdf_rebuilds_the_sphere():
    truth, cams = sphere(), ring_cameras()
    views = render(truth, cams)
    fused = fuse([v.color for v in views], [v.depth for v in views], cams, VOXEL)
    assert_close_mesh(fused, truth, acc_mean=0.25 * VOXEL, acc_max=VOXEL, comp_mean=0.25 * VOXEL,
                      comp_max=VOXEL, bbox_tol=0.5 * VOXEL)
    # colours come back: vertex colour = normalised position, as painted
    v = np.asarray(fused.vertices)
    np.testing.assert_allclose(np.asarray(fused.vertex_colors), np.clip((v + 0.5) / 1.0, 0, 1), atol=0.05)


def test_render_then_tsdf_rebuilds_the_box_within_the_edge_bulge():
    truth, cams = box(), ring_cameras()
    views = render(truth, cams)
    fused = fuse(None, [v.depth for v in views], cams, VOXEL)
    assert not fused.has_vertex_colors()
    assert_close_mesh(fused, truth, acc_mean=0.25 * VOXEL, acc_max=3 * VOXEL, comp_mean=0.25 * VOXEL,
                      comp_max=1.5 * VOXEL, bbox_tol=3 * VOXEL)


def test_tsdf_min_views_and_bad_input():
    truth, cams = sphere(), ring_cameras()
    views = render(truth, cams)
    depths = [v.depth for v in views]
    one = fuse(None, depths, cams, VOXEL)
    strict = fuse(None, depths, cams, VOXEL, min_views=2)  # drops surfaces only one view saw
    assert 0 < len(strict.triangles) < len(one.triangles)
    with pytest.raises(ValueError, match="one depth image"):
        fuse(None, depths[:2], cams, VOXEL)
    with pytest.raises(ValueError, match="depth is"):
        fuse(None, [d[:10] for d in depths], cams, VOXEL)


# ---------------------------------------------------------------- geometry I/O

@pytest.mark.parametrize("ext", [".ply", ".obj", ".glb", ".gltf"])
def test_mesh_round_trip(tmp_path, ext):
    mesh = sphere()
    save_mesh(mesh, tmp_path / f"m{ext}")
    back = load_mesh(tmp_path / f"m{ext}")
    assert (len(back.vertices), len(back.triangles)) == (len(mesh.vertices), len(mesh.triangles))
    assert back.has_vertex_colors()
    np.testing.assert_allclose(back.get_max_bound(), mesh.get_max_bound(), atol=1e-6)


def test_bad_geometry_files_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.ply"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.ply"
    truncated.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n")
    junk = tmp_path / "junk.ply"
    junk.write_bytes(b"\x00\x01 not a ply" * 10)
    for path in (empty, truncated, junk):
        for reader in (load_mesh, load_point_cloud, load_geometry, read_gaussian_ply):
            with pytest.raises(GeometryError) as info:
                reader(path)
            assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing.ply"):
        load_mesh(tmp_path / "missing.ply")
    points = tmp_path / "points.ply"
    o3d.io.write_point_cloud(str(points), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.eye(3))))
    with pytest.raises(GeometryError, match="no triangles"):
        load_mesh(points)
    assert len(load_geometry(points).points) == 3


# ---------------------------------------------------------------- point-cloud cleanup

def noisy_cloud(seed=0):
    """Sphere surface (r = 1) + uniform outliers + a dense floater cluster. Labels: 0 true, 1, 2 injected."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(8000, 3))
    true = d / np.linalg.norm(d, axis=1, keepdims=True) + rng.normal(0, 0.003, (8000, 3))
    out = rng.uniform(-2.5, 2.5, (300, 3))
    out = out[np.linalg.norm(out, axis=1) > 1.3]
    floater = rng.normal((2.2, 0.0, 0.0), 0.05, (60, 3))
    points = np.concatenate([true, out, floater])
    labels = np.repeat([0, 1, 2], [len(true), len(out), len(floater)])
    return points, labels


def test_point_cloud_cleanup_removes_injected_artifacts():
    points, labels = noisy_cloud()
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pcd.colors = o3d.utility.Vector3dVector(np.full_like(points, 0.5))
    result = clean_point_cloud(pcd)
    keep, report = result.keep, result.report
    assert (~keep[labels == 1]).mean() >= 0.95  # uniform outliers
    assert (~keep[labels == 2]).mean() >= 0.95  # floater cluster
    assert (~keep[labels == 0]).mean() <= 0.01  # true surface
    assert len(result.cleaned.points) == keep.sum() and result.cleaned.has_colors()
    assert report["input"] == len(points) and report["kept"] == keep.sum()
    assert sum(report["removed"].values()) == report["removed_total"] == (~keep).sum()
    assert set(report["removed"]) == {"statistical", "radius", "clusters"} and report["removed"]["clusters"] > 0
    assert report["params"]["radius"] > 0 and report["bbox_after"]["max"][0] < 1.1 < report["bbox_before"]["max"][0]
    json.dumps(report)
    assert result.picture[:8] == b"\x89PNG\r\n\x1a\n"


def test_before_after_picture_shape():
    import cv2

    points, labels = noisy_cloud()
    png = before_after_png(points, labels == 0, size=200)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[1] == 2 * 200 + 4 and img.shape[0] > 200


# ---------------------------------------------------------------- Gaussian splats

SPLAT_PROPS = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)]
               + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def write_splats(path, seed=0, floaters=True, order="<"):
    """A synthetic splat PLY (Gaussians on a unit sphere) plus a custom double and a uchar property.
    With ``floaters``, 5 injected Gaussians of each kind follow; returns the labels (0 = true)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype([(n, order + "f4") for n in SPLAT_PROPS] + [("confidence", order + "f8"), ("flag", "u1")])
    n = 3000
    data = np.zeros(n, dtype)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    for name in SPLAT_PROPS + ["confidence"]:
        data[name] = rng.normal(size=n)
    data["flag"] = rng.integers(0, 255, n)
    data["x"], data["y"], data["z"] = d.T
    data["opacity"] = rng.normal(2.0, 0.5, n)
    for i in range(3):
        data[f"scale_{i}"] = np.log(0.01) + rng.normal(0, 0.2, n)
    labels = np.zeros(n, int)
    if floaters:
        extra = data[rng.choice(n, 25)].copy()  # 5 each: low opacity, huge, needle, isolated, cluster
        extra["opacity"][:5] = -8.0
        extra["scale_0"][5:10] = np.log(2.0)
        extra["scale_0"][10:15] = np.log(0.1)  # long axis / middle axis = 200, long axis not huge
        extra["scale_1"][10:15] = extra["scale_2"][10:15] = np.log(0.0005)
        extra["x"][15:20], extra["y"][15:20], extra["z"][15:20] = rng.uniform(-3, 3, (3, 5)) + [[5], [0], [0]]
        extra["x"][20:], extra["y"][20:], extra["z"][20:] = rng.normal(0, 0.01, (3, 5)) + [[0], [3], [0]]
        data = np.concatenate([data, extra])
        labels = np.concatenate([labels, np.repeat([1, 2, 3, 4, 5], 5)])
    fmt = "binary_little_endian" if order == "<" else "binary_big_endian"
    header = [f"ply\nformat {fmt} 1.0\ncomment synthetic splats\nelement vertex {len(data)}\n"]
    header += [f"property float {n}\n" for n in SPLAT_PROPS] + ["property double confidence\nproperty uchar flag\nend_header\n"]
    path.write_bytes("".join(header).encode() + data.tobytes())
    return data, labels


def test_gaussian_ply_round_trips_byte_identically_when_nothing_is_removed(tmp_path):
    for order in "<>":
        src, out = tmp_path / f"clean{order == '<'}.ply", tmp_path / f"out{order == '<'}.ply"
        write_splats(src, floaters=False, order=order)
        assert is_gaussian_ply(src)
        result = clean_gaussians(read_gaussian_ply(src))
        assert result.report["removed_total"] == 0, result.report["removed"]
        write_gaussian_ply(result.cleaned, out)
        assert out.read_bytes() == src.read_bytes()


def test_gaussian_cleanup_removes_floaters_and_keeps_every_property(tmp_path):
    src, out = tmp_path / "splats.ply", tmp_path / "cleaned.ply"
    data, labels = write_splats(src)
    g = read_gaussian_ply(src)
    assert g.names == data.dtype.names and g.f_rest.shape == (len(data), 9) and g.normals is not None
    result = clean_gaussians(g)
    removed = result.report["removed"]
    assert [removed[k] for k in ("opacity", "huge", "needle")] == [5, 5, 5]
    assert removed["radius"] + removed["clusters"] == 10
    np.testing.assert_array_equal(result.keep, labels == 0)
    write_gaussian_ply(result.cleaned, out)
    back = read_gaussian_ply(out)
    assert back.vertices.dtype == data.dtype  # same properties, order and types
    np.testing.assert_array_equal(back.vertices, data[labels == 0])
    assert back.header[1:3] == g.header[1:3] and out.read_bytes().startswith(b"ply\nformat binary_little_endian")
    assert result.picture[:4] == b"\x89PNG"


def test_gaussian_reader_rejects_truncated_and_non_splat_files(tmp_path):
    src = tmp_path / "splats.ply"
    write_splats(src, floaters=False)
    cut = tmp_path / "cut.ply"
    cut.write_bytes(src.read_bytes()[:-100])
    with pytest.raises(GeometryError, match=r"cut\.ply: truncated"):
        read_gaussian_ply(cut)
    plain = tmp_path / "plain.ply"
    o3d.io.write_point_cloud(str(plain), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.eye(3))))
    assert not is_gaussian_ply(plain)
    with pytest.raises(GeometryError, match=r"plain\.ply: not a Gaussian-splat PLY"):
        read_gaussian_ply(plain)


# ---------------------------------------------------------------- CLI

def test_cli_render_fuse_clean(tmp_path, capsys):
    mesh_path, cams_path = tmp_path / "sphere.ply", tmp_path / "cams.json"
    save_mesh(sphere(), mesh_path)
    cams = ring_cameras(size=96)
    cams_path.write_text(json.dumps([{"width": c.width, "height": c.height, "fx": c.fx, "fy": c.fy, "cx": c.cx,
                                      "cy": c.cy, "c2w": c.c2w.tolist(), "name": c.name} for c in cams]))
    out = tmp_path / "views"
    assert recon3d(["render", str(mesh_path), "--cameras", str(cams_path), "-o", str(out)]) == 0
    from artifacts.io import load_image

    depth = load_image(out / "depth" / "v0.png").pixels[..., 0]
    assert depth.dtype == np.uint16 and 1000 < depth[depth > 0].min() < depth.max() < 2500  # mm
    assert (out / "color" / "v0.png").exists() and (out / "normal" / "v7.png").exists()

    fused = tmp_path / "fused.ply"
    assert recon3d(["fuse", str(out), "--voxel-length", str(VOXEL), "-o", str(fused)]) == 0
    assert_close_mesh(load_mesh(fused), sphere(), acc_mean=0.3 * VOXEL, acc_max=1.5 * VOXEL,
                      comp_mean=0.3 * VOXEL, comp_max=1.5 * VOXEL, bbox_tol=VOXEL)

    npy = tmp_path / "npy"
    assert recon3d(["render", str(mesh_path), "--cameras", str(cams_path), "-o", str(npy), "--format", "npy"]) == 0
    assert np.load(npy / "depth" / "v0.npy").dtype == np.float32

    points, labels = noisy_cloud()
    cloud = tmp_path / "cloud.ply"
    o3d.io.write_point_cloud(str(cloud), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points)))
    assert recon3d(["clean", str(cloud), "-o", str(tmp_path / "cloud_clean.ply")]) == 0
    report = json.loads((tmp_path / "cloud_clean.report.json").read_text())
    assert report["kind"] == "point_cloud" and report["removed_total"] >= (labels > 0).sum() * 0.95
    assert (tmp_path / "cloud_clean.before_after.png").read_bytes()[:4] == b"\x89PNG"

    splats = tmp_path / "splats.ply"
    write_splats(splats)
    assert recon3d(["clean", str(splats), "-o", str(tmp_path / "s.ply"), "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kind"] == "gaussians" and report["removed_total"] == 25
    assert read_gaussian_ply(tmp_path / "s.ply").vertices.dtype.names == tuple(SPLAT_PROPS) + ("confidence", "flag")
    capsys.readouterr()


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n")
    assert recon3d(["clean", str(bad), "-o", str(tmp_path / "o.ply")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.ply" in err and "Traceback" not in err
    cams = tmp_path / "cams.json"
    cams.write_text('[{"width": 4}]')
    assert recon3d(["render", str(bad), "--cameras", str(cams), "-o", str(tmp_path / "r")]) == 2
    assert "lacks" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "artifacts", "recon3d", "fuse", str(tmp_path / "nowhere"),
                           "--voxel-length", "0.01", "-o", str(tmp_path / "m.ply")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nowhere" in proc.stderr


def test_add_parser_plugs_into_a_main_cli(tmp_path):
    parser = argparse.ArgumentParser(prog="artifacts")
    cli.add_parser(parser.add_subparsers(dest="command"))
    src = tmp_path / "splats.ply"
    write_splats(src, floaters=False)
    args = parser.parse_args(["recon3d", "clean", str(src), "-o", str(tmp_path / "o.ply")])
    assert args.func(args) == 0
    assert (tmp_path / "o.ply").read_bytes() == src.read_bytes()


def test_cli_render_takes_a_scene_folder(tmp_path):
    from artifacts.io import save_image

    scene = tmp_path / "scene"
    (scene / "train").mkdir(parents=True)
    frames = []
    for i, cam in enumerate(ring_cameras(n=2, size=32)):
        save_image(scene / "train" / f"r_{i}.png", np.zeros((32, 32, 3), np.uint8))
        gl = cam.c2w.copy()
        gl[:3, 1:3] *= -1  # OpenCV -> OpenGL/Blender axes
        frames.append({"file_path": f"./train/r_{i}", "transform_matrix": gl.tolist()})
    fov = 2 * np.arctan(16 / (0.9 * 32))
    (scene / "transforms_train.json").write_text(json.dumps({"camera_angle_x": fov, "frames": frames}))
    mesh_path = tmp_path / "sphere.ply"
    save_mesh(sphere(), mesh_path)
    assert recon3d(["render", str(mesh_path), "--cameras", str(scene), "-o", str(tmp_path / "out")]) == 0
    direct = render(sphere(), ring_cameras(n=2, size=32))[1]
    written = json.loads((tmp_path / "out" / "cameras.json").read_text())
    assert [c["name"] for c in written] == ["r_0", "r_1"]
    np.testing.assert_allclose(written[1]["c2w"], direct.camera.c2w, atol=1e-9)
    from artifacts.io import load_image

    depth = load_image(tmp_path / "out" / "depth" / "r_1.png").pixels[..., 0]
    np.testing.assert_allclose(depth / 1000.0, direct.depth, atol=6e-4)
