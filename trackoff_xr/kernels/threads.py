"""OpenCV's own thread pool, turned down while trackoff_xr's kernels run.

The kernels call OpenCV once per small window (a 64 px template in a 96 px
window). OpenCV would split each call over its thread pool, which for such
small problems costs more than it gains -- measured on 2 cores, a serial
``matchTemplate`` loop ran at 13,200 windows/s with OpenCV's 2 threads and
15,200/s with one -- and, under dask, the pool's threads compete with dask's
own. The calls release the GIL, so dask's threads are the parallelism.

:func:`opencv_threads` is reference counted: the first kernel to enter sets
the pool size, the last to leave restores what was there, so concurrent
kernels in dask's threads never toggle it under one another.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["opencv_threads"]

_lock = threading.Lock()
_users = 0
_saved: int | None = None


@contextmanager
def opencv_threads(count: int = 1) -> Iterator[None]:
    """Run the block with OpenCV's thread pool at ``count`` threads.

    Examples
    --------
    >>> import cv2
    >>> before = cv2.getNumThreads()
    >>> with opencv_threads(1):
    ...     cv2.getNumThreads()
    1
    >>> cv2.getNumThreads() == before
    True
    """
    import cv2

    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = cv2.getNumThreads()
            if _saved != count:
                cv2.setNumThreads(count)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                if cv2.getNumThreads() != _saved:
                    cv2.setNumThreads(_saved)
                _saved = None
