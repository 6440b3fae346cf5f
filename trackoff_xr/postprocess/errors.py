"""Per-point error propagation: the 1-sigma error of the speed from its components.

:func:`speed_error` is used by :func:`~trackoff_xr.velocity`, which carries the
matchers' ``dx_error``/``dy_error`` (pixels, :mod:`trackoff_xr.kernels.uncertainty`)
to ``vx_error``, ``vy_error`` and ``v_error`` (``meter/year``). Per-pair
stable-ground statistics are in :mod:`trackoff_xr.postprocess.stable`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["speed_error"]


def speed_error(vx: Any, vy: Any, vx_error: Any, vy_error: Any) -> Any:
    """1-sigma error of the speed ``hypot(vx, vy)`` from the component errors.

    First-order propagation, ``sqrt((vx vx_error)^2 + (vy vy_error)^2) / v``
    (ITS_LIVE's ``v_error``); where ``v = 0`` the derivative is undefined and
    the standard deviation of ``hypot`` of two zero-mean normal errors is
    used (``sqrt(2 - pi / 2)`` times the error when both are equal). Works on
    numpy arrays and (lazy) DataArrays alike.

    Examples
    --------
    >>> speed_error(np.array([3.0, 0.0]), np.array([4.0, 0.0]), np.array([1.0, 1.0]),
    ...             np.array([2.0, 1.0])).round(3)
    array([1.709, 0.655])
    """
    v = np.hypot(vx, vy)
    with np.errstate(divide="ignore", invalid="ignore"):
        moving = np.sqrt((vx * vx_error) ** 2 + (vy * vy_error) ** 2) / v
    # v = 0: hypot of two zero-mean normal errors; its mean is
    # sqrt(2 / pi) s_max E(1 - s_min^2 / s_max^2) (E: complete elliptic integral)
    from scipy.special import ellipe

    big, small = np.fmax(abs(vx_error), abs(vy_error)), np.fmin(abs(vx_error), abs(vy_error))
    with np.errstate(divide="ignore", invalid="ignore"):
        m = 1.0 - (small / big) ** 2
    mean = np.sqrt(2.0 / np.pi) * big * ellipe(np.fmax(m, 0.0))  # fmax: NaN (0 / 0) -> 0
    still = np.sqrt(np.fmax(vx_error**2 + vy_error**2 - mean**2, 0.0))
    if isinstance(moving, xr.DataArray):
        return moving.where(v > 0, still)
    return np.where(v > 0, moving, still)
