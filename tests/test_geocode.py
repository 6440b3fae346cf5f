"""Lazy map geocoding (io/geocode.py): GCP-based (odc-geo) and terrain-corrected (sarsen)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import dask.array as da
import numpy as np
import pytest
import rasterio
import xarray as xr
from pyproj import Transformer

from trackoff_xr.exceptions import GeocodingError, InvalidParameterError
from trackoff_xr.io.geocode import geocode, geocode_pair, map_grid
from trackoff_xr.io.safe import open_safe
from trackoff_xr.postprocess.velocity import pair_metadata
from trackoff_xr.testing.safe_pair import make_safe_pair

from .helpers import NAME, raise_if_dask_computes, shared_file, write_dem

CRS = "EPSG:32632"


@pytest.fixture(scope="module")
def template():
    return shared_file("s1_grd", f"{NAME}.SAFE")


@pytest.fixture(scope="module")
def pair(template, tmp_path_factory):
    return make_safe_pair(tmp_path_factory.mktemp("geo_pair"), template, shape=(512, 512))


@pytest.fixture(scope="module")
def dem(pair, tmp_path_factory):
    return write_dem(open_safe(pair.ref), tmp_path_factory.mktemp("dem") / "dem.tif")


def index_images(image: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """The image with its own row (column) index as the pixel value: exact under bilinear."""
    rows, cols = image.shape
    yy = da.broadcast_to(da.arange(rows, dtype=np.float32, chunks=256)[:, None], (rows, cols))
    xx = da.broadcast_to(da.arange(cols, dtype=np.float32, chunks=256)[None, :], (rows, cols))
    return image.copy(data=yy.rechunk(256)), image.copy(data=xx.rechunk(256))


@pytest.mark.parametrize("with_dem", [False, True])
def test_geocoding_builds_without_computing(pair, dem, with_dem):
    ref, sec = open_safe(pair.ref, chunks=256), open_safe(pair.sec, chunks=256)
    with raise_if_dask_computes():
        a, b = geocode_pair(ref, sec, crs=CRS, resolution=10, dem=dem if with_dem else None)
    assert isinstance(a.data, da.Array) and isinstance(b.data, da.Array)
    assert a.dims == ("y", "x") and a.dtype == np.float32
    np.testing.assert_array_equal(a.x.values, b.x.values)
    np.testing.assert_array_equal(a.y.values, b.y.values)
    # aligned on multiples of the resolution (pixel edges), north-up, 10 m
    assert (a.x.values[0] - 5.0) % 10.0 == pytest.approx(0.0, abs=1e-6)
    meta = pair_metadata(a, b)
    assert meta["geometry"] == "map"
    assert (meta["pixel_size_x"], meta["pixel_size_y"]) == (10.0, -10.0)
    assert meta["date_dt"] == pytest.approx(12.0, abs=1e-3)
    assert a.attrs["geocoding"].startswith("terrain" if with_dem else "ground control")
    assert str(a.rio.crs) == CRS


def test_full_scene_graph_builds_without_computing(template):
    image = open_safe(template)
    with raise_if_dask_computes():
        out = geocode(image, crs=CRS, resolution=100.0)
    # the footprint is about 206 x 278 km (its GCPs in UTM 32N)
    to_map = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    x, y = to_map.transform(*np.array([(g.x, g.y) for g in image.rio.get_gcps()]).T)
    assert out.shape == (
        pytest.approx(np.ptp(y) / 100, rel=0.01),
        pytest.approx(np.ptp(x) / 100, rel=0.01),
    )
    assert isinstance(out.data, da.Array) and out.data.npartitions > 1


@pytest.mark.parametrize("with_dem", [False, True])
def test_geocoded_pixels_land_where_the_gcps_say(pair, dem, with_dem):
    """At each GCP's map position, the geocoded row/column images read that GCP's line/pixel."""
    ref = open_safe(pair.ref, chunks=256)
    rows_img, cols_img = index_images(ref)
    grid = map_grid([ref], crs=CRS, resolution=10.0)
    kwargs = {"dem": dem} if with_dem else {}
    rows_map = geocode(rows_img, grid, **kwargs).compute()
    cols_map = geocode(cols_img, grid, **kwargs).compute()
    to_map = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    checked = 0
    for g in ref.rio.get_gcps():
        if not (20 < g.row < 490 and 20 < g.col < 490):
            continue  # the edges: outside the sampled image
        x, y = to_map.transform(g.x, g.y)
        at = {"x": x, "y": y}
        row = float(rows_map.interp(at, method="linear"))
        col = float(cols_map.interp(at, method="linear"))
        # GCP pixel centres: index + 0.5 (GDAL convention of the geolocation grid)
        assert abs(row - g.row) <= 1.0 and abs(col - g.col) <= 1.0, (g.row, g.col, row, col)
        checked += 1
    assert checked >= 9


def test_terrain_correction_moves_pixels_with_the_dem(pair, dem, tmp_path):
    """A DEM 300 m higher than the GCPs moves ground range by about 300 m / tan(incidence)."""
    ref = open_safe(pair.ref, chunks=256)
    _, cols_img = index_images(ref)
    grid = map_grid([ref], crs=CRS, resolution=10.0)
    with rasterio.open(dem) as src:
        profile, heights = src.profile, src.read(1)
    raised = tmp_path / "raised.tif"
    with rasterio.open(raised, "w", **profile) as dst:
        dst.write(heights + 300.0, 1)
    low = geocode(cols_img, grid, dem=dem).compute()
    high = geocode(cols_img, grid, dem=raised).compute()
    shift = float(np.nanmedian((high - low).values))
    theta = np.radians(ref.attrs["incidence_angle_mid_swath"])
    expected = 300.0 / np.tan(theta) / ref.attrs["range_pixel_spacing"]
    # higher terrain is seen earlier (nearer range): a map point reads a farther column
    assert abs(shift) == pytest.approx(expected, rel=0.25)


@pytest.fixture
def large_gdal_cache():
    """GDAL's live block cache set to 512 MiB for the test (as on a machine with 10 GiB)."""
    from rasterio.env import get_gdal_config, set_gdal_config

    before = get_gdal_config("GDAL_CACHEMAX")
    set_gdal_config("GDAL_CACHEMAX", 512 * 2**20)
    yield 512 * 2**20
    set_gdal_config("GDAL_CACHEMAX", before)


