"""Chunk sizes for reading images: what ``open_image`` and ``open_safe`` accept.

>>> raster_chunks((1024, 2048))
{'band': 1, 'y': 1024, 'x': 2048}
>>> check_chunks(0)
Traceback (most recent call last):
...
trackoff_xr.exceptions.InvalidParameterError: chunks=0 is not accepted; pass a positive int ...
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .exceptions import InvalidParameterError

__all__ = ["check_chunks", "raster_chunks"]

_CHUNKS_FORMS = (
    "pass a positive int (pixels per chunk side, e.g. 2048), -1 for one chunk along each "
    "axis, a (rows, columns) pair of those, a dict such as {'y': 1024, 'x': 1024}, "
    "'auto', or None to read into memory"
)
_CHUNK_DIMS = ("y", "x", "band")


def _chunk_size_ok(value: Any) -> bool:
    if value == "auto" and isinstance(value, str):
        return True
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return False
    return bool(value >= 1 or value == -1)


def check_chunks(chunks: Any) -> None:
    """Raise :class:`InvalidParameterError` unless ``chunks`` is a form open_image takes."""
    if chunks is None or _chunk_size_ok(chunks):
        return
    if isinstance(chunks, (tuple, list)) and len(chunks) == 2:
        if all(_chunk_size_ok(c) for c in chunks):
            return
    elif isinstance(chunks, dict):
        unknown = [k for k in chunks if k not in _CHUNK_DIMS]
        if unknown:
            raise InvalidParameterError(
                f"chunks={chunks!r} names {unknown}, which are not dimensions of the "
                f"image (it has 'y' and 'x'); {_CHUNKS_FORMS}"
            )
        if all(_chunk_size_ok(c) or c is None for c in chunks.values()):
            return
    raise InvalidParameterError(f"chunks={chunks!r} is not accepted; {_CHUNKS_FORMS}")


def raster_chunks(chunks: Any) -> Any:
    """Chunks for rioxarray's (band, y, x) array from our (y, x) ones."""
    check_chunks(chunks)
    if isinstance(chunks, (tuple, list)) and len(chunks) == 2:
        return {"band": 1, "y": chunks[0], "x": chunks[1]}
    return chunks
