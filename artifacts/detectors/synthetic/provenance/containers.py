"""Bounded reading of the file: JPEG markers, PNG and RIFF chunks walked, other containers scanned.

:func:`read_file` fills the raw dict of :func:`empty_raw` (EXIF bytes, XMP text, text chunks, the
C2PA store, JPEG quantisation tables) without reading more than ``MAX_META_BYTES``.
"""
from __future__ import annotations

import os
import zlib

from .common import MAX_BLOCK, MAX_META_BYTES, MAX_STEPS, MAX_TEXT, SCAN_BYTES, Bad, clean

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_XMP_NS = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXT_NS = b"http://ns.adobe.com/xmp/extension/\x00"
_C2PA_UUID_TAIL = b"\x00\x11\x00\x10\x80\x00\x00\xaa\x00\x38\x9b\x71"
_ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34,
           27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37,
           44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]


def empty_raw() -> dict:
    return {"exif": None, "exif_source": None, "xmp": None, "xmp_extended": False, "texts": [],
            "c2pa": None, "c2pa_where": None, "dqt": {}, "errors": []}


class _Reader:
    """Bounded reads from an open file: at most MAX_META_BYTES are read in all."""

    def __init__(self, fh, size: int):
        self.fh, self.size, self.budget = fh, size, MAX_META_BYTES

    def read(self, n: int) -> bytes:
        if n > self.budget:
            raise Bad(f"more than {MAX_META_BYTES >> 20} MiB of metadata; the rest was not read")
        data = self.fh.read(n)
        self.budget -= len(data)
        return data

    def skip(self, n: int) -> None:
        self.fh.seek(n, os.SEEK_CUR)

    def tell(self) -> int:
        return self.fh.tell()


def read_file(path, rec: dict, notes: list, errors: list) -> dict:
    raw = empty_raw()
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            rec["file_size"] = rec["file_size"] if rec["file_size"] is not None else size
            kind = _sniff(fh.read(16))
            fh.seek(0)
            if rec["format"] is None:
                rec["format"] = kind
            elif kind and kind != rec["format"]:
                notes.append(f"the file at the path is now {kind}, the decoder reported {rec['format']}")
            walker = {"JPEG": _walk_jpeg, "PNG": _walk_png, "WEBP": _walk_riff}.get(kind or "", _scan_head)
            try:
                walker(_Reader(fh, size), raw)
            except Bad as exc:
                errors.append(f"{kind or 'file'} structure: {exc}")
            if walker is _scan_head and size > SCAN_BYTES:
                notes.append(f"only the first {SCAN_BYTES >> 20} MiB were scanned for XMP and C2PA")
    except OSError as exc:
        errors.append(f"cannot read {os.path.basename(str(path))}: {exc.strerror or exc}")
    except Exception as exc:  # never let a strange file break detection
        errors.append(clean(f"reading the file failed: {type(exc).__name__}: {exc}"))
    errors += raw["errors"]
    return raw


def _sniff(head: bytes) -> str | None:
    try:
        from artifacts.io._header import sniff
        return sniff(head)
    except Exception:
        return None


def _walk_jpeg(r: _Reader, raw: dict) -> None:
    if r.read(2) != b"\xff\xd8":
        raise Bad("no JPEG start marker")
    jumbf: dict[int, dict[int, bytes]] = {}
    try:
        for _ in range(MAX_STEPS):
            b = r.read(1)
            if not b:
                raise Bad("file ends before the image data")
            if b != b"\xff":
                raise Bad(f"expected a marker at byte {r.tell() - 1}")
            m, fill = r.read(1), 0
            while m == b"\xff" and fill < 64:
                m, fill = r.read(1), fill + 1
            if not m:
                raise Bad("file ends inside a marker")
            marker = m[0]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                continue
            if marker == 0xD9:
                return
            lb = r.read(2)
            if len(lb) < 2:
                raise Bad("file ends inside a segment header")
            n = int.from_bytes(lb, "big") - 2
            if n < 0:
                raise Bad(f"segment length below 2 at byte {r.tell() - 2}")
            if marker == 0xDA:  # start of scan: all metadata comes before
                return
            if marker not in (0xE1, 0xEB, 0xDB, 0xFE):
                r.skip(n)
                continue
            data = r.read(n)
            if len(data) < n:
                raise Bad("file ends inside a segment")
            try:
                _jpeg_segment(marker, data, raw, jumbf)
            except Bad as exc:  # one bad segment: note it and keep walking
                raw["errors"].append(f"JPEG segment 0xFF{marker:02X}: {exc}")
    finally:
        for parts in jumbf.values():
            blob = b"".join(parts[z] for z in sorted(parts))
            if _is_c2pa(blob) and raw["c2pa"] is None:
                raw["c2pa"], raw["c2pa_where"] = blob, "JPEG APP11 (JUMBF)"


