"""Real photographs that ship inside installed packages, usable offline.

The manipulation generator needs real camera photos as hosts and donors:
synthetic images lack the sensor noise, demosaicing and compression traces
that forensic detectors rely on.  This module collects the photos bundled with
scikit-image (always available) and, when those packages are installed, with
scikit-learn (``load_sample_images``) and matplotlib (``grace_hopper.jpg``).
Nothing here touches the network: an entry that cannot be loaded from local
files is simply left out of :func:`photo_names`.

All images are returned as ``H, W, 3`` RGB ``uint8`` arrays; greyscale photos
are replicated to three channels and flagged in :data:`GREY_PHOTOS`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Union

import numpy as np

__all__ = [
    "GREY_PHOTOS",
    "Photo",
    "as_photos",
    "is_grey",
    "load_folder",
    "load_photo",
    "photo_names",
]

#: Greyscale photos (replicated to RGB by :func:`load_photo`).
GREY_PHOTOS = frozenset(
    {"camera", "coins", "moon", "brick", "grass", "gravel", "clock", "page"}
)

def _skimage(attr: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return getattr(data, attr)()

    return load


def _motorcycle(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return data.stereo_motorcycle()[index]

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return np.asarray(im.convert("RGB"))


# Candidate photos in a fixed order (the order of photo_names()).
_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "rocket": _skimage("rocket"),
    "motorcycle_left": _motorcycle(0),
    "motorcycle_right": _motorcycle(1),
    **{name: _skimage(name) for name in sorted(GREY_PHOTOS)},
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
    "grace_hopper": _grace_hopper,
}


def _to_rgb_uint8(img: np.ndarray) -> np.ndarray:
    """Convert a greyscale / RGBA / float image to an ``H, W, 3`` uint8 array."""
    img = np.asarray(img)
    if img.dtype == np.uint16:
        img = img / 257.0
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.max(initial=0) <= 1.0:
            img = img * 255.0
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"not an image array: shape {img.shape}")
    return np.ascontiguousarray(img)


@functools.lru_cache(maxsize=None)
def _load_cached(name: str) -> np.ndarray:
    img = _to_rgb_uint8(_LOADERS[name]())
    img.flags.writeable = False
    return img


def load_photo(name: str) -> np.ndarray:
    """Return the bundled photo ``name`` as a read-only ``H, W, 3`` uint8 array.

    The array is cached and shared between callers, so it is marked read-only;
    call ``.copy()`` before modifying it.  Raises ``KeyError`` for an unknown
    name and the loader's exception when the photo is not available.
    """
    if name not in _LOADERS:
        raise KeyError(f"unknown photo {name!r}; known: {sorted(_LOADERS)}")
    return _load_cached(name)


@functools.lru_cache(maxsize=1)
def _available() -> tuple[str, ...]:
    names = []
    for name in _LOADERS:
        try:
            _load_cached(name)
        except Exception:  # missing optional package or data file
            continue
        names.append(name)
    return tuple(names)


def photo_names() -> list[str]:
    """Names of the real photos that load offline on this installation."""
    return list(_available())


def is_grey(img_or_name: Union[str, np.ndarray]) -> bool:
    """True for a greyscale photo (by name, or an RGB array with equal channels)."""
    if isinstance(img_or_name, str):
        return img_or_name in GREY_PHOTOS
    img = np.asarray(img_or_name)
    if img.ndim == 2:
        return True
    return bool(
        np.array_equal(img[..., 0], img[..., 1])
        and np.array_equal(img[..., 0], img[..., 2])
    )


def _folder_files(path: Union[str, Path]) -> list[Path]:
    from artifacts.engine.items import IMAGE_EXTENSIONS

    folder = Path(path)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_folder(path: Union[str, Path]) -> list[np.ndarray]:
    """Load every image in ``path`` (sorted by file name) as RGB uint8 arrays.

    Files that cannot be read (see :func:`artifacts.io.load_image`) are skipped; 16-bit photos
    are reduced to 8 bits.  Use :func:`as_photos` on the folder
    path instead to keep the file stems as photo names.
    """
    return [photo.image for photo in _folder_photos(path)]


def _folder_photos(path: Union[str, Path]) -> list["Photo"]:
    from artifacts.io import ImageReadError, load_image

    photos = []
    for file in _folder_files(path):
        try:
            img = _to_rgb_uint8(load_image(file).pixels)
        except ImageReadError:
            continue
        photos.append(Photo(file.stem, img, is_grey(img)))
    return photos


@dataclass(frozen=True)
class Photo:
    """A named photo of the pool.

    ``family`` groups near-duplicates (the two motorcycle stereo views): the
    generator never splices between photos of the same family.
    """

    name: str
    image: np.ndarray
    grey: bool
    family: str = ""

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", _family(self.name))


def _family(name: str) -> str:
    return "motorcycle" if name.startswith("motorcycle_") else name


PhotoLike = Union[str, np.ndarray, tuple, Photo]


def as_photos(items: Union[None, str, Path, Iterable[PhotoLike]] = None) -> list[Photo]:
    """Normalise a photo pool to a list of :class:`Photo`.

    ``items`` may be ``None`` (all bundled photos), a folder path, or an
    iterable whose elements are bundled photo names, ``(name, array)`` pairs,
    :class:`Photo` objects or bare arrays (named ``photo000``, ``photo001``...
    by position).
    """
    if items is None:
        return [Photo(n, load_photo(n), is_grey(n)) for n in photo_names()]
    if isinstance(items, (str, Path)):
        return _folder_photos(items)
    photos: list[Photo] = []
    for i, item in enumerate(items):
        if isinstance(item, Photo):
            photos.append(item)
        elif isinstance(item, str):
            photos.append(Photo(item, load_photo(item), is_grey(item)))
        elif isinstance(item, tuple) and len(item) == 2:
            img = _to_rgb_uint8(item[1])
            photos.append(Photo(str(item[0]), img, is_grey(img)))
        else:
            img = _to_rgb_uint8(item)
            photos.append(Photo(f"photo{i:03d}", img, is_grey(img)))
    if not photos:
        raise ValueError("empty photo pool")
    return photos
