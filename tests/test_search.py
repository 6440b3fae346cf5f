"""Large and unknown motion: the coarse-to-fine pass, priors, and the recorded search centres."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import trackoff_xr
from trackoff_xr.exceptions import InvalidParameterError, PriorError
from trackoff_xr.grid import GridSpec
from trackoff_xr.kernels import WindowLattice
from trackoff_xr.kernels.centring import clean_field, interpolate_lattice
from trackoff_xr.search import CoarseSearch, coarse_centres
from trackoff_xr.testing import fractal_texture, glacier_field, shifted_pair, speckle, warp

CAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cat"


class _NoCompute:
    """A dask scheduler that fails the test if anything is computed."""

    def __call__(self, dsk, keys, **kwargs):
        raise AssertionError("something was computed while the graph was built")


def _large_motion_pair(shape=(1024, 1024), base=(40.0, -25.0), glacier=10.0, seed=3, looks=None):
    """Texture moved by a uniform ``base`` plus a glacier field, cropped from a larger scene."""
    rng = np.random.default_rng(seed)
    pad = 64
    big = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    tex = fractal_texture(big, seed=rng)
    gy, gx = glacier_field(big, max_displacement=glacier, seed=rng)
    dy, dx = gy + base[0], gx + base[1]
    moved = warp(tex, dy, dx)
    crop = (slice(pad, pad + shape[0]), slice(pad, pad + shape[1]))
    ref, sec = tex[crop], moved[crop]
    if looks:
        ref, sec = speckle(ref, looks, rng), speckle(np.clip(sec, 1e-6, None), looks, rng)
    coords = {"y": np.arange(shape[0], dtype=float), "x": np.arange(shape[1], dtype=float)}
    as_da = lambda a: xr.DataArray(a.astype(np.float32), dims=("y", "x"), coords=coords)  # noqa: E731
    truth = xr.Dataset({"dy": (("y", "x"), dy[crop]), "dx": (("y", "x"), dx[crop])}, coords=coords)
    return as_da(ref), as_da(sec), truth


def _truth_at(truth, ds):
    from trackoff_xr.testing import truth_at_points

    return truth_at_points(truth, ds)


# -- numpy pieces -------------------------------------------------------------------


def test_shifted_lattice_cuts_each_window_at_its_own_corner():
    img = np.random.default_rng(0).random((80, 90)).astype(np.float32)
    shifts = np.random.default_rng(1).integers(-5, 6, size=(12, 2))
    lat = WindowLattice(img, (8, 8), (3, 4), 16, 12, shifts=shifts)
    arr = np.asarray(lat)
    for k in range(12):
        r, c = divmod(k, 4)
        y0, x0 = 8 + 16 * r + shifts[k, 0], 8 + 16 * c + shifts[k, 1]
        np.testing.assert_array_equal(arr[k], img[y0 : y0 + 12, x0 : x0 + 12])
        np.testing.assert_array_equal(lat[k], arr[k])
    np.testing.assert_array_equal(np.asarray(lat[[2, 9]]), arr[[2, 9]])
    mean, _, finite = lat.stats()
    np.testing.assert_allclose(mean, arr.reshape(12, -1).mean(axis=1), rtol=1e-5)
    assert finite.all() and not lat.regular


def test_shifted_lattice_refuses_windows_outside_the_block():
    img = np.zeros((40, 40), np.float32)
    with pytest.raises(ValueError, match="shifts up to 9"):
        WindowLattice(img, (2, 2), (1, 1), 8, 30, shifts=[[9, 0]])


def test_clean_field_drops_incoherent_and_weak_points_and_fills_them():
    dy = np.full((6, 6), 3.0)
    dx = np.full((6, 6), -10.0)
    dx[1, 4] = 12.0  # an outlier
    score = np.ones((6, 6))
    score[4, 1] = 0.1  # too weak, although its value is wrong too
    dy[4, 1] = -40.0
    cy, cx, kept = clean_field(dy, dx, score, min_score=0.3, tolerance=1.0)
    assert kept == 34
    np.testing.assert_array_equal(cy, 3.0)
    np.testing.assert_array_equal(cx, -10.0)


def test_interpolation_is_bilinear_and_clamped():
    rows, cols = np.array([10.0, 20.0]), np.array([0.0, 100.0])
    values = np.array([[0.0, 100.0], [10.0, 110.0]])
    out = interpolate_lattice(values, rows, cols, np.array([0.0, 15.0, 30.0]), np.array([50.0]))
    np.testing.assert_allclose(out[:, 0], [50.0, 55.0, 60.0])


# -- the coarse pass ---------------------------------------------------------------------


def test_coarse_centres_find_a_shift_far_beyond_the_fine_radius():
    ref, sec = shifted_pair(shape=(512, 512), shift=(21.0, -47.0), seed=2)
    centres = coarse_centres(ref.values, sec.values, GridSpec(64, 32, 16), CoarseSearch())
    c = np.asarray(centres.compute())
    assert c.dtype == np.int32 and c.shape == (15, 15, 2)
    assert np.abs(c[..., 0] - 21).max() <= 1 and np.abs(c[..., 1] + 47).max() <= 1


def test_motion_beyond_the_radius_is_measured_by_default_and_the_centre_recorded():
    ref, sec = shifted_pair(shape=(512, 512), shift=(21.3, -47.6), seed=2)
    ds = trackoff_xr.offsets(ref, sec, method="ncc")
    has_data = np.isfinite(ds.dx.values)
    assert has_data.sum() >= 100
    np.testing.assert_allclose(ds.dy.values[has_data], 21.3, atol=0.05)
    np.testing.assert_allclose(ds.dx.values[has_data], -47.6, atol=0.05)
    assert not ds.peak_at_edge.values.any()
    # what was searched is visible: centres within a pixel of the truth
    assert {"search_dy", "search_dx"} <= set(ds.data_vars)
    assert np.abs(ds.search_dx.values - -47.6).max() <= 1.5
    assert ds.attrs["coarse_factor"] == 4


def test_without_the_coarse_pass_large_motion_is_flagged_at_the_window_edge():
    ref, sec = shifted_pair(shape=(512, 512), shift=(21.3, -47.6), seed=2)
    ds = trackoff_xr.offsets(ref, sec, method="ncc", coarse=False)
    found = ds.valid.values & (np.abs(ds.dx.values + 47.6) < 1)
    assert not found.any()  # what is not blanked at the edge is a wrong, inner peak
    matched = ds.peak_at_edge.values.sum() + np.isfinite(ds.dx.values).sum()
    assert ds.peak_at_edge.values.sum() >= 0.66 * matched
    assert "search_dx" not in ds


def test_small_motion_gives_the_same_answer_with_and_without_the_coarse_pass():
    ref, sec = shifted_pair(shape=(512, 512), shift=(2.4, -3.7), seed=4)
    with_coarse = trackoff_xr.offsets(ref, sec, method="ncc")
    without = trackoff_xr.offsets(ref, sec, method="ncc", coarse=False)
    both = np.isfinite(with_coarse.dx.values) & np.isfinite(without.dx.values)
    assert both.sum() >= 0.8 * np.isfinite(without.dx.values).sum()
    np.testing.assert_allclose(with_coarse.dx.values[both], without.dx.values[both], atol=1e-3)
    np.testing.assert_allclose(with_coarse.dy.values[both], without.dy.values[both], atol=1e-3)


def test_coarse_pass_is_lazy_and_chunk_and_scheduler_invariant():
    import dask

    ref, sec = shifted_pair(shape=(640, 640), shift=(9.6, -33.2), seed=5)
    with dask.config.set(scheduler=_NoCompute()):
        lazy = trackoff_xr.offsets(ref.chunk(200), sec.chunk(200), method="ncc")
    a = lazy.compute(scheduler="threads")
    b = trackoff_xr.offsets(ref.chunk(333), sec.chunk(256), method="ncc").compute(
        scheduler="synchronous"
    )
    for name in ("dy", "dx", "score", "search_dy", "search_dx"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_large_motion_plus_a_glacier_field_is_recovered_with_the_default_radius():
    # 10 px of glacier flow on top of a (40, -25) px offset: 47 px at most, three times the
    # default search radius. Truth: the mean displacement over each template.
    ref, sec, truth = _large_motion_pair(shape=(1024, 1024))
    ds = trackoff_xr.offsets(ref, sec)  # method="cnn", search_radius=16: the defaults
    expected = _truth_at(truth, ds)
    has_data = np.isfinite(ds.dx.values)
    error = np.hypot(ds.dy - expected.dy, ds.dx - expected.dx).values
    good = ds.valid.values
    assert has_data.sum() >= 700
    assert good.sum() >= 0.95 * has_data.sum(), (good.sum(), has_data.sum())
    rmse = float(np.sqrt(np.mean(error[good] ** 2)))
    assert rmse <= 0.3, rmse
    assert not ds.peak_at_edge.values.any()


@pytest.mark.skipif(not CAT.exists(), reason="shared cat pair not present")
def test_cat_pair_with_default_parameters_finds_the_38_pixel_motion():
    ref = trackoff_xr.open_image(CAT / "CAT1.png")
    sec = trackoff_xr.open_image(CAT / "CAT2.png")
    ds = ref.trackoff.offsets(sec).compute()
    has_data = np.isfinite(ds.dx.values)
    right = ds.valid.values & (np.abs(ds.dx.values + 38.1) <= 0.3) & (np.abs(ds.dy.values) <= 0.3)
    assert right.sum() >= 0.9 * has_data.sum(), (right.sum(), has_data.sum())
    assert not ds.peak_at_edge.values.any()


def test_coarse_argument_errors_are_clear():
    ref, sec = shifted_pair(shape=(200, 200), shift=(1.0, 1.0), seed=0)
    with pytest.raises(InvalidParameterError, match="too small for the coarse pass"):
        trackoff_xr.offsets(ref, sec, method="ncc", coarse=True)
    with pytest.raises(InvalidParameterError, match="coarse='fast' is not understood"):
        trackoff_xr.offsets(ref, sec, method="ncc", coarse="fast")
    # auto on a small image: no coarse pass, the old behaviour
    ds = trackoff_xr.offsets(ref, sec, method="ncc")
    assert "search_dx" not in ds


# -- priors ---------------------------------------------------------------------------


def _map_pair(shift_m=(-150.0, 420.0), pixel=10.0, shape=(512, 512), seed=7):
    """A map-geometry pair in EPSG:3413 moved by ``shift_m`` metres (north, east) over 12 days."""
    import rioxarray  # noqa: F401

    north, east = shift_m
    ref, sec = shifted_pair(shape=shape, shift=(-north / pixel, east / pixel), seed=seed)
    x0, y0 = -200_000.0, -2_100_000.0
    coords = {
        "y": y0 - pixel * np.arange(shape[0]) - pixel / 2,
        "x": x0 + pixel * np.arange(shape[1]) + pixel / 2,
    }
    ref = ref.assign_coords(coords).rio.write_crs("EPSG:3413")
    sec = sec.assign_coords(coords).rio.write_crs("EPSG:3413")
    ref.attrs["acquisition_start"], sec.attrs["acquisition_start"] = "2024-02-03", "2024-02-15"
    return ref, sec


def _velocity_prior_in_utm(ref, v_east_north):
    """A coarse (500 m) velocity prior on UTM zone 24N, components along UTM axes."""
    import rioxarray  # noqa: F401
    from pyproj import Transformer

    to_utm = Transformer.from_crs("EPSG:3413", "EPSG:32624", always_xy=True)
    xs, ys = np.meshgrid(ref.x.values, ref.y.values)
    ux, uy = to_utm.transform(xs, ys)
    x = np.arange(ux.min() - 5000, ux.max() + 5000, 500.0)
    y = np.arange(uy.max() + 5000, uy.min() - 5000, -500.0)
    # the prior's components: the same ground motion, expressed along UTM axes
    back = Transformer.from_crs("EPSG:32624", "EPSG:3413", always_xy=True)
    gx, gy = np.meshgrid(x, y)
    px, py = back.transform(gx, gy)
    ve, vn = v_east_north  # in EPSG:3413 axes, m/yr
    ex, ey = to_utm.transform(px + ve * 12 / 365.25, py + vn * 12 / 365.25)
    vx = (ex - gx) * 365.25 / 12
    vy = (ey - gy) * 365.25 / 12
    prior = xr.Dataset(
        {
            "vx": (("y", "x"), vx, {"units": "meter/year"}),
            "vy": (("y", "x"), vy, {"units": "meter/year"}),
        },
        coords={"y": y, "x": x},
    )
    return prior.rio.write_crs("EPSG:32624")


def test_velocity_prior_in_another_crs_centres_the_search_on_the_truth():
    shift_m = (-150.0, 420.0)  # 15 px south (+15 rows), 42 px east
    ref, sec = _map_pair(shift_m)
    v = (shift_m[1] * 365.25 / 12, shift_m[0] * 365.25 / 12)
    prior = _velocity_prior_in_utm(ref, v)
    ds = trackoff_xr.offsets(ref, sec, method="ncc", prior=prior)
    cy, cx = ds.search_dy.values, ds.search_dx.values
    close = (np.abs(cy - 15.0) <= 2) & (np.abs(cx - 42.0) <= 2)
    assert close.mean() >= 0.95, close.mean()
    has_data = np.isfinite(ds.dx.values)
    np.testing.assert_allclose(ds.dx.values[has_data], 42.0, atol=0.05)
    np.testing.assert_allclose(ds.dy.values[has_data], 15.0, atol=0.05)


def test_velocity_prior_is_regridded_lazily():
    import dask

    ref, sec = _map_pair()
    prior = _velocity_prior_in_utm(ref, (12_000.0, -4_000.0)).chunk(20)
    with dask.config.set(scheduler=_NoCompute()):
        ds = trackoff_xr.offsets(ref.chunk(256), sec.chunk(256), method="ncc", prior=prior)
    assert ds.search_dx.chunks is not None


def test_pixel_prior_on_the_image_grid():
    ref, sec = shifted_pair(shape=(384, 384), shift=(-12.2, 30.4), seed=8)
    prior = xr.Dataset(
        {"dy": (("y", "x"), np.full((4, 4), -12.0)), "dx": (("y", "x"), np.full((4, 4), 30.0))},
        coords={"y": np.linspace(0, 383, 4), "x": np.linspace(0, 383, 4)},
    )
    ds = trackoff_xr.offsets(ref, sec, method="ncc", prior=prior)
    np.testing.assert_array_equal(ds.search_dy.values, -12)
    np.testing.assert_array_equal(ds.search_dx.values, 30)
    has_data = np.isfinite(ds.dx.values)
    assert has_data.sum() >= 25
    np.testing.assert_allclose(ds.dx.values[has_data], 30.4, atol=0.05)


def test_prior_errors_name_what_is_missing():
    ref, sec = shifted_pair(shape=(256, 256), shift=(1.0, 1.0), seed=0)
    with pytest.raises(PriorError, match="needs dx and dy"):
        trackoff_xr.offsets(ref, sec, method="ncc", prior=xr.Dataset({"v": (("y",), [1.0])}))
    velocity = xr.Dataset(
        {"vx": (("y", "x"), np.zeros((2, 2))), "vy": (("y", "x"), np.zeros((2, 2)))},
        coords={"y": [0.0, 255.0], "x": [0.0, 255.0]},
    )
    with pytest.raises(PriorError, match="date_dt"):
        trackoff_xr.offsets(ref, sec, method="ncc", prior=velocity)
    with pytest.raises(PriorError, match="must be an xarray.Dataset"):
        trackoff_xr.offsets(ref, sec, method="ncc", prior=np.zeros((2, 2)))
    mref, msec = _map_pair(shape=(256, 256))
    bad_units = _velocity_prior_in_utm(mref, (0.0, 0.0))
    bad_units.vx.attrs["units"] = "furlong/fortnight"
    with pytest.raises(PriorError, match="furlong/fortnight"):
        trackoff_xr.offsets(mref, msec, method="ncc", prior=bad_units)