def _jpeg_segment(marker: int, data: bytes, raw: dict, jumbf: dict) -> None:
    if marker == 0xE1:
        if data.startswith(b"Exif\x00\x00") and raw["exif"] is None:
            raw["exif"], raw["exif_source"] = data, "JPEG APP1"
        elif data.startswith(_XMP_NS) and raw["xmp"] is None:
            raw["xmp"] = data[len(_XMP_NS):].decode("utf-8", "replace")
        elif data.startswith(_XMP_EXT_NS):
            raw["xmp_extended"] = True
    elif marker == 0xFE:
        raw["texts"].append(("JPEG comment", "comment", data[:MAX_TEXT].decode("utf-8", "replace")))
    elif marker == 0xDB:
        _parse_dqt(data, raw["dqt"])
    elif marker == 0xEB and data[:2] == b"JP" and len(data) > 16:
        en, z, box = int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:8], "big"), data[8:]
        parts = jumbf.setdefault(en, {})
        if parts:  # continuation segments repeat the superbox header (LBox, TBox[, XLBox])
            box = box[16:] if box[:4] == b"\x00\x00\x00\x01" else box[8:]
        if sum(map(len, parts.values())) + len(box) <= MAX_BLOCK:
            parts[z] = box


def _parse_dqt(data: bytes, out: dict) -> None:
    i = 0
    while i < len(data):
        pq, tq = data[i] >> 4, data[i] & 15
        size = 128 if pq else 64
        if pq > 1 or i + 1 + size > len(data):
            raise Bad("malformed quantisation table segment")
        body = data[i + 1:i + 1 + size]
        vals = list(body) if not pq else [int.from_bytes(body[2 * k:2 * k + 2], "big") for k in range(64)]
        natural = [0] * 64
        for k, pos in enumerate(_ZIGZAG):
            natural[pos] = vals[k]
        out[str(tq)] = natural
        i += 1 + size


def _walk_png(r: _Reader, raw: dict) -> None:
    if r.read(8) != _PNG_SIG:
        raise Bad("no PNG signature")
    for _ in range(MAX_STEPS):
        hdr = r.read(8)
        if len(hdr) < 8:
            raise Bad("file ends before the IEND chunk")
        n, ctype = int.from_bytes(hdr[:4], "big"), hdr[4:8]
        name = ctype.decode("latin-1")
        if n > 0x7FFFFFFF or r.tell() + n + 4 > r.size:
            raise Bad(f"{name!r} chunk runs past the end of the file")
        if ctype == b"IEND":
            return
        if ctype not in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"caBX"):
            r.skip(n + 4)
            continue
        if n > MAX_BLOCK:
            raise Bad(f"{name} chunk of {n} bytes is over the {MAX_BLOCK >> 20} MiB cap")
        data, crc = r.read(n), r.read(4)
        if zlib.crc32(ctype + data) != int.from_bytes(crc, "big"):
            raw["errors"].append(f"PNG {name} chunk: CRC mismatch (read anyway)")
        if ctype == b"eXIf":
            if raw["exif"] is None:
                raw["exif"], raw["exif_source"] = data, "PNG eXIf"
        elif ctype == b"caBX":
            if raw["c2pa"] is None:
                raw["c2pa"], raw["c2pa_where"] = data, "PNG caBX chunk"
        else:
            try:
                key, text = _png_text(ctype, data)
            except Bad as exc:  # one bad text chunk: note it and keep walking
                raw["errors"].append(f"PNG {name} chunk: {exc}")
                continue
            if key == "XML:com.adobe.xmp":
                raw["xmp"] = raw["xmp"] or text
            else:
                raw["texts"].append((f"PNG {name}", key, text))
    raise Bad(f"more than {MAX_STEPS} chunks")


