"""Reader for X-AIGD's parquet layout: fine-grained artifact polygons on AI-generated images.

X-AIGD (https://github.com/Coxy7/X-AIGD, Hugging Face ``Coxy7/X-AIGD``, files
``data/<split>-*.parquet``) stores one row per image with the columns

- ``image``: the Hugging Face ``datasets`` Image feature, a struct ``{bytes, path}``; plain
  ``bytes`` or a path string are accepted as well (a relative path is relative to the parquet file);
- ``generator``, ``uid``: strings naming the image (``name`` = ``generator/uid``);
- ``width``, ``height`` (optional here: read from the image header when absent);
- ``labels``: a list of ``{label, points}``, ``label`` one of the 7 strings of
  :mod:`artifacts.detectors.synthetic.taxonomy`, ``points`` a polygon as ``[[x, y], ...]`` (a flat
  ``[x0, y0, x1, y1, ...]`` list is accepted too); a JSON string of that list is accepted.

Polygons are rasterised like the official metric code (``metrics/masks.py``): coordinates are
truncated to int32, clipped to the image, and filled with ``cv2.fillPoly``; all polygons of a
label are united into one boolean mask of the image size. Masks are made on demand
(:meth:`XAIGDSample.masks`), never stored for the whole dataset.

**Unknown labels and malformed polygons** (fewer than 3 points): with ``strict=True`` (the
default, as in the official evaluator) they raise ValueError naming the file, row and label;
with ``strict=False`` they are skipped and recorded in :attr:`XAIGDSample.skipped`. Other
spellings of a label (``edge_shape``, ``low_level_colour``) are mapped to the official one.

Rows are streamed in batches of ``batch_size`` (:func:`iter_xaigd`), so a large parquet is never
loaded at once; :func:`materialise` writes the images (their original bytes, not re-encoded) and
per-label mask PNGs to a folder as it goes, so the engine can run detectors over the files.
pyarrow is needed (the ``xaigd`` extra) and imported only here.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from artifacts.detectors.synthetic.taxonomy import LABELS, canonical_label

COLUMNS = ("image", "generator", "uid", "width", "height", "labels")
_MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
          (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))


def _pq():
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is installed where the tests run
        raise ImportError("reading X-AIGD parquet files needs pyarrow: pip install 'artifacts[xaigd]' "
                          "(or pip install pyarrow)") from None
    return pq


@dataclass
class XAIGDSample:
    """One annotated image: its ``labels`` as ``(label, polygon)`` pairs (polygon: N x 2 float
    array of x, y), the ``image`` as bytes or a file path (None when read without images)."""

    generator: str
    uid: str
    width: int
    height: int
    labels: tuple[tuple[str, np.ndarray], ...]
    image: bytes | str | None = None
    image_path: str | None = None  # the struct's ``path`` field: a name hint for the extension
    source: str = ""  # "file.parquet#row"
    skipped: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.generator}/{self.uid}"

    @property
    def present(self) -> list[str]:
        """The labels annotated on this image, in the official order."""
        found = {label for label, _ in self.labels}
        return [label for label in LABELS if label in found]

    def mask(self, label: str) -> np.ndarray:
        """The H x W bool mask of ``label`` (all False when it is not annotated here)."""
        import cv2

        label = canonical_label(label)
        canvas = np.zeros((self.height, self.width), np.uint8)
        for name, polygon in self.labels:
            if name == label:
                cv2.fillPoly(canvas, [_pixel_polygon(polygon, self.width, self.height)], 255)
        return canvas > 0

    def masks(self, labels: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Label -> H x W bool mask, for the labels present (default) or for ``labels``."""
        return {label: self.mask(label) for label in (self.present if labels is None else labels)}

    def union_mask(self) -> np.ndarray:
        """Every annotated artifact of the image in one H x W bool mask."""
        out = np.zeros((self.height, self.width), bool)
        for m in self.masks().values():
            out |= m
        return out

    def image_bytes(self) -> bytes:
        if self.image is None:
            raise ValueError(f"{self.source}: {self.name} was read without its image")
        return self.image if isinstance(self.image, bytes) else Path(self.image).read_bytes()

    def load_image(self):
        """The decoded image (:class:`artifacts.io.ImageData`)."""
        from artifacts.io import load_image

        return load_image(self.image if isinstance(self.image, str) else self.image_bytes())