@pytest.mark.parametrize("with_dem", [False, True])
@pytest.mark.parametrize("user_cachemax", [False, True])
def test_reads_hold_gdal_block_cache_small(
    pair, dem, large_gdal_cache, monkeypatch, with_dem, user_cachemax
):
    """In the dask tasks that read pixels, GDAL's cache is GDAL_CACHE_MB unless the user set it."""
    import cloudpickle
    import dask
    import rioxarray._io
    from rasterio.env import get_gdal_config

    from trackoff_xr.io.geocode import GDAL_CACHE_MB

    if user_cachemax:
        monkeypatch.setenv("GDAL_CACHEMAX", "512")
    seen = []
    read = rioxarray._io.RasterioArrayWrapper._getitem

    def spy(self, key):
        seen.append(get_gdal_config("GDAL_CACHEMAX"))
        return read(self, key)

    monkeypatch.setattr(rioxarray._io.RasterioArrayWrapper, "_getitem", spy)
    ref = open_safe(pair.ref, chunks=256)
    out = geocode(ref, crs=CRS, resolution=20.0, dem=dem if with_dem else None)
    assert get_gdal_config("GDAL_CACHEMAX") == large_gdal_cache  # building sets nothing
    with dask.config.set(scheduler="threads", num_workers=2):
        values = out.compute()
    # the image's 4 chunks (and the DEM's) were read, each under the bound
    assert len(seen) >= 4
    expected = large_gdal_cache if user_cachemax else GDAL_CACHE_MB * 2**20
    assert set(seen) == {expected}
    assert get_gdal_config("GDAL_CACHEMAX") == large_gdal_cache  # given back afterwards
    # the bounded graph pickles (as dask.distributed sends it) and reads the same
    again = cloudpickle.loads(cloudpickle.dumps(out.data)).compute(scheduler="sync")
    np.testing.assert_array_equal(again, values.values)


def test_geocode_refuses_bad_input(pair, tmp_path):
    ref = open_safe(pair.ref, chunks=256)
    with pytest.raises(InvalidParameterError, match="geographic"):
        map_grid([ref], crs="EPSG:4326", resolution=10)
    with pytest.raises(InvalidParameterError, match="resolution"):
        map_grid([ref], crs=CRS, resolution=-1)
    with pytest.raises(InvalidParameterError, match="crs="):
        map_grid([ref], crs="EPSG:nope", resolution=10)
    with pytest.raises(GeocodingError, match="do not overlap"):
        map_grid([ref], crs=CRS, resolution=10, bbox=(0.0, 0.0, 1.0, 1.0))
    with pytest.raises(InvalidParameterError, match="bbox"):
        map_grid([ref], crs=CRS, resolution=10, bbox=(11.0, 47.0, 10.0, 48.0))
    plain = xr.DataArray(np.zeros((8, 8), np.float32), dims=("y", "x"))
    with pytest.raises(GeocodingError, match="ground control points"):
        geocode(plain, crs=CRS, resolution=10)
    with pytest.raises(GeocodingError, match="no DEM"):
        geocode(ref, crs=CRS, resolution=10, dem=tmp_path / "absent.tif")
    with pytest.raises(InvalidParameterError, match="resampling"):
        geocode(ref, crs=CRS, resolution=10, dem=tmp_path / "absent.tif", resampling="cubic")
    with pytest.raises(InvalidParameterError, match="crs= and resolution="):
        geocode(ref)


