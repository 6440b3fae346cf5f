"""One TensorFlow set-up for every network of the package (the CNN and the classifier).

TensorFlow is imported only here and only when a TensorFlow method runs, and
its thread pools and devices are set once per process from
:func:`trackoff_xr.get_options`, whichever network runs first.

GPUs: with the ``cnn-gpu`` install extra, TensorFlow sees the machine's
GPUs, and with ``tf_device="auto"`` (the default) the networks run there,
strip by strip as on the CPU (so GPU memory is bounded by the strip, not the
scene). Each GPU's memory is grown as needed rather than reserved whole, so
several dask workers can share one. ``tf_device="cpu"`` hides the GPUs.
"""

from __future__ import annotations

import threading
from typing import Any

from .exceptions import MethodNotAvailableError
from .options import get_options

__all__ = ["configure_devices", "release_large_blocks", "tensorflow"]

_lock = threading.Lock()
_pools: tuple[int, int] | None = None  # (intra, inter) once TensorFlow was set up
_device: str | None = None  # "gpu" or "cpu" once TensorFlow was set up


def configure_devices(tf: Any, device: str) -> str:
    """Set up TensorFlow's GPUs for ``device`` (``"auto"`` or ``"cpu"``); return the one used.

    ``"auto"`` with GPUs visible: memory growth on each (no GPU is reserved
    whole by one process) and ``"gpu"`` is returned; ``"cpu"``: the GPUs are
    made invisible. Without GPUs, ``"cpu"``. Once TensorFlow has run, its
    devices can no longer change: what it has is kept and reported.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> calls = []
    >>> fake = SimpleNamespace(config=SimpleNamespace(
    ...     list_physical_devices=lambda kind: ["GPU:0"] if kind == "GPU" else [],
    ...     set_visible_devices=lambda devices, kind: calls.append(("visible", devices, kind)),
    ...     experimental=SimpleNamespace(
    ...         set_memory_growth=lambda gpu, grow: calls.append(("growth", gpu, grow)))))
    >>> configure_devices(fake, "auto"), calls
    ('gpu', [('growth', 'GPU:0', True)])
    >>> calls.clear(); configure_devices(fake, "cpu"), calls
    ('cpu', [('visible', [], 'GPU')])
    """
    gpus = list(tf.config.list_physical_devices("GPU"))
    if not gpus:
        return "cpu"
    if device == "cpu":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # TensorFlow already initialised its GPUs: they stay in use
            return "gpu"
        return "cpu"
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: its memory policy is kept
            pass
    return "gpu"


def release_large_blocks(threshold: int) -> bool:
    """Have glibc give every block of ``threshold`` bytes or more its own pages.

    Such blocks are returned to the system when freed, instead of staying in
    a thread's heap (see ``malloc_mmap_threshold`` in
    :mod:`trackoff_xr.options`). Does nothing, and returns False, for a
    threshold of 0, outside glibc, or when ``MALLOC_MMAP_THRESHOLD_`` is set
    in the environment (the user's choice stands).

    Examples
    --------
    >>> release_large_blocks(0)
    False
    """
    import ctypes
    import os

    if threshold <= 0 or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:  # the process's own symbols: glibc's, on a glibc system
        libc = ctypes.CDLL(None)
        mallopt, _ = libc.mallopt, libc.gnu_get_libc_version
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3  # glibc's M_MMAP_THRESHOLD
    return bool(mallopt(ctypes.c_int(m_mmap_threshold), ctypes.c_int(int(threshold))))


def tensorflow(method: str) -> Any:
    """Import TensorFlow for ``method``, its thread pools sized by the options.

    Parameters
    ----------
    method : str
        The method that needs it, named in the error if TensorFlow is missing.

    Returns
    -------
    module
        ``tensorflow``.

    Raises
    ------
    MethodNotAvailableError
        TensorFlow is not installed.
    """
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MethodNotAvailableError(
            f"method={method!r} needs TensorFlow, which is not installed; install it with "
            "pip install 'trackoff_xr[cnn]', or use method='ncc'"
        ) from exc
    global _pools, _device
    with _lock:
        if _pools is None:
            options = get_options()
            release_large_blocks(options["malloc_mmap_threshold"])
            _device = configure_devices(tf, options["tf_device"])
            intra, inter = options["tf_intra_op_threads"], options["tf_inter_op_threads"]
            try:
                tf.config.threading.set_intra_op_parallelism_threads(intra)
                tf.config.threading.set_inter_op_parallelism_threads(inter)
            except RuntimeError:  # TensorFlow already ran in this process: keep its pools
                pass
            _pools = (intra, inter)
    return tf


def device() -> str | None:
    """Return where the networks run (``"gpu"`` or ``"cpu"``), or None before TensorFlow ran."""
    return _device


def thread_pools() -> tuple[int, int] | None:
    """Return the (intra-op, inter-op) pool sizes asked for, or None before TensorFlow ran."""
    return _pools
