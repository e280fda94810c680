"""A small diffusion phantom for examples and tests that must run without real data.

A head-like ellipsoid of isotropic "grey matter" (mean diffusivity 0.8e-3 mm^2/s) holding three
ellipsoidal fibre bundles along x, y and z (tensor eigenvalues 1.7/0.3/0.3e-3 mm^2/s), signal
``S0 exp(-b g^T D g)`` for b=0 and ``n_dirs`` directions spread on the sphere (golden spiral),
smoothed a little (partial volume), Rician noise at ``snr`` in the b=0 signal. Seeded; returns a
:class:`~artifacts.io.dmri.DWISeries` (1 mm voxels, radiological affine, ``PhaseEncodingDirection
j``). It is not a brain: real series (``../shared/data/dmri``) are what detectors are judged on.
"""
from __future__ import annotations

import numpy as np


def directions(n: int) -> np.ndarray:
    """``n`` unit vectors spread over a half sphere (golden-angle spiral), ``(n, 3)``."""
    i = np.arange(n) + 0.5
    z = 1.0 - i / n  # half sphere: antipodal directions are the same measurement
    r = np.sqrt(1.0 - z ** 2)
    phi = np.pi * (1.0 + 5 ** 0.5) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def phantom(shape: tuple[int, int, int] = (48, 48, 16), n_b0: int = 2, n_dirs: int = 15, b: float = 1000.0,
            snr: float = 60.0, seed: int = 0):
    """The phantom series (see the module docstring)."""
    from scipy.ndimage import gaussian_filter

    from artifacts.io.dmri import from_arrays

    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"), axis=-1)
    head = ((grid / (0.85, 0.95, 0.9)) ** 2).sum(-1) <= 1.0
    d_iso = 0.8e-3
    tensors = np.zeros(shape + (3, 3))
    tensors[head] = np.eye(3) * d_iso
    for axis, centre in ((0, (0.0, 0.35, 0.0)), (1, (-0.35, -0.1, 0.1)), (2, (0.35, -0.1, -0.1))):
        radii = np.full(3, 0.18)
        radii[axis] = 0.6
        bundle = head & ((((grid - centre) / radii) ** 2).sum(-1) <= 1.0)
        evals = np.full(3, 0.3e-3)
        evals[axis] = 1.7e-3
        tensors[bundle] = np.diag(evals)
    s0 = np.where(head, 1000.0 * (1.0 + 0.1 * grid[..., 2]), 0.0)
    g = np.concatenate([np.zeros((n_b0, 3)), directions(n_dirs)])
    bvals = np.concatenate([np.zeros(n_b0), np.full(n_dirs, b)])
    adc = np.einsum("vi,xyzij,vj->xyzv", g, tensors, g)
    clean = s0[..., None] * np.exp(-bvals * adc)
    # partial volume: a real image has no perfectly sharp edges (and no energy at the k-space edge)
    clean = gaussian_filter(clean, sigma=(1.0, 1.0, 0.7, 0.0))
    sigma = 1000.0 / snr
    data = np.sqrt((clean + sigma * rng.standard_normal(clean.shape)) ** 2
                   + (sigma * rng.standard_normal(clean.shape)) ** 2).astype(np.float32)
    return from_arrays(data, bvals, g, sidecar={"PhaseEncodingDirection": "j", "Manufacturer": "phantom"})
