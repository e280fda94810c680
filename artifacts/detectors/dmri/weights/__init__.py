"""Weights of the dMRI detectors trained by this package (see docs/models/)."""
