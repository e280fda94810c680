"""The package version (kept apart so that any module can import it without the package root)."""

__version__ = "0.1.0"
