"""Inpainting restorers (task ``inpaint``): one registry entry per method of
:func:`artifacts.restoration.inpaint.inpaint` (``inpaint/telea`` is the default).

The region to fill is the input's mask, else its heatmap at ``threshold`` (default: the
detector's own threshold recorded with the heatmap), grown by ``dilate`` pixels (default 2:
detector masks tend to hug the edited region and leave a rim of it). An input without a
region is not applicable; an empty region gives the image back unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

from artifacts.registry import register_model
from artifacts.restoration.base import Restorer, RestoreInput
from artifacts.types import Restoration


@dataclass
class InpaintConfig:
    threshold: float | None = None  # heatmap threshold (default: the detector's)
    dilate: int = 2  # grow the region by this many pixels
    radius: int = 5  # telea / ns neighbourhood
    patch: int = 7  # exemplar patch side
    iterations: int = 4  # exemplar EM iterations per pyramid level
    seed: int = 0
    resize_mask: bool = False  # resize a mask/heatmap of another size (recorded) instead of failing


class _Inpainter(Restorer):
    method = ""
    needs = ("region",)

    def restore_one(self, inp: RestoreInput) -> Restoration:
        from artifacts.restoration.inpaint import inpaint

        region = self.region(inp)
        if not region.any():
            return Restoration(inp.pixels.copy(), region, reason="the region to repair is empty",
                               meta={"method": self.method, "repaired_fraction": 0.0})
        c = self.config
        out = inpaint(inp.pixels, region, self.method, radius=c.radius, patch=c.patch, iterations=c.iterations,
                      seed=c.seed)
        return Restoration(out, region, meta={"method": self.method, "repaired_fraction": float(region.mean())})


def _register(method: str, description: str, default: bool = False) -> type:
    cls = type(f"Inpaint_{method}", (_Inpainter,), {"method": method, "__doc__": description,
                                                     "__module__": __name__})
    return register_model("inpaint", method, config=InpaintConfig, description=description, default=default)(cls)


_register("telea", "fast-marching fill (Telea 2004, OpenCV): scratches, small regions", default=True)
_register("ns", "Navier-Stokes fill (Bertalmio et al. 2001, OpenCV): small regions, continues edges")
_register("biharmonic", "biharmonic fill (scikit-image): smooth regions")
_register("exemplar", "exemplar fill, PatchMatch + coarse-to-fine voting: large textured regions")
