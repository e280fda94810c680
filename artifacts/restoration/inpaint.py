"""Fill a masked region of an image: ``inpaint(image, mask, method=...)``.

Pure functions, numpy in and out: ``image`` is ``H,W`` or ``H,W,C`` ``uint8`` or ``uint16``, ``mask``
is an ``H,W`` boolean array (``True`` = fill). Pixels outside the mask come back exactly unchanged.

Methods, and what each is good for:

``telea``
    Fast marching from the hole's border inward, each pixel a weighted first-order extrapolation of
    its filled neighbours (OpenCV ``INPAINT_TELEA``). A. Telea, "An Image Inpainting Technique Based
    on the Fast Marching Method", J. Graphics Tools 2004. Thin scratches, text, small blotches; it
    smears anything wider than a few pixels.
``ns``
    Navier-Stokes / fluid-dynamics propagation of isophotes into the hole (OpenCV ``INPAINT_NS``).
    M. Bertalmio, A. L. Bertozzi, G. Sapiro, "Navier-Stokes, Fluid Dynamics, and Image and Video
    Inpainting", CVPR 2001. Same use as ``telea``; continues edges into the hole a little better.
``biharmonic``
    Smooth (biharmonic) interpolation of the hole from its border (scikit-image
    ``inpaint_biharmonic``). S. B. Damelin, N. S. Hoang, "On Surface Completion and Image
    Inpainting by Biharmonic Functions: Numerical Aspects", 2018. Smooth regions (sky, skin,
    gradients) and small to medium holes; it has no texture, so large holes look blurred. Solved on
    a crop around each group of hole components.
``exemplar``
    Copies texture from the rest of the image: a coarse-to-fine completion (Y. Wexler, E. Shechtman,
    M. Irani, "Space-Time Completion of Video", TPAMI 2007) whose nearest-neighbour field between
    patches touching the hole and patches entirely outside it is found with PatchMatch (C. Barnes,
    E. Shechtman, A. Finkelstein, D. B. Goldman, "PatchMatch: A Randomized Correspondence
    Algorithm for Structural Image Editing", SIGGRAPH 2009); each hole pixel is then a
    similarity-weighted vote of the source pixels of the patches overlapping it. Large regions with
    texture or repetitive structure (grass, brick, fabric, periodic patterns), where the diffusion
    methods above only blur. Slower; deterministic for one ``seed``. Works on a crop around the hole.
"""
from __future__ import annotations

import numpy as np

METHODS = ("telea", "ns", "biharmonic", "exemplar")
GAMMA = 1.3


# --------------------------------------------------------------------------- validation / entry


def _as_mask(mask, shape: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W); got shape {mask.shape}")
    if mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} must equal the image's H, W {shape}; "
                         "it is never cropped or resized")
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind not in "iuf":
        raise ValueError(f"mask must be boolean (True = fill); got dtype {mask.dtype}")
    values = np.unique(mask)
    if np.isin(values, (0, 1)).all() or (mask.dtype == np.uint8 and np.isin(values, (0, 255)).all()):
        return mask != 0
    raise ValueError("mask must be boolean-like (True/1 = fill; uint8 0/255 also accepted); "
                     f"got values {values[:6].tolist()}{' ...' if values.size > 6 else ''}")


