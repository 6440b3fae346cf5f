"""The ITS_LIVE profile, read back the way ITS_LIVE's cube code reads granules (issue 15)."""

import datetime

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from dateutil.parser import parse

import trackoff_xr
from trackoff_xr.exceptions import InvalidParameterError, ProfileGeometryError
from trackoff_xr.io.its_live import FILL_VALUE, its_live_pair_info
from trackoff_xr.testing import shifted_pair

netCDF4 = pytest.importorskip("netCDF4")

SHAPE = (256, 256)
PIXEL = 100.0
DATES = ("2024-02-03T05:26:23", "2024-02-15T05:26:23")
NCC = dict(method="ncc", patch_size=32, spacing=32, search_radius=8)
# ITS_LIVE's ImgPairInfo.ALL plus the time standards the cube code reads
PAIR_KEYS = (
    "acquisition_date_img1", "acquisition_date_img2", "mission_img1", "mission_img2",
    "satellite_img1", "satellite_img2", "sensor_img1", "sensor_img2", "date_center", "date_dt",
    "roi_valid_percentage", "time_standard_img1", "time_standard_img2",
)  # fmt: skip


@pytest.fixture(scope="module")
def result():
    ref, sec = shifted_pair(SHAPE, shift=(-2.3, 3.4), seed=1)
    x = -200_000.0 + PIXEL * (np.arange(SHAPE[1]) + 0.5)
    y = -2_100_000.0 - PIXEL * (np.arange(SHAPE[0]) + 0.5)
    ref, sec = [
        img.assign_coords(x=x, y=y).rio.write_crs("EPSG:3413").assign_attrs(acquisition_start=d)
        for img, d in zip((ref, sec), DATES, strict=True)
    ]
    ds = trackoff_xr.velocity(ref.trackoff.offsets(sec, **NCC))
    return ds.assign_attrs(mission_img1="S", satellite_img1="1A", sensor_img1="C")


@pytest.fixture(scope="module", params=["netcdf", "zarr"])
def granule(request, result, tmp_path_factory):
    folder = tmp_path_factory.mktemp("its_live")
    if request.param == "netcdf":
        path = trackoff_xr.to_netcdf(result, folder / "pair.nc", profile="its_live")
        ds = xr.open_dataset(path)
    else:
        path = trackoff_xr.to_zarr(result, folder / "pair.zarr", profile="its_live")
        ds = xr.open_zarr(path)
    yield request.param, ds
    ds.close()


def test_mapping_is_read_as_the_cube_reads_it(granule, result):
    _, ds = granule
    assert str(int(ds.mapping.spatial_epsg)) == "3413"
    assert ds.mapping.grid_mapping_name == "polar_stereographic"
    assert ds.mapping.latitude_of_projection_origin == 90.0
    x0, dx, rx, y0, ry, dy = map(float, ds.mapping.GeoTransform.split())
    step = NCC["spacing"] * PIXEL
    assert (dx, dy, rx, ry) == (step, -step, 0.0, 0.0)
    assert (x0, y0) == (float(result.x[0]), float(result.y[0]))  # centre-based, as granules
    assert abs(float(ds.x[1] - ds.x[0])) == step
    for name in ("vx", "vy", "v", "chip_size_width", "interp_mask"):
        assert ds[name].attrs["grid_mapping"] == "mapping"
    assert ds.x.attrs["standard_name"] == "projection_x_coordinate" and ds.x.units == "m"


def test_img_pair_info_has_its_keys_and_date_formats(granule):
    _, ds = granule
    info = ds.img_pair_info.attrs
    assert set(PAIR_KEYS) <= set(info)
    acq1 = info["acquisition_date_img1"]
    assert acq1 == "20240203T05:26:23.000000"
    assert int(acq1[2:8]) == 240203  # the cube's mid_date token
    assert parse(acq1) == datetime.datetime(2024, 2, 3, 5, 26, 23)
    assert datetime.datetime.strptime(info["acquisition_date_img2"], "%Y%m%dT%H:%M:%S.%f")
    assert parse(info["date_center"]) == datetime.datetime(2024, 2, 9, 5, 26, 23)
    assert np.float32(info["date_dt"]) == np.float32(12.0)
    assert 0 < np.float32(info["roi_valid_percentage"]) <= 100
    assert (info["mission_img1"], info["satellite_img1"], info["sensor_img1"]) == ("S", "1A", "C")
    assert info["mission_img2"] == "unknown"  # not known for the second image: not invented
    assert info["time_standard_img1"] == "UTC" == info["time_standard_img2"]
    assert 60 < info["latitude"] < 90 and round(info["latitude"], 2) == info["latitude"]
    for key in ("autoRIFT_software_version", "autoRIFT_parameter_file"):
        assert ds.attrs[key].startswith("trackoff_xr")
    assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["days_per_year"] == 365


