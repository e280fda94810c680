"""Recipe ``difix``: train the one-step reference-guided restorer ``diffusion/difix``.

``artifacts train diffusion --model difix -o OUT [--epochs N] [--data DATA.json] [--seed S]
[--set minutes=25 --set crop=64 ...]``.

**Data** in the JSON layout of Difix3D's ``src/dataset.py`` / README (nv-tlabs/Difix3D; read in
the fork cxzhou35/Difix3D@4774306dc23a): ``{"train": {ID: {"image": degraded, "target_image":
clean, "ref_image": reference, "prompt": "remove degradation"}}, "test": {ID: {...}}}`` (paths;
``ref_image`` optional). Without ``--data``, :func:`write_difix_json` builds one in
``OUT/data/`` from the lego and fern scenes of ``../shared/data/views`` with the view-artifact
generator (:mod:`artifacts.datasets.view_artifacts`): targets are the scene's views that are in
neither the ``tune`` nor the ``eval`` list of ``artifacts/datasets/splits/views.json`` (the
``eval`` views are never used, not even as references), degraded with the *tuning* kinds only
(the held-out kinds ghosting and colour bleeding stay unseen), each with its most similar
reference view (the restorer's own choice); the ``test`` part is the ``tune`` views.

**Losses** (Difix: L2 + LPIPS + Gram, weights 1/1/1 in the official training command, Gram after
a warm-up of 2000 of 10000 steps): L2 on [-1, 1] images, a deep-feature distance in the LPIPS
recipe on the offline EfficientNet-Lite0 features of :mod:`artifacts.metrics.perceptual`
(strides 2/4/8, unit-normalised over channels, squared difference; not LPIPS: its learned weights
are not available offline), and a Gram (style) loss on the same features, switched on after the
first ``gram_warmup`` (20 %) of the steps.

**What trains.** With ``base=DIR`` (a local SD-Turbo folder) as in Difix: the whole UNet, the VAE
decoder's LoRA and the skip convolutions; the VAE encoder frozen. Without it (the default here):
the tiny random network of :mod:`~artifacts.restoration.diffusion.difix_layout` from scratch,
every parameter trained (nothing is pretrained, so LoRA has no role: ``lora_rank_vae=0``).
AdamW, random ``crop`` x ``crop`` crops (the same window in the degraded, clean and reference
views), seeded. Stops after ``epochs`` passes or ``minutes`` of wall time, whichever first.

Outputs: ``OUT/diffusion-difix.pkl`` (the official ``save_model`` layout plus ``artifacts_arch``;
load with ``create("diffusion/difix", weights=PATH)``) and ``OUT/train.json`` (command, data,
settings, loss log, held-out loss, seconds, sha256).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "artifacts-train-difix/1"
PROMPT = "remove degradation"
FEATURE_STRIDES = (2, 4, 8)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def write_difix_json(out_dir: str | Path, scenes: tuple[str, ...] = ("lego", "fern"), data_root: str | Path | None = None,
                     seed: int = 100, severities: tuple[float, ...] = (0.5, 1.0), max_views: int = 12) -> Path:
    """Degraded training views of ``scenes`` in Difix's JSON layout (see the module docstring);
    at most ``max_views`` target views per scene (evenly spaced). Returns the JSON path."""
    from artifacts.datasets.splits import load_split
    from artifacts.datasets.view_artifacts import DEFAULT_CONFIG, load_view, select_kinds, write_view_set
    from artifacts.io import load_image, save_image
    from artifacts.recon3d.scenes import load_scene
    from artifacts.restoration.diffusion.restorer import select_refs

    split = load_split("views")
    root = Path(data_root) if data_root else _shared_views()
    out = Path(out_dir)
    kinds = select_kinds(split["tuning_kinds"])
    data: dict[str, dict] = {"train": {}, "test": {}}
    for scene in scenes:
        spec = split["scenes"][scene]
        views = {Path(v.image_path).stem: Path(v.image_path) for v in load_scene(root / scene).views}
        held = set(spec["eval"])  # never used
        tune = [v for v in spec["tune"] if v in views]
        train = [v for v in views if v not in held and v not in spec["tune"]]
        if len(train) > max_views:
            train = [train[int(i)] for i in np.linspace(0, len(train) - 1, max_views).round()]
        ref_names = list(views) if spec["ref_names"] == "all" else list(spec["ref_names"])
        ref_names = [r for r in ref_names if r not in held]
        ref_px = {}
        for r in ref_names:
            path = out / scene / "refs" / f"{r}.png"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                save_image(path, load_view(views[r], DEFAULT_CONFIG, split["max_side"])[0])
            ref_px[r] = (str(path.resolve()), load_image(path).pixels)
        for part, chosen in (("train", train), ("test", tune)):
            manifest = write_view_set([views[v] for v in chosen], out / scene / part, seed=seed, severities=severities,
                                      kinds=kinds, max_side=split["max_side"])
            base = (out / scene / part).resolve()
            for entry in manifest:
                stem = Path(entry["view"]).stem
                names = [r for r in ref_px if r != stem]
                clean = load_image(base / entry["clean"]).pixels
                pick = names[select_refs(clean, [ref_px[r][1] for r in names], 1)[0]]
                data[part][f"{scene}/{entry['name']}"] = {"image": str(base / entry["image"]),
                                                          "target_image": str(base / entry["clean"]),
                                                          "ref_image": ref_px[pick][0], "prompt": PROMPT}
    path = out / "difix_data.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def _shared_views() -> Path:
    from artifacts.train.synthetic import project_root

    return project_root().parent / "shared" / "data" / "views"


def read_difix_json(path: str | Path, part: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(degraded, clean, reference or None) uint8 arrays of one part of a Difix JSON file."""
    from artifacts.io import load_image

    entries = json.loads(Path(path).read_text()).get(part, {})
    out = []
    for _id, e in entries.items():
        deg, clean = load_image(e["image"]).pixels, load_image(e["target_image"]).pixels
        if deg.shape != clean.shape:
            raise ValueError(f"{path}: {_id}: image and target_image differ in size")
        ref = load_image(e["ref_image"]).pixels if e.get("ref_image") else None
        if ref is not None and ref.shape != clean.shape:
            import cv2

            ref = cv2.resize(ref, (clean.shape[1], clean.shape[0]), interpolation=cv2.INTER_AREA)
        out.append(tuple(_u8(a) if a is not None else None for a in (deg, clean, ref)))
    return out


