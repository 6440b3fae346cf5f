"""Process-wide options, set with :func:`set_options` (as xarray's ``set_options``).

Environment variables give the defaults, so a batch job can set them without
code; :func:`set_options` overrides them, for the whole process or, used as a
context manager, for a block of code.

========================  ==============================  ===================================
option                    environment default             meaning
========================  ==============================  ===================================
``tf_intra_op_threads``   ``TRACKOFF_TF_THREADS`` or 1     threads of one TensorFlow op: dask
                                                          already runs one block per core
``tf_inter_op_threads``   ``TRACKOFF_TF_INTEROP_THREADS``  TensorFlow ops run concurrently;
                          or the number of cores          with 1, the network calls of two
                                                          dask threads were serialised
                                                          (measured 1.03x against 1.8x)
``tf_device``             ``TRACKOFF_TF_DEVICE`` or        ``"auto"``: TensorFlow's networks
                          ``"auto"``                      run on a GPU when it sees one
                                                          (memory grown as needed, so
                                                          several workers share it);
                                                          ``"cpu"``: GPUs are hidden
``malloc_mmap_threshold`` ``TRACKOFF_MALLOC_MMAP_``        bytes: from TensorFlow's first
                          ``THRESHOLD`` or 4 MiB          use, glibc gives blocks this large
                                                          their own pages, returned when
                                                          freed; 0 leaves glibc's own rule
``cnn_runtime``           ``TRACKOFF_CNN_RUNTIME`` or      what runs the CNN's trained network:
                          ``"auto"``                      ``"auto"``: on the CPU the faster of
                                                          OpenCV filters and TensorFlow, timed
                                                          once per process; TensorFlow where
                                                          it runs on a GPU; ``"tensorflow"``
                                                          (CPU or GPU); ``"opencv"`` (CPU)
========================  ==============================  ===================================

Why ``malloc_mmap_threshold``: glibc raises its threshold for giving a block
its own pages each time such a block is freed (up to 32 MiB), after which
multi-megabyte temporaries come from per-thread heaps that keep their pages.
With TensorFlow's threads beside dask's, that is what held a ``cnn`` run's
peak above 2 GB: a quarter IW scene, 2 threads, peaked at 2,061 MB with
glibc's rule, 1,827 MB with a fixed 4 MiB threshold (same speed: 51.3 and
52.7 s), 1,947 MB with ``MALLOC_ARENA_MAX=2``. (dask's nanny sets glibc's
``MALLOC_TRIM_THRESHOLD_`` in its workers for the same reason.) A
``MALLOC_MMAP_THRESHOLD_`` set in the environment is left as it is.

Why ``cnn_runtime``: OpenCV runs the same network as a stack of
``cv2.filter2D`` calls, one per pair of input and output channels
(:func:`trackoff_xr.matchers.cnn.features.filter_forward`); the features agree
with TensorFlow's to ~3e-6. On 2026-12-03's AVX2-only 2-core machine,
``offsets(method="cnn")`` on a 4096 x 4096 real-texture pair (two threads, best
of two) took 6.8 s with it, 9.5 s with OpenCV's ``dnn`` module (the runtime of
session 10) and, in an earlier run that day, 11.4 s with TensorFlow: oneDNN is inefficient at the
network's narrow layers, OpenCV's filters are not. On 2026-12-04's machine
(AVX-512 and AMX) it was the other way round: one thread ran a 266 x 1,200
strip in 17-18 ms with TensorFlow and 38-40 ms with the filters. So
``"auto"`` times both on one strip, once per process, and keeps the faster
(:func:`trackoff_xr.matchers.cnn.features.fastest_cpu_runtime`); where
TensorFlow runs on a GPU (``tf_device``) it picks TensorFlow.

TensorFlow sizes its thread pools once, when it first runs: the values in
force at that moment are the ones used for the rest of the process.

>>> import trackoff_xr
>>> with trackoff_xr.set_options(tf_intra_op_threads=2):
...     trackoff_xr.get_options()["tf_intra_op_threads"]
2
>>> trackoff_xr.get_options()["tf_intra_op_threads"] == _defaults()["tf_intra_op_threads"]
True
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

from .exceptions import InvalidParameterError

__all__ = ["get_options", "set_options"]


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise InvalidParameterError(
            f"the environment variable {name}={text!r} is not an integer >= {minimum}; set it "
            f"to e.g. {max(minimum, 1)} or unset it"
        )
    return value


#: values of the ``tf_device`` option
TF_DEVICES = ("auto", "cpu")
#: values of the ``cnn_runtime`` option
CNN_RUNTIMES = ("auto", "tensorflow", "opencv")


def _env_choice(name: str, default: str, choices: tuple[str, ...] = TF_DEVICES) -> str:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    value = text.strip().lower()
    if value not in choices:
        raise InvalidParameterError(
            f"the environment variable {name}={text!r} is not one of {list(choices)}; "
            f"set it to one of them, e.g. {default!r}, or unset it"
        )
    return value


#: default of the ``malloc_mmap_threshold`` option (bytes)
MMAP_THRESHOLD = 4 * 2**20


def _defaults() -> dict[str, Any]:
    return {
        "tf_intra_op_threads": _env_int("TRACKOFF_TF_THREADS", 1),
        "tf_inter_op_threads": _env_int("TRACKOFF_TF_INTEROP_THREADS", os.cpu_count() or 1),
        "tf_device": _env_choice("TRACKOFF_TF_DEVICE", "auto"),
        "malloc_mmap_threshold": _env_int(
            "TRACKOFF_MALLOC_MMAP_THRESHOLD", MMAP_THRESHOLD, minimum=0
        ),
        "cnn_runtime": _env_choice("TRACKOFF_CNN_RUNTIME", "auto", CNN_RUNTIMES),
    }


_OVERRIDES: dict[str, Any] = {}


def _check(name: str, value: Any) -> Any:
    if name not in _defaults():
        raise InvalidParameterError(
            f"{name!r} is not a trackoff_xr option; use one of {sorted(_defaults())}"
        )
    if name == "tf_device":
        if value not in TF_DEVICES:
            raise InvalidParameterError(
                f"tf_device={value!r} is not one of {list(TF_DEVICES)}; pass tf_device='auto' "
                "(a GPU when TensorFlow sees one) or tf_device='cpu'"
            )
        return value
    if name == "cnn_runtime":
        if value not in CNN_RUNTIMES:
            raise InvalidParameterError(
                f"cnn_runtime={value!r} is not one of {list(CNN_RUNTIMES)}; pass "
                "cnn_runtime='auto' (OpenCV on the CPU, TensorFlow on a GPU), 'tensorflow' "
                "(CPU or GPU) or 'opencv' (CPU)"
            )
        return value
    if name == "malloc_mmap_threshold":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidParameterError(
                f"malloc_mmap_threshold={value!r} is not a number of bytes >= 0; pass e.g. "
                "malloc_mmap_threshold=4 * 2**20, or 0 to leave glibc's own rule"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError(f"{name}={value!r} is not an integer >= 1; pass e.g. {name}=1")
    return value


def get_options() -> dict[str, Any]:
    """Return the options in force: environment defaults updated by :func:`set_options`."""
    options = _defaults()
    options.update(_OVERRIDES)
    return options


class set_options:  # noqa: N801  (used like a function, as xarray.set_options)
    """Set options for the process, or for a ``with`` block.

    Parameters
    ----------
    **options
        ``tf_intra_op_threads``, ``tf_inter_op_threads`` (integers >= 1),
        ``tf_device`` (``"auto"`` or ``"cpu"``), ``malloc_mmap_threshold``
        (bytes >= 0), ``cnn_runtime`` (``"tensorflow"`` or
        ``"opencv"``).

    Examples
    --------
    >>> import trackoff_xr
    >>> with trackoff_xr.set_options(tf_inter_op_threads=1):
    ...     pass
    """

    def __init__(self, **options: Any) -> None:
        checked = {name: _check(name, value) for name, value in options.items()}
        self._previous = dict(_OVERRIDES)
        _OVERRIDES.update(checked)

    def __enter__(self) -> set_options:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _OVERRIDES.clear()
        _OVERRIDES.update(self._previous)
