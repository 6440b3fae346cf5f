"""Filters: catch corrupted points, stay lazy, give the same mask whatever the chunks."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import trackoff_xr
from trackoff_xr.exceptions import InvalidParameterError, TrackOffError
from trackoff_xr.postprocess.filters import (
    fill_gaps,
    filter_median,
    filter_offsets,
    filter_score,
    filter_velocity,
    interpolate_gaps,
    median_test,
)
from trackoff_xr.testing.synthetic import sar_pair, truth_at_points

from .helpers import raise_if_dask_computes


@pytest.fixture(scope="module")
def pair():
    ref, sec, _ = sar_pair((640, 640), max_displacement=8.0, looks=8.0, seed=3)
    return ref, sec


@pytest.fixture(scope="module")
def result(pair):
    ref, sec = pair
    return trackoff_xr.offsets(
        ref, sec, patch_size=32, spacing=16, search_radius=12, method="ncc"
    ).compute()


def corrupt(ds, fraction=0.05, seed=0):
    """Replace ``fraction`` of the measured points by random offsets 3-20 px off."""
    rng = np.random.default_rng(seed)
    finite = np.isfinite(ds.dx.values)
    idx = np.flatnonzero(finite)
    pick = rng.choice(idx, size=int(round(fraction * idx.size)), replace=False)
    bad = np.zeros(finite.shape, bool)
    bad.flat[pick] = True
    r, theta = rng.uniform(3, 20, pick.size), rng.uniform(0, 2 * np.pi, pick.size)
    dx, dy = ds.dx.values.copy(), ds.dy.values.copy()
    dx.flat[pick] += r * np.cos(theta)
    dy.flat[pick] += r * np.sin(theta)
    out = ds.copy()
    out["dx"] = ds.dx.copy(data=dx)
    out["dy"] = ds.dy.copy(data=dy)
    return out, bad, finite & ~bad


@pytest.mark.parametrize("seed", [0, 1])
def test_default_filter_removes_corrupted_keeps_good(result, seed):
    noisy, bad, good = corrupt(result, seed=seed)
    assert bad.sum() >= 40
    kept = filter_offsets(noisy).valid.values
    removed_bad = (~kept[bad]).mean()
    kept_good = kept[good].mean()
    assert removed_bad >= 0.95, removed_bad
    assert kept_good >= 0.95, kept_good


def test_default_filter_on_speckled_pair_keeps_correct_matches():
    # 4 looks: the matcher itself gets ~20 % of points wrong by > 1 px; among the
    # untouched points that are right, the filter keeps >= 95 %
    ref, sec, truth = sar_pair((640, 640), max_displacement=8.0, looks=4.0, seed=3)
    ds = trackoff_xr.offsets(
        ref, sec, patch_size=32, spacing=16, search_radius=12, method="ncc"
    ).compute()
    expected = truth_at_points(truth, ds)
    correct = (np.hypot(ds.dx - expected.dx, ds.dy - expected.dy) < 1).values
    noisy, bad, good = corrupt(ds, seed=2)
    kept = filter_offsets(noisy).valid.values
    assert (~kept[bad]).mean() >= 0.95
    assert kept[good & correct].mean() >= 0.95


def test_rejected_points_are_nan_and_recorded(result):
    noisy, bad, _ = corrupt(result)
    out = filter_offsets(noisy)
    rejected = ~out.valid.values
    assert np.isnan(out.dx.values[rejected]).all() and np.isnan(out.dy.values[rejected]).all()
    assert np.isfinite(out.dx.values[out.valid.values]).all()
    assert out.attrs["filters"].startswith("score >= 0.1; median test: 5x5")
    # scores are kept, input untouched
    np.testing.assert_array_equal(out.score.values, noisy.score.values)
    assert "filters" not in noisy.attrs
    assert np.isfinite(noisy.dx.values[bad]).all()


def test_filters_compose_and_append(result):
    out = filter_velocity(filter_score(result, min_score=0.3), max_offset=6.0)
    assert out.attrs["filters"] == "score >= 0.3; hypot(dx, dy) <= 6 px"
    mag = np.hypot(out.dx, out.dy).values
    assert np.nanmax(mag) <= 6.0
    assert (out.score.values[out.valid.values] >= 0.3).all()


def test_filter_velocity_uses_v():
    ds = xr.Dataset(
        {
            "dx": ("x", [1.0, 2.0, 3.0]),
            "dy": ("x", [0.0, 0.0, 0.0]),
            "v": ("x", [100.0, 900.0, np.nan], {"units": "meter/year"}),
            "vx": ("x", [100.0, 900.0, np.nan]),
            "vy": ("x", [0.0, 0.0, 0.0]),
        }
    )
    out = filter_velocity(ds, max_velocity=500)
    assert out.valid.values.tolist() == [True, False, False]
    assert np.isnan(out.vx.values[1]) and np.isnan(out.vy.values[1]) and np.isnan(out.v.values[1])
    assert out.attrs["filters"] == "v <= 500 meter/year"


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda ds: filter_score(ds, min_score=1.5), "min_score=1.5"),
        (lambda ds: filter_median(ds, window=4), "window=4"),
        (lambda ds: filter_median(ds, units="sigma"), "units='sigma'"),
        (lambda ds: filter_median(ds, min_neighbours=30), "min_neighbours=30"),
        (lambda ds: filter_velocity(ds), "neither max_velocity nor max_offset"),
        (lambda ds: filter_velocity(ds, max_velocity=10), "max_offset"),
        (lambda ds: fill_gaps(ds, max_gap=0), "max_gap=0"),
        (lambda ds: filter_offsets(ds.dx), "got DataArray"),
    ],
)
def test_bad_arguments_name_value_and_fix(result, call, match):
    with pytest.raises(InvalidParameterError, match=match) as info:
        call(result)
    assert isinstance(info.value, TrackOffError)


def test_median_kernel_uses_neighbours_not_itself():
    dx = np.zeros((7, 7))
    dx[3, 3] = 10.0
    dx[0, 0] = np.nan
    keep = median_test(dx, np.zeros_like(dx), window=3, min_neighbours=3)
    assert not keep[3, 3] and not keep[0, 0]
    assert keep.sum() == 47
    # a real gradient (ramp) passes the MAD test
    ramp = np.tile(np.linspace(0, 12, 9), (9, 1))
    assert median_test(ramp, np.zeros_like(ramp), window=5).all()


def test_interpolate_gaps_only_short_bounded_runs():
    v = np.array([[[np.nan, 1.0, np.nan, 3.0, np.nan, np.nan, 6.0, np.nan]]])
    filled, mask = interpolate_gaps(v, np.ones((1, 8), bool), max_gap=1)
    assert mask[0].tolist() == [False, False, True, False, False, False, False, False]
    assert filled[0, 0, 2] == 2.0
    filled2, mask2 = interpolate_gaps(v, np.ones((1, 8), bool), max_gap=2)
    np.testing.assert_allclose(filled2[0, 0, 4:6], [4.0, 5.0])
    assert not mask2[0, 0] and not mask2[0, 7]  # never extrapolated


def test_fill_gaps_flags_and_respects_unmeasured(result):
    noisy, _, _ = corrupt(result)
    filtered = filter_offsets(noisy)
    out = fill_gaps(filtered)
    assert out.interp_mask.dtype == np.uint8
    filled = out.interp_mask.values == 1
    assert filled.any()
    assert out.valid.values[filled].all()
    assert np.isfinite(out.dx.values[filled]).all()
    # points the matcher never measured (NaN score: outside the image) stay NaN
    assert np.isnan(out.dx.values[np.isnan(result.score.values)]).all()
    assert out.attrs["filters"].endswith("gaps of <= 1 point(s) interpolated")


def _lazy(ds, chunk):
    return ds.chunk({"y": chunk, "x": chunk})


def test_filters_are_lazy(result):
    noisy, _, _ = corrupt(result)
    lazy = _lazy(noisy, 8)
    with raise_if_dask_computes():
        out = fill_gaps(filter_velocity(filter_offsets(lazy), max_offset=15))
    assert out.dx.chunks is not None and out.valid.chunks is not None
    assert out.interp_mask.chunks is not None
    eager = fill_gaps(filter_velocity(filter_offsets(noisy), max_offset=15))
    xr.testing.assert_identical(out.compute(), eager)


def test_grid_chunking_does_not_change_the_mask(result):
    noisy, _, _ = corrupt(result)
    small = fill_gaps(filter_offsets(_lazy(noisy, 8))).compute()
    large = fill_gaps(filter_offsets(_lazy(noisy, 32))).compute()
    odd = fill_gaps(filter_offsets(noisy.chunk({"y": (5, 17, 3, 14), "x": 11}))).compute()
    np.testing.assert_array_equal(small.valid.values, large.valid.values)
    np.testing.assert_array_equal(small.valid.values, odd.valid.values)
    xr.testing.assert_identical(small, large)
    xr.testing.assert_identical(small, odd)


def test_image_chunking_does_not_change_the_mask(pair):
    ref, sec = pair
    masks = []
    for chunk in (256, 1024):
        ds = trackoff_xr.offsets(
            ref.chunk(chunk),
            sec.chunk(chunk),
            patch_size=32,
            spacing=16,
            search_radius=12,
            method="ncc",
        )
        noisy, _, _ = corrupt(ds.compute())
        with raise_if_dask_computes():
            lazy = filter_offsets(noisy.chunk(ds.chunks))
        masks.append(lazy.valid.values)
    np.testing.assert_array_equal(masks[0], masks[1])
