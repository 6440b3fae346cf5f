"""CF-1.8: results pass cfchecks and compliance-checker; to_netcdf keeps the output rule."""

import os
import sys

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr

import trackoff_xr
from trackoff_xr.exceptions import (
    MissingDependencyError,
    OutputExistsError,
    OutputLocationError,
    ProtectedOutputError,
)
from trackoff_xr.io import check_output
from trackoff_xr.io.safety import NETCDF_ATTR
from trackoff_xr.testing import shifted_pair

netCDF4 = pytest.importorskip("netCDF4")

SHAPE = (256, 256)
SHIFT = (-2.3, 3.4)
DATES = ("2024-02-03T05:26:23", "2024-02-15T05:26:23")
METHODS = {
    "ncc": dict(method="ncc", patch_size=32, spacing=32, search_radius=8),
    "cnn": dict(method="cnn", patch_size=64, spacing=32, search_radius=8),
}


def _map_pair():
    ref, sec = shifted_pair(SHAPE, shift=SHIFT, seed=1)
    x = -200_000.0 + 100.0 * (np.arange(SHAPE[1]) + 0.5)
    y = -2_100_000.0 - 100.0 * (np.arange(SHAPE[0]) + 0.5)
    return [
        img.assign_coords(x=x, y=y).rio.write_crs("EPSG:3413").assign_attrs(acquisition_start=d)
        for img, d in zip((ref, sec), DATES, strict=True)
    ]


