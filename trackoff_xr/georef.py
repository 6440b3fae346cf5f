"""Georeferencing and dates: where the CRS and acquisition times of images and results live.

One home for the metadata that places an image in space and time, read and
written the same way by every module:

* :func:`crs_wkt` and :func:`crs_of`: the CRS of an image, a result or the
  attributes of a ``spatial_ref`` variable, as WKT or as a
  :class:`pyproj.CRS`;
* :func:`iso_date`, :func:`acquisition_time` and :func:`pair_dates`: dates
  as ISO 8601 strings (UTC, no time zone), the acquisition time an image
  records, and the date attributes of a pair (ITS_LIVE's
  ``acquisition_date_img1``/``2``, ``date_center``: a cube's ``mid_date``,
  and ``date_dt`` in days);
* :func:`spatial_ref_variable` and :func:`output_spatial_ref`: the CF-1.8
  ``spatial_ref`` variable of a result (a grid mapping, or in radar geometry
  only the ground control points, see :func:`is_radar_reference`).

It sits below the modules that use it (tracking, search, postprocess, io):
it imports nothing of the package but :mod:`trackoff_xr.exceptions`.

>>> import numpy as np, xarray as xr, rioxarray
>>> img = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), coords={"y": [1.5, 0.5], "x": [0.5, 1.5]})
>>> img = img.rio.write_crs("EPSG:3413").assign_attrs(acquisition_start="2024-02-03")
>>> crs_of(img).to_epsg(), acquisition_time(img)
(3413, np.datetime64('2024-02-03T00:00:00.000000'))
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import xarray as xr

from .exceptions import InvalidParameterError

if TYPE_CHECKING:
    from pyproj import CRS

__all__ = [
    "acquisition_time",
    "crs_name",
    "crs_of",
    "crs_wkt",
    "is_radar_reference",
    "iso_date",
    "output_spatial_ref",
    "pair_dates",
    "spatial_ref_variable",
]

# attributes that may hold an image's acquisition time, most specific first
_TIME_ATTRS = (
    "acquisition_start",
    "acquisition_date",
    "first_line_time",
    "start_time",
    "date",
    "datetime",
    "TIFFTAG_DATETIME_ACQUISITION",
)


# -- CRS -----------------------------------------------------------------------------------


def crs_wkt(obj: xr.DataArray | xr.Dataset | Mapping[Any, Any]) -> str | None:
    """Return the CRS of ``obj`` as WKT, read from its ``spatial_ref`` coordinate.

    Parameters
    ----------
    obj : xarray.DataArray, xarray.Dataset or mapping
        An image or result (its ``spatial_ref`` coordinate is read, as
        rioxarray writes it), or the attributes of a ``spatial_ref`` variable.

    Returns
    -------
    str or None
        The ``crs_wkt`` attribute (CF), else ``spatial_ref`` (GDAL); ``None``
        without either.

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> img = xr.DataArray(np.zeros((2, 2)), dims=("y", "x")).rio.write_crs("EPSG:3413")
    >>> crs_wkt(img)[:35]
    'PROJCS["WGS 84 / NSIDC Sea Ice Pola'
    >>> crs_wkt({"spatial_ref": 'GEOGCS["WGS 84"]'}), crs_wkt(img.drop_vars("spatial_ref"))
    ('GEOGCS["WGS 84"]', None)
    """
    if isinstance(obj, (xr.DataArray, xr.Dataset)):
        if "spatial_ref" not in obj.coords:
            return None
        attrs: Mapping[Any, Any] = obj.coords["spatial_ref"].attrs
    else:
        attrs = obj
    return attrs.get("crs_wkt") or attrs.get("spatial_ref")


def crs_of(obj: xr.DataArray | xr.Dataset | Mapping[Any, Any]) -> CRS | None:
    """Return the CRS of ``obj`` as a :class:`pyproj.CRS`, or ``None`` without one.

    The WKT of :func:`crs_wkt` comes first. Without it, a DataArray or
    Dataset is asked as rioxarray asks it (``obj.rio.crs``): a grid mapping
    named otherwise (``grid_mapping="mapping"``, as ITS_LIVE cubes), CF
    grid-mapping parameters, or a ``crs`` attribute.

    Parameters
    ----------
    obj : xarray.DataArray, xarray.Dataset or mapping
        An image, a result or a prior, or the attributes of a ``spatial_ref``
        variable (then only their WKT is read).

    Returns
    -------
    pyproj.CRS or None

    Raises
    ------
    pyproj.exceptions.CRSError
        The ``spatial_ref`` coordinate holds WKT that is not a CRS.

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> img = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"))
    >>> crs_of(img.rio.write_crs("EPSG:32624")).name, crs_of(img)
    ('WGS 84 / UTM zone 24N', None)
    >>> crs_of(img.assign_attrs(crs="EPSG:3031")).to_epsg()   # rioxarray's fallbacks
    3031
    """
    from pyproj import CRS

    wkt = crs_wkt(obj)
    if wkt:
        return CRS.from_wkt(str(wkt))
    if not isinstance(obj, (xr.DataArray, xr.Dataset)):
        return None
    try:
        import rioxarray  # noqa: F401  (registers .rio)

        found = obj.rio.crs
    except Exception:  # noqa: BLE001 - rioxarray raises several kinds (e.g. CRS differing by variable)
        return None
    return None if found is None else CRS.from_user_input(found)


def crs_name(crs: Any) -> str:
    """Return a short name of ``crs`` for messages: ``"EPSG:<code>"`` where it has one.

    Parameters
    ----------
    crs : pyproj.CRS or anything :meth:`pyproj.CRS.from_user_input` reads

    Examples
    --------
    >>> from pyproj import CRS
    >>> crs_name(CRS.from_epsg(32624)), crs_name("+proj=stere +lat_0=90 +lat_ts=70 +lon_0=-45")
    ('EPSG:32624', 'EPSG:3413')
    >>> print(crs_name("+proj=stere +lat_0=80 +lat_ts=70 +lon_0=-45 +datum=WGS84"))   # no code
    'unknown'
    """
    from pyproj import CRS

    found = CRS.from_user_input(crs)
    epsg = found.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else repr(found.name)


def is_radar_reference(attrs: Mapping[Any, Any]) -> bool:
    """Whether ``spatial_ref`` attributes hold radar ground control points, not a grid mapping.

    Examples
    --------
    >>> is_radar_reference({"gcps": {"type": "FeatureCollection"}}), is_radar_reference({})
    (True, False)
    """
    return "gcps" in attrs


# -- dates ---------------------------------------------------------------------------------


def iso_date(date: Any, unit: str | None = None) -> str:
    """Return ``date`` as an ISO 8601 string, in UTC without a time zone.

    Parameters
    ----------
    date : str, datetime.date, datetime.datetime or numpy.datetime64
        An ISO 8601 string is kept at its own precision; an aware datetime
        is converted to UTC first.
    unit : str, optional
        A numpy datetime unit (``"D"``, ``"s"``, ``"us"``, ...) to write the
        date in; by default the date's own.

    Returns
    -------
    str

    Raises
    ------
    InvalidParameterError
        ``date`` is not a date.

    Examples
    --------
    >>> iso_date("2024-02-03"), iso_date("2024-02-03T05:26:23")
    ('2024-02-03', '2024-02-03T05:26:23')
    >>> iso_date("2024-02-03", unit="us")
    '2024-02-03T00:00:00.000000'
    >>> iso_date("yesterday")
    Traceback (most recent call last):
    ...
    trackoff_xr.exceptions.InvalidParameterError: date='yesterday' is not a date; ...
    """
    if getattr(date, "tzinfo", None) is not None:
        date = date.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    try:
        value = np.datetime64(date) if unit is None else np.datetime64(date, cast(Any, unit))
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"date={date!r} is not a date; pass an ISO 8601 string such as "
            "'2024-02-03' or '2024-02-03T05:26:23', a datetime or a numpy.datetime64"
        ) from exc
    if np.isnat(value):
        raise InvalidParameterError(f"date={date!r} is not a date; pass e.g. '2024-02-03'")
    return str(value)


def acquisition_time(
    image: xr.DataArray | xr.Dataset | Mapping[Any, Any],
) -> np.datetime64 | None:
    """Return the acquisition time recorded on ``image`` (UTC, microseconds), or ``None``.

    Looks at the attributes ``acquisition_start``, ``acquisition_date``,
    ``first_line_time``, ``start_time``, ``date``, ``datetime`` and
    ``TIFFTAG_DATETIME_ACQUISITION``, in this order; empty ones are skipped.
    Each may be an ISO 8601 string (a trailing ``Z`` and a space for ``T``
    are accepted), a TIFF date (``"2024:02:03 05:26:23"``), a datetime (an
    aware one is converted to UTC) or a numpy.datetime64.

    Parameters
    ----------
    image : xarray.DataArray, xarray.Dataset or mapping
        An image or result (its ``attrs`` are read), or the attributes themselves.

    Returns
    -------
    numpy.datetime64 or None

    Raises
    ------
    InvalidParameterError
        The first attribute found is not a date.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> img = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"),
    ...                    attrs={"acquisition_start": "2024-02-03T05:26:23"})
    >>> acquisition_time(img)
    np.datetime64('2024-02-03T05:26:23.000000')
    >>> acquisition_time({"TIFFTAG_DATETIME_ACQUISITION": "2024:02:03 05:26:23"})
    np.datetime64('2024-02-03T05:26:23.000000')
    """
    attrs: Mapping[Any, Any] = (
        image.attrs if isinstance(image, (xr.DataArray, xr.Dataset)) else image
    )
    for key in _TIME_ATTRS:
        value: Any = attrs.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, str):
            value = _normalise_date_string(value)
        elif getattr(value, "tzinfo", None) is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        try:
            out = np.datetime64(value, "us")
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(
                f"attribute {key}={attrs.get(key)!r} is not a date; set it to an ISO 8601 "
                "string such as '2024-02-03T05:26:23' or pass days= to velocity()"
            ) from exc
        if not np.isnat(out):
            return out
    return None


def _normalise_date_string(value: str) -> str:
    value = value.strip()
    if value.endswith("Z"):
        value = value[:-1]
    if re.match(r"^\d{4}:\d{2}:\d{2}", value):  # TIFF tags: "2024:02:03 05:26:23"
        value = value.replace(":", "-", 2)
    return value.replace(" ", "T", 1)


def pair_dates(t1: Any, t2: Any) -> dict[str, Any]:
    """Return the date attributes of a pair acquired at ``t1`` and ``t2``, named as in ITS_LIVE.

    Parameters
    ----------
    t1, t2 : numpy.datetime64 or str
        Acquisition times of the reference and the secondary image (UTC), as
        :func:`acquisition_time` returns them.

    Returns
    -------
    dict
        ``acquisition_date_img1``, ``acquisition_date_img2`` and
        ``date_center`` (the midpoint: a cube's ``mid_date``), ISO 8601 in
        microseconds; ``date_dt``, the days from ``t1`` to ``t2`` (float).

    Examples
    --------
    >>> dates = pair_dates(np.datetime64("2024-02-03"), np.datetime64("2024-02-15T12:00"))
    >>> dates["date_center"], dates["date_dt"]
    ('2024-02-09T06:00:00.000000', 12.5)
    """
    t1, t2 = np.datetime64(t1, "us"), np.datetime64(t2, "us")
    return {
        "acquisition_date_img1": iso_date(t1),
        "acquisition_date_img2": iso_date(t2),
        "date_center": iso_date(t1 + (t2 - t1) / 2),
        "date_dt": float((t2 - t1) / np.timedelta64(1, "D")),
    }


# -- the spatial_ref variable of a result --------------------------------------------------


def spatial_ref_variable(attrs: Mapping[str, Any]) -> xr.Variable:
    """Return the CF-1.8 ``spatial_ref`` variable (an ``int32`` scalar) for these attributes.

    On a map grid it is the grid mapping of ``x``/``y``: polar stereographic
    mappings get the ``latitude_of_projection_origin`` CF requires (``+90``
    or ``-90``, the sign of ``standard_parallel``), which pyproj's
    ``CRS.to_cf()`` leaves out. In radar geometry (ground control points in
    ``gcps``) the pixel axes are not the CRS axes, so it is *not* a grid
    mapping: ``grid_mapping_name`` is dropped and the variables do not point
    at it; it only carries the GCPs and their CRS.

    Examples
    --------
    >>> from pyproj import CRS
    >>> var = spatial_ref_variable(CRS.from_epsg(3413).to_cf())
    >>> var.dtype, var.attrs["latitude_of_projection_origin"]
    (dtype('int32'), 90.0)
    >>> "grid_mapping_name" in spatial_ref_variable({"gcps": {}, "grid_mapping_name": "x"}).attrs
    False
    """
    out = dict(attrs)
    if is_radar_reference(out):
        out.pop("grid_mapping_name", None)
        out.setdefault("long_name", "ground control points of the radar image")
    else:
        if (
            out.get("grid_mapping_name") == "polar_stereographic"
            and "latitude_of_projection_origin" not in out
        ):
            lat = out.get("standard_parallel", out.get("latitude_of_origin", 90.0))
            lat = float(np.ravel(lat)[0])
            out["latitude_of_projection_origin"] = -90.0 if lat < 0 else 90.0
        if "grid_mapping_name" in out:
            out.setdefault("long_name", "coordinate reference system")
    return xr.Variable((), np.int32(0), out)


def output_spatial_ref(image: xr.DataArray) -> xr.DataArray | None:
    """Return the ``spatial_ref`` coordinate of a result measured on ``image``, or ``None``.

    The image's ``spatial_ref`` attributes less ``GeoTransform`` (which
    describes the image's pixels, not the result's grid), as
    :func:`spatial_ref_variable` makes them; ``None`` if the image has none.

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> coords = {"y": [1.5, 0.5], "x": [0.5, 1.5]}
    >>> img = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), coords=coords)
    >>> img = img.rio.write_crs("EPSG:3413").rio.write_transform()
    >>> ref = output_spatial_ref(img)
    >>> ref.dtype, "GeoTransform" in ref.attrs, output_spatial_ref(img.drop_vars("spatial_ref"))
    (dtype('int32'), False, None)
    """
    if "spatial_ref" not in image.coords:
        return None
    attrs = {k: v for k, v in image.coords["spatial_ref"].attrs.items() if k != "GeoTransform"}
    return xr.DataArray(spatial_ref_variable(attrs))
