"""Match a lattice of grid points between two numpy blocks: the engine's numpy core.

:mod:`trackoff_xr.blockwise` builds the dask graph; every match task runs
:func:`match_arrays` on two padded numpy blocks. The matcher's optional
capabilities are read through :func:`trackoff_xr.matchers.base.capabilities`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..matchers.base import capabilities
from .windows import WindowLattice

if TYPE_CHECKING:
    from ..grid import GridSpec
    from ..matchers.base import Matcher

__all__ = ["EDGE_FIELD", "OUTPUT_FIELDS", "match_arrays", "output_fields"]

#: Order of the fields along the last axis of the blockwise result. The
#: matcher gives ``dy``, ``dx`` and ``score``; the engine adds ``peak_at_edge``.
OUTPUT_FIELDS: tuple[str, ...] = ("dy", "dx", "score", "peak_at_edge")

#: The field the engine fills itself (:func:`match_arrays`).
EDGE_FIELD = "peak_at_edge"


def output_fields(matcher: Matcher) -> tuple[str, ...]:
    """Fields along the last axis of the blockwise result for ``matcher``.

    :data:`OUTPUT_FIELDS`, then the names in the matcher's optional
    ``extra_outputs`` capability (its result has an array of that name too).

    Examples
    --------
    >>> from trackoff_xr.matchers import NCCMatcher
    >>> output_fields(NCCMatcher())
    ('dy', 'dx', 'score', 'peak_at_edge')
    """
    return OUTPUT_FIELDS + capabilities(matcher).extra_outputs


def match_arrays(
    ref: np.ndarray,
    sec: np.ndarray,
    grid: GridSpec,
    matcher: Matcher,
    first: tuple[int, int],
    count: tuple[int, int],
    transformed: bool = False,
) -> np.ndarray:
    """Match a lattice of points between two padded numpy blocks.

    Parameters
    ----------
    ref, sec : ndarray, shape (rows, cols)
        Reference and secondary pixels (NaN where outside the image or nodata).
    grid : GridSpec
        Template geometry.
    matcher : Matcher
        Turns templates and windows into offsets. A matcher whose
        ``accepts_lattices`` attribute is true gets
        :class:`~trackoff_xr.kernels.WindowLattice` batches (views into the
        blocks, nothing copied); others get arrays. If it has a ``transform``
        method (a fully convolutional feature extractor), both blocks are
        transformed once and the windows are cut from the transformed blocks;
        the blocks must then hold ``matcher.context`` pixels beyond every
        window.
    first : (int, int)
        Corner of the first search window inside the blocks.
    count : (int, int)
        Grid points along rows and columns.
    transformed : bool
        The blocks already hold the matcher's features (NaN where the image
        is): ``matcher.transform`` is not applied again.

    Returns
    -------
    ndarray, shape (count[0], count[1], n_fields), float32
        ``dy``, ``dx``, ``score``, ``peak_at_edge`` and any extra outputs per
        point (see :func:`output_fields`); all NaN where the template or
        window touches NaN.

    Notes
    -----
    A correlation maximum on the border of the search window is not a
    measurement: the motion may lie beyond it. Wherever the matcher's offset
    is on the border (an integer peak at ``|dy|`` or ``|dx|`` equal to the
    radius ``R``; a sub-pixel one with ``max(|dy|, |dx|) > R - 0.5``; only
    for ``R >= 1``), ``dy`` and ``dx`` become NaN, ``score`` 0 and
    ``peak_at_edge`` 1; it is 0 at the other points with data. A matcher
    whose candidates stop short of ``R`` says where its border is with a
    ``search_extent(R)`` method.
    """
    size, r, step = grid.window_size, grid.search_radius, grid.spacing
    template_first = (first[0] + r, first[1] + r)
    windows = WindowLattice(sec, first, count, step, size)
    templates = WindowLattice(ref, template_first, count, step, grid.patch_size)
    caps = capabilities(matcher)
    names = OUTPUT_FIELDS + caps.extra_outputs
    out = np.full((len(windows), len(names)), np.nan, dtype=np.float32)
    usable = windows.finite() & templates.finite()
    if usable.any():
        if caps.context and caps.transform is not None and not transformed:
            windows = WindowLattice(caps.transform(sec), first, count, step, size)
            templates = WindowLattice(
                caps.transform(ref), template_first, count, step, grid.patch_size
            )
        templates, windows = templates[usable], windows[usable]
        if not caps.accepts_lattices:
            templates, windows = np.asarray(templates), np.asarray(windows)
        result = matcher(templates, windows)
        for j, field in enumerate(names):
            if field != EDGE_FIELD:
                out[usable, j] = getattr(result, field)
        _blank_edge_peaks(out, np.flatnonzero(usable), names, _search_extent(caps.search_extent, r))
    return out.reshape(count[0], count[1], len(names))


def _search_extent(extent: Any, radius: int) -> float:
    """Return the largest offset a matcher can answer in a window of ``radius`` (its border)."""
    return float(radius if extent is None else extent(radius))


def _blank_edge_peaks(
    out: np.ndarray, rows: np.ndarray, names: tuple[str, ...], extent: float
) -> None:
    """Mark the points ``rows`` of ``out`` whose offset lies on the window border, and blank them.

    See the notes of :func:`match_arrays`.
    """
    dy, dx = out[rows, names.index("dy")], out[rows, names.index("dx")]
    if extent >= 1:
        edge = np.fmax(np.abs(dy), np.abs(dx)) > extent - 0.5  # NaN (no match): not an edge
    else:
        edge = np.zeros(rows.size, dtype=bool)
    out[rows, names.index(EDGE_FIELD)] = edge
    hit = rows[edge]
    out[hit, names.index("dy")] = np.nan
    out[hit, names.index("dx")] = np.nan
    out[hit, names.index("score")] = 0.0
