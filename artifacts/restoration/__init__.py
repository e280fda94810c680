"""Image restoration: networks that repair or enhance images (super-resolution, ...).

Importing this package is cheap: it imports neither torch nor any weights. The networks live in
submodules, e.g. :mod:`artifacts.restoration.sr` for super-resolution.
"""
