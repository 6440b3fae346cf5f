"""The public call: contract of CONVENTIONS.md, acceptance numbers of the engine issue."""

import numpy as np
import pytest

import trackoff_xr
from trackoff_xr import (
    DimensionError,
    GridMismatchError,
    ImageTooSmallError,
    InvalidParameterError,
    TrackOffError,
    UnknownMethodError,
)
from trackoff_xr.testing.synthetic import sar_pair, shifted_pair

from .helpers import raise_if_dask_computes

NCC = dict(patch_size=64, spacing=32, search_radius=16, method="ncc")


def _fits(ds, grid_shape):
    grid = trackoff_xr.GridSpec(
        ds.attrs["patch_size"], ds.attrs["spacing"], ds.attrs["search_radius"]
    )
    return np.outer(grid.window_fits(grid_shape[0]), grid.window_fits(grid_shape[1]))


# --- acceptance on the shared synthetic glacier pair -------------------------------


@pytest.fixture(scope="module")
def glacier_result(glacier_pair):
    ref, sec = glacier_pair
    return trackoff_xr.offsets(ref, sec, **NCC).compute()


def test_glacier_every_fitting_point_is_3_rows_8_columns(glacier_pair, glacier_result):
    ds = glacier_result
    fits = _fits(ds, glacier_pair[0].shape)
    assert fits.sum() > 2000
    assert np.array_equal(ds.valid.values, fits)
    np.testing.assert_allclose(ds.dy.values[fits], 3.0, atol=0.05)
    np.testing.assert_allclose(ds.dx.values[fits], 8.0, atol=0.05)
    assert (ds.score.values[fits] > 0.99).all()
    # points whose window leaves the image are NaN in every variable
    assert np.isnan(ds.dx.values[~fits]).all() and np.isnan(ds.score.values[~fits]).all()


def test_glacier_first_point_and_grid(glacier_result):
    assert float(glacier_result.y[0]) == 31.5 and float(glacier_result.x[0]) == 31.5
    assert glacier_result.sizes == {"y": (1950 - 64) // 32 + 1, "x": (1450 - 64) // 32 + 1}
    assert glacier_result.dx.dtype == np.float32 and glacier_result.valid.dtype == bool


def test_glacier_swapped_images_flip_sign(glacier_pair):
    ref, sec = glacier_pair
    ds = sec.trackoff.offsets(ref, **NCC).compute()
    fits = ds.valid.values
    assert fits.sum() > 2000
    np.testing.assert_allclose(ds.dy.values[fits], -3.0, atol=0.05)
    np.testing.assert_allclose(ds.dx.values[fits], -8.0, atol=0.05)


# --- sub-pixel accuracy ------------------------------------------------------------


def test_uniform_subpixel_shift_rmse_below_tenth_pixel():
    ref, sec = shifted_pair((512, 512), shift=(-4.37, 6.81), seed=7)
    ds = trackoff_xr.offsets(ref, sec, **NCC)
    ok = ds.valid.values
    rmse = np.sqrt(np.mean((ds.dy.values[ok] + 4.37) ** 2 + (ds.dx.values[ok] - 6.81) ** 2))
    assert ok.sum() == 13 * 13
    assert rmse <= 0.1


def test_speckled_glacier_field_is_tracked():
    ref, sec, truth = sar_pair((384, 384), max_displacement=6.0, looks=4.0, seed=3)
    ds = trackoff_xr.offsets(ref, sec, **NCC)
    centre = truth.interp(y=ds.y, x=ds.x)
    err = np.hypot(ds.dx - centre.dx, ds.dy - centre.dy).values[ds.valid.values]
    assert np.median(err) < 0.5


# --- laziness, chunk and scheduler invariance ---------------------------------------


def test_building_computes_nothing():
    ref, sec = shifted_pair((512, 512), shift=(1.5, -2.0), seed=1)
    with raise_if_dask_computes():
        ds = trackoff_xr.offsets(ref.chunk(128), sec.chunk(200), **NCC)
        ds = ref.chunk(300).trackoff.offsets(sec.chunk(300), **NCC)
    assert ds.dx.chunks is not None


def test_numpy_input_gives_numpy_output():
    ref, sec = shifted_pair((256, 256), shift=(1.5, -2.0), seed=1)
    ds = trackoff_xr.offsets(ref, sec, **NCC)
    assert isinstance(ds.dx.data, np.ndarray)


@pytest.fixture(scope="module")
def invariance_pair():
    return sar_pair((1100, 1030), max_displacement=8.0, looks=5.0, seed=11)[:2]


@pytest.fixture(scope="module")
def numpy_reference(invariance_pair):
    ref, sec = invariance_pair
    return trackoff_xr.offsets(ref, sec, **NCC)


def _assert_same(a, b):
    for name in ("dx", "dy", "score"):
        np.testing.assert_allclose(
            a[name].values, b[name].values, atol=1e-5, rtol=0, equal_nan=True
        )
    np.testing.assert_array_equal(a.valid.values, b.valid.values)
    np.testing.assert_array_equal(a.y.values, b.y.values)


@pytest.mark.parametrize("chunks", [256, 300, 512, 1024, (97, 700), 40])
def test_chunk_invariance(invariance_pair, numpy_reference, chunks):
    ref, sec = invariance_pair
    ds = trackoff_xr.offsets(
        ref.chunk(chunks if isinstance(chunks, int) else dict(zip(ref.dims, chunks, strict=False))),
        sec.chunk(300),
        **NCC,
    )
    _assert_same(ds.compute(), numpy_reference)


@pytest.mark.parametrize("scheduler", ["threads", "synchronous", "processes"])
def test_scheduler_invariance(invariance_pair, numpy_reference, scheduler):
    ref, sec = invariance_pair
    ds = trackoff_xr.offsets(ref.chunk(512), sec.chunk(512), **NCC)
    _assert_same(ds.compute(scheduler=scheduler), numpy_reference)


def test_distributed_invariance(invariance_pair, numpy_reference):
    distributed = pytest.importorskip("distributed")
    ref, sec = invariance_pair
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        ds = trackoff_xr.offsets(ref.chunk(300), sec.chunk(300), **NCC).compute()
    _assert_same(ds, numpy_reference)


def test_graph_names_are_deterministic(invariance_pair):
    ref, sec = (a.chunk(512) for a in invariance_pair)
    a = trackoff_xr.offsets(ref, sec, **NCC)
    b = trackoff_xr.offsets(ref, sec, **NCC)
    c = trackoff_xr.offsets(ref, sec, **{**NCC, "search_radius": 12})
    assert a.dx.data.name == b.dx.data.name != c.dx.data.name


# --- metadata -------------------------------------------------------------------------


def test_attributes_record_parameters():
    ref, sec = shifted_pair((200, 200), shift=(1.0, 1.0))
    ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=16, search_radius=4, method="ncc")
    assert ds.attrs["patch_size"] == 32 and ds.attrs["spacing"] == 16
    assert ds.attrs["search_radius"] == 4 and ds.attrs["method"] == "ncc"
    assert ds.attrs["software_version"] == trackoff_xr.__version__
    assert ds.dx.attrs["units"] == "1"  # pixels: CF has no pixel unit (see schema.py)


