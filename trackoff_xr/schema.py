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
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "MEASURED",
    "VARIABLES",
    "Variable",
    "attrs_for",
    "measured_variables",
    "reject",
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


#: Every variable trackoff_xr puts in a result, by name.
VARIABLES: dict[str, Variable] = _variables(
    Variable(
        "dx",
        {
            "long_name": "offset along columns (x), reference to secondary",
            "units": "pixel",
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
            "units": "pixel",
            "description": "a feature at row y of the reference is at row y + dy of the secondary",
        },
        measured=True,
    ),
    Variable("score", {"long_name": "match quality", "units": "1", "valid_range": "0 1"}),
    Variable(
        "valid",
        {
            "long_name": "point has a finite offset and passed every filter applied",
            "flag_values": "0 1",
            "flag_meanings": "rejected valid",
        },
    ),
    Variable(
        "peak_at_edge",
        {
            "long_name": "correlation maximum on the border of the search window",
            "flag_values": "0 1",
            "flag_meanings": "inside at_edge",
            "description": (
                "the best match lay on the edge of the search window, so the true offset may "
                "be beyond it: not a measurement (dx, dy are NaN); raise search_radius"
            ),
        },
    ),
    Variable(
        "interp_mask",
        {
            "long_name": "point was interpolated, not measured",
            "flag_values": "0 1",
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
            "standard_name": "land_ice_surface_velocity",
            "long_name": "velocity magnitude",
            "units": "meter/year",
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
    attrs = dict(known.attrs) if known is not None else {}
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
    finite = np.isfinite(ds["dx"]) & np.isfinite(ds["dy"])
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
