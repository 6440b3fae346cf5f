"""ZNCC surfaces of a dense grid, sharing the work between overlapping templates.

When the template size ``P`` is a multiple ``q >= 2`` of the grid spacing
``S`` (the usual dense grid: ``P = 64``, ``S = 32``), every template is made
of ``q * q`` tiles of ``S x S`` pixels, and each tile belongs to ``q * q``
templates. The ZNCC numerator of template ``k`` at lag ``d`` splits over its
tiles::

    sum_{p in k} (t(p) - m_k) s(p + d) = sum_{tiles Q of k} [C_Q(d) + (c_Q - m_k) S_Q(d)]

with ``c_Q`` the mean of tile ``Q``, ``C_Q(d) = sum_{p in Q} (t(p) - c_Q)
(s(p + d) - c'_Q)`` for any constant ``c'_Q`` (one OpenCV ``TM_CCORR`` call
per tile, shared by its ``q * q`` templates) and ``S_Q(d)`` the sum of ``s``
over the tile at lag ``d``. (``c_Q`` is the tile's mean rounded to float32,
the value it is centred on; ``c'_Q`` times the sum of the centred tile, which
that rounding leaves nonzero, is added back.) The denominator needs the
template variance and, at every lag, the variance of the window patch.

Box sums of the secondary come from float64 integral images of the block,
as in OpenCV's own ``TM_CCOEFF_NORMED``, wherever those still hold the digits
a window needs: a cumulative sum that has passed one extreme pixel (1e10 among
values of 1..255: its square swamps everything after it) cannot give back the
sums of the windows beyond it. A point whose window's sum of squares is
smaller than ``1 / _TRUST`` of the integral at its corner takes its box sums
from integral images of each of its tiles' own search regions instead (the
pixels its correlations read). The template's statistics come from per-tile
sums of the tiles minus their means, never from block-wide sums. So every term
of a point is, to float64 rounding, a function of the pixels of its own
template and window, and
one extreme pixel changes only the points whose template or window holds it
(tested, to the bit, as is the result across chunkings). Correlating centred
tiles keeps the float32 sums from cancelling on bright, low-contrast images:
there one ``matchTemplate`` per window loses ~4e-3 and this stays within 2e-6
of the exact ZNCC (tested). Featureless patches are judged relative to their
own magnitude (:func:`featureless`), so results do not depend on the images'
scale either (tested from 1e-8 to 1e8).

Searches centred point by point (a coarse pass or a prior moves each window
by a whole-pixel centre) share tiles too: a tile is keyed by its cell *and*
its centre, so the templates holding the cell that search around the same
centre share one correlation, and a point's numbers still depend only on its
own template and window (the same bits alone or in any batch; tested).

Measured for 1024 points of a 1120 px block (P = 64, S = 32, R = 16), one
thread: about 48 µs per point against 88 µs for one ``matchTemplate`` per
point. Centred on a prior (R = 6, 4096² real-texture pair, 2 threads, two
interleaved runs in fresh processes), the fine pass took 1.65-1.72 s through
this path against 2.40-2.60 s when each shifted window went through its own
``matchTemplate``.
"""

from __future__ import annotations

import numpy as np

from .scratch import scratch
from .threads import opencv_threads
from .windows import WindowLattice

__all__ = ["FLAT_RTOL", "featureless", "flat_range", "shares_tiles", "tiled_surfaces"]

_BATCH = 64
_TILE_BATCH = 64

#: a patch whose standard deviation is at most this fraction of its root
#: mean square (its own magnitude: no absolute threshold) is featureless
FLAT_RTOL = 1e-6


def featureless(variance: np.ndarray, mean_square: np.ndarray) -> np.ndarray:
    """Flag patches whose spread is not measurably above zero, relative to their magnitude.

    ``std <= FLAT_RTOL * rms``: the same patches at any scale of the image, and
    an all-zero patch is featureless. ``variance`` and ``mean_square`` may both
    be scaled by the patch area.

    Examples
    --------
    >>> featureless(np.array([0.0, 1e-30, 1e-30]), np.array([0.0, 1e-24, 1.0]))
    array([ True, False,  True])
    """
    return ~(variance > FLAT_RTOL**2 * mean_square)


