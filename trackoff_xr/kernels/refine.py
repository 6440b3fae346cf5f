"""Sub-pixel refinement by inverse-compositional Gauss-Newton (IC-GN).

Starting from the integer correlation peak, the translation ``p`` that
minimises the zero-normalised sum of squared differences (ZNSSD) between the
template and the window sampled at ``p`` is found iteratively. ZNSSD equals
``2 * (1 - ZNCC)``, so this is the sub-pixel maximum of the same correlation
the integer search used, not a curve fitted through three samples of it. It
is the standard sub-pixel estimator of digital image correlation (Pan et
al., 2013, Exp. Mech. 53:1277), and has no pixel-locking bias: a whole-pixel
shift is returned to within a few thousandths of a pixel.

Measured on generated textures (64 px templates, 841 points, shift
(-4.37, 6.81)), RMSE in pixels:

=================  ===========  ===========  ===========
estimator          no speckle   4 looks      2 looks
=================  ===========  ===========  ===========
IC-GN (this)       0.006        0.306        0.814
3-point Gaussian   0.063        0.329        0.837
=================  ===========  ===========  ===========

The window is resampled with OpenCV's bicubic ``warpAffine`` (C speed; its
1/32-pixel position quantisation is below the noise above). The outer
``_BORDER`` pixels of the template, where its gradient is one-sided, are left
out of the sums.
"""

from __future__ import annotations

import numpy as np

__all__ = ["refine_translation"]

_BORDER = 2
_PAD = 5  # windows are padded so 8-tap sampling never leaves them


def _lanczos_taps(frac: np.ndarray) -> np.ndarray:
    """Weights ``(n, 8)`` of the Lanczos-4 taps at offsets -3..4 for samples at ``frac``."""
    d = np.arange(-3, 5)[None, :] - frac[:, None]
    w = np.sinc(d) * np.sinc(d / 4.0)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def _sample(
    windows: np.ndarray,
    items: np.ndarray,
    top: np.ndarray,
    left: np.ndarray,
    size: int,
    out: np.ndarray,
    interpolation: str,
) -> np.ndarray:
    """Fill ``out[:len(items)]`` with ``size`` x ``size`` patches of ``windows[items]``.

    Patch ``j`` has its corner at the real-valued position ``(top[j], left[j])``
    of a window padded by ``_PAD`` pixels. A translation is separable, so
    Lanczos-4 resampling is two 8-tap passes (``cv2.sepFilter2D``) at the exact
    fractional position; ``"cubic"`` uses ``cv2.warpAffine`` (1/32-px positions).
    """
    import cv2

    if interpolation == "cubic":
        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
        shift = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
        for j, k in enumerate(items):
            shift[0, 2], shift[1, 2] = left[j] + _PAD, top[j] + _PAD
            cv2.warpAffine(
                windows[k],
                shift,
                (size, size),
                dst=out[j],
                flags=flags,
                borderMode=cv2.BORDER_REPLICATE,
            )
        return out[: items.size].reshape(items.size, -1)
    rows, cols = np.floor(top).astype(int), np.floor(left).astype(int)
    taps_y, taps_x = _lanczos_taps(top - rows), _lanczos_taps(left - cols)
    for j, k in enumerate(items):
        iy, ix = rows[j] + _PAD - 3, cols[j] + _PAD - 3
        src = windows[k, iy : iy + size + 7, ix : ix + size + 7]
        filtered = cv2.sepFilter2D(
            src, cv2.CV_32F, taps_x[j], taps_y[j], anchor=(0, 0), borderType=cv2.BORDER_REPLICATE
        )
        out[j] = filtered[:size, :size]
    return out[: items.size].reshape(items.size, -1)


