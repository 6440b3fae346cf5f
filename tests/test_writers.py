"""Zarr (ITS_LIVE-style), GeoTIFF/COG and TrackOff CSV outputs."""

import os

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from dask.delayed import Delayed

import trackoff_xr
from trackoff_xr import GridMismatchError, InvalidParameterError, TrackOffError
from trackoff_xr.io import (
    COMPLETE_ATTR,
    CSV_COLUMNS,
    IncompleteStoreError,
    OutputExistsError,
    append_pair,
    open_zarr,
    remove_partials,
    to_csv,
    to_geotiff,
    to_zarr,
)
from trackoff_xr.postprocess.velocity import MissingMetadataError, pair_metadata, velocity

from .helpers import DATES, PIXEL, SHIFT, write_geotiff_pair

NCC = dict(patch_size=32, spacing=32, search_radius=8, method="ncc")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    ref_path, sec_path = write_geotiff_pair(tmp_path_factory.mktemp("wr"))
    ref = trackoff_xr.open_image(ref_path, chunks=(80, 112), date=DATES[0])
    sec = trackoff_xr.open_image(sec_path, chunks=(80, 112), date=DATES[1])
    return ref, sec


@pytest.fixture(scope="module")
def result(images):
    ref, sec = images
    ds = trackoff_xr.offsets(ref, sec, **NCC)
    return velocity(ds.assign_attrs(pair_metadata(ref, sec))).compute()


@pytest.fixture
def lazy_result(images):
    ref, sec = images
    ds = trackoff_xr.offsets(ref, sec, **NCC)
    return velocity(ds.assign_attrs(pair_metadata(ref, sec)))


def test_zarr_round_trip_keeps_crs_values_and_its_live_metadata(tmp_path, result):
    path = tmp_path / "pair.zarr"
    assert to_zarr(result, path) == str(path.absolute())
    back = open_zarr(path)
    assert back.rio.crs.to_epsg() == 3413
    assert "spatial_ref" in back.coords
    for name in ("dx", "dy", "score", "vx", "vy", "v", "dx_m", "dy_m"):
        np.testing.assert_array_equal(back[name].values, result[name].values)
    np.testing.assert_array_equal(back.x.values, result.x.values)
    np.testing.assert_array_equal(back.valid.values.astype(bool), result.valid.values)
    assert back.vx.attrs["standard_name"] == "land_ice_surface_x_velocity"
    assert back.v.attrs["units"] == "meter/year" and back.vy.attrs["grid_mapping"] == "spatial_ref"
    attrs = back.attrs
    assert attrs["Conventions"] == "CF-1.8, ACDD-1.3" and attrs[COMPLETE_ATTR] == 1
    assert attrs["date_dt"] == pytest.approx(12.0)
    assert attrs["date_center"].startswith("2024-02-09T10:00")
    assert attrs["acquisition_date_img1"].startswith(DATES[0])
    assert attrs["software_version"] == trackoff_xr.__version__
    assert (attrs["patch_size"], attrs["spacing"], attrs["method"]) == (32, 32, "ncc")
    # plain xarray reads it too
    assert xr.open_zarr(path).vx.shape == result.vx.shape


def test_memory_store_and_irregular_chunks(lazy_result):
    irregular = lazy_result.chunk({"y": (1, 2, 3), "x": (4, 2)})
    store = "memory://trackoff-test/irregular.zarr"
    to_zarr(irregular, store)
    back = open_zarr(store)
    assert back.rio.crs.to_epsg() == 3413
    expected = lazy_result.vx.compute()
    np.testing.assert_array_equal(back.vx.values, expected.values)


def test_compute_false_returns_delayed_and_nothing_looks_written(tmp_path, lazy_result):
    path = tmp_path / "later.zarr"
    delayed = to_zarr(lazy_result, path, compute=False)
    assert isinstance(delayed, Delayed)
    assert not path.exists()
    delayed.compute()
    assert open_zarr(path).attrs[COMPLETE_ATTR] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["later.zarr"]


def _failing(ds):
    """ds with one variable whose computation fails half-way."""

    def boom(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 1):
            raise RuntimeError("interrupted")
        return block

    bad = dsa.map_blocks(boom, dsa.zeros(ds.vx.shape, chunks=2, dtype="f4"), dtype="f4")
    return ds.assign(broken=(("y", "x"), bad))


