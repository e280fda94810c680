"""Caps, the malformed-structure error and text cleaning shared by the provenance modules."""
from __future__ import annotations

import re

TEXT_CAP = 1000  # prompts and other long free text
SHORT_CAP = 200  # names, versions, tool strings
MAX_META_BYTES = 16 << 20  # metadata read from one file
MAX_BLOCK = 8 << 20  # one chunk / segment group / XMP packet
MAX_TEXT = 4 << 20  # inflated text of one chunk
SCAN_BYTES = 8 << 20  # head scanned in containers that are not walked
MAX_STEPS = 200_000  # chunks / markers walked


class Bad(Exception):
    """A malformed structure: recorded in ``errors``, never raised to the caller."""


def clean(val, cap: int = SHORT_CAP) -> str | None:
    if val is None:
        return None
    s = re.sub(r"[\x00-\x1f\x7f]+", " ", str(val)[:cap * 4]).strip()
    return s[:cap]


def cap(val) -> str | None:
    if val is None:
        return None
    return str(val).replace("\x00", "")[:TEXT_CAP]

