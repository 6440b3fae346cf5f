"""Per-point offset uncertainty (1-sigma, pixels) from the correlation surface around its peak.

The correlation search already holds what an error estimate needs: the height
``rho`` of the integer peak of each point's correlation surface, how sharply
the surface falls away from it (its curvature, a 2 x 2 Hessian ``H`` from a
least-squares quadratic over the 3 x 3 samples around the peak: the aperture
problem shows as one flat direction) and the template's size (``n = P * P``
pixels). For a template matched against a noisy copy of itself, the
Cramér-Rao bound of a translation estimate gives

    sigma_y^2 ~ (1 - rho) / rho * [(-H)^-1]_yy / n

(and ``[(-H)^-1]_xx`` for ``x``): noise over signal, per independent sample,
per unit of curvature. :func:`offset_errors` generalises it to a log-linear
model whose exponents and scale were fitted on generated pairs with known
truth (``benchmarks/calibrate_errors.py``; :data:`COEFFICIENTS`) as the 68th
percentile of ``|error|`` (quantile regression), plus a floor in quadrature
for what no single-point statistic sees (interpolation error of the
sub-pixel refinement, displacement varying inside a template)::

    log sigma_k = a + b log((1 - rho) / rho) + c log([(-H)^-1]_kk) + d log(n)
    sigma = sqrt(sigma_k^2 + floor^2)

so that 68 % of the errors lie within the reported 1-sigma. The model is
per method: the ``cnn`` surface correlates learnt features, not pixels.
A surface with no proper maximum (a curvature that is not negative definite,
a peak on the window border, no positive correlation) gets the uninformative
value ``R``, the search radius.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, cast

import numpy as np

from .subpixel import GAUSS_NEWTON

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "COEFFICIENTS",
    "ERROR_OUTPUTS",
    "ERROR_OUTPUT_ATTRS",
    "ErrorModel",
    "MatchResultWithErrors",
    "error_model",
    "match_errors",
    "offset_errors",
    "patch_size_of",
    "peak_statistics",
]

#: The extra outputs a matcher with error estimates declares (its ``extra_outputs``).
ERROR_OUTPUTS: tuple[str, ...] = ("dy_error", "dx_error")

#: What the matcher adds to the schema attributes of its error outputs.
ERROR_OUTPUT_ATTRS: dict[str, dict[str, str]] = {
    name: {
        "error_model": (
            "calibrated correlation-peak model: log sigma = a + b log((1 - rho) / rho) + "
            "c log([(-H)^-1]_kk) + d log(patch_size^2), floor added in quadrature "
            "(trackoff_xr.kernels.uncertainty)"
        )
    }
    for name in ERROR_OUTPUTS
}

#: Standard deviation of the rounding error of a whole-pixel offset (pixels).
WHOLE_PIXEL_ERROR = float(np.sqrt(1.0 / 12.0))


class MatchResultWithErrors(NamedTuple):
    """Offsets, match quality and their 1-sigma uncertainty (pixels) per point."""

    dy: np.ndarray
    dx: np.ndarray
    score: np.ndarray
    dy_error: np.ndarray
    dx_error: np.ndarray


class ErrorModel(NamedTuple):
    """Coefficients of the log-linear error model (see the module docstring).

    Attributes
    ----------
    intercept, noise, curvature, size : float
        ``a``, ``b``, ``c``, ``d`` of ``log sigma = a + b log((1 - rho) / rho)
        + c log([(-H)^-1]_kk) + d log(n)``.
    floor : float
        Added in quadrature (pixels).
    """

    intercept: float
    noise: float
    curvature: float
    size: float
    floor: float


#: Fitted error models, by method, for the default Gauss-Newton sub-pixel
#: refinement: ``python benchmarks/calibrate_errors.py --quick`` on generated
#: pairs of seeds 100-105 (24 pairs of 320 x 320 px: glacier fields and uniform
#: sub-pixel shifts, speckle of 2-8 looks, templates of 32 and 64 px, radius
#: 10; about 4,000 points per method). On the check split, seeds 200-205
#: (4,054 points), the fraction of errors within 1 sigma is 0.708 (dy) and
#: 0.691 (dx) for ``ncc``; 0.695 and 0.683 for ``cnn`` (model v2, refitted
#: 2026-12-04 for its default surface, the mix of learnt features and
#: normalised image, ``fusion=0.7``: 4,056 points; the fit for ``fusion=0.3``
#: gave 0.702 and 0.676);
#: 0.693 and 0.676 for ``cnn_features`` (the learnt features alone,
#: ``fusion=1.0``; fitted for model v1, not refitted). The fitted floor is ~0
#: (the curvature term already holds what it would add).
COEFFICIENTS: dict[str, ErrorModel] = {
    "ncc": ErrorModel(intercept=-1.132, noise=0.5447, curvature=0.3752, size=-0.1827, floor=0.0),
    "cnn": ErrorModel(intercept=0.3516, noise=0.5163, curvature=0.5661, size=-0.3894, floor=0.0),
    "cnn_features": ErrorModel(
        intercept=1.2356, noise=0.6484, curvature=0.3851, size=-0.4099, floor=0.0
    ),
}


def error_model(method: str, subpixel: str = "gauss-newton") -> ErrorModel:
    """Return the calibrated :class:`ErrorModel` of ``method`` for a sub-pixel refinement.

    Calibrated for ``"gauss-newton"`` (the default). ``"none"`` (whole
    pixels) adds the rounding error ``sqrt(1 / 12)`` px in quadrature; the
    three-point fits (``"gaussian"``, ``"parabolic"``) use the Gauss-Newton
    model with that floor too, a conservative bound on their pixel-locking
    bias (not calibrated separately). ``"affine"`` (Gauss-Newton with an
    affine warp where the template deforms) uses the Gauss-Newton model.

    Examples
    --------
    >>> error_model("ncc", "none").floor > error_model("ncc").floor
    True
    """
    model = COEFFICIENTS[method]
    if subpixel not in GAUSS_NEWTON:
        model = model._replace(floor=float(np.hypot(model.floor, WHOLE_PIXEL_ERROR)))
    return model


def patch_size_of(templates: object) -> int:
    """Template size of a batch: an array ``(n, P, P[, channels])`` or a ``WindowLattice``.

    Examples
    --------
    >>> patch_size_of(np.zeros((3, 16, 16)))
    16
    """
    size = getattr(templates, "size", None)
    if isinstance(size, (int, np.integer)) and not isinstance(templates, np.ndarray):
        return int(size)
    return int(np.shape(cast("ArrayLike", templates))[1])  # not a lattice: an array batch


# least-squares quadratic a + b u + c v + d u^2 + e v^2 + f u v over the 3 x 3
# samples u, v in {-1, 0, 1} around the peak: coefficients = _FIT @ samples
_U, _V = (g.ravel().astype(np.float64) for g in np.mgrid[-1:2, -1:2])
_FIT = np.linalg.pinv(np.stack([np.ones(9), _U, _V, _U**2, _V**2, _U * _V], axis=1))


def peak_statistics(surfaces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak height and inverse curvature along rows and columns of each surface.

    Parameters
    ----------
    surfaces : ndarray, shape (n, 2R + 1, 2R + 1)
        Correlation surfaces (NaN where unusable).

    Returns
    -------
    rho : ndarray (n,)
        The surface maximum (NaN for an all-NaN surface).
    inv_yy, inv_xx : ndarray (n,)
        Diagonal of ``(-H)^-1``, ``H`` the Hessian of the least-squares
        quadratic over the 3 x 3 samples around the maximum (pixels^2 per
        unit of correlation); where ``-H`` is not positive definite (a ridge),
        ``1 / (-H)_kk`` along an axis that curves down; NaN along a flat
        axis, where the maximum is on the border or a neighbour is NaN.

    Examples
    --------
    >>> yy, xx = np.mgrid[-4:5, -4:5]
    >>> s = (0.9 - 0.1 * yy**2 - 0.05 * xx**2)[None].astype(np.float32)
    >>> rho, inv_yy, inv_xx = peak_statistics(s)
    >>> round(float(rho[0]), 3), round(float(inv_yy[0]), 3), round(float(inv_xx[0]), 3)
    (0.9, 5.0, 10.0)
    """
    surfaces = np.asarray(surfaces)
    n, rows, cols = surfaces.shape
    flat = np.where(np.isfinite(surfaces), surfaces, -np.inf).reshape(n, -1)
    best = flat.argmax(axis=1)
    r, c = np.divmod(best, cols)
    rho = flat[np.arange(n), best].astype(np.float64)
    rho[~np.isfinite(rho)] = np.nan
    inside = (r >= 1) & (r <= rows - 2) & (c >= 1) & (c <= cols - 2) & np.isfinite(rho)
    inv_yy = np.full(n, np.nan)
    inv_xx = np.full(n, np.nan)
    k = np.flatnonzero(inside)
    if k.size:
        dr, dc = np.mgrid[-1:2, -1:2].reshape(2, 1, 9)
        samples = surfaces[k[:, None], r[k, None] + dr[0], c[k, None] + dc[0]].astype(np.float64)
        coef = samples @ _FIT.T  # (m, 6)
        a_, c_, b_ = -2.0 * coef[:, 3], -2.0 * coef[:, 4], -coef[:, 5]  # -H = [[a, b], [b, c]]
        det = a_ * c_ - b_ * b_
        ok = np.isfinite(det) & (det > 0) & (a_ > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # no proper 2-D maximum (a ridge: the aperture problem): each axis
            # on its own curvature, undetermined (NaN) along a flat one
            inv_yy[k] = np.where(ok, c_ / det, np.where(a_ > 0, 1.0 / a_, np.nan))
            inv_xx[k] = np.where(ok, a_ / det, np.where(c_ > 0, 1.0 / c_, np.nan))
    return rho, inv_yy, inv_xx


def offset_errors(
    surfaces: np.ndarray,
    patch_size: int,
    model: ErrorModel | str = "ncc",
) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated 1-sigma uncertainty of the offsets along rows and columns (pixels).

    Parameters
    ----------
    surfaces : ndarray, shape (n, 2R + 1, 2R + 1)
        The integer correlation surfaces the offsets were found on.
    patch_size : int
        Template size ``P`` (pixels); ``n = P * P``.
    model : ErrorModel or str
        The coefficients, or a method name of :data:`COEFFICIENTS`.

    Returns
    -------
    dy_error, dx_error : ndarray (n,), float32
        1-sigma uncertainty of ``dy`` and ``dx``; ``R`` (the search radius)
        where the surface has no proper maximum; NaN for an all-NaN surface.

    Examples
    --------
    A sharper, higher peak is a more certain offset:

    >>> yy, xx = np.mgrid[-4:5, -4:5]
    >>> sharp = 0.95 - 0.2 * (yy**2 + xx**2)
    >>> blunt = 0.6 - 0.05 * (yy**2 + xx**2)
    >>> ey, ex = offset_errors(np.stack([sharp, blunt]), patch_size=32)
    >>> bool(ey[0] < ey[1]), bool(ex[0] < ex[1])
    (True, True)
    """
    coef = COEFFICIENTS[model] if isinstance(model, str) else model
    surfaces = np.asarray(surfaces)
    radius = (surfaces.shape[-1] - 1) // 2
    rho, inv_yy, inv_xx = peak_statistics(surfaces)
    rho_c = np.clip(rho, 1e-3, 1.0 - 1e-6)
    noise = np.log((1.0 - rho_c) / rho_c)
    base = coef.intercept + coef.noise * noise + coef.size * np.log(float(patch_size) ** 2)
    out = []
    for inv in (inv_yy, inv_xx):
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma = np.exp(base + coef.curvature * np.log(inv))
        sigma = np.sqrt(sigma**2 + coef.floor**2)
        bad = ~np.isfinite(sigma) | ~(rho > 0)
        sigma = np.where(bad, float(max(radius, 1)), np.minimum(sigma, max(radius, 1)))
        sigma[np.isnan(rho)] = np.nan
        out.append(sigma.astype(np.float32))
    return out[0], out[1]


def match_errors(
    dy: np.ndarray,
    dx: np.ndarray,
    surfaces: np.ndarray,
    patch_size: int,
    model: ErrorModel | str = "ncc",
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`offset_errors` of matched offsets: NaN where there is no offset to qualify.

    That is where ``dy`` or ``dx`` is NaN, and where the offset lies on the
    border of the search window (``max(|dy|, |dx|) > R - 0.5``), which the
    engine blanks as not a measurement
    (:func:`~trackoff_xr.kernels.lattice.match_lattice`).

    Examples
    --------
    >>> yy, xx = np.mgrid[-4:5, -4:5]
    >>> s = np.stack([0.9 - 0.1 * (yy**2 + xx**2)] * 3)
    >>> ey, ex = match_errors(np.array([0.2, np.nan, 3.7]), np.zeros(3), s, 32)
    >>> np.isfinite(ey).tolist()
    [True, False, False]
    """
    dy_error, dx_error = offset_errors(surfaces, patch_size, model)
    radius = (np.shape(surfaces)[-1] - 1) // 2
    with np.errstate(invalid="ignore"):
        border = np.fmax(np.abs(dy), np.abs(dx)) > radius - 0.5 if radius >= 1 else False
    missing = ~(np.isfinite(dy) & np.isfinite(dx)) | border
    dy_error[missing] = np.nan
    dx_error[missing] = np.nan
    return dy_error, dx_error
