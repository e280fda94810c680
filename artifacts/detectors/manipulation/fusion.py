"""Fusion of the training-free manipulation detectors that apply to an image.

Each component returns a calibrated heatmap and score, or ``not_applicable`` (JPEG methods on a
PNG, copy-move on a textureless image). The fusion keeps the applicable ones and takes, per pixel
and for the image, the maximum of their log-odds: each component is specialised (copy-move fires
only on duplicated regions, the JPEG methods only where a compression history differs), so the
strongest piece of evidence decides, and a component that does not apply is left out rather than
guessed. The maxima are calibrated again on generator data of every kind, stored as JPEG after a
JPEG history so that every component can take part (``artifacts train manipulation --model
fusion``). The components' own scores are reported in ``categories``, which of them applied (and
why the others did not) in ``meta``.

Why the maximum and not learned weights: a stacked logistic combination fitted on the same
generator data gave the ELA component almost no weight (the generator's splices carry little of
the compression-history signal that ELA reads in real tampered JPEGs), which made it worse on
real images (see the model card); the maximum trusts each component's own calibration instead of
the generator's mixture of evidence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from artifacts.detectors.calibrated import CalibratedDetector, Raw
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec

EPS = 1e-4


@dataclass
class FusionConfig:
    #: component models
    components: tuple[str, ...] = ("noise-residual", "ela", "copymove", "jpeg-dq", "jpeg-grid")
    threshold: float | None = None

    def __post_init__(self) -> None:
        self.components = tuple(self.components)
        if not self.components or "fusion" in {c.split("/")[-1] for c in self.components}:
            raise ValueError("fusion needs at least one component model, and not itself")


CALIBRATION = WeightSpec(
    tag="calib-v1",
    file="fusion_calib-v1.json",
    sha256="42575f727668ec91771ab8a82b5c3efb7f77225726df5cd0d1e5bbfea0de103d",
    license="Apache-2.0",
    source="fitted by this package on seeded synthetic manipulations of scikit-image photos",
    train_command="artifacts train manipulation --model fusion -o DIR",
    input_spec={"color": "RGB", "dtype": "uint8 or uint16", "resize": "never"},
    output="heatmap: P(pixel manipulated); score: P(image manipulated); balanced priors",
    threshold=0.5,
    package="artifacts.detectors.manipulation.weights",
)


def logit(p):
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


@register_model(
    "manipulation",
    "fusion",
    config=FusionConfig,
    weights=(CALIBRATION,),
    description="max-log-odds fusion of the applicable training-free manipulation detectors, recalibrated",
)
class FusionDetector(CalibratedDetector):
    calibration_kinds = ("splice", "splice_blend", "copymove", "removal")
    calibration_encoding = "jpeg"
    calibration_generator = {"host_jpeg": (60, 95), "post_prob": 0.25}

    def __init__(self, config: FusionConfig, weights=None, device=None):
        super().__init__(config, weights, device)
        from artifacts.registry import create

        self.components = [create(name, device=self.device) for name in config.components]

    def fingerprint(self) -> dict:
        fp = super().fingerprint()
        fp["components"] = [c.fingerprint() for c in self.components]
        return fp

    def raw(self, image) -> Raw | Detection:
        dets = [c.detect_one(image) for c in self.components]
        used = [d.score is not None and d.heatmap is not None for d in dets]
        if not any(used):
            reasons = "; ".join(f"{c.model_id}: {d.reason}" for c, d in zip(self.components, dets))
            return Detection.not_applicable(f"no component applies ({reasons})")
        heat = np.max(np.stack([logit(d.heatmap) for d, u in zip(dets, used) if u]), axis=0).astype(np.float32)
        stat = float(max(logit(d.score) for d, u in zip(dets, used) if u))
        names = [c.model_id for c in self.components]
        return Raw(
            map=heat,
            stat=stat,
            diagnostics={
                "applied": [n for n, u in zip(names, used) if u],
                "not_applicable": {n: d.reason for n, d, u in zip(names, dets, used) if not u},
                "component_scores": {n.split("/")[1]: round(float(d.score), 4) for n, d, u in zip(names, dets, used) if u},
            },
            preprocessing={"resize": None, "components": names},
        )

    def detect_one(self, image) -> Detection:
        det = super().detect_one(image)
        if det.score is not None:
            det.categories = det.meta["raw"].pop("component_scores")
        return det