def test_velocities_are_int16_at_365_days_a_year(granule, result):
    kind, ds = granule
    for name in ("vx", "vy", "v"):
        assert ds[name].encoding["dtype"] == np.int16
        assert ds[name].encoding["_FillValue"] == FILL_VALUE
        assert ds[name].units == "meter/year"
        ours = result[name].values.astype(np.float64)
        expected = np.round(ours * 365.0 / 365.25)  # trackoff_xr's year is 365.25 days
        back = ds[name].values
        np.testing.assert_array_equal(np.isnan(back), np.isnan(ours))
        np.testing.assert_array_equal(back[np.isfinite(back)], expected[np.isfinite(expected)])
    assert ds.vx.standard_name == "land_ice_surface_x_velocity"
    assert ds.v.standard_name == "land_ice_surface_velocity"
    # the known shift: 3.4 px * 100 m in 12 days, 365-day years
    assert float(np.nanmedian(ds.vx.values)) == pytest.approx(3.4 * PIXEL / 12 * 365, rel=0.01)
    width = ds.chip_size_width.values
    assert np.nanmax(width) == NCC["patch_size"] * PIXEL
    assert "interp_mask" in ds and ds.interp_mask.encoding["dtype"] == np.uint8
    if kind == "netcdf":
        ny, nx = ds.sizes["y"], ds.sizes["x"]
        rows = int(min(np.ceil(8192 / ny) * 128, ny))
        assert ds.vx.encoding["chunksizes"] == (rows, nx) and ds.vx.encoding["zlib"]
    else:
        assert ds.vx.encoding["chunks"] == (ds.sizes["y"], ds.sizes["x"])


def test_radar_pixel_grids_are_refused_with_nothing_written(tmp_path):
    ref, sec = shifted_pair((128, 128), shift=(1.0, 2.0), seed=3)
    meta = dict(geometry="radar", range_pixel_spacing=10.0, azimuth_pixel_spacing=14.0)
    ref, sec = ref.assign_attrs(**meta), sec.assign_attrs(**meta)
    radar = trackoff_xr.velocity(ref.trackoff.offsets(sec, **NCC), days=12)
    assert "v_range" in radar
    with pytest.raises(ProfileGeometryError, match="radar geometry.*map grid|map grid.*radar"):
        trackoff_xr.to_netcdf(radar, tmp_path / "r.nc", profile="its_live")
    with pytest.raises(ProfileGeometryError, match="reproject"):
        trackoff_xr.to_zarr(radar, tmp_path / "r.zarr", profile="its_live")
    image = trackoff_xr.velocity(
        ref.assign_attrs(geometry="image").trackoff.offsets(sec, **NCC), days=12, pixel_size=10
    )
    with pytest.raises(ProfileGeometryError, match="image geometry"):
        trackoff_xr.to_netcdf(image, tmp_path / "i.nc", profile="its_live")
    assert list(tmp_path.iterdir()) == []


def test_radar_components_on_a_map_grid_are_named_vr_va(result, tmp_path):
    geocoded = result.rename(vx="v_range", vy="v_azimuth")
    path = trackoff_xr.to_netcdf(geocoded, tmp_path / "g.nc", profile="its_live")
    with xr.open_dataset(path) as ds:
        assert {"vr", "va"} <= set(ds.data_vars) and "v_range" not in ds
        assert ds.vr.standard_name == "range_velocity"
        assert ds.va.encoding["dtype"] == np.int16


def test_unknown_profile_is_refused(result, tmp_path):
    with pytest.raises(InvalidParameterError, match="profile='itslive'.*its_live"):
        trackoff_xr.to_netcdf(result, tmp_path / "p.nc", profile="itslive")
    with pytest.raises(InvalidParameterError, match="profile="):
        trackoff_xr.to_zarr(result, tmp_path / "p.zarr", profile="cf")
    assert list(tmp_path.iterdir()) == []


def test_pair_info_from_sentinel1_metadata():
    a = xr.DataArray(np.zeros((1, 1)), attrs={"mission": "S1A", "absolute_orbit": 52312,
                                              "pass_direction": "ASCENDING"})  # fmt: skip
    info = its_live_pair_info(a, a.assign_attrs(mission="S1B"))
    assert info["satellite_img1"] == "1A" and info["satellite_img2"] == "1B"
    assert info["absolute_orbit_number_img2"] == "52312"
    assert info["flight_direction_img1"] == "ascending"
