"""The grid of matching points: where templates sit, pure integer arithmetic.

A grid point is the centre of a reference template of ``patch_size`` pixels.
The first template starts at pixel 0 and the next one ``spacing`` pixels
later, along both axes. The search window of a point extends
``search_radius`` pixels beyond its template on every side.

Nothing here knows about dask, xarray or any matcher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .exceptions import ImageTooSmallError, InvalidParameterError

__all__ = ["MIN_PATCH_SIZE", "GridSpec"]

#: Smallest template edge, in pixels, that carries enough texture to match.
MIN_PATCH_SIZE = 8


def _as_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(
            f"{name}={value!r} is not an integer; use a whole number of pixels, e.g. {name}=32"
        )
    return int(value)


@dataclass(frozen=True)
class GridSpec:
    """Geometry of the template grid.

    Parameters
    ----------
    patch_size : int
        Edge of the square reference template, in pixels (>= 8).
    spacing : int
        Distance between neighbouring grid points, in pixels (>= 1).
    search_radius : int
        Largest offset searched along each axis, in pixels (>= 0).

    Examples
    --------
    >>> grid = GridSpec(patch_size=64, spacing=32, search_radius=16)
    >>> grid.n_points(256)
    7
    >>> grid.template_starts(256)[:3]
    array([ 0, 32, 64])
    >>> grid.window_size, grid.halo
    (96, 48)
    """

    patch_size: int
    spacing: int
    search_radius: int

    def __post_init__(self) -> None:
        patch = _as_int("patch_size", self.patch_size)
        spacing = _as_int("spacing", self.spacing)
        radius = _as_int("search_radius", self.search_radius)
        if patch < MIN_PATCH_SIZE:
            raise InvalidParameterError(
                f"patch_size={patch} is smaller than the minimum of {MIN_PATCH_SIZE} "
                f"pixels; use patch_size >= {MIN_PATCH_SIZE}"
            )
        if spacing < 1:
            raise InvalidParameterError(
                f"spacing={spacing} must be at least 1 pixel; use spacing >= 1 "
                f"(e.g. spacing={max(patch // 2, 1)}, half the patch)"
            )
        if radius < 0:
            raise InvalidParameterError(
                f"search_radius={radius} is negative; use search_radius >= 0 "
                "(the largest expected offset in pixels)"
            )
        object.__setattr__(self, "patch_size", patch)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "search_radius", radius)

    @property
    def window_size(self) -> int:
        """Edge of a search window: the template plus the radius on both sides."""
        return self.patch_size + 2 * self.search_radius

    @property
    def halo(self) -> int:
        """Pixels a block needs beyond the template anchors it owns (the overlap depth)."""
        return self.patch_size // 2 + self.search_radius

    def n_points(self, length: int) -> int:
        """Count the grid points along an axis of ``length`` pixels."""
        if length < self.patch_size:
            return 0
        return (length - self.patch_size) // self.spacing + 1

    def template_starts(self, length: int) -> np.ndarray:
        """First pixel of every template along an axis."""
        return np.arange(self.n_points(length)) * self.spacing

    def anchors(self, length: int) -> np.ndarray:
        """Return the pixel that owns each grid point: ``start + patch_size // 2``."""
        return self.template_starts(length) + self.patch_size // 2

    def window_fits(self, length: int) -> np.ndarray:
        """Whether each point's search window lies inside ``[0, length)``."""
        starts = self.template_starts(length)
        radius = self.search_radius
        return (starts - radius >= 0) & (starts + self.patch_size + radius <= length)

    def point_coordinates(self, coord: np.ndarray) -> np.ndarray:
        """Mean of ``coord`` over each template's pixels: the grid coordinate.

        Examples
        --------
        >>> GridSpec(64, 32, 16).point_coordinates(np.arange(128.0))
        array([31.5, 63.5, 95.5])
        """
        coord = np.asarray(coord, dtype=np.float64)
        csum = np.concatenate([[0.0], np.cumsum(coord)])
        starts = self.template_starts(coord.size)
        return (csum[starts + self.patch_size] - csum[starts]) / self.patch_size

    def check_image_shape(self, shape: tuple[int, ...]) -> None:
        """Raise unless an image of ``shape`` holds at least one full search window."""
        need = self.window_size
        if min(shape) < need:
            raise ImageTooSmallError(
                f"image of shape {tuple(shape)} is smaller than one template plus its "
                f"search window ({need} x {need} pixels = patch_size {self.patch_size} "
                f"+ 2 x search_radius {self.search_radius}); use a larger image or a "
                "smaller patch_size/search_radius"
            )
