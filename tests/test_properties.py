"""Properties of offsets() for any pair and any chunking (Hypothesis, NCC, small images).

* a known uniform shift is recovered at every valid point;
* swapping reference and secondary flips the sign of the motion;
* the result does not depend on how the images are chunked.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings

import trackoff_xr

from .strategies import OFFSETS_OPTIONS, chunk_edges, shifted_pairs

#: sub-pixel accuracy expected of NCC + IC-GN on a noise-free band-limited shift
TOLERANCE = 0.1

PROPERTY = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _valid(ds):
    valid = ds.valid.values.astype(bool)
    assert valid.any(), "no valid point: the property would hold vacuously"
    return valid


@PROPERTY
@given(pair=shifted_pairs())
def test_known_shift_is_recovered_at_every_valid_point(pair):
    ref, sec, (dy, dx) = pair
    ds = trackoff_xr.offsets(ref, sec, **OFFSETS_OPTIONS).compute()
    valid = _valid(ds)
    np.testing.assert_allclose(ds.dy.values[valid], dy, atol=TOLERANCE)
    np.testing.assert_allclose(ds.dx.values[valid], dx, atol=TOLERANCE)


@PROPERTY
@given(pair=shifted_pairs())
def test_swapping_reference_and_secondary_flips_the_sign(pair):
    ref, sec, _ = pair
    forward = trackoff_xr.offsets(ref, sec, **OFFSETS_OPTIONS).compute()
    backward = trackoff_xr.offsets(sec, ref, **OFFSETS_OPTIONS).compute()
    # the same grid points, the other image's content: compare the motion, not points
    for name in ("dy", "dx"):
        there = float(np.median(forward[name].values[_valid(forward)]))
        back = float(np.median(backward[name].values[_valid(backward)]))
        assert abs(there + back) < TOLERANCE / 2, (name, there, back)


@PROPERTY
@given(pair=shifted_pairs(), rows=chunk_edges, cols=chunk_edges)
def test_result_does_not_depend_on_the_chunks(pair, rows, cols):
    ref, sec, _ = pair
    whole = trackoff_xr.offsets(ref, sec, **OFFSETS_OPTIONS).compute()
    chunks = {"y": rows, "x": cols}
    chunked = trackoff_xr.offsets(ref.chunk(chunks), sec.chunk(chunks), **OFFSETS_OPTIONS)
    assert chunked.dx.chunks is not None  # lazy: the blockwise path ran
    chunked = chunked.compute()
    for name in ("dy", "dx", "score", "valid"):
        np.testing.assert_array_equal(chunked[name].values, whole[name].values, err_msg=name)
