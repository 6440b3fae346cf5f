"""Hypothesis strategies shared by the property tests (test_grid.py, test_properties.py).

Sizes are small on purpose: a pair is 96-128 pixels, matched with NCC (no
TensorFlow), so one example takes a fraction of a second.
"""

from __future__ import annotations

import inspect

from hypothesis import strategies as st

import trackoff_xr
from trackoff_xr.testing.synthetic import shifted_pair

__all__ = [
    "MAX_SHIFT",
    "OFFSETS_OPTIONS",
    "axis_lengths",
    "chunk_edges",
    "image_sizes",
    "patch_sizes",
    "shifted_pairs",
    "shifts",
    "spacings",
]

#: largest offset drawn along each axis, pixels
MAX_SHIFT = 4.0

#: small NCC grids whose search radius covers every drawn shift; no coarse
#: pre-search where offsets() has one (the images are small anyway)
OFFSETS_OPTIONS: dict = {"patch_size": 32, "spacing": 16, "search_radius": 7, "method": "ncc"}
if "coarse" in inspect.signature(trackoff_xr.offsets).parameters:
    OFFSETS_OPTIONS["coarse"] = False

# -- grid geometry (GridSpec) ------------------------------------------------------------------
axis_lengths = st.integers(0, 400)
patch_sizes = st.integers(8, 64)
spacings = st.integers(1, 50)

# -- image pairs -------------------------------------------------------------------------------
#: one offset component, pixels; sub-pixel values included
shift_components = st.floats(-MAX_SHIFT, MAX_SHIFT, allow_nan=False, allow_infinity=False)
#: (dy, dx) of a uniform motion
shifts = st.tuples(shift_components, shift_components)
#: dask chunk edges for 96-128 pixel images: one chunk, or several with ragged edges
chunk_edges = st.sampled_from([40, 48, 56, 64, 80, 200])
#: image edges, pixels
image_sizes = st.sampled_from([96, 112, 128])


@st.composite
def shifted_pairs(draw, sizes=image_sizes):
    """A textured pair whose secondary is the reference moved by a known ``(dy, dx)``.

    Returns ``(ref, sec, (dy, dx))``; the images are numpy-backed DataArrays.
    """
    size = draw(sizes)
    shift = draw(shifts)
    seed = draw(st.integers(0, 2**16))
    ref, sec = shifted_pair((size, size), shift=shift, seed=seed)
    return ref, sec, shift
