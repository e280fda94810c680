"""Best-match cosine similarity of every position of a view to all positions of a reference set.

This is the core of Puzzle Similarity: a novel-view feature vector that resembles *some* piece of
*some* reference view is plausible, wherever that piece is (no alignment, no poses). For a view
feature map ``F`` (C x H x W) and reference maps ``R_n`` (C x h x w), channel-wise L2-normalised,

    sim(p) = max over n, q of <F[:, p], R_n[:, q]>.

:func:`best_match` streams the references in chunks of positions and keeps a running maximum,
so memory is ``H*W x chunk`` whatever the number of references; :func:`best_match_full` builds
the whole ``N x HW x hw`` similarity matrix (the straightforward version, for tests and the
benchmark).
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

#: default bound on the similarity block held at once (bytes)
DEFAULT_BLOCK_BYTES = 64 << 20


def _flat_normalised(feat: torch.Tensor) -> torch.Tensor:
    """C x H x W (or 1 x C x H x W) -> C x HW, unit length along C."""
    if feat.ndim == 4:
        if feat.shape[0] != 1:
            raise ValueError(f"expected one feature map, got a batch of {feat.shape[0]}")
        feat = feat[0]
    return F.normalize(feat.flatten(1), dim=0)


def best_match(view: torch.Tensor, refs: Iterable[torch.Tensor], *, block_bytes: int = DEFAULT_BLOCK_BYTES) -> torch.Tensor:
    """H x W map of the best cosine similarity of each view position over all reference positions.

    ``view``: C x H x W; ``refs``: any iterable of C x h x w maps (sizes may differ), e.g. a
    generator that computes them one by one. Memory: one ``HW x chunk`` block, with ``chunk``
    chosen so the block stays under ``block_bytes``.
    """
    h, w = view.shape[-2:]
    v = _flat_normalised(view).T.contiguous()  # HW x C
    chunk = max(1, block_bytes // (v.element_size() * v.shape[0]))
    best = torch.full((v.shape[0],), -1.0, dtype=v.dtype, device=v.device)
    seen = False
    for ref in refs:
        r = _flat_normalised(ref.to(v.device, v.dtype))
        if r.shape[0] != v.shape[1]:
            raise ValueError(f"reference has {r.shape[0]} channels, the view {v.shape[1]}")
        for start in range(0, r.shape[1], chunk):
            block = v @ r[:, start:start + chunk]  # HW x chunk
            torch.maximum(best, block.amax(dim=1), out=best)
            seen = True
    if not seen:
        raise ValueError("best_match needs at least one reference")
    return best.view(h, w)


def best_match_full(view: torch.Tensor, refs: list[torch.Tensor]) -> torch.Tensor:
    """The same map through the full N x HW x hw similarity tensor (equal-size references)."""
    h, w = view.shape[-2:]
    v = _flat_normalised(view)  # C x HW
    r = torch.stack([_flat_normalised(ref) for ref in refs])  # N x C x hw
    sim = torch.einsum("ncq,cp->npq", r, v)  # N x HW x hw
    return sim.amax(dim=(0, 2)).view(h, w)
