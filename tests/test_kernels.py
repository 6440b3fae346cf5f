import warnings

import numpy as np
import pytest

from trackoff_xr.kernels import (
    WindowLattice,
    extract_windows,
    ncc_surfaces,
    refine_peaks,
    refine_translation,
)
from trackoff_xr.matchers import NCCMatcher
from trackoff_xr.testing.synthetic import fractal_texture, shifted_pair


def _pair(shift, size=32, radius=6, seed=0):
    """Template from ref centred in a window of sec, with content moved by shift."""
    ref, sec = shifted_pair((128, 128), shift=shift, seed=seed)
    c = 64 - size // 2
    t = ref.values[None, c : c + size, c : c + size]
    w = sec.values[None, c - radius : c + size + radius, c - radius : c + size + radius]
    return t, w


def test_extract_windows_matches_slicing():
    img = np.arange(400.0).reshape(20, 20)
    w = extract_windows(img, (1, 2), (3, 2), 5, 4)
    assert w.shape == (6, 4, 4)
    assert np.array_equal(w[3], img[6:10, 7:11])  # lattice row 1, column 1


@pytest.mark.parametrize("shift", [(3.0, -2.0), (-5.0, 4.0), (0.0, 6.0)])
def test_ncc_peak_sign_and_axes(shift):
    t, w = _pair(shift)
    s = ncc_surfaces(t, w)
    r, c = np.unravel_index(np.nanargmax(s[0]), s[0].shape)
    assert (r - 6, c - 6) == shift
    assert s[0, r, c] > 0.99


def test_flat_and_nan_templates_give_nan_offsets_and_zero_score_without_warnings():
    rng = np.random.default_rng(0)
    windows = rng.random((3, 24, 24), dtype=np.float32)
    templates = windows[:, 4:20, 4:20].copy()
    templates[0] = 7.0  # constant
    templates[1, 3, 3] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = NCCMatcher()(templates, windows)
    assert np.isnan(result.dy[:2]).all() and np.isnan(result.dx[:2]).all()
    assert np.array_equal(result.score[:2], [0.0, 0.0])
    assert abs(result.dy[2]) < 5e-3 and abs(result.dx[2]) < 5e-3
    assert result.score[2] == pytest.approx(1.0)


@pytest.mark.parametrize("subpixel", ["gauss-newton", "gaussian", "none"])
def test_constant_window_gives_nan_and_zero_score(subpixel):
    windows = np.full((1, 24, 24), 3.0, dtype=np.float32)
    templates = np.random.default_rng(1).random((1, 16, 16), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = NCCMatcher(subpixel=subpixel)(templates, windows)
    assert np.isnan(result.dy[0]) and np.isnan(result.dx[0]) and result.score[0] == 0.0


@pytest.mark.parametrize("method", ["gaussian", "parabolic"])
def test_three_point_fit_finds_analytic_peak(method):
    yy, xx = np.mgrid[-4:5, -4:5]
    surface = np.exp(-((yy - 0.3) ** 2 + (xx + 1.2) ** 2) / 2.0)[None]
    dy, dx, peak = refine_peaks(surface, method)
    tol = 1e-6 if method == "gaussian" else 0.1
    assert dy[0] == pytest.approx(0.3, abs=tol) and dx[0] == pytest.approx(-1.2, abs=tol)


def test_all_nan_surface():
    dy, dx, peak = refine_peaks(np.full((1, 5, 5), np.nan), "gaussian")
    assert np.isnan(dy[0]) and np.isnan(dx[0]) and np.isnan(peak[0])


@pytest.mark.parametrize("interpolation, tolerance", [("cubic", 5e-3), ("lanczos", 0.03)])
def test_gauss_newton_converges_to_whole_pixel_shifts(interpolation, tolerance):
    # white-ish texture (smallest scale 1.5 px): the hardest case to interpolate
    tex = fractal_texture((96, 96), seed=3).astype(np.float32)
    t = tex[None, 30:62, 30:62]
    w = np.roll(tex, (2, -3), axis=(0, 1))[None, 24:68, 24:68]  # radius 6
    # the solver's own convergence, iterated to a tight tolerance
    kw = dict(interpolation=interpolation, iterations=8, tolerance=0.01)
    dy, dx, zncc = refine_translation(t, w, np.array([2.0]), np.array([-3.0]), **kw)
    assert dy[0] == pytest.approx(2.0, abs=1e-6) and dx[0] == pytest.approx(-3.0, abs=1e-6)
    assert zncc[0] == pytest.approx(1.0, abs=1e-5)
    dy, dx, zncc = refine_translation(t, w, np.array([2.3]), np.array([-3.4]), **kw)
    assert dy[0] == pytest.approx(2.0, abs=tolerance) and dx[0] == pytest.approx(
        -3.0, abs=tolerance
    )


@pytest.mark.parametrize("shift", [(0.25, -0.4), (-1.6, 2.45), (3.5, 0.1)])
def test_ncc_matcher_recovers_subpixel_shift(shift):
    t, w = _pair(shift)
    result = NCCMatcher()(t, w)
    assert result.dy[0] == pytest.approx(shift[0], abs=0.05)
    assert result.dx[0] == pytest.approx(shift[1], abs=0.05)
    assert 0.99 < result.score[0] <= 1.0


def test_unknown_subpixel_method():
    from trackoff_xr import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="subpixel='cubic'.*gauss-newton"):
        NCCMatcher(subpixel="cubic")


