"""Memory is bounded by the blocks in flight, not by the scene (structure, no timing).

A scheduler callback counts the input pieces held between tasks while a run
from a Zarr store computes; the count must not grow with the number of block
rows (or columns).
"""

import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback

import trackoff_xr
from trackoff_xr.blockwise import match_blockwise, reads_privately
from trackoff_xr.matchers import get_matcher
from trackoff_xr.testing.synthetic import shifted_pair

GRID = trackoff_xr.GridSpec(patch_size=32, spacing=32, search_radius=4)
CHUNK = 96


class HeldInputs(Callback):
    """Largest number of non-result pieces in the threaded scheduler's cache."""

    def _start_state(self, dsk, state):
        self.peak = 0

    def _posttask(self, key, result, dsk, state, id):
        held = [
            k
            for k in state["cache"]
            if not str(k[0] if isinstance(k, tuple) else k).startswith("trackoff-")
        ]
        self.peak = max(self.peak, len(held))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    ref, sec = shifted_pair((CHUNK * 12, CHUNK * 12), shift=(1.0, 2.0), seed=4)
    path = tmp_path_factory.mktemp("scene") / "pair.zarr"
    pair = xr.Dataset({"ref": (ref * 40).astype(np.uint8), "sec": (sec * 40).astype(np.uint8)})
    pair.chunk(CHUNK).to_zarr(path, zarr_format=2)
    return path


def _peak(store, rows, cols, scheduler="threads"):
    pair = xr.open_zarr(store)
    ref = pair.ref.isel(y=slice(0, rows * CHUNK), x=slice(0, cols * CHUNK))
    sec = pair.sec.isel(y=slice(0, rows * CHUNK), x=slice(0, cols * CHUNK))
    fields = match_blockwise(ref.data, sec.data, GRID, get_matcher("ncc"))
    assert fields.numblocks[:2] == (rows, cols)
    counter = HeldInputs()
    with counter:
        fields.compute(scheduler=scheduler, num_workers=2)
    return counter.peak


def test_store_inputs_are_read_privately_by_each_block(store):
    pair = xr.open_zarr(store)
    assert reads_privately(pair.ref.data)
    assert not reads_privately((pair.ref * 2).data)  # computed: chunks stay shared


def test_held_inputs_do_not_grow_with_the_scene(store):
    small = _peak(store, 3, 3)
    tall = _peak(store, 12, 3)
    wide = _peak(store, 3, 12)
    big = _peak(store, 12, 12)
    # two threads, each holding at most one block's pieces of both images (3 x 3 each)
    assert max(small, tall, wide, big) <= 2 * 2 * 9
    assert big <= small + 2 * 9


def test_shared_chunks_would_grow(store):
    """The measurement is sensitive: with shared input chunks the count grows."""
    pair = xr.open_zarr(store)

    def peak(n):
        ref = pair.ref.isel(y=slice(0, n * CHUNK), x=slice(0, n * CHUNK)) * 1
        sec = pair.sec.isel(y=slice(0, n * CHUNK), x=slice(0, n * CHUNK)) * 1
        counter = HeldInputs()
        with counter:
            match_blockwise(ref.data, sec.data, GRID, get_matcher("ncc")).compute(
                scheduler="threads", num_workers=2
            )
        return counter.peak

    assert peak(12) > 2 * peak(3)
