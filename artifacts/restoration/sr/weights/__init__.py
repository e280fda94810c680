"""Packaged super-resolution weights (data only; see tools/convert_span.py)."""