def _nan_bordered(seed=0):
    rng = np.random.default_rng(seed)
    img = fractal_texture((300, 300), seed=seed).astype(np.float32)
    sec = np.roll(img, (2, -3), axis=(0, 1)) + 0.05 * rng.random((300, 300), dtype=np.float32)
    img[:40], sec[:, :30] = np.nan, np.nan  # as a block on the image's top-left corner
    img[150:230, 150:230] = 3.0  # a flat patch: featureless templates
    return img, sec


def test_window_lattice_reads_in_place_and_matches_extract_windows():
    img, _ = _nan_bordered()
    lat = WindowLattice(img, (8, 4), (6, 7), 32, 64)
    copied = extract_windows(img, (8, 4), (6, 7), 32, 64)
    assert lat.shape == copied.shape and len(lat) == 42
    assert np.shares_memory(lat[5], img)
    np.testing.assert_array_equal(np.asarray(lat), copied)
    subset = lat[np.arange(42) % 3 == 0]
    np.testing.assert_array_equal(np.asarray(subset), copied[::3])
    np.testing.assert_array_equal(subset[2], copied[6])


def test_window_lattice_stats_match_numpy_on_subsets_of_an_image_with_nan():
    img, _ = _nan_bordered()
    lat = WindowLattice(img, (8, 4), (6, 7), 32, 64)
    copied = extract_windows(img, (8, 4), (6, 7), 32, 64).astype(np.float64)
    finite = np.isfinite(copied).all(axis=(1, 2))
    assert 0 < finite.sum() < 42
    np.testing.assert_array_equal(lat.finite(), finite)
    for subset in (np.arange(42), np.flatnonzero(finite)):  # an all-finite subset too
        mean, std, ok = lat[subset].stats()
        np.testing.assert_array_equal(ok, finite[subset])
        good = finite[subset]
        np.testing.assert_allclose(mean[good], copied[subset][good].mean(axis=(1, 2)), rtol=1e-9)
        np.testing.assert_allclose(
            std[good], copied[subset][good].std(axis=(1, 2)), rtol=1e-6, atol=1e-9
        )


