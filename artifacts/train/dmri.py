"""Recipe ``qcnet``: train 3D-QCNet on artifacts simulated on real diffusion series, and the
check whose numbers the model card quotes.

**Draws** (:func:`draws`, the one sampler; ``artifacts eval dmri`` may import it): a draw is one
real series after a fresh Rician noise realisation (``simulate(kind="noise", severity=noise)``,
sigma = ``noise * 0.08 *`` mean b=0 foreground signal; its labels are ignored), then, unless the
kind is ``"clean"``, one artifact from the frozen simulator
:func:`artifacts.datasets.dmri_artifacts.simulate` (``fraction`` of the eligible volumes). Both
classes therefore get the same noise treatment. The noise realisation uses seed
``seed + NOISE_SEED_OFFSET`` so that it never repeats the ``noise`` artifact's own stream.
Volume labels: bad = the simulator's ``labels.volumes``; every other volume is good.

**Data** (``artifacts/datasets/splits/dmri.json``): the ``train`` series only (Toshiba Galan,
UIH uMR770); dipy's crops (``train_dipy``) when dipy is installed, else skipped with a note in
the record; ``eval`` (Philips) is never read by the recipe. ``data=DIR`` trains on the NIfTI
series below DIR instead.

**Training**: each epoch draws ``n`` fresh artifact draws (kinds cycled over all 9, severity
~ U(0.2, 1), fraction 0.25) plus ``n // 4`` clean draws with seeds that depend on (seed, epoch),
takes every bad volume and as many good ones, **b-value matched** (:func:`select`, rule
:data:`SAMPLING`, recorded in ``train.json``): the good volumes have the bad volumes' b=0 /
diffusion-weighted mix (b=0: b <= 50 s/mm^2), each b class half from the artifact draws, half from
the clean draws. Several kinds never hit b=0 volumes (dropout, eddy, vibration), so without the
matching "bad" correlates with b > 0 and the network learns the b-value (``sim-v1`` did). The
volumes are preprocessed as the detector does (:func:`artifacts.detectors.dmri.qcnet.preprocess`,
with the series' b=0 98th-percentile scale, so b=0 and DW volumes of a series share one scale)
and trained on in shuffled batches with in-plane flips and an intensity scale U(0.9, 1.1).
Held-out draws (seeds from ``HELD_OUT_SEED``, never trained on, one per kind and severity level
plus clean draws) pick the epoch (AUC of bad vs good volumes). Cross-entropy on the 2-way
softmax (class 0 = bad, as the official code), Adam with the official L2 (1e-4, i.e. a coupled
weight decay of 2e-4, on the initial and transition convolutions), lr 2e-3 with a cosine decay
(the official 1e-4 is too slow for a CPU budget of a few hundred steps) and BatchNorm momentum
0.1 (PyTorch's default; Keras' 0.99 = 0.01 leaves the running statistics mostly at their initial
values after a few hundred steps). ``torch.set_num_threads``
(``threads``, default 1). Outputs, rewritten after every epoch: ``OUT/qcnet.safetensors`` (best
epoch) and ``OUT/train.json``.

**Check** (``python -m artifacts.train.dmri --check``): per-volume detection rate (bad volumes
with score >= threshold) per kind and severity, false-positive rate over the volumes of clean
draws, and AUC, on the held-out training draws and/or the held-out vendor (``--on eval``).
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from artifacts.datasets.dmri_artifacts import KINDS

FORMAT = "artifacts-train-qcnet/1"
NOISE = 0.15  # severity of the Rician noise every draw gets first (sigma = 1.2 % of mean b0 signal)
NOISE_SEED_OFFSET = 7_000_003
HELD_OUT_SEED = 900_000  # held-out training draws: seeds from here (training seeds stay below)
EVAL_SEED = 500_000  # check draws on the eval vendor
SEVERITY = (0.2, 1.0)
CHECK_SEVERITIES = (0.3, 0.6, 0.9)
HELD_OUT_SEVERITIES = (0.4, 0.8)  # the draws that pick the epoch


@dataclass
class Draw:
    """One simulated series: data (X, Y, Z, N) float32 and volume labels."""

    name: str
    kind: str  # one of KINDS or "clean"
    severity: float
    seed: int
    data: np.ndarray
    bad: np.ndarray  # (N,) bool
    b0_mask: np.ndarray  # (N,) bool


# --------------------------------------------------------------------------------------------
# Series and draws
# --------------------------------------------------------------------------------------------
def project_root() -> Path:
    import artifacts

    return Path(artifacts.__file__).resolve().parents[1]


def nifti_series(root: str | Path) -> list:
    """Every readable DWI series (``*.nii[.gz]`` with gradient files) below a folder, sorted."""
    from artifacts.io.dmri import load_dwi

    root = Path(root)
    paths = sorted(p for p in root.rglob("*") if p.name.endswith((".nii", ".nii.gz")))
    return [load_dwi(p) for p in paths]


def split_series(part: str = "train", data: str | None = None) -> tuple[list, dict]:
    """(series, description) of the ``dmri`` split part (``train`` or ``eval``), or of ``data``."""
    from artifacts.datasets.splits import load_split

    if data is not None:
        return nifti_series(data), {"data": str(data)}
    split = load_split("dmri")
    root = project_root()
    series = [s for r in split[part] for s in nifti_series(root / r)]
    where: dict[str, Any] = {"split": "dmri", part: split[part]}
    if part == "train":
        try:
            from dipy.data import get_fnames  # noqa: F401  (optional: the [dev] extra)
        except ImportError:
            where["dipy"] = "skipped: dipy not installed (train_dipy crops not used)"
        else:
            series += dipy_series(split.get("train_dipy", []))
            where["dipy"] = split.get("train_dipy", [])
    if not series:
        raise FileNotFoundError(f"no diffusion series found for the dmri split part {part!r}")
    return series, where


def dipy_series(names: Sequence[str]) -> list:
    from dipy.data import get_fnames

    from artifacts.io.dmri import load_dwi

    out = []
    for name in names:
        img, bval, bvec = get_fnames(name=name)
        out.append(load_dwi(img, bval, bvec))
    return out


def draw_one(series, kind: str, severity: float, seed: int, *, noise: float = NOISE,
             fraction: float = 0.25, name: str | None = None) -> Draw:
    """One draw (see the module docstring): fresh noise, then the artifact (none for ``"clean"``)."""
    from artifacts.datasets.dmri_artifacts import simulate

    if kind != "clean" and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected 'clean' or one of {KINDS}")
    b, g = np.asarray(series.bvals, float), np.asarray(series.bvecs, float)
    extra = dict(bvals=b, bvecs=g, pe_axis=series.phase_encoding_axis, zooms=series.zooms,
                 slice_timing=series.sidecar.get("SliceTiming"))
    data = series.data
    if noise > 0:
        data, _ = simulate(data, "noise", noise, seed + NOISE_SEED_OFFSET, **extra)
    bad = np.zeros(data.shape[3], bool)
    if kind != "clean":
        data, labels = simulate(data, kind, severity, seed, fraction=fraction, **extra)
        bad = labels.volumes.copy()
    return Draw(name or Path(str(series.path)).name, kind, float(severity), int(seed), data, bad, b <= 50.0)


def draws(series: Sequence, kinds: Iterable[str], severities: Iterable[float], seeds: Iterable[int], *,
          noise: float = NOISE, fraction: float = 0.25) -> Iterator[Draw]:
    """Every (series, kind, severity, seed) combination as a :class:`Draw`, lazily, in that
    nesting order. ``kinds`` may include ``"clean"`` (severity then ignored: one draw per seed)."""
    severities, seeds = list(severities), list(seeds)
    for s in series:
        for kind in kinds:
            for sev in ([0.0] if kind == "clean" else severities):
                for seed in seeds:
                    yield draw_one(s, kind, sev, seed, noise=noise, fraction=fraction)


def held_out_plan(n_series: int, n_clean: int = 1, severities=HELD_OUT_SEVERITIES,
                  first_seed: int = HELD_OUT_SEED) -> list[tuple[int, str, float, int]]:
    """Held-out training draws: (series index, kind, severity, seed) with seeds from ``first_seed``
    (>= HELD_OUT_SEED: never trained on). The recipe picks its epoch on these; :func:`check` uses
    other held-out seeds (from ``HELD_OUT_SEED + 500``), so its numbers are not tuned on."""
    plan, k = [], 0
    for kind in KINDS:
        for sev in severities:
            plan.append((k % n_series, kind, sev, first_seed + k))
            k += 1
    for i in range(n_clean * n_series):
        plan.append((i % n_series, "clean", 0.0, first_seed + k))
        k += 1
    return plan


def epoch_plan(n: int, n_series: int, seed: int, epoch: int) -> list[tuple[int, str, float, int]]:
    rng = np.random.default_rng([seed, epoch, 17])
    base = seed * 1_000_000 + epoch * 10_000
    if base + n + n // 4 >= HELD_OUT_SEED and seed == 0:
        raise ValueError("too many draws per epoch for the seed layout")
    plan = []
    offset = int(rng.integers(len(KINDS)))
    for i in range(n):
        plan.append((int(rng.integers(n_series)), KINDS[(i + offset) % len(KINDS)], float(rng.uniform(*SEVERITY)), base + i))
    for i in range(n // 4):
        plan.append((int(rng.integers(n_series)), "clean", 0.0, base + n + i))
    return plan


# --------------------------------------------------------------------------------------------
# Volumes for the network
# --------------------------------------------------------------------------------------------
def draw_inputs(d: Draw, config) -> np.ndarray:
    """The detector's preprocessing of a draw: (N, S, S, D) float32."""
    from artifacts.detectors.dmri.qcnet import preprocess, series_scale

    scale = series_scale(d.data, d.b0_mask, config.normalise)
    return preprocess(d.data, config.size, config.n_slices, scale)[0]


