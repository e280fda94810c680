"""How reading failures are reported: :class:`ImageReadError` and its one-line reasons.

Every problem :func:`~artifacts.io.image.load_image` and
:func:`~artifacts.io.image.image_info` meet ends up as an
:class:`ImageReadError` whose reason comes from :func:`os_reason` (the file
could not be read) or :func:`decoder_reason` (the data could not be decoded,
or the decoding policy refuses it: :class:`PolicyError`).
"""

from __future__ import annotations

__all__ = ["ImageReadError", "PolicyError", "decoder_reason", "one_line", "os_reason"]

_REASON_LIMIT = 240


class ImageReadError(ValueError):
    """One-line, human-readable reason a file cannot be read, always including the file name.

    The message is ``"<filename>: <reason>"``; it is never multi-line and never
    contains a traceback.  ``filename`` and ``reason`` are also attributes.
    """

    def __init__(self, filename: str, reason: str) -> None:
        self.filename = one_line(str(filename))
        self.reason = one_line(str(reason))
        super().__init__(f"{self.filename}: {self.reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Keep the exception picklable (DataLoader workers send it across processes).
        return (type(self), (self.filename, self.reason))


class PolicyError(ValueError):
    """Pixel data that decodes fine but that the policy refuses (message is the reason)."""


def one_line(text: str) -> str:
    """Collapse whitespace (including newlines) and cut overly long text."""
    text = " ".join(text.split())
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."


def os_reason(exc: OSError) -> str:
    """Reason for a file that could not be opened or read."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read file ({exc.strerror or exc})"


def decoder_reason(exc: BaseException) -> str:
    """Reason for any exception raised while opening or decoding image data."""
    text = one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "not enough memory to decode the image"
    if isinstance(exc, ValueError) and "MAX_TEXT" in str(exc):
        return "oversized PNG text chunk (possible decompression bomb)"
    if isinstance(exc, PolicyError):
        return text
    return f"truncated or corrupt image data ({text})"
