"""The HTML run report: ``OUT/report.html`` over the result store, openable offline in a browser.

>>> from artifacts.report import write_report
>>> write_report("artifacts-out")                       # doctest: +SKIP
PosixPath('artifacts-out/report.html')

The page has a header with the runs recorded in the store (model, weights, package version,
when, counts, command) and one table row per result: input and overlay thumbnails, item id,
status (errors with their one-line message), score with a bar, the decision against the
threshold, model, categories, per-element scores (``elements`` in ``detection.json``, e.g. per
dMRI volume, as a sparkline), and links to the item's files and to the input. Columns sort on
click; a filter box matches item id or status. Rows start sorted by score, highest first.

What a row shows depends only on what the store holds (an overlay file, categories, elements),
never on the model's name, so later item kinds (dMRI series, novel views) need no change here.

Reads only the store under OUT and the input files it names; writes only ``OUT/report.html``
and thumbnails under ``OUT/report/thumbs/`` (made once and reused, see
:mod:`artifacts.report.thumbs`). Input paths are taken as recorded, so relative ones resolve
against the current directory, as they did for the run.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

REPORT_FILE = "report.html"
DEFAULT_MAX_ITEMS = 2000
MAX_RUNS_LISTED = 50
THUMB_SIZE = 160
STATUS_ORDER = ("ok", "not_applicable", "error")

__all__ = ["write_report", "REPORT_FILE", "DEFAULT_MAX_ITEMS"]


def _order(row: dict) -> tuple:
    """Default order: score high to low, then not applicable, then errors, then item id."""
    score = row.get("score")
    rank = STATUS_ORDER.index(row["status"]) if row.get("status") in STATUS_ORDER else len(STATUS_ORDER)
    return (score is None, -(score or 0.0), rank, str(row.get("item_id")), str(row.get("model")))


def _select(rows: list[dict], max_items: int) -> tuple[list[dict], str | None]:
    """At most ``max_items`` rows: every error first (they need attention), then the highest scores."""
    if len(rows) <= max_items:
        return sorted(rows, key=_order), None
    errors = [r for r in rows if r.get("status") == "error"][:max_items]
    others = sorted((r for r in rows if r.get("status") != "error"), key=_order)[: max_items - len(errors)]
    kept = sorted(errors + others, key=_order)
    first = f"the {len(errors)} with errors, then " if errors else ""
    note = (f"Showing {len(kept)} of {len(rows)} results (max_items={max_items}): {first}the {len(others)} "
            "highest scores. Every result is in results.csv / results.jsonl.")
    return kept, note


def write_report(
    out_dir: str | os.PathLike,
    *,
    run_id: int | None = None,
    title: str | None = None,
    max_items: int | None = None,
) -> Path:
    """Write ``OUT/report.html`` for the store in ``out_dir`` and return its path.

    ``run_id`` limits the table to the results written by that run (items a resumed run skipped
    belong to the run that computed them); ``max_items`` caps the rows (default
    :data:`DEFAULT_MAX_ITEMS`; the page says when it is reached).
    Raises ``FileNotFoundError`` when ``out_dir`` holds no store, ``ValueError`` for an unknown
    ``run_id`` or a ``max_items`` below 1.
    """
    from artifacts._version import __version__
    from artifacts.engine.store import DB_NAME, Store
    from artifacts.report import cells, page
    from artifacts.report.thumbs import Thumbnailer, input_role, input_state, safe_part

    t0 = time.perf_counter()
    out = Path(out_dir)
    if not (out / DB_NAME).is_file():
        raise FileNotFoundError(f"no result store in {out} (expected {out / DB_NAME}); run `artifacts detect` first")
    max_items = DEFAULT_MAX_ITEMS if max_items is None else int(max_items)
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")

    with Store(out) as store:
        runs = store.runs()
        if run_id is not None and run_id not in {r["run_id"] for r in runs}:
            known = ", ".join(str(r["run_id"]) for r in runs) or "none"
            raise ValueError(f"no run {run_id} in {out / DB_NAME} (runs: {known})")
        all_rows = store.rows(run_id=run_id)
        items_dir = store.items_dir
    rows, truncated = _select(all_rows, max_items)

    thumbs = Thumbnailer(out, THUMB_SIZE)
    thumbs.prepare()
    planned = []
    for row in rows:
        key = row.get("key")
        item_dir = items_dir / (key if safe_part(key) else ".unsafe-key")  # never leave OUT/items
        inputs = row.get("inputs") or {}
        states = {role: input_state(info or {}) for role, info in inputs.items()}
        planned.append((row, item_dir, states, thumbs.for_input(row), thumbs.for_overlay(row, item_dir)))
    thumbs.run()

    kinds = {r.get("kind") for r in rows}
    table: list[tuple[str, str, list[str]]] = []  # (status, filter text, cells in page.COLUMNS order)
    for row, item_dir, states, in_thumb, ov_thumb in planned:
        detection = cells.read_detection(item_dir, row.get("files") or {})
        role = input_role(row.get("inputs") or {})
        in_link = None
        if role is not None and states.get(role) != "input file not found":
            in_link = cells.input_href(str(row["inputs"][role].get("path", "")), out)
        ov_name = (row.get("files") or {}).get("overlay")
        ov_link = cells.href(f"items/{row['key']}/{ov_name}") if ov_thumb is not None and ov_thumb.href else None
        status = str(row.get("status"))
        table.append((status, f"{row.get('item_id')} {status} {status.replace('_', ' ')}".lower(), [
            cells.thumb_cell(in_thumb, in_link), cells.thumb_cell(ov_thumb, ov_link),
            cells.item_cell(row, len(kinds) > 1), cells.status_cell(row, detection),
            cells.score_cell(row), cells.label_cell(row), cells.model_cell(row),
            cells.categories_cell(row), cells.elements_cell(detection, _threshold(row)),
            cells.notes_cell(row), cells.files_cell(row, item_dir), cells.input_cell(row, out, states)]))
    # columns that no row fills (no overlay, no categories, no elements in this store) are left out
    used = [i for i, (name, _, _) in enumerate(page.COLUMNS)
            if name not in page.OPTIONAL or any(page.EMPTY_CELL not in t[2][i] for t in table)]
    html_rows = [f'<tr data-s="{cells.esc(st)}" data-f="{cells.esc(filt)}">' + "".join(c[i] for i in used) + "</tr>"
                 for st, filt, c in table]

    counts = {s: sum(r.get("status") == s for r in all_rows) for s in STATUS_ORDER}
    scope = f"run {run_id}" if run_id is not None else "all runs"
    totals = (f"<b>{len(all_rows)}</b> results ({cells.esc(scope)}): <b>{counts['ok']}</b> ok · "
              f"<b>{counts['not_applicable']}</b> not applicable · "
              f"<b>{counts['error']}</b> error{'' if counts['error'] == 1 else 's'}")
    exports = [f'<a href="{cells.href(n)}">{n}</a>' for n in ("results.csv", "results.jsonl") if (out / n).is_file()]
    if exports:
        totals += ' <span class="dim">· table: ' + " ".join(exports) + "</span>"
    shown_runs = [r for r in runs if run_id is None or r["run_id"] == run_id][-MAX_RUNS_LISTED:]
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    subtitle = (f"store <code>{cells.esc(out.resolve() / DB_NAME)}</code> · generated {cells.esc(generated)} "
                f"by artifacts {cells.esc(__version__)}")
    statuses = [s for s in STATUS_ORDER if counts[s]] + sorted({str(r.get("status")) for r in rows} - set(STATUS_ORDER))
    footer = (f"{len(rows)} rows · thumbnails: {thumbs.made} made, {thumbs.reused} reused · "
              f"built in {time.perf_counter() - t0:.1f} s")
    text = page.page(
        title=title or f"Artifacts report: {out.resolve().name}", subtitle=subtitle, totals=totals,
        runs_html=page.runs_table(shown_runs, len(runs) if run_id is None else len(shown_runs)),
        notes=[cells.esc(truncated)] if truncated else [], statuses=statuses, rows_html=html_rows, footer=footer,
        columns=used)

    target = out / REPORT_FILE
    tmp = out / f".{REPORT_FILE}.{os.getpid()}.tmp"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _threshold(row: dict) -> float | None:
    value = row.get("threshold")
    return None if value is None else float(value)
