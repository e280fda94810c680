"""Fusion of the training-free synthetic-image statistics: one logistic model on their raw features.

The spectral detector gives one raw statistic (the mean log peak ratio at the up-sampling
frequencies) and the correlation detector four (local predictor weights and gain). Both look at
different traces (periodic decoder up-sampling; pixel-level smoothness), so their evidence adds up:
the fusion fits one logistic model ``P(generated) = sigmoid(w . x + b)`` on the five raw features
together (``artifacts train synthetic --model fusion``, the same recipe and data as its
components), rather than stacking two separately calibrated scores. With five weights and a few
hundred training crops, it does not overfit much; held-out AUCs are in the calibration file.

The heatmap uses the same weights on the components' raw maps, the spectral window grid resampled
to the correlation tile grid. The fusion needs both components: when one of them does not apply
(an image under 130 px a side, or one without texture) the fusion does not apply either and says
why. The components' own calibrated scores are not part of this model (their calibration files are
not needed); ``meta["raw"]`` keeps the five raw features. Held-out AUC of the shipped calibration
(132 crops of the split's held-out part): 0.82 overall, 0.89 as PNG, 0.75 as JPEG, barely above the
correlation detector alone (the spectral statistic adds little on that data).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from artifacts.calibration import Logistic
from artifacts.detectors.calibrated import Raw
from artifacts.detectors.synthetic.correlation import FEATURES, CorrelationConfig, CorrelationDetector
from artifacts.detectors.synthetic.base import CalibratedSynthetic
from artifacts.detectors.synthetic.spectral import SpectralConfig, SpectralDetector
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec

FUSED_FEATURES = ("spectral",) + FEATURES


@dataclass
class SyntheticFusionConfig:
    threshold: float | None = None  # operating threshold (default: the weights' threshold, 0.5)


CALIBRATION = WeightSpec(
    tag="calib-v1",
    file="fusion_calib-v1.json",
    sha256="170be0daa58033aae8d272fb083eba1809adaf69d0922ab74c5dc797ee287ddb",
    license="Apache-2.0",
    source="fitted by this package on the training part of the `synthetic` split (256 px centre crops, PNG + JPEG)",
    train_command="artifacts train synthetic --model fusion -o DIR",
    input_spec={"color": "RGB (luminance used)", "dtype": "uint8 or uint16", "min_side": 130, "resize": "never"},
    output="score: P(image generated); heatmap: P(generated) per tile neighbourhood; balanced priors",
    threshold=0.5,
    package="artifacts.detectors.synthetic.weights",
)


@register_model(
    "synthetic",
    "fusion",
    config=SyntheticFusionConfig,
    weights=(CALIBRATION,),
    default=True,  # the best held-out AUC of the train split (0.82; SAFE 0.79-0.81 re-encoded), not chosen on dev
    description="training-free: logistic fusion of the spectral-peak and pixel-correlation statistics",
)
class SyntheticFusionDetector(CalibratedSynthetic):
    """Logistic fusion of the spectral and correlation raw statistics (see the module docstring)."""

    uncalibrated = Logistic((0.0,) * len(FUSED_FEATURES), 0.0)  # 0.5 everywhere until calibrated
    feature_names = FUSED_FEATURES

    def __init__(self, config, weights=None, device=None):
        super().__init__(config, weights, device)
        # the raw features come from the components' default settings, uncalibrated
        self.spectral = SpectralDetector(SpectralConfig(), weights=None, device=self.device)
        self.correlation = CorrelationDetector(CorrelationConfig(), weights=None, device=self.device)

    def raw(self, image) -> Raw | Detection:
        import cv2

        parts = {"spectral": self.spectral.raw(image), "correlation": self.correlation.raw(image)}
        missing = {k: v.reason for k, v in parts.items() if isinstance(v, Detection)}
        if missing:
            return Detection.not_applicable("; ".join(f"{k} does not apply: {r}" for k, r in missing.items()))
        spec, corr = parts["spectral"], parts["correlation"]
        hc, wc = corr.map.shape[1:]
        # the spectral grid covers its window box; put it on the tile grid's cells (nearest box cell)
        sbox, cbox = spec.preprocessing["grid"]["box"], corr.preprocessing["grid"]["box"]
        ys = np.clip(((np.arange(hc) + 0.5) * (cbox[2] - cbox[0]) / hc + cbox[0] - sbox[0]) / (sbox[2] - sbox[0]), 0, 1)
        xs = np.clip(((np.arange(wc) + 0.5) * (cbox[3] - cbox[1]) / wc + cbox[1] - sbox[1]) / (sbox[3] - sbox[1]), 0, 1)
        sh, sw = spec.map.shape
        smap = cv2.remap(spec.map.astype(np.float32),
                         np.broadcast_to((xs * sw - 0.5).astype(np.float32)[None, :], (hc, wc)).copy(),
                         np.broadcast_to((ys * sh - 0.5).astype(np.float32)[:, None], (hc, wc)).copy(),
                         interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        stat = np.concatenate([[float(spec.stat)], np.asarray(corr.stat, dtype=np.float64)])
        return Raw(
            map=np.concatenate([smap[None], corr.map], axis=0),
            stat=stat,
            diagnostics={"features": dict(zip(FUSED_FEATURES, np.round(stat, 4).tolist())),
                         "spectral": spec.diagnostics, "correlation": corr.diagnostics},
            preprocessing={**corr.preprocessing,
                           "spectral": {k: v for k, v in spec.preprocessing.items() if k != "grid"}},
        )
