"""Where each point's search window is centred: a coarse-to-fine pass, or a prior.

The fine search of :func:`trackoff_xr.offsets` looks ``search_radius`` pixels
around a *search centre*. Without help the centre is the point itself, so
motion beyond the radius is out of reach (its correlation maximum lands on
the window border and is blanked). Two ways to move the centre, as autoRIFT
does with its coarse chips and reference velocities:

* :func:`coarse_centres`: both images are block-averaged by
  :attr:`CoarseSearch.factor`, matched by NCC on a coarse grid with a wide
  reach, and the coherent part of that coarse field, interpolated to the
  fine grid, centres every fine search. On by default (``coarse="auto"``).
* :func:`prior_centres`: a user's field of offsets (``dx``/``dy``, pixels)
  or velocities (``vx``/``vy``, any CRS and grid) is sampled at the fine
  points and turned into pixels with the pair's dates and pixel size.

Both are lazy: they return a dask array of whole-pixel centres that the
fine pass (:func:`trackoff_xr.blockwise.match_blockwise`) reads block by
block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from .exceptions import InvalidParameterError, PriorError
from .georef import crs_name, crs_of
from .grid import GridSpec
from .kernels.centring import (
    block_average,
    clean_field,
    fill_nearest,
    interpolate_lattice,
    round_centres,
)

__all__ = [
    "CENTRED_SEARCH_RADIUS",
    "UNCENTRED_SEARCH_RADIUS",
    "CoarseSearch",
    "coarse_centres",
    "fine_search_radius",
    "prior_centres",
    "resolve_coarse",
]

#: default fine search radius (pixels) when nothing centres the searches: the
#: point's own position is the only guess, so the window must hold the motion
UNCENTRED_SEARCH_RADIUS = 16
#: default fine search radius around a centre from the coarse pass, which
#: measured this pair's own motion: the window need only hold that field's
#: error. (A prior keeps :data:`UNCENTRED_SEARCH_RADIUS`: it may be a uniform
#: offset, or velocities of other dates.) On real S1
#: texture (DJ, coarse pass on, 4 looks) most outliers of a 16-pixel search
#: are far-off peaks: > 6 px errors 1.36 % of ncc's points at R=16, 0.12 % at
#: R=6, RMSE 1.59 -> 0.39 px; on the generated (40, -25) + 10 px glacier pair
#: every point stays valid (autoRIFT also searches a few pixels around its
#: coarse estimate).
CENTRED_SEARCH_RADIUS = 6

#: unit strings of a velocity prior, and the days they span
_VELOCITY_UNITS = {
    "m/yr": 365.25,
    "m/y": 365.25,
    "m/year": 365.25,
    "meter/year": 365.25,
    "meters/year": 365.25,
    "m a-1": 365.25,
    "m yr-1": 365.25,
    "m/d": 1.0,
    "m/day": 1.0,
    "meter/day": 1.0,
    "meters/day": 1.0,
    "m d-1": 1.0,
}


@dataclass(frozen=True)
class CoarseSearch:
    """The coarse pass of the coarse-to-fine search.

    Parameters
    ----------
    factor : int
        Both images are block-averaged by ``factor`` x ``factor`` pixels.
    patch_size, spacing, search_radius : int
        The coarse grid, in coarse pixels: with the defaults, 128-pixel
        templates every 64 pixels of the full image, searched up to
        :attr:`reach` = 64 pixels. The spacing was chosen on generated pairs
        only (``benchmarks/choose_coarse.py``: 12 Sentinel-1-like and fractal
        pairs, shifts up to 40 px plus fields up to 10 px; pooled > 1 px
        outliers / kept after ``filter_offsets``): spacing 8 (the old
        default) ``ncc`` 28.5 % / 68.4 %, ``cnn`` 23.1 % / 67.6 %; spacing
        16 ``ncc`` 27.3 % / 67.4 %, ``cnn`` 21.9 % / 66.9 %, with the coarse
        pass 3.7x cheaper (0.27 s against 1.00 s on a 4096 x 4096 pair).
    min_score : float
        Coarse matches with a lower peak correlation are not used.
    tolerance : float
        Coarse matches further than this (coarse pixels) from the median of
        their 3 x 3 neighbours are not used.

    Examples
    --------
    >>> CoarseSearch().reach
    64
    >>> CoarseSearch().fits((600, 600)), CoarseSearch().fits((200, 900))
    (True, False)
    """

    factor: int = 4
    patch_size: int = 32
    spacing: int = 16
    search_radius: int = 16
    min_score: float = 0.3
    tolerance: float = 1.0

    def __post_init__(self) -> None:
        if int(self.factor) != self.factor or self.factor < 2:
            raise InvalidParameterError(
                f"CoarseSearch factor={self.factor!r} must be a whole number >= 2 "
                "(the block size of the coarse images); e.g. factor=4"
            )

    @property
    def grid(self) -> GridSpec:
        """The coarse grid, in coarse pixels."""
        return GridSpec(self.patch_size, self.spacing, self.search_radius)

    @property
    def reach(self) -> int:
        """Largest search centre the coarse pass can give, in full-resolution pixels."""
        return self.factor * self.search_radius

    def fits(self, shape: tuple[int, ...]) -> bool:
        """Whether an image of ``shape`` holds one coarse search window with points inside it."""
        need = self.factor * (self.grid.window_size + self.spacing)
        return min(shape) >= need


def fine_search_radius(search_radius: int | None, centred: bool) -> int:
    """Return the fine search radius ``offsets(search_radius=...)`` uses.

    An explicit radius is kept; ``None`` (the default) means
    :data:`CENTRED_SEARCH_RADIUS` around a coarse-pass centre, and
    :data:`UNCENTRED_SEARCH_RADIUS` around the point itself or a prior.

    Examples
    --------
    >>> fine_search_radius(None, centred=True), fine_search_radius(None, centred=False)
    (6, 16)
    >>> fine_search_radius(10, centred=True)
    10
    """
    if search_radius is not None:
        return search_radius
    return CENTRED_SEARCH_RADIUS if centred else UNCENTRED_SEARCH_RADIUS


def resolve_coarse(coarse: Any, prior: Any, shape: tuple[int, ...]) -> CoarseSearch | None:
    """Return the coarse pass ``offsets(coarse=...)`` asks for, or None for none.

    ``"auto"`` (the default): a :class:`CoarseSearch` with default settings
    unless a prior is given or the image is too small to hold a coarse
    window; ``True``: the same, refused on an image that is too small;
    ``False``: none; a :class:`CoarseSearch`: that one.
    """
    if coarse is False or coarse is None:
        return None
    if isinstance(coarse, str) and coarse == "auto":
        search = CoarseSearch()
        return search if prior is None and search.fits(shape) else None
    if coarse is True:
        search = CoarseSearch()
    elif isinstance(coarse, CoarseSearch):
        search = coarse
    else:
        raise InvalidParameterError(
            f"coarse={coarse!r} is not understood; use 'auto' (default), True, False, "
            "or a trackoff_xr.search.CoarseSearch"
        )
    if prior is not None:
        raise InvalidParameterError(
            "coarse and prior were both given; a prior already centres every search: "
            "pass coarse=False (or leave coarse='auto') with prior="
        )
    if not search.fits(shape):
        side = search.factor * (search.grid.window_size + search.spacing)
        raise InvalidParameterError(
            f"an image of shape {tuple(shape)} is too small for the coarse pass, which needs "
            f"{side} x {side} pixels; use coarse=False, or a CoarseSearch with a smaller factor"
        )
    return search


def _point_pixels(grid: GridSpec, length: int) -> np.ndarray:
    """Pixel position (centre of the template) of each grid point along an axis."""
    return grid.template_starts(length) + (grid.patch_size - 1) / 2


def _block_mean(array: Any, factor: int) -> Any:
    import dask.array as da

    a = array if isinstance(array, da.Array) else da.from_array(np.asarray(array), chunks=2048)
    # chunks in whole blocks of ``factor`` pixels (a tail shorter than that is trimmed)
    aligned = tuple(max(factor, max(c) // factor * factor) for c in a.chunks)
    a = a.rechunk(aligned)
    rows, cols = (n // factor * factor for n in a.shape)
    a = a[:rows, :cols]
    return a.map_blocks(
        block_average,
        factor,
        chunks=tuple(tuple(c // factor for c in axis) for axis in a.chunks),
        dtype=np.float32,
        meta=np.empty((0, 0), np.float32),
    )


def coarse_centres(ref: Any, sec: Any, grid: GridSpec, search: CoarseSearch) -> Any:
    """Lazily find a search centre for every point of ``grid`` by a coarse pass.

    Parameters
    ----------
    ref, sec : numpy or dask array, shape (rows, cols)
        The full-resolution images (NaN marks nodata).
    grid : GridSpec
        The fine grid whose points get centres.
    search : CoarseSearch
        The coarse pass.

    Returns
    -------
    dask.array.Array, shape (ny, nx, 2), int32
        Row and column offset of each fine search window's centre, within
        ``[-search.reach, search.reach]``; zeros where the coarse pass found
        nothing coherent anywhere.

    Examples
    --------
    >>> from trackoff_xr.testing import shifted_pair
    >>> ref, sec = shifted_pair(shape=(512, 512), shift=(5.0, -30.0), seed=0)
    >>> centres = coarse_centres(ref.values, sec.values, GridSpec(64, 32, 16), CoarseSearch())
    >>> c = centres.compute()
    >>> c.shape, np.median(c[..., 0]), np.median(c[..., 1])
    ((15, 15, 2), np.float64(5.0), np.float64(-30.0))
    """
    import dask.array as da

    from .blockwise import BlockMeans, match_blockwise, reads_privately
    from .matchers import NCCMatcher

    f = search.factor
    if all(reads_privately(a) for a in (ref, sec)):
        # each coarse block reads and averages its own full-resolution region:
        # no coarse image is held between tasks, whatever the scheduler's order
        coarse_ref, coarse_sec = BlockMeans(ref, f), BlockMeans(sec, f)
    else:
        coarse_ref, coarse_sec = _block_mean(ref, f), _block_mean(sec, f)
    cgrid = search.grid
    fields = match_blockwise(
        coarse_ref, coarse_sec, cgrid, NCCMatcher(subpixel="gaussian"), stage="coarse"
    )
    rows, cols = coarse_ref.shape
    # coarse pixel j covers full pixels [j f, (j + 1) f): its centre is j f + (f - 1) / 2
    at_rows = _point_pixels(cgrid, rows) * f + (f - 1) / 2
    at_cols = _point_pixels(cgrid, cols) * f + (f - 1) / 2
    fine_rows = _point_pixels(grid, int(ref.shape[0]))
    fine_cols = _point_pixels(grid, int(ref.shape[1]))

    def centres(block: np.ndarray) -> np.ndarray:
        cy, cx, _ = clean_field(
            block[..., 0],
            block[..., 1],
            block[..., 2],
            min_score=search.min_score,
            tolerance=search.tolerance,
        )
        iy = interpolate_lattice(cy * f, at_rows, at_cols, fine_rows, fine_cols)
        ix = interpolate_lattice(cx * f, at_rows, at_cols, fine_rows, fine_cols)
        return round_centres(iy, ix, search.reach)

    whole = fields.rechunk((-1, -1, -1))
    return da.map_blocks(
        centres,
        whole,
        chunks=((fine_rows.size,), (fine_cols.size,), (2,)),
        dtype=np.int32,
        token="trackoff-coarse-centres",
    )


def _prior_dims(prior: xr.Dataset) -> tuple[Any, Any]:
    from .inputs import spatial_dims

    names = [v for v in ("dx", "vx", "dy", "vy") if v in prior.data_vars]
    return spatial_dims(prior[names[0]], "prior")


def _velocity_days(units: Any, name: str) -> float:
    key = str(units).strip().lower() if units is not None else ""
    if key not in _VELOCITY_UNITS:
        raise PriorError(
            f"prior {name!r} has units {units!r}, which are not understood; set its 'units' "
            "attribute to 'm/yr' (or 'meter/year', as ITS_LIVE) or 'm/d'"
        )
    return _VELOCITY_UNITS[key]


def prior_centres(
    prior: xr.Dataset,
    ref: xr.DataArray,
    grid: GridSpec,
    reach: int,
    metadata: dict[str, Any],
) -> Any:
    """Lazily sample a prior at the points of ``grid`` as whole-pixel search centres.

    Parameters
    ----------
    prior : xarray.Dataset
        Either offsets ``dx``, ``dy`` in pixels of this pair (on the image's
        CRS, any grid), or velocities ``vx``, ``vy`` with ``units`` (m/yr or
        m/d) along the x/y axes of the prior's own CRS (any CRS and grid,
        e.g. an ITS_LIVE mosaic). NaN (gaps) take the nearest value.
    ref : xarray.DataArray
        The prepared reference image (dims rows, columns).
    grid : GridSpec
        The fine grid.
    reach : int
        Centres are clipped to ``[-reach, reach]`` pixels.
    metadata : dict
        :func:`trackoff_xr.pair_metadata` of the pair: velocities need
        ``date_dt`` and ``pixel_size_x``/``pixel_size_y``.

    Returns
    -------
    dask.array.Array, shape (ny, nx, 2), int32

    Raises
    ------
    PriorError
        A prior without usable variables, units, dates, pixel size or CRS.
    """
    import dask.array as da

    if not isinstance(prior, xr.Dataset):
        raise PriorError(
            f"prior must be an xarray.Dataset with dx/dy (pixels) or vx/vy (velocities); "
            f"got {type(prior).__name__}"
        )
    pixels = {"dx", "dy"} <= set(prior.data_vars)
    velocities = {"vx", "vy"} <= set(prior.data_vars)
    if not (pixels or velocities):
        raise PriorError(
            f"prior has variables {sorted(map(str, prior.data_vars))}; it needs dx and dy "
            "(offsets in pixels) or vx and vy (velocities with units)"
        )
    ydim, xdim = ref.dims
    y = grid.point_coordinates(np.asarray(ref[ydim].values, dtype=np.float64))
    x = grid.point_coordinates(np.asarray(ref[xdim].values, dtype=np.float64))
    px, py = np.meshgrid(x, y)
    image_crs, prior_crs = crs_of(ref), crs_of(prior)
    pdim_y, pdim_x = _prior_dims(prior)

    def to_prior(xs: np.ndarray, ys: np.ndarray, inverse: bool = False) -> tuple[Any, Any]:
        if image_crs is None or prior_crs is None or image_crs == prior_crs:
            return xs, ys
        from pyproj import Transformer

        a, b = (prior_crs, image_crs) if inverse else (image_crs, prior_crs)
        return Transformer.from_crs(a, b, always_xy=True).transform(xs, ys)

    qx, qy = to_prior(px, py)
    if pixels and not velocities:
        if image_crs is not None and prior_crs is not None and image_crs != prior_crs:
            raise PriorError(
                "a prior in pixels (dx, dy) must be on the image's CRS; this one is on "
                f"{crs_name(prior_crs)}, the image on {crs_name(image_crs)}: give velocities "
                "(vx, vy) instead"
            )
        names = ("dy", "dx")
    else:
        names = ("vy", "vx")
        for key in ("date_dt", "pixel_size_x", "pixel_size_y"):
            if key not in metadata:
                raise PriorError(
                    f"a velocity prior needs the pair's {key}, which the images do not "
                    "carry; give them a CRS, coordinates and acquisition dates (as "
                    "open_image or open_safe do), or pass a prior in pixels (dx, dy)"
                )
        if image_crs is None:
            raise PriorError(
                "a velocity prior needs map-geometry images with a CRS; this pair has none: "
                "geocode it, or pass a prior in pixels (dx, dy)"
            )
    where = {
        pdim_y: xr.DataArray(np.asarray(qy), dims=("py", "px")),
        pdim_x: xr.DataArray(np.asarray(qx), dims=("py", "px")),
    }
    sampled = [prior[name].interp(where, method="linear") for name in names]
    scale = [1.0, 1.0]
    if velocities and names[0] == "vy":
        dt = float(metadata["date_dt"])
        scale = [dt / _velocity_days(prior[n].attrs.get("units"), n) for n in names]
    size_y = float(metadata.get("pixel_size_y", 1.0))
    size_x = float(metadata.get("pixel_size_x", 1.0))
    velocity = names[0] == "vy"

    def centres(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        first, second = fill_nearest(first), fill_nearest(second)
        if not velocity:
            return round_centres(first, second, reach)
        # displacement over the pair in the prior's CRS, carried to the image's CRS
        ex, ey = to_prior(qx + second * scale[1], qy + first * scale[0], inverse=True)
        dy = (np.asarray(ey) - py) / size_y
        dx = (np.asarray(ex) - px) / size_x
        return round_centres(dy, dx, reach)

    # the point grid is small: one block (da.asarray keeps a dask prior lazy)
    first, second = (da.asarray(s.data).rechunk(-1) for s in sampled)
    return da.map_blocks(
        centres,
        first,
        second,
        new_axis=2,
        chunks=((y.size,), (x.size,), (2,)),
        dtype=np.int32,
        token="trackoff-prior-centres",
    )