def _u8(a: np.ndarray) -> np.ndarray:
    return np.rint(a / 257.0).astype(np.uint8) if a.dtype == np.uint16 else a[..., :3]


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------
class FeatureLoss:
    """Deep-feature distance and Gram loss on the frozen EfficientNet-Lite0 (ImageNet) features
    (both on the features unit-normalised over channels, so that the two terms have comparable size)."""

    def __init__(self, device: str = "cpu"):
        from artifacts.detectors.views.features import FeatureNet
        from artifacts.detectors.views.puzzlesim import BACKBONE_WEIGHTS
        from artifacts.weights import resolve

        self.net = FeatureNet("efficientnet-lite0", FEATURE_STRIDES, resolve(BACKBONE_WEIGHTS).path).to(device)

    def features(self, x):  # x in [-1, 1]
        n = self.net
        return n.net.features(((x + 1) / 2 - n.shift) / n.scale, strides=FEATURE_STRIDES)

    def __call__(self, pred, target):
        import torch

        fp = self.features(pred)
        with torch.no_grad():
            ft = self.features(target)
        feat = gram = 0.0
        for s in FEATURE_STRIDES:
            a, b = fp[s], ft[s]
            na, nb = a / (a.norm(dim=1, keepdim=True) + 1e-10), b / (b.norm(dim=1, keepdim=True) + 1e-10)
            feat = feat + ((na - nb) ** 2).sum(1).mean()
            gram = gram + ((_gram(na) - _gram(nb)) ** 2).mean()
        return feat / len(FEATURE_STRIDES), gram / len(FEATURE_STRIDES)


def _gram(f):
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def _batch(rng, samples, size: int, crop: int):
    import torch

    xs, ys = [], []
    for i in rng.integers(0, len(samples), size):
        deg, clean, ref = samples[int(i)]
        h, w = clean.shape[:2]
        c = min(crop, h, w) // 8 * 8
        top, left = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        win = (slice(top, top + c), slice(left, left + c))
        views = [deg[win], ref[win] if ref is not None else None]
        xs.append([v for v in views if v is not None])
        ys.append(clean[win])
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 127.5 - 1  # noqa: E731
    x = torch.stack([torch.stack([t(v) for v in vs]) for vs in xs])
    return x, torch.stack([t(y) for y in ys])


