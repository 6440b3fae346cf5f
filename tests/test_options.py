"""set_options: process-wide options with environment defaults, one TensorFlow set-up."""

import subprocess
import sys

import pytest

import trackoff_xr
from trackoff_xr.options import get_options, set_options


def test_set_options_as_context_manager_restores():
    before = get_options()
    with set_options(tf_intra_op_threads=3, tf_inter_op_threads=2):
        assert get_options()["tf_intra_op_threads"] == 3
        assert get_options()["tf_inter_op_threads"] == 2
    assert get_options() == before


def test_environment_gives_the_defaults(monkeypatch):
    monkeypatch.setenv("TRACKOFF_TF_THREADS", "4")
    assert get_options()["tf_intra_op_threads"] == 4
    with set_options(tf_intra_op_threads=2):  # explicit beats the environment
        assert get_options()["tf_intra_op_threads"] == 2


@pytest.mark.parametrize(
    "options", [{"tf_intra_op_threads": 0}, {"tf_intra_op_threads": "2"}, {"colour": 1}]
)
def test_bad_options_are_refused(options):
    with pytest.raises(trackoff_xr.InvalidParameterError, match="set_options|option|integer"):
        set_options(**options)
    assert "colour" not in get_options()


def test_bad_environment_value_is_named(monkeypatch):
    monkeypatch.setenv("TRACKOFF_TF_INTEROP_THREADS", "many")
    with pytest.raises(trackoff_xr.InvalidParameterError, match="TRACKOFF_TF_INTEROP_THREADS"):
        get_options()


