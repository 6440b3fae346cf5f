"""Issue 10, items 4 and 5: NCC numerics (scale, extreme pixels) and peaks on the window edge."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import trackoff_xr
from trackoff_xr.blockwise import OUTPUT_FIELDS, match_arrays, output_fields
from trackoff_xr.grid import GridSpec
from trackoff_xr.kernels import WindowLattice, ncc_surfaces
from trackoff_xr.matchers import MatchResult, correlate_and_refine
from trackoff_xr.testing.synthetic import shifted_pair

from .helpers import shared_file

#: a dense grid (templates share tiles: ncc_tiled) and one that does not (one matchTemplate each)
# coarse=False: these pin the kernels' numerics, point by point; the coarse pass (whose
# centres an extreme pixel may move over a wider area) is tested in test_search.py
TILED = dict(patch_size=64, spacing=32, search_radius=16, method="ncc", coarse=False)
DIRECT = dict(patch_size=48, spacing=20, search_radius=6, method="ncc", coarse=False)
GRIDS = {"tiled": TILED, "direct": DIRECT}

#: offsets of a scaled pair agree with the unscaled ones to this, pixels
OFFSET_TOL = 1e-3


def _pair_1_255(shape, shift, seed=0, flat=True):
    """A textured pair spanning 1..255, with a constant (featureless) square in both."""
    ref, sec = shifted_pair(shape, shift=shift, seed=seed)
    lo, hi = float(ref.min()), float(ref.max())
    ref, sec = (1 + 254 * (a - lo) / (hi - lo) for a in (ref, sec))
    if flat:
        ref[96:200, 96:200] = 40.0
        sec[96:200, 96:200] = 40.0
    return ref.astype(np.float32), sec.astype(np.float32)


def _fields(ds):
    return {name: ds[name].values for name in ("dy", "dx", "score")}


# --- numerics: scale ------------------------------------------------------------------


@pytest.fixture(scope="module")
def unscaled():
    ref, sec = _pair_1_255((288, 288), shift=(1.3, -2.6))
    return ref, sec, {k: _fields(trackoff_xr.offsets(ref, sec, **g)) for k, g in GRIDS.items()}


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("scale", [1e-8, 1e-6, 1e-3, 1e3, 1e8])
def test_ncc_results_do_not_depend_on_the_images_scale(unscaled, grid, scale):
    ref, sec, base = unscaled
    base = base[grid]
    finite = np.isfinite(base["dx"])
    assert 10 < finite.sum() < finite.size  # points measured, and featureless ones not
    ds = trackoff_xr.offsets(ref * np.float32(scale), sec * np.float32(scale), **GRIDS[grid])
    got = _fields(ds)
    np.testing.assert_array_equal(np.isfinite(got["dx"]), finite)
    np.testing.assert_array_equal(np.isfinite(got["dy"]), np.isfinite(base["dy"]))
    for name in ("dy", "dx"):
        np.testing.assert_allclose(got[name][finite], base[name][finite], atol=OFFSET_TOL, rtol=0)
    np.testing.assert_allclose(got["score"], base["score"], atol=1e-4, rtol=0)


def _batches(ref, sec, lattice):
    templates = WindowLattice(ref, (26, 26), (6, 6), 40, 32)
    windows = WindowLattice(sec, (20, 20), (6, 6), 40, 44)
    return (templates, windows) if lattice else (np.asarray(templates), np.asarray(windows))


@pytest.mark.parametrize("lattice", [True, False], ids=["lattice", "arrays"])
@pytest.mark.parametrize("scale", [1e-8, 1e8])
def test_ncc_surfaces_are_scale_invariant_and_flat_stays_flat(lattice, scale):
    ref, sec = (a.values for a in _pair_1_255((288, 288), shift=(1.3, -2.6)))
    base = ncc_surfaces(*_batches(ref, sec, lattice))
    flat = np.isnan(base).all(axis=(1, 2))
    assert flat.any() and not flat.all()
    factor = np.float32(scale)
    scaled = ncc_surfaces(*_batches(ref * factor, sec * factor, lattice))
    np.testing.assert_array_equal(np.isnan(scaled), np.isnan(base))
    np.testing.assert_allclose(scaled, base, atol=1e-5)


# --- numerics: one extreme pixel ------------------------------------------------------

SPIKE = (70, 90)  # near the top-left corner: most points come after it in raster order


def _containing(ds, grid, where, extent):
    """Points whose template (``extent`` 0) or search window (``extent`` R) holds ``where``."""
    hit = []
    for axis, pixel in zip(("y", "x"), where, strict=True):
        starts = np.arange(ds.sizes[axis]) * grid["spacing"]
        hit.append((starts - extent <= pixel) & (pixel < starts + grid["patch_size"] + extent))
    return np.outer(*hit)


@pytest.mark.parametrize("image", ["ref", "sec"])
@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_an_extreme_pixel_only_affects_the_points_that_contain_it(grid, image):
    ref, sec = _pair_1_255((448, 448), shift=(2.3, -1.6), flat=False)
    kw = GRIDS[grid]
    clean = trackoff_xr.offsets(ref, sec, **kw)
    base = _fields(clean)
    spiked = (ref if image == "ref" else sec).copy()
    spiked[SPIKE] = 1e10
    pair = (spiked, sec) if image == "ref" else (ref, spiked)
    results = [_fields(trackoff_xr.offsets(*pair, **kw))]
    for chunks in (128, 200, (97, 300)):
        c = chunks if isinstance(chunks, int) else dict(zip(("y", "x"), chunks, strict=True))
        lazy = trackoff_xr.offsets(pair[0].chunk(c), pair[1].chunk(c), **kw)
        results.append(_fields(lazy.compute()))
    # identical, to the bit, whatever the chunking
    for other in results[1:]:
        for name in ("dy", "dx", "score"):
            np.testing.assert_array_equal(other[name], results[0][name])
    # and identical to the pair without the spike wherever the point does not hold it
    extent = 0 if image == "ref" else kw["search_radius"]
    far = ~_containing(clean, kw, SPIKE, extent)
    assert far.sum() > 0.9 * far.size
    for name in ("dy", "dx", "score"):
        np.testing.assert_array_equal(results[0][name][far], base[name][far])


def test_the_extreme_pixel_case_has_no_negative_variance_warning():
    ref, sec = _pair_1_255((320, 320), shift=(2.3, -1.6), flat=False)
    sec = sec.copy()
    sec[SPIKE] = 1e10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trackoff_xr.offsets(ref, sec, **TILED)


# --- edge peaks: the engine rule --------------------------------------------------------


class _Fixed:
    """A matcher answering the same offset everywhere."""

    name = "fixed"

    def __init__(self, dy: float, dx: float) -> None:
        self.dy, self.dx = dy, dx

    def __call__(self, templates, windows) -> MatchResult:  # noqa: D102
        n = len(templates)
        return MatchResult(
            np.full(n, self.dy, np.float32),
            np.full(n, self.dx, np.float32),
            np.full(n, 0.9, np.float32),
        )

    def describe(self) -> dict:  # noqa: D102
        return {}


def test_peak_at_edge_is_an_output_field_of_every_matcher():
    assert OUTPUT_FIELDS[:4] == ("dy", "dx", "score", "peak_at_edge")
    assert output_fields(_Fixed(0, 0))[:4] == OUTPUT_FIELDS


@pytest.mark.parametrize(
    "radius, dy, dx, edge",
    [
        (2, 2.0, 0.0, True),  # integer peak on the border
        (2, 0.0, -2.0, True),
        (2, 1.4, -1.4, False),  # inside
        (2, 0.2, -1.6, True),  # sub-pixel, nearer the border than the last inner lag
        (2, 1.5, 0.0, False),  # exactly half-way is still inside
        (1, 1.0, 1.0, True),
        (0, 0.0, 0.0, False),  # a radius of 0 has no border to find
    ],
)
def test_engine_blanks_offsets_on_the_window_border(radius, dy, dx, edge):
    img = np.random.default_rng(0).random((48, 48)).astype(np.float32)
    grid = GridSpec(8, 8, radius)
    out = match_arrays(img, img, grid, _Fixed(dy, dx), (0, 0), (2, 3))
    names = output_fields(_Fixed(dy, dx))
    get = {name: out[..., k] for k, name in enumerate(names)}
    np.testing.assert_array_equal(get["peak_at_edge"], 1.0 if edge else 0.0)
    if edge:
        assert np.isnan(get["dy"]).all() and np.isnan(get["dx"]).all()
        assert (get["score"] == 0.0).all()
    else:
        assert (get["dy"] == np.float32(dy)).all() and (get["dx"] == np.float32(dx)).all()
        assert (get["score"] == np.float32(0.9)).all()


class _Coarse(_Fixed):
    """Candidates every 4 px: within R = 6 the outermost is 4."""

    def search_extent(self, radius: int) -> int:  # noqa: D102
        return radius // 4 * 4


@pytest.mark.parametrize("dx, edge", [(4.0, True), (-4.0, True), (0.0, False)])
def test_engine_takes_the_border_a_matcher_declares(dx, edge):
    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    out = match_arrays(img, img, GridSpec(8, 8, 6), _Coarse(0.0, dx), (0, 0), (2, 2))
    assert (out[..., OUTPUT_FIELDS.index("peak_at_edge")] == float(edge)).all()
    assert np.isnan(out[..., OUTPUT_FIELDS.index("dx")]).all() == edge


def test_peak_at_edge_is_nan_without_data_and_zero_where_nothing_matched():
    img = np.random.default_rng(0).random((48, 48)).astype(np.float32)
    img[:6, :6] = np.nan  # touches the first point's window only
    out = match_arrays(img, img, GridSpec(8, 8, 2), _Fixed(np.nan, np.nan), (0, 0), (2, 3))
    edge = out[..., OUTPUT_FIELDS.index("peak_at_edge")]
    assert np.isnan(edge[0, 0]) and (edge.ravel()[1:] == 0.0).all()


def test_refinement_never_moves_a_border_peak_inward():
    # the content moved 7.6 px right: the integer peak is on the border (8) of R = 8
    ref, sec = shifted_pair((128, 128), shift=(0.3, 7.6), seed=3)
    t = ref.values[None, 48:80, 48:80]
    w = sec.values[None, 40:88, 40:88]
    for subpixel in ("gauss-newton", "gaussian", "parabolic", "none"):
        dy, dx, peak, surfaces = correlate_and_refine(t, w, subpixel)
        iy, ix = np.unravel_index(np.nanargmax(surfaces[0]), surfaces[0].shape)
        assert ix - 8 == 8  # integer peak on the border
        assert dx[0] == 8.0, subpixel  # kept there, not presented as an inner 7.6
    # an inner integer peak is still refined
    dy, dx, _, _ = correlate_and_refine(t, sec.values[None, 40:88, 41:89])
    assert dx[0] == pytest.approx(6.6, abs=0.05)


# --- edge peaks: every method -----------------------------------------------------------

BEYOND = dict(patch_size=32, spacing=24, search_radius=8)


def _assert_edge_rule(ds, radius):
    """No finite offset on the border; border peaks flagged (a float 0/1 field or a bool)."""
    assert "peak_at_edge" in ds.data_vars
    at_edge = ds.peak_at_edge.values == 1
    measured = np.isfinite(ds.dx.values) & np.isfinite(ds.dy.values)
    big = np.maximum(np.abs(ds.dx.values), np.abs(ds.dy.values))
    assert not (big[measured] > radius - 0.5).any()
    assert at_edge.sum() >= 0.5 * (at_edge | measured).sum() > 0
    assert np.isnan(ds.dx.values[at_edge]).all() and np.isnan(ds.dy.values[at_edge]).all()
    assert (ds.score.values[at_edge] == 0.0).all()
    assert not ds.valid.values[at_edge].any()
    assert not at_edge[measured].any()


def test_ncc_motion_beyond_the_radius_is_flagged_not_measured():
    ref, sec = shifted_pair((176, 176), shift=(0.0, 12.0), seed=1)
    ds = trackoff_xr.offsets(ref, sec, method="ncc", **BEYOND)
    _assert_edge_rule(ds, BEYOND["search_radius"])
    # within the radius nothing is flagged, and nothing is lost
    kw = dict(patch_size=32, spacing=24, search_radius=16)
    ok = trackoff_xr.offsets(ref, sec, method="ncc", **kw)
    assert not (ok.peak_at_edge.values == 1).any()
    measured = np.isfinite(ok.dx.values)
    assert measured.sum() == GridSpec(**kw).window_fits(176).sum() ** 2
    np.testing.assert_allclose(ok.dx.values[measured], 12.0, atol=0.05)


def test_cnn_motion_beyond_the_radius_is_flagged_not_measured():
    pytest.importorskip("tensorflow")
    ref, sec = shifted_pair((176, 176), shift=(0.0, 12.0), seed=1)
    ds = trackoff_xr.offsets(ref, sec, method="cnn", **BEYOND)
    _assert_edge_rule(ds, BEYOND["search_radius"])


def test_classifier_motion_beyond_the_radius_is_flagged_not_measured():
    pytest.importorskip("tensorflow")
    ref, sec = shifted_pair((100, 100), shift=(0.0, 9.0), seed=0)  # 4 points, one group
    kw = dict(patch_size=32, spacing=24, search_radius=6)
    ds = trackoff_xr.offsets(ref, sec, method="classifier", preset="fast", tiles_per_group=4, **kw)
    _assert_edge_rule(ds, kw["search_radius"])


def test_classifier_edge_is_its_outermost_candidate():
    from trackoff_xr.matchers.classifier import ClassifierMatcher

    # candidates every 4 px within R = 6: -4, 0, 4; the outermost is the edge
    assert ClassifierMatcher(candidate_step=4).search_extent(6) == 4
    assert ClassifierMatcher().search_extent(6) == 6


@pytest.fixture(scope="module")
def cat_pair():
    before, after = shared_file("cat", "CAT1.png"), shared_file("cat", "CAT2.png")
    return trackoff_xr.open_image(before), trackoff_xr.open_image(after)


def test_cat_at_the_default_radius_has_no_valid_point_on_the_window_edge(cat_pair):
    """The cat moved ~38 px left, beyond the default radius of 16, searched without centring.

    (With the default coarse pass the motion is found: tests/test_search.py.)
    """
    pytest.importorskip("tensorflow")
    ref, sec = cat_pair
    ds = trackoff_xr.offsets(ref, sec, coarse=False).compute()  # default method and radius
    radius = ds.attrs["search_radius"]
    assert radius == 16 and ds.attrs["method"] == "cnn"
    dx, dy = ds.dx.values, ds.dy.values
    measured = np.isfinite(dx) & np.isfinite(dy)
    assert not (np.maximum(np.abs(dx), np.abs(dy))[measured] > radius - 0.5).any()
    assert not (ds.valid.values & ~measured).any()
    # the motion beyond the window is reported as such
    assert (ds.peak_at_edge.values == 1).sum() > 50