def flat_range(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Flag patches whose range is not measurably above zero, relative to their magnitude.

    The test of :func:`featureless` on a patch's minimum and maximum instead
    of its moments: ``high - low <= FLAT_RTOL * max(|high|, |low|)``, so also
    independent of the image's scale, and an all-zero patch is flat. NaN or
    inf ranges are flagged too.

    Examples
    --------
    >>> flat_range(np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.0, 1.0, 2.0, np.nan]))
    array([ True,  True, False,  True])
    """
    spread = high - low
    return ~(spread > FLAT_RTOL * np.maximum(abs(high), abs(low))) | ~np.isfinite(spread)


def correlation_extent(step: int, extent: int) -> int:
    """Return the side to which a tile's ``extent``-pixel search region is zero-padded.

    OpenCV correlates by DFT at its own "optimal" size for the region, and
    those sizes are not equally fast: a power of two is. Measured, one thread,
    one ``TM_CCORR`` of a ``step``-pixel tile (µs): 32 in 44 (the default fine
    search, ``R = 6``) 28.6, padded to 64 17.5; 32 in 48: 22.3, padded 17.5;
    16 in 28: 14.6, padded to 32 6.5; 16 in 48 (the coarse pass): 14.7, padded
    16.6 (the one loss, on the few coarse tiles). So a region is padded to the
    next power of two when that is at most 1.5 times its side. The larger DFT
    rounds a little more: ~2.5e-8 of the correlation's scale against ~4e-9 for
    32 in 44 (measured), far inside the 2e-6 the tiled ZNCC is tested to.

    Examples
    --------
    >>> correlation_extent(32, 44), correlation_extent(16, 28), correlation_extent(16, 76)
    (64, 32, 76)
    >>> correlation_extent(32, 64)
    64
    """
    power = 1 << int(extent - 1).bit_length()
    return power if power <= 1.5 * extent else extent


def shares_tiles(templates: object, windows: object) -> bool:
    """Whether the templates of a lattice pair overlap in whole tiles.

    True for two :class:`WindowLattice` batches of the same points, templates
    of ``P = q * S`` pixels (``q >= 2``) every ``S`` pixels on a 2-D image,
    and windows ``R`` pixels larger on each side. The windows may be shifted
    point by point (searches centred on a coarse pass or a prior): a tile is
    then shared by the templates that hold it *and* search around the same
    centre.
    """
    if not (isinstance(templates, WindowLattice) and isinstance(windows, WindowLattice)):
        return False
    step, patch = templates.step, templates.size
    radius, odd = divmod(windows.size - patch, 2)
    return (
        templates.regular
        and templates.image.ndim == 2
        and windows.image.ndim == 2
        and windows.step == step
        and patch % step == 0
        and patch // step >= 2
        and not odd
        and radius >= 0
        and templates.count == windows.count
        and windows.first == (templates.first[0] - radius, templates.first[1] - radius)
        and np.array_equal(templates.items, windows.items)
    )


def tiled_surfaces(
    templates: WindowLattice, windows: WindowLattice, todo: np.ndarray
) -> np.ndarray:
    """ZNCC surfaces of the items ``todo`` of a pair for which :func:`shares_tiles` holds.

    Parameters
    ----------
    templates, windows : WindowLattice
        Templates and search windows of the same points.
    todo : ndarray of int
        Positions (in the lattices) to compute; their templates and windows
        must be finite.

    Returns
    -------
    ndarray, shape (len(todo), 2R + 1, 2R + 1), float32
        As :func:`~trackoff_xr.kernels.ncc_surfaces`, unclipped: all NaN
        for a featureless template or window (every patch of it featureless).
    """
    lags = windows.size - templates.size + 1
    out = np.empty((todo.size, lags, lags), dtype=np.float32)
    if todo.size == 0:
        return out
    tiles = _Tiles(templates, windows, todo)
    sums, squares = _integrals(tiles.sec, "tiled.sec")
    trusted = _trusted(tiles, squares)
    for subset, local in ((np.flatnonzero(trusted), False), (np.flatnonzero(~trusted), True)):
        if subset.size:
            out[subset] = _surfaces(tiles, subset, sums, squares, local)
    return out


class _Tiles:
    """The tiles a batch of points needs, with what every template takes from each.

    A *tile key* is a ``step`` x ``step`` cell of the reference on the grid
    anchored at the first template, together with the whole-pixel centre
    ``(sy, sx)`` its searches are shifted by (zero on a regular lattice): the
    templates that hold the cell and share that centre share the key. Per
    key: ``mean``, the float32 mean ``c`` of the reference cell it is centred
    on; ``u`` and ``v``, the sums of the centred cell and of its squares
    (template statistics without cancelling raw squares); ``corr``, the
    correlation ``C(d)`` of the centred cell with its (shifted) search region
    minus that region's central cell mean ``o``; ``shift = o * u``.
    ``point_keys[a * q + b, k]`` is the key of tile ``(a, b)`` of point
    ``k``. Everything is a function of the key's own pixels (chunk
    invariance; the same bits whichever other points share the batch).
    """

    def __init__(self, templates: WindowLattice, windows: WindowLattice, todo: np.ndarray) -> None:
        step, patch = templates.step, templates.size
        self.step, self.q = step, patch // step
        self.radius = (windows.size - patch) // 2
        self.window = windows.size
        self.first = templates.first
        items = templates.items[todo]
        self.pi, self.pj = np.divmod(items, templates.count[1])
        q = self.q
        if windows.shifts is None:
            centres = np.zeros((items.size, 2), dtype=np.intp)
        else:
            centres = windows.shifts[items]
        self.centres = centres
        cells_y, cells_x = templates.count[0] + q - 1, templates.count[1] + q - 1
        span = 2 * int(np.abs(centres).max(initial=0)) + 1
        codes = np.empty((q * q, items.size), dtype=np.int64)
        for a in range(q):
            for b in range(q):
                cell = (self.pi + a) * cells_x + (self.pj + b)
                codes[a * q + b] = (cell * span + centres[:, 0] + span // 2) * span + (
                    centres[:, 1] + span // 2
                )
        unique, inverse = np.unique(codes, return_inverse=True)
        self.point_keys = inverse.reshape(codes.shape)
        cell, rest = np.divmod(unique, span * span)
        self.ty, self.tx = np.divmod(cell, cells_x)
        self.sy, self.sx = (v - span // 2 for v in np.divmod(rest, span))
        ref, sec = templates.image, windows.image
        if not windows.image_is_finite():
            sec = np.where(np.isfinite(sec), sec, np.float32(0))
        self.sec = sec
        ty0, tx0 = self.first
        rows, cols = cells_y * step, cells_x * step
        region = ref[ty0 : ty0 + rows, tx0 : tx0 + cols]
        if not templates.image_is_finite():
            region = np.where(np.isfinite(region), region, np.float32(0))
        self.centred = self._centre(region, (cells_y, cells_x))
        self.offset = np.empty(self.ty.size, dtype=np.float64)
        self.corr = self._correlate()
        self.shift = self.offset * self.u

    def _centre(self, region: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Centre every reference cell on its float32 mean; keep the sums of what remains."""
        step = self.step
        mean = _tile_means(region, step, shape).astype(np.float32)
        centred = scratch("tiled.centred", region.shape, np.float32)
        blocks = (shape[0], step, shape[1], step)
        np.subtract(region.reshape(blocks), mean[:, None, :, None], out=centred.reshape(blocks))
        cells = centred.reshape(blocks)
        self.mean = mean[self.ty, self.tx].astype(np.float64)
        self.u = cells.sum(axis=(1, 3), dtype=np.float64)[self.ty, self.tx]
        squares = np.square(cells, dtype=np.float64, out=scratch("tiled.centred_sq", blocks))
        self.v = squares.sum(axis=(1, 3))[self.ty, self.tx]
        return centred

    def search_corners(self) -> tuple[np.ndarray, np.ndarray]:
        """Block rows and columns where the search regions of all tile keys start."""
        return (
            self.first[0] + self.ty * self.step + self.sy - self.radius,
            self.first[1] + self.tx * self.step + self.sx - self.radius,
        )

    def _correlate(self) -> np.ndarray:
        """``C(d)`` of every tile key: one OpenCV ``TM_CCORR`` each (fills ``offset``).

        The search regions of ``_TILE_BATCH`` keys are gathered and centred in
        one step, so the loop over keys makes one OpenCV call each and holds
        the GIL for little more than that (dask's threads run these loops side
        by side). Each region is zero-padded to :func:`correlation_extent`
        pixels, the size OpenCV correlates fastest: the lags kept read only
        the region's own pixels, so every key's numbers still depend on its
        pixels alone.
        """
        import cv2

        step, radius = self.step, self.radius
        lags, extent = 2 * radius + 1, step + 2 * radius
        padded = correlation_extent(step, extent)
        corr = scratch("tiled.corr", (self.ty.size, lags, lags), np.float32)
        cells_y = self.centred.shape[0] // step
        # every reference cell as one contiguous step x step array
        cells = self.centred.reshape(cells_y, step, -1, step).transpose(0, 2, 1, 3)
        tiles = np.ascontiguousarray(cells).reshape(-1, step, step)
        cell_ids = (self.ty * cells.shape[1] + self.tx).tolist()
        regions_of = np.lib.stride_tricks.sliding_window_view(self.sec, (extent, extent))
        rows, cols = self.search_corners()
        core = (slice(None), slice(radius, radius + step), slice(radius, radius + step))
        search = scratch("tiled.search", (_TILE_BATCH, padded, padded), np.float32)
        results = corr
        if padded > extent:  # only the region's own pixels are written below
            search[...] = 0.0
            full = padded - step + 1
            results = scratch("tiled.padded_corr", (_TILE_BATCH, full, full), np.float32)
        with opencv_threads(1):
            for lo in range(0, self.ty.size, _TILE_BATCH):
                hi = min(lo + _TILE_BATCH, self.ty.size)
                regions = regions_of[rows[lo:hi], cols[lo:hi]]  # a copy
                # the secondary cell under each tile at its search centre, summed
                # in float64 and rounded to the float32 value its region is
                # centred on
                offset = regions[core].mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
                self.offset[lo:hi] = offset
                np.subtract(regions, offset[:, None, None], out=search[: hi - lo, :extent, :extent])
                out = corr[lo:hi] if results is corr else results
                for region, cell, result in zip(search, cell_ids[lo:hi], out, strict=False):
                    cv2.matchTemplate(region, tiles[cell], cv2.TM_CCORR, result=result)
                if results is not corr:
                    corr[lo:hi] = results[: hi - lo, :lags, :lags]
        return corr

    def window_corners(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Block row and column of the search windows of the points ``items``."""
        step, radius = self.step, self.radius
        return (
            self.first[0] + self.pi[items] * step + self.centres[items, 0] - radius,
            self.first[1] + self.pj[items] * step + self.centres[items, 1] - radius,
        )


def _tile_means(image: np.ndarray, step: int, shape: tuple[int, int]) -> np.ndarray:
    """Float64 mean of every ``step`` x ``step`` cell of ``image`` (of ``shape`` cells)."""
    blocks = image.reshape(shape[0], step, shape[1], step)
    return blocks.mean(axis=(1, 3), dtype=np.float64)


#: a window is read from the block's integral images when the integral there is
#: at most this many times the window's own sum of squares; otherwise (one
#: extreme pixel earlier in the block, or an all-zero window) the float64
#: cumulative sums have lost the digits it needs, and its sums are taken from
#: integral images of each tile's own search region instead
_TRUST = 1e6


def _trusted(tiles: _Tiles, squares: np.ndarray) -> np.ndarray:
    """Points whose window sums the block's integral image still holds to ~1e-9."""
    wy, wx = tiles.window_corners(np.arange(tiles.pi.size))
    wy1, wx1 = wy + tiles.window, wx + tiles.window
    own = squares[wy1, wx1] - squares[wy, wx1] - squares[wy1, wx] + squares[wy, wx]
    return squares[wy1, wx1] <= _TRUST * own


def _surfaces(
    tiles: _Tiles, items: np.ndarray, sums: np.ndarray, squares: np.ndarray, local: bool
) -> np.ndarray:
    """Surfaces of the points ``items``, their box sums from the block or from each tile."""
    step, q, radius = tiles.step, tiles.q, tiles.radius
    lags, patch = 2 * radius + 1, q * step
    area = float(patch * patch)
    if local:
        box_sum, box_sq = _local_box_sums(tiles, items)
        lag_sum = box_sum
    else:
        # every lag of every box, as views of the integral images (made once:
        # a sliding-window view costs tens of microseconds under the GIL)
        sums = np.lib.stride_tricks.sliding_window_view(sums, (lags, lags))
        squares = np.lib.stride_tricks.sliding_window_view(squares, (lags, lags))
        ty0, tx0 = tiles.first
        lag_sum = _lag_box_sums(
            sums,
            ty0 + tiles.ty * step + tiles.sy - radius,
            tx0 + tiles.tx * step + tiles.sx - radius,
            step,
            lags,
            "tiled.lag_sum",
        )
    # D(d) = C(d) + o u + c S(d) per tile: a template's numerator is the sum
    # of D over its tiles, minus its mean times its patch sum at d
    tiles_d = np.multiply(lag_sum, tiles.mean[:, None, None], out=scratch("tiled.d", lag_sum.shape))
    tiles_d += tiles.corr
    tiles_d += tiles.shift[:, None, None]

    out = np.empty((items.size, lags, lags), dtype=np.float32)
    batch = min(_BATCH, items.size)
    for lo in range(0, items.size, batch):
        part = items[lo : lo + batch]
        keys = [tiles.point_keys[k, part] for k in range(q * q)]
        num = _tile_sum(tiles_d, keys, "tiled.numerator")
        if local:
            s_sum = _tile_sum(box_sum, keys, "tiled.s_sum")
            sq_sum = _tile_sum(box_sq, keys, "tiled.sq_sum")
        else:
            wy, wx = tiles.window_corners(part)
            s_sum = _lag_box_sums(sums, wy, wx, patch, lags, "tiled.patch_box")
            sq_sum = _lag_box_sums(squares, wy, wx, patch, lags, "tiled.patch_sq")
        out[lo : lo + part.size] = _zncc(tiles, keys, num, s_sum, sq_sum, area)
    return out


def _tile_sum(terms: np.ndarray, keys: list[np.ndarray], name: str) -> np.ndarray:
    """Sum ``terms`` over the tiles ``keys`` of each template (in a fixed order)."""
    total = scratch(name, (keys[0].size, *terms.shape[1:]))
    term = scratch(name + ".term", total.shape)
    np.take(terms, keys[0], axis=0, out=total)
    for k in keys[1:]:
        np.take(terms, k, axis=0, out=term)
        total += term
    return total


def _zncc(
    tiles: _Tiles,
    keys: list[np.ndarray],
    num: np.ndarray,
    s_sum: np.ndarray,
    sq_sum: np.ndarray,
    area: float,
) -> np.ndarray:
    """ZNCC from the numerator and the window patches' box sums at every lag."""
    tile_area = float(tiles.step**2)
    t_mean = sum(tile_area * tiles.mean[k] + tiles.u[k] for k in keys) / area
    # sum over the template of (t - mean)^2, from its tiles' centred sums
    t_var = sum(
        tiles.v[k] + 2.0 * (tiles.mean[k] - t_mean) * tiles.u[k]
        + tile_area * (tiles.mean[k] - t_mean) ** 2
        for k in keys
    )  # fmt: skip
    num -= s_sum * t_mean[:, None, None]
    # variance (times the area) of the window patch at every lag
    w_var = s_sum * s_sum
    w_var *= -1.0 / area
    w_var += sq_sum
    flat = featureless(w_var, sq_sum)
    blank = featureless(t_var, t_var + area * t_mean**2) | flat.all(axis=(1, 2))
    np.maximum(w_var, 0.0, out=w_var)
    w_var *= t_var[:, None, None]
    np.sqrt(w_var, out=w_var)
    with np.errstate(divide="ignore", invalid="ignore"):  # featureless: set below
        num /= w_var
    # a featureless window patch scores 0, as in OpenCV
    num[flat] = 0.0
    num[blank] = np.nan
    return num


def _local_box_sums(tiles: _Tiles, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box sums ``S(d)`` and of squares at every lag of every tile, from its own region.

    Each tile's sums come from a float64 integral image of its search region
    alone (the pixels its correlation reads), so no pixel outside the windows
    that hold the tile can cancel them. Tiles no point of ``items`` uses are
    left as NaN.
    """
    import cv2

    step, radius = tiles.step, tiles.radius
    lags, extent = 2 * radius + 1, step + 2 * radius
    used = np.zeros(tiles.ty.size, dtype=bool)
    used[tiles.point_keys[:, items].ravel()] = True
    box_sum = np.full((tiles.ty.size, lags, lags), np.nan)
    box_sq = np.full((tiles.ty.size, lags, lags), np.nan)
    sums = scratch("tiled.local_sums", (_TILE_BATCH, extent + 1, extent + 1))
    squares = scratch("tiled.local_squares", (_TILE_BATCH, extent + 1, extent + 1))
    todo = np.flatnonzero(used)
    rows, cols = tiles.search_corners()
    with opencv_threads(1):
        for lo in range(0, todo.size, _TILE_BATCH):
            part = todo[lo : lo + _TILE_BATCH]
            for j, (y, x) in enumerate(zip(rows[part].tolist(), cols[part].tolist(), strict=True)):
                region = tiles.sec[y : y + extent, x : x + extent]
                cv2.integral2(
                    region, sum=sums[j], sqsum=squares[j], sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F
                )
            box_sum[part] = _stacked_box_sums(sums[: part.size], step, lags)
            box_sq[part] = _stacked_box_sums(squares[: part.size], step, lags)
    return box_sum, box_sq


def _stacked_box_sums(integral: np.ndarray, size: int, lags: int) -> np.ndarray:
    """Sum of each ``size`` x ``size`` box at every lag, from stacked integral images."""
    out = integral[:, size:, size:] - integral[:, :lags, size:]
    out -= integral[:, size:, :lags]
    out += integral[:, :lags, :lags]
    return out


def _integrals(image: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Float64 integral images of ``image`` and of its square, in scratch buffers."""
    import cv2

    shape = (image.shape[0] + 1, image.shape[1] + 1)
    sums, squares = scratch(name + ".sum", shape), scratch(name + ".sq", shape)
    cv2.integral2(image, sum=sums, sqsum=squares, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
    return sums, squares


def _lag_box_sums(
    view: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int, lags: int, name: str
) -> np.ndarray:
    """Sum the ``size`` x ``size`` boxes at every lag of the regions at ``(rows, cols)``.

    ``out[k, i, j]`` is the sum of the box with its corner at ``(rows[k] + i,
    cols[k] + j)``, read from ``view``, the ``(lags, lags)`` sliding-window
    view of an integral image (one row and column larger than the image), only
    where it is needed: the same float64 operations, in the same order, as a
    box sum of the whole image.
    """
    r, c = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
    total = np.subtract(
        view[r + size, c + size], view[r, c + size], out=scratch(name, (r.size, lags, lags))
    )
    total -= view[r + size, c]
    total += view[r, c]
    return total
