"""method="cnn": the shared pre-trained matcher (accuracy, sign, invariance, loading, packaging)."""

import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import trackoff_xr
from trackoff_xr import InvalidParameterError
from trackoff_xr.matchers import NCCMatcher
from trackoff_xr.testing.synthetic import sar_pair, shifted_pair

pytest.importorskip("tensorflow")

from trackoff_xr.matchers.cnn import features as cnn_features  # noqa: E402

CNN = dict(patch_size=64, spacing=32, search_radius=16)


def test_cnn_is_the_default_method():
    ref, sec = shifted_pair((192, 192), shift=(2.0, -3.0), looks=6, seed=4)
    ds = trackoff_xr.offsets(ref, sec, **CNN)
    assert ds.attrs["method"] == "cnn"
    assert ds.attrs["cnn_model_version"] == "trackoff_cnn_v2"


def test_shipped_weights_and_metadata_are_in_the_package():
    assert cnn_features.DEFAULT_WEIGHTS.exists()
    meta = cnn_features.model_metadata()
    assert meta["version"] == "trackoff_cnn_v2"
    assert meta["training"]["seed"] == 0
    assert {"intercept", "peak", "margin"} <= set(meta["calibration"])
    assert cnn_features.DEFAULT_WEIGHTS.stat().st_size < 5_000_000


def test_glacier_every_fitting_point_is_3_rows_8_columns(glacier_pair):
    ref, sec = glacier_pair
    ds = trackoff_xr.offsets(ref, sec, **CNN).compute()
    fits = ds.valid.values
    assert fits.sum() > 2000
    np.testing.assert_allclose(ds.dy.values[fits], 3.0, atol=0.05)
    np.testing.assert_allclose(ds.dx.values[fits], 8.0, atol=0.05)
    swapped = sec.trackoff.offsets(ref, **CNN).compute()
    np.testing.assert_allclose(swapped.dy.values[swapped.valid.values], -3.0, atol=0.05)
    np.testing.assert_allclose(swapped.dx.values[swapped.valid.values], -8.0, atol=0.05)


def test_uniform_subpixel_shift():
    ref, sec = shifted_pair((512, 512), shift=(-4.37, 6.81), seed=5)
    ds = trackoff_xr.offsets(ref, sec, **CNN)
    ok = ds.valid.values
    rmse = np.sqrt(np.mean((ds.dy.values[ok] + 4.37) ** 2 + (ds.dx.values[ok] - 6.81) ** 2))
    assert ok.sum() == 13 * 13
    assert rmse <= 0.03


@pytest.mark.parametrize("shift", [(3.0, -5.0), (-6.4, 2.3)])
def test_known_shift_under_speckle_and_sign(shift):
    ref, sec = shifted_pair((384, 384), shift=shift, looks=4, seed=9)
    ds = trackoff_xr.offsets(ref, sec, **CNN)
    good = ds.valid.values & (ds.score.values >= 0.5)
    assert good.sum() >= 0.5 * ds.valid.values.sum()
    assert np.median(ds.dy.values[good]) == pytest.approx(shift[0], abs=0.15)
    assert np.median(ds.dx.values[good]) == pytest.approx(shift[1], abs=0.15)
    back = trackoff_xr.offsets(sec, ref, **CNN)
    ok = back.valid.values & (back.score.values >= 0.5)
    assert np.median(back.dy.values[ok]) == pytest.approx(-shift[0], abs=0.15)
    assert np.median(back.dx.values[ok]) == pytest.approx(-shift[1], abs=0.15)


@pytest.fixture(scope="module")
def speckled_pair():
    return sar_pair((700, 640), max_displacement=8.0, looks=4.0, seed=21)[:2]


def _same(a, b, atol):
    for name in ("dx", "dy", "score"):
        np.testing.assert_allclose(
            a[name].values, b[name].values, atol=atol, rtol=0, equal_nan=True
        )


