"""Reading georeferenced rasters: CRS, transform, nodata, URLs, acquisition dates."""

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr

import trackoff_xr
from trackoff_xr import GridMismatchError, ImageReadError, InvalidParameterError, TrackOffError
from trackoff_xr.io.raster import _gdal_path

from .helpers import PIXEL, X0, Y0, raise_if_dask_computes, write_geotiff_pair


@pytest.fixture(scope="module")
def geotiff_pair(tmp_path_factory):
    corner = (slice(0, 10), slice(0, 10))
    return write_geotiff_pair(tmp_path_factory.mktemp("geo"), nodata_box=corner)


def test_geotiff_keeps_crs_transform_and_nodata_lazily(geotiff_pair):
    with raise_if_dask_computes():
        img = trackoff_xr.open_image(geotiff_pair[0], chunks=64)
    assert img.chunks is not None and img.dims == ("y", "x") and img.dtype == np.float32
    assert img.rio.crs.to_epsg() == 3413
    transform = img.rio.transform()
    assert (transform.a, transform.e, transform.c, transform.f) == (PIXEL, -PIXEL, X0, Y0)
    assert "GeoTransform" in img.spatial_ref.attrs
    assert float(img.x[0]) == X0 + PIXEL / 2 and float(img.y[0]) == Y0 - PIXEL / 2
    values = img.values
    assert np.isnan(values[:10, :10]).all() and np.isfinite(values[10:, 10:]).all()


def test_fsspec_memory_url(geotiff_pair):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/geo/ref.tif", geotiff_pair[0].read_bytes())
    img = trackoff_xr.open_image("memory://geo/ref.tif", chunks=64)
    local = trackoff_xr.open_image(geotiff_pair[0], chunks=64)
    assert img.rio.crs == local.rio.crs
    xr.testing.assert_identical(img.drop_attrs(), local.drop_attrs())
    with pytest.raises(ImageReadError, match="no file"):
        trackoff_xr.open_image("memory://geo/absent.tif")


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://example.com/a/b.tif", "/vsicurl/https://example.com/a/b.tif"),
        ("http://example.com/b.tif", "/vsicurl/http://example.com/b.tif"),
        ("s3://bucket/key/b.tif", "/vsis3/bucket/key/b.tif"),
        ("gs://bucket/b.tif", "/vsigs/bucket/b.tif"),
        ("/vsicurl/https://example.com/b.tif", "/vsicurl/https://example.com/b.tif"),
        ("file:///tmp/b.tif", "/tmp/b.tif"),
    ],
)
def test_urls_go_through_gdal_virtual_file_systems(url, expected):
    assert _gdal_path(url) == (expected, {})


def test_date_is_recorded(geotiff_pair):
    img = trackoff_xr.open_image(geotiff_pair[0], date="2024-02-03T10:00:00")
    assert img.attrs["acquisition_start"] == "2024-02-03T10:00:00"
    with pytest.raises(InvalidParameterError, match="date='yesterday'"):
        trackoff_xr.open_image(geotiff_pair[0], date="yesterday")


def test_bad_inputs_say_what_to_do(tmp_path, geotiff_pair):
    with pytest.raises(ImageReadError, match="no file at .*check the path"):
        trackoff_xr.open_image(tmp_path / "missing.tif")
    junk = tmp_path / "junk.tif"
    junk.write_text("not a raster")
    with pytest.raises(ImageReadError, match="could not read"):
        trackoff_xr.open_image(junk)
    with pytest.raises(InvalidParameterError, match="only apply to Sentinel-1"):
        trackoff_xr.open_image(geotiff_pair[0], polarisation="VV")


def test_mismatched_crs_is_refused(tmp_path, geotiff_pair):
    other, _ = write_geotiff_pair(tmp_path, crs="EPSG:3031")
    ref = trackoff_xr.open_image(geotiff_pair[0])
    sec = trackoff_xr.open_image(other)
    with pytest.raises(GridMismatchError, match="different CRS.*reproject") as info:
        trackoff_xr.offsets(ref, sec, patch_size=32, spacing=32, search_radius=8, method="ncc")
    assert isinstance(info.value, TrackOffError)
