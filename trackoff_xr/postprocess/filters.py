"""Lazy filters that reject bad offsets: score, median/MAD consistency, speed, gaps.

Every filter takes the Dataset returned by :func:`trackoff_xr.offsets` and
returns a new one; the input is never changed. Filters are lazy (dask in,
dask out: building the result computes nothing) and composable: each one
narrows ``valid``, sets the rejected points of ``dx``, ``dy`` (and ``vx``,
``vy``, ``v`` where present) to NaN, and appends a short description of what
it did to the ``filters`` attribute (entries separated by ``"; "``).

Neighbourhood filters (:func:`filter_median`, :func:`fill_gaps`) run their
numpy kernel through :func:`dask.array.map_overlap` with a NaN halo, so the
result is the same whatever the chunks of the grid.

>>> import trackoff_xr
>>> from trackoff_xr.testing.synthetic import shifted_pair
>>> ref, sec = shifted_pair((192, 192), shift=(2.0, -3.0), looks=4, seed=0)
>>> ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=16, search_radius=8,
...                          method="ncc")
>>> clean = filter_offsets(ds)
>>> clean.attrs["filters"]
'score >= 0.1; median test: 5x5 window, |offset - median| <= 3 MAD (+0.2 px), >= 3 neighbours'
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, cast

import numpy as np
import xarray as xr

from ..exceptions import InvalidParameterError
from ..schema import attrs_for, check_offsets, measured_variables, reject, valid_mask

__all__ = [
    "DEFAULT_MIN_SCORE",
    "fill_gaps",
    "filter_median",
    "filter_offsets",
    "filter_score",
    "filter_velocity",
    "median_test",
    "interpolate_gaps",
]

#: Default score threshold of :func:`filter_offsets` (see its docstring).
DEFAULT_MIN_SCORE = 0.1


# --------------------------------------------------------------------------
# numpy kernels (no dask, no xarray)
# --------------------------------------------------------------------------


def _neighbours(a: np.ndarray, half: int) -> np.ndarray:
    """Gather the ``(2 half + 1)**2 - 1`` neighbours of every element, NaN beyond the edges.

    Returns an array of shape ``a.shape + (n,)``; the centre is left out.
    """
    w = 2 * half + 1
    padded = np.pad(a.astype(np.float64), half, mode="constant", constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (w, w)).reshape(a.shape + (w * w,))
    return np.delete(windows, (w * w) // 2, axis=-1)


def _nanmedian_last(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median over the last axis ignoring NaN, and the count of finite values.

    Unlike :func:`numpy.nanmedian`, all-NaN rows give NaN without a warning.
    """
    ordered = np.sort(values, axis=-1)  # NaN sort last
    count = np.isfinite(values).sum(axis=-1)
    lo = np.clip((count - 1) // 2, 0, None)[..., None]
    hi = np.clip(count // 2, 0, None)[..., None]
    median = 0.5 * (np.take_along_axis(ordered, lo, -1) + np.take_along_axis(ordered, hi, -1))
    median = median[..., 0]
    median[count == 0] = np.nan
    return median, count


def median_test(
    dx: np.ndarray,
    dy: np.ndarray,
    *,
    window: int = 5,
    threshold: float = 3.0,
    units: str = "mad",
    min_neighbours: int = 3,
    epsilon: float = 0.2,
) -> np.ndarray:
    """Which offsets agree with the median of their neighbours (numpy kernel).

    Parameters
    ----------
    dx, dy : ndarray, 2-D
        Offsets; NaN marks points already rejected (they are not neighbours).
    window : int
        Odd edge of the square neighbourhood, in grid points.
    threshold : float
        Largest accepted departure from the neighbourhood median: in pixels
        (``units="pixel"``, on ``hypot(dx - median_dx, dy - median_dy)``), or in
        units of the neighbourhood's median absolute deviation (``units="mad"``,
        the normalised median test of Westerweel & Scarano (2005):
        ``hypot(|dx - m_x| / (MAD_x + epsilon), |dy - m_y| / (MAD_y + epsilon))``).
    units : {"mad", "pixel"}
        See ``threshold``.
    min_neighbours : int
        Points with fewer finite neighbours are rejected (isolated points
        cannot be checked and are usually noise).
    epsilon : float
        Pixels added to the MAD: the noise level below which disagreement
        is not significant (keeps the test sane where neighbours agree exactly).

    Returns
    -------
    ndarray of bool
        True where the point is finite and passes.

    Examples
    --------
    >>> dx = np.zeros((5, 5)); dx[2, 2] = 9.0
    >>> median_test(dx, np.zeros((5, 5)), window=3, min_neighbours=2)[2]
    array([ True,  True, False,  True,  True])
    """
    half = window // 2
    finite = np.isfinite(dx) & np.isfinite(dy)
    dx = np.where(finite, dx, np.nan)
    dy = np.where(finite, dy, np.nan)
    nx, ny = _neighbours(dx, half), _neighbours(dy, half)
    mx, count = _nanmedian_last(nx)
    my, _ = _nanmedian_last(ny)
    with np.errstate(invalid="ignore"):
        if units == "pixel":
            departure = np.hypot(dx - mx, dy - my)
        else:
            mad_x, _ = _nanmedian_last(np.abs(nx - mx[..., None]))
            mad_y, _ = _nanmedian_last(np.abs(ny - my[..., None]))
            departure = np.hypot((dx - mx) / (mad_x + epsilon), (dy - my) / (mad_y + epsilon))
        passes = departure <= threshold
    return finite & passes & (count >= min_neighbours)


def interpolate_gaps(
    values: np.ndarray, fillable: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fill short gaps linearly along rows and columns (numpy kernel).

    A point is filled when ``fillable`` and it lies inside a run of at most
    ``max_gap`` NaN points bounded by finite values on both sides, along the
    rows, the columns or both (then the two estimates are averaged). Nothing
    is extrapolated.

    Parameters
    ----------
    values : ndarray, shape (k, rows, cols)
        Fields filled together (e.g. ``dx``, ``dy``); a point counts as a
        gap where any field is NaN.
    fillable : ndarray of bool, shape (rows, cols)
        Which gap points may be filled.
    max_gap : int
        Longest run of missing points that is filled.

    Returns
    -------
    filled : ndarray, shape (k, rows, cols)
    was_filled : ndarray of bool, shape (rows, cols)

    Examples
    --------
    >>> v = np.array([[[1.0, np.nan, 3.0, np.nan, np.nan, 6.0]]])
    >>> filled, mask = interpolate_gaps(v, np.ones((1, 6), bool), max_gap=1)
    >>> filled[0, 0].tolist(), mask[0].tolist()
    ([1.0, 2.0, 3.0, nan, nan, 6.0], [False, True, False, False, False, False])
    """
    values = np.asarray(values, dtype=np.float64)
    present = np.isfinite(values).all(axis=0)
    total = np.zeros_like(values)
    weight = np.zeros(present.shape)
    for axis in (0, 1):
        prev_idx, next_idx = _nearest_present(present, axis, max_gap)
        ok = ~present & fillable & (prev_idx >= 0) & (next_idx >= 0)
        ok &= next_idx - prev_idx - 1 <= max_gap
        if not ok.any():
            continue
        pos = np.indices(present.shape)[axis]
        lo = np.where(ok, prev_idx, pos)
        hi = np.where(ok, next_idx, pos)
        frac = np.where(ok, (pos - lo) / np.maximum(hi - lo, 1), 0.0)
        for k in range(values.shape[0]):
            a = np.take_along_axis(values[k], lo, axis)
            b = np.take_along_axis(values[k], hi, axis)
            total[k] += np.where(ok, a + frac * (b - a), 0.0)
        weight += ok
    was_filled = weight > 0
    out = values.copy()
    out[:, was_filled] = total[:, was_filled] / weight[was_filled]
    return out, was_filled


def _nearest_present(present: np.ndarray, axis: int, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest present point before / after each point along ``axis``.

    -1 where there is none within ``max_gap`` steps.
    """
    n = present.shape[axis]
    pos = np.indices(present.shape)[axis]
    prev_idx = np.full(present.shape, -1)
    next_idx = np.full(present.shape, -1)
    for step in range(max_gap, 0, -1):  # nearer steps overwrite farther ones
        for sign, target in ((-1, prev_idx), (1, next_idx)):
            shifted = np.roll(present, -sign * step, axis=axis)
            idx = pos + sign * step
            inside = (idx >= 0) & (idx < n)
            hit = shifted & inside
            target[hit] = idx[hit]
    return prev_idx, next_idx


# --------------------------------------------------------------------------
# dask wiring
# --------------------------------------------------------------------------


def _neighbourhood_map(
    func: Callable[..., np.ndarray], arrays: list[Any], depth: int, dtype: Any
) -> Any:
    """Apply ``func`` to numpy arrays, or lazily through ``map_overlap`` to dask arrays."""
    if not any(_is_dask(a) for a in arrays):
        return func(*[np.asarray(a) for a in arrays])
    import dask.array as da

    arrays = [a if _is_dask(a) else da.from_array(np.asarray(a)) for a in arrays]
    chunks = arrays[0].chunks
    arrays = [a.rechunk(chunks) for a in arrays]
    return da.map_overlap(
        func,
        *arrays,
        depth=depth,
        boundary=np.nan,
        trim=True,
        align_arrays=False,
        dtype=dtype,
        meta=np.empty((0, 0), dtype=dtype),
    )


def _is_dask(a: Any) -> bool:
    return type(a).__module__.startswith("dask")


# --------------------------------------------------------------------------
# xarray front
# --------------------------------------------------------------------------


def _check_dataset(ds: Any, func: str) -> None:
    check_offsets(ds, func)


def _apply(ds: xr.Dataset, keep: xr.DataArray, description: str) -> xr.Dataset:
    """Reject the points outside ``keep`` (:func:`~trackoff_xr.schema.reject`), record it."""
    out = reject(ds, keep)
    out.attrs = _with_filter(ds.attrs, description)
    return out


def _with_filter(attrs: dict[Hashable, Any], description: str) -> dict[Hashable, Any]:
    attrs = dict(attrs)
    previous = attrs.get("filters")
    attrs["filters"] = f"{previous}; {description}" if previous else description
    return attrs


def _positive(name: str, value: Any, *, allow_zero: bool = True) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidParameterError(f"{name}={value!r} is not a number {bound}; pass e.g. {name}=1")
    return number


def filter_score(ds: xr.Dataset, min_score: float = DEFAULT_MIN_SCORE) -> xr.Dataset:
    """Reject points whose match ``score`` is below ``min_score``.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of :func:`trackoff_xr.offsets` (or of another filter).
    min_score : float, default 0.1
        Lowest accepted score, in [0, 1].

    Returns
    -------
    xarray.Dataset
        A new Dataset; lazy when ``ds`` is.

    Examples
    --------
    >>> ds = xr.Dataset({"dx": ("x", [1.0, 2.0]), "dy": ("x", [0.0, 0.0]),
    ...                  "score": ("x", [0.9, 0.1])})
    >>> filter_score(ds, min_score=0.5).valid.values
    array([ True, False])
    """
    _check_dataset(ds, "filter_score")
    if "score" not in ds:
        raise InvalidParameterError(
            "filter_score() needs a 'score' variable and the Dataset has none; "
            "use filter_median() or filter_velocity() instead"
        )
    min_score = _positive("min_score", min_score)
    if min_score > 1:
        raise InvalidParameterError(f"min_score={min_score!r} is above 1; scores lie in [0, 1]")
    return _apply(ds, ds["score"] >= min_score, f"score >= {min_score:g}")


def filter_median(
    ds: xr.Dataset,
    window: int = 5,
    threshold: float = 3.0,
    units: str = "mad",
    min_neighbours: int = 3,
    epsilon: float = 0.2,
) -> xr.Dataset:
    """Reject points whose offset departs from the median of their neighbours.

    The normalised median test (Westerweel & Scarano, 2005): around each
    point, the median ``m`` and median absolute deviation ``MAD`` of the valid
    neighbours' ``dx`` and ``dy`` (the point itself left out); the point passes
    when ``hypot(|dx - m_x| / (MAD_x + epsilon), |dy - m_y| / (MAD_y + epsilon))
    <= threshold`` (``units="mad"``), or ``hypot(dx - m_x, dy - m_y) <= threshold``
    pixels (``units="pixel"``). The MAD version follows real gradients (shear
    margins) and tolerates noisy but unbiased areas; the pixel version is
    simpler to explain. Runs blockwise with a halo of ``window // 2`` points:
    the same mask whatever the chunks.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of :func:`trackoff_xr.offsets` (or of another filter).
    window : int, default 5
        Odd edge of the square neighbourhood, grid points (>= 3).
    threshold : float, default 3.0
        Largest accepted departure, in MADs or pixels (see ``units``).
    units : {"mad", "pixel"}, default "mad"
    min_neighbours : int, default 3
        Points with fewer valid neighbours are rejected.
    epsilon : float, default 0.2
        Pixels added to the MAD (expected noise of a good match).

    Returns
    -------
    xarray.Dataset
        A new Dataset; lazy when ``ds`` is.

    Examples
    --------
    >>> dx = np.zeros((6, 6), np.float32); dx[3, 2] = 12.0
    >>> ds = xr.Dataset({"dx": (("y", "x"), dx), "dy": (("y", "x"), np.zeros_like(dx))})
    >>> out = filter_median(ds, window=3)
    >>> int((~out.valid).sum()), bool(np.isnan(out.dx[3, 2]))
    (1, True)
    """
    _check_dataset(ds, "filter_median")
    if (
        isinstance(window, bool)
        or not isinstance(window, (int, np.integer))
        or window < 3
        or window % 2 == 0
    ):
        raise InvalidParameterError(
            f"window={window!r} is not an odd integer >= 3; pass e.g. window=5"
        )
    if units not in ("mad", "pixel"):
        raise InvalidParameterError(f"units={units!r} is not one of 'mad', 'pixel'")
    threshold = _positive("threshold", threshold, allow_zero=False)
    epsilon = _positive("epsilon", epsilon)
    max_neighbours = window * window - 1
    if (
        isinstance(min_neighbours, bool)
        or not isinstance(min_neighbours, (int, np.integer))
        or not 0 <= min_neighbours <= max_neighbours
    ):
        raise InvalidParameterError(
            f"min_neighbours={min_neighbours!r} is not an integer in [0, {max_neighbours}] "
            f"(a {window}x{window} window has {max_neighbours} neighbours); pass e.g. "
            "min_neighbours=3"
        )
    options = dict(
        window=int(window),
        threshold=threshold,
        units=units,
        min_neighbours=int(min_neighbours),
        epsilon=epsilon,
    )

    def kernel(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        return median_test(dx, dy, **options)  # type: ignore[arg-type]

    valid = valid_mask(ds)
    dx = ds["dx"].where(valid).transpose(*ds["dx"].dims)
    dy = ds["dy"].where(valid).transpose(*dx.dims)
    mask = _neighbourhood_map(kernel, [dx.data, dy.data], window // 2, bool)
    keep = xr.DataArray(mask, dims=dx.dims, coords=dx.coords)
    if units == "mad":
        rule = f"|offset - median| <= {threshold:g} MAD (+{epsilon:g} px)"
    else:
        rule = f"|offset - median| <= {threshold:g} px"
    return _apply(
        ds, keep, f"median test: {window}x{window} window, {rule}, >= {min_neighbours} neighbours"
    )


def filter_velocity(
    ds: xr.Dataset, max_velocity: float | None = None, *, max_offset: float | None = None
) -> xr.Dataset:
    """Reject implausibly fast points: ``v > max_velocity`` or ``hypot(dx, dy) > max_offset``.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of :func:`trackoff_xr.offsets` (or of another filter).
    max_velocity : float, optional
        Fastest accepted speed, in the units of ``ds.v`` (``meter/year``);
        needs a ``v`` variable.
    max_offset : float, optional
        Longest accepted offset vector, pixels; works without velocities.

    Returns
    -------
    xarray.Dataset
        A new Dataset; lazy when ``ds`` is.

    Examples
    --------
    >>> ds = xr.Dataset({"dx": ("x", [1.0, 9.0]), "dy": ("x", [1.0, 9.0])})
    >>> filter_velocity(ds, max_offset=5).dx.values
    array([ 1., nan])
    """
    _check_dataset(ds, "filter_velocity")
    if max_velocity is None and max_offset is None:
        raise InvalidParameterError(
            "filter_velocity() got neither max_velocity nor max_offset; pass at least one, "
            "e.g. max_offset=20 (pixels)"
        )
    keep = xr.ones_like(ds["dx"], dtype=bool)
    parts = []
    if max_velocity is not None:
        max_velocity = _positive("max_velocity", max_velocity)
        if "v" not in ds:
            raise InvalidParameterError(
                f"max_velocity={max_velocity:g} needs a 'v' variable and the Dataset has "
                f"only {sorted(map(str, ds.data_vars))}; pass max_offset (pixels) instead"
            )
        keep = keep & (ds["v"] <= max_velocity)
        parts.append(f"v <= {max_velocity:g} {ds['v'].attrs.get('units', '')}".rstrip())
    if max_offset is not None:
        max_offset = _positive("max_offset", max_offset)
        keep = keep & (np.hypot(ds["dx"], ds["dy"]) <= max_offset)
        parts.append(f"hypot(dx, dy) <= {max_offset:g} px")
    return _apply(ds, keep, " and ".join(parts))


def fill_gaps(ds: xr.Dataset, max_gap: int = 1) -> xr.Dataset:
    """Interpolate short holes left by the filters, flagging them in ``interp_mask``.

    A rejected point is filled by linear interpolation along rows and/or
    columns when it lies inside a run of at most ``max_gap`` missing points
    with valid points on both sides. Only points the matcher measured (finite
    ``score``) are filled: points outside the image or on nodata stay NaN.
    Filled points become ``valid`` and get ``interp_mask = 1`` (uint8, as in
    ITS_LIVE); use ``valid & (interp_mask == 0)`` for measured points only.

    Parameters
    ----------
    ds : xarray.Dataset
        A filtered result.
    max_gap : int, default 1
        Longest run of missing points filled, grid points (>= 1).

    Returns
    -------
    xarray.Dataset
        A new Dataset with ``interp_mask``; lazy when ``ds`` is.

    Examples
    --------
    >>> dx = np.array([[1.0, np.nan, 3.0]], np.float32)
    >>> ds = xr.Dataset({"dx": (("y", "x"), dx), "dy": (("y", "x"), 0 * dx),
    ...                  "score": (("y", "x"), np.ones_like(dx))})
    >>> out = fill_gaps(ds)
    >>> out.dx.values.tolist(), out.interp_mask.values.tolist()
    ([[1.0, 2.0, 3.0]], [[0, 1, 0]])
    """
    _check_dataset(ds, "fill_gaps")
    if isinstance(max_gap, bool) or not isinstance(max_gap, (int, np.integer)) or max_gap < 1:
        raise InvalidParameterError(
            f"max_gap={max_gap!r} is not an integer >= 1; pass e.g. max_gap=1"
        )
    valid = valid_mask(ds)
    dims = ds["dx"].dims
    names = measured_variables(ds)
    fields = [ds[n].where(valid).transpose(*dims).astype(np.float32) for n in names]
    if "score" in ds:
        measured = cast(xr.DataArray, np.isfinite(ds["score"])).transpose(*dims)
    else:
        measured = xr.ones_like(ds["dx"], dtype=bool)
    gap = int(max_gap)

    def fill_one(values: np.ndarray, fillable: np.ndarray) -> np.ndarray:
        return interpolate_gaps(values[None], fillable > 0, gap)[0][0].astype(np.float32)

    def filled_mask(values: np.ndarray, fillable: np.ndarray) -> np.ndarray:
        return interpolate_gaps(values[None], fillable > 0, gap)[1].astype(np.float32)

    fillable = measured.astype(np.float32).data
    results = [_neighbourhood_map(fill_one, [f.data, fillable], gap, np.float32) for f in fields]
    results.append(_neighbourhood_map(filled_mask, [fields[0].data, fillable], gap, np.float32))
    k = len(names)
    out = ds.copy()
    interp = xr.DataArray(results[k], dims=dims, coords=ds["dx"].coords).astype(np.uint8)
    for name, result in zip(names, results[:k], strict=True):
        out[name] = xr.DataArray(
            result, dims=dims, coords=ds[name].coords, attrs=ds[name].attrs
        ).astype(ds[name].dtype)
    out["valid"] = (valid | (interp > 0)).assign_attrs(attrs_for("valid"))
    out["interp_mask"] = interp.assign_attrs(attrs_for("interp_mask"))
    out.attrs = _with_filter(ds.attrs, f"gaps of <= {max_gap} point(s) interpolated")
    return out


def filter_offsets(
    ds: xr.Dataset,
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    window: int = 5,
    threshold: float = 3.0,
    min_neighbours: int = 3,
    epsilon: float = 0.2,
) -> xr.Dataset:
    """Apply the default chain: a score threshold, then the normalised median test.

    ``filter_score(ds, min_score)`` followed by ``filter_median(ds, window,
    threshold, units="mad", min_neighbours, epsilon)``.

    How the defaults were chosen. Measured with NCC on four generated
    speckled glacier pairs (:func:`trackoff_xr.testing.synthetic.sar_pair`, 1024 x
    1024 px, up to 10 px of motion; patch 32 and 64 px, spacing patch/2,
    search radius 16; 2 and 4 looks), with 5 % of the measured points then
    replaced by random offsets 3-20 px away from the measured value (three
    draws each); "good" points are the untouched ones within 1 px of the
    known motion:

    * ``window=5, threshold=3`` MADs, ``epsilon=0.2`` px: 97.7-100 % of the
      corrupted points removed, 99.6-100 % of the good points kept, and
      31-93 % of the matcher's own blunders (> 3 px off) removed too.
      3x3 windows kept more corrupted points next to other outliers;
      ``threshold=4`` let 2-5 % of corrupted points through; ``epsilon=0.1``
      cut up to 5 % of good points in smooth areas where neighbours agree to
      a few hundredths of a pixel; ``epsilon=0.5`` let more outliers through.
    * ``min_score=0.1``: NCC peaks of good matches lie above 0.15 at their
      1st percentile on these pairs, so 0.1 costs nothing (< 0.1 %), while
      0.2 would throw away 10-14 % of the good points at 2 looks or 32 px
      patches. The score is a weak test: the matcher's blunders had a
      *median* score of 0.24-0.27, so it is only a gate against
      featureless and flat templates; the median test does the real work.
    * For ``method="cnn"`` the score is a calibrated probability that the
      offset is within 1 px (:mod:`trackoff_xr.matchers.cnn.calibrate`):
      ``min_score=0.1`` drops points the model finds nine times more likely
      wrong than right; on held-out generated scenes (``fusion=0.7``) it
      dropped 2.3 % of the good points.
    * ``min_neighbours=3``: a point needs a few valid neighbours to be
      checked at all; isolated survivors are dropped.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of :func:`trackoff_xr.offsets`.
    min_score, window, threshold, min_neighbours, epsilon
        See :func:`filter_score` and :func:`filter_median`.

    Returns
    -------
    xarray.Dataset
        A new Dataset; lazy when ``ds`` is.

    Examples
    --------
    >>> dx = np.full((8, 8), 2.0, np.float32); dx[4, 4] = -15.0
    >>> ds = xr.Dataset({"dx": (("y", "x"), dx), "dy": (("y", "x"), 0 * dx),
    ...                  "score": (("y", "x"), np.full_like(dx, 0.8))})
    >>> out = filter_offsets(ds)
    >>> int(out.valid.sum()), out.attrs["filters"].split("; ")[0]
    (63, 'score >= 0.1')
    """
    _check_dataset(ds, "filter_offsets")
    out = filter_score(ds, min_score) if "score" in ds else ds
    return filter_median(
        out,
        window=window,
        threshold=threshold,
        units="mad",
        min_neighbours=min_neighbours,
        epsilon=epsilon,
    )