def _pixel_polygon(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    pts = np.asarray(polygon, dtype=np.float64).astype(np.int32)  # truncation, as the official code
    pts[:, 0] = np.clip(pts[:, 0], 0, width - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, height - 1)
    return pts


def _polygon(points: Any) -> np.ndarray:
    """``[[x, y], ...]`` or a flat ``[x0, y0, ...]`` -> N x 2 float array (ValueError if neither)."""
    if points is None:
        return np.zeros((0, 2))
    items = list(points)
    if items and all(isinstance(p, (list, tuple, np.ndarray)) for p in items):
        if any(len(p) < 2 for p in items):
            raise ValueError("a point has fewer than 2 coordinates")
        arr = np.array([[float(p[0]), float(p[1])] for p in items])
    else:
        flat = np.asarray(items, dtype=np.float64).ravel()
        if flat.size % 2:
            raise ValueError(f"a flat point list needs an even number of values, got {flat.size}")
        arr = flat.reshape(-1, 2)
    if not np.isfinite(arr).all():
        raise ValueError("polygon has non-finite coordinates")
    return arr


def _image_field(value: Any, parquet: Path) -> tuple[bytes | str | None, str | None]:
    """(bytes or path, name hint) from bytes / a {bytes, path} struct / a path string."""
    if value is None:
        return None, None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None
    if isinstance(value, dict):
        data, hint = value.get("bytes"), value.get("path")
        if data is not None:
            return bytes(data), hint
        value = hint
        if value is None:
            return None, None
    if isinstance(value, (str, os.PathLike)):
        p = Path(value)
        if not p.is_absolute() and not p.exists():
            p = parquet.parent / p
        if not p.is_file():
            raise FileNotFoundError(f"{parquet}: image file {value} not found (nor next to the parquet file)")
        return str(p), str(value)
    raise ValueError(f"{parquet}: image must be bytes, a {{bytes, path}} struct or a path, got {type(value).__name__}")


def _row_sample(row: dict, where: str, parquet: Path, strict: bool, with_images: bool) -> XAIGDSample:
    for col in ("generator", "uid"):
        if row.get(col) is None:
            raise ValueError(f"{where}: missing {col!r}")
    image, hint = _image_field(row.get("image"), parquet)
    width, height = row.get("width"), row.get("height")
    if width is None or height is None:
        if image is None:
            raise ValueError(f"{where}: no width/height and no image to read the size from")
        from artifacts.io import image_info

        width, height = image_info(image)["size"]
    if not with_images:
        image, hint = None, None
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise ValueError(f"{where}: image size {width}x{height} is not positive")
    raw = row.get("labels") or []
    if isinstance(raw, str):
        raw = json.loads(raw)
    labels, skipped = [], []
    for k, entry in enumerate(raw):
        name = entry.get("label") if isinstance(entry, dict) else None
        try:
            label = canonical_label(name)
            polygon = _polygon(entry.get("points"))
            if len(polygon) < 3:
                raise ValueError(f"a polygon needs at least 3 points, got {len(polygon)}")
        except (ValueError, TypeError) as exc:
            if strict:
                raise ValueError(f"{where} ({row['generator']}/{row['uid']}), label {k} {name!r}: {exc} "
                                 "(read with strict=False to skip such labels)") from None
            skipped.append(f"{name!r}: {exc}")
            continue
        labels.append((label, polygon))
    return XAIGDSample(str(row["generator"]), str(row["uid"]), width, height, tuple(labels), image, hint,
                       where, tuple(skipped))


def parquet_files(path: str | os.PathLike) -> list[Path]:
    """The parquet file ``path``, or every ``*.parquet`` under the folder ``path`` (sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if files:
            return files
        raise FileNotFoundError(f"{path}: no .parquet files in this folder")
    raise FileNotFoundError(f"X-AIGD data not found: {path} (a .parquet file or a folder of them)")


def iter_xaigd(path: str | os.PathLike, *, strict: bool = True, with_images: bool = True,
               batch_size: int = 32) -> Iterator[XAIGDSample]:
    """Stream the samples of one parquet file or a folder of them, ``batch_size`` rows at a
    time (see the module docstring for the layout and the ``strict`` policy). With
    ``with_images=False`` the samples carry no image (the image column is still read where
    there are no width/height columns, for the size in its header)."""
    pq = _pq()
    for file in parquet_files(path):
        pf = pq.ParquetFile(file)
        names = set(pf.schema_arrow.names)
        missing = {"generator", "uid", "labels"} - names
        if missing:
            raise ValueError(f"{file}: not in the X-AIGD layout, missing column(s) {sorted(missing)}")
        if with_images and "image" not in names:
            raise ValueError(f"{file}: no 'image' column (read with with_images=False for the annotations only)")
        sized = {"width", "height"} <= names  # else the image column is read for its header
        columns = [c for c in COLUMNS if c in names and (with_images or not sized or c != "image")]
        row = 0
        for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
            for record in batch.to_pylist():
                yield _row_sample(record, f"{file}#{row}", file, strict, with_images)
                row += 1


def read_xaigd(path: str | os.PathLike, *, strict: bool = True, with_images: bool = True) -> list[XAIGDSample]:
    """Every sample of one parquet file or a folder of them (images held in memory: for a large
    set, stream with :func:`iter_xaigd` or write files with :func:`materialise`)."""
    return list(iter_xaigd(path, strict=strict, with_images=with_images))


# -- files on disk ------------------------------------------------------------------------
@dataclass
class XAIGDFiles:
    """A sample written to disk: the ``image`` file the engine reads and one mask PNG per
    label present (``masks``: label -> path). ``name`` is ``generator/uid``."""

    name: str
    image: str
    generator: str
    uid: str
    width: int
    height: int
    masks: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    @property
    def present(self) -> list[str]:
        return [label for label in LABELS if label in self.masks]

    def load_mask(self, label: str) -> np.ndarray:
        """The H x W bool mask of ``label`` (all False when not annotated)."""
        if label not in self.masks:
            return np.zeros((self.height, self.width), bool)
        import cv2

        m = cv2.imread(self.masks[label], cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise ValueError(f"{self.masks[label]}: missing or unreadable mask")
        return m > 127


def _safe(part: str) -> str:
    part = re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._") or "_"
    return part[:120]


def _extension(data: bytes, hint: str | None) -> str:
    from artifacts.engine.items import IMAGE_EXTENSIONS

    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if hint and Path(hint).suffix.lower() in IMAGE_EXTENSIONS:
        return Path(hint).suffix.lower()
    raise ValueError("image bytes are not PNG/JPEG/WebP/GIF/BMP/TIFF and the row names no file type")


def materialise(samples: Iterable[XAIGDSample], folder: str | os.PathLike) -> list[XAIGDFiles]:
    """Write each sample's image to ``folder/images/<generator>/<uid>.<ext>`` (its original
    bytes, not re-encoded; an existing file of the same size is kept, so a rerun writes nothing
    new) and each present label's mask to ``folder/masks/<generator>/<uid>/<label>.png`` (8-bit
    0/255). An image given as a path is used where it is, not copied. ``samples`` may be a
    stream (:func:`iter_xaigd`): only one image is held at a time."""
    from artifacts.io import save_image

    folder = Path(folder)
    out, used = [], set()
    for s in samples:
        stem = f"{_safe(s.generator)}/{_safe(s.uid)}"
        base, n = stem, 1
        while stem in used:  # two rows with the same generator/uid (or the same sanitised name)
            n += 1
            stem = f"{base}~{n}"
        used.add(stem)
        if s.image is None:
            raise ValueError(f"{s.source}: {s.name} was read without its image; nothing to materialise")
        if isinstance(s.image, str):
            image = s.image
        else:
            try:
                ext = _extension(s.image, s.image_path)
            except ValueError as exc:
                raise ValueError(f"{s.source}: {s.name}: {exc}") from None
            target = folder / "images" / f"{stem}{ext}"
            if not (target.is_file() and target.stat().st_size == len(s.image)):
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_bytes(s.image)
                tmp.replace(target)
            image = str(target)
        masks = {}
        for label, mask in s.masks().items():
            path = folder / "masks" / stem / f"{label}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(path, mask)
            masks[label] = str(path)
        out.append(XAIGDFiles(s.name if n == 1 else f"{s.name}~{n}", image, s.generator, s.uid, s.width,
                              s.height, masks, s.skipped))
    return out
