"""Exceptions raised by trackoff_xr.

Every error derives from :class:`TrackOffError`, so ``except TrackOffError``
catches anything this package raises on purpose. Each subclass also derives
from the closest built-in exception (``ValueError``, ``OSError``, ...) so
generic handlers keep working. Messages state the value received and what to
do about it.
"""

from __future__ import annotations

__all__ = [
    "DimensionError",
    "GridMismatchError",
    "ImageReadError",
    "ImageTooSmallError",
    "InvalidParameterError",
    "MethodNotAvailableError",
    "TrackOffError",
    "UnknownMethodError",
]


class TrackOffError(Exception):
    """Base class of every error raised by trackoff_xr."""


class InvalidParameterError(TrackOffError, ValueError):
    """A numeric or string parameter is outside its allowed range."""


class UnknownMethodError(TrackOffError, ValueError):
    """The requested matching method is not one trackoff_xr knows."""


class MethodNotAvailableError(TrackOffError, RuntimeError):
    """The method exists but cannot run here (not built yet, or a missing dependency)."""


class DimensionError(TrackOffError, ValueError):
    """An input array does not have the two dimensions (rows, columns) expected."""


class GridMismatchError(TrackOffError, ValueError):
    """The reference and secondary images are not on the same grid."""


class ImageTooSmallError(TrackOffError, ValueError):
    """The image cannot hold one template plus its search window."""


class ImageReadError(TrackOffError, OSError):
    """An image file could not be found or read."""
