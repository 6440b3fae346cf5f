"""Matching a batch of templates in their windows: ZNCC search, then sub-pixel refinement.

The numpy core every correlation matcher shares (``ncc`` and ``cnn``);
:mod:`trackoff_xr.matchers` wraps it as registered methods.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..exceptions import InvalidParameterError
from .ncc import ncc_surfaces
from .refine import refine_translation
from .refine_affine import refine_affine
from .subpixel import GAUSS_NEWTON, SUBPIXEL_METHODS, refine_peaks

__all__ = ["EXACT_MATCH", "MatchResult", "check_subpixel", "correlate_and_refine"]

#: integer-peak ZNCC at and above which a match is taken as exact (no refinement)
EXACT_MATCH = 0.999
#: ``subpixel="affine"`` keeps the translation refinement where the fitted
#: warp moves no template corner by this many px relative to its centre
AFFINE_MIN_EDGE_MOTION = 0.25


class MatchResult(NamedTuple):
    """Offsets and match quality for a batch of template/window pairs."""

    dy: np.ndarray
    dx: np.ndarray
    score: np.ndarray


def correlate_and_refine(
    templates: np.ndarray,
    windows: np.ndarray,
    subpixel: str = "gauss-newton",
    refine_on: tuple[np.ndarray, np.ndarray] | None = None,
    surfaces: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ZNCC search over the whole window, then sub-pixel refinement of the peak.

    ``refine_on`` optionally gives other (templates, windows) -- e.g. a
    linear, shift-equivariant version of the images -- for the Gauss-Newton
    refinement, while the integer search uses ``templates``/``windows``.

    An integer peak on the border of the search window (``|dy|`` or ``|dx|``
    equal to ``R``) is not refined inward: it is returned on the border, where
    the engine marks it as not a measurement
    (:func:`~trackoff_xr.kernels.lattice.match_arrays`).

    ``surfaces`` optionally gives correlation surfaces computed elsewhere
    (e.g. a combination of several channels' surfaces) to search instead of
    the ZNCC of ``templates`` in ``windows``.

    Returns
    -------
    dy, dx : ndarray (n,), float32
        Offsets; NaN where nothing correlates positively.
    peak : ndarray (n,), float32
        Correlation at the returned offset (NaN for unusable pairs).
    surfaces : ndarray (n, 2R + 1, 2R + 1)
        The integer correlation surfaces.
    """
    if surfaces is None:
        surfaces = ncc_surfaces(templates, windows)
    if subpixel not in GAUSS_NEWTON:
        dy, dx, peak = refine_peaks(surfaces, subpixel)  # type: ignore[arg-type]
    else:
        iy, ix, peak = refine_peaks(surfaces, "none")
        dy, dx, _ = refine_peaks(surfaces, "gaussian")  # a close start: fewer steps
        # a whole-pixel match that is already essentially perfect is not
        # moved: along an edge (the aperture problem) the refinement could
        # otherwise drift on interpolation error. Comparing correlations in
        # general would favour integers, where no interpolation smooths noise.
        exact = peak >= EXACT_MATCH
        dy[exact], dx[exact] = iy[exact], ix[exact]
        # the maximum of a border peak may lie beyond the window: refining it
        # would pull it inward and present it as an inner match
        radius = (surfaces.shape[1] - 1) // 2
        border = (np.maximum(np.abs(iy), np.abs(ix)) >= radius) & (radius >= 1)
        todo = np.flatnonzero(np.isfinite(peak) & ~exact & ~border)
        rt, rw = refine_on if refine_on is not None else (templates, windows)
        rt, rw = rt[todo], rw[todo]
        ry, rx, zncc = refine_translation(rt, rw, dy[todo], dx[todo])
        if subpixel == "affine":
            ay, ax, azncc, motion = refine_affine(rt, rw, ry, rx)
            warped = motion >= AFFINE_MIN_EDGE_MOTION  # NaN (not refined) is False
            ry, rx = np.where(warped, ay, ry), np.where(warped, ax, rx)
            zncc = np.where(warped, np.fmax(azncc, zncc), zncc)
        dy[todo], dx[todo] = ry, rx
        if refine_on is None:
            peak[todo] = np.fmax(peak[todo], zncc)
    # no positive correlation anywhere: nothing was matched
    dy[~(peak > 0)] = np.nan
    dx[~(peak > 0)] = np.nan
    return dy, dx, peak, surfaces


def check_subpixel(subpixel: str) -> str:
    """Return ``subpixel`` if it names a sub-pixel method, else raise a helpful error.

    Examples
    --------
    >>> check_subpixel("gaussian")
    'gaussian'
    """
    if subpixel not in (*GAUSS_NEWTON, *SUBPIXEL_METHODS):
        raise InvalidParameterError(
            f"subpixel={subpixel!r} is not a sub-pixel method; use one of "
            f"{', '.join(map(repr, (*GAUSS_NEWTON, *SUBPIXEL_METHODS)))}"
        )
    return subpixel
