"""The generated SAFE pair (testing/safe_pair.py) and coregistration (coregister.py)."""

from __future__ import annotations

import glob

import dask.array as da
import numpy as np
import pytest
import rasterio
import xarray as xr

import trackoff_xr
from trackoff_xr.coregister import annotation_offset, coregister
from trackoff_xr.exceptions import CoregistrationError, InvalidParameterError
from trackoff_xr.io.safe import check_s1_pair, open_safe
from trackoff_xr.testing import fractal_texture, shifted_pair, speckle, warp
from trackoff_xr.testing.safe_pair import make_safe_pair

from .helpers import raise_if_dask_computes, shared_file

NAME = "S1B_IW_GRDH_1SDV_20210401T052623_20210401T052648_026269_032297_ECC8"


@pytest.fixture(scope="module")
def template():
    return shared_file("s1_grd", f"{NAME}.SAFE")


@pytest.fixture(scope="module")
def pair(template, tmp_path_factory):
    return make_safe_pair(tmp_path_factory.mktemp("safe_pair"), template, shape=(1024, 1024))


# -- the generated pair -----------------------------------------------------------


def test_safe_pair_opens_as_products_with_the_built_in_timing(pair, template):
    ref, sec = open_safe(pair.ref), open_safe(pair.sec)
    assert ref.shape == sec.shape == (1024, 1024)
    assert ref.attrs["number_of_lines"] == 1024 and ref.attrs["geometry"] == "radar"
    assert check_s1_pair(ref, sec) == pytest.approx(12.0, abs=1e-3)
    # the secondary's slice starts shift[0] azimuth lines later than an exact repeat
    full = open_safe(template)
    ati = full.attrs["azimuth_time_interval"]
    t0 = np.datetime64(full.attrs["first_line_time"])
    t_ref = np.datetime64(ref.attrs["first_line_time"])
    t_sec = np.datetime64(sec.attrs["first_line_time"])
    assert (t_ref - t0) / np.timedelta64(1, "us") * 1e-6 == pytest.approx(7000 * ati, abs=2e-6)
    lag = (t_sec - t_ref - np.timedelta64(12, "D")) / np.timedelta64(1, "us") * 1e-6
    assert lag / ati == pytest.approx(-pair.annotation_offset[0], abs=1e-3)
    assert sec.attrs["absolute_orbit"] == ref.attrs["absolute_orbit"] + 175
    assert sec.attrs["relative_orbit"] == ref.attrs["relative_orbit"]
    sigma0 = open_safe(pair.ref, calibration="sigma0")
    assert np.isfinite(float(sigma0.mean()))


def _grid(product):
    from trackoff_xr.io.safe import _Product
    from trackoff_xr.testing.safe_pair import read_geolocation_grid

    opened = _Product(str(product))
    try:
        return read_geolocation_grid(opened.xml(opened.find("annotation", "VV")))
    finally:
        opened.close()


def _lonlat(grid, y, x):
    from trackoff_xr.testing.safe_pair import _grid_sample

    at = (np.array([y]), np.array([x]))
    return tuple(float(_grid_sample(grid, *at, n)[0, 0]) for n in ("longitude", "latitude"))


def test_safe_pair_geolocation_matches_the_built_in_offset(pair):
    """Ground seen at ref (y, x) is where the sec annotation puts (y, x) + annotation offset."""
    g_ref, g_sec = _grid(pair.ref), _grid(pair.sec)
    ay, ax = pair.annotation_offset
    for y, x in [(100.0, 100.0), (512.0, 700.0), (900.0, 30.0)]:
        lon1, lat1 = _lonlat(g_ref, y, x)
        lon2, lat2 = _lonlat(g_sec, y + ay, x + ax)
        # metres; the secondary's grid lines sit on its own whole pixels (< 0.5 m off)
        assert abs(lat1 - lat2) * 111e3 < 0.5
        assert abs(lon1 - lon2) * 111e3 * np.cos(np.radians(lat1)) < 0.5


