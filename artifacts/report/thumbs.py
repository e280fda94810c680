"""Thumbnails for the report: small JPEGs in ``OUT/report/thumbs/``, made once and reused.

An input thumbnail is named by the SHA-256 of the input file recorded in the store, so the same
picture analysed by several models (or several runs) has one thumbnail, and a thumbnail is never
remade once it exists. An overlay thumbnail is named by the item key and remade only when
``overlay.png`` is newer than it. Files are written to a temporary name and renamed, so a killed
build leaves no half-written JPEG.

Inputs are read with :func:`artifacts.io.load_image` (EXIF orientation applied, 16-bit reduced
for display). A missing input, an input whose size differs from the one recorded in the store,
or one that cannot be decoded gives a short note instead of a thumbnail.
"""
from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THUMBS_DIR = ("report", "thumbs")
_HEX = re.compile(r"[0-9a-f]{8,64}")
_SAFE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


@dataclass
class Thumb:
    """A thumbnail to show: ``href`` relative to OUT, or ``note`` saying why there is none."""

    href: str | None = None
    note: str | None = None
    detail: str | None = None  # longer reason, shown on hover


def safe_part(name: Any) -> bool:
    """True for a single, plain path component (store keys and item file names)."""
    return isinstance(name, str) and bool(_SAFE_PART.fullmatch(name)) and name not in (".", "..")


def thumb_name(ident: str, suffix: str) -> str:
    ident = ident.lower() if _HEX.fullmatch(ident.lower()) else hashlib.sha256(ident.encode()).hexdigest()
    return f"{ident[:32]}-{suffix}.jpg"


def input_role(inputs: dict[str, dict]) -> str | None:
    """The input to preview: role ``image`` if present (and not a NIfTI series), else the first file with an image extension."""
    from artifacts.engine.items import IMAGE_EXTENSIONS, NIFTI_SUFFIXES

    if "image" in inputs and not str(inputs["image"].get("path", "")).lower().endswith(NIFTI_SUFFIXES):
        return "image"
    for role, info in inputs.items():
        if Path(str(info.get("path", ""))).suffix.lower() in IMAGE_EXTENSIONS:
            return role
    return None


def input_state(info: dict) -> str | None:
    """None when the input file is there as recorded, else a short note."""
    path = Path(str(info.get("path", "")))
    try:
        st = path.stat()
    except OSError:
        return "input file not found"
    if not path.is_file():
        return "input is not a file"
    if info.get("size") is not None and st.st_size != info["size"]:
        return "input file changed since the run"
    return None


def make_thumb(source: str | os.PathLike, dest: Path, size: int) -> None:
    """Decode ``source`` and write a JPEG at most ``size`` px on its long side to ``dest``."""
    import cv2
    from PIL import Image

    from artifacts.io import load_image
    from artifacts.viz import to_uint8

    pixels = load_image(source).pixels
    h, w = pixels.shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale < 1.0:  # area averaging: fast and alias-free when shrinking (before the 16 -> 8 bit step)
        pixels = cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    pic = Image.fromarray(to_uint8(pixels))
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{id(pic)}.tmp")
    try:
        pic.save(tmp, "JPEG", quality=82, optimize=True)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class Thumbnailer:
    """Plans the thumbnails of many rows, then makes the missing ones in parallel."""

    def __init__(self, out: Path, size: int = 160, workers: int | None = None):
        self.out, self.size = out, size
        self.dir = out.joinpath(*THUMBS_DIR)
        self.workers = workers or max(1, min(8, os.cpu_count() or 1))
        self.jobs: dict[str, Path] = {}  # thumbnail name -> source file
        self.planned: list[tuple[str, Thumb]] = []  # thumbnails that wait on a job
        self.made = self.reused = 0

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.dir.resolve().is_relative_to(self.out.resolve()):
            raise RuntimeError(f"{self.dir} leads outside {self.out}; refusing to write there")

    def href(self, name: str) -> str:
        return "/".join(THUMBS_DIR + (name,))

    def for_input(self, row: dict) -> Thumb:
        inputs = row.get("inputs") or {}
        role = input_role(inputs)
        if role is None:
            return Thumb(note="no image to preview")
        info = inputs[role]
        name = thumb_name(str(info.get("sha256") or row.get("key") or info.get("path")), "in")
        state = input_state(info)
        if (self.dir / name).is_file():
            self.reused += name not in self.jobs
            return Thumb(href=self.href(name), note=state)
        if state is not None:
            return Thumb(note=state)
        self.jobs[name] = Path(str(info["path"]))
        return self._planned(name)

    def for_overlay(self, row: dict, item_dir: Path) -> Thumb | None:
        files = row.get("files") or {}
        name_in_item = files.get("overlay")
        if not name_in_item:
            return None
        if not (safe_part(row.get("key")) and safe_part(name_in_item)):
            return Thumb(note="unsafe file name in the store")
        source = item_dir / name_in_item
        try:
            src_mtime = source.stat().st_mtime
        except OSError:
            return Thumb(note="overlay file missing")
        name = thumb_name(str(row["key"]), "overlay")
        dest = self.dir / name
        try:
            fresh = dest.stat().st_mtime >= src_mtime
        except OSError:
            fresh = False
        if fresh:
            self.reused += 1
            return Thumb(href=self.href(name))
        self.jobs[name] = source
        return self._planned(name)

    def _planned(self, name: str) -> Thumb:
        thumb = Thumb(href=self.href(name))
        self.planned.append((name, thumb))
        return thumb

    def run(self) -> dict[str, str]:
        """Make the planned thumbnails; return {thumbnail name: one-line reason} for failures."""
        from artifacts.engine.runner import one_line

        failed: dict[str, str] = {}

        def work(item: tuple[str, Path]) -> None:
            name, source = item
            try:
                make_thumb(source, self.dir / name, self.size)
            except Exception as exc:  # a preview failure never stops the report
                failed[name] = one_line(exc)

        if self.jobs:
            with ThreadPoolExecutor(min(self.workers, len(self.jobs)), thread_name_prefix="artifacts-thumb") as pool:
                list(pool.map(work, self.jobs.items()))
        self.made = len(self.jobs) - len(failed)
        for name, thumb in self.planned:
            if name in failed:
                thumb.href, thumb.note, thumb.detail = None, "no preview", failed[name]
        return failed