def _png_text(ctype: bytes, data: bytes) -> tuple[str, str]:
    key, sep, rest = data.partition(b"\x00")
    if not sep or not key:
        raise Bad(f"{ctype.decode()} chunk without a keyword")
    keyword = key[:79].decode("latin-1")
    if ctype == b"tEXt":
        return keyword, rest[:MAX_TEXT].decode("latin-1")
    if ctype == b"zTXt":
        return keyword, _inflate(rest[1:]).decode("latin-1")
    if len(rest) < 2:
        raise Bad("iTXt chunk too short")
    compressed, rest = rest[0], rest[2:]
    _, _, rest = rest.partition(b"\x00")  # language tag
    _, _, text = rest.partition(b"\x00")  # translated keyword
    return keyword, (_inflate(text) if compressed else text[:MAX_TEXT]).decode("utf-8", "replace")


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompressobj().decompress(data, MAX_TEXT)
    except zlib.error as exc:
        raise Bad(f"compressed text chunk cannot be inflated ({exc})") from None


def _walk_riff(r: _Reader, raw: dict) -> None:
    head = r.read(12)
    if len(head) < 12 or head[:4] != b"RIFF":
        raise Bad("no RIFF header")
    end = min(8 + int.from_bytes(head[4:8], "little"), r.size)
    for _ in range(MAX_STEPS):
        if r.tell() + 8 > end:
            return
        hdr = r.read(8)
        fourcc, n = hdr[:4], int.from_bytes(hdr[4:8], "little")
        if r.tell() + n > end:
            raise Bad(f"{fourcc!r} chunk runs past the end of the file")
        if fourcc not in (b"EXIF", b"XMP ", b"C2PA"):
            r.skip(n + (n & 1))
            continue
        if n > MAX_BLOCK:
            raise Bad(f"{fourcc.decode('latin-1')} chunk of {n} bytes is over the cap")
        data = r.read(n)
        r.skip(n & 1)
        if fourcc == b"EXIF" and raw["exif"] is None:
            raw["exif"], raw["exif_source"] = data, "WebP EXIF chunk"
        elif fourcc == b"XMP " and raw["xmp"] is None:
            raw["xmp"] = data.decode("utf-8", "replace")
        elif fourcc == b"C2PA" and raw["c2pa"] is None:
            raw["c2pa"], raw["c2pa_where"] = data, "WebP/RIFF C2PA chunk"


def _scan_head(r: _Reader, raw: dict) -> None:
    """Containers that are not walked (TIFF, HEIF/AVIF, GIF, ...): search the head for XMP/C2PA."""
    data = r.read(min(SCAN_BYTES, max(r.size, 0)))
    i = data.find(b"<x:xmpmeta")
    j = data.find(b"</x:xmpmeta>", i)
    if i >= 0 and j > i:
        raw["xmp"] = data[i:j + 12].decode("utf-8", "replace")
    k = data.find(b"jumdc2pa")
    if k >= 8 and data[k - 8:k - 4] != b"jumb":
        k = data.find(b"jumdc2pa", k + 1)
    if k >= 12:
        start = k - 12
        lbox = int.from_bytes(data[start:start + 4], "big")
        raw["c2pa"] = data[start:start + lbox] if 16 <= lbox <= MAX_BLOCK else data[start:start + MAX_BLOCK]
        raw["c2pa_where"] = "JUMBF found by a byte scan of the file head"


def _is_c2pa(blob: bytes) -> bool:
    return b"jumb" in blob and (b"c2pa" + _C2PA_UUID_TAIL in blob or b"c2pa\x00" in blob)

