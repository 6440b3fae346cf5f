"""Error estimates: calibrated per-point offset errors, velocity errors, stable-ground shift."""

import json

import numpy as np
import pytest
import xarray as xr

import trackoff_xr
from trackoff_xr import InvalidParameterError
from trackoff_xr.kernels.uncertainty import COEFFICIENTS, offset_errors, peak_statistics
from trackoff_xr.testing.synthetic import (
    fractal_texture,
    glacier_field,
    sar_pair,
    speckle,
    truth_at_points,
    warp,
)

GRID = dict(patch_size=32, spacing=16, search_radius=10)
# seeds of the check split of benchmarks/calibrate_errors.py: never used for fitting
CHECK_PAIRS = ((200, 2.0), (201, 4.0), (202, 8.0))


def _fraction_within(method):
    inside_y, inside_x = [], []
    for seed, looks in CHECK_PAIRS:
        ref, sec, truth = sar_pair((320, 320), max_displacement=6.0, looks=looks, seed=seed)
        ds = trackoff_xr.offsets(ref, sec, method=method, **GRID)
        t = truth_at_points(truth, ds)
        ok = ds.valid.values
        assert np.isfinite(ds.dy_error.values[ok]).all()
        inside_y.append(np.abs(ds.dy.values - t.dy.values)[ok] <= ds.dy_error.values[ok])
        inside_x.append(np.abs(ds.dx.values - t.dx.values)[ok] <= ds.dx_error.values[ok])
    return float(np.concatenate(inside_y).mean()), float(np.concatenate(inside_x).mean())


def test_ncc_errors_are_calibrated_on_pairs_not_fitted():
    fy, fx = _fraction_within("ncc")
    assert 0.63 <= fy <= 0.73, fy
    assert 0.63 <= fx <= 0.73, fx


def test_cnn_errors_are_calibrated_on_pairs_not_fitted():
    pytest.importorskip("tensorflow")
    fy, fx = _fraction_within("cnn")
    assert 0.63 <= fy <= 0.73, fy
    assert 0.63 <= fx <= 0.73, fx


def test_error_outputs_follow_the_offsets_and_the_schema():
    ref, sec, _ = sar_pair((192, 192), max_displacement=4.0, looks=4.0, seed=3)
    ds = trackoff_xr.offsets(ref, sec, method="ncc", patch_size=32, spacing=16, search_radius=4)
    finite = np.isfinite(ds.dy.values)
    assert (~finite).any() and finite.any()  # some points on the window border (radius 4)
    np.testing.assert_array_equal(np.isfinite(ds.dy_error.values), finite)
    np.testing.assert_array_equal(np.isfinite(ds.dx_error.values), finite)
    assert (ds.dy_error.values[finite] > 0).all()
    assert "1-sigma" in ds.dy_error.attrs["long_name"]
    assert "error_model" in ds.dx_error.attrs
    # a rejected point is NaN in its errors too
    out = trackoff_xr.filter_score(ds, min_score=0.99)
    assert np.isnan(out.dy_error.values[~out.valid.values]).all()


def test_noisier_pairs_report_larger_errors():
    medians = []
    for looks in (1.0, 16.0):
        ref, sec, _ = sar_pair((256, 256), max_displacement=3.0, looks=looks, seed=7)
        ds = trackoff_xr.offsets(ref, sec, method="ncc", **GRID)
        medians.append(float(ds.dx_error.median()))
    assert medians[0] > 1.5 * medians[1]


def test_peak_statistics_recover_a_known_quadratic_and_the_aperture_problem():
    yy, xx = np.mgrid[-5:6, -5:6]
    round_peak = 0.8 - 0.1 * (yy - 0.3) ** 2 - 0.2 * xx**2
    ridge = 0.8 - 0.2 * xx**2 - 0.001 * yy**2  # nearly flat along rows: dy is barely known
    rho, inv_yy, inv_xx = peak_statistics(np.stack([round_peak, ridge]))
    np.testing.assert_allclose(inv_yy[0], 1 / 0.2, rtol=1e-6)
    np.testing.assert_allclose(inv_xx[0], 1 / 0.4, rtol=1e-6)
    ey, ex = offset_errors(np.stack([round_peak, ridge]), 32, COEFFICIENTS["ncc"])
    assert ey[1] > 3 * ex[1]  # the flat axis is the uncertain one
    assert ex[1] < 1.0 and ey[0] > ex[0]