def test_crs_is_carried_when_present():
    rioxarray = pytest.importorskip("rioxarray")  # noqa: F841
    ref, sec = shifted_pair((200, 200), shift=(1.0, 1.0))
    x = 500000.0 + 10.0 * np.arange(200)
    y = 7000000.0 - 10.0 * np.arange(200)
    ref = ref.assign_coords(x=x, y=y).rio.write_crs("EPSG:3413")
    sec = sec.assign_coords(x=x, y=y).rio.write_crs("EPSG:3413")
    ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=16, search_radius=4, method="ncc")
    assert ds.rio.crs.to_epsg() == 3413
    assert ds.x.values[0] == pytest.approx(500155.0)
    assert ds.dx.attrs["grid_mapping"] == "spatial_ref"


# --- errors ---------------------------------------------------------------------------


@pytest.fixture
def small_pair():
    return shifted_pair((128, 128), shift=(1.0, 1.0))


def test_different_shapes(small_pair):
    ref, sec = small_pair
    with pytest.raises(
        GridMismatchError, match=r"shape \(128, 128\) but sec has shape \(128, 100\)"
    ):
        trackoff_xr.offsets(ref, sec.isel(x=slice(0, 100)), method="ncc")


def test_different_coordinates(small_pair):
    ref, sec = small_pair
    moved = sec.assign_coords(x=sec.x + 5)
    with pytest.raises(
        GridMismatchError, match=r"'x' coordinates differ: ref\[0\]=.*0.0.*sec\[0\]=.*5.0"
    ):
        trackoff_xr.offsets(ref, moved, method="ncc")


def test_different_crs(small_pair):
    pytest.importorskip("rioxarray")
    ref, sec = small_pair
    with pytest.raises(GridMismatchError, match="different CRS"):
        trackoff_xr.offsets(
            ref.rio.write_crs("EPSG:3413"), sec.rio.write_crs("EPSG:32624"), method="ncc"
        )


def test_not_two_dimensional(small_pair):
    ref, sec = small_pair
    with pytest.raises(DimensionError, match=r"3 dimensions.*squeeze\(\['band'\]\)"):
        trackoff_xr.offsets(ref.expand_dims(band=1), sec.expand_dims(band=1), method="ncc")
    with pytest.raises(DimensionError, match="ndarray, not an xarray.DataArray"):
        trackoff_xr.offsets(ref.values, sec, method="ncc")


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (
            dict(patch_size=4),
            InvalidParameterError,
            "patch_size=4 is smaller than the minimum of 8",
        ),
        (dict(spacing=0), InvalidParameterError, "spacing=0"),
        (dict(search_radius=-3), InvalidParameterError, "search_radius=-3"),
        (dict(method="phase"), UnknownMethodError, "method='phase' is not a known.*'ncc'"),
        (
            dict(patch_size=100, search_radius=20),
            ImageTooSmallError,
            r"shape \(128, 128\).*140 x 140",
        ),
    ],
)
def test_bad_parameters(small_pair, kwargs, error, fragment):
    ref, sec = small_pair
    with pytest.raises(error, match=fragment) as info:
        trackoff_xr.offsets(ref, sec, **{"method": "ncc", **kwargs})
    assert isinstance(info.value, TrackOffError)


def test_unknown_matcher_option(small_pair):
    ref, sec = small_pair
    with pytest.raises(InvalidParameterError, match="does not accept the options"):
        trackoff_xr.offsets(ref, sec, method="ncc", upsample=4)


def test_nodata_gives_nan(small_pair):
    ref, sec = small_pair
    sec = sec.copy()
    sec[40:50, 40:50] = np.nan
    ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=16, search_radius=4, method="ncc")
    touched = ds.sel(y=slice(20, 70), x=slice(20, 70))
    assert np.isnan(touched.dx.values).all() and np.isnan(touched.score.values).all()
    assert ds.valid.values.sum() > 0