def test_safe_pair_geolocation_is_the_templates(pair, template):
    """The crop's grid (and the GeoTIFF's GCPs) are the template's geolocation, cropped."""
    g_tmpl, g_ref = _grid(template), _grid(pair.ref)
    l0, s0 = pair.origin
    for y, x in [(0.0, 0.0), (1023.0, 1023.0), (400.0, 611.0)]:
        assert _lonlat(g_ref, y, x) == pytest.approx(_lonlat(g_tmpl, l0 + y, s0 + x), abs=1e-9)
    gcps = {(g.row, g.col): (g.x, g.y) for g in open_safe(pair.ref).rio.get_gcps()}
    tiff = glob.glob(str(pair.ref / "measurement" / "*.tiff"))[0]
    with rasterio.open(tiff) as src:
        assert {(g.row, g.col): (g.x, g.y) for g in src.gcps[0]} == gcps
    assert len(gcps) >= 36


def test_safe_pair_image_moves_by_the_built_in_offset(pair):
    """Stable ground correlates at the global offset (motion only on the glacier)."""
    ref = open_safe(pair.ref).values
    sec = open_safe(pair.sec).values
    dy, dx = pair.global_offset
    stable = (pair.truth.dy.values == 0) & (pair.truth.dx.values == 0)
    y, x = np.argwhere(stable[100:-100, 100:-100])[0] + 100
    block = ref[y : y + 64, x : x + 64]
    window = sec[y - 40 : y + 104, x - 40 : x + 104]
    import cv2

    ncc = cv2.matchTemplate(window.astype(np.float32), block.astype(np.float32), 5)
    py, px = np.unravel_index(ncc.argmax(), ncc.shape)
    assert (py - 40, px - 40) == (round(dy), round(dx))


def test_safe_pair_refuses_a_window_outside_the_template(template, tmp_path):
    with pytest.raises(InvalidParameterError, match="leaves the template"):
        make_safe_pair(tmp_path, template, shape=(512, 512), origin=(16500, 0))
    with pytest.raises(InvalidParameterError, match="field="):
        make_safe_pair(tmp_path, template, field="spiral")


# -- coregistration ---------------------------------------------------------------


def test_annotation_offset_reads_the_slice_start(pair):
    ref, sec = open_safe(pair.ref), open_safe(pair.sec)
    dy, dx, how = annotation_offset(ref, sec)
    assert dy == pytest.approx(pair.annotation_offset[0], abs=1e-3)
    assert dx == pytest.approx(pair.annotation_offset[1], abs=0.25)
    assert "ascending node" in how


def test_annotation_offset_without_ascending_node_uses_whole_days(pair):
    ref, sec = open_safe(pair.ref), open_safe(pair.sec)
    for img in (ref, sec):
        del img.attrs["ascending_node_time"]
    dy, _, how = annotation_offset(ref, sec)
    assert dy == pytest.approx(pair.annotation_offset[0], abs=1e-3)
    assert "whole days" in how


@pytest.mark.parametrize("fit", ["constant", "affine"])
def test_coregister_recovers_the_global_offset_of_the_safe_pair(pair, fit):
    ref, sec = open_safe(pair.ref), open_safe(pair.sec)
    prior = coregister(ref, sec, fit=fit)
    gy, gx = pair.global_offset
    assert abs(prior.attrs["global_dy"] - gy) <= 0.5
    assert abs(prior.attrs["global_dx"] - gx) <= 0.5
    # the annotation alone misses the error built in; the images find it
    assert abs(prior.attrs["annotation_dy"] - gy) > 1.0
    assert "annotation" in prior.attrs["coregistration_method"]
    assert prior.attrs["fit"] == fit
    assert prior.dy.dims == ("y", "x") and float(prior.y[-1]) == 1023.0
    assert np.allclose(prior.dy, gy, atol=0.5) and np.allclose(prior.dx, gx, atol=0.5)


def test_coregister_prior_centres_offsets_on_the_safe_pair(pair):
    """Without the prior the fine search misses (offset ~22 px > radius 16); with it, it hits."""
    ref, sec = open_safe(pair.ref), open_safe(pair.sec)
    prior = coregister(ref, sec)
    ds = trackoff_xr.offsets(
        ref, sec, method="ncc", patch_size=64, spacing=96, search_radius=8, prior=prior
    ).compute()
    stable = ((pair.truth.dy == 0) & (pair.truth.dx == 0)).astype(float)
    still = (stable.interp(y=ds.y, x=ds.x, method="nearest").values > 0.5) & ds.valid.values
    assert still.sum() >= 10
    for got, want in (
        (ds.dy.values[still], pair.global_offset[0]),
        (ds.dx.values[still], pair.global_offset[1]),
    ):
        assert abs(np.median(got) - want) < 0.2
        assert np.mean(np.abs(got - want) < 0.5) >= 0.8