def inpaint(image: np.ndarray, mask: np.ndarray, method: str = "telea", *, radius: int = 5,
            patch: int = 7, iterations: int = 4, seed: int = 0) -> np.ndarray:
    """Fill ``image`` where ``mask`` is True; return a new array of the same shape and dtype.

    ``radius``: neighbourhood radius of ``telea``/``ns`` (pixels). ``patch``: odd patch side of
    ``exemplar``. ``iterations``: EM iterations per pyramid level of ``exemplar``. ``seed``: its
    random generator seed (the other methods are deterministic anyway).
    """
    image = np.asarray(image)
    if method not in METHODS:
        raise ValueError(f"unknown inpainting method {method!r}; valid: {', '.join(METHODS)}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image must be uint8 or uint16; got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"image must be H,W or H,W,C with C in 1, 3, 4; got shape {image.shape}")
    mask = _as_mask(mask, image.shape[:2])
    if int(patch) < 3 or int(patch) % 2 == 0:
        raise ValueError(f"patch must be an odd integer >= 3; got {patch}")
    if int(radius) < 1 or int(iterations) < 1:
        raise ValueError("radius and iterations must be >= 1")
    if not mask.any():
        return image.copy()
    if mask.all():
        raise ValueError("mask covers the whole image: there is nothing to fill from")

    if method in ("telea", "ns"):
        out = _opencv(image, mask, method, int(radius))
    elif method == "biharmonic":
        out = _biharmonic(image, mask)
    else:
        out = _exemplar_crop(image, mask, int(patch), int(iterations), int(seed))
    out = np.where(mask.reshape(mask.shape + (1,) * (image.ndim - 2)), out, image)  # outside: exact
    return out.astype(image.dtype, copy=False)


def _to_dtype(values: np.ndarray, dtype) -> np.ndarray:
    top = np.iinfo(dtype).max
    return np.clip(np.rint(values), 0, top).astype(dtype)


def _boxes(mask: np.ndarray, margin: int) -> list[tuple[slice, slice]]:
    """Bounding boxes (plus ``margin``) of groups of mask components closer than ``margin``."""
    import cv2

    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    h, w = mask.shape
    boxes = []
    for x, y, bw, bh, _ in stats[1:n]:  # the dilated box already includes the margin
        boxes.append((slice(max(y, 0), min(y + bh, h)), slice(max(x, 0), min(x + bw, w))))
    return boxes


# --------------------------------------------------------------------------- diffusion methods


def _opencv(image: np.ndarray, mask: np.ndarray, method: str, radius: int) -> np.ndarray:
    import cv2

    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    m8 = mask.astype(np.uint8)
    if image.dtype == np.uint8 and (image.ndim == 2 or image.shape[2] in (1, 3)):
        out = cv2.inpaint(np.ascontiguousarray(image), m8, radius, flag)
        return out.reshape(image.shape)
    # OpenCV takes 16-bit (and 4-channel) images only one channel at a time; both methods treat
    # channels independently anyway, so per-channel filling gives the same result.
    planes = image.reshape(image.shape[:2] + (-1,))
    out = np.stack([cv2.inpaint(np.ascontiguousarray(planes[..., c]), m8, radius, flag)
                    for c in range(planes.shape[2])], axis=-1)
    return out.reshape(image.shape)


def _biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic

    out = image.copy()
    axis = -1 if image.ndim == 3 else None
    # The biharmonic stencil reaches 2 pixels; components further apart than the margin are
    # independent blocks of the linear system, so solving each group on its crop is exact (up to
    # the final clip to the crop's known range instead of the whole image's).
    for ys, xs in _boxes(mask, margin=4):
        crop = image[ys, xs].astype(np.float64)
        filled = inpaint_biharmonic(crop, mask[ys, xs], channel_axis=axis)
        region = mask[ys, xs]
        out[ys, xs][region] = _to_dtype(filled[region], image.dtype)
    return out


# --------------------------------------------------------------------------- exemplar (PatchMatch)


def _exemplar_crop(image: np.ndarray, mask: np.ndarray, patch: int, iterations: int,
                   seed: int) -> np.ndarray:
    """Run the exemplar fill on a crop around the hole (the whole image if the crop has too few
    source patches)."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    margin = max(4 * patch, extent // 2)
    y0, y1 = max(ys.min() - margin, 0), min(ys.max() + 1 + margin, h)
    x0, x1 = max(xs.min() - margin, 0), min(xs.max() + 1 + margin, w)
    work = image.reshape(image.shape[:2] + (-1,)).astype(np.float32)
    scale = float(np.iinfo(image.dtype).max)
    out = work.copy()
    sub_m = mask[y0:y1, x0:x1]
    if _valid_sources(sub_m, patch).sum() < 4 * patch * patch:
        y0, y1, x0, x1, sub_m = 0, h, 0, w, mask
        if not _valid_sources(mask, patch).any():
            raise ValueError(f"exemplar: no {patch}x{patch} patch lies entirely outside the mask; "
                             "use a smaller patch or another method")
    filled = _exemplar(work[y0:y1, x0:x1] / scale, sub_m, patch, iterations,
                       np.random.default_rng(seed))
    out[y0:y1, x0:x1] = filled * scale
    return _to_dtype(out, image.dtype).reshape(image.shape)


def _valid_sources(hole: np.ndarray, patch: int) -> np.ndarray:
    """Centres whose whole patch lies inside the crop and outside the hole."""
    import cv2

    r = patch // 2
    near = cv2.dilate(hole.astype(np.uint8), np.ones((patch, patch), np.uint8)).astype(bool)
    valid = ~near
    valid[:r], valid[-r:], valid[:, :r], valid[:, -r:] = False, False, False, False
    return valid


def _halve(img: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 block mean of the known pixels; a coarse pixel is known only if all four are."""
    h, w = known.shape
    ph, pw = h % 2, w % 2
    img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")
    k = np.pad(known, ((0, ph), (0, pw)), mode="edge").astype(np.float32)
    H, W = img.shape[0] // 2, img.shape[1] // 2
    num = (img * k[..., None]).reshape(H, 2, W, 2, -1).sum(axis=(1, 3))
    den = k.reshape(H, 2, W, 2).sum(axis=(1, 3))
    return num / np.maximum(den, 1.0)[..., None], den > 3.5


class _Level:
    """One pyramid level: image estimate, hole, valid source centres and the patch geometry."""

    def __init__(self, img: np.ndarray, hole: np.ndarray, patch: int):
        import cv2
        from scipy import ndimage

        self.img, self.hole, self.patch = img, hole, patch
        self.h, self.w = hole.shape
        r = patch // 2
        self.src = _valid_sources(hole, patch)
        # nearest valid source centre of every position: random jumps snap onto it
        idx = ndimage.distance_transform_edt(~self.src, return_distances=False, return_indices=True)
        self.snap = (idx[0] * self.w + idx[1]).ravel()
        near = cv2.dilate(hole.astype(np.uint8), np.ones((patch, patch), np.uint8)).astype(bool)
        ty, tx = np.nonzero(near)
        self.ty, self.tx = ty, tx
        dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
        self.dy, self.dx = dy.ravel(), dx.ravel()
        self.off = self.dy * self.w + self.dx  # flat offsets, valid for interior (source) centres
        py, px = ty[:, None] + self.dy, tx[:, None] + self.dx
        self.inside = (py >= 0) & (py < self.h) & (px >= 0) & (px < self.w)
        self.tpix = np.clip(py, 0, self.h - 1) * self.w + np.clip(px, 0, self.w - 1)
        # confidence: 1 outside the hole, GAMMA ** -(distance into the hole) inside (Wexler et al.)
        depth = ndimage.distance_transform_edt(hole)
        conf = np.where(hole, GAMMA ** -depth, 1.0).astype(np.float32).ravel()
        pw = np.take(conf, self.tpix) * self.inside
        self.tconf = pw.sum(axis=1) / self.inside.sum(axis=1)  # vote weight of each target patch
        self.ragged = not self.inside.all()
        self.conf_weights = pw.astype(np.float32)
        self.use_weights(None)
        self.grid = np.full(self.h * self.w, -1, np.int64)  # flat position -> target index
        self.grid[ty * self.w + tx] = np.arange(ty.size)

    def distance(self, a: np.ndarray, s: np.ndarray, rows=slice(None)) -> np.ndarray:
        """Mean squared difference between target patches ``a`` and source patches at ``s``."""
        b = np.take(self.img.reshape(-1, self.img.shape[2]), s[:, None] + self.off, axis=0)
        b -= a[rows]
        if self.weights is None:  # every patch pixel counts alike
            return np.einsum("npc,npc->n", b, b) / (b.shape[1] * b.shape[2])
        b *= self.weights[rows][..., None]
        return np.einsum("npc,npc->n", b, b) / (self.wsum[rows] * b.shape[2])

    def use_weights(self, weights: np.ndarray | None) -> None:
        """Per-pixel weights (N, P) of the patch distance; None = all ones."""
        if weights is None and self.ragged:
            weights = self.inside.astype(np.float32)
        self.weights = None if weights is None else np.sqrt(weights)
        self.wsum = None if weights is None else weights.sum(axis=1)


def _exemplar(img: np.ndarray, hole: np.ndarray, patch: int, iterations: int,
              rng: np.random.Generator) -> np.ndarray:
    """Fill ``hole`` of the float image ``img`` (H,W,C in [0,1]) coarse to fine."""
    imgs, holes = [img], [hole]
    while True:  # coarser levels while the hole is still larger than a patch and sources remain
        ys, xs = np.nonzero(holes[-1])
        extent = max(np.ptp(ys), np.ptp(xs)) + 1
        if extent <= 2 * patch or min(holes[-1].shape) < 8 * patch:
            break
        small, known = _halve(imgs[-1], ~holes[-1])
        if _valid_sources(~known, patch).sum() < 4 * patch * patch:
            break
        imgs.append(small)
        holes.append(~known)

    nnf = None
    for lev in range(len(imgs) - 1, -1, -1):
        level = _Level(imgs[lev].copy(), holes[lev], patch)
        if nnf is None:
            _initial_fill(level)
            nnf = _random_nnf(level, rng)
        else:
            coarse_img, coarse_level, coarse_nnf = prev
            up = np.repeat(np.repeat(coarse_img, 2, axis=0), 2, axis=1)[:level.h, :level.w]
            level.img[level.hole] = up[level.hole]
            nnf = _upsample_nnf(level, coarse_level, coarse_nnf)
        # the coarsest level starts from a smooth guess: trust its hole pixels less when matching
        coarsest = lev == len(imgs) - 1
        level.use_weights(level.conf_weights if coarsest else None)
        first = True
        for _ in range(iterations):
            a = np.take(level.img.reshape(-1, level.img.shape[2]), level.tpix, axis=0)
            dist = level.distance(a, nnf)
            _patchmatch(level, a, nnf, dist, rng, rounds=2 if first else 1,
                        global_search=coarsest)
            first = False
            _vote(level, nnf, dist)
        prev = (level.img, level, nnf)
    return prev[0]


def _initial_fill(level: _Level) -> None:
    """Coarsest level: start from a smooth (Telea) fill of the hole."""
    import cv2

    m8 = level.hole.astype(np.uint8)
    for c in range(level.img.shape[2]):
        plane = np.ascontiguousarray(level.img[..., c])
        level.img[..., c] = cv2.inpaint(plane, m8, 3, cv2.INPAINT_TELEA)


def _random_nnf(level: _Level, rng: np.random.Generator) -> np.ndarray:
    src = np.flatnonzero(level.src.ravel())
    return src[rng.integers(0, src.size, level.ty.size)]


def _upsample_nnf(level: _Level, coarse: _Level, coarse_nnf: np.ndarray) -> np.ndarray:
    """A fine target takes its coarse parent's match, doubled, plus its offset in the 2x2 block."""
    cy, cx = level.ty // 2, level.tx // 2
    parent = coarse.grid[np.minimum(cy, coarse.h - 1) * coarse.w + np.minimum(cx, coarse.w - 1)]
    has = parent >= 0
    sy = np.where(has, coarse_nnf[np.maximum(parent, 0)] // coarse.w * 2 + level.ty % 2, level.ty)
    sx = np.where(has, coarse_nnf[np.maximum(parent, 0)] % coarse.w * 2 + level.tx % 2, level.tx)
    sy, sx = np.clip(sy, 0, level.h - 1), np.clip(sx, 0, level.w - 1)
    return level.snap[sy * level.w + sx]


def _try(level: _Level, a, nnf, dist, cand: np.ndarray, rows: np.ndarray) -> None:
    """Replace the match of targets ``rows`` by ``cand`` where it is a valid, closer source."""
    ok = level.src.ravel()[cand] & (cand != nnf[rows])
    rows, cand = rows[ok], cand[ok]
    if rows.size == 0:
        return
    d = level.distance(a, cand, rows)
    better = d < dist[rows]
    nnf[rows[better]] = cand[better]
    dist[rows[better]] = d[better]


def _patchmatch(level: _Level, a, nnf, dist, rng, rounds: int, global_search: bool) -> None:
    """Whole-field PatchMatch: jump-flooding propagation then random search, ``rounds`` times."""
    w = level.w
    n = level.ty.size
    every = np.arange(n)
    span = max(level.h, level.w) if global_search else 4 * level.patch
    for _ in range(rounds):
        step = 1 << max(int(np.log2(max(span // 8, 1))), 0) if global_search else 2
        while step >= 1:
            for dy, dx in ((step, 0), (-step, 0), (0, step), (0, -step)):
                ny, nx = level.ty + dy, level.tx + dx
                inb = (ny >= 0) & (ny < level.h) & (nx >= 0) & (nx < w)
                nb = np.full(n, -1)
                nb[inb] = level.grid[ny[inb] * w + nx[inb]]
                rows = every[nb >= 0]
                # the neighbour's match shifted back by the step
                sy, sx = nnf[nb[rows]] // w - dy, nnf[nb[rows]] % w - dx
                good = (sy >= 0) & (sy < level.h) & (sx >= 0) & (sx < w)
                _try(level, a, nnf, dist, np.where(good, sy * w + sx, nnf[rows]), rows)
            step //= 2
        radius = float(span)
        while radius >= 1:
            sy = nnf // w + np.rint(rng.uniform(-radius, radius, n)).astype(np.int64)
            sx = nnf % w + np.rint(rng.uniform(-radius, radius, n)).astype(np.int64)
            sy, sx = np.clip(sy, 0, level.h - 1), np.clip(sx, 0, w - 1)
            _try(level, a, nnf, dist, level.snap[sy * w + sx], every)
            radius /= 2


def _vote(level: _Level, nnf: np.ndarray, dist: np.ndarray) -> None:
    """Each hole pixel := similarity-weighted mean of the source pixels of the overlapping patches."""
    sigma2 = max(float(np.percentile(dist, 75)), 1e-6)
    wt = (np.exp(-dist / (2 * sigma2)) * level.tconf).astype(np.float32)
    pix = level.tpix
    use = level.hole.ravel()[pix] & level.inside
    src = (nnf[:, None] + level.off)[use]
    pix = pix[use]
    weights = np.broadcast_to(wt[:, None], use.shape)[use]
    size = level.h * level.w
    flat = level.img.reshape(-1, level.img.shape[2])
    den = np.bincount(pix, weights, minlength=size)
    hole = level.hole.ravel()
    for c in range(flat.shape[1]):
        num = np.bincount(pix, weights * np.take(flat[:, c], src), minlength=size)
        flat[hole, c] = (num[hole] / np.maximum(den[hole], 1e-12)).astype(np.float32)
