"""Copy-move detection by SIFT keypoint matching with geometric verification (training-free).

Method (after Amerini, Ballan, Caldelli, Del Bimbo & Serra, "A SIFT-based forensic method for
copy-move attack detection and transformation recovery", IEEE TIFS 6(3), 2011; the dense check
of the recovered transform follows the ZNCC localisation step of Amerini et al., "Copy-move
forgery detection and localization by means of robust clustering with J-Linkage", Signal
Processing: Image Communication 28(6), 2013):

1. SIFT keypoints and descriptors (OpenCV ``SIFT_create``, ``contrast`` threshold, at most
   ``max_keypoints``, the strongest) on the BT.601 luminance. Images above ``max_pixels`` are
   analysed on an area-downscaled copy (recorded in ``preprocessing``); the map is resized
   back. With ``mirror`` each descriptor is also rewritten as the descriptor of the mirrored
   patch (a fixed permutation of SIFT's bins, see :func:`mirror_descriptors`), so horizontally
   or vertically flipped copies match too, without a second SIFT pass.
2. The image is matched against itself (and against its mirrored descriptors): for every
   keypoint its ``knn`` nearest descriptors (exact L2, blocked matrix products, so memory is
   ``MATCH_BLOCK x N`` floats), leaving out keypoints closer than ``min_dist`` px (the keypoint
   itself, its other orientations, its neighbours). Generalised 2NN test (g2NN): with sorted
   distances ``d1 <= d2 <= ...``, neighbours are accepted while ``d_i / d_{i+1} < ratio``, so
   a region copied several times keeps all its matches.
3. Clustering: each matched pair is a point ``(x1, y1, x2, y2)`` (in both orders, so the
   grouping does not depend on which end is the source); pairs within ``cluster_radius`` (a
   fraction of the image diagonal) are linked, and connected components of at least
   ``min_inliers`` pairs are candidate copies (single-linkage clustering of matched pairs, in
   the spirit of Amerini et al.'s hierarchical clustering of matched points).
4. Verification: per cluster (largest first), RANSAC fits a similarity transform (rotation,
   uniform scale, translation; ``cv2.estimateAffinePartial2D``, reprojection threshold
   ``ransac_px``; for mirrored matches the source x is negated first, so reflections are
   similarities too). A transform is kept when its scale is within ``1/max_scale ..
   max_scale``, at least ``min_inliers`` of *all* still unexplained matches agree with it
   (which also merges clusters of one copy) and it moves them by at least ``min_shift`` of the
   diagonal (shorter shifts come mostly from repetitive structure). Its inliers are then
   removed and the next cluster is tried (at most ``max_transforms``).
5. Map: for each verified transform ``T`` the image is read through ``T`` (and ``T^-1``) and
   compared with itself by zero-mean normalised cross-correlation in Gaussian windows
   (``ncc_sigma``; variances floored by ``ncc_floor``, so flat areas do not correlate),
   inside the convex hull of the source (target) inliers dilated by ``margin`` times the
   square root of the hull's area. The raw map is the best positive correlation over
   transforms: it marks **both** the source and the target region (keypoint matching cannot
   tell which one was pasted); 0 elsewhere. The image statistic is
   ``log(1 + verified inlier pairs)``.
6. Both are mapped to ``[0, 1]`` by Platt curves fitted on seeded generator data
   (``artifacts train manipulation --model copymove``).

Cost: about 1 s for a 1 MP photo on one CPU core (SIFT ~0.6 s, matching 2 x N^2 descriptor
distances for N = 4000 ~0.3 s); memory stays near the image plus ``MATCH_BLOCK x N`` floats.

Calibration: ``calibration_kinds = ("copymove",)`` with the authentic negatives the recipe
adds; ``calibration_encoding = "jpeg"`` (tampered photos are usually stored as JPEG; the
method reads no JPEG metadata, compression only makes matches harder). The generator's ground
truth marks the pasted region only, so the source half of the map counts as false positive
there: pixel-level scores against target-only ground truth are capped (see the model card).
Defaults were chosen on seeded generator copy-moves (seeds apart from the calibration seeds),
never on ``../shared/data``.

Failure modes: copies of smooth regions (no keypoints: nothing to match), very small copies
(fewer than ``min_inliers`` keypoints), strong blur/noise/downscaling; repetitive structures
(bricks, windows, text, tiles) and, with ``mirror``, bilaterally symmetric objects are real
self-similarities and raise false alarms. Images with fewer than ``min_keypoints`` keypoints
are ``not_applicable``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from artifacts.detectors.calibrated import CalibratedDetector, Raw
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec

MATCH_BLOCK = 1024  # query rows per matching block (memory: MATCH_BLOCK x keypoints floats)


@dataclass
class CopyMoveConfig:
    max_pixels: int = 1_500_000  # larger images are analysed on an area-downscaled copy
    max_keypoints: int = 4000  # the strongest SIFT keypoints (matching cost grows with its square)
    contrast: float = 0.01  # SIFT contrast threshold (OpenCV default 0.04: fewer keypoints)
    mirror: bool = True  # also match against the mirrored image (flipped copies)
    knn: int = 8  # neighbours examined by the g2NN test
    ratio: float = 0.6  # g2NN ratio threshold (Amerini et al. used 0.5)
    min_dist: float = 12.0  # px: matches closer than this are trivial (same structure)
    cluster_radius: float = 0.08  # linkage radius of matched pairs, fraction of the diagonal
    ransac_px: float = 4.0  # RANSAC reprojection threshold (px)
    min_inliers: int = 4  # matched pairs a transform needs
    min_shift: float = 0.06  # a transform must move its inliers this far (fraction of the diagonal)
    max_scale: float = 2.0  # accepted scale range of a copy: 1/max_scale .. max_scale
    max_transforms: int = 4
    ncc_sigma: float = 5.0  # Gaussian window (px) of the dense correlation check
    ncc_floor: float = 4.0  # variance floor of the correlation (grey levels^2): flat areas do not correlate
    margin: float = 1.0  # hull dilation, as a fraction of sqrt(hull area)
    min_keypoints: int = 20  # below: not applicable
    threshold: float | None = None  # operating threshold (default: the weights' threshold, 0.5)


CALIBRATION = WeightSpec(
    tag="calib-v1",
    file="copymove_calib-v1.json",
    sha256="aa169009ae2e3bdd250c857dc2d4734988e3eb07d045661eeda38d57981edcf8",
    license="Apache-2.0",
    source="fitted by this package on seeded synthetic copy-moves of scikit-image photos (stored as JPEG)",
    train_command="artifacts train manipulation --model copymove -o DIR",
    input_spec={"color": "RGB or grey (luminance used)", "dtype": "uint8 or uint16",
                "resize": "area-downscaled above max_pixels (1.5 MP), map resized back"},
    output="heatmap: P(pixel in a copied region, source or target); score: P(image has a copy-move)",
    threshold=0.5,
    package="artifacts.detectors.manipulation.weights",
)


def luminance8(pixels: np.ndarray) -> np.ndarray:
    """RGB uint8/uint16 -> uint8 BT.601 luminance (OpenCV, no full-size float copy)."""
    import cv2

    y = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    if y.dtype == np.uint16:
        y = ((y.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return y


def sift(grey: np.ndarray, cfg: CopyMoveConfig):
    """Keypoint positions (N, 2) float32 and SIFT descriptors (N, 128) float32."""
    import cv2

    det = cv2.SIFT_create(nfeatures=cfg.max_keypoints, contrastThreshold=cfg.contrast)
    kps, desc = det.detectAndCompute(grey, None)
    if not kps:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    return np.array([k.pt for k in kps], np.float32), desc.astype(np.float32)


def mirror_descriptors(desc: np.ndarray) -> np.ndarray:
    """Descriptors of the same keypoints in the horizontally mirrored image.

    A mirror reverses the 4 spatial rows of OpenCV's 4x4x8 SIFT layout (rows run across the
    keypoint's orientation) and negates the gradient angle bins (``o -> -o mod 8``); the
    keypoint's orientation becomes ``180 - angle``. Checked against SIFT run on the flipped
    image (``tests/test_ela_copymove.py``), so no second SIFT pass is needed.
    """
    d = desc.reshape(-1, 4, 4, 8)[:, ::-1][..., (-np.arange(8)) % 8]
    return np.ascontiguousarray(d.reshape(-1, 128))


def g2nn_matches(pts, desc, desc_db, cfg: CopyMoveConfig) -> np.ndarray:
    """Pairs (i, j): keypoint i matched to database entry j (same keypoints, possibly mirrored
    descriptors) by the g2NN test.

    Entries of keypoints closer than ``min_dist`` px to the query keypoint (itself included)
    are left out first (found with a k-d tree). Exact L2 distances, ``MATCH_BLOCK`` rows at a
    time (torch on the CPU). The g2NN test fails at once when the second neighbour lies within
    ``d1 / ratio``, so only rows that pass this first step go through the top-k step.
    """
    import torch
    from scipy.spatial import cKDTree

    n = len(pts)
    k = min(cfg.knn, n - 1)
    if n == 0 or k < 2:
        return np.zeros((0, 2), np.int64)
    tree = cKDTree(pts)
    near = tree.sparse_distance_matrix(tree, cfg.min_dist, output_type="ndarray")
    near_r, near_c = near["i"].astype(np.int64), near["j"].astype(np.int64)
    self_r = np.arange(n)  # sparse_distance_matrix leaves out zero distances
    near_r, near_c = np.concatenate([near_r, self_r]), np.concatenate([near_c, self_r])
    db = torch.from_numpy(desc_db)
    sq_db = (db * db).sum(1)
    r2 = cfg.ratio**2
    out = []
    with torch.no_grad():
        for s in range(0, n, MATCH_BLOCK):
            q = torch.from_numpy(desc[s : s + MATCH_BLOCK])
            d2 = torch.addmm(sq_db[None, :], q, db.T, beta=1.0, alpha=-2.0)
            d2.add_((q * q).sum(1, keepdim=True))
            sel = (near_r >= s) & (near_r < s + len(q))
            d2[torch.from_numpy(near_r[sel] - s), torch.from_numpy(near_c[sel])] = float("inf")
            m1, j1 = d2.min(1)
            d2_j1 = d2.gather(1, j1[:, None])
            d2.scatter_(1, j1[:, None], float("inf"))
            m2 = d2.min(1).values
            d2.scatter_(1, j1[:, None], d2_j1)
            m1 = m1.clamp_min(0)
            rows = torch.nonzero((m2 * r2 > m1) | (m1 < 1.0)).flatten()
            if rows.numel() == 0:
                continue
            val, idx = torch.topk(d2[rows], k + 1, dim=1, largest=False, sorted=True)
            dist = val.clamp_min(0).sqrt().numpy()
            idx, rows = idx.numpy(), rows.numpy()
            ratio = dist[:, :-1] / np.maximum(dist[:, 1:], 1e-6)
            ok = np.cumprod(ratio < cfg.ratio, axis=1).astype(bool) & np.isfinite(dist[:, 1:])
            rr, cc = np.nonzero(ok)
            out.append(np.stack([rows[rr] + s, idx[rr, cc]], 1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 2), np.int64)


def _components(p4: np.ndarray, radius: float) -> np.ndarray:
    """Connected components of points linked within ``radius`` (single linkage)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    links = cKDTree(p4).query_pairs(radius, output_type="ndarray")
    graph = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(len(p4), len(p4)))
    return connected_components(graph, directed=False)[1]


