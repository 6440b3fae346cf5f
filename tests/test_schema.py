"""One result schema: rejected points are NaN everywhere, attributes never leak."""

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import trackoff_xr
from trackoff_xr import schema
from trackoff_xr.testing.synthetic import shifted_pair


def _map_pair():
    ref, sec = shifted_pair(shape=(192, 192), shift=(2.0, -3.0), looks=4, seed=3)
    coords = {"y": 5000.0 - 10.0 * np.arange(192), "x": 1000.0 + 10.0 * np.arange(192)}
    ref = ref.assign_coords(coords).rio.write_crs("EPSG:3413")
    sec = sec.assign_coords(coords).rio.write_crs("EPSG:3413")
    return ref, sec


def _offsets(geometry: str) -> xr.Dataset:
    ref, sec = _map_pair()
    ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=16, search_radius=8, method="ncc")
    if geometry == "radar":
        ds.attrs["geometry"] = "radar"
    ds = trackoff_xr.velocity(ds, days=12, pixel_size=10.0)
    # corrupt a few points so the filters have something to reject
    dx = ds.dx.values.copy()
    dx[3, 3] += 9.0
    dx[5, 6] -= 7.0
    ds["dx"] = ds.dx.copy(data=dx)
    return ds


@pytest.mark.parametrize("geometry", ["map", "radar"])
@pytest.mark.parametrize(
    "apply",
    [
        trackoff_xr.filter_offsets,
        lambda ds: trackoff_xr.filter_score(ds, min_score=0.99),
        lambda ds: trackoff_xr.filter_velocity(ds, max_velocity=float(ds.v.median()) * 1.01),
    ],
    ids=["filter_offsets", "filter_score", "filter_velocity"],
)
def test_a_rejected_point_is_nan_in_every_derived_variable(geometry, apply):
    out = apply(_offsets(geometry))
    rejected = ~out.valid.values
    assert rejected.any()
    derived = schema.measured_variables(out)
    components = {"v_range", "v_azimuth"} if geometry == "radar" else {"vx", "vy"}
    expected = {"dx", "dy", "dx_m", "dy_m", "v"} | components
    # ncc reports 1-sigma errors, carried to the velocities (postprocess/errors.py)
    expected |= {"dx_error", "dy_error", "v_error"} | {f"{c}_error" for c in components}
    assert set(derived) == expected
    for name in derived:
        assert np.isnan(out[name].values[rejected]).all(), name
        assert np.isfinite(out[name].values[~rejected]).all(), name


def test_attributes_do_not_leak_between_variables():
    ds = trackoff_xr.filter_offsets(_offsets("map"))
    assert "units" not in ds.valid.attrs
    assert ds.valid.attrs["flag_meanings"] == "rejected valid"
    for name in ("vx", "vy", "v", "dx_m", "dy_m"):
        assert "description" not in ds[name].attrs, name
        assert ds[name].attrs["long_name"] == schema.VARIABLES[name].attrs["long_name"]
    assert ds.vx.attrs["units"] == "meter/year"
    assert ds.dx_m.attrs["units"] == "meter"
    assert ds.dx.attrs["units"] == "1"  # pixels (CF: "pixel" is not a UDUNITS unit)


def test_schema_attributes_are_copies():
    attrs = schema.attrs_for("dx")
    attrs["units"] = "changed"
    assert schema.attrs_for("dx")["units"] == "1"


def test_fill_gaps_fills_every_measured_variable():
    ds = trackoff_xr.fill_gaps(trackoff_xr.filter_offsets(_offsets("map")))
    filled = ds.interp_mask.values == 1
    assert filled.any()
    for name in schema.measured_variables(ds):
        assert np.isfinite(ds[name].values[filled]).all(), name
