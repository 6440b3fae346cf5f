"""Per-pair stable-ground statistics: the offset measured on ground that does not move.

* :func:`speed_error` -- the 1-sigma error of the speed ``v = hypot(vx, vy)``
  from the component errors (used by :func:`~trackoff_xr.velocity`, which
  carries ``dx_error``/``dy_error`` to ``vx_error``, ``vy_error``, ``v_error``).
* :func:`stable_shift` -- the offset measured on ground that does not move
  (a user mask, raster or vector in any CRS, or the slowest points), with
  ITS_LIVE's names (hyp3-autorift ``netcdf_output.py``) as attributes of each
  component, and optionally removed from the offsets and velocities.

Attributes :func:`stable_shift` writes on ``dx`` and ``dy`` (pixels) and,
when present, on the velocity components (``meter/year``):

``stable_shift``
    The median of the component over the stable points.
``stable_shift_flag``
    0: not removed; 1: removed, from the stable-ground mask; 2: removed,
    from the slowest points (ITS_LIVE's codes).
``stable_shift_stationary``, ``stable_count_stationary``, ``error_stationary``
    With a mask: the median, the number of points, and the standard
    deviation over them (ITS_LIVE's ``error_stationary``, an ``np.std``).
``stable_shift_slow``, ``stable_count_slow``, ``error_slow``
    Without a mask: the same over the slowest points.

Unlike ITS_LIVE, ``stable_shift`` holds the measured shift even when it was
not removed (flag 0); ITS_LIVE writes 0 there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..exceptions import DimensionError, InvalidParameterError
from ..georef import crs_name, crs_of, is_radar_reference
from ..schema import valid_mask, velocity_variables

__all__ = ["SLOW_FRACTION", "stable_mask", "stable_shift"]

#: share of the valid points taken as stable when no mask is given (the slowest)
SLOW_FRACTION = 0.25

_FLAG_DESCRIPTION = (
    "stable shift removed from this component: 0 = no; 1 = yes, from a stable-ground mask; "
    "2 = yes, from the slowest points"
)


def _grid_crs(ds: xr.Dataset) -> Any:
    """CRS of a result's grid (pyproj), ``None`` without one, ``"radar"`` in radar geometry."""
    if "spatial_ref" not in ds.coords:
        return None
    if is_radar_reference(ds.coords["spatial_ref"].attrs) or ds.attrs.get("geometry") == "radar":
        return "radar"
    return crs_of(ds)


def _grid_transform(ds: xr.Dataset) -> Any:
    """Affine transform of the result's grid cells (one cell per point, centred on it)."""
    from affine import Affine

    x, y = np.asarray(ds["x"].values, float), np.asarray(ds["y"].values, float)
    sx = float(x[1] - x[0]) if x.size > 1 else 1.0
    sy = float(y[1] - y[0]) if y.size > 1 else 1.0
    return Affine(sx, 0.0, x[0] - sx / 2, 0.0, sy, y[0] - sy / 2)


def _geojson_crs(obj: Mapping[str, Any]) -> str | None:
    """Return the (2008-style) named ``crs`` member of a GeoJSON object, if any."""
    crs = obj.get("crs")
    if isinstance(crs, Mapping):
        name = crs.get("properties", {}).get("name")
        if name:
            return str(name)
    return None


_GEOMETRY_TYPES = (
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
)


