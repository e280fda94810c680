"""Full-reference image quality: PSNR and SSIM (tested against scikit-image).

``ssim_map`` is the per-pixel SSIM of Wang et al. 2004 (Gaussian window sigma 1.5, K1 0.01,
K2 0.03, population (Gaussian-weighted) covariances) averaged over channels; ``data_range``
defaults to 255 (8-bit images: pass 65535 for 16-bit); ``ssim`` is its mean, as
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, channel_axis=-1, data_range=255)`` computes it away from the border
(skimage crops a border of 3 sigma before averaging; so does :func:`ssim`).
"""
from __future__ import annotations

import numpy as np

SIGMA = 1.5
K1, K2 = 0.01, 0.03


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    ref, tst = _pair(reference, test)
    mse = float(np.mean((ref - tst) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))


def ssim_map(reference: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """H x W SSIM map (mean over channels)."""
    from scipy.ndimage import gaussian_filter

    ref, tst = _pair(reference, test)
    if ref.ndim == 2:
        ref, tst = ref[..., None], tst[..., None]
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    out = np.zeros(ref.shape[:2])
    for c in range(ref.shape[2]):
        x, y = ref[..., c], tst[..., c]

        def blur(a):
            return gaussian_filter(a, SIGMA, truncate=3.5)

        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        out += ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return (out / ref.shape[2]).astype(np.float32)


def ssim(reference: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM without the 3-sigma border (scikit-image's convention)."""
    m = ssim_map(reference, test, data_range).astype(np.float64)
    pad = int(np.ceil(3 * SIGMA)) if min(m.shape) > 4 * int(np.ceil(3 * SIGMA)) else 0
    return float(m[pad:m.shape[0] - pad, pad:m.shape[1] - pad].mean())


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def luma(image: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """ITU-R BT.601 luma in the [16, 235] range of 8-bit video (MATLAB ``rgb2ycbcr``'s Y channel),
    as float: the channel the super-resolution literature reports PSNR/SSIM on."""
    x = np.asarray(image, np.float64) / data_range
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def shave(image: np.ndarray, border: int) -> np.ndarray:
    """``image`` without ``border`` pixels on each side (SR tables shave the scale factor)."""
    return image[border:image.shape[0] - border, border:image.shape[1] - border] if border > 0 else image


def sr_quality(reference: np.ndarray, test: np.ndarray, scale: int) -> dict[str, float]:
    """PSNR and SSIM on RGB (whole image) and on the Y channel with ``scale`` pixels shaved off
    each border (the convention of SR papers), for 8-bit images."""
    y_ref, y_test = shave(luma(reference), scale), shave(luma(test), scale)
    return {"psnr_rgb": psnr(reference, test), "ssim_rgb": ssim(reference, test),
            "psnr_y": psnr(y_ref, y_test), "ssim_y": ssim(y_ref, y_test)}
