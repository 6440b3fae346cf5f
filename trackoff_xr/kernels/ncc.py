"""Zero-normalised cross-correlation (ZNCC) surfaces.

Two ways, the same numbers:

* on a dense grid whose templates overlap in whole tiles (``P = q * S``),
  the correlation is shared between templates tile by tile
  (:mod:`trackoff_xr.kernels.ncc_tiled`): about half the work;
* otherwise OpenCV's ``matchTemplate`` with ``TM_CCOEFF_NORMED`` per window
  (measured ~14,000 windows/s for 64 px templates in 96 px windows, against
  ~500/s for a batched numpy FFT formulation with the same result).

OpenCV calls release the GIL, so blocks run in parallel on dask's threads;
OpenCV's own pool is held at one thread meanwhile (:mod:`.threads`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ncc_tiled import flat_range, shares_tiles, tiled_surfaces
from .threads import opencv_threads
from .windows import WindowLattice, window_views

__all__ = ["ncc_surfaces"]


def _unusable(patches: np.ndarray | WindowLattice) -> np.ndarray:
    """Patches (n, h, w) that are constant, or hold NaN or inf."""
    if isinstance(patches, WindowLattice):
        # per window, read in place: one extreme pixel elsewhere in the block
        # cannot change the verdict (block-wide sums would let it)
        low, high = patches.ranges()
    else:
        patches = np.asarray(patches)
        high, low = patches.max(axis=(1, 2)), patches.min(axis=(1, 2))
    return flat_range(low, high)


def ncc_surfaces(
    templates: np.ndarray | WindowLattice, windows: np.ndarray | WindowLattice
) -> np.ndarray:
    """ZNCC of each template against every offset inside its search window.

    Parameters
    ----------
    templates : ndarray or WindowLattice, shape (n, P, P)
        Reference templates.
    windows : ndarray or WindowLattice, shape (n, P + 2R, P + 2R)
        Secondary search windows, centred on their templates. Lattices are
        read in place (no copies), and their flat/NaN checks use integral
        images.

    Returns
    -------
    ndarray, shape (n, 2R + 1, 2R + 1), float32
        Correlation in [-1, 1]; element ``[k, R + dy, R + dx]`` scores offset
        ``(dy, dx)``. The surface of a featureless (constant) template or
        window, or of a pair holding NaN, is all NaN: nothing can be measured
        there. Positions where only the window patch is constant score 0.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> win = rng.random((1, 12, 12), dtype=np.float32)
    >>> tmpl = win[:, 3:11, 1:9]          # moved 1 row up, 1 column left of centre
    >>> s = ncc_surfaces(tmpl, win)
    >>> s.shape
    (1, 5, 5)
    >>> np.unravel_index(s[0].argmax(), s[0].shape)   # (R + dy, R + dx) with R = 2
    (np.int64(3), np.int64(1))
    """
    if not isinstance(templates, WindowLattice):
        templates = np.asarray(templates, dtype=np.float32)
    if not isinstance(windows, WindowLattice):
        windows = np.asarray(windows, dtype=np.float32)
    n, patch = len(templates), templates.shape[1]
    size = windows.shape[1] - patch + 1
    out = np.zeros((n, size, size), dtype=np.float32)
    if (
        isinstance(templates, WindowLattice)
        and isinstance(windows, WindowLattice)
        and shares_tiles(templates, windows)
    ):
        # flat templates and windows are found from the tiled sums themselves
        bad = ~(templates.finite() & windows.finite())
        todo = np.flatnonzero(~bad)
        out[todo] = tiled_surfaces(templates, windows, todo)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            bad = _unusable(templates) | _unusable(windows)
        _direct(templates, windows, np.flatnonzero(~bad), out)
    out[bad] = np.nan
    np.clip(out, -1.0, 1.0, out=out)
    return out


def _direct(templates: Any, windows: Any, todo: np.ndarray, out: np.ndarray) -> None:
    """One ``matchTemplate`` per item of ``todo``."""
    import cv2

    with opencv_threads(1):
        for k, window, template in zip(
            todo.tolist(), window_views(windows, todo), window_views(templates, todo), strict=True
        ):
            out[k] = cv2.matchTemplate(
                np.asarray(window, np.float32),
                np.asarray(template, np.float32),
                cv2.TM_CCOEFF_NORMED,
            )
