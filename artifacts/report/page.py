"""The page around the rows: header (runs of the store), tools (filter, status), inline CSS and JS.

Everything is inline, so ``report.html`` works offline and from a copied folder; the only links
are relative ones to files under OUT (and to the input files).
"""
from __future__ import annotations

from datetime import datetime

from artifacts.report.cells import esc

COLUMNS = [  # (header, sort type or "" for unsortable, tooltip)
    ("input", "", "thumbnail of the input; click for the file"),
    ("overlay", "", "heatmap over the input, mask outlined"),
    ("item", "text", "item id (path relative to the input folder)"),
    ("status", "text", ""),
    ("score", "num", "image-level score in [0, 1], higher = more artifact; tick = threshold"),
    ("decision", "num", "score against the model's operating threshold"),
    ("model", "text", "model and weights (hover for config)"),
    ("categories", "num", "per-category scores"),
    ("elements", "num", "per-element scores from detection.json (e.g. per volume); dots at or above the threshold"),
    ("notes", "text", "what the file says about itself (provenance) and input warnings"),
    ("files", "", "files of this result under items/<key>/"),
    ("source", "", "the input file(s) as recorded in the store"),
]
OPTIONAL = ("overlay", "categories", "elements", "notes")  # shown only when some row fills them
EMPTY_CELL = '<td class="empty"'  # how cells.py starts a cell with nothing to show

CSS = """
:root{--fg:#1d2125;--dim:#6b7480;--line:#e3e6ea;--bg:#fff;--head:#f6f7f9;--pos:#c2410c;--neg:#2f6f9f;
--ok:#217a3c;--na:#8a6d00;--err:#b3261e}
*{box-sizing:border-box}
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0}
header{padding:14px 18px 6px}
h1{font-size:19px;margin:0 0 2px}
.sub,.dim,.note,.kind{color:var(--dim)}
.dim,.note,.kind{font-size:11px}
.totals{margin:8px 0;font-size:14px}
.totals b{font-weight:600}
details{margin:6px 0}
summary{cursor:pointer;color:var(--dim)}
table{border-collapse:collapse}
table.runs{margin:6px 0 4px;font-size:12px}
table.runs td,table.runs th{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
table.runs td.n{text-align:right;font-variant-numeric:tabular-nums}
table.runs code{font-size:11px;white-space:pre-wrap;word-break:break-all}
.warn{background:#fff6e0;border:1px solid #f0d68a;padding:6px 10px;border-radius:4px;margin:8px 0;display:inline-block}
.tools{position:sticky;top:0;z-index:2;background:var(--bg);padding:8px 18px;border-bottom:1px solid var(--line);
display:flex;gap:10px;align-items:center}
.tools input{width:22em;padding:4px 6px}
#results{width:100%;margin:0}
#results th{position:sticky;top:45px;background:var(--head);z-index:1;text-align:left;padding:6px 8px;
border-bottom:1px solid var(--line);white-space:nowrap;font-weight:600}
#results th[data-type]{cursor:pointer;user-select:none}
#results th[data-type]:hover{background:#eceef2}
#results th[aria-sort=ascending]::after{content:" ▲";font-size:10px}
#results th[aria-sort=descending]::after{content:" ▼";font-size:10px}
#results td{padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
#results tbody tr:hover{background:#fafbfc}
td.th{width:168px;min-width:90px;padding-right:4px}
td.th img{max-width:160px;max-height:160px;display:block;border:1px solid var(--line)}
td.item{min-width:9em;max-width:22em;overflow-wrap:anywhere;font-weight:500}
.kind{display:block;font-weight:400}
td.num{white-space:nowrap}
.sv{font-variant-numeric:tabular-nums;display:inline-block;width:3.2em}
.bar{position:relative;display:inline-block;width:70px;height:8px;background:#eceef1;border-radius:2px;vertical-align:middle}
.bar i{position:absolute;left:0;top:0;bottom:0;background:#8d99a6;border-radius:2px}
.bar.pos i{background:var(--pos)}.bar.neg i{background:var(--neg)}
.bar b{position:absolute;top:-2px;bottom:-2px;width:1px;background:var(--fg)}
.st{font-size:11px;padding:1px 6px;border-radius:9px;border:1px solid;white-space:nowrap}
.st.ok{color:var(--ok)}.st.not_applicable{color:var(--na)}.st.error{color:var(--err)}
.err{color:var(--err);font-size:12px;margin-top:3px;min-width:10em;max-width:28em;overflow-wrap:anywhere}
.why{color:var(--na);font-size:12px;margin-top:3px;min-width:10em;max-width:28em}
.lab{white-space:nowrap;font-size:12px}.lab.pos{color:var(--pos);font-weight:600}.lab.neg{color:var(--neg)}
.cat,.el{white-space:nowrap;font-size:12px;line-height:18px}
.el .dim{display:block;margin:-2px 0 2px}
.cn{display:inline-block;margin-right:4px;min-width:3.5em;max-width:10em;overflow:hidden;text-overflow:ellipsis;vertical-align:middle}
.cv{font-variant-numeric:tabular-nums;margin-left:4px}
.spark{vertical-align:middle;background:#f7f8fa;margin:0 4px}
.spark polyline{fill:none;stroke:var(--neg);stroke-width:1.2}
.spark circle{fill:var(--pos)}.spark circle.one{fill:var(--neg)}
.spark line.t{stroke:#b9c0c8;stroke-dasharray:2 2}
td.links{font-size:12px;min-width:7em}
td.links a{margin-right:6px;white-space:nowrap}
.miss{color:var(--err);font-size:12px}
footer{padding:12px 18px;color:var(--dim);font-size:11px}
"""

