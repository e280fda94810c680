"""Synthetic / AI-generated image detection: SAFE, training-free detectors, provenance."""
