"""The xarray front: ``offsets()`` turns two images into a Dataset of offsets.

Labels and metadata live here; the blockwise plan is in
:mod:`trackoff_xr.blockwise` and the matching itself in
:mod:`trackoff_xr.matchers`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import xarray as xr

from .blockwise import match_blockwise, output_fields
from .georef import output_spatial_ref
from .grid import GridSpec
from .inputs import check_pair, prepare_image
from .matchers import get_matcher
from .matchers.base import capabilities
from .postprocess.velocity import pair_metadata
from .schema import attrs_for, cf_grid, valid_mask
from .search import (
    CoarseSearch,
    coarse_centres,
    fine_search_radius,
    prior_centres,
    resolve_coarse,
)

__all__ = ["PRIOR_REACH", "offsets"]

#: Largest search centre (pixels, either axis) a prior may give; larger ones are capped.
PRIOR_REACH = 64


def _axis_coordinate(image: xr.DataArray, dim: Any) -> np.ndarray:
    if dim in image.coords:
        return np.asarray(image[dim].values)
    return np.arange(image.sizes[dim], dtype=np.float64)


def offsets(
    ref: xr.DataArray,
    sec: xr.DataArray,
    *,
    patch_size: int = 64,
    spacing: int = 32,
    search_radius: int | None = None,
    method: str = "cnn",
    prior: xr.Dataset | None = None,
    coarse: bool | str | CoarseSearch = "auto",
    **matcher_options: Any,
) -> xr.Dataset:
    """Measure how far the content of ``ref`` moved to reach ``sec``.

    Parameters
    ----------
    ref, sec : xarray.DataArray
        Reference (earlier) and secondary (later) images: 2-D, same shape,
        coordinates and CRS; numpy- or dask-backed. Their dimensions are found
        by name (``y``/``x``, ``lat``/``lon``, ``row``/``col``,
        ``line``/``sample`` or what ``rio.y_dim``/``rio.x_dim`` report), in
        either order. NaN and the nodata value the array declares
        (``rio.nodata``, ``_FillValue`` in its attributes or encoding) mark
        nodata.
    patch_size : int, default 64
        Edge of the square reference template, pixels (>= 8).
    spacing : int, default 32
        Distance between grid points, pixels (>= 1).
    search_radius : int, optional
        Largest offset searched along each axis around each point's search
        centre, pixels (>= 0). Default: 6 around the centres of the coarse
        pass, which measures this pair's own motion; 16 otherwise, also
        around a ``prior``, which may be uniform or from other dates
        (:func:`trackoff_xr.search.fine_search_radius`). The radius used is
        recorded in the ``search_radius`` attribute.
    method : {"cnn", "ncc", "classifier"}, default "cnn"
        The matcher: the shared pre-trained network, normalised
        cross-correlation, or the per-tile classifier of Łucka (2025).
    prior : xarray.Dataset, optional
        Where to centre each point's search: offsets ``dx``, ``dy`` in pixels
        (on the image's CRS, any grid), or velocities ``vx``, ``vy`` with
        ``units`` (m/yr or m/d) in any CRS and grid, e.g. an ITS_LIVE
        mosaic; velocities are turned into pixels with the pair's dates and
        pixel size. Sampled lazily at every point
        (:func:`trackoff_xr.search.prior_centres`). Centres are capped at
        64 pixels.
    coarse : {"auto", True, False} or CoarseSearch, default "auto"
        The coarse-to-fine pass for unknown motion
        (:func:`trackoff_xr.search.coarse_centres`): both images are
        block-averaged 4 x 4 and matched by NCC with 128-pixel templates up
        to 64 pixels away, and the coherent part of that field centres every
        fine search. ``"auto"`` runs it unless a ``prior`` is given or the
        image is smaller than 320 pixels; ``False`` searches around every
        point itself.
    **matcher_options
        Passed to the matcher, e.g. ``subpixel="parabolic"`` for ``"ncc"``.

    Returns
    -------
    xarray.Dataset
        On dims ``(y, x)``, one point per template: ``dx``, ``dy`` (pixels,
        float32; a feature at ``(y, x)`` of ``ref`` is at ``(y + dy, x + dx)``
        of ``sec``), ``score`` in [0, 1] and ``valid``. Coordinates are the
        mean input coordinate over each template. Points whose template plus
        search window leaves the image or touches NaN are NaN. When the
        searches were centred (a coarse pass or a prior), ``search_dy`` and
        ``search_dx`` give each point's centre, and ``dy``, ``dx`` include it. Lazy when the
        inputs are dask-backed: nothing is computed until ``.compute()``.

    Raises
    ------
    DimensionError
        An image that is not 2-D or whose dimensions cannot be told apart by name.
    CoordinateError
        NaN, repeated or unsorted coordinates.
    ImageDTypeError
        Complex, boolean or date/time images.
    TrackOffError
        Another subclass naming the problem: bad parameters, unknown method,
        images not on the same grid, or too small.

    Examples
    --------
    >>> import trackoff_xr
    >>> from trackoff_xr.testing.synthetic import shifted_pair
    >>> ref, sec = shifted_pair(shape=(160, 160), shift=(2.0, -3.0), seed=0)
    >>> ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=32, search_radius=8,
    ...                          method="ncc")
    >>> ds.sizes["y"], ds.sizes["x"]
    (5, 5)
    >>> float(ds.dy.median()), float(ds.dx.median())
    (2.0..., -3.0...)
    """
    grid = GridSpec(
        patch_size=patch_size,
        spacing=spacing,
        search_radius=fine_search_radius(search_radius, centred=False),
    )
    matcher = get_matcher(method, **matcher_options)
    ref = prepare_image(ref, "ref")  # (rows, columns) by name, nodata as NaN
    sec = prepare_image(sec, "sec")
    check_pair(ref, sec)
    search = resolve_coarse(coarse, prior, ref.shape)
    if search is not None:  # centred on this pair's own coarse field: it holds that field's error
        grid = replace(grid, search_radius=fine_search_radius(search_radius, centred=True))
    grid.check_image_shape(ref.shape)
    caps = capabilities(matcher)
    if caps.check_grid is not None:
        caps.check_grid(grid)

    lazy = ref.chunks is not None or sec.chunks is not None
    centres, reach = None, 0
    if prior is not None:
        reach = PRIOR_REACH
        centres = prior_centres(prior, ref, grid, reach, pair_metadata(ref, sec))
    elif search is not None:
        reach = search.reach
        centres = coarse_centres(ref.data, sec.data, grid, search)
    fields = match_blockwise(ref.data, sec.data, grid, matcher, centres=centres, reach=reach)

    ydim, xdim = ref.dims
    coords: dict[str, Any] = {
        "y": ("y", grid.point_coordinates(_axis_coordinate(ref, ydim))),
        "x": ("x", grid.point_coordinates(_axis_coordinate(ref, xdim))),
    }
    spatial_ref = output_spatial_ref(ref)
    if spatial_ref is not None:
        coords["spatial_ref"] = spatial_ref

    extra_attrs = caps.output_attrs
    grid_mapping = {"grid_mapping": "spatial_ref"} if spatial_ref is not None else {}
    data_vars = {}
    for k, name in enumerate(output_fields(matcher, centred=centres is not None)):
        values = fields[..., k]
        if name == "peak_at_edge":  # a flag: 1 where the peak lay on the window border
            values = values == 1
        attrs = attrs_for(name, **extra_attrs.get(name, {}), **grid_mapping)
        data_vars[name] = (("y", "x"), values, attrs)
    ds = xr.Dataset(data_vars, coords=coords)
    ds["valid"] = valid_mask(ds).assign_attrs(attrs_for("valid", **grid_mapping))
    ds.attrs.update(_attributes(grid, matcher, ref, sec))
    ds.attrs.update(_search_attributes(prior, search))
    ds = cf_grid(ds)  # CF coordinate attributes, no _FillValue on coordinates
    return ds if lazy else ds.compute()


def _search_attributes(prior: Any, search: CoarseSearch | None) -> dict[str, Any]:
    """How the searches were centred, for the output's attributes."""
    if prior is not None:
        return {"search_centre": "prior", "search_reach": PRIOR_REACH}
    if search is None:
        return {"search_centre": "none"}
    return {
        "search_centre": "coarse",
        "search_reach": search.reach,
        "coarse_factor": search.factor,
        "coarse_patch_size": search.patch_size * search.factor,
        "coarse_spacing": search.spacing * search.factor,
    }


def _attributes(
    grid: GridSpec, matcher: Any, ref: xr.DataArray, sec: xr.DataArray
) -> dict[str, Any]:
    from ._version import __version__

    attrs: dict[str, Any] = {
        "title": "image offsets measured by trackoff_xr",
        "method": matcher.name,
        "patch_size": grid.patch_size,
        "spacing": grid.spacing,
        "search_radius": grid.search_radius,
        "software": "trackoff_xr",
        "software_version": __version__,
    }
    attrs.update({f"{matcher.name}_{k}": v for k, v in matcher.describe().items()})
    attrs.update(pair_metadata(ref, sec))
    attrs.update(
        Conventions="CF-1.8, ACDD-1.3",
        history=f"offsets measured by trackoff_xr {__version__} ({matcher.name})",
        summary=(
            "Surface offsets between two images measured by template matching "
            f"({matcher.name}) with trackoff_xr"
        ),
        keywords="glacier velocity, offset tracking, feature tracking, Sentinel-1",
        source=f"trackoff_xr {__version__}",
        processing_level="L2",
        product_version=__version__,
        standard_name_vocabulary="CF Standard Name Table v93",
    )
    return attrs