def test_velocity_carries_the_errors_in_meters_per_year():
    e = np.array([[0.1, 0.2]], np.float32)
    ds = xr.Dataset(
        {
            "dx": (("y", "x"), np.array([[3.0, 0.0]], np.float32)),
            "dy": (("y", "x"), np.array([[-4.0, 0.0]], np.float32)),
            "dx_error": (("y", "x"), e),
            "dy_error": (("y", "x"), 2 * e),
        }
    )
    out = trackoff_xr.velocity(ds, days=36.525, pixel_size=10.0)  # 0.1 year, 10 m
    np.testing.assert_allclose(out.vx_error.values, [[10.0, 20.0]], rtol=1e-5)
    np.testing.assert_allclose(out.vy_error.values, [[20.0, 40.0]], rtol=1e-5)
    # v = hypot(300, 400) = 500: sqrt((300 * 10)^2 + (400 * 20)^2) / 500
    np.testing.assert_allclose(out.v_error.values[0, 0], np.hypot(3000, 8000) / 500, rtol=1e-5)
    # v = 0: the spread of the speed of two normal errors, checked by sampling
    rng = np.random.default_rng(0)
    sample = np.hypot(rng.normal(0, 20.0, 400_000), rng.normal(0, 40.0, 400_000))
    np.testing.assert_allclose(out.v_error.values[0, 1], sample.std(), rtol=0.01)
    assert out.vx_error.attrs["units"] == "meter/year"
    radar = ds.assign_attrs(geometry="radar")
    out = trackoff_xr.velocity(radar, days=36.525, pixel_size=(10.0, 20.0))
    np.testing.assert_allclose(out.v_azimuth_error.values, [[40.0, 80.0]], rtol=1e-5)
    assert "vx_error" not in out


# -- stable ground -----------------------------------------------------------------------
BIAS = (0.3, -0.2)  # (dy, dx) px added everywhere, stable ground included


@pytest.fixture(scope="module")
def biased():
    """A map-projected glacier pair with a global bias, its offsets and the true stable ground."""
    import rioxarray  # noqa: F401

    shape, rng = (384, 384), np.random.default_rng(11)
    tex = fractal_texture(shape, seed=rng)
    dy, dx = glacier_field(shape, max_displacement=6.0, seed=rng)
    moved = warp(tex, dy + BIAS[0], dx + BIAS[1])
    ref, sec = np.sqrt(speckle(tex, 6, rng)), np.sqrt(speckle(np.clip(moved, 1e-6, None), 6, rng))
    coords = {"y": -2.0e6 - 10.0 * np.arange(shape[0]), "x": 2.0e5 + 10.0 * np.arange(shape[1])}

    def image(values):
        da = xr.DataArray(values.astype(np.float32), dims=("y", "x"), coords=coords)
        return da.rio.write_crs("EPSG:3413")

    ds = trackoff_xr.offsets(image(ref), image(sec), method="ncc", **GRID)
    still = image((np.hypot(dy, dx) == 0).astype(np.float32))
    return ds, still


def _check_shift(out, ds, stable):
    assert abs(out.dy.attrs["stable_shift"] - BIAS[0]) < 0.05
    assert abs(out.dx.attrs["stable_shift"] - BIAS[1]) < 0.05
    removed = trackoff_xr.stable_shift(ds, stable, remove_stable_shift=True)
    on = removed.valid.values & trackoff_xr.stable_mask(stable, ds).values
    assert abs(float(np.median(removed.dy.values[on]))) < 0.05
    assert abs(float(np.median(removed.dx.values[on]))) < 0.05
    assert removed.dy.attrs["stable_shift_flag"] == 1 and out.dy.attrs["stable_shift_flag"] == 0
    assert "stable_shift_removed" in removed.attrs and "stable_shift_removed" not in out.attrs


