"""Exceptions raised by trackoff_xr: one hierarchy, all in this module.

Every error derives from :class:`TrackOffError`, so ``except TrackOffError``
catches anything this package raises on purpose. Each subclass also derives
from the closest built-in exception (``ValueError``, ``OSError``, ...) so
generic handlers keep working. Messages state the value received and what to
do about it.

>>> issubclass(ProtectedOutputError, OutputExistsError)
True
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CalibrationNotAvailableError",
    "CoordinateError",
    "CoregistrationError",
    "CubeLockedError",
    "DimensionError",
    "DownloadError",
    "GeocodingError",
    "GridMismatchError",
    "ImageDTypeError",
    "ImageReadError",
    "ImageTooSmallError",
    "IncompleteStoreError",
    "InvalidParameterError",
    "MethodNotAvailableError",
    "MissingCredentialsError",
    "MissingDependencyError",
    "MissingMetadataError",
    "NetworkError",
    "NotASafeProductError",
    "OutputExistsError",
    "OutputLocationError",
    "PolarisationError",
    "PolarisationMismatchWarning",
    "PriorError",
    "ProfileGeometryError",
    "ProtectedOutputError",
    "TrackOffError",
    "UnknownMethodError",
]


class TrackOffError(Exception):
    """Base class of every error raised by trackoff_xr."""


# -- parameters and methods -------------------------------------------------


class InvalidParameterError(TrackOffError, ValueError):
    """A numeric or string parameter is outside its allowed range."""


class PriorError(TrackOffError, ValueError):
    """A ``prior=`` for :func:`trackoff_xr.offsets` that cannot centre the searches."""


class CoregistrationError(TrackOffError, ValueError):
    """Two scenes whose global offset cannot be measured (too few good matches)."""


class GeocodingError(TrackOffError, ValueError):
    """A scene that cannot be put on the asked map grid (no geolocation, no overlap, bad DEM)."""


class UnknownMethodError(TrackOffError, ValueError):
    """The requested matching method is not one trackoff_xr knows."""


class MethodNotAvailableError(TrackOffError, RuntimeError):
    """The method exists but cannot run here (not built yet, or a missing dependency)."""


# -- input images -----------------------------------------------------------


class DimensionError(TrackOffError, ValueError):
    """An input array does not have the two dimensions (rows, columns) expected."""


class CoordinateError(TrackOffError, ValueError):
    """An input's coordinates are unusable (NaN, not monotonic)."""


class ImageDTypeError(TrackOffError, TypeError):
    """An input image has a data type that is not a real-valued amplitude (complex, bool, date)."""


class GridMismatchError(TrackOffError, ValueError):
    """The reference and secondary images are not on the same grid."""


class ImageTooSmallError(TrackOffError, ValueError):
    """The image cannot hold one template plus its search window."""


class ImageReadError(TrackOffError, OSError):
    """An image file could not be found or read."""


class NotASafeProductError(ImageReadError):
    """The path is not a Sentinel-1 SAFE product (folder or zip)."""


class PolarisationError(TrackOffError, ValueError):
    """The requested polarisation is not in the product."""


class CalibrationNotAvailableError(TrackOffError, ValueError):
    """The product lacks the calibration annotation needed for the requested quantity."""


class MissingMetadataError(TrackOffError, ValueError):
    """Pixel size or time span needed for velocities is unknown."""


# -- outputs ----------------------------------------------------------------


class OutputExistsError(TrackOffError, FileExistsError):
    """The output already exists and the write mode does not allow replacing it."""


class ProtectedOutputError(OutputExistsError):
    """The target is something trackoff_xr did not write (a user's file or folder, an input).

    It is never replaced, whatever the mode.
    """


class ProfileGeometryError(TrackOffError, ValueError):
    """The result does not fit the chosen output profile (ITS_LIVE needs a map grid)."""


class MissingDependencyError(TrackOffError, ImportError):
    """A writer needs an optional package that is not installed (the message names it)."""


class OutputLocationError(TrackOffError, OSError):
    """The output cannot be written there (read-only, parent is a file, unsupported URL)."""


class IncompleteStoreError(TrackOffError, OSError):
    """A Zarr store was not completely written (its write was interrupted)."""


class CubeLockedError(TrackOffError, TimeoutError):
    """Another writer held a data cube's lock for longer than the wait allowed."""


# -- remote services --------------------------------------------------------


class AuthenticationError(TrackOffError, PermissionError):
    """Earthdata Login refused the credentials."""


class MissingCredentialsError(AuthenticationError):
    """No Earthdata Login token or ``.netrc`` entry was found."""


class NetworkError(TrackOffError, ConnectionError):
    """A remote service could not be reached or answered with an error."""


class DownloadError(NetworkError):
    """A download failed or was incomplete."""


# -- warnings ---------------------------------------------------------------


class PolarisationMismatchWarning(UserWarning):
    """The two images of a pair have different polarisations."""
