"""Diffusion-MRI artifact QC: detectors of the ``dmri`` task (items are whole series).

The shared contract (per-volume and per-(volume, slice) scores, artifact kinds) is in
:mod:`artifacts.detectors.dmri.base`.
"""
