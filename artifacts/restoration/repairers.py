"""The reference-guided repair restorer (task ``refrepair``): ``refrepair/warp`` (default).

An item is a novel view with the scene's reference views (as for ``views`` detection) and,
optionally, the artifact map of a view-metric run (``artifacts restore --from RUN`` after
``artifacts detect views``). Without a map the restorer computes one with ``views/puzzlesim``
(the no-reference metric; never ground truth). The repair itself is
:func:`artifacts.restoration.refrepair.repair`; its config fields are this model's options
(``--set threshold=0.35``, ...).
"""
from __future__ import annotations

from artifacts.registry import register_model
from artifacts.restoration.base import Restorer, RestoreInput
from artifacts.restoration.refrepair import RefRepairConfig
from artifacts.types import Restoration


@register_model("refrepair", "warp", config=RefRepairConfig, default=True,
                description="training-free repair of novel views from aligned reference views (SIFT + flow)")
class WarpRepair(Restorer):
    """Broken regions of a novel view replaced by aligned, colour-corrected reference content."""

    item_kind = "view"
    needs = ("refs",)
    _metric = None

    def metric(self):
        if self._metric is None:
            from artifacts.registry import create

            self._metric = create("views/puzzlesim", device=self.device)
        return self._metric

    def restore_one(self, inp: RestoreInput) -> Restoration:
        from artifacts.detectors.views.inputs import ViewInput
        from artifacts.io import as_images
        from artifacts.restoration.refrepair import repair

        heat, source = inp.heatmap, inp.meta.get("heatmap_source", "given")
        if heat is None:
            det = self.metric().detect_one(ViewInput(inp.image, inp.refs))
            heat, source = det.heatmap, "views/puzzlesim (computed)"
        refs = [img.pixels for ref in inp.refs for img in as_images(ref)]
        if inp.pixels.dtype != "uint8" or any(r.dtype != "uint8" for r in refs):
            raise ValueError("refrepair works on 8-bit views and references")
        res = repair(inp.pixels, refs, heat, self.config)
        meta = {**res.meta, "map": source, "repaired_fraction": float(res.mask.mean()),
                "mean_weight": float(res.weight.mean())}
        return Restoration(res.image, res.mask, meta=meta)