def test_chunk_and_scheduler_invariance(speckled_pair):
    ref, sec = speckled_pair
    base = trackoff_xr.offsets(ref, sec, **CNN)
    for chunks in (256, 300, 1024):
        _same(
            trackoff_xr.offsets(ref.chunk(chunks), sec.chunk(chunks), **CNN).compute(), base, 1e-4
        )
    lazy = trackoff_xr.offsets(ref.chunk(300), sec.chunk(300), **CNN)
    _same(lazy.compute(scheduler="synchronous"), base, 1e-4)


def test_distributed_gives_the_same_numbers(speckled_pair):
    distributed = pytest.importorskip("distributed")
    ref, sec = speckled_pair
    base = trackoff_xr.offsets(ref, sec, **CNN)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        ds = trackoff_xr.offsets(ref.chunk(320), sec.chunk(320), **CNN).compute()
    _same(ds, base, 1e-4)


def test_model_is_loaded_once_per_process(speckled_pair, monkeypatch):
    ref, sec = speckled_pair
    cnn_features.clear_networks()
    builds = []
    build = cnn_features.build_network

    def counting_build(*args, **kwargs):
        builds.append(args)
        return build(*args, **kwargs)

    monkeypatch.setattr(cnn_features, "build_network", counting_build)
    ds = trackoff_xr.offsets(ref.chunk(200), sec.chunk(200), **CNN)
    assert ds.dx.data.npartitions >= 4
    ds.compute(scheduler="threads", num_workers=4)
    ds.compute(scheduler="threads", num_workers=4)
    assert len(builds) == 1


