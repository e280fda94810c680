"""Packaged calibration/weights files for manipulation detectors (data only)."""
