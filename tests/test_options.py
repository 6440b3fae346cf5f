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
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[-4:] == ["(1,", "3)", "1", "3"]
