"""3D-QCNet (Ahmad, Parker, Riahi Samani, Verma; arXiv 2103.05285, 2021 / Front. Neuroinform. 2023,
PMC10494975): a 3-D DenseNet that calls each diffusion-weighted volume "bad" (artifact) or "good".

Source read for this port: ``adnamad/3D-QCNet`` at commit ``4f5d7cff99581002d632160c48bae06282de59d5``
(``3d-qcnet.py`` and ``densenet.py``, Keras 2 / TensorFlow 1). Facts taken from it:

* model: ``densenet.DenseNet3D(input_shape=(96, 96, 70, 1), include_top=False, pooling="avg",
  depth=10)`` then ``Dense(2, activation="softmax")``; the DenseNet3D defaults apply:
  ``nb_dense_block=3``, ``growth_rate=12``, ``nb_filter=-1`` (-> ``2 * growth_rate`` = 24),
  ``bottleneck=False``, ``reduction=0.0`` (compression 1), ``dropout_rate=0.0``,
  ``weight_decay=1e-4`` (L2 on the initial and transition convolutions, not on the dense 3x3x3
  ones), ``subsample_initial_block=False``, ``transition_pooling="avg"``. Depth 10 gives
  ``(10 - 4) / 3 = 2`` conv blocks per dense block.
* layers: initial ``Conv3D(24, 3x3x3, same, no bias)``; each conv block BN(eps 1.1e-5) -> ReLU ->
  ``Conv3D(12, 3x3x3, same, no bias)`` concatenated to its input; a transition BN -> ReLU ->
  ``Conv3D(C, 1x1x1)`` -> ``AveragePooling3D(2)``; after the last block BN -> ReLU -> global average
  pooling -> dense 2-way softmax. Channels 24 -> 48 -> 72 -> 96; 114 k parameters.
* output: class 0 is **bad** (the test script sets ``gt_cls = 0 if folder == "bad"``) and a volume
  is called bad when ``softmax[0] > thresh`` (default 0.5). Compiled with ``Adam(lr=1e-4)`` and
  ``binary_crossentropy``; released checkpoint ``models/3dqcnet_base-model_ep9.hdf5`` (not available
  offline; :func:`keras_to_torch` maps its layer names onto this module's keys).
* preprocessing of one volume (a 3-D NIfTI): ``cv2.resize(slice, (96, 96))`` (bilinear) of each of
  the first ``min(Z, 70)`` slices into a zero array of shape (96, 96, 70); no intensity
  normalisation. Keras input layout ``(96, 96, 70, 1)`` = (x, y, slice, channel); here
  ``(B, 1, 96, 96, 70)``, the same spatial order, so kernels map one to one.

Two settings deviate in the shipped weights, each a config field whose faithful value is one
override away (``create("qcnet", weights="none", **FAITHFUL)``):

* ``subsample_initial_block=True``: the official DenseNet3D's own option (7x7x7 stride-2 initial
  convolution + BN + ReLU + 3x3x3 stride-2 max pooling, TF "same" padding) so that a training run
  fits 2 CPU cores (a full-resolution step took ~11 s per volume here, the subsampled one ~0.4 s);
* ``normalise="b0p98"``: each series is divided by the 98th percentile of its b=0 signal (one
  per-series scale, recorded in ``meta``). Without it the network sees raw scanner units, which
  differ by ~70x between the vendors here (UIH b0 p98 ~600, Philips ~40 000); ``"none"`` is the
  official behaviour.

Per-volume P(bad) -> :attr:`DWIScores.volume`; the model is volume-level, so ``slice`` is None
(every slice of a volume gets the volume's score).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from artifacts.detectors.dmri.base import DWIDetector, DWIScores
from artifacts.registry import register_model
from artifacts.weights import WeightSpec

NORMALISE = ("none", "b0p98")
#: the official architecture and preprocessing (config overrides)
FAITHFUL = {"subsample_initial_block": False, "normalise": "none"}
#: a tiny architecture for fast tests (random weights only)
TINY = {"size": 32, "n_slices": 16, "depth": 7, "growth_rate": 2, "nb_filter": 4}
B0_THRESHOLD = 50.0


@dataclass
class QCNetConfig:
    size: int = 96  # in-plane size each slice is resized to (official 96)
    n_slices: int = 70  # slices kept / zero-padded to (official 70)
    depth: int = 10  # DenseNet depth, 3 N + 4 (official 10 -> 2 conv blocks per dense block)
    nb_dense_block: int = 3
    growth_rate: int = 12
    nb_filter: int = -1  # initial filters; -1 -> 2 * growth_rate (official)
    dropout_rate: float = 0.0
    subsample_initial_block: bool = True  # official False; True in the shipped CPU-trained weights
    normalise: str = "b0p98"  # "none" (official) or "b0p98" (series / its b0 98th percentile)
    batch: int = field(default=4, metadata={"output": False})  # volumes per forward pass
    threshold: float | None = None  # operating threshold on P(bad) (default: the weights')

    def __post_init__(self) -> None:
        if self.normalise not in NORMALISE:
            raise ValueError(f"qcnet: normalise must be one of {NORMALISE}, got {self.normalise!r}")
        if (self.depth - 4) % 3 or self.depth < 7:
            raise ValueError(f"qcnet: depth must be 3 N + 4 with N >= 1, got {self.depth}")
        if self.size < 8 or self.n_slices < 2 or self.growth_rate < 1 or self.nb_dense_block < 1 or self.batch < 1:
            raise ValueError("qcnet: size >= 8, n_slices >= 2, growth_rate >= 1, nb_dense_block >= 1, batch >= 1")

    def arch(self) -> dict[str, Any]:
        return {"depth": self.depth, "nb_dense_block": self.nb_dense_block, "growth_rate": self.growth_rate,
                "nb_filter": self.nb_filter if self.nb_filter > 0 else 2 * self.growth_rate,
                "dropout_rate": self.dropout_rate, "subsample_initial_block": bool(self.subsample_initial_block)}


QCNET_SIM = WeightSpec(
    tag="sim-v2",
    file="qcnet_sim-v2.safetensors",
    sha256="89635344548db1275f74b07ff0c4bb14a4a72694c213d9be840bbe005b15567b",
    license="Apache-2.0 (weights trained by this package)",
    source="trained by this package from scratch on artifacts simulated (artifacts.datasets.dmri_artifacts) on the "
           "`dmri` split's training series (Toshiba Galan, UIH uMR770); Philips never seen",
    train_command="artifacts train dmri --model qcnet -o DIR",
    input_spec={"resize": "each slice bilinear to 96x96", "slices": "first 70, zero-padded to 70",
                "normalisation": "series / 98th percentile of its b=0 signal", "layout": "(B, 1, 96, 96, 70)"},
    output="P(bad) per volume (softmax class 0, as the official code)",
    threshold=0.54,
    package="artifacts.detectors.dmri.weights",
    notes="A small CPU run (180 steps of 8 volumes, 892 s, best epoch 2 of 4) with the good "
          "training volumes matched to the bad ones by b-value (b=0 / DW mix), weak. Threshold 0.54 = 95th "
          "percentile of held-out clean volumes. Held-out training draws: detection 0.47 at "
          "5.2 % clean FP (AUC 0.79); Philips (held-out vendor): detection "
          "0.31 at 0.0 % clean FP (AUC 0.73). See docs/models/dmri-qcnet.md.",
)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------
def _same_pad(x, kernel: int, stride: int):
    """TensorFlow "same" padding (the extra voxel after, as TF) for a cubic kernel."""
    import torch.nn.functional as F

    pads = []
    for n in reversed(x.shape[2:]):
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _net_class():
    import torch
    from torch import nn

    class DenseNet3D(nn.Module):
        """The official DenseNet3D (no bottleneck, no compression), layers named as the Keras
        layers of ``densenet.py`` (``initial_Conv3D``, ``dense_B_I_bn``, ``dense_B_I_Conv3D``,
        ``tr_B_bn``, ``tr_B_Conv3D``, ``final_bn``) plus the 2-way head ``head``."""

        def __init__(self, depth=10, nb_dense_block=3, growth_rate=12, nb_filter=24, dropout_rate=0.0,
                     subsample_initial_block=False, classes=2, bn_momentum=0.01):
            super().__init__()
            n_layers = (depth - 4) // 3
            self.n_layers, self.nb_dense_block, self.sub = n_layers, nb_dense_block, subsample_initial_block
            self.dropout = nn.Dropout(dropout_rate) if dropout_rate else nn.Identity()

            def bn(c):  # Keras BatchNormalization(epsilon=1.1e-5, momentum=0.99)
                return nn.BatchNorm3d(c, eps=1.1e-5, momentum=bn_momentum)

            L = nn.ModuleDict()
            k = 7 if subsample_initial_block else 3
            L["initial_Conv3D"] = nn.Conv3d(1, nb_filter, k, stride=2 if subsample_initial_block else 1,
                                            padding=0 if subsample_initial_block else 1, bias=False)
            if subsample_initial_block:
                L["initial_bn"] = bn(nb_filter)
            c = nb_filter
            for b in range(nb_dense_block):
                for i in range(n_layers):
                    L[f"dense_{b}_{i}_bn"] = bn(c)
                    L[f"dense_{b}_{i}_Conv3D"] = nn.Conv3d(c, growth_rate, 3, padding=1, bias=False)
                    c += growth_rate
                if b < nb_dense_block - 1:
                    L[f"tr_{b}_bn"] = bn(c)
                    L[f"tr_{b}_Conv3D"] = nn.Conv3d(c, c, 1, bias=False)
            L["final_bn"] = bn(c)
            L["head"] = nn.Linear(c, classes)
            self.layers = L
            self.features = c
            for m in self.modules():  # Keras he_normal on convolutions
                if isinstance(m, nn.Conv3d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

        def forward(self, x):
            L, F = self.layers, torch.nn.functional
            if self.sub:
                x = L["initial_Conv3D"](_same_pad(x, 7, 2))
                x = F.relu(L["initial_bn"](x))
                x = F.max_pool3d(_same_pad(x, 3, 2), 3, 2)  # zeros pad = -inf pad after ReLU
            else:
                x = L["initial_Conv3D"](x)
            for b in range(self.nb_dense_block):
                for i in range(self.n_layers):
                    y = L[f"dense_{b}_{i}_Conv3D"](F.relu(L[f"dense_{b}_{i}_bn"](x)))
                    x = torch.cat([x, self.dropout(y)], 1)
                if b < self.nb_dense_block - 1:
                    x = F.avg_pool3d(L[f"tr_{b}_Conv3D"](F.relu(L[f"tr_{b}_bn"](x))), 2)
            x = F.relu(L["final_bn"](x)).mean(dim=(2, 3, 4))
            return L["head"](x)

        def regularised(self) -> list:
            """Parameters with the official L2 (weight_decay 1e-4): initial/transition convolutions."""
            return [m.weight for n, m in self.layers.items() if n == "initial_Conv3D" or n.startswith("tr_") and
                    n.endswith("Conv3D")]

    return DenseNet3D


def build_net(config: QCNetConfig, bn_momentum: float = 0.01):
    """The network of a config (``bn_momentum``: PyTorch convention; 0.01 = Keras' 0.99; it only
    matters while training)."""
    return _net_class()(**config.arch(), bn_momentum=bn_momentum)


def arch_from_state_dict(state: dict) -> dict[str, Any]:
    """The architecture a state dict of :class:`DenseNet3D` was built with."""
    w0 = state["layers.initial_Conv3D.weight"]
    blocks = sorted({int(k.split("_")[1]) for k in state if k.startswith("layers.dense_")})
    n_layers = len({k.split("_")[2] for k in state if k.startswith("layers.dense_0_")})
    return {"depth": 3 * n_layers + 4, "nb_dense_block": len(blocks),
            "growth_rate": int(state["layers.dense_0_0_Conv3D.weight"].shape[0]), "nb_filter": int(w0.shape[0]),
            "dropout_rate": None, "subsample_initial_block": int(w0.shape[-1]) == 7}


def keras_to_torch(layers: dict[str, list]) -> dict:
    """Keras weights of the official model (layer name -> ``layer.get_weights()``, e.g. read from
    ``3dqcnet_base-model_ep9.hdf5`` with h5py) -> a state dict of :class:`DenseNet3D`.
    Conv3D kernels (kx, ky, kz, in, out) -> (out, in, kx, ky, kz); BN [gamma, beta, mean, var];
    the final Dense (the one layer named ``dense*`` with a 2-D kernel) -> ``head``."""
    import torch

    out = {}
    for name, w in layers.items():
        if not w:
            continue
        if name.endswith("Conv3D"):
            out[f"layers.{name}.weight"] = torch.from_numpy(np.asarray(w[0]).transpose(4, 3, 0, 1, 2).copy())
        elif name.endswith("_bn"):
            for key, v in zip(("weight", "bias", "running_mean", "running_var"), w):
                out[f"layers.{name}.{key}"] = torch.from_numpy(np.asarray(v, np.float32))
            out[f"layers.{name}.num_batches_tracked"] = torch.tensor(0)
        elif np.asarray(w[0]).ndim == 2:
            out["layers.head.weight"] = torch.from_numpy(np.asarray(w[0]).T.copy())
            out["layers.head.bias"] = torch.from_numpy(np.asarray(w[1]))
    return out


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------
def series_scale(data: np.ndarray, b0_mask: np.ndarray | None, normalise: str) -> float:
    """The one per-series intensity divisor (1.0 for ``normalise="none"``)."""
    if normalise == "none":
        return 1.0
    ref = data[..., b0_mask] if b0_mask is not None and np.any(b0_mask) else data
    pos = ref[ref > 0]
    return float(np.percentile(pos, 98)) if pos.size else 1.0


def preprocess(volumes: np.ndarray, size: int = 96, n_slices: int = 70, scale: float = 1.0):
    """Volumes (X, Y, Z, N) or one (X, Y, Z) -> float32 (N, size, size, n_slices) as the official
    script: each slice resized in-plane (bilinear, half-pixel centres, no antialiasing, as
    ``cv2.resize`` INTER_LINEAR), the first ``n_slices`` slices kept, zero-padded to ``n_slices``;
    divided by ``scale``. Returns (array, what was done)."""
    import torch
    import torch.nn.functional as F

    v = np.asarray(volumes, np.float32)
    if v.ndim == 3:
        v = v[..., None]
    if v.ndim != 4:
        raise ValueError(f"qcnet: volumes of shape {v.shape}; expected (X, Y, Z[, N])")
    x, y, z, n = v.shape
    keep = min(z, n_slices)
    t = torch.from_numpy(np.ascontiguousarray(v[:, :, :keep].transpose(3, 2, 0, 1)))  # N, Z, X, Y
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    out = np.zeros((n, size, size, n_slices), np.float32)
    out[..., :keep] = t.permute(0, 2, 3, 1).numpy()
    if scale != 1.0:
        out /= np.float32(scale)
    info = {"input_xyz": [x, y, z], "resize": [size, size], "interpolation": "bilinear (cv2 INTER_LINEAR)",
            "slices_kept": keep, "slices_cropped": z - keep, "zero_padded_slices": n_slices - keep}
    return out, info


# --------------------------------------------------------------------------------------------
# The detector
# --------------------------------------------------------------------------------------------
@register_model(
    "dmri",
    "qcnet",
    config=QCNetConfig,
    weights=(QCNET_SIM,),
    needs_weights=True,
    description="3D-QCNet: DenseNet3D (depth 10) calls each diffusion volume bad/good (96x96x70 input)",
)
class QCNetDetector(DWIDetector):
    """3D-QCNet per-volume artifact detector (volume-level: no per-slice scores)."""

    recipe = "qcnet"

    def __init__(self, config: QCNetConfig, weights=None, device: str | None = None):
        super().__init__(config, weights, device)
        import torch

        self.net = build_net(config)
        if weights is not None:
            from artifacts.weights import load_checkpoint

            state = load_checkpoint(weights.path)
            found = arch_from_state_dict(state)
            want = {**config.arch(), "dropout_rate": None}
            if found != want:
                raise ValueError(f"{weights.path}: weights are for architecture {found}, config asks for {want} "
                                 "(the shipped sim-v2 weights: subsample_initial_block=True)")
            self.net.load_state_dict(state, strict=True)
        self.net.eval().to(self.device)
        self._torch = torch

    def volume_scores(self, x: np.ndarray) -> np.ndarray:
        """P(bad) of preprocessed volumes (N, S, S, D)."""
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), self.config.batch):
                t = torch.from_numpy(np.ascontiguousarray(x[i : i + self.config.batch]))[:, None]
                out.append(torch.softmax(self.net(t.to(self.device)).float(), 1)[:, 0].cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def analyse(self, series) -> DWIScores:
        cfg = self.config
        data = series.data
        scale = series_scale(data, np.asarray(series.b0_mask), cfg.normalise)
        x, info = preprocess(data, cfg.size, cfg.n_slices, scale)
        p = self.volume_scores(x)
        info.update(normalisation=cfg.normalise, scale=round(scale, 6),
                    note=None if cfg.normalise == "none" else
                    "deviation from the official code (no normalisation): series divided by its b0 98th percentile")
        return DWIScores(volume=p.astype(np.float32), slice=None,
                         meta={"preprocessing": info, "qcnet_config": asdict(cfg), "level": "volume"})
