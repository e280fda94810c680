"""HTML for one result row of the report.

Every piece of text from the store (item ids come from file names, error messages quote them)
goes through :func:`esc`; every link is percent-encoded, then escaped. Nothing here branches on
a model name: a cell shows what the row and its files hold (an overlay, categories, per-element
scores in ``detection.json``).
"""
from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from artifacts.report.thumbs import Thumb, safe_part

MAX_CATEGORIES = 6
MAX_ELEMENTS = 4
SPARK_W, SPARK_H = 100, 22
MAX_JSON_BYTES = 32 << 20  # detection.json larger than this is not read for the report


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def href(path: str) -> str:
    """A relative URL (POSIX path) made safe for an attribute."""
    return esc(quote(path, safe="/"))


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def bar(value: float | None, threshold: float | None = None, cls: str = "") -> str:
    """A small horizontal bar for a value in [0, 1], with a tick at the threshold."""
    if value is None:
        return ""
    width = min(100.0, max(0.0, value * 100.0))
    tick = "" if threshold is None else f'<b style="left:{min(100.0, max(0.0, threshold * 100.0)):.1f}%"></b>'
    return f'<span class="bar {cls}"><i style="width:{width:.1f}%"></i>{tick}</span>'


def read_detection(item_dir: Path, files: dict) -> dict:
    """The item's ``detection.json`` (empty when absent, unreadable or too large)."""
    name = files.get("detection")
    if not safe_part(name):
        return {}
    path = item_dir / name
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def input_href(path: str, out: Path) -> str:
    """Link from ``OUT/report.html`` to an input file: relative when possible, else a file URI."""
    absolute = Path(os.path.abspath(path))
    try:
        return href(Path(os.path.relpath(absolute, os.path.abspath(out))).as_posix())
    except ValueError:  # another drive (Windows)
        return esc(absolute.as_uri())


# -- cells ----------------------------------------------------------------------------------
def thumb_cell(thumb: Thumb | None, link: str | None) -> str:
    if thumb is None:
        return '<td class="empty th"></td>'
    tip = f' title="{esc(thumb.detail)}"' if thumb.detail else ""
    note = f'<div class="note"{tip}>{esc(thumb.note)}</div>' if thumb.note else ""
    if thumb.href is None:
        return f'<td class="th">{note}</td>'
    img = f'<img src="{href(thumb.href)}" alt="" loading="lazy">'
    if link:  # link is already an escaped URL
        img = f'<a href="{link}">{img}</a>'
    return f'<td class="th">{img}{note}</td>'


def item_cell(row: dict, show_kind: bool) -> str:
    kind = f' <span class="kind">{esc(row.get("kind"))}</span>' if show_kind else ""
    title = f'key {row.get("key")}\ninput sha256 {row.get("input_sha256") or "–"}\nrun {row.get("run_id")}'
    return f'<td class="item" title="{esc(title)}">{esc(row.get("item_id"))}{kind}</td>'


def status_cell(row: dict, detection: dict) -> str:
    status = str(row.get("status"))
    text = {"ok": "ok", "not_applicable": "not applicable", "error": "error"}.get(status, status)
    detail = ""
    if status == "error":
        message = " ".join(str(row.get("error") or "unknown error").split())
        detail = f'<div class="err">{esc(message)}</div>'
    elif status == "not_applicable":
        reason = row.get("reason") or detection.get("reason") or (row.get("meta") or {}).get("reason")
        if reason:
            detail = f'<div class="why">{esc(" ".join(str(reason).split()))}</div>'
    return f'<td data-v="{esc(status)}"><span class="st {esc(status)}">{esc(text)}</span>{detail}</td>'


def score_cell(row: dict) -> str:
    score, thr = _finite(row.get("score")), _finite(row.get("threshold"))
    cls = "pos" if row.get("label") else "neg"
    value = "" if score is None else f"{score:.6f}"
    return f'<td class="num" data-v="{value}"><span class="sv">{num(score)}</span>{bar(score, thr, cls)}</td>'


def label_cell(row: dict) -> str:
    label, score, thr = row.get("label"), _finite(row.get("score")), _finite(row.get("threshold"))
    if label is None or score is None:
        return '<td data-v="-1"><span class="dim">–</span></td>'
    text = f"flagged (≥ {num(thr, 2)})" if label else f"below {num(thr, 2)}"
    return f'<td data-v="{int(bool(label))}"><span class="lab {"pos" if label else "neg"}">{text}</span></td>'


def model_cell(row: dict) -> str:
    title = f"weights {row.get('weights')}\npackage {row.get('package_version')}\nconfig " + json.dumps(
        row.get("config"), sort_keys=True, default=str)
    return (f'<td title="{esc(title)}">{esc(row.get("model"))}'
            f'<div class="dim">{esc(row.get("weights"))}</div></td>')


def categories_cell(row: dict) -> str:
    cats = {str(k): v for k, v in (row.get("categories") or {}).items() if _finite(v) is not None}
    if not cats:
        return '<td class="empty" data-v="-1"></td>'
    ranked = sorted(cats.items(), key=lambda kv: -float(kv[1]))
    lines = [f'<div class="cat"><span class="cn">{esc(k)}</span>{bar(float(v))}'
             f'<span class="cv">{float(v):.2f}</span></div>'
             for k, v in ranked[:MAX_CATEGORIES]]
    if len(ranked) > MAX_CATEGORIES:
        rest = ", ".join(f"{k} {float(v):.2f}" for k, v in ranked[MAX_CATEGORIES:])
        lines.append(f'<div class="dim" title="{esc(rest)}">+{len(ranked) - MAX_CATEGORIES} more</div>')
    return f'<td data-v="{float(ranked[0][1]):.6f}">{"".join(lines)}</td>'