def test_coregister_affine_recovers_a_known_plane():
    rng = np.random.default_rng(3)
    shape = (640, 640)
    tex = fractal_texture(shape, seed=rng)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    coef_y, coef_x = (-9.0, 0.004, -0.003), (14.0, 0.002, 0.005)
    dy = coef_y[0] + coef_y[1] * yy + coef_y[2] * xx
    dx = coef_x[0] + coef_x[1] * yy + coef_x[2] * xx
    moved = warp(tex, dy, dx)
    ref = xr.DataArray(np.sqrt(speckle(tex, 8, rng)), dims=("y", "x"))
    sec = xr.DataArray(np.sqrt(speckle(np.clip(moved, 1e-6, None), 8, rng)), dims=("y", "x"))
    ref, sec = (a.assign_coords(y=np.arange(640.0), x=np.arange(640.0)) for a in (ref, sec))
    prior = coregister(ref, sec, fit="affine", factor=4, patch=48)
    got_y, got_x = np.array(prior.attrs["affine_dy"]), np.array(prior.attrs["affine_dx"])
    for got, want in ((got_y, coef_y), (got_x, coef_x)):
        assert got[0] == pytest.approx(want[0], abs=0.3)
        assert got[1:] == pytest.approx(want[1:], abs=5e-4)
    # the prior grid holds the plane
    at = prior.sel(y=prior.y[-1], x=prior.x[0])
    assert float(at.dy) == pytest.approx(coef_y[0] + coef_y[1] * 639, abs=0.3)
    # a constant fit cannot represent it: its residuals are larger
    flat = coregister(ref, sec, fit="constant", factor=4, patch=48)
    assert flat.attrs["residual_std"] > 2 * prior.attrs["residual_std"]


def test_coregister_map_pair_starts_at_zero_and_reads_few_times():
    ref, sec = shifted_pair((512, 512), shift=(-27.3, 35.6), seed=1)
    ref = ref.copy(data=da.from_array(ref.values, chunks=128))
    sec = sec.copy(data=da.from_array(sec.values, chunks=128))
    with raise_if_dask_computes(max_computes=2):  # the block means, then the patches
        prior = coregister(ref, sec, factor=4)
    assert prior.attrs["annotation_dy"] == 0.0
    assert prior.attrs["global_dy"] == pytest.approx(-27.3, abs=0.1)
    assert prior.attrs["global_dx"] == pytest.approx(35.6, abs=0.1)


def test_coregister_refuses_bad_input(pair):
    ref, sec = shifted_pair((256, 256), seed=0)
    with pytest.raises(InvalidParameterError, match="fit="):
        coregister(ref, sec, fit="spline")
    with pytest.raises(InvalidParameterError, match="factor="):
        coregister(ref, sec, factor=0)
    with pytest.raises(InvalidParameterError, match="2-D"):
        coregister(ref.values, sec)
    flat = xr.full_like(ref, 1.0)
    with pytest.raises(CoregistrationError, match="good matches"):
        coregister(flat, flat, factor=4)
    radar = open_safe(pair.ref)
    radar.attrs.pop("azimuth_time_interval")
    with pytest.raises(InvalidParameterError, match="azimuth_time_interval"):
        coregister(radar, open_safe(pair.sec))


def test_annotation_offset_refuses_an_empty_first_line_time():
    attrs = {"first_line_time": "2021-04-01T05:26:23.0", "azimuth_time_interval": 2.0e-3}
    ref = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), attrs=attrs)
    sec = ref.copy().assign_attrs(first_line_time="")
    with pytest.raises(InvalidParameterError, match="first_line_time is empty"):
        annotation_offset(ref, sec)
    dy, _, _ = annotation_offset(ref, ref.copy())  # the same timing: no offset
    assert dy == 0.0
