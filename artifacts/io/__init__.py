"""Image input/output for the Artifacts toolkit.

* :func:`load_image` / :func:`image_info` / :func:`save_image` read and write
  files following one documented decoding policy (see :mod:`artifacts.io.image`,
  which also describes the private modules implementing it).
* :mod:`artifacts.io.convert` is the single place where edge images (numpy
  ``H, W, 3`` RGB ``uint8``/``uint16``) become model tensors (torch float32
  ``B, C, H, W`` in [0, 1]) and back.

Importing this package needs only numpy and Pillow; torch and OpenCV are
imported inside the functions that use them.
"""

from .convert import as_images, from_tensor, to_float, to_tensor
from ._decode import orient_array
from ._encode import encode_image
from .image import ImageData, ImageReadError, image_info, load_image, save_image

__all__ = [
    "ImageData",
    "ImageReadError",
    "as_images",
    "encode_image",
    "from_tensor",
    "image_info",
    "load_image",
    "orient_array",
    "save_image",
    "to_float",
    "to_tensor",
]
