"""The package layout (issue 11): public names, old module paths, one matcher contract."""

import ast
import importlib
import pkgutil
import types
import warnings

import numpy as np
import pytest

import trackoff_xr
from trackoff_xr import _compat
from trackoff_xr.blockwise import match_arrays, output_fields
from trackoff_xr.grid import GridSpec
from trackoff_xr.kernels.match import MatchResult, correlate_and_refine
from trackoff_xr.matchers import _REGISTRY as REGISTRY
from trackoff_xr.matchers import (
    MatcherBase,
    MatcherCapabilities,
    available_methods,
    capabilities,
    register_matcher,
)
from trackoff_xr.testing import shifted_pair

PUBLIC = [
    "AuthenticationError",
    "CalibrationNotAvailableError",
    "CoordinateError",
    "DimensionError",
    "DownloadError",
    "GridMismatchError",
    "GridSpec",
    "ImageDTypeError",
    "ImageReadError",
    "ImageTooSmallError",
    "IncompleteStoreError",
    "InvalidParameterError",
    "MethodNotAvailableError",
    "MissingCredentialsError",
    "MissingMetadataError",
    "NetworkError",
    "NotASafeProductError",
    "OutputExistsError",
    "OutputLocationError",
    "PolarisationError",
    "PolarisationMismatchWarning",
    "ProtectedOutputError",
    "TrackOffError",
    "UnknownMethodError",
    "__version__",
    "append_pair",
    "available_methods",
    "check_s1_pair",
    "fill_gaps",
    "filter_median",
    "filter_offsets",
    "filter_probability",
    "filter_score",
    "filter_velocity",
    "get_matcher",
    "get_options",
    "offsets",
    "open_image",
    "open_safe",
    "open_zarr",
    "pair_metadata",
    "register_matcher",
    "set_options",
    "speed_error",
    "stable_mask",
    "stable_shift",
    "to_csv",
    "to_geotiff",
    "to_netcdf",
    "to_zarr",
    "track_pairs",
    "velocity",
]

# old path -> (new path, a name it must forward)
MOVED = {
    "trackoff_xr.writers": ("trackoff_xr.io", "to_zarr"),
    "trackoff_xr.sentinel1": ("trackoff_xr.io.safe", "open_safe"),
    "trackoff_xr.s1": ("trackoff_xr.io.asf", "search_scenes"),
    "trackoff_xr.validation": ("trackoff_xr.inputs", "prepare_image"),
    "trackoff_xr.synthetic": ("trackoff_xr.testing.synthetic", "shifted_pair"),
    "trackoff_xr.filters": ("trackoff_xr.postprocess.filters", "filter_offsets"),
    "trackoff_xr.augment": ("trackoff_xr.kernels.augment", "pil_filter"),
    "trackoff_xr.cnn": ("trackoff_xr.matchers.cnn", "CNNMatcher"),
    "trackoff_xr.cnn.features": ("trackoff_xr.matchers.cnn.features", "DEFAULT_WEIGHTS"),
    "trackoff_xr.cnn.matcher": ("trackoff_xr.matchers.cnn.matcher", "CNNMatcher"),
    "trackoff_xr.cnn.train": ("trackoff_xr.matchers.cnn.train", "build_model"),
    "trackoff_xr.cnn.training_data": ("trackoff_xr.matchers.cnn.training_data", "make_batch"),
    "trackoff_xr.cnn.calibrate": ("trackoff_xr.matchers.cnn.calibrate", "fit_calibration"),
    "trackoff_xr.classifier": ("trackoff_xr.matchers.classifier", "ClassifierMatcher"),
    "trackoff_xr.classifier.augmentation": (
        "trackoff_xr.matchers.classifier.augmentation",
        "training_images",
    ),
    "trackoff_xr.classifier.classes": ("trackoff_xr.matchers.classifier.classes", "class_offsets"),
    "trackoff_xr.classifier.matcher": (
        "trackoff_xr.matchers.classifier.matcher",
        "ClassifierMatcher",
    ),
    "trackoff_xr.classifier.network": ("trackoff_xr.matchers.classifier.network", "NetworkSpec"),
    "trackoff_xr.classifier.filter": (
        "trackoff_xr.matchers.classifier.probability_filter",
        "filter_probability",
    ),
}