def test_interrupted_local_write_leaves_no_store(tmp_path, result):
    path = tmp_path / "broken.zarr"
    with pytest.raises(RuntimeError, match="interrupted"):
        to_zarr(_failing(result), path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # the partial sibling was cleaned up
    delayed = to_zarr(_failing(result), path, compute=False)
    with pytest.raises(RuntimeError, match="interrupted"):
        delayed.compute()
    assert not path.exists()  # only a hidden .broken.zarr.<pid>.*.partial sibling remains
    (partial,) = tmp_path.iterdir()
    assert partial.name.startswith(f".broken.zarr.{os.getpid()}.")
    assert partial.name.endswith(".partial")
    assert remove_partials(path) == []  # this process still runs: kept
    assert remove_partials(path, include_own=True) == [partial]
    assert list(tmp_path.iterdir()) == []


def test_interrupted_remote_write_is_refused_by_reader(result):
    store = "memory://trackoff-test/broken.zarr"
    with pytest.raises(RuntimeError, match="interrupted"):
        to_zarr(_failing(result), store)
    with pytest.raises(IncompleteStoreError, match="interrupted.*mode='w'") as info:
        open_zarr(store)
    assert isinstance(info.value, TrackOffError)
    to_zarr(result, store, mode="w")
    assert open_zarr(store).attrs[COMPLETE_ATTR] == 1


def test_existing_store_needs_mode_w(tmp_path, result):
    path = tmp_path / "twice.zarr"
    to_zarr(result, path)
    with pytest.raises(OutputExistsError, match="mode='w'"):
        to_zarr(result, path)
    to_zarr(result.assign(vx=result.vx * 0), path, mode="w")
    assert float(abs(open_zarr(path).vx).max()) == 0.0
    with pytest.raises(InvalidParameterError, match="mode='a'"):
        to_zarr(result, path, mode="a")


def test_geotiffs_are_cogs_with_crs_and_grid(tmp_path, result):
    paths = to_geotiff(result, tmp_path / "tif", variables=("vx", "vy", "v", "valid"))
    assert [p.name for p in paths] == ["vx.tif", "vy.tif", "v.tif", "valid.tif"]
    with rasterio.open(paths[0]) as src:
        assert src.crs.to_epsg() == 3413
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        step = NCC["spacing"] * PIXEL
        assert (src.transform.a, src.transform.e) == (step, -step)
        assert src.transform.c == pytest.approx(float(result.x[0]) - step / 2)
        np.testing.assert_array_equal(src.read(1), result.vx.values)
    with rasterio.open(paths[3]) as src:
        assert src.dtypes[0] == "uint8"
    back = trackoff_xr.open_image(paths[1])
    np.testing.assert_allclose(back.values, result.vy.values)
    with pytest.raises(InvalidParameterError, match="velocity"):
        to_geotiff(result[["dx", "dy"]], tmp_path, variables=("vx",))


def test_csv_has_trackoff_columns_with_dx_as_columns(tmp_path, result):
    path = to_csv(result, tmp_path / "pair.csv")
    table = pd.read_csv(path)
    assert tuple(table.columns) == CSV_COLUMNS
    assert len(table) == int(result.valid.sum())
    assert table.dX.median() == pytest.approx(SHIFT[1], abs=0.05)  # columns
    assert table.dY.median() == pytest.approx(SHIFT[0], abs=0.05)  # rows
    assert table.dX_m.median() == pytest.approx(SHIFT[1] * PIXEL, rel=0.01)
    speed = np.hypot(*SHIFT) * PIXEL / 12.0  # TrackOff's vel is metres per day
    assert table.vel.median() == pytest.approx(speed, rel=0.01)
    assert table.probab.between(0, 1).all()


def test_append_pairs_along_mid_date(tmp_path, result):
    store = tmp_path / "cube.zarr"
    append_pair(result, store)
    later = result.assign_attrs(
        acquisition_date_img1="2024-02-15T10:00:00",
        acquisition_date_img2="2024-02-27T10:00:00",
        date_center="2024-02-21T10:00:00",
    )
    append_pair(later, store)
    cube = open_zarr(store)
    assert cube.vx.dims == ("mid_date", "y", "x") and cube.sizes["mid_date"] == 2
    assert list(cube.mid_date.values.astype("datetime64[D]").astype(str)) == [
        "2024-02-09",
        "2024-02-21",
    ]
    np.testing.assert_allclose(cube.date_dt.values, [12.0, 12.0])
    assert str(cube.acquisition_date_img1.values[1]).startswith("2024-02-15")
    np.testing.assert_array_equal(cube.vx.isel(mid_date=1).values, result.vx.values)
    assert cube.rio.crs.to_epsg() == 3413 and cube.attrs[COMPLETE_ATTR] == 1
    with pytest.raises(OutputExistsError, match="already holds"):
        append_pair(later, store)
    shifted = result.assign_coords(x=result.x + 5.0).assign_attrs(date_center="2024-03-01")
    with pytest.raises(GridMismatchError, match="'x' coordinates"):
        append_pair(shifted, store)
    undated = result.copy()
    undated.attrs = {k: v for k, v in result.attrs.items() if k != "date_center"}
    with pytest.raises(MissingMetadataError, match="mid_date="):
        append_pair(undated, tmp_path / "other.zarr")


def test_geotiff_from_a_store_read_back_from_disk(tmp_path, result):
    store = to_zarr(result, tmp_path / "pair.zarr")
    names = ("vx", "vy", "v", "valid", "score")
    paths = to_geotiff(xr.open_zarr(store), tmp_path / "tif", variables=names)
    for name, path in zip(names, paths, strict=True):
        with rasterio.open(path) as src:
            assert src.crs.to_epsg() == 3413
            expected = result[name].values.astype(src.dtypes[0])
            np.testing.assert_array_equal(src.read(1), expected)
    assert sorted(p.name for p in (tmp_path / "tif").iterdir()) == sorted(f"{n}.tif" for n in names)
    # the same through open_zarr, with mode="w" replacing what was just written
    to_geotiff(open_zarr(store), tmp_path / "tif", variables=names, mode="w")


def _netcdf_engine():
    for engine, module in (("netcdf4", "netCDF4"), ("h5netcdf", "h5netcdf"), ("scipy", "scipy")):
        try:
            __import__(module)
        except ImportError:
            continue
        return engine
    pytest.skip("no netCDF engine (netCDF4, h5netcdf or scipy) is installed")


def test_store_exports_to_netcdf(tmp_path, result):
    store = to_zarr(result.assign_attrs(subpixel=True, unknown=None), tmp_path / "pair.zarr")
    engine = _netcdf_engine()
    path = tmp_path / "pair.nc"
    xr.open_zarr(store).to_netcdf(path, engine=engine)
    with xr.open_dataset(path, engine=engine) as back:
        for name in ("dx", "dy", "vx", "v"):
            np.testing.assert_array_equal(back[name].values, result[name].values)
        assert back.attrs[COMPLETE_ATTR] == 1 and back.attrs["subpixel"] == 1
        assert back.attrs["Conventions"] == "CF-1.8, ACDD-1.3"


def test_open_zarr_accepts_stores_marked_the_old_way(tmp_path, result):
    import zarr

    store = to_zarr(result, tmp_path / "old.zarr")
    group = zarr.open_group(store, mode="r+")
    group.attrs[COMPLETE_ATTR] = True  # as versions before 0.2 wrote it
    zarr.consolidate_metadata(store)
    assert xr.open_zarr(store).attrs[COMPLETE_ATTR] is True
    np.testing.assert_array_equal(open_zarr(store).vx.values, result.vx.values)
    to_zarr(result, store, mode="w")  # still recognised as ours
    assert open_zarr(store).attrs[COMPLETE_ATTR] == 1
    group = zarr.open_group(store, mode="r+")
    group.attrs[COMPLETE_ATTR] = False
    zarr.consolidate_metadata(store)
    with pytest.raises(IncompleteStoreError):
        open_zarr(store)


def test_append_pair_keeps_the_cube_attributes(tmp_path, result):
    store = tmp_path / "cube.zarr"
    append_pair(result.assign_attrs(title="Jakobshavn cube"), store)
    first = open_zarr(store).attrs
    later = result.assign_attrs(date_center="2024-02-21T10:00:00", title="ignored")
    append_pair(later, store)
    attrs = open_zarr(store).attrs
    assert attrs["title"] == "Jakobshavn cube" and attrs["Conventions"] == "CF-1.8, ACDD-1.3"
    assert attrs["software_version"] == trackoff_xr.__version__
    assert attrs["history"].startswith(first["history"])
    assert "appended the pair mid_date=2024-02-21T10:00:00" in attrs["history"].splitlines()[-1]
    assert {k: v for k, v in attrs.items() if k != "history"} == {
        k: v for k, v in first.items() if k != "history"
    }


def test_stores_are_chunked_for_readers(tmp_path):
    """Whatever the blocks that computed them, chunks hold >= 512 points per dim."""
    data = dsa.zeros((700, 900), chunks=(32, 32), dtype=np.float32)
    ds = xr.Dataset({"dx": (("y", "x"), data), "dy": (("y", "x"), data)})
    path = to_zarr(ds, tmp_path / "pair.zarr")
    back = xr.open_zarr(path)
    assert back.dx.encoding["chunks"] == (512, 512)
    small = xr.Dataset({"dx": (("y", "x"), dsa.zeros((40, 30), chunks=8, dtype=np.float32))})
    assert xr.open_zarr(to_zarr(small, tmp_path / "small.zarr")).dx.encoding["chunks"] == (40, 30)
