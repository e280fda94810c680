"""Calibration files of the training-free dMRI detectors (``artifacts train dmri --model qc``)."""
