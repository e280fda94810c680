"""EXIF, XMP and C2PA records, and the JPEG quality estimate from the quantisation tables."""
from __future__ import annotations

import html
import re
import warnings
from typing import Any

import numpy as np

from .common import MAX_BLOCK, MAX_TEXT, Bad, cap, clean

# ------------------------------------------------------------------------------------------
# EXIF and XMP

_EXIF_KEEP = {0x010F: "make", 0x0110: "model", 0x0131: "software"}
_EXIF_IFD_KEEP = {0x9003: "datetime_original", 0xA434: "lens_model"}
_WITHHELD = {0x8825: "GPSInfo", 0x013B: "Artist", 0x8298: "Copyright", 0x9C9D: "XPAuthor",
             0xA430: "CameraOwnerName", 0xA431: "BodySerialNumber", 0xA435: "LensSerialNumber",
             0xA420: "ImageUniqueID", 0x927C: "MakerNote"}


def exif_record(raw: dict, path, fmt, meta_present, notes: list) -> tuple[dict, list, list]:
    from PIL import Image

    ex = None
    with warnings.catch_warnings():  # Pillow warns about corrupt EXIF; the record notes it instead
        warnings.simplefilter("ignore")
        if raw["exif"] is not None:
            ex = Image.Exif()
            ex.load(raw["exif"])
        elif path and fmt in ("TIFF", "HEIF", "AVIF", "GIF"):
            with Image.open(path, formats=[fmt]) as im:
                ex = im.getexif()
    if ex is None or (not len(ex) and raw["exif"] is None):
        if meta_present and not path:
            notes.append("EXIF present, but there is no file to read its tags from")
        return {"present": bool(meta_present) or raw["exif"] is not None}, [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ifd0 = dict(ex)
        try:
            sub = dict(ex.get_ifd(0x8769))
        except Exception:  # a broken Exif sub-IFD: the main tags still count
            sub = {}
    rec: dict[str, Any] = {"present": True, "source": raw["exif_source"] or "Pillow"}
    for table, keep in ((ifd0, _EXIF_KEEP), (sub, _EXIF_IFD_KEEP)):
        for tag, name in keep.items():
            val = _tag_text(table.get(tag))
            if val:
                rec[name] = val
    px, py = sub.get(0xA002), sub.get(0xA003)
    if isinstance(px, int) and isinstance(py, int) and px > 0 and py > 0:
        rec["pixel_dimensions"] = [px, py]
    withheld = [name for tag, name in _WITHHELD.items() if tag in ifd0 or tag in sub]
    if withheld:
        rec["withheld"] = withheld
    texts = []
    for label, val in (("UserComment", _user_comment(sub.get(0x9286))),
                       ("ImageDescription", _user_comment(ifd0.get(0x010E))),
                       ("XPComment", _xp_text(ifd0.get(0x9C9C)))):
        if val:
            texts.append((f"EXIF {label}", label, val))
    return rec, texts, [rec["software"]] if rec.get("software") else []


def _tag_text(val) -> str | None:
    if isinstance(val, bytes):
        val = val.decode("utf-8", "replace")
    return (clean(val) or None) if isinstance(val, str) else None


def _user_comment(val) -> str | None:
    """EXIF UserComment (8-byte charset prefix) or other text tag, newlines kept."""
    if isinstance(val, str):
        return val[:MAX_TEXT].strip("\x00 ") or None
    if not isinstance(val, bytes) or not val:
        return None
    if val[:8] not in (b"ASCII\x00\x00\x00", b"UNICODE\x00", b"JIS\x00\x00\x00\x00\x00", b"\x00" * 8):
        return val[:MAX_TEXT].decode("utf-8", "replace").strip("\x00 ") or None
    prefix, body = val[:8], val[8:MAX_TEXT]
    if prefix.startswith(b"UNICODE"):
        big = body[0:1] == b"\x00" if body else True  # UTF-16 of mostly ASCII text: zero high bytes
        text = body.decode("utf-16-be" if big else "utf-16-le", "replace")
    else:
        text = body.decode("utf-8", "replace")
    return text.strip("\x00 ") or None


def _xp_text(val) -> str | None:
    if isinstance(val, tuple):
        val = bytes(v & 0xFF for v in val)
    return (val.decode("utf-16-le", "replace").strip("\x00 ") or None) if isinstance(val, bytes) else None


def _xmp_values(xmp: str, name: str, limit: int = 20) -> list[str]:
    """Values of a property (any prefix) written as attribute, element, rdf:resource or rdf:li."""
    vals = [m.group(2) for m in re.finditer(rf'[\s<][\w.-]+:{name}\s*=\s*(["\'])(.*?)\1', xmp, re.S)]
    for m in re.finditer(rf"<([\w.-]+:{name})\b([^>]*?)(/?)>", xmp):
        if len(vals) >= limit:
            break
        res = re.search(r'rdf:resource\s*=\s*(["\'])(.*?)\1', m.group(2))
        if res:
            vals.append(res.group(2))
        if m.group(3):
            continue
        end = xmp.find(f"</{m.group(1)}>", m.end(), m.end() + (1 << 16))
        inner = xmp[m.end():end] if end >= 0 else ""
        items = re.findall(r"<rdf:li\b[^>]*>(.*?)</rdf:li>", inner, re.S) or [inner]
        vals += [re.sub(r"<[^>]+>", "", t) for t in items]
    out = [html.unescape(v).strip() for v in vals]
    return [v for v in dict.fromkeys(out) if v][:limit]


def xmp_record(xmp: str | None) -> tuple[dict, list]:
    if not xmp:
        return {"present": False}, []
    xmp = xmp[:MAX_TEXT]
    first = lambda name: (_xmp_values(xmp, name) or [None])[0]  # noqa: E731
    rec: dict[str, Any] = {"present": True, "creator_tool": clean(first("CreatorTool"))}
    codes = [v.rstrip("/").rsplit("/", 1)[-1] for v in _xmp_values(xmp, "DigitalSourceType")]
    rec["digital_source_type"] = [clean(c, 80) for c in codes] or None
    rec["software_agents"] = [clean(v) for v in _xmp_values(xmp, "softwareAgent")] or None
    ps = {k: clean(v) for k in ("ColorMode", "ICCProfile", "DateCreated", "History")
          for v in [(re.search(rf'photoshop:{k}\s*=\s*"([^"]*)"', xmp) or [None, None])[1]] if v}
    rec["photoshop"] = ps or ({"namespace": True} if "ns.adobe.com/photoshop/" in xmp else None)
    rec["ai_system"] = clean(first("AISystemUsed"))
    rec["ai_prompt"] = cap(first("AIPromptInformation"))
    rec["c2pa_provenance"] = clean(first("provenance"), 500)
    texts = [("XMP " + n, n, v) for n in ("UserComment", "description", "ImageDescription")
             for v in _xmp_values(xmp, n, 4)]
    return {k: v for k, v in rec.items() if v is not None}, texts


# ------------------------------------------------------------------------------------------
# C2PA


def c2pa_record(blob: bytes, where: str) -> dict:
    blob = blob[:MAX_BLOCK]
    rec: dict[str, Any] = {"present": True, "where": where, "validated": False, "bytes": len(blob),
                           "n_manifests": len(re.findall(rb"jumdc2ma", blob))}
    gens = [_cbor_text(blob, m.end()) for m in re.finditer(rb"oclaim_generator(?!_)", blob)]
    gens += [m.group(1).decode("utf-8", "replace")
             for m in re.finditer(rb'"claim_generator"\s*:\s*"([^"]{1,200})"', blob)]
    infos = []
    for m in re.finditer(rb"tclaim_generator_info", blob):
        n = blob.find(b"dname", m.end(), m.end() + 256)
        infos.append(_cbor_text(blob, n + 5) if n >= 0 else None)
    agents = []
    for m in re.finditer(rb"msoftwareAgent", blob):
        val = _cbor_text(blob, m.end())
        if val is None:
            n = blob.find(b"dname", m.end(), m.end() + 128)
            val = _cbor_text(blob, n + 5) if n >= 0 else None
        agents.append(val)
    labels = sorted({m.group(1).decode() for m in re.finditer(rb"(c2pa\.[A-Za-z0-9_.\-]{1,80})\x00", blob)})
    actions = [_cbor_text(blob, m.end()) for m in re.finditer(rb"faction", blob)]
    actions += [m.group(1).decode("utf-8", "replace") for m in re.finditer(rb'"action"\s*:\s*"([^"]{1,100})"', blob)]
    uris = [_cbor_text(blob, m.end()) for m in re.finditer(rb"qdigitalSourceType", blob)]
    uris += [m.group(1).decode("utf-8", "replace")
             for m in re.finditer(rb'"digitalSourceType"\s*:\s*"([^"]{1,300})"', blob)]
    codes = [u.rstrip("/").rsplit("/", 1)[-1] for u in uris if u]
    if not codes:  # not CBOR or JSON we can read: fall back to the closed IPTC vocabulary
        codes = [m.group(1).decode() for m in re.finditer(_IPTC_CODES, blob)]
    for key, vals in (("claim_generator", gens), ("claim_generator_info", infos), ("software_agents", agents),
                      ("digital_source_type", codes), ("actions", actions), ("labels", labels)):
        vals = [clean(v) for v in dict.fromkeys(vals) if v][:40]
        if vals:
            rec[key] = vals[0] if key == "claim_generator" else vals
    return rec


_IPTC_CODES = re.compile(rb"digitalsourcetype/(" + b"|".join(sorted((
    b"digitalCapture", b"computationalCapture", b"negativeFilm", b"positiveFilm", b"print", b"humanEdits",
    b"minorHumanEdits", b"compositeCapture", b"algorithmicallyEnhanced", b"dataDrivenMedia", b"digitalArt",
    b"virtualRecording", b"compositeSynthetic", b"trainedAlgorithmicMedia", b"algorithmicMedia",
    b"screenCapture", b"compositeWithTrainedAlgorithmicMedia", b"digitalCreation"), key=len, reverse=True)) + b")")


def _cbor_text(b: bytes, i: int) -> str | None:
    """The CBOR text string starting at ``b[i]``, or None."""
    if i < 0 or i >= len(b) or b[i] >> 5 != 3:
        return None
    ai = b[i] & 31
    if ai < 24:
        n, j = ai, i + 1
    elif ai in (24, 25, 26):
        w = 1 << (ai - 24)
        n, j = int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w
    else:
        return None
    return b[j:j + n].decode("utf-8", "replace") if n <= 4096 and j + n <= len(b) else None


# ------------------------------------------------------------------------------------------
# JPEG quality

# ITU-T T.81 Annex K tables, natural (row-major) order
_STD_LUM = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
                     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
                     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
_STD_CHR = np.full(64, 99)
_STD_CHR[[0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 24, 25]] = [17, 18, 24, 47, 18, 21, 26, 66,
                                                             24, 26, 56, 47, 66]


def estimate_jpeg_quality(qtables) -> dict | None:
    """IJG quality (1-100) whose scaled Annex K tables best match ``qtables`` ({id: 64 values,
    natural order}); ``ijg_standard`` is True when they match exactly. None without a table 0."""
    tabs = {int(k): np.asarray(v, dtype=np.int64) for k, v in (qtables or {}).items()}
    if 0 not in tabs or tabs[0].size != 64 or any(t.size != 64 for t in tabs.values()):
        return None
    lum, chrom = tabs[0], tabs.get(1)
    if (lum <= 0).any() or (chrom is not None and (chrom <= 0).any()):
        raise Bad("quantisation table with a zero step")
    clamp = 255 if max(int(t.max()) for t in tabs.values()) <= 255 else 32767
    L, C = _ijg_tables(clamp)
    err = np.abs(np.log(lum) - np.log(L)).mean(axis=1)
    exact = (L == lum).all(axis=1)
    if chrom is not None:
        err = (err + np.abs(np.log(chrom) - np.log(C)).mean(axis=1)) / 2
        exact &= (C == chrom).all(axis=1)
    extras_ok = all(any((t == u).all() for u in (lum, chrom) if u is not None)
                    for k, t in tabs.items() if k > 1)
    if exact.any() and extras_ok:
        qs = [int(q) + 1 for q in np.flatnonzero(exact)]
        out = {"estimate": max(qs), "ijg_standard": True, "tables": "ijg"}
        if len(qs) > 1:
            out["candidates"] = qs
    else:
        best = int(np.argmin(err))
        out = {"estimate": best + 1, "ijg_standard": False, "tables": "custom"}
    out.update(mean_log_error=round(float(err[out["estimate"] - 1]), 4), n_tables=len(tabs))
    return out


def _ijg_tables(clamp: int, _cache: dict = {}) -> tuple[np.ndarray, np.ndarray]:  # noqa: B006
    if clamp not in _cache:
        q = np.arange(1, 101)
        scale = np.where(q < 50, 5000 // q, 200 - 2 * q)[:, None]
        _cache[clamp] = tuple(np.clip((base[None] * scale + 50) // 100, 1, clamp) for base in (_STD_LUM, _STD_CHR))
    return _cache[clamp]
