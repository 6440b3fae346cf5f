"""The result schema: one place for the variables of an offsets/velocity Dataset.

What every module that makes, filters, plots or writes a result agrees on:

* :data:`VARIABLES`: each variable's attributes (``long_name``, ``units``,
  CF ``standard_name``, flags) and whether it is *measured*: a quantity
  derived from the offset of a point, which is NaN wherever that point is
  rejected (pixels, metres, velocities, errors).
* Extra outputs of a matcher (e.g. the classifier's ``prob_mean``) are
  declared by the matcher itself (its ``output_attrs``), not here.
* :func:`attrs_for` hands out a fresh copy of a variable's attributes, so
  attributes never leak from one variable to another through arithmetic
  (``ds.dx * 10`` keeps ``dx``'s description in xarray).
* :func:`valid_mask` and :func:`reject` are the one definition of ``valid``
  and of what rejecting a point does, used by every filter.

>>> import numpy as np, xarray as xr
>>> one = np.array([1.0, 2.0], np.float32)
>>> ds = xr.Dataset({"dx": ("x", one), "dy": ("x", 0 * one), "dx_m": ("x", 10 * one)})
>>> out = reject(ds, xr.DataArray([True, False], dims="x"))
>>> out.dx_m.values.tolist(), out.valid.values.tolist()
([10.0, nan], [True, False])
>>> out.valid.attrs["long_name"]
'point has a finite offset and passed every filter applied'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import xarray as xr

from .exceptions import InvalidParameterError
from .georef import (
    crs_of,
    crs_wkt,
    is_radar_reference,  # re-exported: its old home
    spatial_ref_variable,  # re-exported: its old home
)

__all__ = [
    "MEASURED",
    "VARIABLES",
    "Variable",
    "attrs_for",
    "cf_grid",
    "check_offsets",
    "is_radar_reference",
    "measured_variables",
    "reject",
    "spatial_ref_variable",
    "valid_mask",
    "velocity_variables",
]


@dataclass(frozen=True)
class Variable:
    """One variable of a result Dataset.

    Parameters
    ----------
    name : str
        Variable name.
    attrs : mapping
        Its attributes (a fresh copy is given out by :func:`attrs_for`).
    measured : bool
        Derived from the point's offset: NaN wherever the point is rejected.
    """

    name: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    measured: bool = False


def _variables(*items: Variable) -> dict[str, Variable]:
    return {item.name: item for item in items}


# CF flag values: typed like the flag variable (int8 on disk; bool in memory is int8 too)
_FLAGS = np.array([0, 1], dtype=np.int8)

#: Every variable trackoff_xr puts in a result, by name.
VARIABLES: dict[str, Variable] = _variables(
    Variable(
        "dx",
        {
            "long_name": "offset along columns (x), reference to secondary",
            "units": "1",
            "comment": "in pixels of the input image",
            "description": (
                "a feature at column x of the reference is at column x + dx of the secondary"
            ),
        },
        measured=True,
    ),
    Variable(
        "dy",
        {
            "long_name": "offset along rows (y), reference to secondary",
            "units": "1",
            "comment": "in pixels of the input image",
            "description": "a feature at row y of the reference is at row y + dy of the secondary",
        },
        measured=True,
    ),
    Variable("score", {"long_name": "match quality", "units": "1", "comment": "between 0 and 1"}),
    Variable(
        "valid",
        {
            "long_name": "point has a finite offset and passed every filter applied",
            "flag_values": _FLAGS,
            "flag_meanings": "rejected valid",
        },
    ),
    Variable(
        "peak_at_edge",
        {
            "long_name": "correlation maximum on the border of the search window",
            "flag_values": _FLAGS,
            "flag_meanings": "inside at_edge",
            "description": (
                "the best match lay on the edge of the search window, so the true offset may "
                "be beyond it: not a measurement (dx, dy are NaN); raise search_radius"
            ),
        },
    ),
    Variable(
        "search_dy",
        {
            "long_name": "row offset at the centre of the search window",
            "units": "1",
            "description": (
                "whole pixels; the search for dy covered search_dy +/- search_radius "
                "(from a coarse pass or a prior, see the search_centre attribute)"
            ),
        },
    ),
    Variable(
        "search_dx",
        {
            "long_name": "column offset at the centre of the search window",
            "units": "1",
            "description": (
                "whole pixels; the search for dx covered search_dx +/- search_radius "
                "(from a coarse pass or a prior, see the search_centre attribute)"
            ),
        },
    ),
    Variable(
        "interp_mask",
        {
            "long_name": "point was interpolated, not measured",
            "flag_values": _FLAGS,
            "flag_meanings": "measured interpolated",
        },
    ),
    Variable(
        "dx_m",
        {"long_name": "offset along columns (x) in metres", "units": "meter"},
        measured=True,
    ),
    Variable(
        "dy_m",
        {"long_name": "offset along rows (y) in metres, positive down the rows", "units": "meter"},
        measured=True,
    ),
    Variable(
        "vx",
        {
            "standard_name": "land_ice_surface_x_velocity",
            "long_name": "velocity component in x direction",
            "units": "meter/year",
        },
        measured=True,
    ),
    Variable(
        "vy",
        {
            "standard_name": "land_ice_surface_y_velocity",
            "long_name": "velocity component in y direction",
            "units": "meter/year",
        },
        measured=True,
    ),
    Variable(
        "v_range",
        {"long_name": "velocity along ground range (toward far range)", "units": "meter/year"},
        measured=True,
    ),
    Variable(
        "v_azimuth",
        {"long_name": "velocity along azimuth (flight direction)", "units": "meter/year"},
        measured=True,
    ),
    Variable(
        "v",
        {
            # no CF standard name exists for the speed (ITS_LIVE's land_ice_surface_velocity
            # is not in the table); the ITS_LIVE profile writes it (io/its_live.py)
            "long_name": "land ice surface speed (velocity magnitude)",
            "units": "meter/year",
        },
        measured=True,
    ),
    # per-point 1-sigma uncertainties (trackoff_xr.kernels.uncertainty, postprocess.errors)
    Variable(
        "dx_error",
        {
            "long_name": "1-sigma uncertainty of dx",
            "units": "1",
            "comment": "in pixels of the input image",
            "description": (
                "calibrated from the correlation peak (height, curvature) and the template "
                "size: 68 % of errors lie within it on generated pairs with known truth"
            ),
        },
        measured=True,
    ),
    Variable(
        "dy_error",
        {
            "long_name": "1-sigma uncertainty of dy",
            "units": "1",
            "comment": "in pixels of the input image",
            "description": (
                "calibrated from the correlation peak (height, curvature) and the template "
                "size: 68 % of errors lie within it on generated pairs with known truth"
            ),
        },
        measured=True,
    ),
    Variable(
        "vx_error",
        {
            "standard_name": "land_ice_surface_x_velocity standard_error",
            "long_name": "1-sigma uncertainty of vx",
            "units": "meter/year",
        },
        measured=True,
    ),
    Variable(
        "vy_error",
        {
            "standard_name": "land_ice_surface_y_velocity standard_error",
            "long_name": "1-sigma uncertainty of vy",
            "units": "meter/year",
        },
        measured=True,
    ),
    Variable(
        "v_range_error",
        {"long_name": "1-sigma uncertainty of v_range", "units": "meter/year"},
        measured=True,
    ),
    Variable(
        "v_azimuth_error",
        {"long_name": "1-sigma uncertainty of v_azimuth", "units": "meter/year"},
        measured=True,
    ),
    Variable(
        "v_error",
        {
            "long_name": "1-sigma uncertainty of the speed v",
            "units": "meter/year",
            "description": (
                "propagated through v = hypot of the components: sqrt((vx vx_error)^2 + "
                "(vy vy_error)^2) / v; where v = 0, the spread of hypot of the two errors"
            ),
        },
        measured=True,
    ),
)

#: Names of the variables that are NaN wherever a point is rejected.
MEASURED: tuple[str, ...] = tuple(name for name, var in VARIABLES.items() if var.measured)


def attrs_for(name: str, **extra: Any) -> dict[str, Any]:
    """Return a fresh copy of the schema attributes of ``name``, updated with ``extra``.

    Unknown names give just ``extra``.

    Examples
    --------
    >>> attrs_for("vx", grid_mapping="spatial_ref")["units"]
    'meter/year'
    >>> attrs_for("vx") is attrs_for("vx")
    False
    """
    known = VARIABLES.get(name)
    attrs = {
        k: v.copy() if isinstance(v, np.ndarray) else v
        for k, v in (known.attrs if known is not None else {}).items()
    }
    attrs.update(extra)
    return attrs


def measured_variables(ds: xr.Dataset) -> list[str]:
    """Names of the variables of ``ds`` that a rejected point blanks (schema order)."""
    return [name for name in MEASURED if name in ds]


def velocity_variables(ds: xr.Dataset) -> tuple[str, str] | None:
    """Return the two velocity components of ``ds``, or ``None`` when it has none.

    ``("vx", "vy")`` on map and image grids, ``("v_range", "v_azimuth")`` in
    radar geometry.
    """
    for pair in (("vx", "vy"), ("v_range", "v_azimuth")):
        if pair[0] in ds and pair[1] in ds:
            return pair
    return None


def valid_mask(ds: xr.Dataset) -> xr.DataArray:
    """Points with a finite offset that every filter so far kept (lazy when ``ds`` is)."""
    finite = cast(xr.DataArray, np.isfinite(ds["dx"]) & np.isfinite(ds["dy"]))
    if "valid" in ds:
        finite = ds["valid"].astype(bool) & finite
    finite.attrs = {}
    return finite


def reject(ds: xr.Dataset, keep: xr.DataArray) -> xr.Dataset:
    """Return a copy of ``ds`` where points outside ``keep`` are rejected.

    ``valid`` becomes ``valid & keep`` (NaN in ``keep`` counts as rejected)
    and every measured variable (:data:`MEASURED`) is NaN where a point is
    not valid. Other variables (``score``, flags) are kept, so the reason
    for a rejection stays visible. Lazy when ``ds`` is.
    """
    out = ds.copy()
    valid = valid_mask(ds) & keep.fillna(False).astype(bool)
    valid.attrs = attrs_for("valid")
    out["valid"] = valid
    for name in measured_variables(ds):
        out[name] = ds[name].where(valid)
    return out


# -- CF metadata of the grid: coordinates and grid mapping ---------------------------------


def _axes_of_crs(attrs: Mapping[str, Any]) -> dict[str, dict[str, str]] | None:
    """CF attributes of the X and Y axes of the CRS in ``spatial_ref`` ``attrs`` (None if none)."""
    try:
        crs = crs_of(attrs)
        axes = [] if crs is None else crs.cs_to_cf()
    except Exception:  # noqa: BLE001 - pyproj raises several kinds on unusual CRSs
        return None
    found = {}
    for axis in axes:
        if axis.get("axis") in ("X", "Y"):
            cf = {
                k: str(v)
                for k, v in axis.items()
                if k in ("standard_name", "long_name", "units", "axis")
            }
            if cf.get("units") == "metre":
                cf["units"] = "m"
            found[axis["axis"]] = cf
    return found if set(found) == {"X", "Y"} else None


def cf_grid(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` with CF-1.8 coordinate attributes and grid mapping (a shallow copy).

    * ``spatial_ref`` becomes :func:`spatial_ref_variable`; every variable on
      ``(y, x)`` gets ``grid_mapping="spatial_ref"`` on a map grid, and none
      in radar geometry.
    * ``x``/``y`` get ``standard_name``, ``long_name``, ``units`` and
      ``axis`` from the CRS on a map grid; without one (image and radar
      geometry) they are pixel positions: ``long_name`` says so and
      ``units="1"``, with no ``axis`` (which would claim longitude/latitude).
    * Coordinates are written without ``_FillValue`` (CF 2.5.1).

    Examples
    --------
    >>> ds = xr.Dataset({"dx": (("y", "x"), np.zeros((1, 2), np.float32))},
    ...                 coords={"y": [15.5], "x": [15.5, 47.5]})
    >>> out = cf_grid(ds)
    >>> out.x.attrs["units"], out.x.encoding["_FillValue"]
    ('1', None)
    """
    out = ds.copy()
    axes = None
    if "spatial_ref" in out.coords or "spatial_ref" in out.data_vars:
        attrs = dict(out["spatial_ref"].attrs)
        out = out.assign_coords(spatial_ref=spatial_ref_variable(attrs))
        mapping = "grid_mapping_name" in out["spatial_ref"].attrs
        if mapping and crs_wkt(attrs):
            axes = _axes_of_crs(attrs)
        for name in out.data_vars:
            var = out[name]
            if mapping and {"y", "x"} <= set(var.dims):
                var.attrs["grid_mapping"] = "spatial_ref"
            elif var.attrs.get("grid_mapping") == "spatial_ref":
                del var.attrs["grid_mapping"]
    for dim, axis, what in (("x", "X", "column"), ("y", "Y", "row")):
        if dim not in out.coords:
            continue
        coord = out[dim]
        if axes is not None:
            coord.attrs.update(axes[axis])
        else:
            for key in ("standard_name", "axis"):
                coord.attrs.pop(key, None)
            coord.attrs.setdefault("units", "1")
            coord.attrs["long_name"] = (
                f"{what} position of the template centre in the input image's coordinates "
                "(its pixel index where it has none)"
            )
    for name in out.coords:
        out[name].encoding["_FillValue"] = None
    return out


def check_offsets(ds: Any, func: str) -> xr.Dataset:
    """Refuse anything but an offsets Dataset (``dx`` and ``dy``): one message, one class.

    Velocity, the filters and the figures all check their input here, so the
    same wrong input raises the same :class:`~trackoff_xr.InvalidParameterError`.

    Examples
    --------
    >>> check_offsets(xr.DataArray([1.0]), "velocity")
    Traceback (most recent call last):
    ...
    trackoff_xr.exceptions.InvalidParameterError: velocity() needs the Dataset returned by \
trackoff_xr.offsets() (with dx and dy), got DataArray; pass the result of offsets() or of a filter
    """
    if not isinstance(ds, xr.Dataset) or "dx" not in ds or "dy" not in ds:
        got = type(ds).__name__
        if isinstance(ds, xr.Dataset):
            got = f"a Dataset with variables {sorted(map(str, ds.data_vars))}"
        raise InvalidParameterError(
            f"{func}() needs the Dataset returned by trackoff_xr.offsets() (with dx and dy), "
            f"got {got}; pass the result of offsets() or of a filter"
        )
    return ds
