"""The CNN matcher's searched surface: learnt features, the normalised image, or a mix."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import trackoff_xr  # noqa: E402
from trackoff_xr import InvalidParameterError  # noqa: E402
from trackoff_xr.grid import GridSpec  # noqa: E402
from trackoff_xr.kernels import extract_windows  # noqa: E402
from trackoff_xr.kernels.ncc import ncc_surfaces  # noqa: E402
from trackoff_xr.matchers.cnn.features import extract_channels  # noqa: E402
from trackoff_xr.matchers.cnn.matcher import FUSION, CNNMatcher  # noqa: E402
from trackoff_xr.testing.synthetic import shifted_pair  # noqa: E402


@pytest.fixture(scope="module")
def batches():
    """Templates and windows of both channels for a 4 x 4 lattice of a speckled pair."""
    ref, sec = shifted_pair((224, 224), shift=(2.4, -3.6), looks=3, seed=21)
    matcher = CNNMatcher()
    fr = extract_channels(ref.values, matcher.weights)
    fs = extract_channels(sec.values, matcher.weights)
    radius, patch, spacing = 8, 32, 40
    templates = extract_windows(fr, (24, 24), (4, 4), spacing, patch)
    windows = extract_windows(fs, (24 - radius, 24 - radius), (4, 4), spacing, patch + 2 * radius)
    return np.ascontiguousarray(templates), np.ascontiguousarray(windows)


def _channel(batch, k):
    return np.ascontiguousarray(batch[..., k])


@pytest.mark.parametrize("fusion", [0.0, 0.3, 1.0])
def test_searched_surface_is_the_weighted_mean_of_both_channels_zncc(batches, fusion):
    templates, windows = batches
    _, _, _, surfaces = CNNMatcher(fusion=fusion).match_surfaces(templates, windows)
    features = ncc_surfaces(_channel(templates, 0), _channel(windows, 0))
    image = ncc_surfaces(_channel(templates, 1), _channel(windows, 1))
    np.testing.assert_allclose(surfaces, fusion * features + (1 - fusion) * image, atol=1e-6)


def test_mixes_recover_the_shift_and_differ_from_each_other(batches):
    templates, windows = batches
    found = {}
    for fusion in (0.0, FUSION, 1.0):
        dy, dx, _, surfaces = CNNMatcher(fusion=fusion).match_surfaces(templates, windows)
        assert np.nanmedian(dy) == pytest.approx(2.4, abs=0.15)
        assert np.nanmedian(dx) == pytest.approx(-3.6, abs=0.15)
        found[fusion] = surfaces
    assert not np.allclose(found[0.0], found[1.0])


def test_each_fusion_gets_its_own_calibration():
    default, features_only, other = CNNMatcher(), CNNMatcher(fusion=1.0), CNNMatcher(fusion=0.8)
    assert default.fusion == FUSION
    assert default.calibration is not None and default.calibration["fusion"] == FUSION
    assert features_only.calibration is features_only._meta["calibration"]
    assert default.calibration != features_only.calibration
    assert other.calibration is None  # no model fitted for it: the raw peak is the score


@pytest.mark.parametrize("fusion", [-0.1, 1.5, "half", None])
def test_fusion_outside_0_1_is_refused(fusion):
    with pytest.raises(InvalidParameterError, match=r"fusion=.* is not a weight in \[0, 1\]"):
        CNNMatcher(fusion=fusion)


def test_fusion_reaches_the_matcher_and_the_attributes():
    ref, sec = shifted_pair((192, 192), shift=(1.0, 2.0), looks=4, seed=3)
    ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=32, search_radius=4, fusion=1.0)
    assert ds.attrs["cnn_fusion"] == 1.0
    assert trackoff_xr.offsets(ref, sec, patch_size=32, spacing=32).attrs["cnn_fusion"] == FUSION


def test_calibration_recipe_is_one_pixel_on_fractal_and_sar_like_scenes(monkeypatch):
    """The score is P(within 1 px), fitted and checked on both kinds of generated scene."""
    from trackoff_xr.matchers.cnn import calibrate

    seen = []
    real_fractal, real_sar = calibrate.calibration_scene, calibrate.sar_calibration_scene

    def spy(kind, make):
        def wrapped(rng, size, max_displacement):
            seen.append(kind)
            return make(rng, size, max_displacement=max_displacement)

        return wrapped

    monkeypatch.setattr(calibrate, "calibration_scene", spy("fractal", real_fractal))
    monkeypatch.setattr(calibrate, "sar_calibration_scene", spy("sar", real_sar))
    first = calibrate.fit_calibration(scenes=12, size=256, fusion=0.3)
    assert seen == (["fractal"] * 3 + ["sar"] * 3) * 2  # one of each kind per grid, per run
    assert calibrate.CALIBRATION_GRIDS[0] == GridSpec(64, 32, 6)  # the default fine search
    assert first["target"] == "probability that the offset is within 1.0 px of the truth"
    assert first["held_out_points"] > 0 and 0 <= first["held_out_good_scored_below_0.1"] <= 1
    again = calibrate.fit_calibration(scenes=12, size=256, fusion=0.3)
    assert {k: again[k] for k in ("intercept", "peak", "margin")} == {
        k: first[k] for k in ("intercept", "peak", "margin")
    }


def test_shipped_calibrations_follow_the_recipe():
    import json

    from trackoff_xr.matchers.cnn.features import DEFAULT_WEIGHTS

    meta = json.loads(Path(str(DEFAULT_WEIGHTS)).with_suffix("").with_suffix(".json").read_text())
    for key, fusion in (("calibration", 1.0), ("calibration_fused", FUSION)):
        fitted = meta[key]
        assert fitted["fusion"] == fusion and fitted["scenes"] == 96 and fitted["seed"] == 1000
        assert fitted["target"].endswith("within 1.0 px of the truth")