def _python(code):
    """Run ``code`` in a fresh interpreter; return its printed words."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_both_networks_share_one_tensorflow_configuration():
    # in a fresh process: whichever network asks first, both get the options' pools
    code = (
        "import trackoff_xr\n"
        "from trackoff_xr.tf_runtime import tensorflow, thread_pools\n"
        "trackoff_xr.set_options(tf_intra_op_threads=1, tf_inter_op_threads=3)\n"
        "tf = tensorflow('classifier')\n"
        "tensorflow('cnn')\n"
        "print(thread_pools(), tf.config.threading.get_intra_op_parallelism_threads(),\n"
        "      tf.config.threading.get_inter_op_parallelism_threads())\n"
    )
    out = _python(code)
    assert out[-4:] == ["(1,", "3)", "1", "3"]


@pytest.mark.parametrize("bad", ["gpu0", 1, None])
def test_bad_tf_device_is_refused(bad):
    with pytest.raises(trackoff_xr.InvalidParameterError, match="tf_device"):
        set_options(tf_device=bad)


@pytest.mark.parametrize("bad", ["onnx", "OpenCV", "gpu", 1, None])
def test_bad_cnn_runtime_is_refused(bad):
    with pytest.raises(trackoff_xr.InvalidParameterError, match="cnn_runtime"):
        set_options(cnn_runtime=bad)


def test_cnn_runtime_option_and_environment(monkeypatch):
    assert get_options()["cnn_runtime"] == "auto"
    with set_options(cnn_runtime="opencv"):
        assert get_options()["cnn_runtime"] == "opencv"
    assert get_options()["cnn_runtime"] == "auto"
    monkeypatch.setenv("TRACKOFF_CNN_RUNTIME", " OpenCV ")
    assert get_options()["cnn_runtime"] == "opencv"
    monkeypatch.setenv("TRACKOFF_CNN_RUNTIME", "tflite")
    with pytest.raises(trackoff_xr.InvalidParameterError, match="TRACKOFF_CNN_RUNTIME"):
        get_options()


def test_auto_runtime_is_the_faster_on_the_cpu_and_tensorflow_on_a_gpu(monkeypatch):
    from trackoff_xr import tf_runtime
    from trackoff_xr.matchers.cnn import features
    from trackoff_xr.matchers.cnn.features import network_runtime

    # as if the CPU timing had found OpenCV faster for the shipped weights
    monkeypatch.setitem(features._FASTEST, str(features.DEFAULT_WEIGHTS), "opencv")
    for device, expected in [("cpu", "opencv"), (None, "opencv"), ("gpu", "tensorflow")]:
        monkeypatch.setattr(tf_runtime, "_device", device)
        assert network_runtime() == expected
        with set_options(cnn_runtime="tensorflow"):
            assert network_runtime() == "tensorflow"
        with set_options(cnn_runtime="opencv"):
            assert network_runtime() == "opencv"


@pytest.mark.parametrize("slow", ["opencv", "tensorflow"])
def test_fastest_cpu_runtime_times_both_once_and_picks_the_faster(monkeypatch, slow):
    import time

    pytest.importorskip("tensorflow")
    from trackoff_xr.matchers.cnn import features

    weights = str(features.DEFAULT_WEIGHTS)
    monkeypatch.setattr(features, "_FASTEST", {})
    features.get_network(weights)
    calls = {"opencv": 0, "tensorflow": 0}
    real_forward, real_function = features.filter_forward, features._COMPILED[weights]

    def forward(layers, image):
        calls["opencv"] += 1
        time.sleep(0.05 if slow == "opencv" else 0)
        return real_forward(layers, image)

    def function(batch):
        calls["tensorflow"] += 1
        time.sleep(0.05 if slow == "tensorflow" else 0)
        return real_function[0](batch)

    monkeypatch.setattr(features, "filter_forward", forward)
    monkeypatch.setitem(features._COMPILED, weights, (function, *real_function[1:]))
    fast = {"opencv": "tensorflow", "tensorflow": "opencv"}[slow]
    assert features.fastest_cpu_runtime(weights) == fast
    assert calls == {"opencv": 4, "tensorflow": 4}  # a warm-up and three timed runs each
    with set_options(cnn_runtime="auto"):
        assert features.network_runtime(weights) in (fast, "tensorflow")  # GPU: tensorflow
    assert features.fastest_cpu_runtime(weights) == fast and calls["opencv"] == 4  # kept


def test_tf_device_environment_default(monkeypatch):
    monkeypatch.setenv("TRACKOFF_TF_DEVICE", "CPU")
    assert get_options()["tf_device"] == "cpu"
    monkeypatch.setenv("TRACKOFF_TF_DEVICE", "tpu")
    with pytest.raises(trackoff_xr.InvalidParameterError, match="TRACKOFF_TF_DEVICE"):
        get_options()


class _FakeTF:
    """Just the tf.config calls the device set-up makes, recorded."""

    def __init__(self, gpus, initialised=False):
        from types import SimpleNamespace

        self.calls = []

        def visible(devices, kind):
            if initialised:
                raise RuntimeError("Visible devices cannot be modified after being initialized")
            self.calls.append(("visible", devices, kind))

        def growth(gpu, grow):
            if initialised:
                raise RuntimeError("Physical devices cannot be modified after being initialized")
            self.calls.append(("growth", gpu, grow))

        self.config = SimpleNamespace(
            list_physical_devices=lambda kind: list(gpus) if kind == "GPU" else [],
            set_visible_devices=visible,
            experimental=SimpleNamespace(set_memory_growth=growth),
        )


def test_gpus_grow_their_memory_or_are_hidden():
    from trackoff_xr.tf_runtime import configure_devices

    two = _FakeTF(["GPU:0", "GPU:1"])
    assert configure_devices(two, "auto") == "gpu"
    assert two.calls == [("growth", "GPU:0", True), ("growth", "GPU:1", True)]
    hidden = _FakeTF(["GPU:0"])
    assert configure_devices(hidden, "cpu") == "cpu"
    assert hidden.calls == [("visible", [], "GPU")]
    none = _FakeTF([])
    assert configure_devices(none, "auto") == "cpu" and none.calls == []
    late = _FakeTF(["GPU:0"], initialised=True)  # TensorFlow already ran: kept, no error
    assert configure_devices(late, "auto") == "gpu"
    assert configure_devices(late, "cpu") == "gpu"  # too late to hide its GPUs: said so


def test_networks_run_on_a_gpu_exactly_when_one_is_seen():
    code = (
        "from trackoff_xr.tf_runtime import tensorflow, device\n"
        "tf = tensorflow('cnn')\n"
        "print(device(), len(tf.config.list_physical_devices('GPU')))\n"
    )
    out = _python(code)
    # on a GPU when TensorFlow sees one (this CPU machine: none), else on the CPU
    assert out[-2] == ("gpu" if out[-1] != "0" else "cpu")


def test_malloc_mmap_threshold_option(monkeypatch):
    from trackoff_xr.options import MMAP_THRESHOLD

    monkeypatch.delenv("TRACKOFF_MALLOC_MMAP_THRESHOLD", raising=False)
    assert get_options()["malloc_mmap_threshold"] == MMAP_THRESHOLD == 4 * 2**20
    monkeypatch.setenv("TRACKOFF_MALLOC_MMAP_THRESHOLD", "0")
    assert get_options()["malloc_mmap_threshold"] == 0
    monkeypatch.setenv("TRACKOFF_MALLOC_MMAP_THRESHOLD", "lots")
    with pytest.raises(trackoff_xr.InvalidParameterError, match="TRACKOFF_MALLOC_MMAP_THRESHOLD"):
        get_options()
    monkeypatch.delenv("TRACKOFF_MALLOC_MMAP_THRESHOLD")
    for bad in (-1, 1.5, True, "4M"):
        with pytest.raises(trackoff_xr.InvalidParameterError, match="malloc_mmap_threshold"):
            set_options(malloc_mmap_threshold=bad)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tensorflow_setup_sets_the_mmap_threshold_unless_the_user_did():
    # in fresh processes: the set-up applies the option once, a user's glibc setting wins
    code = (
        "import trackoff_xr.tf_runtime as rt\n"
        "seen = []\n"
        "real = rt.release_large_blocks\n"
        "rt.release_large_blocks = lambda t: seen.append(real(t)) or seen[-1]\n"
        "rt.tensorflow('cnn'); rt.tensorflow('cnn')\n"
        "print(seen, real(0))\n"
    )
    assert _python(code) == ["[True]", "False"]
    env = {**__import__("os").environ, "MALLOC_MMAP_THRESHOLD_": "1048576"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.split() == ["[False]", "False"]
