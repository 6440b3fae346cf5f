"""Dask wiring: run a matcher over every grid point of two chunked images.

The plan, per axis:

* Grid point ``i`` is *owned* by the block of the plan holding its anchor
  pixel ``i * spacing + patch_size // 2``; each point is evaluated exactly
  once, by its owner, whatever the chunking.
* The plan's blocks each own a whole number of grid points
  (``points_per_chunk``, from the input's chunk size) and are at least as
  large as the halo ``patch_size // 2 + search_radius``. Output chunks are
  then regular and the grid stays anchored to global pixel 0, not to chunk
  edges.
* A correlation maximum on the border of a search window is blanked and
  flagged ``peak_at_edge`` here, for every matcher (:func:`match_arrays`).
* One task per block cuts the block plus the halo (NaN beyond the image)
  straight out of whichever input chunks hold those pixels and matches its
  points: no rechunk, no overlap copies (``map_overlap`` would add ~40 tasks
  and two copies of both images per block; measured 1018 tasks against 144
  for a 4096 x 4096 pair in 1024 chunks). Windows that reach past the image
  edge contain NaN and give NaN results.

This module knows nothing of xarray or of any particular matcher.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .grid import GridSpec
from .kernels.lattice import CENTRE_FIELDS, EDGE_FIELD, OUTPUT_FIELDS, match_lattice
from .matchers.base import Matcher, capabilities

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "CENTRE_FIELDS",
    "EDGE_FIELD",
    "OUTPUT_FIELDS",
    "AxisPlan",
    "BlockMeans",
    "match_arrays",
    "match_blockwise",
    "transform_blockwise",
    "output_fields",
    "plan_axis",
    "reads_privately",
]

logger = logging.getLogger("trackoff_xr")


def output_fields(matcher: Matcher, centred: bool = False) -> tuple[str, ...]:
    """Fields along the last axis of the blockwise result for ``matcher``.

    :data:`OUTPUT_FIELDS`, then the names in the matcher's optional
    ``extra_outputs`` capability (its result has an array of that name too),
    then, for searches centred on a coarse pass or a prior,
    :data:`CENTRE_FIELDS`.

    Examples
    --------
    >>> from trackoff_xr.matchers import NCCMatcher
    >>> output_fields(NCCMatcher())
    ('dy', 'dx', 'score', 'peak_at_edge', 'dy_error', 'dx_error')
    >>> output_fields(NCCMatcher(), centred=True)[-2:]
    ('search_dy', 'search_dx')
    """
    fields = OUTPUT_FIELDS + tuple(capabilities(matcher).extra_outputs)
    return fields + (CENTRE_FIELDS if centred else ())


def match_arrays(
    ref: np.ndarray,
    sec: np.ndarray,
    grid: GridSpec,
    matcher: Matcher,
    first: tuple[int, int],
    count: tuple[int, int],
    transformed: bool = False,
    centres: np.ndarray | None = None,
) -> np.ndarray:
    """Match a lattice of points between two padded numpy blocks with ``matcher``.

    :func:`trackoff_xr.kernels.lattice.match_lattice` (see there) with the
    matcher's declared capabilities.
    """
    caps = capabilities(matcher)
    return match_lattice(ref, sec, grid, matcher, caps, first, count, transformed, centres)


@dataclass(frozen=True)
class AxisPlan:
    """Chunking of one image axis and the grid points each chunk owns."""

    chunks: tuple[int, ...]
    points: tuple[int, ...]

    @property
    def chunk_starts(self) -> tuple[int, ...]:
        """First pixel of each chunk."""
        return tuple(int(v) for v in np.cumsum((0,) + self.chunks[:-1]))

    @property
    def point_starts(self) -> tuple[int, ...]:
        """Index of the first grid point each chunk owns."""
        return tuple(int(v) for v in np.cumsum((0,) + self.points[:-1]))


def plan_axis(length: int, grid: GridSpec, target_chunk: int, depth: int | None = None) -> AxisPlan:
    """Chunk an axis of ``length`` pixels so each chunk owns whole grid points.

    Parameters
    ----------
    length : int
        Pixels along the axis.
    grid : GridSpec
        Template grid.
    target_chunk : int
        Preferred chunk size in pixels (e.g. the input's chunk size).
    depth : int, optional
        Overlap the blocks need (default: the grid's halo); every chunk is
        made at least this wide.

    Examples
    --------
    >>> plan = plan_axis(1000, GridSpec(64, 32, 16), target_chunk=256)
    >>> plan.chunks, plan.points
    ((288, 256, 256, 200), (8, 8, 8, 6))
    """
    n = grid.n_points(length)
    spacing = grid.spacing
    depth = grid.halo if depth is None else depth
    per_chunk = max(1, round(target_chunk / spacing), math.ceil(depth / spacing))
    n_chunks = max(1, math.ceil(n / per_chunk))
    # chunk j >= 1 starts at the anchor of its first point
    bounds = [0] + [grid.patch_size // 2 + j * per_chunk * spacing for j in range(1, n_chunks)]
    bounds.append(length)
    points = [per_chunk] * (n_chunks - 1) + [n - per_chunk * (n_chunks - 1)]
    if n_chunks > 1 and bounds[-1] - bounds[-2] < depth:
        # a tail narrower than the halo cannot feed its neighbour's overlap
        del bounds[-2]
        points[-2:] = [points[-2] + points[-1]]
    chunks = tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=False))
    return AxisPlan(chunks=chunks, points=tuple(int(p) for p in points))


def _origin(plan: AxisPlan, block: int, grid: GridSpec, depth: int) -> int:
    """Local index, inside the padded block, of the first owned window's corner."""
    first_point = plan.point_starts[block]
    chunk_start = plan.chunk_starts[block]
    return first_point * grid.spacing - grid.search_radius - (chunk_start - depth)


def _pieces(bounds: np.ndarray, lo: int, hi: int) -> list[tuple[int, slice, slice]]:
    """Input chunks along one axis overlapping ``[lo, hi)``.

    ``bounds`` are the chunk edges (``0, ..., length``). Returns, for each
    overlapping chunk, its index, the slice to take from it and the slice
    it fills in a padded block that starts at ``lo``.
    """
    out = []
    first = max(int(np.searchsorted(bounds, lo, side="right")) - 1, 0)
    for k in range(first, len(bounds) - 1):
        start, stop = int(bounds[k]), int(bounds[k + 1])
        if start >= hi:
            break
        a, b = max(lo, start), min(hi, stop)
        if a < b:
            out.append((k, slice(a - start, b - start), slice(a - lo, b - lo)))
    return out


def _planes(shape: tuple[int, ...], fill: float | None = None) -> np.ndarray:
    """Return a float32 array of ``shape`` whose channels (last axis) are each contiguous.

    ``(rows, cols, C)`` stored as ``C`` planes of ``rows x cols``: the matchers
    read one channel at a time as a 2-D image, which is then a view, not a
    copy (:meth:`~trackoff_xr.kernels.WindowLattice.channel`). 2-D shapes
    are plain C-contiguous arrays.

    Examples
    --------
    >>> a = _planes((4, 5, 2), fill=0.0)
    >>> a.shape, a[..., 1].flags.c_contiguous
    ((4, 5, 2), True)
    """
    if len(shape) == 2:
        planes = np.empty(shape, dtype=np.float32)
    else:
        planes = np.moveaxis(np.empty(shape[2:] + shape[:2], dtype=np.float32), 0, -1)
    if fill is not None:
        planes[...] = fill
    return planes


def _assemble(shape: tuple[int, int], chunks: list, places: list) -> np.ndarray:
    """Build a padded block: NaN, filled in with the given chunk pieces."""
    block = _planes(tuple(shape) + tuple(chunks[0].shape[2:]), np.nan)
    for chunk, (src, dst) in zip(chunks, places, strict=True):
        block[dst] = chunk[src]
    return block


def _match_region(
    ref_chunks: list,
    sec_chunks: list,
    ref_places: list,
    sec_places: list,
    shape: tuple[int, int],
    grid: GridSpec,
    matcher: Matcher,
    first: tuple[int, int],
    count: tuple[int, int],
    transformed: bool = False,
    centres: np.ndarray | None = None,
) -> np.ndarray:
    ref = _assemble(shape, ref_chunks, ref_places)
    sec = _assemble(shape, sec_chunks, sec_places)
    return match_arrays(ref, sec, grid, matcher, first, count, transformed, centres)


def _transform_region(
    chunks: list, places: list, shape: tuple[int, int], matcher: Matcher, keep: tuple
) -> np.ndarray:
    image = _assemble(shape, chunks, places)
    transform = cast("Callable[[np.ndarray], np.ndarray]", capabilities(matcher).transform)
    features = np.asarray(transform(image), dtype=np.float32)  # only matchers with one are staged
    features[~np.isfinite(image)] = np.nan  # nodata stays nodata
    kept = features[keep]
    out = _planes(kept.shape)  # one plane per channel, as the transform's own blocks
    out[...] = kept
    return out


def _neighbourhood_tasks(array: Any, rows: tuple, cols: tuple) -> tuple[list, list]:
    """Keys and placements of the pieces of ``array`` covering ``rows`` x ``cols``."""
    edges = [np.cumsum((0,) + array.chunks[axis]) for axis in (0, 1)]
    trailing = (0,) * (array.ndim - 2)  # a channel axis is one chunk
    keys, places = [], []
    for iy, sy, dy in _pieces(edges[0], *rows):
        for ix, sx, dx in _pieces(edges[1], *cols):
            keys.append((array.name, iy, ix, *trailing))
            places.append(((sy, sx), (dy, dx)))
    return keys, places


def transform_blockwise(array: Any, matcher: Matcher) -> Any:
    """Lazily apply ``matcher.transform`` to every chunk, with its context as halo.

    Each output chunk is the transform of the input chunk plus
    ``matcher.context`` pixels on every side (NaN beyond the image), cut back
    to the chunk: features are computed once per pixel, not once per
    overlapping match block. Pixels that are NaN in the image are NaN in all
    channels.

    Returns
    -------
    dask.array.Array, shape (rows, cols, matcher.channels), float32
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    caps = capabilities(matcher)
    context = caps.context
    name = "trackoff-features-" + tokenize(array, matcher)
    starts = [np.cumsum((0,) + array.chunks[axis][:-1]) for axis in (0, 1)]
    dsk: dict = {}
    for iy, (y0, h) in enumerate(zip(starts[0].tolist(), array.chunks[0], strict=True)):
        for ix, (x0, w) in enumerate(zip(starts[1].tolist(), array.chunks[1], strict=True)):
            rows, cols = (y0 - context, y0 + h + context), (x0 - context, x0 + w + context)
            keys, places = _neighbourhood_tasks(array, rows, cols)
            keep = (slice(context, context + h), slice(context, context + w))
            shape = (h + 2 * context, w + 2 * context)
            dsk[(name, iy, ix, 0)] = (_transform_region, keys, places, shape, matcher, keep)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[array])
    chunks = (*array.chunks, (int(caps.channels or 0),))
    return da.Array(graph, name, chunks, dtype=np.float32)


def reads_privately(array: Any) -> bool:
    """Whether match blocks can each read their own region of ``array``.

    True for a dask array that only reads: its chunks come straight from one
    lazily indexed source (what ``xarray.open_zarr``, ``rioxarray.open_rasterio``
    and :func:`dask.array.from_array` of a file-backed array make), so a region
    read by one block costs one read and no upstream computation. Then no
    block shares an input chunk with another: nothing is held between tasks,
    and memory is bounded by the blocks in flight, not by the order the
    scheduler picks (with shared chunks, dask's threaded scheduler held ~70 %
    of a 16 x 16-chunk scene's input chunks at once). Arrays whose chunks are
    already in memory (numpy wrapped by ``.chunk()``) gain nothing and keep
    shared chunks (measured 13 % faster), and so do arrays computed from
    other arrays, so upstream work is never repeated. A part of such a
    source cut out by slicing (``isel``, ``[a:b]``) still only reads: dask
    fuses the slices into the read.
    """
    if isinstance(array, BlockMeans):
        return True
    if array.ndim != 2 or not hasattr(array, "__dask_graph__"):
        return False
    graph = array.__dask_graph__()
    layers = getattr(graph, "layers", None)
    if layers is None or array.name not in layers:
        return False
    name = array.name
    while name.startswith("getitem-") and len(graph.dependencies.get(name, ())) == 1:
        (name,) = graph.dependencies[name]  # slicing: look at what it slices
    dependencies = graph.dependencies.get(name, set())
    if len(dependencies) != 1:  # none: chunks already in memory, nothing to save
        return False
    (source,) = dependencies
    return len(layers[source]) == 1 and not graph.dependencies.get(source)


def _average_region(chunks: list, places: list, shape: tuple[int, int], factor: int) -> np.ndarray:
    """Assemble a full-resolution region and average it in ``factor`` x ``factor`` blocks."""
    from .kernels.centring import block_average

    # the kernel the shared path (chunk by chunk) uses too, and a block mean
    # reads its own block only: both paths agree bit for bit
    f = factor
    edges = [s.start for _, dst in places for s in dst] + [s.stop for _, dst in places for s in dst]
    if any(e % f for e in edges):  # pieces not in whole blocks: assemble the region first
        return block_average(_assemble(shape, chunks, places), f)
    out = np.empty((shape[0] // f, shape[1] // f), dtype=np.float32)
    for chunk, (src, (rows, cols)) in zip(chunks, places, strict=True):
        out[rows.start // f : rows.stop // f, cols.start // f : cols.stop // f] = block_average(
            chunk[src], f
        )
    return out


#: source chunks along each side of a :class:`BlockMeans` chunk. Coarse pass
#: (spacing 16) of a full IW scene from a Zarr store (16,685 x 25,788 px, 2048
#: chunks, factor 4, 2 threads): shared coarse chunks 6.2 s, but 184 of the 234
#: were held at once (215 MB, growing with the scene); private, span 1: 11.6 s,
#: peak 450 MB flat; span 2: 6.7 s, but a 32/8 coarse grid then peaked at
#: 1.68 GB (the NCC kernel's memory grows with the points per block); span 4:
#: 9.3 s (too few blocks for the threads)
BLOCK_MEANS_SPAN = 1


@dataclass(frozen=True, eq=False)
class BlockMeans:
    """A 2-D image averaged in ``factor`` x ``factor`` blocks, read region by region.

    :func:`match_blockwise` given one (the coarse pass of
    :mod:`trackoff_xr.search` makes them) reads, for each of its blocks,
    only the full-resolution pixels under that block's region, privately as
    it reads a store, and averages them inside the block's own task. No
    coarse image is ever held between tasks: with coarse images computed
    once per chunk and shared, dask's threaded scheduler held 184 of the
    234 coarse chunks of a full IW scene at once (215 MB). A tail shorter
    than ``factor`` is left out, as :func:`dask.array.coarsen` after
    trimming would.

    Parameters
    ----------
    source : dask.array.Array, shape (rows, cols)
        The full-resolution image; it must read privately
        (:func:`reads_privately`).
    factor : int
        Block size.

    Examples
    --------
    >>> import dask.array as da
    >>> image = da.from_array(np.arange(64.0).reshape(8, 8), chunks=4)
    >>> means = BlockMeans(image, 2)
    >>> means.shape, means.chunks
    ((4, 4), ((2, 2), (2, 2)))
    >>> keys, places, graph = _private_pieces(means, (0, 2), (0, 4))
    >>> import dask
    >>> float(dask.get(graph, keys[0])[0, 0]) == float(np.arange(64.0).reshape(8, 8)[:2, :2].mean())
    True
    """

    source: Any
    factor: int

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns of the averaged image."""
        return (int(self.source.shape[0]) // self.factor, int(self.source.shape[1]) // self.factor)

    @property
    def ndim(self) -> int:
        """Always 2."""
        return 2

    @property
    def dtype(self) -> np.dtype:
        """float32, as the blocks it makes."""
        return np.dtype(np.float32)

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        """Regular chunks of :data:`BLOCK_MEANS_SPAN` source chunks a side, in blocks.

        What the match plan sizes its blocks from: each block then reads the
        pixels of about ``span x span`` source chunks plus a thin halo, in
        ``(span + 2)^2`` reads or fewer.
        """
        out = []
        for axis in (0, 1):
            step = max(BLOCK_MEANS_SPAN * max(self.source.chunks[axis]) // self.factor, 1)
            length = self.shape[axis]
            sizes = [step] * (length // step) + ([length % step] if length % step else [])
            out.append(tuple(sizes))
        return tuple(out)

    def __dask_tokenize__(self) -> Any:
        from dask.base import tokenize

        return ("trackoff-block-means", tokenize(self.source), self.factor)

    def pieces(self, rows: tuple, cols: tuple) -> tuple[list, list, dict]:
        """One task averaging the part of the image in ``rows`` x ``cols``, its placement, graph."""
        from dask.base import tokenize

        f = self.factor
        r0, r1 = max(rows[0], 0), min(rows[1], self.shape[0])
        c0, c1 = max(cols[0], 0), min(cols[1], self.shape[1])
        full = (f * r0, f * r1), (f * c0, f * c1)
        keys, places, graph = _private_pieces(self.source, *full)
        key = ("trackoff-coarse-block-means-" + tokenize(self, r0, r1, c0, c1), 0, 0)
        shape = (f * (r1 - r0), f * (c1 - c0))
        graph[key] = (_average_region, keys, places, shape, f)
        dst = (slice(r0 - rows[0], r1 - rows[0]), slice(c0 - cols[0], c1 - cols[0]))
        return [key], [((slice(None), slice(None)), dst)], graph


def _private_pieces(array: Any, rows: tuple, cols: tuple) -> tuple[list, list, dict]:
    """Tasks reading the part of ``array`` in ``rows`` x ``cols`` for one block only.

    The region (clipped to the image) is sliced and optimised by dask, which
    fuses each piece's slicing into the read of its source, so every piece
    is one read with no shared intermediate. Returns the pieces' keys, their
    placements in the padded block (as :func:`_neighbourhood_tasks`) and
    their graph.
    """
    import dask

    if isinstance(array, BlockMeans):
        return array.pieces(rows, cols)
    r0, r1 = max(rows[0], 0), min(rows[1], array.shape[0])
    c0, c1 = max(cols[0], 0), min(cols[1], array.shape[1])
    (region,) = dask.optimize(array[r0:r1, c0:c1])
    edges = [np.cumsum((0,) + region.chunks[axis]) for axis in (0, 1)]
    keys, places = [], []
    for iy in range(len(region.chunks[0])):
        for ix in range(len(region.chunks[1])):
            keys.append((region.name, iy, ix))
            dst_rows = slice(r0 - rows[0] + int(edges[0][iy]), r0 - rows[0] + int(edges[0][iy + 1]))
            dst_cols = slice(c0 - cols[0] + int(edges[1][ix]), c0 - cols[0] + int(edges[1][ix + 1]))
            places.append(((slice(None), slice(None)), (dst_rows, dst_cols)))
    return keys, places, dict(region.__dask_graph__())


def _target_chunks(array: Any, default: int) -> tuple[int, int]:
    chunks = getattr(array, "chunks", None)
    if not chunks:
        return (default, default)
    return (max(chunks[0]), max(chunks[1]))


def match_blockwise(
    ref: Any,
    sec: Any,
    grid: GridSpec,
    matcher: Matcher,
    *,
    default_chunk: int = 512,
    centres: Any = None,
    reach: int = 0,
    stage: str = "",
) -> da.Array:
    """Lazily match every grid point of two same-shaped 2-D arrays.

    Each output block owns the grid points whose anchors fall in one chunk of
    the plan (:func:`plan_axis`) and is computed by one task, which cuts the
    pixels its templates and windows need (the plan chunk and a halo, NaN
    beyond the image) straight from whichever input chunks hold them. The
    inputs are never rechunked and no overlap copies are made: the graph
    has one task per output block on top of the inputs' own.

    A matcher with a block ``transform`` and a ``channels`` attribute has
    its features computed first, once per input chunk
    (:func:`transform_blockwise`); one with a ``transform`` only gets each
    block transformed, with ``matcher.context`` more pixels of halo.

    Parameters
    ----------
    ref, sec : numpy or dask array, shape (rows, cols)
        Reference and secondary images; NaN marks nodata.
    grid : GridSpec
        Template geometry.
    matcher : Matcher
        The matcher applied to each block's batch of points.
    default_chunk : int
        Chunk size used when the inputs are numpy arrays.
    centres : dask or numpy array, shape (ny, nx, 2), int, optional
        A whole-pixel search centre for every grid point (a coarse pass or a
        prior, :mod:`trackoff_xr.search`): each search window is moved by
        it. Each block reads its centres block; blocks get ``reach`` more
        pixels of halo.
    reach : int
        The largest ``|centre|`` along either axis (centres beyond it are
        not allowed).
    stage : str
        A word put in the task names before the matcher's name (e.g.
        ``"coarse"``: ``trackoff-coarse-ncc-…``), so that progress counts
        only the final pass (``trackoff-<method>-…``).

    Returns
    -------
    dask.array.Array, shape (ny, nx, n_fields), float32
        ``dy``, ``dx``, ``score``, ``peak_at_edge``, the matcher's extra
        outputs and, with ``centres``, ``search_dy``, ``search_dx`` per grid
        point (see :func:`output_fields`). Nothing is computed.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    shape = tuple(ref.shape)
    target = _target_chunks(ref, default_chunk)

    def prepare(a: Any, chunks: Any) -> Any:  # a dask array or BlockMeans
        # no dtype conversion here: blocks become float32 as they are assembled,
        # so an 8-bit input chunk is never held as float32
        if isinstance(a, (da.Array, BlockMeans)):
            return a
        return da.from_array(np.asarray(a), chunks=chunks)

    ref_d, sec_d = prepare(ref, target), prepare(sec, target)
    # inputs read straight from a store or an in-memory array are read again
    # by every block for its own region (private reads): no input chunk is
    # then held between tasks, whatever order the scheduler picks
    private = all(reads_privately(a) for a in (ref_d, sec_d))
    # a matcher with a block transform that says how many channels it makes
    # gets its features computed once per input chunk (transform_blockwise)
    # when inputs are shared; otherwise each match block is transformed with
    # the extra context (features fused into the match task)
    caps = capabilities(matcher)
    staged = bool(caps.context) and caps.channels is not None and not private
    depth = grid.halo + (0 if staged else caps.context) + (int(reach) if centres is not None else 0)
    plans = (
        plan_axis(shape[0], grid, target[0], depth),
        plan_axis(shape[1], grid, target[1], depth),
    )
    logger.debug(
        "blockwise plan: blocks %s, points per block %s, private reads %s",
        (plans[0].chunks, plans[1].chunks),
        (plans[0].points, plans[1].points),
        private,
    )
    if staged:
        ref_d, sec_d = transform_blockwise(ref_d, matcher), transform_blockwise(sec_d, matcher)
    fields = len(output_fields(matcher, centred=centres is not None))
    centre_d = None
    if centres is not None:
        centre_d = da.asarray(centres).rechunk((plans[0].points, plans[1].points, 2))
    name = (
        "trackoff-"
        + (stage + "-" if stage else "")
        + caps.name
        + "-"
        + tokenize(ref_d, sec_d, grid, matcher, centre_d)
    )
    dsk: dict = {}
    for by in range(len(plans[0].chunks)):
        y0 = plans[0].chunk_starts[by] - depth
        y1 = plans[0].chunk_starts[by] + plans[0].chunks[by] + depth
        for bx in range(len(plans[1].chunks)):
            x0 = plans[1].chunk_starts[bx] - depth
            x1 = plans[1].chunk_starts[bx] + plans[1].chunks[bx] + depth
            pieces = []
            for a in (ref_d, sec_d):
                if private:
                    keys, places, reads = _private_pieces(a, (y0, y1), (x0, x1))
                    dsk.update(reads)
                else:
                    keys, places = _neighbourhood_tasks(a, (y0, y1), (x0, x1))
                pieces.append((keys, places))
            first = (_origin(plans[0], by, grid, depth), _origin(plans[1], bx, grid, depth))
            count = (plans[0].points[by], plans[1].points[bx])
            dsk[(name, by, bx, 0)] = (
                _match_region,
                pieces[0][0],
                pieces[1][0],
                pieces[0][1],
                pieces[1][1],
                (y1 - y0, x1 - x0),
                grid,
                matcher,
                first,
                count,
                staged,
                None if centre_d is None else (centre_d.name, by, bx, 0),
            )
    inputs: list[Any] = [] if private else [ref_d, sec_d]  # dask collections
    if centre_d is not None:
        inputs.append(centre_d)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=inputs)
    chunks = (plans[0].points, plans[1].points, (fields,))
    return da.Array(graph, name, chunks, dtype=np.float32)
