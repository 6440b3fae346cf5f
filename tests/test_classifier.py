"""The per-tile classifier (method="classifier"): augmentations, classes, filter, matcher."""

from __future__ import annotations

import subprocess
import sys
from typing import NamedTuple

import numpy as np
import pytest
import xarray as xr

import trackoff_xr
from trackoff_xr.blockwise import match_arrays, output_fields
from trackoff_xr.exceptions import InvalidParameterError
from trackoff_xr.grid import GridSpec
from trackoff_xr.kernels.augment import PIL_FILTERS, pil_filter, rescale, rotate
from trackoff_xr.matchers import get_matcher
from trackoff_xr.matchers.classifier import (
    AugmentConfig,
    ClassifierMatcher,
    candidate_steps,
    class_of_offset,
    class_offsets,
    filter_probability,
    training_images,
)
from trackoff_xr.matchers.classifier.augmentation import to_uint8
from trackoff_xr.testing.synthetic import fractal_texture, shifted_pair

from .helpers import raise_if_dask_computes

Image = pytest.importorskip("PIL.Image")
ImageFilter = pytest.importorskip("PIL.ImageFilter")


def _texture(shape: tuple[int, int], seed: int = 0, beta: float = 2.6) -> np.ndarray:
    t = fractal_texture(shape, beta=beta, seed=seed)
    return np.clip(np.round(255 * (t - t.min()) / (t.max() - t.min())), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# trackoff_xr.kernels.augment against PIL
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PIL_FILTERS))
@pytest.mark.parametrize("kind", ["noise", "texture"])
def test_pil_filter_matches_pil(name: str, kind: str) -> None:
    """uint8=True reproduces PIL exactly; DETAIL may differ by 1 grey level."""
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (23, 31)).astype(np.uint8) if kind == "noise" else _texture((23, 31))
    ours = pil_filter(img, name, uint8=True)
    theirs = np.asarray(Image.fromarray(img).filter(getattr(ImageFilter, name)))
    tolerance = 1 if name == "DETAIL" else 0
    assert ours.dtype == np.uint8 and ours.shape == img.shape
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= tolerance
    # a batch gives the same as one image at a time
    batch = pil_filter(np.stack([img, img[::-1]]), name, uint8=True)
    assert np.array_equal(batch[0], ours)


def test_pil_filter_rejects_unknown_name() -> None:
    with pytest.raises(InvalidParameterError, match="MEDIAN"):
        pil_filter(np.zeros((5, 5)), "MEDIAN")


