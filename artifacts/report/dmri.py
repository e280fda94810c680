"""What a diffusion-MRI QC run writes beside the shared store and report.

Per series (rendered by the engine's writer into ``OUT/items/<key>/``, see
:func:`series_files`):

* ``qc.png`` (also ``overlay.png``, the run report's picture): the slice-by-volume heat grid
  (columns = volumes, rows = slices, top slice up; flagged volumes marked in cyan under the
  grid) above a montage of the worst (volume, slice) pairs, each shown beside the median of
  the same slice over the other volumes of its shell, on one grey scale;
* ``qc.html``: the picture, a per-artifact table, a per-volume table and what is known of the
  series (shape, voxel size, b-values; the names of sidecar fields withheld, never their values);
* ``volumes.csv``: one row per volume, first columns as 3D-QCNet's result file
  (``FilePath, Volume, Predicted Class, Probability``; class ``good``/``bad`` at the threshold),
  then b-value, b-vector, worst slice and the evidence of each artifact kind.

Per run: :func:`write_volume_table` joins the series' tables into ``OUT/dmri_volumes.csv`` and
:func:`write_clean` writes, for each series, a copy without its flagged volumes and with the
gradient table cut to match (``OUT/clean/``); inputs are never modified.
"""
from __future__ import annotations

import csv
import html
import io
import json
import os
from pathlib import Path

import numpy as np

VOLUME_COLUMNS = ("FilePath", "Volume", "Predicted Class", "Probability", "bval", "bvec_x", "bvec_y", "bvec_z",
                  "worst_slice", "worst_slice_score")
CELL = (10, 14)  # (height, width) of one grid cell in pixels
WORST = 6  # (volume, slice) pairs in the montage
TABLE_FILE = "dmri_volumes.csv"
CLEAN_DIR = "clean"


def _kinds(det) -> list[str]:
    return [k.split("/", 1)[1] for k in det.elements if k.startswith("volume/")]


def volume_rows(det, series) -> list[dict]:
    """One dict per volume (the columns of :data:`VOLUME_COLUMNS` plus one per artifact kind)."""
    vol, sl = det.elements["volume"], det.elements["slice"]
    rows = []
    for v in range(series.n_volumes):
        z = int(np.argmax(sl[v]))
        row = {"FilePath": series.path or "<arrays>", "Volume": v,
               "Predicted Class": "bad" if vol[v] >= det.threshold else "good", "Probability": round(float(vol[v]), 6),
               "bval": round(float(series.bvals[v]), 3),
               **{f"bvec_{a}": round(float(series.bvecs[v, i]), 6) for i, a in enumerate("xyz")},
               "worst_slice": z, "worst_slice_score": round(float(sl[v, z]), 6)}
        row.update({k: round(float(det.elements[f"volume/{k}"][v]), 6) for k in _kinds(det)})
        rows.append(row)
    return rows


def _csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue().encode()


def _display(sl: np.ndarray, scale: float) -> np.ndarray:
    """A slice (X, Y) as a display image: rows = second axis flipped (anterior/superior up)."""
    return np.clip(np.rot90(sl) / scale, 0.0, 1.0)


def _grid(det) -> np.ndarray:
    """The slice-by-volume heat grid as RGB, flagged volumes marked with a cyan band below."""
    from artifacts.viz import colorize

    sl = det.elements["slice"]  # (N, Z)
    n, nz = sl.shape
    heat = colorize(np.kron(sl.T[::-1], np.ones(CELL)))  # top slice up
    band = np.full((6, heat.shape[1], 3), 255, np.uint8)
    for v in np.flatnonzero(det.elements["volume"] >= det.threshold):
        band[:, v * CELL[1]:(v + 1) * CELL[1]] = (0, 200, 255)
    lines = np.full((heat.shape[0], heat.shape[1], 3), 0, np.uint8)
    lines[:, ::CELL[1]] = 60  # faint column separators
    grid = np.maximum(heat, lines)
    return np.concatenate([grid, np.full((2, grid.shape[1], 3), 255, np.uint8), band], axis=0)