def test_public_names_are_pinned():
    assert sorted(trackoff_xr.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(trackoff_xr, name) is not None


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_path_forwards_with_a_warning(old):
    new, name = MOVED[old]
    shim = importlib.import_module(old)
    target = importlib.import_module(new)
    assert shim is not target  # the shim itself holds nothing
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        value = getattr(shim, name)
    assert value is getattr(target, name)  # the new module's own object, not a copy
    with pytest.raises(AttributeError, match="no attribute"):
        shim.no_such_name  # noqa: B018


def test_every_shim_is_listed():
    for old in MOVED:
        importlib.import_module(old)
    assert {k: v for k, v in _compat.MOVED.items()} == {k: v[0] for k, v in MOVED.items()}


def test_state_read_through_an_old_path_is_the_new_modules(monkeypatch):
    from trackoff_xr.matchers.cnn import features

    monkeypatch.setattr(features, "STRIP_ROWS", 12345)
    old = importlib.import_module("trackoff_xr.cnn.features")
    with pytest.warns(DeprecationWarning):
        assert old.STRIP_ROWS == 12345
    from trackoff_xr.cnn import features as via_from  # the shim module: it holds nothing

    assert {k for k in vars(via_from) if not k.startswith("__")} == {"moved"}
    with pytest.warns(DeprecationWarning):
        assert via_from.STRIP_ROWS == 12345


def test_velocity_is_the_function_and_its_module_is_reachable():
    module = importlib.import_module("trackoff_xr.postprocess.velocity")
    assert isinstance(module, types.ModuleType)
    assert trackoff_xr.velocity is module.velocity
    import trackoff_xr.postprocess as post

    assert post.velocity is module


def _package_modules():
    names = []
    for info in pkgutil.walk_packages(trackoff_xr.__path__, "trackoff_xr."):
        if info.name not in MOVED:
            names.append(info.name)
    return names


def test_package_code_never_uses_an_old_path():
    bad = []
    for name in _package_modules():
        spec = importlib.util.find_spec(name)
        tree = ast.parse(open(spec.origin).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in MOVED:
                bad.append((name, node.module))
            if isinstance(node, ast.ImportFrom) and node.level:
                package = name if spec.origin.endswith("__init__.py") else name.rsplit(".", 1)[0]
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    for full in (target, f"{target}.{alias.name}"):
                        if full in MOVED:
                            bad.append((name, full))
    assert bad == []


def test_importing_every_module_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in _package_modules():
            importlib.import_module(name)


class _Plain:
    """A third-party matcher declaring none of the optional capabilities."""

    name = "plain"

    def __call__(self, templates, windows):
        dy, dx, peak, _ = correlate_and_refine(templates, windows, "parabolic")
        return MatchResult(dy=dy, dx=dx, score=np.nan_to_num(peak).astype(np.float32))

    def describe(self):
        return {"kind": "plain"}


def test_a_matcher_declaring_nothing_gets_the_defaults_and_runs(monkeypatch):
    assert capabilities(_Plain()) == MatcherCapabilities(name="plain")
    monkeypatch.setitem(REGISTRY, "plain", _Plain)
    register_matcher("plain", _Plain)
    assert "plain" in available_methods()
    ref, sec = shifted_pair(shape=(128, 128), shift=(2.0, -3.0), seed=3)
    ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=32, search_radius=8, method="plain")
    assert abs(float(ds.dy.median()) - 2.0) < 0.1
    assert abs(float(ds.dx.median()) + 3.0) < 0.1
    assert ds.attrs["plain_kind"] == "plain"


def test_context_counts_only_with_a_transform():
    class NoTransform(_Plain):
        context = 7

    class WithTransform(_Plain):
        context = 7

        def transform(self, image):
            return np.stack([image, image], axis=-1)

    assert capabilities(NoTransform()).context == 0
    assert capabilities(WithTransform()).context == 7
    assert capabilities(WithTransform()).transform is not None


def test_declared_capabilities_reach_the_engine():
    class Coarse(MatcherBase):
        """Always answers dx = 4; its candidates stop at 4 (a border peak in any radius)."""

        name = "coarse"
        extra_outputs = ("twice",)

        def __call__(self, templates, windows):
            n = len(templates)
            dx = np.full(n, 4.0, dtype=np.float32)
            return types.SimpleNamespace(
                dy=np.zeros(n, np.float32), dx=dx, score=np.ones(n, np.float32), twice=2 * dx
            )

        def search_extent(self, radius):
            return 4

    matcher = Coarse()
    assert output_fields(matcher) == ("dy", "dx", "score", "peak_at_edge", "twice")
    img = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    out = match_arrays(img, img, GridSpec(8, 8, 6), matcher, (0, 0), (2, 2))
    # search_extent declared: 4 is the border although the radius is 6
    assert np.all(out[..., 3] == 1) and np.all(np.isnan(out[..., 1]))
    np.testing.assert_array_equal(out[..., 4], 8.0)
