"""Per-thread scratch buffers, reused from block to block.

On the machines measured here a fresh multi-megabyte numpy array costs more
to page in than the arithmetic done in it (dividing a 1024 x 3600 float32
array into a new array ran 3x slower than into a reused one; summing an
integral image into new 9 MB box-sum images took 20 µs per grid point, the
correlations themselves 18). Kernels therefore take their large
temporaries from :func:`scratch`: one growing buffer per name and thread
(dask's worker threads each keep their own), handed out as a view of the
shape asked for. Contents are undefined.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

__all__ = ["scratch"]

_local = threading.local()

#: buffers larger than this are not kept between calls
MAX_KEPT_BYTES = 256 * 2**20


def scratch(name: str, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """Return an uninitialised array of ``shape`` from this thread's buffer ``name``.

    Two names are two buffers: a caller must not ask twice for the same name
    while it still uses the first array.

    Examples
    --------
    >>> a = scratch("doc", (3, 4))
    >>> b = scratch("doc", (2, 2))
    >>> np.shares_memory(a, b), b.shape
    (True, (2, 2))
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    nbytes = size * dtype.itemsize
    if nbytes > MAX_KEPT_BYTES:
        return np.empty(shape, dtype)
    pool: dict[str, np.ndarray] = _local.__dict__.setdefault("pool", {})
    buffer = pool.get(name)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = np.empty(max(nbytes, 1), dtype=np.uint8)
        pool[name] = buffer
    return buffer[:nbytes].view(dtype).reshape(shape)
