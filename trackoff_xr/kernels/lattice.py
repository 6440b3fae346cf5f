"""Match a lattice of grid points between two numpy blocks: the engine's numpy core.

:mod:`trackoff_xr.blockwise` builds the dask graph; every match task runs
:func:`match_arrays` on two padded numpy blocks. The matcher's optional
capabilities come in as an argument (read by
:func:`trackoff_xr.matchers.base.capabilities` in the dask layer), so this
module imports nothing above the kernels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .windows import WindowLattice

if TYPE_CHECKING:
    from ..grid import GridSpec

__all__ = ["CENTRE_FIELDS", "EDGE_FIELD", "OUTPUT_FIELDS", "match_lattice"]

#: Order of the fields along the last axis of the blockwise result. The
#: matcher gives ``dy``, ``dx`` and ``score``; the engine adds ``peak_at_edge``.
OUTPUT_FIELDS: tuple[str, ...] = ("dy", "dx", "score", "peak_at_edge")

#: The field the engine fills itself (:func:`match_lattice`).
EDGE_FIELD = "peak_at_edge"

#: Fields added last when the searches are centred (:func:`match_lattice`
#: with ``centres``): the whole-pixel offset each search window was centred on.
CENTRE_FIELDS: tuple[str, ...] = ("search_dy", "search_dx")


def match_lattice(
    ref: np.ndarray,
    sec: np.ndarray,
    grid: GridSpec,
    matcher: Any,
    caps: Any,
    first: tuple[int, int],
    count: tuple[int, int],
    transformed: bool = False,
    centres: np.ndarray | None = None,
) -> np.ndarray:
    """Match a lattice of points between two padded numpy blocks.

    Parameters
    ----------
    ref, sec : ndarray, shape (rows, cols)
        Reference and secondary pixels (NaN where outside the image or nodata).
    grid : GridSpec
        Template geometry.
    matcher : Matcher
        Turns templates and windows into offsets.
    caps : MatcherCapabilities
        What the matcher declares
        (:func:`trackoff_xr.matchers.base.capabilities`). A matcher whose
        ``accepts_lattices`` capability is true gets
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
    centres : ndarray, shape (count[0], count[1], 2), int, optional
        A whole-pixel search centre per point: its window is cut that many
        rows and columns further (the blocks must hold the extra pixels),
        its offset is the centre plus what the matcher finds around it, and
        the edge rule below applies around the centre.

    Returns
    -------
    ndarray, shape (count[0], count[1], n_fields), float32
        ``dy``, ``dx``, ``score``, ``peak_at_edge``, any extra outputs of the
        matcher and, with ``centres``, ``search_dy``, ``search_dx`` per
        point; all but the centres NaN where the template or window touches
        NaN.

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
    n = count[0] * count[1]
    shifts = None if centres is None else np.asarray(centres, dtype=np.intp).reshape(n, 2)
    # points centred at zero are searched on the regular lattice (and its fast
    # paths), the others in shifted windows: the path a point takes depends on
    # its own centre only, never on its neighbours in the block
    moved = np.zeros(n, dtype=bool) if shifts is None else shifts.any(axis=1)
    names = OUTPUT_FIELDS + tuple(caps.extra_outputs)
    width = len(names) + (len(CENTRE_FIELDS) if centres is not None else 0)
    out = np.full((n, width), np.nan, dtype=np.float32)
    images = (ref, sec)
    templates = WindowLattice(ref, template_first, count, step, grid.patch_size)
    for group in (~moved, moved):
        if not group.any():
            continue
        windows = WindowLattice(
            sec, first, count, step, size, shifts=shifts if group is moved else None
        )
        usable = group & windows.finite() & templates.finite()
        if not usable.any():
            continue
        if caps.context and caps.transform is not None and not transformed:
            if images[0] is ref:  # transform each block once, for both groups
                images = (caps.transform(ref), caps.transform(sec))
            windows = WindowLattice(images[1], first, count, step, size, shifts=windows.shifts)
            group_templates = WindowLattice(images[0], template_first, count, step, grid.patch_size)
        else:
            group_templates = templates
        batch_t, batch_w = group_templates[usable], windows[usable]
        if not caps.accepts_lattices:
            batch_t, batch_w = np.asarray(batch_t), np.asarray(batch_w)
        result = matcher(batch_t, batch_w)
        for j, field in enumerate(names):
            if field != EDGE_FIELD:
                out[usable, j] = getattr(result, field)
        _blank_edge_peaks(out, np.flatnonzero(usable), names, _search_extent(caps.search_extent, r))
    if shifts is not None:
        flat = shifts.astype(np.float32)
        out[:, names.index("dy")] += flat[:, 0]
        out[:, names.index("dx")] += flat[:, 1]
        out[:, len(names) :] = flat
    return out.reshape(count[0], count[1], width)


def _search_extent(extent: Any, radius: int) -> float:
    """Return the largest offset a matcher can answer in a window of ``radius`` (its border)."""
    return float(radius if extent is None else extent(radius))


def _blank_edge_peaks(
    out: np.ndarray, rows: np.ndarray, names: tuple[str, ...], extent: float
) -> None:
    """Mark the points ``rows`` of ``out`` whose offset lies on the window border, and blank them.

    See the notes of :func:`match_lattice`.
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