def notes_cell(row: dict) -> str:
    """Claims the file makes about its origin (provenance) and the model's input warnings."""
    meta = row.get("meta") or {}
    claims = [f"declares: {c}" for c in (meta.get("provenance") or {}).get("declared_by") or []]
    warnings = [f"warning: {w}" for w in meta.get("warnings") or []]
    if not claims and not warnings:
        return '<td class="empty"></td>'
    lines = [f'<div>{esc(t)}</div>' for t in claims] + [f'<div class="dim">{esc(t)}</div>' for t in warnings]
    return f"<td>{''.join(lines)}</td>"


def sparkline(values: np.ndarray, threshold: float | None) -> str:
    """Inline SVG of a 1-D score list (max-pooled to at most SPARK_W points); dots at or above the threshold."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size > SPARK_W:
        v = np.array([np.nanmax(c) if np.isfinite(c).any() else np.nan for c in np.array_split(v, SPARK_W)])
    finite = v[np.isfinite(v)]
    unit = finite.size == 0 or (finite.min() >= 0.0 and finite.max() <= 1.0)
    lo, hi = (0.0, 1.0) if unit else (float(finite.min()), float(finite.max()))
    hi = hi if hi > lo else lo + 1.0
    w, h, m = SPARK_W, SPARK_H, v.size

    def xy(i: int, value: float) -> tuple[float, float]:
        x = (w / 2) if m == 1 else 1.5 + i * (w - 3) / (m - 1)
        return x, h - 1.5 - (value - lo) / (hi - lo) * (h - 3)

    parts, run = [], []
    for i, value in enumerate(v):
        if math.isfinite(value):
            run.append("%.1f,%.1f" % xy(i, value))
        elif run:
            parts.append(run)
            run = []
    if run:
        parts.append(run)
    svg = [f'<line class="t" x1="0" x2="{w}" y1="{xy(0, threshold)[1]:.1f}" y2="{xy(0, threshold)[1]:.1f}"/>'
           if threshold is not None and unit else ""]
    svg += [f'<polyline points="{" ".join(p)}"/>' for p in parts if len(p) > 1]
    if threshold is not None:
        svg += ['<circle cx="%.1f" cy="%.1f" r="1.8"/>' % xy(i, x) for i, x in enumerate(v)
                if math.isfinite(x) and x >= threshold]
    if m == 1 and math.isfinite(v[0]):
        svg.append('<circle class="one" cx="%.1f" cy="%.1f" r="2"/>' % xy(0, v[0]))
    return f'<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}">{"".join(svg)}</svg>'


def elements_cell(detection: dict, threshold: float | None) -> str:
    """Per-element scores from ``detection.json`` (e.g. per dMRI volume): a sparkline each."""
    elements = detection.get("elements")
    if not isinstance(elements, dict) or not elements:
        return '<td class="empty" data-v="-1"></td>'
    lines, top = [], -1.0
    for name, raw in list(elements.items())[:MAX_ELEMENTS]:
        try:
            arr = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if arr.size == 0:
            continue
        shape = "×".join(str(s) for s in arr.shape) or "1"
        series, how = arr.ravel(), ""
        if arr.ndim >= 2:
            with np.errstate(all="ignore"):
                flat = arr.reshape(arr.shape[0], -1)
                series = np.array([np.nanmax(r) if np.isfinite(r).any() else np.nan for r in flat])
            how = f", max over the other axes of {shape}"
        finite = np.isfinite(series)
        if not finite.any():
            lines.append(f'<div class="el"><span class="cn">{esc(name)}</span> '
                         '<span class="dim">no finite values</span></div>')
            continue
        peak = int(np.nanargmax(series))
        top = max(top, float(series[peak]))
        title = (f"{name}: {series.size} values{how}; min {np.nanmin(series):.3f}, "
                 f"max {series[peak]:.3f} at index {peak}"
                 + ("" if series.size > 40 else "\n" + " ".join(f"{x:.2f}" for x in series)))
        lines.append(f'<div class="el" title="{esc(title)}"><span class="cn">{esc(name)}</span> '
                     f'{sparkline(series, threshold)}'
                     f'<span class="dim">n={series.size} max {series[peak]:.2f} @{peak}</span></div>')
    if len(elements) > MAX_ELEMENTS:
        lines.append(f'<div class="dim">+{len(elements) - MAX_ELEMENTS} more in detection.json</div>')
    return f'<td data-v="{top:.6f}">{"".join(lines)}</td>'


def files_cell(row: dict, item_dir: Path) -> str:
    files, key = row.get("files") or {}, row.get("key")
    links = []
    for role, name in sorted(files.items()):
        if not (safe_part(key) and safe_part(name)):
            links.append(f'<s title="unsafe file name in the store">{esc(role)}</s>')
        elif (item_dir / name).is_file():
            links.append(f'<a href="{href(f"items/{key}/{name}")}">{esc(role)}</a>')
        else:
            links.append(f'<s title="file missing">{esc(role)}</s>')
    return f'<td class="links">{" ".join(links)}</td>'


def input_cell(row: dict, out: Path, states: dict[str, str | None]) -> str:
    links = []
    for role, info in (row.get("inputs") or {}).items():
        path = str((info or {}).get("path", ""))
        state = states.get(role)
        if state == "input file not found" or not path:
            links.append(f'<span class="miss" title="{esc(path)}">{esc(role)}: not found</span>')
            continue
        flag = f' <span class="miss">({esc(state)})</span>' if state else ""
        links.append(f'<a href="{input_href(path, out)}" title="{esc(path)}">{esc(role)}</a>{flag}')
    return f'<td class="links">{" ".join(links)}</td>'
