"""What the file itself says about where an image came from, kept apart from the content score.

:func:`provenance` builds a JSON-serialisable record from an :class:`~artifacts.io.ImageData`
(``meta`` from :func:`~artifacts.io.load_image`, plus the file at ``.path`` when there is one);
:func:`input_warnings` turns it into one-line warnings when the input lies outside what a
model saw. Nothing here changes a score: a detector reports the record beside its result.

Record keys
-----------
``format``, ``file_size``, ``size`` ``[w, h]`` (stored grid), ``bit_depth`` (stored bits per
sample), ``n_frames``;
``jpeg_quality``
    None unless JPEG, else ``{"estimate": 1-100, "ijg_standard": bool, "tables": "ijg" |
    "custom", "mean_log_error", "n_tables", "subsampling", "progressive"}``: the inverse of the
    IJG/libjpeg quality scaling of the Annex K tables. ``ijg_standard`` means the tables are
    exactly that scaling (libjpeg, Pillow, OpenCV, most web tools); cameras, Photoshop and some
    encoders use their own tables, for which ``estimate`` is only the nearest IJG quality.
``exif``
    ``{"present", "make", "model", "software", "lens_model", "datetime_original",
    "pixel_dimensions", "withheld"}``. GPS, serial numbers, owner/artist/copyright names and the
    maker note are never copied; ``withheld`` names those that were present.
``xmp``
    ``{"present", "creator_tool", "digital_source_type" (IPTC codes such as
    "trainedAlgorithmicMedia"), "software_agents", "photoshop", "ai_system", "ai_prompt",
    "extended", "c2pa_provenance"}``.
``generation``
    Settings that generators write into PNG text chunks, EXIF UserComment/ImageDescription,
    JPEG comments or XMP: ``{"found", "tools", "sources"}`` plus one entry per recognised tool:
    ``a1111`` (Stable Diffusion WebUI ``parameters``: prompt, negative_prompt, steps, sampler,
    cfg_scale, seed, size, model, model_hash, other), ``comfyui`` (``prompt`` / ``workflow``
    graphs: node class-type counts, checkpoints, LoRAs, sampler settings, text prompts),
    ``novelai`` (``Software`` "NovelAI" + ``Comment`` JSON), ``invokeai``
    (``invokeai_metadata`` / ``sd-metadata`` / ``Dream``), ``fooocus`` (JSON ``parameters``),
    ``midjourney`` (``Description`` with a Job ID) and ``generic`` (keys or software names that
    look like a generator but no parser applies). Prompts are cut to 1000 characters.
``c2pa``
    ``{"present", "where", "validated": False, "claim_generator", "claim_generator_info",
    "software_agents", "digital_source_type", "actions", "labels", "n_manifests"}`` read as
    plain text from the JUMBF bytes (JPEG APP11, PNG ``caBX``, WebP ``C2PA``, a byte scan in
    other containers). Signatures are *not* verified: anyone can write these bytes.
``declared_generated`` / ``declared_by``
    whether the metadata itself declares a generator (a recognised tool, an AI IPTC source type
    in XMP or C2PA, a generator named as software) and where.
``resampling``
    ``artifacts.detectors.synthetic.spectral.resampling_signs(pixels)``: ``{"resampled", "strength",
    "period", "method"}`` (None when unavailable);
    ``resize_hints``: sizes recorded in the metadata that differ from the pixel grid.
``notes``, ``errors``
    what was skipped or capped, and what was malformed (never raised).

Files are walked structure by structure (JPEG markers up to the image data, PNG and RIFF
chunks, seeking over pixel data); at most 16 MiB of metadata is read, one block at most 8 MiB,
text inflated to at most 4 MiB, and other containers are scanned in their first 8 MiB.

Modules: :mod:`.containers` (bounded reading and walking of the file), :mod:`.metadata` (EXIF,
XMP, C2PA, JPEG quality), :mod:`.generation` (generators' settings), :mod:`.common` (caps and
text cleaning); this module assembles the record and the warnings.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .common import SHORT_CAP, clean
from .containers import empty_raw, read_file
from .generation import generation_record, parse_a1111
from .metadata import c2pa_record, estimate_jpeg_quality, exif_record, xmp_record

__all__ = ["estimate_jpeg_quality", "input_warnings", "parse_a1111", "provenance"]

_FORMAT_LABEL = {"WEBP": "WebP", "JPEG": "JPEG", "PNG": "PNG", "TIFF": "TIFF", "GIF": "GIF",
                 "BMP": "BMP", "AVIF": "AVIF", "HEIF": "HEIF"}
_KNOWN_FAILURES = {
    "WEBP": "users of SAFE report failures on WebP",
    "JPEG": "users of SAFE report failures on JPEG input to models trained on PNG",
    "AVIF": "lossy AVIF compression leaves traces the model never saw",
    "HEIF": "lossy HEIF compression leaves traces the model never saw",
}
_AI_SOURCE_TYPES = {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia",
                    "algorithmicMedia", "compositeSynthetic"}


def provenance(image) -> dict:
    """The provenance record of an :class:`~artifacts.io.ImageData` (see the module docstring)."""
    meta = dict(getattr(image, "meta", None) or {})
    pixels = image.pixels
    path = getattr(image, "path", None)
    notes: list[str] = []
    errors: list[str] = []
    rec: dict[str, Any] = {
        "format": meta.get("format"),
        "file_size": meta.get("file_size"),
        "size": list(meta.get("size") or [int(pixels.shape[1]), int(pixels.shape[0])]),
        "bit_depth": meta.get("bit_depth") or (16 if pixels.dtype == np.uint16 else 8),
        "n_frames": meta.get("n_frames"),
    }
    raw = read_file(path, rec, notes, errors) if path else empty_raw()
    if not path:
        notes.append("no file: only the decoder's metadata was available")
        for key, val in (meta.get("png_text") or {}).items():
            raw["texts"].append(("PNG text", str(key), str(val)))
        if meta.get("png_text"):
            notes.append("PNG text values were cut to 1000 characters by the reader")

    rec["jpeg_quality"] = None
    if rec["format"] == "JPEG":
        jpeg = meta.get("jpeg") or {}
        rec["jpeg_quality"] = _guard(errors, "JPEG quality", estimate_jpeg_quality,
                                     jpeg.get("qtables") or raw["dqt"])
        if rec["jpeg_quality"] is not None and jpeg:
            rec["jpeg_quality"].update(subsampling=jpeg.get("subsampling"),
                                       progressive=jpeg.get("progressive"))

    rec["exif"], exif_texts, software = _guard(errors, "EXIF", exif_record, raw, path, rec["format"],
                                               meta.get("exif"), notes) or ({"present": bool(meta.get("exif"))}, [], [])
    software = list(software)
    rec["xmp"], xmp_texts = _guard(errors, "XMP", xmp_record, raw["xmp"]) or ({"present": True}, [])
    if raw["xmp_extended"]:
        rec["xmp"]["extended"] = True
    software += [s for s in [rec["xmp"].get("creator_tool")] + (rec["xmp"].get("software_agents") or []) if s]
    software += [v for _, k, v in raw["texts"] if k.lower() == "software"]
    texts = raw["texts"] + exif_texts + xmp_texts
    rec["generation"] = _guard(errors, "generation settings", generation_record, texts, software) or {"found": False}
    rec["c2pa"] = (_guard(errors, "C2PA", c2pa_record, raw["c2pa"], raw["c2pa_where"]) if raw["c2pa"] else None) \
        or {"present": False}
    if rec["xmp"].get("c2pa_provenance"):
        rec["c2pa"]["remote_manifest"] = rec["xmp"]["c2pa_provenance"]
    _declared(rec, software)
    rec["resampling"] = _resampling(pixels, notes, errors)
    rec["resize_hints"] = _resize_hints(rec)
    rec["notes"] = notes
    rec["errors"] = errors
    return _jsonable(rec)


def input_warnings(record: dict, trained_on: dict) -> list[str]:
    """One-line warnings when the input lies outside what a model saw (empty when none apply).

    ``trained_on`` (all keys optional): ``formats`` (e.g. ``["PNG", "JPEG"]``), ``min_side``,
    ``max_side``, ``jpeg_quality_range`` ``[lo, hi]``, ``bit_depths`` (default ``[8]``), ``note``.
    """
    trained_on = trained_on or {}
    out: list[str] = []
    fmt = (record.get("format") or "").upper() or None
    label = _FORMAT_LABEL.get(fmt or "", fmt)
    formats = [str(f).upper() for f in trained_on.get("formats") or []]
    formats = ["JPEG" if f in ("JPG", "MPO") else f for f in formats]
    if fmt and formats and fmt not in formats:
        seen = ", ".join(_FORMAT_LABEL.get(f, f) for f in formats)
        issue = _KNOWN_FAILURES.get(fmt)
        out.append(f"{label} input: the model never saw {label}, only {seen}" + (f" ({issue})" if issue else ""))
    jq = record.get("jpeg_quality") or {}
    rng = trained_on.get("jpeg_quality_range")
    if fmt == "JPEG" and jq.get("estimate") is not None and rng and (not formats or "JPEG" in formats):
        q, (lo, hi) = jq["estimate"], rng
        how = "" if jq.get("ijg_standard") else " (estimated from non-standard tables)"
        if q < lo:
            out.append(f"JPEG quality {q}{how} is below the range the model was trained on ({lo}-{hi})")
        elif q > hi:
            out.append(f"JPEG quality {q}{how} is above the range the model was trained on ({lo}-{hi})")
    size = record.get("size") or []
    if len(size) == 2:
        w, h = size
        if trained_on.get("min_side") and min(w, h) < trained_on["min_side"]:
            out.append(f"image {w}x{h} is smaller than the {trained_on['min_side']} px crop the model expects")
        if trained_on.get("max_side") and max(w, h) > trained_on["max_side"]:
            out.append(f"image {w}x{h} is larger than the {trained_on['max_side']} px the model was trained on")
    bits = record.get("bit_depth")
    if isinstance(bits, int) and bits > 8 and bits not in (trained_on.get("bit_depths") or [8]):
        out.append(f"{bits}-bit image reduced to 8 bits (the model saw 8-bit images)")
    if isinstance(record.get("n_frames"), int) and record["n_frames"] > 1:
        out.append(f"{record['n_frames']} frames in the file: only the first is analysed")
    res = record.get("resampling")
    if isinstance(res, dict) and res.get("resampled"):
        period, strength = res.get("period"), res.get("strength")
        detail = ("periodic resampling traces" + (f", period {period:.3g} px" if _number(period) else "")
                  + (f", strength {strength:.2f}" if _number(strength) else ""))
        out.append(f"signs of resizing: {detail} (resampling weakens the traces detectors rely on)")
    for hint in record.get("resize_hints") or []:
        out.append(f"signs of resizing: {hint}")
    if out and trained_on.get("note"):
        out.append(f"model note: {trained_on['note']}")
    return out


# ------------------------------------------------------------------------------------------
# Record assembly


def _declared(rec: dict, software: list) -> None:
    by = []
    gen = rec["generation"]
    by += [f"generation settings: {t} ({gen[t].get('source')})" for t in gen.get("tools", []) if t != "generic"]
    generic = gen.get("generic") or {}
    if generic.get("software"):
        by.append("software names a generator: " + ", ".join(generic["software"]))
    if generic.get("prompt") and any(k in generic for k in ("steps", "seed", "sampler", "cfg_scale")):
        by.append(f"generation settings: prompt with sampling settings ({generic.get('source')})")
    by += [f"XMP DigitalSourceType {c}" for c in rec["xmp"].get("digital_source_type") or [] if c in _AI_SOURCE_TYPES]
    by += [f"C2PA digitalSourceType {c} (not validated)" for c in rec["c2pa"].get("digital_source_type") or []
           if c in _AI_SOURCE_TYPES]
    if rec["xmp"].get("ai_system"):
        by.append(f"XMP AISystemUsed {rec['xmp']['ai_system']}")
    rec["declared_generated"] = bool(by)
    rec["declared_by"] = by


def _resampling(pixels: np.ndarray, notes: list, errors: list):
    try:
        from artifacts.detectors.synthetic.spectral import resampling_signs
    except ImportError:
        notes.append("resampling analysis unavailable (artifacts.detectors.synthetic.spectral.resampling_signs)")
        return None
    try:
        return resampling_signs(pixels)
    except Exception as exc:  # the analysis must not break the record
        errors.append(clean(f"resampling analysis failed: {type(exc).__name__}: {exc}"))
        return None


def _resize_hints(rec: dict) -> list[str]:
    size = rec.get("size") or []
    if len(size) != 2:
        return []
    grids = ({tuple(size), tuple(size[::-1])})
    hints = []
    dims = rec["exif"].get("pixel_dimensions")
    if dims and tuple(dims) not in grids:
        hints.append(f"EXIF records {dims[0]}x{dims[1]} pixels, the image is {size[0]}x{size[1]}")
    a = rec["generation"].get("a1111") or {}
    if a.get("size") and tuple(a["size"]) not in grids:
        up = a.get("other", {}).get("Hires upscale")
        hints.append(f"generation settings say {a['size'][0]}x{a['size'][1]}, the image is {size[0]}x{size[1]}"
                     + (f" (hires upscale {up})" if up else ""))
    return hints


def _number(val) -> bool:
    return isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val)


def _guard(errors: list, what: str, fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # malformed metadata is recorded, never raised
        errors.append(clean(f"{what}: {type(exc).__name__}: {exc}"))
        return None


def _jsonable(obj, depth: int = 0):
    if depth > 20:
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), depth + 1) if obj.size <= 4096 else f"<array {obj.shape}>"
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, bytes):
        return obj[:SHORT_CAP].decode("utf-8", "replace")
    return clean(obj)
