"""Offsets in pixels to velocity in meter/year: pixel size, time span, signs, names."""

import numpy as np
import pytest
import xarray as xr

import trackoff_xr
from trackoff_xr import InvalidParameterError, TrackOffError
from trackoff_xr.postprocess.velocity import MissingMetadataError, pair_metadata, velocity

from .helpers import DATES, PIXEL, SHIFT, raise_if_dask_computes, write_geotiff_pair

NCC = dict(patch_size=32, spacing=32, search_radius=8, method="ncc")
YEARS = 12.0 / 365.25
# sec = ref moved 3 rows down (south) and 5 columns left (west) in 12 days
VX = SHIFT[1] * PIXEL / YEARS  # -1521.875 m/yr: westward
VY = -SHIFT[0] * PIXEL / YEARS  # -913.125 m/yr: southward


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    ref_path, sec_path = write_geotiff_pair(tmp_path_factory.mktemp("vel"))
    ref = trackoff_xr.open_image(ref_path, chunks=96, date=DATES[0])
    sec = trackoff_xr.open_image(sec_path, chunks=96, date=DATES[1])
    ds = trackoff_xr.offsets(ref, sec, **NCC).compute()
    return ref, sec, ds


def test_known_shift_gives_known_velocity_with_map_signs(pair):
    ref, sec, ds = pair
    out = velocity(ds, ref=ref, sec=sec)
    assert float(out.dy.median()) == pytest.approx(SHIFT[0], abs=0.05)
    assert float(out.dx.median()) == pytest.approx(SHIFT[1], abs=0.05)
    assert float(out.vx.median()) == pytest.approx(VX, rel=0.01)
    assert float(out.vy.median()) == pytest.approx(VY, rel=0.01)
    assert float(out.v.median()) == pytest.approx(np.hypot(VX, VY), rel=0.01)
    assert float(out.dx_m.median()) == pytest.approx(SHIFT[1] * PIXEL, rel=0.01)
    assert float(out.dy_m.median()) == pytest.approx(SHIFT[0] * PIXEL, rel=0.01)
    for name, standard in [
        ("vx", "land_ice_surface_x_velocity"),
        ("vy", "land_ice_surface_y_velocity"),
        ("v", None),  # no CF standard name for the speed (ITS_LIVE profile writes one)
    ]:
        assert out[name].attrs["units"] == "meter/year"
        assert out[name].attrs.get("standard_name") == standard
        assert out[name].attrs["grid_mapping"] == "spatial_ref"
    assert out.dx.attrs["units"] == "1" and out.dx_m.attrs["units"] == "meter"
    assert out.attrs["date_dt"] == pytest.approx(12.0)
    assert out.attrs["date_center"] == "2024-02-09T10:00:00.000000"
    assert out.attrs["acquisition_date_img1"].startswith("2024-02-03")
    assert (out.attrs["pixel_size_x"], out.attrs["pixel_size_y"]) == (PIXEL, -PIXEL)


def test_pixel_size_from_grid_and_explicit_arguments_win(pair):
    ref, sec, ds = pair
    # no metadata at all on ds: pixel size from the map grid, days given
    out = velocity(ds, days=12)
    assert float(out.vx.median()) == pytest.approx(VX, rel=0.01)
    assert float(out.vy.median()) == pytest.approx(VY, rel=0.01)
    # explicit days and pixel size beat what the images say; signs stay the grid's
    out = velocity(ds, ref=ref, sec=sec, days=24, pixel_size=20)
    assert float(out.vx.median()) == pytest.approx(VX, rel=0.01)
    assert float(out.vy.median()) == pytest.approx(VY, rel=0.01)
    assert out.attrs["date_dt"] == 24


def test_metadata_recorded_on_the_dataset_is_used(pair):
    ref, sec, ds = pair
    tagged = ds.assign_attrs(pair_metadata(ref, sec))
    out = velocity(tagged)
    assert float(out.vy.median()) == pytest.approx(VY, rel=0.01)
    # a south-up grid (positive pixel height) flips vy
    south_up = tagged.assign_attrs(pixel_size_y=PIXEL)
    assert float(velocity(south_up).vy.median()) == pytest.approx(-VY, rel=0.01)


def test_lazy_in_lazy_out(pair):
    ref, sec, _ = pair
    lazy = trackoff_xr.offsets(ref, sec, **NCC)
    with raise_if_dask_computes():
        out = velocity(lazy, ref=ref, sec=sec)
    assert out.vx.chunks is not None


def _image_ds(**attrs):
    dx = np.array([[2.0, 4.0], [1.0, 0.0]], np.float32)
    return xr.Dataset(
        {"dx": (("y", "x"), dx), "dy": (("y", "x"), -dx)},
        coords={"y": [15.5, 47.5], "x": [15.5, 47.5]},
        attrs={"spacing": 32, **attrs},
    )


def test_missing_information_names_the_argument():
    ds = _image_ds()
    with pytest.raises(MissingMetadataError, match="pixel_size=") as info:
        velocity(ds, days=12)
    assert isinstance(info.value, TrackOffError)
    with pytest.raises(MissingMetadataError, match="days="):
        velocity(ds, pixel_size=10)
    with pytest.raises(InvalidParameterError, match="days=-3"):
        velocity(ds, pixel_size=10, days=-3)
    with pytest.raises(InvalidParameterError, match="pixel_size"):
        velocity(ds, pixel_size=(10, 0), days=3)
    later_first = ds.assign_attrs(
        acquisition_date_img1="2024-02-15", acquisition_date_img2="2024-02-03"
    )
    with pytest.raises(InvalidParameterError, match="swap ref and sec"):
        velocity(later_first, pixel_size=10)
    with pytest.raises(TrackOffError, match="dx and dy"):
        velocity(xr.Dataset({"a": 1}))


def test_geographic_crs_is_refused():
    import rioxarray  # noqa: F401

    ds = _image_ds().rio.write_crs("EPSG:4326")
    with pytest.raises(MissingMetadataError, match="geographic CRS.*reproject"):
        velocity(ds, days=12)


def test_radar_geometry_names_components_honestly():
    ds = _image_ds(geometry="radar", range_pixel_spacing=10.0, azimuth_pixel_spacing=12.5)
    out = velocity(ds, days=365.25)
    assert "vx" not in out and "vy" not in out
    np.testing.assert_allclose(out.v_range.values, ds.dx.values * 10.0)
    np.testing.assert_allclose(out.v_azimuth.values, ds.dy.values * 12.5)
    assert "standard_name" not in out.v.attrs and "speed" in out.v.attrs["long_name"]
    assert out.v_range.attrs["units"] == "meter/year"
    with pytest.raises(MissingMetadataError, match="pixel_size=\\(range_spacing"):
        velocity(_image_ds(geometry="radar"), days=12)


def test_image_without_crs_assumes_north_up():
    out = velocity(_image_ds(), days=365.25, pixel_size=(10.0, 20.0))
    np.testing.assert_allclose(out.vx.values, out.dx.values * 10.0)
    np.testing.assert_allclose(out.vy.values, -out.dy.values * 20.0)