def _radar_pair(gcps=False):
    """Radar geometry as open_safe gives it: no map CRS, range/azimuth spacings, dates, GCPs."""
    ref, sec = shifted_pair(SHAPE, shift=SHIFT, seed=2)
    out = []
    for img, date in zip((ref, sec), DATES, strict=True):
        img = img.assign_attrs(
            geometry="radar",
            range_pixel_spacing=10.0,
            azimuth_pixel_spacing=14.0,
            first_line_time=date,
        )
        if gcps:
            from rasterio.control import GroundControlPoint

            points = [
                GroundControlPoint(row=r, col=c, x=-30.0 + 0.01 * c, y=70.0 + 0.005 * r, z=0.0)
                for r in (0, SHAPE[0] // 2, SHAPE[0])
                for c in (0, SHAPE[1] // 2, SHAPE[1])
            ]
            img = img.rio.write_gcps(points, "EPSG:4326")
        out.append(img)
    return out


PAIRS = {"map": _map_pair, "radar": _radar_pair, "radar_gcps": lambda: _radar_pair(gcps=True)}


@pytest.fixture(scope="module", params=[(g, m) for m in METHODS for g in PAIRS], ids=str)
def case(request, tmp_path_factory):
    geometry, method = request.param
    ref, sec = PAIRS[geometry]()
    result = trackoff_xr.velocity(ref.trackoff.offsets(sec, **METHODS[method]), days=12)
    folder = tmp_path_factory.mktemp(f"{geometry}_{method}")
    store = trackoff_xr.to_zarr(result, folder / "pair.zarr")
    files = {
        "memory": trackoff_xr.to_netcdf(result, folder / "memory.nc"),
        "zarr": trackoff_xr.to_netcdf(trackoff_xr.open_zarr(store), folder / "zarr.nc"),
    }
    return geometry, method, result, store, files


@pytest.mark.parametrize("source", ["memory", "zarr"])
def test_cfchecks_finds_no_error(case, source):
    pytest.importorskip("cfchecker")
    pytest.importorskip("cf_units")
    from trackoff_xr.testing.cf_checks import cfchecks

    report = cfchecks(case[4][source])
    errors = [m for m in report.messages if "ERROR" in m and "ERRORS detected" not in m]
    assert report.errors == 0, "\n".join(errors) or report.output[-3000:]


@pytest.mark.parametrize("source", ["memory", "zarr"])
def test_compliance_checker_cf_1_8_passes_every_check(case, source):
    pytest.importorskip("compliance_checker")
    from trackoff_xr.testing.cf_checks import compliance_check

    report = compliance_check(case[4][source], "cf:1.8")
    assert report.high == report.medium == report.low == 0, "\n".join(report.failures)
    assert report.scored == report.possible > 100


def test_the_checkers_catch_what_was_fixed(tmp_path):
    """The two checks fail on the faults the fixes remove (so they are not vacuous)."""
    pytest.importorskip("cfchecker")
    pytest.importorskip("compliance_checker")
    from trackoff_xr.testing.cf_checks import cfchecks, compliance_check

    ds = xr.Dataset(
        {
            "dx": (("y", "x"), np.ones((2, 3), np.float32), {"long_name": "dx", "units": "pixel"}),
            "valid": (("y", "x"), np.ones((2, 3), np.uint8), {"long_name": "valid",
                                                              "flag_values": "0 1",
                                                              "flag_meanings": "no yes"}),
        },
        coords={"y": [1.0, 0.0], "x": [0.0, 1.0, 2.0]},
        attrs={"Conventions": "CF-1.8"},
    )  # fmt: skip
    path = tmp_path / "bad.nc"
    ds.to_netcdf(path)
    assert cfchecks(path).errors >= 2  # units pixel, flag_values a string
    failures = "\n".join(compliance_check(path).failures)
    for text in ("uint8", "_FillValue", '"pixel"', "flag_values"):
        assert text in failures, text


def test_grid_metadata_in_map_and_radar_geometry(case):
    geometry, _, result, _, files = case
    with netCDF4.Dataset(files["zarr"]) as nc:
        for name in ("x", "y"):
            assert "_FillValue" not in nc[name].ncattrs()
        assert nc["valid"].dtype == np.int8 and nc["peak_at_edge"].dtype == np.int8
        assert nc["valid"].flag_values.dtype == np.int8
        assert isinstance(nc["score"].getncattr("comment"), str)
        assert "valid_range" not in nc["score"].ncattrs()
        assert nc["dx"].units == "1" and "standard_name" not in nc["v"].ncattrs()
        assert nc.getncattr(NETCDF_ATTR).startswith("trackoff_xr")
        assert nc.Conventions == "CF-1.8, ACDD-1.3" and "trackoff_xr" in nc.history
        assert nc["v"].coverage_content_type == "physicalMeasurement"
        assert nc["score"].coverage_content_type == "qualityInformation"
        if geometry == "map":
            assert nc["spatial_ref"].dtype == np.int32
            assert nc["spatial_ref"].latitude_of_projection_origin == 90.0
            assert nc["vx"].grid_mapping == "spatial_ref"
            assert nc["x"].standard_name == "projection_x_coordinate" and nc["x"].units == "m"
            assert nc.time_coverage_start == "2024-02-03T05:26:23Z"
            assert nc.time_coverage_duration == "P12D"
            assert 60 < nc.geospatial_lat_min < nc.geospatial_lat_max < 90
        else:
            assert all("grid_mapping" not in nc[v].ncattrs() for v in nc.variables)
            assert nc["x"].units == "1" and "axis" not in nc["x"].ncattrs()
            if geometry == "radar_gcps":
                assert "grid_mapping_name" not in nc["spatial_ref"].ncattrs()
                assert "gcps" in nc["spatial_ref"].ncattrs()
    # in memory too, and the result still reads back with its CRS / GCPs
    assert result.x.encoding.get("_FillValue", "unset") is None
    assert result.attrs["Conventions"].startswith("CF-1.8")
    assert result.valid.attrs["flag_values"].dtype == np.int8
    if geometry == "map":
        assert result.spatial_ref.dtype == np.int32 and result.rio.crs.to_epsg() == 3413
    elif geometry == "radar_gcps":
        assert len(result.rio.get_gcps()) == 9 and "grid_mapping" not in result.v.attrs


def test_values_survive_the_netcdf_round_trip(case):
    _, _, result, _, files = case
    for source in ("memory", "zarr"):
        with xr.open_dataset(files[source]) as back:
            for name in ("dx", "dy", "v"):
                np.testing.assert_array_equal(back[name].values, result[name].values)
            np.testing.assert_array_equal(back.valid.values.astype(bool), result.valid.values)
            np.testing.assert_array_equal(back.x.values, result.x.values)


def test_open_zarr_gives_typed_flag_values_back(case):
    back = trackoff_xr.open_zarr(case[3])
    assert back.valid.attrs["flag_values"].dtype == np.int8
    assert xr.open_zarr(case[3]).valid.attrs["flag_values"] == [0, 1]  # JSON: a list on disk


# -- the output rule: to_netcdf never replaces what it did not write ---------------------


@pytest.fixture
def small():
    return xr.Dataset(
        {"dx": (("y", "x"), np.ones((2, 3), np.float32)), "dy": (("y", "x"), np.zeros((2, 3)))},
        coords={"y": [47.5, 15.5], "x": [15.5, 47.5, 79.5]},
    )


def test_to_netcdf_never_replaces_a_file_it_did_not_write(tmp_path, small):
    users = {
        "notes.nc": b"my notes, not netCDF\n",
        "empty.nc": b"",
    }
    for name, content in users.items():
        (tmp_path / name).write_bytes(content)
    small.to_netcdf(tmp_path / "theirs.nc")  # a netCDF file, written by xarray, not by us
    store = trackoff_xr.to_zarr(small, tmp_path / "ours.zarr")
    xr.open_zarr(store).to_netcdf(tmp_path / "exported.nc")  # from our store, by xarray
    (tmp_path / "folder.nc").mkdir()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    for name in [*users, "theirs.nc", "exported.nc", "folder.nc"]:
        for mode in ("w-", "w"):
            with pytest.raises(ProtectedOutputError, match="did not write.*never replaced"):
                trackoff_xr.to_netcdf(small, tmp_path / name, mode=mode)
            with pytest.raises(ProtectedOutputError):
                check_output(tmp_path / name, kind="netcdf", mode=mode)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "folder.nc", "ours.zarr"])


