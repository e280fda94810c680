"""Loading and saving meshes and point clouds (PLY, OBJ, glTF/GLB, ...) through open3d.

open3d is imported inside the functions (:func:`require_open3d`), so importing this module costs
nothing. open3d 0.20 reports unreadable files only by printing a warning from C++ and returning an
empty (or partly filled) geometry; the readers here capture that output and turn it, and empty
results, into one-line :class:`GeometryError` messages that name the file.

Two open3d 0.20 quirks handled here:

* ``write_triangle_mesh("x.glb")`` embeds the buffer as a base64 ``data:`` URI inside the GLB
  container, which its own reader (assimp) then rejects ("Buffer view ... out of range"); the
  file is repacked so the buffer lives in the GLB ``BIN`` chunk.
* a truncated PLY yields the vertices read so far plus a "Read PLY failed" warning: that is an
  error here, not a smaller geometry.
"""
from __future__ import annotations

import base64
import ctypes
import json
import os
import struct
import sys
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = [
    "GeometryError", "INSTALL_HINT", "require_open3d", "load_geometry", "load_mesh", "load_point_cloud",
    "save_mesh", "save_point_cloud",
]

INSTALL_HINT = 'the 3D tools need open3d: pip install "artifacts-toolkit[3d]" (open3d-cpu==0.20.0)'
MESH_SUFFIXES = (".ply", ".obj", ".glb", ".gltf", ".off", ".stl")
POINT_SUFFIXES = (".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")
# words open3d/RPly/assimp print when a read fails
_FAILURE_WORDS = ("failed", "unable", "error", "cannot", "unexpected", "invalid")


class GeometryError(ValueError):
    """A mesh or point-cloud file that cannot be read or written; the message names the file."""


def require_open3d() -> Any:
    """The ``open3d`` module, or an ImportError that says how to install it."""
    try:
        import open3d
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return open3d


def load_geometry(path: str | os.PathLike[str]) -> Any:
    """A file as an open3d ``TriangleMesh`` if it has triangles, else as a ``PointCloud``."""
    mesh = _read(path, "mesh")
    return mesh if len(mesh.triangles) else _read(path, "points")


def load_mesh(path: str | os.PathLike[str]) -> Any:
    """An open3d ``TriangleMesh`` with at least one triangle (GeometryError otherwise)."""
    mesh = _read(path, "mesh")
    if not len(mesh.triangles):
        raise GeometryError(f"{os.fspath(path)}: has no triangles (a point cloud?); a mesh is needed here")
    return mesh


def load_point_cloud(path: str | os.PathLike[str]) -> Any:
    """An open3d ``PointCloud``; for mesh-only formats (OBJ, glTF, ...) the mesh vertices."""
    return _read(path, "points")


def save_mesh(mesh: Any, path: str | os.PathLike[str]) -> None:
    """Write a ``TriangleMesh``; the format follows the extension (PLY is binary)."""
    o3d = require_open3d()
    target = _writable(path, MESH_SUFFIXES)
    with _native_output() as messages:
        ok = o3d.io.write_triangle_mesh(target, mesh, write_ascii=False)
    if not ok:
        raise GeometryError(f"{target}: could not write the mesh ({_first_failure(messages) or 'open3d refused'})")
    if target.lower().endswith(".glb"):
        _repack_glb(target)


def save_point_cloud(pcd: Any, path: str | os.PathLike[str]) -> None:
    """Write a ``PointCloud``; the format follows the extension (PLY is binary)."""
    o3d = require_open3d()
    target = _writable(path, POINT_SUFFIXES)
    with _native_output() as messages:
        ok = o3d.io.write_point_cloud(target, pcd, write_ascii=False)
    if not ok:
        raise GeometryError(f"{target}: could not write the point cloud ({_first_failure(messages) or 'open3d refused'})")


