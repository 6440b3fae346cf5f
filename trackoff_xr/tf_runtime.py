"""One TensorFlow set-up for every network of the package (the CNN and the classifier).

TensorFlow is imported only here and only when a TensorFlow method runs, and
its thread pools are sized once per process from :func:`trackoff_xr.get_options`,
whichever network runs first.
"""

from __future__ import annotations

import threading
from typing import Any

from .exceptions import MethodNotAvailableError
from .options import get_options

__all__ = ["tensorflow"]

_lock = threading.Lock()
_pools: tuple[int, int] | None = None  # (intra, inter) once TensorFlow was set up


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
    global _pools
    with _lock:
        if _pools is None:
            options = get_options()
            intra, inter = options["tf_intra_op_threads"], options["tf_inter_op_threads"]
            try:
                tf.config.threading.set_intra_op_parallelism_threads(intra)
                tf.config.threading.set_inter_op_parallelism_threads(inter)
            except RuntimeError:  # TensorFlow already ran in this process: keep its pools
                pass
            _pools = (intra, inter)
    return tf


def thread_pools() -> tuple[int, int] | None:
    """Return the (intra-op, inter-op) pool sizes asked for, or None before TensorFlow ran."""
    return _pools