def test_to_netcdf_replaces_its_own_file_only_with_mode_w(tmp_path, small):
    path = tmp_path / "pair.nc"
    assert trackoff_xr.to_netcdf(small, path) == path
    with pytest.raises(OutputExistsError, match="mode='w'"):
        trackoff_xr.to_netcdf(small * 2, path)
    trackoff_xr.to_netcdf(small * 2, path, mode="w")
    with xr.open_dataset(path) as back:
        assert float(back.dx.sum()) == 12.0
    assert [p.name for p in tmp_path.iterdir()] == ["pair.nc"]  # no partial left


def test_to_netcdf_protects_inputs_and_refuses_urls(tmp_path, small):
    source = tmp_path / "ref.nc"
    trackoff_xr.to_netcdf(small, source)
    with pytest.raises(ProtectedOutputError, match="input of this run"):
        trackoff_xr.to_netcdf(small, source, mode="w", protect=[source])
    with pytest.raises(ProtectedOutputError, match="input of this run"):
        trackoff_xr.to_netcdf(small.assign_attrs(reference_image=str(source)), source, mode="w")
    with pytest.raises(OutputLocationError, match="URL"):
        trackoff_xr.to_netcdf(small, "memory://pair.nc")


def test_to_netcdf_leaves_nothing_when_the_write_fails(tmp_path, small):
    bad = small.assign_attrs(unstorable=object())
    with pytest.raises(Exception):  # noqa: B017 - whatever netCDF4/xarray raise
        trackoff_xr.to_netcdf(bad, tmp_path / "pair.nc")
    assert list(tmp_path.iterdir()) == []


def test_to_netcdf_without_netcdf4_names_the_package(tmp_path, small, monkeypatch):
    monkeypatch.setitem(sys.modules, "netCDF4", None)
    with pytest.raises(MissingDependencyError, match="pip install 'netCDF4"):
        trackoff_xr.to_netcdf(small, tmp_path / "pair.nc")
    assert not os.path.exists(tmp_path / "pair.nc")