@pytest.mark.parametrize("buff", [2, -2])
def test_rescale_shapes_and_zoom(buff: int) -> None:
    """buff > 0 zooms out of a larger crop, buff < 0 zooms in; the output is the tile size."""
    tile = 40
    size = tile + 2 * max(buff, 0)
    ramp = np.tile(np.arange(size, dtype=np.float32), (size, 1))
    out = rescale(ramp[None], buff)
    assert out.shape == (1, tile, tile)
    # the columns now span the cropped width: slope (tile + 2 buff) / tile
    slope = np.polyfit(np.arange(tile), out[0, tile // 2], 1)[0]
    assert slope == pytest.approx((tile + 2 * buff) / tile, rel=0.01)
    assert np.allclose(rescale(np.ones((2, size, size), np.float32), buff), 1.0)


def test_rescale_matches_pil_crop_and_resize() -> None:
    """The zoom-in (buff < 0, an upsampling) agrees with PIL's crop + bilinear resize."""
    img = _texture((60, 60), seed=1, beta=3.5)
    ours = rescale(img.astype(np.float32), -2)
    theirs = np.asarray(Image.fromarray(img).crop((2, 2, 58, 58)).resize((60, 60), Image.BILINEAR))
    diff = np.abs(ours - theirs.astype(np.float32))
    assert diff.mean() < 1.0 and diff.max() <= 4


def test_rotate_matches_pil_and_inverts() -> None:
    """Counter-clockwise about the centre, as PIL's Image.rotate; the centre crop is kept."""
    img = _texture((61, 61), seed=2, beta=3.5)
    ours = rotate(img.astype(np.float32), 10.0)
    theirs = np.asarray(Image.fromarray(img).rotate(10.0, resample=Image.BILINEAR))
    centre = np.s_[15:46, 15:46]
    diff = np.abs(ours[centre] - theirs[centre].astype(np.float32))
    assert diff.mean() < 1.0 and diff.max() <= 4
    assert rotate(img, 5.0, crop=41).shape == (41, 41)
    assert rotate(np.stack([img, img]), 5.0, crop=41).shape == (2, 41, 41)
    assert np.allclose(rotate(img.astype(np.float32), 0.0), img)


# --------------------------------------------------------------------------
# classes and training images
# --------------------------------------------------------------------------


def test_class_offset_mapping_round_trip() -> None:
    offsets = class_offsets(3, 1)
    assert offsets.shape == (49, 2)
    assert offsets[0].tolist() == [-3, -3] and offsets[-1].tolist() == [3, 3]
    assert offsets[24].tolist() == [0, 0]
    assert offsets[1].tolist() == [-3, -2]  # row-major: dx varies fastest
    assert np.array_equal(class_of_offset(offsets[:, 0], offsets[:, 1], 3), np.arange(49))
    assert candidate_steps(5, 2).tolist() == [-4, -2, 0, 2, 4]
    assert class_of_offset(1, 0, 5, 2) == -1  # not a candidate
    assert class_of_offset(2, -4, 5, 2) == 3 * 5 + 0
    with pytest.raises(InvalidParameterError, match="candidate_step"):
        candidate_steps(3, 0)


def test_class_sign_follows_the_convention() -> None:
    """The plain image of class (dy, dx) is the secondary tile at (y + dy, x + dx)."""
    rng = np.random.default_rng(0)
    sec = rng.integers(0, 256, (40, 40)).astype(np.uint8)
    p, r, y, x = 16, 5, 12, 10
    window = sec[y - r : y + p + r, x - r : x + p + r][None]
    images = training_images(window, p, r)
    for dy, dx in [(3, -2), (-5, 5), (0, 1)]:
        k = int(class_of_offset(dy, dx, r))
        assert np.array_equal(images[0, k, 0], sec[y + dy : y + dy + p, x + dx : x + dx + p])
    # with a real pair: the reference template equals the plain tile of the true shift
    ref_da, sec_da = shifted_pair((64, 64), shift=(3.0, -2.0), seed=1)
    ref, moved = ref_da.values, sec_da.values
    t8, w8 = to_uint8(ref[None, 20:36, 20:36], moved[None, 15:41, 15:41])
    images = training_images(w8, 16, 5)
    errors = np.abs(images[0, :, 0].astype(int) - t8[0].astype(int)).mean(axis=(1, 2))
    assert class_offsets(5)[errors.argmin()].tolist() == [3, -2]


def test_training_images_families() -> None:
    paper = AugmentConfig.paper()
    assert paper.per_class == 72  # as the original's secondary tiles folder
    assert paper.without("rotate").per_class == 1 + 7 + 2 * 5
    assert paper.without("filters", "rescale", "rotate").per_class == 1
    with pytest.raises(InvalidParameterError, match="families"):
        paper.without("colour")
    window = _texture((28, 28))[None]
    cfg = AugmentConfig.fast()
    images = training_images(window, 20, 4, 2, cfg)
    assert images.shape == (1, 25, cfg.per_class, 20, 20) and images.dtype == np.uint8
    # the SMOOTH copy of a class is its tile smoothed by PIL (inside the 1-px frame)
    k = int(class_of_offset(2, -2, 4, 2))
    tile = window[0, 6:26, 2:22]
    smooth = np.asarray(Image.fromarray(tile).filter(ImageFilter.SMOOTH))
    j = 1 + list(cfg.filters).index("SMOOTH")
    assert np.array_equal(images[0, k, j][1:-1, 1:-1], smooth[1:-1, 1:-1])


# --------------------------------------------------------------------------
# the paper's filter
# --------------------------------------------------------------------------


def _from_maps(maps: np.ndarray) -> xr.Dataset:
    score = maps.max(axis=-1)
    return xr.Dataset(
        {
            "dx": (("y", "x"), np.full(score.shape, 8.0, np.float32)),
            "dy": (("y", "x"), np.full(score.shape, 3.0, np.float32)),
            "score": (("y", "x"), score),
            "prob_mean": (("y", "x"), maps.mean(axis=-1)),
            "prob_std": (("y", "x"), maps.std(axis=-1)),
        },
        coords={"y": [49.5], "x": [49.5, 149.5, 249.5, 349.5]},
    )


def test_filter_probability_on_hand_made_maps() -> None:
    k = 441
    peaked = np.full(k, 0.2 / (k - 1))
    peaked[7] = 0.8  # noqa: E702
    flat = np.full(k, 1.0 / k)  # nothing stands out
    two = np.full(k, 0.0)
    two[:2] = 0.5  # noqa: E702
    low = np.full(k, 0.96 / (k - 1)) * 0.999
    low[3] = 0.04  # noqa: E702  outlier < 5 %
    ds = _from_maps(np.stack([peaked, flat, two, low])[None])
    out = filter_probability(ds)
    assert out.valid.values.tolist() == [[True, False, True, False]]
    assert np.isnan(out.dx.values[0, 1]) and out.dx.values[0, 0] == 8.0
    assert "mean + 3 sigma" in out.attrs["filters"]
    # the threshold alone
    assert filter_probability(ds, threshold=0.6, sigmas=0).valid.values.tolist() == [
        [True, False, False, False]
    ]
    assert "valid" not in ds  # the input is unchanged
    with pytest.raises(InvalidParameterError, match="prob_mean"):
        filter_probability(ds.drop_vars("prob_mean"))
    with pytest.raises(InvalidParameterError, match="threshold"):
        filter_probability(ds, threshold=5)


def test_filter_probability_is_lazy() -> None:
    ds = _from_maps(np.random.default_rng(0).dirichlet(np.ones(9), size=(1, 4))).chunk({"x": 2})
    with raise_if_dask_computes():
        out = filter_probability(ds)
    assert out.valid.chunks is not None
    out.compute()


# --------------------------------------------------------------------------
# engine: extra outputs, registry, the fast preset
# --------------------------------------------------------------------------


class _Extra:
    name = "extra"
    extra_outputs = ("twice",)

    class Result(NamedTuple):
        dy: np.ndarray
        dx: np.ndarray
        score: np.ndarray
        twice: np.ndarray

    def __call__(self, templates: np.ndarray, windows: np.ndarray) -> Result:  # noqa: D102
        zeros = np.zeros(templates.shape[0], np.float32)
        return self.Result(zeros, zeros + 1, zeros + 0.5, 2 * (zeros + 1))

    def describe(self) -> dict:  # noqa: D102
        return {}


def test_extra_outputs_become_fields() -> None:
    matcher = _Extra()
    assert output_fields(matcher) == ("dy", "dx", "score", "peak_at_edge", "twice")
    img = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    out = match_arrays(img, img, GridSpec(8, 8, 2), matcher, (0, 0), (2, 3))
    assert out.shape == (2, 3, 5) and np.allclose(out[..., 4], 2.0)


def test_registry_builds_the_classifier_without_tensorflow() -> None:
    code = (
        "import sys, trackoff_xr; m = trackoff_xr.get_matcher('classifier', preset='paper');"
        "print(type(m).__name__, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["ClassifierMatcher", "False"]
    with pytest.raises(InvalidParameterError, match="preset"):
        get_matcher("classifier", preset="huge")
    with pytest.raises(InvalidParameterError, match="not known"):
        get_matcher("classifier", epoch=3)


def test_fast_preset_recovers_an_integer_shift() -> None:
    """A known whole-pixel shift, through the public offsets() call, in seconds."""
    ref, sec = shifted_pair((112, 112), shift=(2.0, -3.0), seed=0)
    ds = trackoff_xr.offsets(
        ref, sec, patch_size=32, spacing=24, search_radius=6, method="classifier", preset="fast"
    )
    measured = np.isfinite(ds.dx.values)
    assert measured.sum() == 9  # 3 x 3 points whose window fits
    assert np.all(ds.dy.values[measured] == 2.0) and np.all(ds.dx.values[measured] == -3.0)
    assert set(output_fields(ClassifierMatcher())) <= set(ds.data_vars)
    kept = filter_probability(ds)
    assert kept.valid.values.sum() == 9
    assert ds.attrs["classifier_preset"] == "fast"
    # swapping the images flips the sign
    back = trackoff_xr.offsets(
        sec, ref, patch_size=32, spacing=24, search_radius=6, method="classifier"
    )
    assert np.all(back.dy.values[measured] == -2.0) and np.all(back.dx.values[measured] == 3.0)


def test_tiles_trained_together_stay_independent() -> None:
    """A tile's classifier does not depend on which other tiles share its training loop."""
    from trackoff_xr.matchers.classifier.network import NetworkSpec, predict, train_tiles

    rng = np.random.default_rng(5)
    windows = rng.integers(0, 256, (3, 22, 22)).astype(np.uint8)
    images = training_images(windows, 16, 3, 1, AugmentConfig.fast())
    spec = NetworkSpec(epochs=1, batch_size=32, imprint=True, tiles_per_group=2)
    templates = windows[:, 4:20, 2:18]
    with_b = predict(train_tiles(images[[0, 1]], spec), templates[[0, 1]])
    with_c = predict(train_tiles(images[[0, 2]], spec), templates[[0, 2]])
    assert np.allclose(with_b[0], with_c[0], atol=1e-5)
    assert not np.array_equal(with_b[1], with_c[1])  # the partners did differ
    assert class_offsets(3)[with_b[0].argmax()].tolist() == [1, -1]