def verify(src: np.ndarray, dst: np.ndarray, mirrored: np.ndarray, diag: float, cfg: CopyMoveConfig):
    """Cluster the matched pairs and verify each cluster by RANSAC (see module docstring).

    Returns a list of ``(A, inlier pair indices, source points, target points)`` with ``A`` the
    2x3 map from source to target points.
    """
    import cv2

    n = len(src)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    if n < cfg.min_inliers:
        return found
    used = np.zeros(n, bool)
    for flip in (False, True):
        pool = np.flatnonzero(mirrored == flip)
        if pool.size < cfg.min_inliers:
            continue
        sign = np.array([-1.0, 1.0], np.float32) if flip else np.ones(2, np.float32)
        # both orders of every pair; the source side is mirrored (x negated) for mirrored matches
        a = np.concatenate([src[pool], dst[pool]])
        b = np.concatenate([dst[pool], src[pool]])
        ids = np.concatenate([pool, pool])
        labels = _components(np.concatenate([a, b], 1), cfg.cluster_radius * diag)
        sizes = np.bincount(labels)
        for lab in np.argsort(-sizes, kind="stable"):
            if len(found) >= cfg.max_transforms or sizes[lab] < cfg.min_inliers:
                break
            sel = np.flatnonzero((labels == lab) & ~used[ids])
            if sel.size < cfg.min_inliers:
                continue
            S, _ = cv2.estimateAffinePartial2D(a[sel] * sign, b[sel], method=cv2.RANSAC,
                                               ransacReprojThreshold=cfg.ransac_px, maxIters=2000,
                                               confidence=0.995)
            if S is None:
                continue
            A = S.copy()
            A[:, 0] *= sign[0]  # T(p) = S(F p): fold the mirror into the linear part
            scale = float(np.sqrt(abs(np.linalg.det(A[:, :2]))))
            if not 1.0 / cfg.max_scale <= scale <= cfg.max_scale:
                continue
            fresh = ~used[ids]
            res = np.linalg.norm(a @ A[:, :2].T + A[:, 2] - b, axis=1)
            inl = np.unique(ids[(res < cfg.ransac_px) & fresh])
            if inl.size < cfg.min_inliers:
                continue
            # orient the inliers as the transform maps them (either order may have been fitted)
            fwd = np.linalg.norm(src[inl] @ A[:, :2].T + A[:, 2] - dst[inl], axis=1) < cfg.ransac_px
            s_pts = np.where(fwd[:, None], src[inl], dst[inl])
            t_pts = np.where(fwd[:, None], dst[inl], src[inl])
            if np.median(np.linalg.norm(t_pts - s_pts, axis=1)) < cfg.min_shift * diag:
                continue
            used[inl] = True
            found.append((A, inl, s_pts, t_pts))
    return found