@pytest.mark.parametrize("subpixel", ["gauss-newton", "gaussian"])
def test_lattices_give_the_same_matches_as_copied_arrays(subpixel):
    ref, sec = _nan_bordered()
    kw = dict(first=(20, 20), count=(7, 7), step=32)
    templates = WindowLattice(ref, (kw["first"][0] + 6, kw["first"][1] + 6), kw["count"], 32, 24)
    windows = WindowLattice(sec, kw["first"], kw["count"], 32, 36)
    s_lat = ncc_surfaces(templates, windows)
    s_arr = ncc_surfaces(np.asarray(templates), np.asarray(windows))
    np.testing.assert_array_equal(np.isnan(s_lat), np.isnan(s_arr))
    assert 0 < np.isnan(s_lat).all(axis=(1, 2)).sum() < len(templates)  # NaN and flat cases
    np.testing.assert_allclose(s_lat, s_arr, atol=1e-6)
    matcher = NCCMatcher(subpixel=subpixel)
    lat, arr = matcher(templates, windows), matcher(np.asarray(templates), np.asarray(windows))
    for a, b in zip(lat, arr, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # and they are right where the texture is not flat or half-flat
    close = (np.abs(arr.dy - 2.0) < 0.1) & (np.abs(arr.dx + 3.0) < 0.1)
    assert close.sum() >= 0.75 * np.isfinite(arr.dy).sum() > 15


def test_opencv_threads_is_restored_and_reference_counted():
    import cv2

    from trackoff_xr.kernels import opencv_threads

    before = cv2.getNumThreads()
    with opencv_threads(1):
        with opencv_threads(1):
            assert cv2.getNumThreads() == 1
        assert cv2.getNumThreads() == 1  # the outer user still runs
    assert cv2.getNumThreads() == before


def _exact_zncc(templates, windows):
    """ZNCC surfaces in float64, straight from the definition."""
    t = np.asarray(templates, dtype=np.float64)
    w = np.asarray(windows, dtype=np.float64)
    p = t.shape[1]
    t = t - t.mean(axis=(1, 2), keepdims=True)
    patches = np.lib.stride_tricks.sliding_window_view(w, (p, p), axis=(1, 2))
    patches = patches - patches.mean(axis=(3, 4), keepdims=True)
    num = np.einsum("nij,nabij->nab", t, patches)
    den = np.sqrt(np.einsum("nij,nij->n", t, t)[:, None, None] * (patches**2).sum(axis=(3, 4)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


@pytest.mark.parametrize("offset", [0.0, 50.0])
@pytest.mark.parametrize("patch, step, radius", [(64, 32, 16), (48, 16, 5), (40, 20, 0)])
def test_dense_grids_share_tiles_and_give_exact_zncc(patch, step, radius, offset):
    from trackoff_xr.kernels.ncc_tiled import shares_tiles

    ref, sec = _nan_bordered(seed=4)
    # offset 50: a large mean and a gain, where sums of raw values would cancel
    ref, sec = offset + ref, offset + (0.8 if offset else 1.0) * sec
    first, count = (10, 12), ((300 - 24 - patch - 2 * radius) // step, 6)
    t_first = (first[0] + radius, first[1] + radius)
    templates = WindowLattice(ref, t_first, count, step, patch)
    windows = WindowLattice(sec, first, count, step, patch + 2 * radius)
    keep = np.arange(len(templates)) % 5 != 1  # a subset, as the engine passes
    assert shares_tiles(templates[keep], windows[keep])
    tiled = ncc_surfaces(templates[keep], windows[keep])
    direct = ncc_surfaces(np.asarray(templates[keep]), np.asarray(windows[keep]))
    np.testing.assert_array_equal(np.isnan(tiled), np.isnan(direct))
    assert np.isnan(tiled).all(axis=(1, 2)).any() and np.isfinite(tiled).all(axis=(1, 2)).any()
    ok = np.isfinite(tiled).all(axis=(1, 2))
    exact = _exact_zncc(templates[keep][ok], windows[keep][ok])
    np.testing.assert_allclose(tiled[ok], exact, atol=2e-5)
    if offset == 0.0:  # OpenCV's per-window sums lose ~4e-3 at offset 50
        np.testing.assert_allclose(tiled, direct, atol=2e-5)
    assert not shares_tiles(np.asarray(templates), np.asarray(windows))
    assert not shares_tiles(templates[keep], windows[~keep])


@pytest.mark.parametrize("offset", [0.0, 50.0])
@pytest.mark.parametrize("patch, step, radius", [(64, 32, 6), (48, 16, 5)])
def test_shifted_dense_grids_share_tiles_and_give_exact_zncc(patch, step, radius, offset):
    """Searches centred on per-point shifts (a coarse pass) take the tiled path too."""
    from trackoff_xr.kernels.ncc_tiled import shares_tiles

    ref, sec = _nan_bordered(seed=5)
    ref, sec = offset + ref, offset + (0.8 if offset else 1.0) * sec
    reach = 4
    first = (10 + reach, 12 + reach)
    count = ((300 - 2 * first[0] - patch - 2 * radius) // step, 6)
    t_first = (first[0] + radius, first[1] + radius)
    rng = np.random.default_rng(0)
    n = count[0] * count[1]
    # a few distinct centres, in patches of neighbours, as a coarse pass gives
    shifts = rng.integers(-reach, reach + 1, size=(3, 2))[rng.integers(0, 3, size=n)]
    shifts[: n // 3] = (2, -3)
    templates = WindowLattice(ref, t_first, count, step, patch)
    windows = WindowLattice(sec, first, count, step, patch + 2 * radius, shifts=shifts)
    keep = np.arange(n) % 5 != 1
    assert shares_tiles(templates[keep], windows[keep])
    tiled = ncc_surfaces(templates[keep], windows[keep])
    direct = ncc_surfaces(np.asarray(templates[keep]), np.asarray(windows[keep]))
    np.testing.assert_array_equal(np.isnan(tiled), np.isnan(direct))
    ok = np.isfinite(tiled).all(axis=(1, 2))
    assert ok.sum() > 10
    exact = _exact_zncc(templates[keep][ok], windows[keep][ok])
    np.testing.assert_allclose(tiled[ok], exact, atol=2e-5)
    # each point's surface is a function of its own template and window:
    # the same bits when it is computed alone
    for k in np.flatnonzero(keep)[:: max(1, n // 7)]:
        alone = ncc_surfaces(templates[[k]], windows[[k]])
        position = int(np.searchsorted(np.flatnonzero(keep), k))
        np.testing.assert_array_equal(alone[0], tiled[position])