def _held_out(net, samples, crop: int, seed: int) -> dict[str, float]:
    import torch

    rng = np.random.default_rng(seed)
    x, y = _batch(rng, samples, min(16, len(samples)), crop)
    with torch.no_grad():
        pred = torch.cat([net(x[i:i + 4])[:, 0] for i in range(0, len(x), 4)])
    mse_out = float(((pred - y) ** 2).mean() / 4)  # in [0, 1] units
    mse_in = float(((x[:, 0] - y) ** 2).mean() / 4)
    return {"psnr_degraded": round(float(10 * np.log10(1 / max(mse_in, 1e-12))), 3),
            "psnr_restored": round(float(10 * np.log10(1 / max(mse_out, 1e-12))), 3)}


def train_difix(info, out: str, *, data: str | None = None, epochs: int | None = None, seed: int = 0,
                progress: bool = True, minutes: float = 25.0, steps: int | None = None, crop: int = 64,
                batch: int = 4, lr: float | None = None, lambda_l2: float = 1.0, lambda_feat: float = 1.0,
                lambda_gram: float = 1.0, gram_warmup: float = 0.2, threads: int | None = None,
                base: str | None = None, prompt_embeds: str | None = None, timestep: int = 199,
                log_every: int = 10, max_views: int = 12) -> dict[str, Any]:
    """Train ``diffusion/difix`` (see the module docstring); returns the record written to train.json."""
    import torch

    from artifacts.restoration.diffusion import difix_layout as L
    from artifacts.weights import file_sha256

    if threads:
        torch.set_num_threads(int(threads))
    t_start = time.perf_counter()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data_path = Path(data) if data else write_difix_json(out_dir / "data", max_views=max_views)
    train, test = read_difix_json(data_path, "train"), read_difix_json(data_path, "test")
    if not train:
        raise ValueError(f"{data_path}: no 'train' entries")
    if base:
        from artifacts.restoration.diffusion.restorer import DifixConfig, _prompt

        net = L.build_from_base(base, None, _prompt(DifixConfig(base=base, prompt_embeds=prompt_embeds)), timestep)
        net.vae.requires_grad_(False)
        for n, p in net.vae.named_parameters():
            p.requires_grad_("lora" in n or "skip" in n)
        lr = 2e-5 if lr is None else lr
        mode = "fine-tune of the base (UNet + VAE decoder LoRA + skips)"
    else:
        net = L.build_tiny(seed, timestep, lora_rank_vae=0)
        lr = 2e-4 if lr is None else lr
        mode = "tiny network from scratch (all parameters)"
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    floss = FeatureLoss()
    per_epoch = max(1, len(train) // batch)
    total = steps if steps is not None else per_epoch * (epochs if epochs is not None else 10_000)
    warm = int(gram_warmup * (steps if steps is not None else per_epoch * (epochs or 0))) if (steps or epochs) else 200
    log, step = [], 0
    deadline = t_start + minutes * 60
    before = _held_out(net.eval(), test or train, crop, seed + 1)
    net.train()
    while step < total and time.perf_counter() < deadline:
        x, y = _batch(rng, train, batch, crop)
        pred = net(x)[:, 0]
        l2 = torch.nn.functional.mse_loss(pred, y)
        feat, gram = floss(pred, y)
        loss = lambda_l2 * l2 + lambda_feat * feat + (lambda_gram * gram if step >= warm else 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step == 1 or step % log_every == 0:
            log.append({"step": step, "loss": round(float(loss.detach()), 5), "l2": round(float(l2.detach()), 5),
                        "feat": round(float(feat.detach()), 5), "gram": round(float(gram.detach()), 7),
                        "s": round(time.perf_counter() - t_start, 1)})
            if progress:
                print(json.dumps(log[-1]), flush=True)
    net.eval()
    after = _held_out(net, test or train, crop, seed + 1)
    weights = out_dir / "diffusion-difix.pkl"
    torch.save(net.official_state(opt, arch=True), weights)
    record = {"format": FORMAT, "model": info.full_name, "command": f"artifacts train diffusion --model difix -o {out}",
              "data": str(data_path), "counts": {"train": len(train), "test": len(test)}, "mode": mode,
              "settings": {"seed": seed, "steps": step, "epochs_done": round(step / per_epoch, 2), "crop": crop,
                           "batch": batch, "lr": lr, "lambda_l2": lambda_l2, "lambda_feat": lambda_feat,
                           "lambda_gram": lambda_gram, "gram_from_step": warm, "timestep": timestep,
                           "threads": torch.get_num_threads(), "minutes": minutes},
              "params": {"unet": L.count_params(net.unet), "vae": L.count_params(net.vae)},
              "held_out_crops": {"before": before, "after": after, "part": "test" if test else "train"},
              "log": log, "seconds": round(time.perf_counter() - t_start, 1), "weights": str(weights),
              "sha256": file_sha256(weights), "complete": True}
    (out_dir / "train.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
