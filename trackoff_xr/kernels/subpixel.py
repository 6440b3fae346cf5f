"""Sub-pixel location of correlation peaks.

Each surface's integer maximum is refined independently along rows and
columns with a three-point fit through the peak and its two neighbours:

``"gaussian"``
    fits a Gaussian (a parabola through the logarithms). Correlation peaks of
    band-limited textures are close to Gaussian, so this fit shows less
    "pixel locking" (bias toward whole pixels) than a parabola; it falls back
    to the parabola where a neighbour is not positive.
``"parabolic"``
    fits a parabola through the three values.
``"none"``
    keeps the integer peak.

A peak on the edge of the surface has no neighbour outward and keeps its
integer position along that axis.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["GAUSS_NEWTON", "SUBPIXEL_METHODS", "refine_peaks"]

SubpixelMethod = Literal["gaussian", "parabolic", "none"]
SUBPIXEL_METHODS: tuple[str, ...] = ("gaussian", "parabolic", "none")
#: ``subpixel`` values that refine by Gauss-Newton instead (:mod:`.refine`,
#: :mod:`.refine_affine`), not by a fit to three samples of the surface
GAUSS_NEWTON: tuple[str, ...] = ("gauss-newton", "affine")


def _parabolic(lo: np.ndarray, mid: np.ndarray, hi: np.ndarray) -> np.ndarray:
    denom = lo - 2.0 * mid + hi
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(denom < 0, 0.5 * (lo - hi) / denom, 0.0)
    return delta


def _gaussian(lo: np.ndarray, mid: np.ndarray, hi: np.ndarray) -> np.ndarray:
    positive = (lo > 0) & (mid > 0) & (hi > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        llo, lmid, lhi = (np.log(np.where(positive, v, 1.0)) for v in (lo, mid, hi))
    return np.where(positive, _parabolic(llo, lmid, lhi), _parabolic(lo, mid, hi))


def _refine_axis(
    lo: np.ndarray, mid: np.ndarray, hi: np.ndarray, inside: np.ndarray, method: str
) -> np.ndarray:
    fit = _gaussian if method == "gaussian" else _parabolic
    delta = fit(lo.astype(np.float64), mid.astype(np.float64), hi.astype(np.float64))
    return np.where(inside, np.clip(delta, -0.5, 0.5), 0.0)


def refine_peaks(
    surfaces: np.ndarray, method: SubpixelMethod = "gaussian"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel peak of each correlation surface, relative to its centre.

    Parameters
    ----------
    surfaces : ndarray, shape (n, 2R + 1, 2R + 1)
        Similarity surfaces, larger is better; all-NaN surfaces are allowed.
    method : {"gaussian", "parabolic", "none"}
        Three-point fit used around the integer maximum.

    Returns
    -------
    dy, dx : ndarray, shape (n,), float32
        Peak position minus the centre ``R`` along rows and columns; NaN for
        all-NaN surfaces.
    peak : ndarray, shape (n,), float32
        Value at the integer maximum; NaN for all-NaN surfaces.

    Examples
    --------
    >>> yy, xx = np.mgrid[-3:4, -3:4]
    >>> s = np.exp(-((yy - 0.3) ** 2 + (xx + 1.2) ** 2))[None]
    >>> dy, dx, peak = refine_peaks(s, "gaussian")
    >>> float(dy[0]), float(dx[0])
    (0.3..., -1.2...)
    """
    if method not in SUBPIXEL_METHODS:
        raise ValueError(f"unknown sub-pixel method {method!r}; use one of {SUBPIXEL_METHODS}")
    n, rows, cols = surfaces.shape
    empty = np.isnan(surfaces).all(axis=(1, 2))
    filled = np.where(np.isnan(surfaces), -np.inf, surfaces).reshape(n, -1)
    flat_index = filled.argmax(axis=1)
    r, c = np.divmod(flat_index, cols)
    k = np.arange(n)
    peak = surfaces[k, r, c].astype(np.float64)
    dy = r.astype(np.float64) - (rows - 1) / 2
    dx = c.astype(np.float64) - (cols - 1) / 2
    if method != "none" and n:
        r_in = (r > 0) & (r < rows - 1)
        c_in = (c > 0) & (c < cols - 1)
        rm, rp = np.clip(r - 1, 0, rows - 1), np.clip(r + 1, 0, rows - 1)
        cm, cp = np.clip(c - 1, 0, cols - 1), np.clip(c + 1, 0, cols - 1)
        dy += _refine_axis(surfaces[k, rm, c], peak, surfaces[k, rp, c], r_in, method)
        dx += _refine_axis(surfaces[k, r, cm], peak, surfaces[k, r, cp], c_in, method)
    dy[empty] = dx[empty] = peak[empty] = np.nan
    return dy.astype(np.float32), dx.astype(np.float32), peak.astype(np.float32)