def test_geocode_imports_sarsen_and_odc_only_when_used():
    code = (
        "import sys, trackoff_xr, trackoff_xr.io.geocode, trackoff_xr.coregister;"
        "print(any(m.split('.')[0] in ('sarsen', 'odc') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_end_to_end_safe_pair_velocity_on_the_map_grid(template, tmp_path):
    """open -> coregister -> geocode -> offsets(prior=) -> velocity: within 5 % of the truth.

    The motion peaks at 16 px (160 m in 12 days): NCC of 64 px patches on
    independent 4-look speckle scatters by ~0.25 px per component in radar
    and map geometry alike, so at 8 px the per-point error alone is ~5 %
    (measured: median 7.8 % in radar geometry, 5.3 % on the map). Here the
    geometry (geocoding, pixel size, time span) is what is checked.
    """
    import trackoff_xr
    from trackoff_xr.coregister import coregister
    from trackoff_xr.postprocess.velocity import velocity
    from trackoff_xr.testing.safe_pair import read_geolocation_grid

    built = make_safe_pair(tmp_path, template, shape=(1024, 1024), max_displacement=16.0)
    ref, sec = open_safe(built.ref, chunks=512), open_safe(built.sec, chunks=512)
    radar = coregister(ref, sec)  # the slice start: ~22 lines, beyond any search radius
    assert abs(radar.attrs["global_dy"] - built.global_offset[0]) <= 0.5
    dem = write_dem(ref, tmp_path / "dem.tif")
    ref_map, sec_map = geocode_pair(ref, sec, crs=CRS, resolution=10.0, dem=dem)
    # on the map the annotation's part is gone; what it missed is measured on stable ground
    prior = coregister(ref_map, sec_map, factor=4)
    ds = trackoff_xr.offsets(
        ref_map, sec_map, method="ncc", patch_size=64, spacing=48, prior=prior
    ).compute()
    # motion relative to stable ground
    ds["dy"] = ds.dy - prior.attrs["global_dy"]
    ds["dx"] = ds.dx - prior.attrs["global_dx"]
    ds = velocity(ds.assign_attrs(pair_metadata(ref_map, sec_map)))

    # the truth at each point: its radar pixel (index images geocoded as the images were,
    # with the DEM), moved by the field
    rows_img, cols_img = index_images(ref)
    grid = map_grid([ref, sec], crs=CRS, resolution=10.0)
    rows = geocode(rows_img, grid, dem=dem).interp(x=ds.x, y=ds.y).compute().values
    cols = geocode(cols_img, grid, dem=dem).interp(x=ds.x, y=ds.y).compute().values
    inside = np.isfinite(rows) & np.isfinite(cols)
    at = {"y": xr.DataArray(rows[inside]), "x": xr.DataArray(cols[inside])}
    tdy = built.truth.dy.interp(at).values
    tdx = built.truth.dx.interp(at).values
    annotation = next((built.ref / "annotation").glob("*.xml"))
    geo = read_geolocation_grid(ET.parse(annotation).getroot())
    to_map = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)

    def where(r, c):
        from scipy.interpolate import RegularGridInterpolator

        points = np.column_stack([r, c])
        lonlat = [
            RegularGridInterpolator(
                (geo["lines"], geo["pixels"]), geo[n], bounds_error=False, fill_value=None
            )(points)
            for n in ("longitude", "latitude")
        ]
        return to_map.transform(*lonlat)

    r0, c0 = rows[inside], cols[inside]
    x0, y0 = where(r0, c0)
    x1, y1 = where(r0 + tdy, c0 + tdx)
    per_year = 365.25 / built.days
    tvx = np.full(rows.shape, np.nan)
    tvy = np.full(rows.shape, np.nan)
    tvx[inside], tvy[inside] = (x1 - x0) * per_year, (y1 - y0) * per_year
    speed = np.hypot(tvx, tvy)
    fast = (speed > 0.6 * np.nanmax(speed)) & ds.valid.values
    assert fast.sum() >= 20
    err = np.hypot(ds.vx.values - tvx, ds.vy.values - tvy)[fast] / speed[fast]
    assert np.median(err) <= 0.05
    assert np.mean(err <= 0.10) >= 0.8
    # no scale error (pixel size, time span): the speed along the flow is unbiased
    along = ((ds.vx.values - tvx) * tvx + (ds.vy.values - tvy) * tvy)[fast] / speed[fast] ** 2
    assert abs(np.median(along)) <= 0.02
    # stable ground reads ~0
    still = (speed < 1.0) & ds.valid.values
    assert np.median(ds.v.values[still]) < 0.05 * np.nanmax(speed)
