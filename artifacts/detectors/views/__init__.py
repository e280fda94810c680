"""Detectors for novel views of 3D reconstructions (task ``views``): an item is a rendered view
plus the set of reference (input / training) views of the same scene."""