def test_stable_shift_from_a_raster_mask_in_another_crs(biased):
    ds, still = biased
    # a raster mask in another CRS, on a finer grid than the result
    mask = still.rio.reproject("EPSG:3857", resolution=8.0, nodata=0)
    out = trackoff_xr.stable_shift(ds, mask)
    assert out.dx.attrs["stable_count_stationary"] > 100
    assert out.dx.attrs["error_stationary"] < 0.5
    _check_shift(out, ds, mask)


def test_stable_shift_from_a_vector_mask_in_another_crs(biased, tmp_path):
    ds, still = biased
    rows = still.values.min(axis=1) == 1
    half = rows.size // 2
    from pyproj import Transformer

    to_ll = Transformer.from_crs("EPSG:3413", "EPSG:4326", always_xy=True)
    y, x = still.y.values, still.x.values
    features = []
    for band in (np.flatnonzero(rows[:half]), half + np.flatnonzero(rows[half:])):
        assert band.size > 40
        # keep whole templates and windows (26 px) off the moving ice
        band = band[band < band.max() - 26] if band.min() == 0 else band[band > band.min() + 26]
        top, bottom = y[band.min()], y[band.max()]
        ring = [(x[0], top), (x[-1], top), (x[-1], bottom), (x[0], bottom), (x[0], top)]
        lonlat = [list(to_ll.transform(px, py)) for px, py in ring]
        features.append(
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [lonlat]},
            }
        )
    collection = {"type": "FeatureCollection", "features": features}  # RFC 7946: WGS 84
    path = tmp_path / "stable.geojson"
    path.write_text(json.dumps(collection))
    out = trackoff_xr.stable_shift(ds, path)
    _check_shift(out, ds, collection)
    shapely = pytest.importorskip("shapely.geometry")
    shapes = [shapely.shape(f["geometry"]) for f in features]
    again = trackoff_xr.stable_shift(ds, shapes, crs="EPSG:4326")
    assert again.dx.attrs["stable_shift"] == out.dx.attrs["stable_shift"]


def test_stable_shift_without_a_mask_uses_the_slowest_points(biased):
    ds, _ = biased
    out = trackoff_xr.stable_shift(ds)
    # the slowest quarter holds some slow ice at the glacier's margins: 0.1 px, not 0.05
    assert abs(out.dy.attrs["stable_shift"] - BIAS[0]) < 0.1
    assert abs(out.dx.attrs["stable_shift"] - BIAS[1]) < 0.1
    assert out.dx.attrs["stable_count_slow"] > 50 and "stable_count_stationary" not in out.dx.attrs
    removed = trackoff_xr.stable_shift(ds, remove_stable_shift=True)
    assert removed.dx.attrs["stable_shift_flag"] == 2
    np.testing.assert_allclose(
        removed.dx.values, ds.dx.values - np.float32(out.dx.attrs["stable_shift"]), rtol=1e-6
    )


def test_stable_shift_removal_reaches_the_velocities(biased):
    ds, still = biased
    vel = trackoff_xr.velocity(ds, days=12)
    out = trackoff_xr.stable_shift(vel, still, remove_stable_shift=True)
    again = trackoff_xr.velocity(
        trackoff_xr.stable_shift(ds, still, remove_stable_shift=True), days=12
    )
    np.testing.assert_allclose(out.vx.values, again.vx.values, rtol=1e-6)
    np.testing.assert_allclose(out.v_error.values, again.v_error.values, rtol=1e-6)
    shift = trackoff_xr.stable_shift(vel, still)
    # m/yr: the pixel shift times 10 m over 12 days (vy points up the rows)
    expected = -BIAS[0] * 10.0 * 365.25 / 12
    assert abs(shift.vy.attrs["stable_shift"] - expected) < 0.05 * 10.0 * 365.25 / 12


def test_bad_masks_are_refused_with_a_clear_message(biased):
    ds, still = biased
    with pytest.raises(InvalidParameterError, match="neither a raster"):
        trackoff_xr.stable_shift(ds, object())
    away = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    with pytest.raises(InvalidParameterError, match="none of them valid"):
        trackoff_xr.stable_shift(ds, away)
    with pytest.raises(InvalidParameterError, match="slow_fraction"):
        trackoff_xr.stable_shift(ds, slow_fraction=0)