SAMPLING = ("b-matched/1: every bad volume, and as many good volumes whose b=0 / diffusion-weighted "
            "mix equals the bad volumes' mix (b=0: b <= 50 s/mm^2); each b class half from artifact draws "
            "(the larger half), half from clean draws; a short pool is filled from the other source of the "
            "same b class, then with replacement (from the other b class only when a class has no good volume)")


def _take(pool: list, k: int, rng: np.random.Generator) -> list:
    """``k`` distinct items of ``pool`` (all of them when ``k >= len(pool)``)."""
    k = min(k, len(pool))
    return [pool[i] for i in rng.choice(len(pool), k, replace=False)] if k > 0 else []


def select(draw_list: list[Draw], rng: np.random.Generator, config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every bad volume and as many good ones, b-value matched (:data:`SAMPLING`): the good volumes
    have as many b=0 volumes as the bad ones (so "b=0 -> good" is no shortcut), and each b class
    is split half / half between artifact draws and clean draws.
    Returns (X (M, S, S, D) float16, y (M,) 0 = bad / 1 = good, b0 (M,) bool)."""
    bad: list[tuple[int, int]] = []
    good: dict[tuple[bool, bool], list[tuple[int, int]]] = {(c, b0): [] for c in (False, True) for b0 in (False, True)}
    for di, d in enumerate(draw_list):
        for v in range(len(d.bad)):
            if d.bad[v]:
                bad.append((di, v))
            else:
                good[(d.kind == "clean", bool(d.b0_mask[v]))].append((di, v))
    n_bad_b0 = sum(bool(draw_list[di].b0_mask[v]) for di, v in bad)
    pick = list(bad)
    for b0, want in ((True, n_bad_b0), (False, len(bad) - n_bad_b0)):
        art, cln = good[(False, b0)], good[(True, b0)]
        n_art = min(len(art), (want + 1) // 2)
        n_cln = min(len(cln), want - n_art)
        n_art = min(len(art), want - n_cln)  # the clean pool was short: more from artifact draws
        got = _take(art, n_art, rng) + _take(cln, n_cln, rng)
        short = want - len(got)
        pool = art + cln or good[(False, not b0)] + good[(True, not b0)]
        if short > 0 and pool:
            got += [pool[i] for i in rng.choice(len(pool), short, replace=True)]
        pick += got
    by_draw: dict[int, list[int]] = {}
    for di, v in pick:
        by_draw.setdefault(di, []).append(v)
    xs, ys, bs = [], [], []
    for di, vols in by_draw.items():
        x = draw_inputs(draw_list[di], config)
        xs.append(x[vols].astype(np.float16))
        ys.append(np.where(draw_list[di].bad[vols], 0, 1))
        bs.append(draw_list[di].b0_mask[vols])
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(bs)


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """In-plane flips and an intensity scale U(0.9, 1.1) of one preprocessed volume."""
    x = x.astype(np.float32)
    if rng.random() < 0.5:
        x = x[::-1]
    if rng.random() < 0.5:
        x = x[:, ::-1]
    return np.ascontiguousarray(x * np.float32(rng.uniform(0.9, 1.1)))


def score_volumes(net, x: np.ndarray, batch: int = 8) -> np.ndarray:
    import torch

    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            t = torch.from_numpy(np.ascontiguousarray(x[i : i + batch].astype(np.float32)))[:, None]
            out.append(torch.softmax(net(t), 1)[:, 0].numpy())
    return np.concatenate(out)


# --------------------------------------------------------------------------------------------
# Metrics (shared by the recipe and the check)
# --------------------------------------------------------------------------------------------
def summarise(rows: list[dict], threshold: float) -> dict[str, Any]:
    """rows: one per volume {kind, severity, bad, score}. Detection per kind / severity at the
    threshold over bad volumes, FP over the volumes of clean draws, AUC bad vs clean-draw volumes."""
    from artifacts.metrics import roc_auc

    out: dict[str, Any] = {"threshold": round(float(threshold), 4)}
    clean = np.array([r["score"] for r in rows if r["kind"] == "clean"])
    bad = [r for r in rows if r["bad"]]
    if clean.size:
        out["clean_fp_rate"] = round(float((clean >= threshold).mean()), 4)
        out["clean_volumes"] = int(clean.size)
        out["clean_fp_rate_ci95"] = [round(v, 4) for v in wilson(int((clean >= threshold).sum()), clean.size)]
    other_good = np.array([r["score"] for r in rows if r["kind"] != "clean" and not r["bad"]])
    if other_good.size:
        out["unlabelled_volumes_of_artifact_draws_flagged"] = round(float((other_good >= threshold).mean()), 4)
    if bad:
        s = np.array([r["score"] for r in bad])
        out["detection_rate"] = round(float((s >= threshold).mean()), 4)
        out["bad_volumes"] = len(bad)
        if clean.size:
            out["auc_bad_vs_clean"] = round(float(roc_auc(np.r_[s, clean], np.r_[np.ones(len(s)), np.zeros(len(clean))])), 4)
    per_kind = {}
    for kind in KINDS:
        kb = [r for r in bad if r["kind"] == kind]
        if not kb:
            continue
        s = np.array([r["score"] for r in kb])
        entry = {"n": len(kb), "detection": round(float((s >= threshold).mean()), 4)}
        sev = {}
        for v in sorted({r["severity"] for r in kb}):
            sv = np.array([r["score"] for r in kb if r["severity"] == v])
            sev[f"{v:g}"] = round(float((sv >= threshold).mean()), 4)
        if len(sev) > 1 and len(sev) <= 5:
            entry["by_severity"] = sev
        per_kind[kind] = entry
    out["per_kind"] = per_kind
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def rows_of(draw_list: Iterable[Draw], scorer) -> list[dict]:
    """Score every volume of every draw with ``scorer(draw) -> (N,) P(bad)``."""
    rows = []
    for d in draw_list:
        p = scorer(d)
        for v in range(len(d.bad)):
            rows.append({"series": d.name, "kind": d.kind, "severity": d.severity, "seed": d.seed,
                         "volume": v, "bad": bool(d.bad[v]), "score": float(p[v])})
    return rows


# --------------------------------------------------------------------------------------------
# The recipe
# --------------------------------------------------------------------------------------------
def train_qcnet(info, out: str, *, data: str | None = None, epochs: int = 4, n: int = 24, batch: int = 8,
                lr: float = 2e-3, bn_momentum: float = 0.1, min_lr: float = 1e-5, weight_decay: float = 2e-4, seed: int = 0,
                threads: int = 1, progress: bool = True, time_limit_s: float | None = None,
                noise: float = NOISE, held_out_clean: int = 1, **overrides: Any) -> dict:
    """Train 3D-QCNet (see the module docstring); returns the file, sha256 and held-out metrics."""
    import math
    import random

    import torch

    from artifacts.detectors.dmri.qcnet import build_net
    from artifacts.metrics import roc_auc
    from artifacts.registry import build_config
    from artifacts.train.run import TrainRun, optimiser_step

    t_start = time.perf_counter()
    if epochs < 1 or n < 2 or batch < 2:
        raise ValueError("train qcnet: epochs >= 1, n >= 2 and batch >= 2 are required")
    config = build_config(info, overrides)
    torch.set_num_threads(int(threads))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    series, where = split_series("train", data)
    names = [Path(str(s.path)).name for s in series]
    held_plan = held_out_plan(len(series), held_out_clean)
    held = [draw_one(series[i], k, v, sd, noise=noise) for i, k, v, sd in held_plan]
    held_x = np.concatenate([draw_inputs(d, config).astype(np.float16) for d in held])
    held_bad = np.concatenate([d.bad for d in held])
    held_kind = np.concatenate([[d.kind] * len(d.bad) for d in held])

    net = build_net(config, bn_momentum=bn_momentum)
    reg = {id(p) for p in net.regularised()}
    groups = [{"params": [p for p in net.parameters() if id(p) in reg], "weight_decay": weight_decay},
              {"params": [p for p in net.parameters() if id(p) not in reg], "weight_decay": 0.0}]
    opt = torch.optim.Adam(groups, lr=lr)
    cmd = f"artifacts train dmri --model qcnet -o {out}" + (f" --data {data}" if data else "")
    steps_done, steps_planned = 0, None

    def fields() -> dict:
        return {
            "format": FORMAT, "model": info.full_name, "command": cmd,
            "call": {"data": data, "epochs": epochs, "n": n, "batch": batch, "lr": lr, "min_lr": min_lr,
                     "bn_momentum": bn_momentum,
                     "weight_decay": weight_decay, "seed": seed, "threads": int(threads), "noise": noise,
                     "time_limit_s": time_limit_s, "overrides": overrides},
            "config": dataclasses.asdict(config),
            "sampling": SAMPLING,
            "data": {**where, "series": names, "held_out": {"draws": len(held), "volumes": int(len(held_bad)),
                                                            "bad": int(held_bad.sum()), "seeds_from": HELD_OUT_SEED}},
        }

    run = TrainRun(out, "qcnet.safetensors", epochs=epochs, t_start=t_start, fields=fields,
                   metadata={"format": "artifacts DenseNet3D (3D-QCNet, Keras layer names)",
                             "config": json.dumps(dataclasses.asdict(config))})

    for epoch in range(epochs):
        t_epoch = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        plan = epoch_plan(n, len(series), seed, epoch)
        ep_draws = [draw_one(series[i], k, v, sd, noise=noise) for i, k, v, sd in plan]
        x, y, x_b0 = select(ep_draws, rng, config)
        del ep_draws
        t_data = time.perf_counter() - t_epoch
        order = rng.permutation(len(y))
        n_steps = len(order) // batch
        if steps_planned is None:
            steps_planned = n_steps * epochs
        net.train()
        losses, correct = [], 0
        for step in range(n_steps):
            idx = order[step * batch : (step + 1) * batch]
            xb = torch.from_numpy(np.stack([augment(x[i], rng) for i in idx]))[:, None]
            yb = torch.from_numpy(y[idx]).long()
            cur = min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * min(1.0, steps_done / max(steps_planned, 1))))
            for g in opt.param_groups:
                g["lr"] = cur
            logits = net(xb)
            loss = torch.nn.functional.cross_entropy(logits, yb)
            losses.append(optimiser_step(opt, loss, epoch, step))
            steps_done += 1
            correct += int((logits.argmax(1) == yb).sum())
            if progress and step % 10 == 0:
                print(f"epoch {epoch} step {step}/{n_steps} loss {np.mean(losses[-10:]):.4f} "
                      f"{time.perf_counter() - t_start:.0f}s", flush=True)
        p = score_volumes(net, held_x, batch)
        clean_p = p[held_kind == "clean"]
        thr95 = float(np.quantile(clean_p, 0.95)) if clean_p.size else 0.5
        held_res = {"auc_bad_vs_good": round(float(roc_auc(p, held_bad.astype(float))), 4),
                    "detection_at_0.5": round(float((p[held_bad] >= 0.5).mean()), 4),
                    "clean_fp_at_0.5": round(float((clean_p >= 0.5).mean()), 4) if clean_p.size else None,
                    "clean_q95": round(thr95, 4)}
        row = {"epoch": epoch, "train_volumes": int(len(y)), "train_bad": int((y == 0).sum()),
               "train_b0_bad": int(((y == 0) & x_b0).sum()), "train_b0_good": int(((y == 1) & x_b0).sum()),
               "steps": n_steps,
               "train_loss": round(float(np.mean(losses)), 5), "train_acc": round(correct / max(1, n_steps * batch), 4),
               "lr_end": float(f"{cur:.3g}"), "held_out": held_res, "data_seconds": round(t_data, 1),
               "seconds": round(time.perf_counter() - t_epoch, 1)}
        stop = run.end_epoch(row, net.state_dict(),
                             better=run.better(lambda r: r["held_out"]["auc_bad_vs_good"], row), time_limit_s=time_limit_s)
        if progress:
            print(json.dumps(row), flush=True)
        if stop:
            break
    return run.result()


# --------------------------------------------------------------------------------------------
# The check (model-card numbers)
# --------------------------------------------------------------------------------------------
def check(detector, on: str = "eval", *, seeds: int = 3, clean_seeds: int = 24, severities=CHECK_SEVERITIES,
          noise: float = NOISE, threshold: float | None = None, progress: bool = False) -> dict[str, Any]:
    """Per-volume numbers of a QCNet detector on simulated draws.

    ``on="eval"``: the held-out vendor (split ``eval``), every kind x ``severities`` x ``seeds``
    artifact draws (seeds from EVAL_SEED) and ``clean_seeds`` clean draws; ``on="train-held-out"``:
    held-out draws of the training series (seeds from HELD_OUT_SEED + 500: neither trained on nor
    used to pick the epoch), the series cycled, every kind x ``severities``, ``seeds`` draws each,
    and ``clean_seeds`` clean draws."""
    thr = detector.threshold if threshold is None else float(threshold)

    def scorer(d: Draw) -> np.ndarray:
        from artifacts.io.dmri import from_arrays

        s = from_arrays(d.data, bvals, bvecs, check_data=False)
        return detector.analyse(s).volume

    t0 = time.perf_counter()
    res: dict[str, Any] = {"on": on, "noise": noise}
    if on == "eval":
        series, where = split_series("eval")
        all_rows = []
        for s in series:
            bvals, bvecs = s.bvals, s.bvecs
            art = draws([s], KINDS, severities, range(EVAL_SEED, EVAL_SEED + seeds), noise=noise)
            cln = draws([s], ["clean"], [0.0], range(EVAL_SEED + 1000, EVAL_SEED + 1000 + clean_seeds), noise=noise)
            all_rows += rows_of(_progress(art, progress), scorer) + rows_of(_progress(cln, progress), scorer)
        res["series"] = [Path(str(s.path)).name for s in series]
        res["draws"] = {"artifact": f"9 kinds x severities {list(severities)} x {seeds} seeds",
                        "clean": clean_seeds}
    elif on == "train-held-out":
        series, where = split_series("train")
        all_rows = []
        plan, k, n_s = [], 0, len(series)
        for kind in KINDS:
            for sev in severities:
                for _ in range(seeds):
                    plan.append((k % n_s, kind, sev, HELD_OUT_SEED + 500 + k))
                    k += 1
        for i in range(clean_seeds):
            plan.append((k % n_s, "clean", 0.0, HELD_OUT_SEED + 500 + k))
            k += 1
        for i, k, v, sd in plan:
            bvals, bvecs = series[i].bvals, series[i].bvecs
            all_rows += rows_of([draw_one(series[i], k, v, sd, noise=noise)], scorer)
        res["series"] = [Path(str(s.path)).name for s in series]
    else:
        raise ValueError("check: on must be 'eval' or 'train-held-out'")
    res["at_threshold"] = summarise(all_rows, thr)
    if thr != 0.5:
        res["at_0.5"] = summarise(all_rows, 0.5)
    clean = np.array([r["score"] for r in all_rows if r["kind"] == "clean"])
    if clean.size:
        q = float(np.quantile(clean, 0.95))
        res["at_clean_fp_5pct_of_this_data (oracle, not a fixed threshold)"] = summarise(all_rows, q)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def _progress(it, on: bool):
    for i, d in enumerate(it):
        if on:
            print(f"  draw {i}: {d.kind} {d.severity:g} seed {d.seed}", flush=True)
        yield d


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m artifacts.train.dmri", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="print the model-card numbers (JSON)")
    ap.add_argument("--on", default="eval", choices=["eval", "train-held-out"])
    ap.add_argument("--weights", default=None, help="weight file (default: the shipped weights)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--clean-seeds", type=int, default=24)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("-o", "--out", default=None, help="write the JSON here too")
    a = ap.parse_args(argv)
    if not a.check:
        ap.error("nothing to do (use --check, or `artifacts train dmri --model qcnet` to train)")
    import torch

    from artifacts.registry import create

    torch.set_num_threads(1)
    det = create("qcnet", weights=a.weights, device="cpu")
    res = check(det, a.on, seeds=a.seeds, clean_seeds=a.clean_seeds, threshold=a.threshold, progress=True)
    res["weights"] = det.weight_id
    text = json.dumps(res, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