def qc_picture(det, series) -> np.ndarray:
    """The heat grid above the montage of the worst (volume, slice) pairs (RGB uint8)."""
    from artifacts.viz import contact_sheet

    sl = det.elements["slice"]
    n, nz = sl.shape
    rows = [[_grid(det)]]
    labels = [f"slice x volume scores: {n} volumes (columns), {nz} slices (rows, top slice up); "
              f"cyan = flagged volume (score >= {det.threshold:.2f})"]
    order = np.argsort(sl.ravel())[::-1][:WORST]
    if len(order):
        data = series.data
        shells = np.round(np.asarray(series.bvals, float) / 100.0)
        for flat in order:
            v, z = divmod(int(flat), nz)
            same = np.flatnonzero((shells == shells[v]) & (np.arange(n) != v))
            ref = np.median(data[:, :, z, same], axis=2) if len(same) else np.zeros_like(data[:, :, z, v])
            scale = float(np.percentile(np.concatenate([ref.ravel(), data[:, :, z, v].ravel()]), 99.5)) or 1.0
            rows.append([_display(data[:, :, z, v], scale), _display(ref, scale)])
            kinds = {k: float(det.elements[f"volume/{k}"][v]) for k in _kinds(det)}
            top = max(kinds, key=kinds.get) if kinds else None
            labels.append(f"volume {v} (b={series.bvals[v]:.0f}) slice {z}: score {sl[v, z]:.2f}"
                          + (f", strongest kind {top} {kinds[top]:.2f}" if top else "")
                          + f" | median of the other {len(same)} b={series.bvals[v]:.0f} volumes")
    height = max(96, min(320, nz * CELL[0] + 8))
    parts = [contact_sheet(rows[:1], labels[:1], height=height)]
    if len(rows) > 1:
        parts.append(contact_sheet(rows[1:], labels[1:], height=128))
    width = max(p.shape[1] for p in parts)
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in parts])