def _geometries(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    kind = obj.get("type")
    if kind == "FeatureCollection":
        return [g for f in obj.get("features", []) for g in _geometries(f)]
    if kind == "Feature":
        return [obj["geometry"]] if obj.get("geometry") else []
    if kind in _GEOMETRY_TYPES:
        return [obj]
    raise InvalidParameterError(
        f"the mask's GeoJSON type {kind!r} is not a geometry, Feature or FeatureCollection"
    )


def _vector_shapes(mask: Any) -> tuple[list[Mapping[str, Any]], Any, bool]:
    """GeoJSON geometries of a vector mask, their CRS, and whether that CRS is only the default.

    GeoJSON (file or dict) without a ``crs`` member: WGS 84 (RFC 7946) by
    default; a GeoDataFrame: its own CRS; bare geometries: none (the grid's).
    """
    if isinstance(mask, (str, Path)):
        path = Path(mask)
        if not path.is_file():
            raise InvalidParameterError(
                f"mask={str(mask)!r} is not a file; pass a GeoJSON file, a GeoJSON dict, "
                "shapely geometries, a GeoDataFrame or a raster DataArray"
            )
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidParameterError(
                f"mask={str(mask)!r} is not a GeoJSON file ({exc}); convert it with "
                "`ogr2ogr -f GeoJSON out.geojson in.shp`, or pass a raster DataArray"
            ) from exc
        mask = data
    if isinstance(mask, Mapping):
        named = _geojson_crs(mask)
        return _geometries(mask), named or "EPSG:4326", named is None
    if hasattr(mask, "geometry") and hasattr(mask, "crs"):  # a GeoDataFrame / GeoSeries
        own = mask.crs
        shapes = [g.__geo_interface__ for g in mask.geometry if g is not None]
        return shapes, (own.to_wkt() if own is not None else None), False
    items = mask if isinstance(mask, (list, tuple)) else [mask]
    shapes = []
    for item in items:
        geo = getattr(item, "__geo_interface__", None)
        if geo is None:
            raise InvalidParameterError(
                f"mask of type {type(item).__name__} is neither a raster DataArray nor a "
                "vector (GeoJSON path or dict, shapely geometry, GeoDataFrame)"
            )
        shapes.extend(_geometries(geo))
    return shapes, None, True


def _rasterize(mask: Any, ds: xr.Dataset, crs: Any, grid_crs: Any) -> np.ndarray:
    """Burn a vector mask into the grid: points whose centre lies inside a polygon."""
    from pyproj import CRS
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    shapes, shapes_crs, default = _vector_shapes(mask)
    if crs is not None:
        shapes_crs, default = crs, False
    if grid_crs is None:
        if not default and shapes_crs is not None:
            raise InvalidParameterError(
                f"the mask is in a CRS ({shapes_crs}) but the result has none; pass a mask in "
                "the result's own coordinates (crs=None) or track georeferenced images"
            )
        shapes_crs = None  # no CRS anywhere: the result's own coordinates
    if shapes_crs is not None and CRS.from_user_input(shapes_crs) != grid_crs:
        source = CRS.from_user_input(shapes_crs).to_wkt()
        shapes = [transform_geom(source, grid_crs.to_wkt(), g) for g in shapes]
    out_shape = (ds.sizes["y"], ds.sizes["x"])
    if not shapes:
        return np.zeros(out_shape, dtype=bool)
    burnt = rasterize(
        [(g, 1) for g in shapes], out_shape=out_shape, transform=_grid_transform(ds), fill=0
    )
    return burnt.astype(bool)


def _resample_raster(mask: xr.DataArray, ds: xr.Dataset, grid_crs: Any) -> np.ndarray:
    import rioxarray  # noqa: F401  (registers .rio)

    if mask.ndim != 2:
        raise DimensionError(f"a raster mask must be 2-D; got dims {mask.dims}")
    mask = mask.squeeze()
    mask_crs = crs_of(mask)
    if mask_crs is not None and grid_crs is not None:
        from rasterio.enums import Resampling

        template = xr.DataArray(
            np.zeros((ds.sizes["y"], ds.sizes["x"]), np.float32),
            dims=("y", "x"),
            coords={"y": ds["y"].values, "x": ds["x"].values},
        ).rio.write_crs(grid_crs.to_wkt())
        values = mask.astype(np.float32).rio.write_nodata(np.nan, encoded=False)
        if mask.rio.nodata is not None:
            values = values.where(mask != mask.rio.nodata)
        moved = values.rio.reproject_match(template, resampling=Resampling.nearest)
        data = np.asarray(moved.values)
    elif mask_crs is not None:
        raise InvalidParameterError(
            f"the mask has a CRS ({crs_name(mask_crs)}) but the result has none; pass a mask "
            "on the result's own coordinates, without a CRS"
        )
    else:
        ydim, xdim = ("y", "x") if {"y", "x"} <= set(mask.dims) else mask.dims
        data = np.asarray(
            mask.astype(np.float32)
            .interp({ydim: ds["y"].values, xdim: ds["x"].values}, method="nearest")
            .transpose(ydim, xdim)
            .values
        )
    with np.errstate(invalid="ignore"):
        return np.isfinite(data) & (data != 0)


def stable_mask(mask: Any, ds: xr.Dataset, *, crs: Any = None) -> xr.DataArray:
    """Put a stable-ground mask on the grid of a result: True where the ground is stable.

    Parameters
    ----------
    mask : DataArray, ndarray, GeoJSON path or dict, shapely geometry, GeoDataFrame
        A raster (nonzero = stable; any CRS, reprojected by nearest neighbour;
        without a CRS, taken in the result's own coordinates and sampled at
        the nearest pixel; NaN and nodata are not stable), a boolean array of
        the grid's shape, or a vector of polygons of stable ground (points
        whose centre lies inside). A GeoJSON file or dict is in WGS 84 unless
        it names a ``crs``; a GeoDataFrame in its own CRS; shapely
        geometries in the result's CRS unless ``crs`` says otherwise.
    ds : xarray.Dataset
        The result (grid ``y``, ``x``; its CRS in ``spatial_ref``).
    crs : anything pyproj reads, optional
        The vector's CRS, overriding the defaults above.

    Returns
    -------
    xarray.DataArray of bool (y, x)

    Examples
    --------
    >>> ds = xr.Dataset(coords={"y": [0.5, 1.5], "x": [0.5, 1.5, 2.5]})
    >>> square = {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]}
    >>> stable_mask(square, ds, crs=None).values.tolist()   # no CRS: the grid's coordinates
    [[True, True, False], [True, True, False]]
    """
    shape = (ds.sizes["y"], ds.sizes["x"])
    grid_crs = _grid_crs(ds)
    if isinstance(mask, np.ndarray):
        if mask.shape != shape:
            raise DimensionError(
                f"a mask array must have the grid's shape {shape}; got {mask.shape}. Pass a "
                "DataArray with coordinates to have it resampled"
            )
        values = np.asarray(mask).astype(bool)
    elif grid_crs == "radar":
        if isinstance(mask, xr.DataArray) and getattr(mask.rio, "crs", None) is None:
            values = _resample_raster(mask, ds, None)
        else:
            raise InvalidParameterError(
                "the result is in radar geometry (no map CRS), so a mask in a map CRS cannot "
                "be placed on it; reproject the images to a map CRS before tracking, or pass "
                "a mask on the radar grid (a DataArray without CRS, or a boolean array)"
            )
    elif isinstance(mask, xr.DataArray):
        values = _resample_raster(mask, ds, grid_crs)
    else:
        values = _rasterize(mask, ds, crs, grid_crs)
    return xr.DataArray(values, dims=("y", "x"), coords={"y": ds["y"], "x": ds["x"]})


def _slowest(dx: np.ndarray, dy: np.ndarray, valid: np.ndarray, fraction: float) -> np.ndarray:
    """Pick the ``fraction`` of valid points nearest the shift they define (iterated from 0)."""
    centre = (0.0, 0.0)
    chosen = valid
    count = max(int(round(fraction * valid.sum())), 1)
    for _ in range(20):  # the choice pulls the median toward the centre: iterate
        previous = centre
        distance = np.where(valid, np.hypot(dx - centre[0], dy - centre[1]), np.inf)
        order = np.argsort(distance, axis=None, kind="stable")[:count]
        chosen = np.zeros(valid.shape, dtype=bool)
        chosen.flat[order] = True
        centre = (float(np.median(dx[chosen])), float(np.median(dy[chosen])))
        if np.hypot(centre[0] - previous[0], centre[1] - previous[1]) < 1e-4:
            break
    return chosen


def _component_stats(values: np.ndarray, stable: np.ndarray) -> tuple[float, int, float]:
    picked = values[stable & np.isfinite(values)]
    if picked.size == 0:
        return float("nan"), 0, float("nan")
    return float(np.median(picked)), int(picked.size), float(np.std(picked))


def stable_shift(
    ds: xr.Dataset,
    mask: Any = None,
    *,
    remove_stable_shift: bool = False,
    crs: Any = None,
    slow_fraction: float = SLOW_FRACTION,
) -> xr.Dataset:
    """Measure (and optionally remove) the offset of stable ground, with ITS_LIVE's names.

    A pair's offsets over ground that does not move should be zero; their
    median there is the pair's bias (orbit or co-registration error). It is
    taken over the valid, measured (not interpolated) points that are

    * inside ``mask``, the stable ground (rock, ice-free land), when given;
    * otherwise the slowest ``slow_fraction`` of the valid points (ITS_LIVE's
      fallback takes the slowest 25 %): those nearest the shift, found from
      zero in rounds (slowest points, their median, the points nearest it,
      ... until the median settles, at most 20), so a bias does not bend
      the choice. This assumes at least
      that fraction of the scene is stable ground.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`trackoff_xr.offsets`, filtered or not, with or
        without velocities. Computed here (the statistic is global).
    mask : optional
        Stable ground: a raster DataArray (nonzero = stable) in any CRS, a
        boolean array of the grid's shape, or a vector (GeoJSON path or dict,
        shapely geometries, GeoDataFrame) in any CRS; see :func:`stable_mask`.
    remove_stable_shift : bool
        Subtract the shift from ``dx`` and ``dy`` (and recompute the
        velocities, if ``ds`` has them); recorded in ``stable_shift_flag``
        and the ``stable_shift_removed`` attribute.
    crs : optional
        CRS of a vector ``mask`` (see :func:`stable_mask`).
    slow_fraction : float
        Without a mask, the fraction of valid points taken as stable.

    Returns
    -------
    xarray.Dataset
        A copy with the statistics (see the module docstring) as attributes
        of ``dx``, ``dy`` (pixels) and the velocity components (m/yr).

    Raises
    ------
    InvalidParameterError
        No valid point lies on the stable ground, or a bad ``slow_fraction``.

    Examples
    --------
    >>> dx = np.array([[0.3, 0.3, 5.0], [0.3, 0.3, 6.0]], np.float32)
    >>> ds = xr.Dataset({"dx": (("y", "x"), dx), "dy": (("y", "x"), -0.2 + 0 * dx)},
    ...                 coords={"y": [0.5, 1.5], "x": [0.5, 1.5, 2.5]})
    >>> out = stable_shift(ds, remove_stable_shift=True, slow_fraction=0.5)
    >>> round(out.dx.attrs["stable_shift"], 3), out.dx.attrs["stable_shift_flag"]
    (0.3, 2)
    >>> [round(v, 3) for v in out.dx.values[0].tolist()]
    [0.0, 0.0, 4.7]
    """
    if not isinstance(ds, xr.Dataset) or "dx" not in ds or "dy" not in ds:
        raise DimensionError(
            "stable_shift() needs the Dataset returned by trackoff_xr.offsets() with dx and dy; "
            f"got {type(ds).__name__}"
        )
    if not 0 < float(slow_fraction) <= 1:
        raise InvalidParameterError(
            f"slow_fraction={slow_fraction!r} must be in (0, 1]; e.g. 0.25 (ITS_LIVE's)"
        )
    ds = ds.transpose("y", "x", ...).compute()
    valid = np.asarray(valid_mask(ds).values, dtype=bool)
    if "interp_mask" in ds:
        valid &= np.asarray(ds["interp_mask"].values) == 0
    dx, dy = np.asarray(ds["dx"].values, float), np.asarray(ds["dy"].values, float)
    if mask is not None:
        stable = np.asarray(stable_mask(mask, ds, crs=crs).values) & valid
        kind, flag = "stationary", 1
        if not stable.any():
            raise InvalidParameterError(
                f"the stable-ground mask covers {int(stable_mask(mask, ds, crs=crs).sum())} "
                f"grid points, none of them valid; check the mask's CRS and extent (the result "
                "spans x {float(ds.x.min())}..{float(ds.x.max())}, y "
                f"{float(ds.y.min())}..{float(ds.y.max())}), or pass mask=None"
            )
    else:
        if not valid.any():
            raise InvalidParameterError(
                "the result has no valid point to measure a stable shift on"
            )
        stable = _slowest(dx, dy, valid, float(slow_fraction))
        kind, flag = "slow", 2

    components = [("dx", dx), ("dy", dy)]
    speeds = velocity_variables(ds)
    if speeds is not None:
        components += [(name, np.asarray(ds[name].values, float)) for name in speeds]
    stats = {name: _component_stats(values, stable) for name, values in components}

    out = ds.copy()
    if remove_stable_shift:
        out["dx"] = ds["dx"] - np.float32(stats["dx"][0])
        out["dy"] = ds["dy"] - np.float32(stats["dy"][0])
        if speeds is not None:
            from .velocity import velocity

            out = velocity(out)
        out.attrs["stable_shift_removed"] = (
            f"dy {stats['dy'][0]:.4f} px, dx {stats['dx'][0]:.4f} px subtracted "
            f"(median over {stats['dx'][1]} {'masked stable' if flag == 1 else 'slowest'} points)"
        )
    for name, (shift, count, spread) in stats.items():
        attrs = dict(ds[name].attrs)
        attrs.update(
            {
                "stable_shift": shift,
                "stable_shift_flag": flag if remove_stable_shift else 0,
                "stable_shift_flag_description": _FLAG_DESCRIPTION,
                f"stable_shift_{kind}": shift,
                f"stable_count_{kind}": count,
                f"error_{kind}": spread,
            }
        )
        out[name].attrs = attrs
    return out
