"""Evaluation adapter for ``dmri``: simulated artifacts on real series, false positives on clean draws.

``--data`` is a folder of series (``<vendor>/<name>.nii[.gz]`` with ``.bval``/``.bvec``/``.json``, e.g.
``../shared/data/dmri``). For every series the adapter writes, once, under ``OUT/data`` (resumable):

* **clean draws**: the series with a fresh Rician noise realisation (the simulator's ``noise`` kind at
  severity :data:`~artifacts.detectors.dmri.qc.CLEAN_NOISE`, seeds ``CLEAN_SEED + i``, disjoint from
  the calibration's seeds), ``clean`` of them;
* **artifact draws**: for each kind x severity x seed, the same kind of fresh noise first, then the
  artifact (:func:`artifacts.datasets.dmri_artifacts.simulate`, frozen), so noise alone never tells
  the classes apart; per-volume and per-slice labels are kept with the sample.

Draws are written as NIfTI (int16 with a scale factor, the series' affine) with copies of the
gradient files and sidecar, and go through the engine and store like ``artifacts detect dmri``.

Reported per split group (``train`` = the vendors the calibration saw, ``held-out`` = the split's
``eval`` vendor, ``other``) and overall:

* false-positive rate per volume over the clean draws, at the model's own threshold;
* detection rate of labelled volumes per kind x severity at that threshold;
* for ``dropout``: slice-level precision / recall / F1 of ``slice map >= threshold`` against the
  labelled slices (pooled over draws), on the detector's dropout map (``elements["slice/dropout"]``:
  where it localises dropout) when it has one, and also on the overall slice map (where every
  kind flagged in a volume covers all its slices, so a volume-level false flag costs precision);

each with a 95 % bootstrap interval over *draws* (volumes of one draw are not independent) and, for
rates, the Wilson interval over volumes for reference. ``OUT/curves.png``: detection rate over
severity per kind, one panel per group, the clean false-positive rate as a dashed line.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CLEAN_SEED = 10_000  # clean-draw seeds of the evaluation (the calibration uses 0..~100)
NOISE_SEED = 20_000  # seeds of the noise under artifact draws
SEVERITIES = (0.25, 0.5, 0.75, 1.0)


@dataclass
class DWISample:
    name: str
    files: dict
    series: str
    group: str
    kind: str  # "clean" or a simulator kind
    severity: float
    seed: int
    volumes: list = field(default_factory=list)  # labelled volume indices
    slices: list = field(default_factory=list)  # labelled [volume, slice] pairs

    @property
    def image(self) -> str:
        return self.files["image"]


def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [float(max(0.0, c - h)), float(min(1.0, c + h))]


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return path.stem


def find_series(data: str) -> list[Path]:
    root = Path(data)
    if root.is_file():
        return [root]
    files = sorted(list(root.rglob("*.nii.gz")) + list(root.rglob("*.nii")))
    out = [f for f in files if f.with_name(_stem(f) + ".bval").exists()]
    if not out:
        raise FileNotFoundError(f"eval dmri: no NIfTI series with a .bval under {data}")
    return out


def split_group(path: Path) -> str:
    from artifacts.datasets.splits import load_split

    split = load_split("dmri")
    parts = set(Path(path).resolve().parts)
    for group, key in (("train", "train"), ("held-out", "eval")):
        if any(Path(p).name in parts for p in split[key]):
            return group
    return "other"


def write_draw(dest: Path, data: np.ndarray, src: Path, affine: np.ndarray) -> dict:
    """Write ``data`` as ``dest.nii`` (int16 + scale) with copies of ``src``'s gradient files and sidecar."""
    import nibabel as nib

    dest.parent.mkdir(parents=True, exist_ok=True)
    stem = src.with_name(_stem(src))
    files = {"image": str(dest) + ".nii"}
    for role, ext in (("bval", ".bval"), ("bvec", ".bvec"), ("sidecar", ".json")):
        s = Path(str(stem) + ext)
        if s.exists():
            shutil.copyfile(s, str(dest) + ext)
            files[role] = str(dest) + ext
    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    img.set_data_dtype(np.int16)  # nibabel fits scl_slope/inter: about 4.5 digits of the range
    tmp = str(dest) + ".part.nii"
    nib.save(img, tmp)
    Path(tmp).replace(files["image"])
    return files


