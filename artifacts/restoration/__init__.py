"""Restoration: repair or enhance images, fed by the detectors (tasks ``inpaint``, ``sr``,
``refrepair``; see DESIGN.md).

Importing this package is cheap: it imports neither torch nor any weights.

:mod:`artifacts.restoration.base`
    ``Restorer`` (the interface), ``RestoreInput``, ``Chain`` (a restorer, then another).
:mod:`artifacts.restoration.inpaint` / :mod:`~artifacts.restoration.inpainters`
    Fill a mask: Telea, Navier-Stokes, biharmonic, exemplar (PatchMatch); ``inpaint/*`` models.
:mod:`artifacts.restoration.sr`
    Super-resolution networks (SPAN, RRDBNet / Real-ESRGAN) and the ``sr/*`` models.
:mod:`artifacts.restoration.refrepair`
    Training-free reference-guided repair of novel views (``refrepair/*``).
:mod:`artifacts.restoration.tiling`
    Tiled inference of image-to-image networks in bounded memory.
"""