def ncc_map(grey: np.ndarray, A: np.ndarray, box, sigma: float, floor: float) -> np.ndarray:
    """Local zero-mean normalised correlation, over ``box = (y0, x0, y1, x1)``, between the image
    and the image read through ``A`` (at ``x`` the patch at ``x`` is compared with the patch at
    ``A x``); 0 where ``A x`` falls outside the image. The variance terms are floored by
    ``floor`` (grey levels^2), so flat areas do not correlate."""
    import cv2

    H, W = grey.shape
    pad = int(np.ceil(3 * sigma))
    y0, x0, y1, x1 = box
    a, c, b, d = max(0, y0 - pad), max(0, x0 - pad), min(H, y1 + pad), min(W, x1 + pad)
    f = grey[a:b, c:d].astype(np.float32)
    M = A.astype(np.float64).copy()
    M[:, 2] += M[:, :2] @ np.array([c, a], np.float64)  # crop coordinates -> image coordinates
    warped = cv2.warpAffine(grey.astype(np.float32), M, (d - c, b - a), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    inside = warped >= 0
    warped = np.where(inside, warped, f)

    def g(x):
        return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    ma, mb = g(f), g(warped)
    va, vb = g(f * f) - ma * ma, g(warped * warped) - mb * mb
    r = (g(f * warped) - ma * mb) / np.sqrt((np.maximum(va, 0) + floor) * (np.maximum(vb, 0) + floor))
    r = np.where(inside, r, 0.0)
    return r[y0 - a : y1 - a, x0 - c : x1 - c].astype(np.float32)


def mark_copy(grey: np.ndarray, A: np.ndarray, pts: np.ndarray, cfg) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Correlation map of one side of a verified copy: ``pts`` are that side's inliers and ``A``
    maps them to the other side. Returns the box ``(y0, x0, y1, x1)`` and the map inside it,
    0 outside the inliers' convex hull dilated by ``margin * sqrt(hull area)`` (at least 8 px)."""
    import cv2

    H, W = grey.shape
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    area = float(cv2.contourArea(hull)) if len(hull) > 2 else 0.0
    r = max(8.0, cfg.margin * np.sqrt(max(area, 1.0)))
    lo, hi = np.floor(hull.min(0) - r), np.ceil(hull.max(0) + r + 1)
    x0, y0 = int(max(0, lo[0])), int(max(0, lo[1]))
    x1, y1 = int(min(W, hi[0])), int(min(H, hi[1]))
    outside = np.full((y1 - y0, x1 - x0), 255, np.uint8)
    cv2.fillConvexPoly(outside, np.round(hull - [x0, y0]).astype(np.int32), 0)
    support = cv2.distanceTransform(outside, cv2.DIST_L2, 3) <= r
    corr = ncc_map(grey, A, (y0, x0, y1, x1), cfg.ncc_sigma, cfg.ncc_floor)
    return (y0, x0, y1, x1), np.where(support, np.maximum(corr, 0.0), 0.0).astype(np.float32)


@register_model(
    "manipulation",
    "copymove",
    config=CopyMoveConfig,
    weights=(CALIBRATION,),
    description="training-free copy-move detection: SIFT self-matching (g2NN), clustering, RANSAC",
)
class CopyMoveDetector(CalibratedDetector):
    """Training-free copy-move detector (SIFT matching with geometric verification)."""

    calibration_kinds = ("copymove",)
    calibration_encoding = "jpeg"

    def raw(self, image) -> Raw | Detection:
        """Raw map of verified copied regions (source and target) and log(1 + inliers)."""
        import cv2

        cfg = self.config
        H, W = image.pixels.shape[:2]
        grey = luminance8(image.pixels)
        pre: dict = {"resize": None, "pad": None, "luminance": "BT.601"}
        if image.pixels.dtype == np.uint16:
            pre["bit_depth"] = "16 -> 8 (luminance rounded) for SIFT"
        scale = 1.0
        if H * W > cfg.max_pixels:
            scale = float(np.sqrt(cfg.max_pixels / (H * W)))
            size = (max(1, round(W * scale)), max(1, round(H * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
            pre["resize"] = {"to": [size[0], size[1]], "interp": "area", "map_back": "linear"}
        h, w = grey.shape
        pts, desc = sift(grey, cfg)
        if len(pts) < cfg.min_keypoints:
            return Detection.not_applicable(
                f"too few SIFT keypoints for a copy-move decision ({len(pts)} < {cfg.min_keypoints})")
        pairs = g2nn_matches(pts, desc, desc, cfg)  # keypoint coordinates: analysis (downscaled) pixels
        mirrored = np.zeros(len(pairs), bool)
        if cfg.mirror:
            mp = g2nn_matches(pts, desc, mirror_descriptors(desc), cfg)
            pairs, mirrored = np.concatenate([pairs, mp]), np.concatenate([mirrored, np.ones(len(mp), bool)])
        # i->j and j->i describe one pair (for mirrored descriptors too: the mirror is an involution)
        key = np.concatenate([np.sort(pairs, axis=1), mirrored[:, None]], 1)
        key = np.unique(key, axis=0)
        pairs, mirrored = key[:, :2], key[:, 2].astype(bool)
        src, dst = pts[pairs[:, 0]], pts[pairs[:, 1]]
        found = verify(src, dst, mirrored, float(np.hypot(h, w)), cfg)
        raw = np.zeros((h, w), np.float32)
        transforms = []
        for A, inl, s_pts, t_pts in found:
            Ainv = cv2.invertAffineTransform(A)
            for M, side in ((A, s_pts), (Ainv, t_pts)):
                (y0, x0, y1, x1), corr = mark_copy(grey, M, side, cfg)
                np.maximum(raw[y0:y1, x0:x1], corr, out=raw[y0:y1, x0:x1])
            lin = A[:, :2]
            transforms.append({"inliers": int(inl.size), "scale": round(float(np.sqrt(abs(np.linalg.det(lin)))), 4),
                               "angle_deg": round(float(np.degrees(np.arctan2(lin[1, 0], lin[0, 0]))), 2),
                               "mirrored": bool(np.linalg.det(lin) < 0),
                               "shift_px": [round(float(A[0, 2] / scale), 1), round(float(A[1, 2] / scale), 1)]})
        if scale != 1.0:
            raw = cv2.resize(raw, (W, H), interpolation=cv2.INTER_LINEAR)
        n_inl = sum(t["inliers"] for t in transforms)
        return Raw(
            map=np.ascontiguousarray(raw, dtype=np.float32),
            stat=float(np.log1p(n_inl)),
            diagnostics={"keypoints": int(len(pts)),
                         "matches": int(len(src)), "verified_inliers": int(n_inl), "transforms": transforms},
            preprocessing=pre,
        )
