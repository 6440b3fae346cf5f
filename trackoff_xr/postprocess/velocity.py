"""From offsets in pixels to ice velocity in metres per year.

:func:`velocity` needs two things the offsets alone do not have: the size of
a pixel on the ground and the time between the images. It finds them, in
this order:

* explicit arguments (``pixel_size=``, ``days=``) always win;
* attributes of the offsets Dataset (``pixel_size_x``/``pixel_size_y``,
  ``range_pixel_spacing``/``azimuth_pixel_spacing``, ``date_dt``,
  ``acquisition_date_img1``/``acquisition_date_img2``), as
  :func:`pair_metadata` writes them;
* the two images themselves, passed as ``ref=``/``sec=``;
* for map rasters, the grid coordinates: neighbouring points are
  ``spacing`` pixels apart, so ``pixel = (x[1] - x[0]) / spacing``.

Three geometries, named in the ``geometry`` attribute:

``"map"``
    A projected CRS (e.g. EPSG:3413). ``vx``/``vy`` follow the CRS axes:
    ``vx = dx * pixel_width``, ``vy = dy * pixel_height`` with the signed
    GeoTransform values, i.e. ``vy = -dy * |pixel height|`` on a north-up
    raster.
``"radar"``
    Sentinel-1 GRD in radar geometry (from :func:`trackoff_xr.io.safe.open_safe`).
    Columns run in ground range, rows along the flight direction (azimuth),
    neither is east or north, so the components are named honestly
    ``v_range`` (toward far range) and ``v_azimuth`` (along the flight
    direction); ``v`` is the horizontal speed. Reproject the images to a map
    CRS first (``image.rio.reproject("EPSG:3413")`` uses the product's ground
    control points) to get ``vx``/``vy``.
``"image"``
    No georeferencing (e.g. a PNG). ``pixel_size=`` is needed, and ``vx``,
    ``vy`` assume a north-up image (row 0 at the top).

A year is 365.25 days.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..exceptions import (
    InvalidParameterError,
    MissingMetadataError,  # noqa: F401  (re-exported)
)
from ..georef import acquisition_time, crs_of, crs_wkt, is_radar_reference, pair_dates
from ..schema import attrs_for, check_offsets

__all__ = [
    "DAYS_PER_YEAR",
    "MissingMetadataError",
    "acquisition_time",
    "pair_metadata",
    "velocity",
]

DAYS_PER_YEAR = 365.25


def _grid_mapping(obj: xr.Dataset | xr.DataArray) -> dict[str, Any] | None:
    if "spatial_ref" not in obj.coords:
        return None
    return dict(obj.coords["spatial_ref"].attrs)


def _is_geographic(grid_mapping: dict[str, Any]) -> bool:
    found = crs_of(grid_mapping)
    return found is not None and bool(found.is_geographic)


def _geometry_of(obj: xr.Dataset | xr.DataArray) -> str:
    if obj.attrs.get("geometry") in ("map", "radar", "image"):
        return str(obj.attrs["geometry"])
    gm = _grid_mapping(obj)
    if gm is None:
        return "image"
    if is_radar_reference(gm):
        return "radar"
    if crs_wkt(gm):
        return "map"
    return "image"


def pair_metadata(ref: xr.DataArray, sec: xr.DataArray) -> dict[str, Any]:
    """Attributes an offsets Dataset needs for :func:`velocity`, read from its images.

    Parameters
    ----------
    ref, sec : xarray.DataArray
        The reference and secondary images, as :func:`trackoff_xr.open_image`
        or :func:`trackoff_xr.io.safe.open_safe` return them.

    Returns
    -------
    dict
        ``geometry`` (``"map"``, ``"radar"`` or ``"image"``); for maps
        ``pixel_size_x``, ``pixel_size_y`` (signed, as in the GeoTransform:
        negative height on north-up rasters); for radar images
        ``range_pixel_spacing``, ``azimuth_pixel_spacing`` (metres); and when
        both images carry acquisition times: ``acquisition_date_img1``,
        ``acquisition_date_img2``, ``date_center`` (ISO 8601, UTC) and
        ``date_dt`` (days), named as in ITS_LIVE. Entries that cannot be
        known are left out.

    Examples
    --------
    >>> import rioxarray  # noqa: F401
    >>> img = xr.DataArray(np.zeros((3, 4), np.float32), dims=("y", "x"),
    ...                    coords={"y": [25.0, 15.0, 5.0], "x": [5.0, 15.0, 25.0, 35.0]})
    >>> ref = img.rio.write_crs("EPSG:3413").assign_attrs(acquisition_start="2024-02-03")
    >>> sec = img.rio.write_crs("EPSG:3413").assign_attrs(acquisition_start="2024-02-15")
    >>> meta = pair_metadata(ref, sec)
    >>> meta["geometry"], meta["pixel_size_x"], meta["pixel_size_y"], meta["date_dt"]
    ('map', 10.0, -10.0, 12.0)
    >>> meta["date_center"]
    '2024-02-09T00:00:00.000000'
    """
    meta: dict[str, Any] = {"geometry": _geometry_of(ref)}
    if meta["geometry"] == "map":
        size = _transform_pixel_size(ref)
        if size is not None:
            meta["pixel_size_x"], meta["pixel_size_y"] = size
    elif meta["geometry"] == "radar":
        for key in ("range_pixel_spacing", "azimuth_pixel_spacing"):
            if key in ref.attrs:
                meta[key] = float(ref.attrs[key])
    t1, t2 = acquisition_time(ref), acquisition_time(sec)
    if t1 is not None and t2 is not None:
        meta.update(pair_dates(t1, t2))
    return meta


def _transform_pixel_size(image: xr.DataArray) -> tuple[float, float] | None:
    import rioxarray  # noqa: F401  (registers .rio)

    try:
        transform = image.rio.transform(recalc=False)
    except Exception:  # noqa: BLE001 - rioxarray raises several kinds here
        return None
    if transform.b != 0 or transform.d != 0:
        raise InvalidParameterError(
            f"the image grid is rotated (GeoTransform {tuple(transform)[:6]}); reproject it "
            "to a north-up grid (image.rio.reproject(image.rio.crs)) or pass pixel_size="
        )
    if transform.is_identity:
        return None
    return float(transform.a), float(transform.e)


def _grid_pixel_size(ds: xr.Dataset) -> tuple[float, float] | None:
    spacing = ds.attrs.get("spacing")
    if not spacing or ds.sizes.get("x", 0) < 2 or ds.sizes.get("y", 0) < 2:
        return None
    x, y = np.asarray(ds["x"].values), np.asarray(ds["y"].values)
    return float(x[1] - x[0]) / float(spacing), float(y[1] - y[0]) / float(spacing)


def _check_positive(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"{name}={value!r} is not a number; pass e.g. {name}=12"
        ) from exc
    if not np.isfinite(number) or number <= 0:
        raise InvalidParameterError(f"{name}={value!r} must be a positive, finite number")
    return number


def _explicit_pixel_size(pixel_size: Any) -> tuple[float, float]:
    if isinstance(pixel_size, Sequence) and not isinstance(pixel_size, str):
        if len(pixel_size) != 2:
            raise InvalidParameterError(
                f"pixel_size={pixel_size!r} has {len(pixel_size)} values; pass one number "
                "(square pixels) or two: (width along x/range, height along y/azimuth)"
            )
        return (
            _check_positive("pixel_size[0]", pixel_size[0]),
            _check_positive("pixel_size[1]", pixel_size[1]),
        )
    size = _check_positive("pixel_size", pixel_size)
    return size, size


def _pixel_sizes(
    ds: xr.Dataset, meta: dict[str, Any], geometry: str, pixel_size: Any
) -> tuple[float, float]:
    """Signed (along x, along y) pixel sizes in metres."""
    if geometry == "radar":
        if pixel_size is not None:
            return _explicit_pixel_size(pixel_size)
        if "range_pixel_spacing" in meta and "azimuth_pixel_spacing" in meta:
            return float(meta["range_pixel_spacing"]), float(meta["azimuth_pixel_spacing"])
        raise MissingMetadataError(
            "the offsets are in radar geometry but carry no pixel spacing; pass "
            "pixel_size=(range_spacing, azimuth_spacing) in metres, or ref= and sec= "
            "(the images from trackoff_xr.io.safe.open_safe)"
        )
    signs = (1.0, -1.0)
    known: tuple[float, float] | None = None
    if "pixel_size_x" in meta and "pixel_size_y" in meta:
        known = float(meta["pixel_size_x"]), float(meta["pixel_size_y"])
    elif geometry == "map":
        known = _grid_pixel_size(ds)
    if known is not None:
        signs = (float(np.sign(known[0]) or 1.0), float(np.sign(known[1]) or -1.0))
    if pixel_size is not None:
        sx, sy = _explicit_pixel_size(pixel_size)
        return signs[0] * sx, signs[1] * sy
    if geometry == "image":
        raise MissingMetadataError(
            "the images have no CRS, so the pixel size on the ground is unknown; pass "
            "pixel_size= in metres (one number, or (width, height))"
        )
    gm = _grid_mapping(ds) or {}
    if _is_geographic(gm):
        raise MissingMetadataError(
            "the images are in a geographic CRS (degrees), so pixels have no single size "
            "in metres; reproject them to a projected CRS first, e.g. "
            "image.rio.reproject('EPSG:3413'), or pass pixel_size= in metres"
        )
    if known is None:
        raise MissingMetadataError(
            "cannot tell the pixel size: the offsets carry no pixel_size_x/pixel_size_y "
            "attributes and have fewer than 2 grid points per axis; pass pixel_size= in "
            "metres, or ref= and sec= (the images)"
        )
    return known


def _days(meta: dict[str, Any], days: Any) -> float:
    if days is not None:
        return _check_positive("days", days)
    if meta.get("date_dt") is not None:
        dt = float(meta["date_dt"])
    else:
        t1 = acquisition_time({"date": meta.get("acquisition_date_img1")})
        t2 = acquisition_time({"date": meta.get("acquisition_date_img2")})
        if t1 is None or t2 is None:
            raise MissingMetadataError(
                "the time between the images is unknown (no date_dt or acquisition dates "
                "on the offsets); pass days= (e.g. days=12), or ref= and sec= images that "
                "carry acquisition times (open_image(path, date='2024-02-03'))"
            )
        dt = pair_dates(t1, t2)["date_dt"]
    if not np.isfinite(dt) or dt <= 0:
        raise InvalidParameterError(
            f"the secondary image is not later than the reference (date_dt={dt} days); "
            "swap ref and sec, or pass days= explicitly"
        )
    return dt


def velocity(
    ds: xr.Dataset,
    *,
    days: float | None = None,
    pixel_size: float | tuple[float, float] | None = None,
    ref: xr.DataArray | None = None,
    sec: xr.DataArray | None = None,
) -> xr.Dataset:
    """Add velocities in ``meter/year`` (and offsets in metres) to an offsets Dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        The result of :func:`trackoff_xr.offsets`: ``dx``, ``dy`` in pixels.
    days : float, optional
        Time between the images, in days. Default: ``ds.attrs["date_dt"]``,
        or the difference of the images' acquisition times.
    pixel_size : float or (float, float), optional
        Pixel size on the ground in metres, one number or (along x/range,
        along y/azimuth); magnitudes, the sign comes from the grid. Default:
        from the attributes, the images or the map grid.
    ref, sec : xarray.DataArray, optional
        The images the offsets were measured on, to read pixel size and
        acquisition times from when ``ds`` lacks them.

    Returns
    -------
    xarray.Dataset
        A copy of ``ds`` (lazy stays lazy) with ``dx_m``, ``dy_m`` (offsets
        along columns and rows in metres: ``dy_m > 0`` is down the rows),
        ``vx``, ``vy`` (map and image geometry; ``v_range``, ``v_azimuth`` in
        radar geometry) and ``v``, in ``meter/year`` with CF standard names;
        where ``ds`` has the per-point 1-sigma offset errors ``dx_error``,
        ``dy_error`` (pixels), also ``vx_error``, ``vy_error`` (or
        ``v_range_error``, ``v_azimuth_error``) and ``v_error`` in
        ``meter/year`` (:func:`~trackoff_xr.postprocess.errors.speed_error`);
        and the attributes ``date_dt``, ``geometry``, the pixel sizes and,
        when known, ``acquisition_date_img1/2`` and ``date_center``.

    Raises
    ------
    MissingMetadataError
        No pixel size or time span could be found: the message names the
        argument to pass.
    InvalidParameterError
        Non-positive ``days``/``pixel_size``, or a secondary image older than
        the reference.

    Examples
    --------
    >>> dx = xr.DataArray(np.array([[2.0, 4.0]], np.float32), dims=("y", "x"))
    >>> ds = xr.Dataset({"dx": dx, "dy": -dx / 2})
    >>> out = velocity(ds, days=73.05, pixel_size=10.0)   # 73.05 days = 0.2 year
    >>> out.vx.values.round(3), out.vy.values.round(3)   # vy = -dy * 10 m / 0.2 yr
    (array([[100., 200.]], dtype=float32), array([[ 50., 100.]], dtype=float32))
    >>> out.vx.attrs["units"], out.vx.attrs["standard_name"]
    ('meter/year', 'land_ice_surface_x_velocity')
    """
    check_offsets(ds, "velocity")
    meta = dict(ds.attrs)
    if (ref is None) != (sec is None):
        raise InvalidParameterError("pass both ref= and sec=, or neither")
    if ref is not None and sec is not None:
        for key, value in pair_metadata(ref, sec).items():
            meta.setdefault(key, value)
    geometry = meta.get("geometry") or _geometry_of(ds)
    size_x, size_y = _pixel_sizes(ds, meta, geometry, pixel_size)
    dt = _days(meta, days)
    years = dt / DAYS_PER_YEAR

    out = ds.copy()
    # a grid mapping only on map grids: radar GCPs do not map the pixel axes (CF 5.6)
    grid = (
        {"grid_mapping": "spatial_ref"} if "grid_mapping_name" in (_grid_mapping(ds) or {}) else {}
    )
    if geometry == "radar":  # neither axis is east or north: honest names
        first, second = "v_range", "v_azimuth"
        scale_x, scale_y = abs(size_x), abs(size_y)
    else:  # map axes: signed pixel sizes turn rows into northings
        first, second = "vx", "vy"
        scale_x, scale_y = size_x, size_y
    derived = {
        "dx_m": ds.dx * abs(size_x),
        "dy_m": ds.dy * abs(size_y),
        first: ds.dx * (scale_x / years),
        second: ds.dy * (scale_y / years),
    }
    derived["v"] = np.hypot(derived[first], derived[second])
    if "dx_error" in ds and "dy_error" in ds:  # 1-sigma, carried as the components are
        from .errors import speed_error

        derived[f"{first}_error"] = ds.dx_error * abs(scale_x / years)
        derived[f"{second}_error"] = ds.dy_error * abs(scale_y / years)
        derived["v_error"] = speed_error(
            derived[first], derived[second], derived[f"{first}_error"], derived[f"{second}_error"]
        )
    for name, values in derived.items():
        values.attrs = attrs_for(name, **grid)  # nothing inherited from dx or dy
        out[name] = values
    attrs: dict[str, Any] = {"geometry": geometry, "date_dt": dt, "days_per_year": DAYS_PER_YEAR}
    if geometry == "radar":
        attrs.update(range_pixel_spacing=abs(size_x), azimuth_pixel_spacing=abs(size_y))
    else:
        attrs.update(pixel_size_x=size_x, pixel_size_y=size_y)
    for key in ("acquisition_date_img1", "acquisition_date_img2", "date_center"):
        if meta.get(key) is not None:
            attrs[key] = meta[key]
    out.attrs.update(attrs)
    return out