def _table(header: list[str], rows: list[list], flag_col: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for r in rows:
        cls = ' class="bad"' if flag_col is not None and r[flag_col] == "bad" else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def qc_html(det, series, rows: list[dict]) -> str:
    """The per-series QC page (links ``qc.png`` and ``volumes.csv`` beside it)."""
    meta = det.meta.get("series", {})
    kinds = _kinds(det)
    kind_rows = []
    for k in kinds:
        ev = det.elements[f"volume/{k}"]
        hit = np.flatnonzero(ev >= det.threshold)
        kind_rows.append([k, f"{ev.max(initial=0):.3f}", len(hit), " ".join(map(str, hit.tolist())) or "-"])
    flagged = det.meta.get("flagged_volumes", [])
    vol_header = ["volume", "b", "b-vector", "score", "class", "worst slice"] + kinds
    vol_rows = [[r["Volume"], f"{r['bval']:.0f}", f"{r['bvec_x']:+.3f} {r['bvec_y']:+.3f} {r['bvec_z']:+.3f}",
                 f"{r['Probability']:.3f}", r["Predicted Class"], f"{r['worst_slice']} ({r['worst_slice_score']:.2f})"]
                + [f"{r[k]:.3f}" for k in kinds] for r in rows]
    withheld = meta.get("withheld_sidecar_fields") or []
    notes = meta.get("notes") or []
    name = html.escape(Path(series.path).name if series.path else "<arrays>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>dMRI QC: {name}</title>
<style>body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}th{{background:#f3f3f3}}tr.bad td{{background:#fde2e2}}
img{{max-width:100%;image-rendering:pixelated}}.dim{{color:#777}}</style></head><body>
<h1>dMRI QC: {name}</h1>
<p>model <code>{html.escape(str(det.meta.get('model', '')))}</code> · weights <code>{html.escape(str(det.meta.get('weights', '')))}</code>
· threshold {det.threshold:.3f} · series score {det.score:.3f} ·
<b>{len(flagged)}</b> of {series.n_volumes} volumes flagged{': ' + ' '.join(map(str, flagged)) if flagged else ''}</p>
<p class="dim">shape {html.escape(str(meta.get('shape')))} · voxel {html.escape(str(meta.get('voxel_mm')))} mm ·
{meta.get('n_b0', '?')} b=0 volumes · file {html.escape(str(series.path or '<arrays>'))}</p>
<img src="qc.png" alt="slice-by-volume heat grid and worst slices">
<h2>Artifact kinds</h2>
{_table(['kind', 'highest volume evidence', 'volumes at or above threshold', 'which'], kind_rows) if kind_rows
 else '<p class="dim">this model does not tell artifact kinds apart</p>'}
<h2>Volumes</h2><p><a href="volumes.csv">volumes.csv</a> (3D-QCNet result columns first)</p>
{_table(vol_header, vol_rows, flag_col=4)}
<p class="dim">Sidecar fields withheld from this report (names only): {html.escape(', '.join(withheld)) or 'none'}.
{('Notes from loading: ' + html.escape('; '.join(map(str, notes)))) if notes else ''}</p>
</body></html>
"""


def series_files(det, series) -> dict[str, bytes]:
    """The per-series files: ``qc.png`` (= ``overlay.png``), ``qc.html``, ``volumes.csv``."""
    from artifacts.io import encode_image

    if "slice" not in det.elements or "volume" not in det.elements:
        return {}
    rows = volume_rows(det, series)
    picture = encode_image(qc_picture(det, series))
    return {"qc.png": picture, "overlay.png": picture, "qc.html": qc_html(det, series, rows).encode(),
            "volumes.csv": _csv_bytes(rows)}


def _dwi_rows(run_dir: Path) -> list[dict]:
    from artifacts.engine.store import Store

    with Store(run_dir) as store:
        return [r for r in store.rows(status="ok") if r.get("kind") == "dwi"]


def write_volume_table(run_dir: str | os.PathLike) -> Path | None:
    """``OUT/dmri_volumes.csv``: every series' ``volumes.csv`` of the run's store, in one table
    (None when the store holds no series)."""
    run_dir = Path(run_dir)
    rows: list[dict] = []
    for r in _dwi_rows(run_dir):
        name = (r.get("files") or {}).get("volumes")
        if name:
            with open(run_dir / "items" / r["key"] / name, newline="") as f:
                rows += [{"item_id": r["item_id"], **row} for row in csv.DictReader(f)]
    if not rows:
        return None
    fields = list(dict.fromkeys(k for row in rows for k in row))
    target = run_dir / TABLE_FILE
    with open(target, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return target


def write_clean(run_dir: str | os.PathLike) -> list[str]:
    """For every series of the run: ``OUT/clean/<item path>`` without the flagged volumes, with
    its ``.bval``/``.bvec`` cut to match and the kept acquisition sidecar fields; a series
    whose every volume (or every diffusion-weighted volume) is flagged is not written (the
    reason is in the returned lines and ``OUT/clean/clean.json``). Returns one line per series."""
    from artifacts.io.dmri import load_dwi, nifti_stem, save_dwi

    run_dir = Path(run_dir)
    dest = run_dir / CLEAN_DIR
    record, lines = {}, []
    for r in _dwi_rows(run_dir):
        det = json.loads((run_dir / "items" / r["key"] / r["files"]["detection"]).read_text())
        flagged = set(det["meta"].get("flagged_volumes", []))
        inputs = {role: info["path"] for role, info in (r.get("inputs") or {}).items()}
        series = load_dwi(inputs["image"], inputs.get("bval"), inputs.get("bvec"), sidecar=inputs.get("sidecar"),
                          check_data=False)
        keep = np.array([v not in flagged for v in range(series.n_volumes)])
        rel = Path(r["item_id"])
        target = dest / rel.parent / f"{nifti_stem(rel)}.nii.gz"
        entry = {"input": inputs["image"], "removed": sorted(flagged), "kept": int(keep.sum())}
        if not keep.any() or not (keep & ~series.b0_mask).any():
            entry["written"] = None
            lines.append(f"{r['item_id']}: not written: every {'' if not keep.any() else 'diffusion-weighted '}"
                         f"volume is flagged")
        else:
            save_dwi(target, series, keep)
            entry["written"] = str(target)
            lines.append(f"{r['item_id']}: {int(keep.sum())} of {series.n_volumes} volumes kept -> {target}")
        record[r["item_id"]] = entry
    if record:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "clean.json").write_text(json.dumps(record, indent=1) + "\n")
    return lines
