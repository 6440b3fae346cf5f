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
from trackoff_xr.search import CoarseSearch
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


def test_sliced_store_inputs_are_read_privately(store):
    """A part of a scene cut out of a store (isel) still reads its regions privately."""
    pair = xr.open_zarr(store)
    part = pair.ref.isel(y=slice(10, 500), x=slice(None, 700))
    assert reads_privately(part.data)
    assert reads_privately(part.isel(y=slice(5, None)).data)
    assert not reads_privately((part * 1).data)
    assert not reads_privately((part * 1).isel(y=slice(5, None)).data)


def test_sliced_store_inputs_give_the_same_offsets(store):
    pair = xr.open_zarr(store)
    rows, cols = slice(7, 700), slice(30, 650)
    part = [pair[name].isel(y=rows, x=cols) for name in ("ref", "sec")]
    loaded = [pair[name].load().isel(y=rows, x=cols).chunk(CHUNK) for name in ("ref", "sec")]
    assert reads_privately(part[0].data) and not reads_privately((loaded[0] * 1).data)
    a = match_blockwise(part[0].data, part[1].data, GRID, get_matcher("ncc")).compute()
    b = match_blockwise(
        (loaded[0] * 1).data, (loaded[1] * 1).data, GRID, get_matcher("ncc")
    ).compute()
    np.testing.assert_array_equal(a, b)


def test_local_normalise_in_strips_is_identical_to_one_pass(monkeypatch):
    from trackoff_xr.matchers.cnn import features

    rng = np.random.default_rng(11)
    image = (rng.random((530, 170)) * 250 + 3).astype(np.float32)
    image[40:90, :20] = np.nan
    image[300:303] = np.nan
    monkeypatch.setattr(features, "NORMALISE_ROWS", 10**6)
    whole = features.local_normalise(image)
    for rows in (1, 37, 256):  # strips that do and do not divide the rows
        monkeypatch.setattr(features, "NORMALISE_ROWS", rows)
        np.testing.assert_array_equal(features.local_normalise(image), whole)


def test_local_normalise_temporaries_do_not_grow_with_the_image():
    """Float64 temporaries are strip-sized: the traced peak stays near the float32 output."""
    import tracemalloc

    from trackoff_xr.matchers.cnn import features

    image = (np.random.default_rng(2).random((4000, 300)) * 100).astype(np.float32)
    tracemalloc.start()
    try:
        features.local_normalise(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the result is image.nbytes; one pass over the whole image held ~10x
    assert peak < 3 * image.nbytes


def test_feature_channels_are_contiguous_planes():
    """The matcher reads each channel as a 2-D image: a view, never a block-sized copy."""
    pytest.importorskip("tensorflow")
    from trackoff_xr.blockwise import _assemble, _transform_region
    from trackoff_xr.kernels import WindowLattice
    from trackoff_xr.matchers.cnn import features

    image = (np.random.default_rng(3).random((90, 70)) * 100).astype(np.float32)
    stacked = features.extract_channels(image, str(features.DEFAULT_WEIGHTS))
    matcher = get_matcher("cnn")
    staged = _transform_region([image], [(np.s_[:, :], np.s_[:, :])], image.shape, matcher,
                               np.s_[5:-5, 5:-5])  # fmt: skip
    block = _assemble((40, 30), [staged], [(np.s_[:40, :30], np.s_[:, :])])
    for features_block in (stacked, staged, block):
        assert features_block.shape[2] == 2
        for c in range(2):
            lattice = WindowLattice(features_block, (0, 0), (2, 2), 8, 16)
            assert np.shares_memory(lattice.channel(c).image, features_block)
    np.testing.assert_array_equal(block, staged[:40, :30])


#: a coarse pass sized for the small store: blocks of 48 coarse pixels
SMALL_COARSE = CoarseSearch(factor=2, patch_size=16, spacing=8, search_radius=4)


class HeldCoarseImages(Callback):
    """Largest number of coarse image pieces (block means) in the threaded scheduler's cache."""

    def _start_state(self, dsk, state):
        self.peak = 0

    def _posttask(self, key, result, dsk, state, id):
        names = (str(k[0] if isinstance(k, tuple) else k) for k in state["cache"])
        held = sum(1 for name in names if "block-means" in name or "block_average" in name)
        self.peak = max(self.peak, held)


def _coarse_peak(store, n, computed=False):
    from trackoff_xr.search import coarse_centres

    pair = xr.open_zarr(store)
    ref, sec = (pair[v].isel(y=slice(0, n * CHUNK), x=slice(0, n * CHUNK)) for v in ("ref", "sec"))
    if computed:  # chunks computed from the store: the coarse images are shared chunks
        ref, sec = ref * 1, sec * 1
    counter = HeldCoarseImages()
    with counter:
        centres = coarse_centres(ref.data, sec.data, GRID, SMALL_COARSE).compute(
            scheduler="threads", num_workers=2
        )
    return counter.peak, centres


def test_coarse_images_held_do_not_grow_with_the_scene(store):
    """Each coarse block reads and averages its own region: no coarse image is held."""
    small, _ = _coarse_peak(store, 3)
    big, _ = _coarse_peak(store, 12)
    # two threads, each waiting with at most its block's two coarse images
    assert small <= 2 * 2 and big <= 2 * 2
    shared_small, _ = _coarse_peak(store, 3, computed=True)
    shared_big, _ = _coarse_peak(store, 12, computed=True)
    assert shared_big > 2 * shared_small  # the count is sensitive: shared chunks grow


def test_coarse_pass_read_privately_equals_shared_chunks(store):
    _, private = _coarse_peak(store, 12)
    _, shared = _coarse_peak(store, 12, computed=True)
    np.testing.assert_array_equal(private, shared)
    assert np.all(np.abs(np.median(private, axis=(0, 1)) - (1, 2)) <= 1)


@pytest.mark.parametrize("chunks", [(96, 96), (97, 61)])
def test_block_means_equal_the_chunkwise_coarse_image(store, chunks):
    """Whole-block pieces are averaged one by one, others assembled first: same pixels."""
    import dask

    from trackoff_xr.blockwise import BlockMeans, _private_pieces
    from trackoff_xr.search import _block_mean

    ref = xr.open_zarr(store, chunks=dict(zip(("y", "x"), chunks, strict=True))).ref.data[
        :701, :655
    ]
    means = BlockMeans(ref, 2)
    expected = _block_mean(ref * 1, 2).compute()
    assert means.shape == expected.shape == (350, 327)
    keys, places, graph = _private_pieces(means, (-5, 130), (200, 400))  # past two edges
    region = dask.get(graph, keys[0])
    ((_, (rows, cols)),) = places
    assert (rows, cols) == (slice(5, 135), slice(0, 127))
    np.testing.assert_array_equal(region, expected[0:130, 200:327])