def test_building_the_graph_loads_nothing():
    code = (
        "import sys, trackoff_xr\n"
        "from trackoff_xr.testing.synthetic import shifted_pair\n"
        "r, s = shifted_pair((256, 256))\n"
        "ds = trackoff_xr.offsets(r.chunk(128), s.chunk(128))\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_patch_outside_limits_is_refused_before_work():
    ref, sec = shifted_pair((400, 400))
    with pytest.raises(InvalidParameterError, match="patch_size=8 is outside the range"):
        trackoff_xr.offsets(ref, sec, patch_size=8, spacing=8, search_radius=4)
    with pytest.raises(InvalidParameterError, match="does not exist"):
        trackoff_xr.offsets(ref, sec, weights="/nonexistent/w.weights.h5")


def test_any_patch_and_radius_without_retraining():
    ref, sec = shifted_pair((400, 400), shift=(1.5, -7.2), looks=8, seed=3)
    for patch, radius in [(32, 10), (48, 12), (96, 20)]:
        ds = trackoff_xr.offsets(ref, sec, patch_size=patch, spacing=patch, search_radius=radius)
        ok = ds.valid.values & (ds.score.values >= 0.5)
        assert ok.any()
        assert np.median(ds.dx.values[ok]) == pytest.approx(-7.2, abs=0.2)


def test_confidence_says_dont_know_on_unrelated_images():
    ref, _ = shifted_pair((384, 384), seed=1, looks=4)
    other, _ = shifted_pair((384, 384), seed=2, looks=4)
    ds = trackoff_xr.offsets(ref, other, **CNN)
    assert (ds.score.values[ds.valid.values] < 0.5).mean() > 0.9


def test_weights_ship_in_the_wheel(tmp_path):
    root = cnn_features.DEFAULT_WEIGHTS.parents[4]
    if not (root / "pyproject.toml").exists():
        pytest.skip("not running from a source checkout")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
    )
    wheel = next(tmp_path.glob("trackoff_xr-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "trackoff_xr/matchers/cnn/weights/trackoff_cnn_v2.weights.h5" in names
    meta = json.loads(
        zipfile.ZipFile(wheel).read("trackoff_xr/matchers/cnn/weights/trackoff_cnn_v2.json")
    )
    assert meta["version"] == "trackoff_cnn_v2"


def test_training_is_reproducible_from_a_seed(tmp_path):
    from trackoff_xr.matchers.cnn.train import train
    from trackoff_xr.matchers.cnn.training_data import TrainingSpec

    spec = TrainingSpec(patch=24, radius=3, max_shift=2.0, scene=96)
    kw = dict(steps=3, batch_size=4, spec=spec, log_every=0)
    a = train(tmp_path / "a", seed=7, **kw)
    b = train(tmp_path / "b", seed=7, **kw)
    c = train(tmp_path / "c", seed=8, **kw)
    import h5py

    def values(path):
        with h5py.File(path) as f:
            out = []
            f.visititems(
                lambda n, o: out.append(np.array(o)) if isinstance(o, h5py.Dataset) else None
            )
            return out

    assert all(np.array_equal(x, y) for x, y in zip(values(a), values(b), strict=False))
    assert not all(np.array_equal(x, y) for x, y in zip(values(a), values(c), strict=False))


def _shipped_network():
    weights = str(cnn_features.DEFAULT_WEIGHTS)
    network = cnn_features.build_network(*cnn_features.architecture(weights))
    network.load_weights(weights)
    return network


def test_pruning_to_the_full_width_changes_nothing_and_drops_unread_channels():
    from trackoff_xr.matchers.cnn.train import prune_network

    network = _shipped_network()
    image = cnn_features.local_normalise(
        np.random.default_rng(4).random((70, 60)).astype(np.float32)
    )[None, :, :, None]
    width = network.get_layer("conv0").filters  # 8 for model v2
    same = prune_network(network, width, image)
    np.testing.assert_array_equal(
        np.asarray(same(image, training=False)), np.asarray(network(image, training=False))
    )
    # a channel of the first layer that the second never reads is of no use: dropped first
    kernel, bias = network.get_layer("conv1").get_weights()
    kernel[:, :, 5, :] = 0.0
    network.get_layer("conv1").set_weights([kernel, bias])
    pruned = prune_network(network, width - 1, image)
    assert [layer.filters for layer in pruned.layers if layer.name.startswith("conv")] == [
        width - 1,
        width - 1,
        width - 1,
        1,
    ]
    first = pruned.get_layer("conv0").get_weights()[0]
    kept = [
        j
        for j in range(width)
        if any(
            np.array_equal(first[..., i], network.get_layer("conv0").get_weights()[0][..., j])
            for i in range(width - 1)
        )
    ]
    assert 5 not in kept and len(kept) == width - 1
    with pytest.raises(InvalidParameterError, match=f"width={width + 1}"):
        prune_network(network, width + 1, image)


def test_prune_and_tune_writes_a_calibrated_narrow_network(tmp_path):
    from trackoff_xr.matchers.cnn.train import prune_and_tune

    weights = prune_and_tune(
        cnn_features.DEFAULT_WEIGHTS, tmp_path, width=4, steps=2, calibration_scenes=12
    )
    meta = json.loads(weights.with_name(weights.name.replace(".weights.h5", ".json")).read_text())
    assert meta["architecture"]["layers"] == [[4, 5], [4, 3], [4, 3], [1, 3]]
    assert meta["training"]["initial_weights"].endswith("_pruned.weights.h5")
    assert {"calibration", "calibration_fused"} <= set(meta)
    ref, sec = shifted_pair((256, 256), shift=(2.0, 3.0), looks=6, seed=11)
    ds = trackoff_xr.offsets(ref, sec, patch_size=64, spacing=32, search_radius=8, weights=weights)
    assert np.median(ds.dx.values[ds.valid.values]) == pytest.approx(3.0, abs=0.3)
    with pytest.raises(trackoff_xr.TrackOffError, match="exist"):
        prune_and_tune(cnn_features.DEFAULT_WEIGHTS, tmp_path, width=4, steps=1)


def test_build_model_trains_wide_then_prunes_and_checks_every_output_first(tmp_path, monkeypatch):
    import importlib

    from trackoff_xr.exceptions import ProtectedOutputError

    training = importlib.import_module("trackoff_xr.matchers.cnn.train")

    calls = []

    def fake_train(out, *, seed, steps, name=training.MODEL_VERSION, mode="w-", **kwargs):
        calls.append(("train", name, seed, steps))
        return Path(out) / f"{name}.weights.h5"

    def fake_prune(weights, out, *, width, steps, seed, mode, **kwargs):
        calls.append(("prune", Path(weights).name, width, steps, seed))
        return Path(out) / f"{training.MODEL_VERSION}.weights.h5"

    monkeypatch.setattr(training, "train", fake_train)
    monkeypatch.setattr(training, "prune_and_tune", fake_prune)
    weights = training.build_model(tmp_path / "w", seed=3, steps=5, tune_steps=2)
    assert weights.name == "trackoff_cnn_v2.weights.h5"
    assert calls == [
        ("train", "trackoff_cnn_v2_wide", 3, 5),
        ("prune", "trackoff_cnn_v2_wide.weights.h5", training.SHIPPED_WIDTH, 2, 3),
    ]
    # a file of the user's at an intermediate stage's name: refused before any training
    user = tmp_path / "user"
    user.mkdir()
    (user / "trackoff_cnn_v2_pruned.weights.h5").write_bytes(b"mine")
    calls.clear()
    with pytest.raises(ProtectedOutputError, match="did not write"):
        training.build_model(user)
    assert calls == [] and (user / "trackoff_cnn_v2_pruned.weights.h5").read_bytes() == b"mine"
    with pytest.raises(InvalidParameterError, match="width=0"):
        training.build_model(tmp_path / "x", width=0)


def test_fine_tune_on_a_scene_and_use_it(tmp_path):
    from trackoff_xr.matchers.cnn.train import fine_tune
    from trackoff_xr.matchers.cnn.training_data import TrainingSpec

    ref, sec = shifted_pair((256, 256), shift=(2.0, 3.0), looks=6, seed=11)
    spec = TrainingSpec(patch=32, radius=4, max_shift=3.0, scene=112)
    weights = fine_tune(ref, tmp_path, steps=2, spec=spec)
    assert weights.exists()
    ds = trackoff_xr.offsets(ref, sec, patch_size=64, spacing=32, search_radius=8, weights=weights)
    ok = ds.valid.values
    assert np.median(ds.dx.values[ok]) == pytest.approx(3.0, abs=0.2)
    with pytest.raises(trackoff_xr.ImageTooSmallError, match="at least 112 x 112"):
        fine_tune(ref[:50, :50], tmp_path, steps=1, spec=spec)


TRANSFORM_CALLS: list = []


@dataclass(frozen=True)
class AffineNCC(NCCMatcher):
    """NCC after an affine intensity change: NCC is invariant to it (defined at module
    level so dask pickles it by reference and the call log is shared)."""

    name: str = "affine"
    context: int = 3

    def transform(self, block):
        TRANSFORM_CALLS.append(block.shape)
        return 2.0 * block + 1.0


def test_block_transform_matcher_is_chunk_invariant():
    """The engine's transform hook: same numbers as without it, one transform per block."""
    from trackoff_xr.matchers import register_matcher

    register_matcher("affine-test", AffineNCC)
    TRANSFORM_CALLS.clear()
    ref, sec = shifted_pair((300, 300), shift=(1.25, -2.5), seed=2)
    lazy = trackoff_xr.offsets(
        ref.chunk(100),
        sec.chunk(100),
        patch_size=32,
        spacing=16,
        search_radius=6,
        method="affine-test",
    )
    a = lazy.compute(scheduler="synchronous")
    b = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=16, search_radius=6, method="ncc")
    _same(a, b, 1e-4)
    # each block with something to match transforms its two images exactly once
    rows, cols = (np.cumsum((0,) + c) for c in lazy.dx.data.chunks)
    busy = sum(
        bool(a.valid.values[rows[i] : rows[i + 1], cols[j] : cols[j + 1]].any())
        for i in range(len(rows) - 1)
        for j in range(len(cols) - 1)
    )
    assert busy >= 4 and len(TRANSFORM_CALLS) == 2 * busy


@dataclass(frozen=True)
class StagedAffineNCC:
    """A matcher whose features the engine computes once per chunk (it sets ``channels``)."""

    name: str = "staged-affine"
    context: int = 3
    channels: int = 1

    def transform(self, block):
        TRANSFORM_CALLS.append(block.shape)
        return (2.0 * block + 1.0)[..., None]

    def __call__(self, templates, windows):
        return NCCMatcher()(np.asarray(templates)[..., 0], np.asarray(windows)[..., 0])

    def describe(self):
        return {}


@pytest.mark.parametrize("computed_inputs", [True, False], ids=["staged", "fused"])
def test_block_transform_runs_once_per_block_and_keeps_nodata(computed_inputs, tmp_path):
    """Computed inputs: features once per input chunk (staged); read-only inputs:
    features fused into each match block, on its region plus the context."""
    from trackoff_xr.matchers import register_matcher

    register_matcher("staged-affine-test", StagedAffineNCC)
    TRANSFORM_CALLS.clear()
    ref, sec = shifted_pair((300, 300), shift=(1.25, -2.5), seed=2)
    ref = ref.where((ref.y < 120) | (ref.y > 150))  # a band of nodata
    kw = dict(patch_size=32, spacing=16, search_radius=6)
    xr.Dataset({"ref": ref, "sec": sec}).chunk(100).to_zarr(tmp_path / "p.zarr", zarr_format=2)
    pair = xr.open_zarr(tmp_path / "p.zarr")
    ref_d, sec_d = pair.ref, pair.sec  # plain reads from a store: private per block
    if computed_inputs:  # not a plain read: blocks share its chunks
        ref_d, sec_d = ref_d * 1.0, sec_d * 1.0
    # the fine pass only: the structure pinned here is that of one blockwise pass
    lazy = trackoff_xr.offsets(ref_d, sec_d, method="staged-affine-test", coarse=False, **kw)
    assert not TRANSFORM_CALLS  # building computes nothing
    a = lazy.compute(scheduler="synchronous")
    b = trackoff_xr.offsets(ref, sec, method="ncc", **kw)
    _same(a, b, 1e-4)
    assert np.isnan(a.dy.values).any() and np.isfinite(a.dy.values).sum() > 100
    blocks = lazy.dx.data.numblocks
    if computed_inputs:  # one transform per input chunk and image, the context as halo
        assert sorted(TRANSFORM_CALLS) == [(106, 106)] * 18
    else:  # one per match block and image, on the block, its halo and the context
        from trackoff_xr.blockwise import plan_axis

        grid = trackoff_xr.GridSpec(**kw)
        depth = grid.halo + StagedAffineNCC.context
        plan = plan_axis(300, grid, 100, depth)
        padded = [size + 2 * depth for size in plan.chunks]
        assert len(plan.chunks) ** 2 == blocks[0] * blocks[1]
        assert sorted(TRANSFORM_CALLS) == sorted([(h, w) for h in padded for w in padded] * 2)


def _plain_local_normalise(image, sigma=4.0):
    """The textbook formula the shipped weights were trained with."""
    import math

    import cv2

    valid = np.isfinite(image)
    x = np.where(valid, image, 0.0).astype(np.float64)
    size = 2 * int(math.ceil(3 * sigma)) + 1

    def blur(a):
        return cv2.GaussianBlur(a, (size, size), sigma, borderType=cv2.BORDER_CONSTANT)

    weight = np.maximum(blur(valid.astype(np.float64)), 1e-12)
    mean = blur(x) / weight
    centred = np.where(valid, x - mean, 0.0)
    var = blur(centred * centred) / weight
    scale = np.sqrt(var + (1e-6 * np.abs(mean)) ** 2 + 1e-30)
    return np.where(valid, centred / scale, 0.0).astype(np.float32)


@pytest.mark.parametrize("nodata", [False, True])
def test_fast_local_normalise_is_bit_identical_to_the_formula(nodata):
    """Training must keep reproducing the shipped weights bit for bit."""
    image = (np.random.default_rng(3).random((230, 190)) * 300 + 20).astype(np.float32)
    if nodata:
        image[:30] = np.nan
        image[100:110, 50:90] = np.nan
    fast, plain = cnn_features.local_normalise(image), _plain_local_normalise(image)
    np.testing.assert_array_equal(fast, plain)


#: how closely each runtime reproduces TensorFlow's Keras model (features of
#: magnitude ~7; OpenCV's filters sum in another order: ~3e-6, relative ~1e-6)
RUNTIME_ATOL = {"tensorflow": 1e-5, "opencv": 5e-5}


@pytest.mark.parametrize("runtime", ["tensorflow", "opencv"])
def test_compiled_network_with_opencv_blur_equals_the_keras_model(runtime):
    weights = str(cnn_features.DEFAULT_WEIGHTS)
    network = cnn_features.get_network(weights)
    rng = np.random.default_rng(0)
    image = cnn_features.local_normalise(rng.random((150, 170)).astype(np.float32))
    keras_out = np.asarray(network(image[None, :, :, None], training=False))[0, :, :, 0]
    with trackoff_xr.set_options(cnn_runtime=runtime):
        assert cnn_features.network_runtime() == runtime
        features = cnn_features.run_network(weights, image)
    np.testing.assert_allclose(features, keras_out, atol=RUNTIME_ATOL[runtime], rtol=0)


@pytest.mark.parametrize("runtime", ["tensorflow", "opencv"])
def test_network_in_strips_is_identical_to_one_call(monkeypatch, runtime):
    rng = np.random.default_rng(5)
    normalised = cnn_features.local_normalise(rng.random((150, 120), dtype=np.float32))
    weights = str(cnn_features.DEFAULT_WEIGHTS)
    with trackoff_xr.set_options(cnn_runtime=runtime):
        for name in ("STRIP_ROWS", "OPENCV_STRIP_ROWS"):
            monkeypatch.setattr(cnn_features, name, 10**6)
        whole = cnn_features.run_network(weights, normalised)
        for name in ("STRIP_ROWS", "OPENCV_STRIP_ROWS"):  # strips that do not divide the rows
            monkeypatch.setattr(cnn_features, name, 37)
        strips = cnn_features.run_network(weights, normalised)
    atol = 1e-6 if runtime == "tensorflow" else 5e-5
    np.testing.assert_allclose(strips, whole, rtol=0, atol=atol)


@pytest.mark.parametrize("layers", [((3, 5), (4, 3), (1, 3)), ((2, 3), (1, 1)), ((1, 3),)])
def test_opencv_filters_equal_keras_for_any_stack_of_convolutions(layers):
    """Widths, kernels and depths other than the shipped ones, random weights and biases."""
    network = cnn_features.build_network(layers, blur=0.0)
    rng = np.random.default_rng(len(layers))
    for layer in network.layers[1:]:
        layer.set_weights(
            [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()]
        )
    image = rng.normal(size=(37, 29)).astype(np.float32)
    expected = np.asarray(network(image[None, :, :, None], training=False))[0, :, :, 0]
    filters = []
    for i in range(len(layers)):
        kernel, bias = network.get_layer(f"conv{i}").get_weights()
        kernels = tuple(
            tuple(np.ascontiguousarray(kernel[:, :, c, o]) for c in range(kernel.shape[2]))
            for o in range(kernel.shape[3])
        )
        filters.append((kernels, bias))
    np.testing.assert_allclose(
        cnn_features.filter_forward(filters, image), expected, atol=1e-5, rtol=0
    )
    # a second, smaller strip reuses the thread's buffers and is still right
    np.testing.assert_allclose(
        cnn_features.filter_forward(filters, image[:20]),
        np.asarray(network(image[None, :20, :, None], training=False))[0, :, :, 0],
        atol=1e-5,
        rtol=0,
    )


def test_offsets_agree_between_runtimes(speckled_pair):
    ref, sec = speckled_pair
    with trackoff_xr.set_options(cnn_runtime="tensorflow"):
        a = trackoff_xr.offsets(ref, sec, **CNN)
    with trackoff_xr.set_options(cnn_runtime="opencv"):
        b = trackoff_xr.offsets(ref, sec, **CNN)
    _same(a, b, 1e-3)