JS = """
(function(){
  var table=document.getElementById('results'), tb=table.tBodies[0];
  var rows=Array.prototype.slice.call(tb.rows), heads=table.tHead.rows[0].cells;
  var q=document.getElementById('q'), st=document.getElementById('st'), shown=document.getElementById('shown');
  function value(row,i,num){
    var c=row.cells[i], v=c.hasAttribute('data-v')?c.getAttribute('data-v'):c.textContent;
    if(!num) return v.toLowerCase();
    v=parseFloat(v); return isNaN(v)?-Infinity:v;
  }
  function sortBy(th,dir){
    var i=th.cellIndex, num=th.getAttribute('data-type')==='num';
    var keyed=rows.map(function(r,k){return [value(r,i,num),k,r];});
    keyed.sort(function(a,b){return a[0]<b[0]?-dir:a[0]>b[0]?dir:a[1]-b[1];});
    rows=keyed.map(function(x){return x[2];});
    var frag=document.createDocumentFragment();
    rows.forEach(function(r){frag.appendChild(r);});
    tb.appendChild(frag);
    for(var j=0;j<heads.length;j++) heads[j].removeAttribute('aria-sort');
    th.setAttribute('aria-sort',dir>0?'ascending':'descending');
  }
  Array.prototype.forEach.call(heads,function(th){
    if(!th.hasAttribute('data-type')) return;
    th.addEventListener('click',function(){
      var cur=th.getAttribute('aria-sort');
      var dir=cur?(cur==='ascending'?-1:1):(th.getAttribute('data-type')==='num'?-1:1);
      sortBy(th,dir);
    });
  });
  function filter(){
    var text=q.value.trim().toLowerCase(), s=st.value, n=0;
    rows.forEach(function(r){
      var ok=(!text||r.getAttribute('data-f').indexOf(text)>=0)&&(!s||r.getAttribute('data-s')===s);
      r.hidden=!ok; if(ok) n++;
    });
    shown.textContent=n+' of '+rows.length+' rows shown';
  }
  q.addEventListener('input',filter); st.addEventListener('change',filter); filter();
})();
"""


def when(stamp: str | None) -> str:
    if not stamp:
        return "–"
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return stamp


def duration(run: dict) -> str:
    try:
        s = (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return "–"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def runs_table(runs: list[dict], total: int) -> str:
    def n(value) -> str:
        return "–" if value is None else str(int(value))

    head = ("<tr><th>run</th><th>started</th><th>took</th><th>status</th><th>task</th><th>model</th><th>weights</th>"
            "<th>version</th><th>items</th><th>ok</th><th>not applicable</th><th>errors</th><th>skipped</th>"
            "<th>command</th></tr>")
    body = []
    for r in runs:
        body.append(
            f"<tr><td class=n>{n(r.get('run_id'))}</td><td>{esc(when(r.get('started_at')))}</td>"
            f"<td>{esc(duration(r))}</td><td>{esc(r.get('status'))}</td><td>{esc(r.get('task'))}</td>"
            f"<td>{esc(r.get('model'))}</td><td>{esc(r.get('weights'))}</td><td>{esc(r.get('package_version'))}</td>"
            f"<td class=n>{n(r.get('n_items'))}</td><td class=n>{n(r.get('n_ok'))}</td>"
            f"<td class=n>{n(r.get('n_not_applicable'))}</td><td class=n>{n(r.get('n_error'))}</td>"
            f"<td class=n>{n(r.get('n_skipped'))}</td><td><code>{esc(r.get('command') or '–')}</code></td></tr>")
    more = f'<div class="dim">{total - len(runs)} earlier runs not listed</div>' if total > len(runs) else ""
    return f'<table class="runs">{head}{"".join(body)}</table>{more}'


def page(*, title: str, subtitle: str, totals: str, runs_html: str, notes: list[str], statuses: list[str],
         rows_html: list[str], footer: str, columns: list[int]) -> str:
    heads = []
    for name, kind, tip in (COLUMNS[i] for i in columns):
        attrs = f' data-type="{kind}"' if kind else ""
        attrs += ' aria-sort="descending"' if name == "score" else ""
        attrs += f' title="{esc(tip)}"' if tip else ""
        heads.append(f"<th{attrs}>{esc(name)}</th>")
    options = "".join(f'<option value="{esc(s)}">{esc(s.replace("_", " "))}</option>' for s in statuses)
    warn = "".join(f'<div class="warn">{n}</div><br>' for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>{esc(title)}</h1><div class="sub">{subtitle}</div>
<div class="totals">{totals}</div>
{warn}<details open><summary>runs in this store</summary>{runs_html}</details></header>
<div class="tools"><input id="q" type="search" placeholder="filter by item id or status" aria-label="filter">
<select id="st" aria-label="status"><option value="">all statuses</option>{options}</select>
<span id="shown" class="dim"></span></div>
<table id="results"><thead><tr>{"".join(heads)}</tr></thead>
<tbody>
{chr(10).join(rows_html)}
</tbody></table>
<footer>{footer}</footer>
<script>{JS}</script>
</body></html>
"""