def _read(path: str | os.PathLike[str], kind: str) -> Any:
    o3d = require_open3d()
    name = os.fspath(path)
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in MESH_SUFFIXES + POINT_SUFFIXES:
        raise GeometryError(f"{name}: unsupported extension {suffix!r}; use one of {', '.join(MESH_SUFFIXES + POINT_SUFFIXES)}")
    if not os.path.isfile(name):
        raise FileNotFoundError(f"{name}: file not found")
    if os.path.getsize(name) == 0:
        raise GeometryError(f"{name}: empty file")
    as_mesh = kind == "mesh" or suffix not in POINT_SUFFIXES
    with _native_output() as messages:
        geometry = o3d.io.read_triangle_mesh(name) if as_mesh else o3d.io.read_point_cloud(name)
    failure = _first_failure(messages)
    if failure:
        raise GeometryError(f"{name}: cannot read {'mesh' if as_mesh else 'point cloud'} ({failure})")
    if kind == "points" and as_mesh:
        geometry = _mesh_vertices(o3d, geometry)
    count = len(geometry.vertices) if kind == "mesh" else len(geometry.points)
    if count == 0:
        raise GeometryError(f"{name}: no vertices (empty or not a {suffix[1:].upper()} file)")
    return geometry


def _mesh_vertices(o3d: Any, mesh: Any) -> Any:
    pcd = o3d.geometry.PointCloud(mesh.vertices)
    if mesh.has_vertex_colors():
        pcd.colors = mesh.vertex_colors
    if mesh.has_vertex_normals():
        pcd.normals = mesh.vertex_normals
    return pcd


def _writable(path: str | os.PathLike[str], suffixes: tuple[str, ...]) -> str:
    target = os.fspath(path)
    suffix = os.path.splitext(target)[1].lower()
    if suffix not in suffixes:
        raise GeometryError(f"{target}: cannot write {suffix or 'no extension'!r}; use one of {', '.join(suffixes)}")
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    return target


def _first_failure(messages: list[str]) -> str:
    """The first captured line that reports a failure, without open3d's colour codes and prefix."""
    for line in messages:
        clean = line.replace("\x1b[1;33m", "").replace("\x1b[0;m", "").replace("[Open3D WARNING]", "").strip()
        if any(word in clean.lower() for word in _FAILURE_WORDS):
            return clean
    return ""


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C runtime handle (e.g. Windows): best effort
        pass


@contextmanager
def _native_output() -> Iterator[list[str]]:
    """Capture what native code prints on file descriptors 1 and 2 inside the block.

    The list it yields is filled with the captured lines when the block ends. open3d's verbosity
    is raised to Warning meanwhile, because read failures are reported only as warnings. The
    redirection is process-wide: output of other threads during a read is captured too.
    """
    o3d = require_open3d()
    messages: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError):
            pass
    _flush_c_stdio()
    with tempfile.TemporaryFile() as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Warning):
                yield messages
        finally:
            _flush_c_stdio()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            messages.extend(sink.read().decode("utf-8", "replace").splitlines())


def _repack_glb(path: str) -> None:
    """Move a base64 ``data:`` buffer of a GLB file into its binary chunk (see the module notes)."""
    with open(path, "rb") as fh:
        data = fh.read()
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    if magic != b"glTF" or json_type != b"JSON":
        return
    doc = json.loads(data[20:20 + json_len])
    buffers = doc.get("buffers", [])
    if 20 + json_len < len(data) or len(buffers) != 1 or not str(buffers[0].get("uri", "")).startswith("data:"):
        return  # already has a BIN chunk, or a layout this fix does not cover
    payload = base64.b64decode(buffers[0].pop("uri").split(",", 1)[1])
    buffers[0]["byteLength"] = len(payload)
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    payload += b"\0" * (-len(payload) % 4)
    total = 12 + 8 + len(text) + 8 + len(payload)
    out = struct.pack("<4sII", b"glTF", version, total) + struct.pack("<I4s", len(text), b"JSON") + text
    out += struct.pack("<I4s", len(payload), b"BIN\0") + payload
    with open(path, "wb") as fh:
        fh.write(out)