def refine_translation(
    templates: np.ndarray,
    windows: np.ndarray,
    dy: np.ndarray,
    dx: np.ndarray,
    *,
    iterations: int = 6,
    tolerance: float = 0.02,
    interpolation: str = "lanczos",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refine integer offsets to the sub-pixel ZNCC maximum.

    Parameters
    ----------
    templates : ndarray, shape (n, P, P)
    windows : ndarray, shape (n, P + 2R, P + 2R)
    dy, dx : ndarray, shape (n,)
        Starting offsets, relative to the window centre: the integer peak,
        or better a three-point fit around it (fewer iterations).
    iterations : int
        Most Gauss-Newton steps.
    tolerance : float
        An item stops once its step is shorter than this, in pixels. OpenCV
        resamples at 1/32-pixel positions, so steps much below that only
        oscillate.
    interpolation : {"lanczos", "cubic"}
        Resampling of the window. At the true offset the only residual is
        the interpolation error, which moves the fixed point; measured on
        band-limited textures (RMSE, px, noise-free / smoothed sigma 0.7 /
        4 looks + smoothing): Lanczos 0.017 / 0.014 / 0.266, bicubic
        0.007 / 0.036 / 0.270. Lanczos is the default because real and
        learnt images are smooth at the pixel scale.

    Returns
    -------
    dy, dx : ndarray, float64
        Refined offsets. Items whose refinement leaves the search window or
        moves more than one pixel from the start keep their starting value.
    zncc : ndarray, float64
        Correlation where the last step started (within ``tolerance`` of the
        returned offset); NaN for items that could not be refined (a
        featureless template).

    Examples
    --------
    >>> from trackoff_xr.synthetic import shifted_pair
    >>> ref, sec = shifted_pair((64, 64), shift=(0.3, -0.6), seed=2)
    >>> t, w = ref.values[None, 16:48, 16:48], sec.values[None, 8:56, 8:56]
    >>> ry, rx, _ = refine_translation(t, w, np.array([0.0]), np.array([-1.0]))
    >>> round(float(ry[0]), 1), round(float(rx[0]), 1)
    (0.3, -0.6)
    """
    if interpolation not in ("lanczos", "cubic"):
        raise ValueError(f"interpolation={interpolation!r}; use 'lanczos' or 'cubic'")
    templates = np.asarray(templates, dtype=np.float32)
    n, size = templates.shape[0], templates.shape[1]
    radius = (windows.shape[1] - size) // 2
    windows = np.pad(
        np.asarray(windows, dtype=np.float32), ((0, 0), (_PAD, _PAD), (_PAD, _PAD)), mode="edge"
    )
    start_y = np.asarray(dy, np.float64).copy()
    start_x = np.asarray(dx, np.float64).copy()
    if n == 0:
        return start_y, start_x, np.empty(0)

    inner = size - 2 * _BORDER
    k = inner * inner
    core = (slice(None), slice(_BORDER, size - _BORDER), slice(_BORDER, size - _BORDER))
    gy, gx = np.gradient(templates, axis=(1, 2))
    tz = templates[core].reshape(n, k)
    tz = tz - tz.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    norm = np.maximum(np.sqrt(np.einsum("nk,nk->n", tz, tz)), 1e-30)[:, None]
    tn = tz / norm
    # grads[:, 0] and grads[:, 1]: row and column gradients of the normalised template
    grads = np.empty((n, 2, k), dtype=np.float32)
    grads[:, 0] = gy[core].reshape(n, k) / norm
    grads[:, 1] = gx[core].reshape(n, k) / norm
    # With w the sampled patch and wc = w - mean(w), err = wc / |wc| - tn and
    # sum(g * err) = sum(g * wc) / |wc| - sum(g * tn): dot products per item and
    # iteration, no normalised copies. (Centring first: E[w^2] - E[w]^2 in
    # float32 cancels catastrophically on low-contrast patches.)
    grad_t = np.matmul(grads, tn[:, :, None])[:, :, 0].astype(np.float64)

    hessian = np.matmul(grads, grads.transpose(0, 2, 1)).astype(np.float64)
    hyy, hyx, hxx = hessian[:, 0, 0], hessian[:, 0, 1], hessian[:, 1, 1]
    det = hyy * hxx - hyx**2
    active = det > 1e-9 * np.maximum(hyy * hxx, 1e-300)
    safe = np.where(active, det, 1.0)
    inv = np.empty_like(hessian)
    inv[:, 0, 0], inv[:, 1, 1] = hxx / safe, hyy / safe
    inv[:, 0, 1] = inv[:, 1, 0] = -hyx / safe

    buffer = np.empty((n, inner, inner), dtype=np.float32)
    count = float(k)

    def correlate(idx: np.ndarray, py_: np.ndarray, px_: np.ndarray) -> tuple[np.ndarray, ...]:
        w = _sample(
            windows,
            idx,
            radius + py_ + _BORDER,
            radius + px_ + _BORDER,
            inner,
            buffer,
            interpolation,
        )
        mean = w.mean(axis=1, keepdims=True, dtype=np.float64)
        w -= mean.astype(np.float32)
        w_norm = np.sqrt(np.einsum("nk,nk->n", w, w).astype(np.float64))
        flat = w_norm <= 1e-6 * np.maximum(np.abs(mean[:, 0]) * np.sqrt(count), 1e-30)
        return w, np.where(flat, np.inf, w_norm)

    py, px = start_y.copy(), start_x.copy()
    zncc = np.full(n, np.nan)
    for _ in range(iterations):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        w, w_norm = correlate(idx, py[idx], px[idx])
        # correlation where this step starts: the last one is within the
        # stopping tolerance of the returned offset, so no extra resampling
        zncc[idx] = np.einsum("nk,nk->n", w, tn[idx]).astype(np.float64) / w_norm
        gw = np.matmul(grads[idx], w[:, :, None])[:, :, 0].astype(np.float64)
        b = gw / w_norm[:, None] - grad_t[idx]
        step = np.einsum("nij,nj->ni", inv[idx], b)
        py[idx] -= step[:, 0]
        px[idx] -= step[:, 1]
        lost = (np.abs(py[idx] - start_y[idx]) > 1) | (np.abs(px[idx] - start_x[idx]) > 1)
        lost |= (np.abs(py[idx]) > radius) | (np.abs(px[idx]) > radius)
        py[idx[lost]], px[idx[lost]] = start_y[idx[lost]], start_x[idx[lost]]
        active[idx[lost | (np.hypot(step[:, 0], step[:, 1]) < tolerance)]] = False

    return py, px, zncc
