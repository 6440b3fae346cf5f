"""Cut templates and search windows out of an image block."""

from __future__ import annotations

import numpy as np

__all__ = ["extract_windows"]


def extract_windows(
    image: np.ndarray,
    first: tuple[int, int],
    count: tuple[int, int],
    step: int,
    size: int,
) -> np.ndarray:
    """Copy a regular lattice of square windows out of ``image``.

    Parameters
    ----------
    image : ndarray, shape (rows, cols) or (rows, cols, channels)
        The pixels to cut from.
    first : (int, int)
        Row and column of the top-left corner of the first window.
    count : (int, int)
        Number of windows along rows and columns.
    step : int
        Distance between the corners of neighbouring windows.
    size : int
        Edge of each window.

    Returns
    -------
    ndarray, shape (count[0] * count[1], size, size[, channels])
        The windows in row-major order of the lattice, as a contiguous copy.

    Examples
    --------
    >>> img = np.arange(36.0).reshape(6, 6)
    >>> w = extract_windows(img, first=(0, 1), count=(2, 2), step=3, size=2)
    >>> w.shape
    (4, 2, 2)
    >>> w[1]
    array([[ 4.,  5.],
           [10., 11.]])
    """
    ny, nx = count
    channels = image.shape[2:]
    if ny == 0 or nx == 0:
        return np.empty((0, size, size, *channels), dtype=image.dtype)
    r0, c0 = first
    view = np.lib.stride_tricks.sliding_window_view(image, (size, size), axis=(0, 1))
    if channels:  # (rows, cols, C, size, size) -> (rows, cols, size, size, C)
        view = np.moveaxis(view, 2, -1)
    lattice = view[r0 : r0 + (ny - 1) * step + 1 : step, c0 : c0 + (nx - 1) * step + 1 : step]
    if lattice.shape[:2] != (ny, nx):
        raise ValueError(
            f"image block of shape {image.shape} cannot hold {ny} x {nx} windows of "
            f"{size} px every {step} px from {first}"
        )
    return np.ascontiguousarray(lattice).reshape(ny * nx, size, size, *channels)
