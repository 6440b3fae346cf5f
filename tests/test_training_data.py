"""Sentinel-1-like scenes and training pairs (trackoff_xr.testing.sar_scenes, make_sar_batch)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from trackoff_xr.exceptions import InvalidParameterError
from trackoff_xr.matchers.cnn.training_data import (
    DEFAULT_SPEC,
    TrainingSpec,
    make_batch,
    make_sar_batch,
)
from trackoff_xr.testing import sar_scenes
from trackoff_xr.testing.sar_scenes import (
    KINDS,
    natural_texture,
    sar_pair_layers,
    sar_scene,
    sar_scene_layers,
    sar_training_pair,
)

QUIET = dict(scatterer_density=0.0, streaks=0, crevasses=False, rim=False)


def _clean_pair(shape, seed, **kw):
    """A pair with no speckle, no radiometric change and no temporal change (unless asked)."""
    args = dict(
        looks_ref=None, looks_sec=None, frozen_looks=None, radiometry=False, decorrelation=0.0
    )
    args.update(kw)
    return sar_pair_layers(shape, seed, **args)


def test_same_seed_same_scene_and_pair_bit_for_bit():
    a, b = sar_scene((80, 96), seed=7), sar_scene((80, 96), seed=7)
    assert a.shape == (80, 96) and np.array_equal(a, b)
    assert not np.array_equal(a, sar_scene((80, 96), seed=8))
    p, q = sar_training_pair((96, 96), seed=3), sar_training_pair((96, 96), seed=3)
    for x, y in zip(p, q, strict=True):
        assert np.array_equal(x, y)
    b1 = make_sar_batch(np.random.default_rng(11), 3)
    b2 = make_sar_batch(np.random.default_rng(11), 3)
    assert all(np.array_equal(b1[k], b2[k]) for k in b1)


def test_pairs_are_8_bit_and_some_saturate():
    sat = []
    for seed in range(12):
        ref, sec, _, _ = sar_training_pair((96, 96), seed=seed)
        for img in (ref, sec):
            assert img.dtype == np.float32 and img.min() >= 0 and img.max() <= 255
            assert np.array_equal(img, np.round(img))
        sat.append(float((ref == 255).mean()))
    sat = np.array(sat)
    assert (sat > 0.05).sum() >= 3, sat  # bright ice / snow clipped in several scenes
    assert (sat < 0.05).sum() >= 2, sat  # and not in all of them


def test_white_regions_saturate_and_flat_regions_are_featureless():
    white = _clean_pair(
        (96, 96),
        0,
        scene=sar_scene_layers((96, 96), 1, ice_stream=False, kinds=("white", "white"), **QUIET),
    )
    assert (white.ref == 255).mean() > 0.9
    for seed in range(4):
        flat = sar_scene_layers((96, 96), seed, ice_stream=False, kinds=("flat", "flat"), **QUIET)
        amp = np.sqrt(flat.intensity)
        for code in np.unique(flat.labels):
            inner = (flat.labels == code) & (np.abs(flat.margin) > 3)
            if inner.sum() > 200:
                assert amp[inner].std() / amp[inner].mean() < 0.03
    # whereas fractal ground is textured
    tex = sar_scene_layers((96, 96), 0, ice_stream=False, kinds=("fractal", "fractal"), **QUIET)
    assert np.sqrt(tex.intensity).std() / np.sqrt(tex.intensity).mean() > 0.1


def test_margins_are_sharp_steps_in_mean():
    ice = KINDS.index("ice")
    steps = 0
    for seed in range(6):
        s = sar_scene_layers((128, 128), seed, ice_stream=True, kinds=("flat", "flat"), **QUIET)
        d, inside = np.abs(s.margin), s.labels == ice
        if inside.sum() < 500 or (~inside).sum() < 500:
            continue
        near_in = s.intensity[inside & (d > 0.5) & (d < 1.5)].mean()
        far_in = s.intensity[inside & (d > 2.5) & (d < 8)].mean()
        near_out = s.intensity[~inside & (d > 0.5) & (d < 1.5)].mean()
        far_out = s.intensity[~inside & (d > 2.5) & (d < 8)].mean()
        # the pixel next to the margin already has its own region's mean (no blur)
        assert abs(near_in / far_in - 1) < 0.15 and abs(near_out / far_out - 1) < 0.15
        if max(far_in / far_out, far_out / far_in) > 1.5:
            steps += 1
    assert steps >= 3


def test_scatterers_and_streaks_are_bright():
    s = sar_scene_layers(
        (128, 128),
        2,
        ice_stream=False,
        kinds=("flat", "flat"),
        scatterer_density=0.001,
        streaks=0,
        crevasses=False,
        rim=False,
    )
    assert len(s.scatterers) > 3
    med = np.median(s.intensity)
    assert (s.intensity[s.scatterers[:, 0], s.scatterers[:, 1]] > 5 * med).all()
    # cross-shaped side lobes of the sinc^2 response: brighter along the row than diagonally
    inner = [(y, x) for y, x in s.scatterers if 3 <= y < 125 and 3 <= x < 125]
    assert inner
    assert all(s.intensity[y, x + 2] > s.intensity[y + 2, x + 2] for y, x in inner)
    t = sar_scene_layers(
        (128, 128),
        2,
        ice_stream=False,
        kinds=("flat", "flat"),
        scatterer_density=0.0,
        streaks=5,
        crevasses=False,
        rim=False,
    )
    assert t.streaks.sum() > 10
    assert t.intensity[t.streaks].mean() > 3 * np.median(t.intensity[~t.streaks])
    none = sar_scene_layers((128, 128), 2, ice_stream=False, kinds=("flat", "flat"), **QUIET)
    assert not none.streaks.any() and len(none.scatterers) == 0


def test_crevasse_field_has_its_wavelength_and_orientation():
    for seed in range(10):
        s = sar_scene_layers(
            (192, 192),
            seed,
            ice_stream=True,
            kinds=("flat", "flat"),
            scatterer_density=0.0,
            streaks=0,
            crevasses=True,
            rim=False,
        )
        if s.crevasses.sum() > 3000:
            break
    else:
        pytest.fail("no scene with a large crevasse field in 10 seeds")
    amp = np.sqrt(s.intensity)
    sig = np.where(s.crevasses, amp - amp[s.crevasses].mean(), 0.0)
    power = np.abs(np.fft.fft2(sig)) ** 2
    power[0, 0] = 0
    ky, kx = np.unravel_index(np.argmax(power), power.shape)
    fy = np.fft.fftfreq(192)[ky]
    fx = np.fft.fftfreq(192)[kx]
    wavelength = 1 / np.hypot(fy, fx)
    assert abs(wavelength / s.crevasse_wavelength - 1) < 0.2
    angle = np.arctan2(fy, fx) % np.pi
    diff = abs(angle - s.crevasse_angle % np.pi)
    assert min(diff, np.pi - diff) < np.deg2rad(12)


def test_natural_textures_come_from_matplotlib_and_are_used(monkeypatch):
    dem, photo = natural_texture("dem"), natural_texture("photo")
    assert dem.shape == (344, 403) and 200 < dem.min() < dem.max() < 1200
    assert photo.shape == (600, 512) and photo.std() > 20
    with pytest.raises(InvalidParameterError, match="'moon'"):
        natural_texture("moon")

    def cv(scene):  # both sides are "photo": one region, one texture
        amp = np.sqrt(scene.intensity)
        return amp.std() / amp.mean()

    real = sar_scene_layers((96, 96), 0, ice_stream=False, kinds=("photo", "photo"), **QUIET)
    monkeypatch.setattr(sar_scenes, "natural_texture", lambda name: np.full((600, 600), 100.0))
    fake = sar_scene_layers((96, 96), 0, ice_stream=False, kinds=("photo", "photo"), **QUIET)
    assert cv(real) > 0.2 and cv(fake) < 1e-3


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_decorrelated_fraction_matches_and_texture_changes_there(fraction):
    scene = sar_scene_layers((128, 128), 5, ice_stream=False, kinds=("fractal", "fractal"), **QUIET)
    p = _clean_pair(
        (128, 128), 5, scene=scene, field="translation", shift=(0.0, 0.0), decorrelation=fraction
    )
    assert abs(p.changed.mean() - fraction) < 0.01
    ok = (p.ref < 255) & (p.sec < 255) & (p.ref > 5)
    la, lb = np.log(p.ref + 1), np.log(p.sec + 1)
    same = np.corrcoef(la[~p.changed & ok], lb[~p.changed & ok])[0, 1]
    diff = np.corrcoef(la[p.changed & ok], lb[p.changed & ok])[0, 1]
    assert same > 0.99 and diff < 0.8


def test_radiometric_change_gamma_is_recovered():
    scene = sar_scene_layers((128, 128), 6, ice_stream=False, kinds=("fractal", "fractal"), **QUIET)
    p = _clean_pair(
        (128, 128), 6, scene=scene, field="translation", shift=(0.0, 0.0), radiometry=True
    )
    assert p.gamma != 1.0
    ok = (p.ref > 20) & (p.ref < 250) & (p.sec > 20) & (p.sec < 250)
    slope = np.polyfit(np.log(p.ref[ok]), np.log(p.sec[ok]), 1)[0]
    assert abs(slope - p.gamma) < 0.05


def test_independent_speckle_has_the_asked_looks():
    for seed in range(20):
        scene = sar_scene_layers(
            (128, 128), seed, ice_stream=False, kinds=("flat", "flat"), **QUIET
        )
        if 60 < np.sqrt(scene.intensity).mean() < 200:
            break
    p = _clean_pair((128, 128), 0, scene=scene, looks_ref=4.0, looks_sec=2.0)
    for img, looks in ((p.ref, 4.0), (p.sec, 2.0)):
        code = np.bincount(scene.labels.ravel()).argmax()
        sel = (scene.labels == code) & (np.abs(scene.margin) > 2) & (img < 255)
        inten = img[sel].astype(float) ** 2
        assert (img[scene.labels == code] == 255).mean() < 0.01  # unclipped: ENL is measurable
        assert abs(inten.mean() ** 2 / inten.var() / looks - 1) < 0.15


def test_field_mean_over_the_anchor_is_the_shift():
    for field in ("affine", "glacier", "smooth"):
        p = _clean_pair(
            (144, 144), 9, field=field, shift=(2.25, -3.5), anchor=48, max_displacement=4.0
        )
        c = slice(48, 96)
        assert abs(p.dy[c, c].mean() - 2.25) < 1e-9 and abs(p.dx[c, c].mean() + 3.5) < 1e-9
        assert p.field == field
        assert np.ptp(p.dy) + np.ptp(p.dx) > 0.1  # not rigid


def test_glacier_field_shears_at_the_scene_margins():
    ice = KINDS.index("ice")
    for seed in range(10):
        p = _clean_pair((128, 128), seed, field="glacier", shift=(0.0, 0.0), anchor=None)
        if p.scene.band is not None and (p.scene.labels == ice).mean() > 0.2:
            speed = np.hypot(
                p.dy - np.median(p.dy[p.scene.labels != ice]),
                p.dx - np.median(p.dx[p.scene.labels != ice]),
            )
            if speed[p.scene.labels == ice].max() > 1:
                # motion only on the ice: the shear margin is the radiometric margin
                assert speed[p.scene.labels != ice].max() < 1e-6
                return
    pytest.fail("no glacier pair with flow along the scene's ice in 10 seeds")


def test_ncc_recovers_the_known_displacement():
    import trackoff_xr
    from trackoff_xr.testing.synthetic import truth_at_points

    p = sar_pair_layers(
        (320, 320),
        21,
        field="smooth",
        max_displacement=3.0,
        shift=(2.4, -1.7),
        looks_ref=4.0,
        looks_sec=4.0,
        decorrelation=0.1,
    )
    coords = {"y": np.arange(320.0), "x": np.arange(320.0)}
    ref = xr.DataArray(p.ref, dims=("y", "x"), coords=coords)
    sec = xr.DataArray(p.sec, dims=("y", "x"), coords=coords)
    ds = trackoff_xr.offsets(
        ref, sec, patch_size=64, spacing=32, search_radius=12, method="ncc", coarse=False
    )
    truth = truth_at_points(
        xr.Dataset({"dy": (("y", "x"), p.dy), "dx": (("y", "x"), p.dx)}, coords=coords), ds
    )
    err = np.hypot(ds.dy - truth.dy, ds.dx - truth.dx).values.ravel()
    err = err[np.isfinite(err)]
    assert err.size > 30
    assert np.median(err) < 0.3 and (err < 1).mean() > 0.8, np.percentile(err, [50, 80, 95])


def test_sar_batch_has_make_batch_format():
    spec = TrainingSpec()
    a = make_batch(np.random.default_rng(0), 3, spec)
    b = make_sar_batch(np.random.default_rng(0), 3, spec)
    for key in a:
        assert b[key].shape == a[key].shape and b[key].dtype == a[key].dtype
    assert np.allclose(b["target"].sum(axis=(1, 2)), 1)
    peak = np.array([np.unravel_index(t.argmax(), t.shape) for t in b["target"]]) - spec.radius
    assert (np.abs(peak - b["shift"]) <= 1).all()
    assert (np.abs(b["shift"]) <= spec.max_shift).all()
    # normalised inputs: zero mean, unit variance away from flat areas
    assert abs(float(b["ref"].mean())) < 0.3
    mixed = make_sar_batch(np.random.default_rng(0), 6, spec, sar_fraction=0.0)
    assert (mixed["spread"] == 0).all() and (mixed["changed"] == 0).all()


def test_sar_batch_shift_is_the_template_mean_of_the_field(monkeypatch):
    seen = {}
    real = sar_scenes.sar_pair_layers

    def spy(*args, **kw):
        seen["pair"] = p = real(*args, **kw)
        return p

    monkeypatch.setattr(sar_scenes, "sar_pair_layers", spy)
    b = make_sar_batch(np.random.default_rng(4), 1, DEFAULT_SPEC)
    r0 = (DEFAULT_SPEC.scene - DEFAULT_SPEC.patch) // 2
    c = slice(r0, r0 + DEFAULT_SPEC.patch)
    p = seen["pair"]
    assert np.allclose([p.dy[c, c].mean(), p.dx[c, c].mean()], b["shift"][0], atol=1e-5)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(InvalidParameterError, match=r"\(8, 8\)"):
        sar_scene((8, 8), 0)
    with pytest.raises(InvalidParameterError, match="'spiral'"):
        sar_pair_layers((64, 64), 0, field="spiral")
    with pytest.raises(InvalidParameterError, match="1.5"):
        sar_pair_layers((64, 64), 0, decorrelation=1.5)
    with pytest.raises(InvalidParameterError, match="-2"):
        sar_pair_layers((64, 64), 0, looks_sec=-2)
    with pytest.raises(InvalidParameterError, match="'sea'"):
        sar_scene_layers((64, 64), 0, kinds=("sea", "flat"))
    with pytest.raises(InvalidParameterError, match="1.2"):
        make_sar_batch(np.random.default_rng(0), 1, sar_fraction=1.2)
