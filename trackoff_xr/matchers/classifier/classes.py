"""Classes of the per-tile classifier: one class per candidate integer offset.

For a search radius ``R`` and a ``candidate_step`` ``s`` the candidate offsets
along each axis are ``s * (-m, ..., -1, 0, 1, ..., m)`` with ``m = R // s``;
class ``k`` is offset ``(dy, dx) = (steps[k // n], steps[k % n])`` with
``n = 2 m + 1`` (row-major, as the original TrackOff numbers its secondary
tiles). In the project's sign convention the class of offset ``(dy, dx)`` is
the secondary tile whose top-left corner is ``(R + dy, R + dx)`` inside the
search window: a feature at ``(y, x)`` of the reference tile is at
``(y + dy, x + dx)`` of the secondary.
"""

from __future__ import annotations

import numpy as np

from ...exceptions import InvalidParameterError

__all__ = ["candidate_steps", "class_offsets", "class_of_offset", "crop_corners"]


def candidate_steps(radius: int, step: int = 1) -> np.ndarray:
    """Candidate offsets along one axis, pixels.

    Examples
    --------
    >>> candidate_steps(5, 2).tolist()
    [-4, -2, 0, 2, 4]
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise InvalidParameterError(
            f"candidate_step={step!r} is not an integer >= 1; use e.g. candidate_step=1"
        )
    if radius < 0:
        raise InvalidParameterError(f"search radius {radius} is negative; use radius >= 0")
    m = int(radius) // int(step)
    return np.arange(-m, m + 1, dtype=np.int64) * int(step)


def class_offsets(radius: int, step: int = 1) -> np.ndarray:
    """Return the offset ``(dy, dx)`` of every class, shape ``(n_classes, 2)``.

    Examples
    --------
    >>> class_offsets(1)[[0, 1, 4, 8]].tolist()
    [[-1, -1], [-1, 0], [0, 0], [1, 1]]
    """
    steps = candidate_steps(radius, step)
    dy, dx = np.meshgrid(steps, steps, indexing="ij")
    return np.stack([dy.ravel(), dx.ravel()], axis=1)


def class_of_offset(
    dy: np.ndarray | int, dx: np.ndarray | int, radius: int, step: int = 1
) -> np.ndarray:
    """Class index of integer offsets (the inverse of :func:`class_offsets`).

    Offsets that are not candidates give -1.

    Examples
    --------
    >>> class_of_offset(np.array([0, 1]), np.array([0, -1]), 1).tolist()
    [4, 6]
    """
    steps = candidate_steps(radius, step)
    n, m = steps.size, steps.size // 2
    dy, dx = np.asarray(dy), np.asarray(dx)
    iy, ry = np.divmod(dy, step)
    ix, rx = np.divmod(dx, step)
    iy, ix = iy + m, ix + m
    ok = (ry == 0) & (rx == 0) & (iy >= 0) & (iy < n) & (ix >= 0) & (ix < n)
    return np.where(ok, iy * n + ix, -1)


def crop_corners(radius: int, step: int = 1) -> np.ndarray:
    """Top-left corner, inside a search window, of every class's secondary tile."""
    return class_offsets(radius, step) + int(radius)
