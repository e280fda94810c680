"""Scene readers and camera conventions (artifacts.recon3d.cameras / colmap / scenes)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from artifacts.recon3d.cameras import (
    Camera, SceneError, c2w_to_colmap, cameras_from_llff, colmap_to_c2w, llff_from_cameras,
    llff_to_opencv, look_at, opencv_to_llff, opencv_to_opengl, opengl_to_opencv, project,
    qvec_to_rotmat, rotmat_to_qvec)
from artifacts.recon3d.colmap import (
    ColmapCamera, ColmapImage, ColmapModel, ColmapPoint3D, read_model, to_camera, write_model)
from artifacts.recon3d.scenes import detect_layout, load_scene
from tests.conftest import shared


def _random_c2w(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    c2w = np.eye(4)
    c2w[:3, :3] = qvec_to_rotmat(q)
    c2w[:3, 3] = rng.normal(size=3) * 3
    return c2w


def _png(path, width, height):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 150)).save(path)


# ------------------------------------------------------------------------------------------------
# conventions


def test_opengl_round_trip_and_axes():
    rng = np.random.default_rng(0)
    c2w = np.stack([_random_c2w(rng) for _ in range(5)])
    assert np.allclose(opencv_to_opengl(opengl_to_opencv(c2w)), c2w)
    # a Blender camera at the origin looks along -z with y up
    cam = Camera(100, 80, 50.0, 50.0, 50.0, 40.0, c2w=opengl_to_opencv(np.eye(4)))
    uv, depth = project(cam, [[0, 0, -2], [1, 0, -2], [0, 1, -2], [0, 0, 2]])
    assert np.allclose(uv[0], [50, 40]) and np.allclose(depth[:3], 2)
    assert uv[1, 0] > 50 and uv[2, 1] < 40          # right is +u, up is -v
    assert depth[3] < 0 and np.isnan(uv[3]).all()    # behind the camera


def test_llff_round_trip_and_matches_nerf_reordering():
    rng = np.random.default_rng(1)
    cams = [Camera(64, 48, 70.0, 70.0, 32.0, 24.0, c2w=_random_c2w(rng), name=str(i)) for i in range(4)]
    bounds = rng.uniform(1, 5, size=(4, 2)) + [[0, 5]]
    arr = llff_from_cameras(cams, bounds)
    assert arr.shape == (4, 17) and np.allclose(arr[:, [4, 9, 14]], [48, 64, 70])
    back, b2 = cameras_from_llff(arr)
    assert np.allclose(b2, bounds)
    for a, b in zip(cams, back):
        assert np.allclose(a.c2w, b.c2w) and np.allclose(a.K, b.K) and (a.width, a.height) == (b.width, b.height)
    # NeRF's load_llff.py turns (down, right, back) into OpenGL (right, up, back) = [c1, -c0, c2]
    poses = arr[:, :15].reshape(-1, 3, 5)
    gl = np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:4]], axis=2)
    assert np.allclose(opengl_to_opencv(gl)[:, :3], llff_to_opencv(poses)[:, :3])
    assert np.allclose(opencv_to_llff(llff_to_opencv(poses)), poses[:, :, :4])
    with pytest.raises(ValueError, match="fx == fy"):
        llff_from_cameras([Camera(64, 48, 70.0, 71.0, 32.0, 24.0)], [[1, 2]])


def test_colmap_quaternion_round_trip():
    s = np.sqrt(0.5)
    assert np.allclose(qvec_to_rotmat([s, 0, 0, s]), [[0, -1, 0], [1, 0, 0], [0, 0, 1]])  # +90 deg about z
    rng = np.random.default_rng(2)
    for _ in range(50):
        q = rng.normal(size=4)
        q[rng.integers(4)] *= rng.choice([0.0, 1.0])  # include 180-degree and axis-aligned cases
        q = q / np.linalg.norm(q) * np.sign(q[0] or 1)
        assert np.allclose(rotmat_to_qvec(qvec_to_rotmat(q)), q) or np.isclose(q[0], 0)
        assert np.allclose(qvec_to_rotmat(rotmat_to_qvec(qvec_to_rotmat(q))), qvec_to_rotmat(q))
    c2w = _random_c2w(rng)
    qvec, tvec = c2w_to_colmap(c2w)
    assert np.allclose(colmap_to_c2w(qvec, tvec), c2w)
    assert np.allclose(-qvec_to_rotmat(qvec).T @ tvec, c2w[:3, 3])  # camera centre = -R^T t


def test_projection_agrees_across_conventions():
    cam = look_at(eye=[3.0, -2.0, 1.5], target=[0.2, 0.1, 0.3], up=[0, 0, 1], width=640, height=480,
                  fov_x=np.deg2rad(60))
    uv, depth = project(cam, [[0.2, 0.1, 0.3]])
    assert np.allclose(uv, [[320, 240]]) and np.isclose(depth[0], np.linalg.norm([2.8, -2.1, 1.2]))
    up_uv, _ = project(cam, [[0.2, 0.1, 0.8]])
    assert up_uv[0, 1] < 240 and np.isclose(up_uv[0, 0], 320)  # world up is image up
    point = np.array([[0.5, -0.3, 0.9]])
    expected, _ = project(cam, point)
    via_gl = Camera(640, 480, cam.fx, cam.fy, 320, 240, c2w=opengl_to_opencv(opencv_to_opengl(cam.c2w)))
    via_llff = cameras_from_llff(llff_from_cameras([cam], [[1, 10]]))[0][0]
    via_colmap = to_camera(ColmapImage(1, *c2w_to_colmap(cam.c2w), 1, "a.png"),
                           ColmapCamera(1, "SIMPLE_PINHOLE", 640, 480, [cam.fx, 320, 240]))
    for other in (via_gl, via_llff, via_colmap):
        assert np.allclose(project(other, point)[0], expected, atol=1e-9)
    # a hand-computed pixel: identity pose, pixel-centre convention
    uv, _ = project(Camera(10, 10, 100.0, 100.0, 5.0, 5.0), [[0.01, 0.02, 1.0]])
    assert np.allclose(uv, [[6.0, 7.0]])
    with pytest.raises(ValueError, match="parallel"):
        look_at([0, 0, 0], [0, 0, 1], [0, 0, 1], 10, 10, 1.0)


def test_scaled_and_resized_follow_the_image():
    cam = look_at([0, 0, -5], [0, 0, 0], [0, -1, 0], 4032, 3024, 1.2)
    small = cam.scaled(1 / 8)
    assert (small.width, small.height) == (504, 378) and np.isclose(small.fx, cam.fx / 8)
    pts = np.random.default_rng(3).normal(size=(5, 3))
    assert np.allclose(project(small, pts)[0], project(cam, pts)[0] / 8)
    resized = cam.resized(504, 378)
    assert np.allclose(resized.K, small.K)


# ------------------------------------------------------------------------------------------------
# COLMAP model I/O


def _small_model() -> ColmapModel:
    rng = np.random.default_rng(4)
    cams = {1: ColmapCamera(1, "SIMPLE_RADIAL", 64, 48, [60.0, 32.0, 24.0, 0.01]),
            3: ColmapCamera(3, "OPENCV", 80, 60, [70.0, 71.0, 40.5, 29.5, 0.1, -0.02, 1e-3, -2e-4])}
    images = {}
    for iid, cid, name in ((1, 1, "a.png"), (2, 3, "sub dir/b.png"), (5, 1, "c.png")):
        q, t = c2w_to_colmap(_random_c2w(rng))
        n = 0 if iid == 5 else 3
        images[iid] = ColmapImage(iid, q, t, cid, name, rng.uniform(0, 48, (n, 2)), [7, -1, 8][:n])
    points = {7: ColmapPoint3D(7, rng.normal(size=3), [255, 0, 17], 0.25, [1, 2], [0, 0]),
              8: ColmapPoint3D(8, rng.normal(size=3), [1, 2, 3], 1.5, [1, 2], [2, 2])}
    return ColmapModel(cams, images, points)


def _assert_models_equal(a: ColmapModel, b: ColmapModel) -> None:
    assert a.cameras.keys() == b.cameras.keys() and a.images.keys() == b.images.keys()
    assert a.points3D.keys() == b.points3D.keys()
    for k, c in a.cameras.items():
        d = b.cameras[k]
        assert (c.model, c.width, c.height) == (d.model, d.width, d.height) and np.array_equal(c.params, d.params)
    for k, i in a.images.items():
        j = b.images[k]
        assert (i.name, i.camera_id) == (j.name, j.camera_id)
        for f in ("qvec", "tvec", "xys", "point3D_ids"):
            assert np.array_equal(getattr(i, f), getattr(j, f))
    for k, p in a.points3D.items():
        q = b.points3D[k]
        assert p.error == q.error
        for f in ("xyz", "rgb", "image_ids", "point2D_idxs"):
            assert np.array_equal(getattr(p, f), getattr(q, f))


def test_colmap_text_binary_text_round_trip(tmp_path):
    model = _small_model()
    write_model(model, tmp_path / "t1", ".txt")
    from_txt = read_model(tmp_path / "t1")
    _assert_models_equal(model, from_txt)
    write_model(from_txt, tmp_path / "b", ".bin")
    from_bin = read_model(tmp_path / "b")
    _assert_models_equal(model, from_bin)
    write_model(from_bin, tmp_path / "t2", ".txt")
    for name in ("cameras.txt", "images.txt", "points3D.txt"):
        assert (tmp_path / "t1" / name).read_text() == (tmp_path / "t2" / name).read_text()
    assert read_model(tmp_path / "b", points3D=False).points3D == {}


def test_colmap_reads_handwritten_text(tmp_path):
    (tmp_path / "cameras.txt").write_text(
        "# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        "# Number of cameras: 1\n1 PINHOLE 640 480 500 510 320 240\n")
    (tmp_path / "images.txt").write_text(
        "# Image list with two lines of data per image:\n# Number of images: 2\n"
        "1 1 0 0 0 0 0 0 1 first.jpg\n10.5 20.5 3 11 12 -1\n"
        "2 0.7071067811865476 0 0.7071067811865476 0 1 2 3 1 second.jpg\n\n")
    (tmp_path / "points3D.txt").write_text("# 3D point list\n3 0.1 0.2 5 10 20 30 0.5 1 0\n")
    model = read_model(tmp_path)
    first, second = model.images[1], model.images[2]
    assert np.allclose(first.xys, [[10.5, 20.5], [11, 12]]) and first.point3D_ids.tolist() == [3, -1]
    assert second.xys.shape == (0, 2) and second.name == "second.jpg"
    assert np.allclose(second.c2w[:3, 3], -qvec_to_rotmat(second.qvec).T @ [1, 2, 3])
    cam = to_camera(first, model.cameras[1])
    uv, depth = project(cam, [model.points3D[3].xyz])
    assert np.allclose(uv, [[500 * 0.1 / 5 + 320, 510 * 0.2 / 5 + 240]]) and np.isclose(depth[0], 5)


@pytest.mark.parametrize("fault, message", [
    ("truncate", "truncated"), ("trailing", "unexpected bytes"), ("model_id", "unknown camera model"),
    ("count", "truncated"), ("name", "truncated"),
])
def test_colmap_binary_faults(tmp_path, fault, message):
    write_model(_small_model(), tmp_path, ".bin")
    target = tmp_path / ("cameras.bin" if fault == "model_id" else "images.bin")
    data = bytearray(target.read_bytes())
    if fault == "truncate":
        data = data[:-5]
    elif fault == "trailing":
        data += b"\0\0"
    elif fault == "model_id":
        data[12:16] = (99).to_bytes(4, "little")  # after count (8) and id (4)
    elif fault == "count":
        data[:8] = (10 ** 6).to_bytes(8, "little")
    elif fault == "name":
        data = data[: data.index(b"a.png") + 5]
    target.write_bytes(bytes(data))
    with pytest.raises(SceneError, match=message) as err:
        read_model(tmp_path)
    assert str(target) in str(err.value)


@pytest.mark.parametrize("file, text, message", [
    ("cameras.txt", "1 PINHOLE 640 480 500 510 320\n", "needs 4 parameters"),
    ("cameras.txt", "1 FISHEYE_X 640 480 1 2 3\n", "known model"),
    ("cameras.txt", "1 PINHOLE 640 480 500 nan 320 240\n", "non-finite"),
    ("images.txt", "1 nan 0 0 0 0 0 0 1 a.jpg\n\n", "non-finite pose"),
    ("images.txt", "1 1 0 0 0 0 0 0 2 a.jpg\n\n", "camera 2"),
    ("images.txt", "1 1 0 0 0 0 0 0 1 a.jpg\n1 2\n", "triples"),
    ("points3D.txt", "3 0 0 1 300 0 0 0.5\n", "0..255"),
])
def test_colmap_text_faults(tmp_path, file, text, message):
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 640 480 500 510 320 240\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.jpg\n\n")
    (tmp_path / "points3D.txt").write_text("")
    (tmp_path / file).write_text(text)
    with pytest.raises(SceneError, match=message) as err:
        read_model(tmp_path)
    assert str(tmp_path) in str(err.value)


# ------------------------------------------------------------------------------------------------
# shared real scenes


@pytest.fixture(scope="module")
def beer():
    root = shared("views", "beer")
    return root, load_scene(root), load_scene(root, layout="colmap")


def test_lego_nerf_synthetic():
    root = shared("views", "lego")
    scene = load_scene(root)
    assert detect_layout(root) == "nerf-synthetic" and len(scene) == 100
    doc = json.loads((root / "transforms_train.json").read_text())
    fx = 400 / np.tan(doc["camera_angle_x"] / 2)
    for v in scene.views:
        c = v.camera
        assert v.image_path.suffix == ".png" and v.image_path.is_file()
        assert (c.width, c.height) == (800, 800) and np.allclose([c.fx, c.fy, c.cx, c.cy], [fx, fx, 400, 400])
        # the renders look at the object at the origin: it projects near the image centre, in front
        uv, depth = project(c, [[0, 0, 0]])
        assert depth[0] > 2 and np.all(np.abs(uv - 400) < 80)
    assert scene.views[0].name == "r_0"
    with pytest.raises(SceneError, match="transforms_test.json"):
        load_scene(root, split="test", layout="nerf-synthetic")


def test_fern_llff_images_8():
    root = shared("views", "fern")
    scene = load_scene(root)
    raw = np.load(root / "poses_bounds.npy")
    assert detect_layout(root) == "llff" and len(scene) == 20 and scene.meta["images"] == "images_8"
    assert [v.image_path.name for v in scene.views] == sorted(p.name for p in (root / "images_8").iterdir())
    h, w, f = raw[0, [4, 9, 14]]
    for v in scene.views:
        c = v.camera
        assert (c.width, c.height) == (504, 378) == (w / 8, h / 8)
        assert np.allclose([c.fx, c.fy, c.cx, c.cy], [f / 8, f / 8, 252, 189])
    assert np.isclose(scene.near, raw[:, 15].min()) and scene.views[3].bounds == tuple(raw[3, 15:])
    # forward-facing: a point midway between the bounds in front of one camera is in front of all
    c0 = scene.views[0].camera
    point = c0.center + c0.c2w[:3, 2] * raw[0, 15:].mean()
    for v in scene.views:
        uv, depth = project(v.camera, [point])
        assert depth[0] > 0 and (0 <= uv[0, 0] < 504) and (0 <= uv[0, 1] < 378)


def test_beer_llff_agrees_with_colmap(beer):
    root, llff, col = beer
    assert len(llff) == len(col) == 71 and [v.name for v in llff.views] == [v.name for v in col.views]
    assert {(v.camera.width, v.camera.height) for v in llff.views + col.views} == {(720, 1280)}
    A = np.stack([v.camera.c2w for v in llff.views])
    B = np.stack([v.camera.c2w for v in col.views])
    # relative rotations agree (invariant to any similarity transform of the world)...
    rel = lambda M: np.einsum("iba,jbc->ijac", M[:, :3, :3], M[:, :3, :3])  # R_i^T R_j
    assert np.abs(rel(A) - rel(B)).max() < 1e-9
    # ... and the centres are related by the identity similarity: this poses_bounds.npy is COLMAP's
    # frame, neither recentred nor rescaled (load_llff.py does that at load time)
    ca, cb = A[:, :3, 3], B[:, :3, 3]
    scale = np.linalg.norm(ca - ca.mean(0)) / np.linalg.norm(cb - cb.mean(0))
    assert np.isclose(scale, 1, atol=1e-9) and np.abs(A - B).max() < 1e-9
    # LLFF keeps one focal (camera 1's); COLMAP has one SIMPLE_RADIAL camera per image
    fl, fc = np.array([v.camera.fx for v in llff.views]), np.array([v.camera.fx for v in col.views])
    assert np.all(fl == fl[0]) and np.isclose(fl[0], fc[0]) and 0.01 < np.abs(fc / fl - 1).max() < 0.06
    assert set(col.meta["camera_models"].values()) == {"SIMPLE_RADIAL"} and col.meta["distortion_ignored"]


def test_beer_colmap_points_reproject_and_give_llff_bounds(beer):
    root, llff, col = beer
    model = read_model(root / "sparse" / "0")
    xyz = {pid: p.xyz for pid, p in model.points3D.items()}
    by_name = {im.name: im for im in model.images.values()}
    errors = {-0.5: [], 0.0: [], 0.5: []}  # by shift of the principal point
    for k in (0, 35, 70):
        view, lview = col.views[k], llff.views[k]
        im = by_name[view.image_path.name]
        seen = im.point3D_ids >= 0
        pts = np.stack([xyz[i] for i in im.point3D_ids[seen]])
        cam, k1 = view.camera, col.meta["distortion"][im.camera_id]["k"]
        x = (pts - cam.center) @ cam.c2w[:3, :3]
        x = x[:, :2] / x[:, 2:]
        uv = x * (1 + k1 * (x ** 2).sum(1, keepdims=True)) * cam.fx + [cam.cx, cam.cy]
        for shift in errors:
            errors[shift].append(np.linalg.norm(uv + shift - im.xys[seen], axis=1))
        # LLFF's bounds are the 0.1 / 99.9 percentiles of the depths of the points each view sees
        _, depth = project(lview.camera, [xyz[i] for i in np.unique(im.point3D_ids[seen])])
        assert np.allclose(np.percentile(depth, [0.1, 99.9]), lview.bounds)
    # SIMPLE_RADIAL applied here: keypoints sit within a pixel (median) of the reprojections, and a
    # half-pixel shift of the principal point is clearly worse (the pixel-centre convention holds)
    median = {shift: np.median(np.concatenate(e)) for shift, e in errors.items()}
    assert median[0.0] < 0.8 and median[0.0] < 0.8 * min(median[-0.5], median[0.5])


# ------------------------------------------------------------------------------------------------
# synthetic scenes and malformed input


def _nerf_scene(root, frames=None, **top):
    frames = frames if frames is not None else [{"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}]
    doc = {"camera_angle_x": 0.8, **top, "frames": frames}
    (root / "transforms_train.json").write_text(json.dumps(doc))
    _png(root / "train" / "r_0.png", 16, 12)
    return root


def test_nerf_optional_intrinsics(tmp_path):
    frame = {"file_path": "train/r_0.png", "transform_matrix": np.eye(4).tolist(), "fl_x": 20.0}
    _nerf_scene(tmp_path, [frame], w=32, h=24, fl_x=10.0, fl_y=11.0, cx=15.0, cy=12.5)
    cam = load_scene(tmp_path).views[0].camera  # declared 32x24, file 16x12: halved
    assert (cam.width, cam.height) == (16, 12) and np.allclose([cam.fx, cam.fy, cam.cx, cam.cy], [10, 5.5, 7.5, 6.25])


@pytest.mark.parametrize("frames, top, message", [
    ([{"file_path": "./train/r_0", "transform_matrix": [[1, 0, 0], [0, 1, 0]]}], {}, "3x4 or 4x4"),
    ([{"file_path": "./train/r_0", "transform_matrix": np.full((4, 4), np.nan).tolist()}], {}, "non-finite"),
    ([{"file_path": "./train/r_0", "transform_matrix": (np.eye(4) * 2).tolist()}], {}, "bottom row|rotation"),
    ([{"file_path": "./train/missing", "transform_matrix": np.eye(4).tolist()}], {}, "missing"),
    ([{"transform_matrix": np.eye(4).tolist()}], {}, "file_path"),
    ([], {}, "frames"),
    (None, {"camera_angle_x": None}, "camera_angle_x"),
    (None, {"camera_angle_x": float("inf")}, "finite"),
])
def test_nerf_faults(tmp_path, frames, top, message):
    _nerf_scene(tmp_path, frames, **top)
    with pytest.raises(SceneError, match=message) as err:
        load_scene(tmp_path)
    assert "transforms_train.json" in str(err.value)
    (tmp_path / "transforms_train.json").write_text("{not json")
    with pytest.raises(SceneError, match="transforms_train.json"):
        load_scene(tmp_path)


def _llff_scene(root, n=3, folders=(("images", 16, 12),), rows=None):
    cams = [look_at([i, 0, -5], [0, 0, 0], [0, -1, 0], 16, 12, 0.9) for i in range(n)]
    arr = llff_from_cameras(cams, [[1.0, 9.0]] * n) if rows is None else rows
    np.save(root / "poses_bounds.npy", arr)
    for name, w, h in folders:
        for i in range(n):
            _png(root / name / f"im{i:02d}.png", w, h)
    return root, cams


def test_llff_folder_choice(tmp_path):
    root, cams = _llff_scene(tmp_path, folders=(("images_2", 8, 6), ("images", 16, 12)))
    assert load_scene(root).meta["images"] == "images"  # the folder matching hwf
    half = load_scene(root, factor=2)
    assert half.meta["images"] == "images_2"
    assert np.allclose(half.views[1].camera.K, cams[1].scaled(0.5).K)
    assert np.allclose(half.views[1].camera.c2w, cams[1].c2w)
    for p in (root / "images").iterdir():
        p.unlink()
    (root / "images").rmdir()
    assert load_scene(root).meta["images"] == "images_2"  # the only folder, scaled


@pytest.mark.parametrize("fault, message", [
    ("shape", r"\(N, 17\)"), ("nan", "non-finite"), ("count", "3 poses but images/ has 2"),
    ("aspect", "not a rescaling"), ("rotation", "proper rotation"), ("bounds", "near < far"),
    ("no_folder", "no images/ folder"), ("not_npy", "cannot read"),
])
def test_llff_faults(tmp_path, fault, message):
    root, cams = _llff_scene(tmp_path)
    arr = np.load(root / "poses_bounds.npy")
    if fault == "shape":
        np.save(root / "poses_bounds.npy", arr[:, :15])
    elif fault == "nan":
        arr[1, 3] = np.nan
        np.save(root / "poses_bounds.npy", arr)
    elif fault == "count":
        (root / "images" / "im02.png").unlink()
    elif fault == "aspect":
        _png(root / "images" / "im01.png", 12, 12)
    elif fault == "rotation":
        arr[0, 0] = 3.0
        np.save(root / "poses_bounds.npy", arr)
    elif fault == "bounds":
        arr[2, 15:] = [5, 1]
        np.save(root / "poses_bounds.npy", arr)
    elif fault == "no_folder":
        for p in (root / "images").iterdir():
            p.unlink()
        (root / "images").rmdir()
    elif fault == "not_npy":
        (root / "poses_bounds.npy").write_bytes(b"garbage")
    with pytest.raises(SceneError, match=message) as err:
        load_scene(root)
    assert "poses_bounds.npy" in str(err.value)


def _colmap_scene(root, ext=".bin"):
    cam = look_at([0, 0, -5], [0, 0, 0], [0, -1, 0], 16, 12, 0.9)
    model = ColmapModel({1: ColmapCamera(1, "RADIAL", 16, 12, [cam.fx, 8, 6, 0.01, 0.002])},
                        {i + 1: ColmapImage(i + 1, *c2w_to_colmap(cam.c2w), 1, f"{n}.png")
                         for i, n in enumerate(["b", "a"])})
    write_model(model, root / "sparse" / "0", ext)
    for n in "ab":
        _png(root / "images" / f"{n}.png", 16, 12)
    return root, cam


@pytest.mark.parametrize("ext", [".bin", ".txt"])
def test_colmap_scene(tmp_path, ext):
    root, cam = _colmap_scene(tmp_path, ext)
    scene = load_scene(root)
    assert detect_layout(root) == "colmap" and [v.name for v in scene.views] == ["a", "b"]
    assert np.allclose(scene.views[0].camera.c2w, cam.c2w) and np.allclose(scene.views[0].camera.K, cam.K)
    assert scene.meta["distortion"] == {1: {"k1": 0.01, "k2": 0.002}} and scene.meta["distortion_ignored"]
    with pytest.raises(ValueError, match="no 'test' split"):
        load_scene(root, split="test")


def test_colmap_scene_faults(tmp_path):
    root, _ = _colmap_scene(tmp_path)
    (root / "images" / "a.png").unlink()
    with pytest.raises(SceneError, match="a.png is missing") as err:
        load_scene(root)
    assert "images.bin" in str(err.value)
    _png(root / "images" / "a.png", 16, 12)
    images_bin = root / "sparse" / "0" / "images.bin"
    images_bin.write_bytes(images_bin.read_bytes()[:-3])
    with pytest.raises(SceneError, match="truncated") as err:
        load_scene(root)
    assert str(images_bin) in str(err.value)
    write_model(ColmapModel({1: ColmapCamera(1, "FOV", 16, 12, [10, 10, 8, 6, 0.1])},
                            {1: ColmapImage(1, [1, 0, 0, 0], [0, 0, 0], 1, "a.png")}), root / "sparse" / "0")
    with pytest.raises(SceneError, match="FOV is not supported") as err:
        load_scene(root)
    assert "cameras.bin" in str(err.value)


def test_image_folder_and_unknown(tmp_path):
    for name in ("b.jpg", "a.png"):
        _png(tmp_path / name, 8, 8)
    (tmp_path / "notes.txt").write_text("x")
    scene = load_scene(tmp_path)
    assert scene.meta["layout"] == "images" and [v.name for v in scene.views] == ["a", "b"]
    assert all(v.camera is None for v in scene.views)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SceneError, match="no scene found") as err:
        load_scene(empty)
    assert str(empty) in str(err.value)