class DMRIAdapter:
    task = "dmri"

    def __init__(self, kinds: list[str] | None = None, severities=SEVERITIES, seeds: int = 1, clean: int = 4,
                 split: str | None = None, per_vendor: int | None = 1):
        from artifacts.datasets.dmri_artifacts import KINDS

        kinds = list(kinds) if kinds else list(KINDS)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"eval dmri: unknown kind(s) {unknown}; kinds are {', '.join(KINDS)}")
        if isinstance(severities, str):
            severities = [float(s) for s in severities.split(",") if s]
        if not severities or any(not 0 < float(s) <= 1 for s in severities):
            raise ValueError("eval dmri: severities must be in (0, 1]")
        if split not in (None, "all", "train", "tune", "held-out", "eval"):
            raise ValueError("eval dmri: split must be all, train (= tune) or held-out (= eval)")
        self.kinds, self.severities = kinds, tuple(float(s) for s in severities)
        self.seeds, self.clean = int(seeds), int(clean)
        self.split = {"eval": "held-out", "tune": "train", "all": None}.get(split, split)
        self.per_vendor = per_vendor

    # -- data ---------------------------------------------------------------------------
    def read(self, data: str, work: Path | None = None) -> list[DWISample]:
        from artifacts.datasets.dmri_artifacts import simulate
        from artifacts.detectors.dmri.qc import CLEAN_NOISE
        from artifacts.io.dmri import load_dwi

        work = Path(work or ".") / "data"
        series = find_series(data)
        if self.per_vendor:
            by_folder: dict = {}
            for s in series:
                by_folder.setdefault(s.parent, []).append(s)
            series = [s for group in by_folder.values() for s in group[: self.per_vendor]]
        samples = []
        for src in series:
            group = split_group(src)
            if self.split and group != self.split:
                continue
            stem = f"{src.parent.name}__{_stem(src)}"
            loaded = None

            def series_obj():
                nonlocal loaded
                loaded = loaded or load_dwi(src)
                return loaded

            def draw(name, make):
                dest = work / stem / name
                meta_p = Path(str(dest) + ".labels.json")
                if meta_p.exists() and Path(str(dest) + ".nii").exists():
                    meta = json.loads(meta_p.read_text())
                    files = {"image": str(dest) + ".nii"}
                    for role, ext in (("bval", ".bval"), ("bvec", ".bvec"), ("sidecar", ".json")):
                        if Path(str(dest) + ext).exists():
                            files[role] = str(dest) + ext
                    return files, meta
                arr, meta = make(series_obj())
                files = write_draw(dest, arr, src, series_obj().affine)
                meta_p.write_text(json.dumps(meta))
                return files, meta

            for i in range(self.clean):
                files, meta = draw(f"clean-{i:03d}", lambda s, i=i: (
                    simulate(s, "noise", CLEAN_NOISE, CLEAN_SEED + i)[0], {"volumes": [], "slices": []}))
                samples.append(DWISample(f"{stem}/clean-{i:03d}", files, stem, group, "clean", 0.0, i))
            for kind in self.kinds:
                for sev in self.severities:
                    for seed in range(self.seeds):
                        name = f"{kind}-s{sev:.2f}-{seed:03d}"

                        def make(s, kind=kind, sev=sev, seed=seed):
                            noisy = simulate(s, "noise", CLEAN_NOISE, NOISE_SEED + seed)[0]
                            out, lab = simulate((noisy, s.bvals, s.bvecs), kind, sev, seed,
                                                pe_axis=s.phase_encoding_axis, zooms=s.zooms,
                                                slice_timing=s.sidecar.get("SliceTiming"))
                            d = lab.to_dict()
                            return out, {"volumes": d["volumes"], "slices": d["slices"]}

                        files, meta = draw(name, make)
                        samples.append(DWISample(f"{stem}/{name}", files, stem, group, kind, sev, seed,
                                                 meta["volumes"], meta["slices"]))
        if not samples:
            raise ValueError(f"eval dmri: no series of split {self.split!r} under {data}")
        return samples

    def describe(self, samples: list[DWISample]) -> dict[str, Any]:
        series = sorted({(s.series, s.group) for s in samples})
        return {"series": {name: group for name, group in series}, "kinds": self.kinds,
                "severities": list(self.severities), "seeds": self.seeds, "clean_draws_per_series": self.clean,
                "draws": len(samples)}

    @staticmethod
    def default_models() -> list[str]:
        from artifacts.registry import default_model

        return [default_model("dmri")]

    # -- per draw -------------------------------------------------------------------------
    def stats(self, samples: list[DWISample], dets: list) -> list[dict[str, Any]]:
        out = []
        for s, det in zip(samples, dets):
            st = {"name": s.name, "series": s.series, "group": s.group, "kind": s.kind, "severity": s.severity,
                  "status": "error" if det is None else det.status.value}
            if det is not None and det.elements and "volume" in det.elements:
                vol = np.asarray(det.elements["volume"])
                flagged = vol >= det.threshold
                lab = np.zeros(vol.size, bool)
                lab[list(s.volumes)] = True
                st.update(n_volumes=int(vol.size), n_labelled=int(lab.sum()), hit=int((flagged & lab).sum()),
                          false=int((flagged & ~lab).sum()), n_unlabelled=int((~lab).sum()))
                kinds = {k[len("volume/"):]: np.asarray(v) >= det.threshold for k, v in det.elements.items()
                         if k.startswith("volume/")}
                # which kind raised each false flag, and the false flags left if that kind were ignored
                st["false_by_kind"] = {k: int((f & ~lab).sum()) for k, f in kinds.items()}
                st["false_without"] = {k: int((np.any([g for kk, g in kinds.items() if kk != k] or
                                                      [np.zeros(vol.size, bool)], axis=0) & ~lab).sum())
                                       for k in kinds}
                if s.kind == "dropout":
                    # the dropout map when the detector has one (its slice localisation), and the
                    # overall map (whole-volume kinds there paint every slice of a flagged volume)
                    truth = np.zeros(np.shape(det.elements["slice"]), bool)
                    for v, z in s.slices:
                        truth[v, z] = True
                    for key, name in (("slice/dropout", ""), ("slice", "all_")):
                        if key in det.elements:
                            sl = np.asarray(det.elements[key]) >= det.threshold
                            st.update({f"{name}tp": int((sl & truth).sum()), f"{name}fp": int((sl & ~truth).sum()),
                                       f"{name}fn": int((~sl & truth).sum())})
                    if "tp" not in st:
                        st.update(tp=st["all_tp"], fp=st["all_fp"], fn=st["all_fn"])
                    st["slice_map"] = "slice/dropout" if "slice/dropout" in det.elements else "slice"
            out.append(st)
        return out

    def summarise(self, stats: list[dict], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
        from artifacts.eval.scores import metric
        from artifacts.metrics import bootstrap_ci

        ok = [st for st in stats if "n_volumes" in st]
        summary: dict[str, Any] = {"counts": {"draws": len(stats), "scored": len(ok),
                                              "errors": sum(st["status"] == "error" for st in stats)}}

        def ratio(rows, num, den):
            k = np.array([r[num] for r in rows], float)
            n = np.array([r[den] for r in rows], float)
            if n.sum() == 0:
                return None
            ci = bootstrap_ci(len(rows), lambda i: k[i].sum() / n[i].sum() if n[i].sum() else np.nan,
                              n_boot=n_boot, seed=seed) if n_boot else None
            m = metric(k.sum() / n.sum(), ci)
            m.update(k=int(k.sum()), n=int(n.sum()), wilson=wilson(int(k.sum()), int(n.sum())))
            return m

        def f1(rows, prefix=""):
            rows = [r for r in rows if f"{prefix}tp" in r]
            tp, fp, fn = (np.array([r[prefix + key] for r in rows], float) for key in ("tp", "fp", "fn"))

            def fn_(i):
                d = 2 * tp[i].sum() + fp[i].sum() + fn[i].sum()
                return 2 * tp[i].sum() / d if d else np.nan

            if not rows:
                return None
            ci = bootstrap_ci(len(rows), fn_, n_boot=n_boot, seed=seed) if n_boot else None
            p = tp.sum() / max(tp.sum() + fp.sum(), 1)
            r = tp.sum() / max(tp.sum() + fn.sum(), 1)
            return {"f1": metric(fn_(np.arange(len(rows))), ci), "precision": float(p), "recall": float(r),
                    "tp": int(tp.sum()), "fp": int(fp.sum()), "fn": int(fn.sum())}

        groups = ["all"] + sorted({st["group"] for st in ok})
        for g in groups:
            rows = [st for st in ok if g == "all" or st["group"] == g]
            clean = [st for st in rows if st["kind"] == "clean"]
            entry: dict[str, Any] = {"series": sorted({st["series"] for st in rows}),
                                     "clean_fp": ratio(clean, "false", "n_volumes"), "kinds": {}}
            n_clean = sum(st["n_volumes"] for st in clean)
            if n_clean:
                by_kind = {k: sum(st.get("false_by_kind", {}).get(k, 0) for st in clean) / n_clean
                           for k in sorted({k for st in clean for k in st.get("false_by_kind", {})})}
                entry["clean_fp_by_kind"] = {k: round(v, 4) for k, v in by_kind.items() if v > 0}
                if entry["clean_fp_by_kind"]:
                    top = max(entry["clean_fp_by_kind"], key=entry["clean_fp_by_kind"].get)
                    for st in clean:
                        st["_without_top"] = st.get("false_without", {}).get(top, st["false"])
                    entry["clean_fp_without_top_kind"] = {"kind": top,
                                                          **ratio(clean, "_without_top", "n_volumes")}
            # false flags on unlabelled volumes of artifact draws (a volume next to a corrupted one)
            art = [st for st in rows if st["kind"] != "clean"]
            entry["artifact_draw_fp"] = ratio(art, "false", "n_unlabelled")
            for kind in sorted({st["kind"] for st in art}):
                mine = [st for st in art if st["kind"] == kind]
                ke = {"all": ratio(mine, "hit", "n_labelled"), "by_severity": {}}
                for sev in sorted({st["severity"] for st in mine}):
                    ke["by_severity"][f"{sev:.2f}"] = ratio([st for st in mine if st["severity"] == sev],
                                                           "hit", "n_labelled")
                if kind == "dropout":
                    ke["slice_f1"] = f1(mine)
                    ke["slice_map"] = sorted({st.get("slice_map", "slice") for st in mine})
                    ke["slice_f1_overall_map"] = f1(mine, "all_")
                    ke["slice_f1_by_severity"] = {f"{sev:.2f}": f1([st for st in mine if st["severity"] == sev])
                                                  for sev in sorted({st["severity"] for st in mine})}
                entry["kinds"][kind] = ke
            summary[g] = entry
        return summary

    # -- output ---------------------------------------------------------------------------
    @staticmethod
    def format(result: dict[str, Any]) -> str:
        from artifacts.eval.runner import fmt_metric

        d = result["samples"]
        lines = [f"data: {result['data']}  ({d['draws']} draws: {d['clean_draws_per_series']} clean per series, "
                 f"kinds x severities {d['severities']} x {d['seeds']} seed(s)); series: "
                 + ", ".join(f"{k} [{v}]" for k, v in d["series"].items()),
                 "rates per volume at the model's own threshold; intervals: 95 % bootstrap over draws "
                 f"({result['bootstrap']} resamples); clean = fresh Rician noise draws of the real series"]
        for model, entry in result["models"].items():
            c = entry["clean"]
            lines += ["", f"== {model}  (weights {entry['weights']}, {entry.get('seconds', '?')} s) =="]
            for g in [k for k in c if k not in ("counts",)]:
                e = c[g]
                lines.append(f"-- {g}: {', '.join(e['series'])}")
                fp = e["clean_fp"]
                lines.append(f"   clean volumes flagged (FP rate): {fmt_metric(fp)}"
                             + (f"  ({fp['k']}/{fp['n']})" if fp else ""))
                if e.get("clean_fp_by_kind"):
                    lines.append("   clean FP by kind: " + ", ".join(f"{k} {v:.3f}" for k, v in e["clean_fp_by_kind"].items()))
                    w = e.get("clean_fp_without_top_kind")
                    if w:
                        lines.append(f"   clean FP if '{w['kind']}' were ignored: {fmt_metric(w)}")
                afp = e.get("artifact_draw_fp")
                if afp:
                    lines.append(f"   unlabelled volumes of artifact draws flagged: {fmt_metric(afp)}")
                sevs = sorted({s for k in e["kinds"].values() for s in k["by_severity"]})
                lines.append(f"   {'kind':<10}" + "".join(f"{'s=' + s:>10}" for s in sevs) + f"   {'all severities':<24}")
                for kind, ke in e["kinds"].items():
                    cells = "".join(f"{ke['by_severity'][s]['value']:>10.3f}" if ke["by_severity"].get(s) else f"{'':>10}"
                                    for s in sevs)
                    lines.append(f"   {kind:<10}{cells}   {fmt_metric(ke['all'])}")
                    if kind == "dropout" and ke.get("slice_f1"):
                        f = ke["slice_f1"]
                        per = ", ".join(f"s={s}: {v['f1']['value']:.3f}" for s, v in ke["slice_f1_by_severity"].items() if v)
                        lines.append(f"   {'':<10}dropout slice F1 {fmt_metric(f['f1'])} (P {f['precision']:.3f}, "
                                     f"R {f['recall']:.3f}; map {'+'.join(ke.get('slice_map', ['slice']))}); {per}")
                        g = ke.get("slice_f1_overall_map")
                        if g and ke.get("slice_map") != ["slice"]:
                            lines.append(f"   {'':<10}  on the overall slice map (every kind): F1 {fmt_metric(g['f1'])} "
                                         f"(P {g['precision']:.3f}, R {g['recall']:.3f})")
        return "\n".join(lines)

    @staticmethod
    def picture(result: dict[str, Any], out_dir: Path) -> Path:
        """``OUT/curves.png``: detection rate over severity per kind, one panel per group and model."""
        from artifacts.io import save_image

        path = Path(out_dir) / "curves.png"
        save_image(path, curves_picture(result))
        return path


COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def curves_picture(result: dict[str, Any], size: tuple[int, int] = (380, 320)) -> np.ndarray:
    """One panel per (model, group): detection rate of labelled volumes over severity, one line per
    kind; the clean false-positive rate dashed black, the 95 % goal dotted grey. RGB uint8."""
    import cv2

    panels = [(m, g, e["clean"][g]) for m, e in result["models"].items() for g in e["clean"] if g != "counts"]
    w, h = size
    pad_l, pad_r, pad_t, pad_b = 40, 90, 26, 34
    font = cv2.FONT_HERSHEY_SIMPLEX
    out = []
    for model, group, e in panels or [("", "", {"kinds": {}, "clean_fp": None})]:
        img = np.full((h, w, 3), 255, np.uint8)
        x0, x1, y0, y1 = pad_l, w - pad_r, pad_t, h - pad_b
        cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
        cv2.putText(img, f"{model.split('/')[-1]} - {group}", (x0, 17), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)

        def ypix(v):
            return int(round(y1 - float(v) * (y1 - y0)))

        for tick in np.linspace(0, 1, 6):
            cv2.line(img, (x0 - 3, ypix(tick)), (x0, ypix(tick)), (0, 0, 0), 1)
            cv2.putText(img, f"{tick:.1f}", (8, ypix(tick) + 4), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        sevs = sorted({float(s) for k in e["kinds"].values() for s in k["by_severity"]})

        def xpix(sv):
            return x0 + 8 + int(round((sevs.index(sv) / max(1, len(sevs) - 1)) * (x1 - x0 - 16)))

        for sv in sevs:
            cv2.putText(img, f"{sv:g}", (xpix(sv) - 10, y1 + 14), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, "severity", (x1 - 60, h - 5), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        for t in np.linspace(x0, x1, 40)[::2]:
            cv2.line(img, (int(t), ypix(0.95)), (int(t) + 4, ypix(0.95)), (160, 160, 160), 1)
        if e.get("clean_fp"):
            y = ypix(e["clean_fp"]["value"])
            for t in np.linspace(x0, x1, 20)[::2]:
                cv2.line(img, (int(t), y), (int(t) + 8, y), (0, 0, 0), 1)
            cv2.putText(img, "clean FP", (x1 + 4, y + 4), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        for i, (kind, ke) in enumerate(e["kinds"].items()):
            colour = COLOURS[i % len(COLOURS)]
            pts = [(xpix(float(sv)), ypix(m["value"])) for sv, m in sorted(ke["by_severity"].items()) if m]
            for a, b in zip(pts, pts[1:]):
                cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
            for p in pts:
                cv2.circle(img, p, 3, colour, -1, cv2.LINE_AA)
            cv2.putText(img, kind, (x1 + 6, y0 + 14 + 15 * i), font, 0.38, colour, 1, cv2.LINE_AA)
        out.append(img)
    return np.concatenate(out, axis=1)
