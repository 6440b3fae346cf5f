"""trackoff_xr: measure ground motion between two images, blockwise on xarray and dask.

Importing the package registers the ``.trackoff`` accessor on DataArrays.

>>> import trackoff_xr
>>> from trackoff_xr.synthetic import shifted_pair
>>> ref, sec = shifted_pair(shape=(128, 128), shift=(3.0, 8.0), seed=0)
>>> ds = ref.trackoff.offsets(sec, patch_size=32, spacing=32, search_radius=10, method="ncc")
>>> round(float(ds.dy.median()), 1), round(float(ds.dx.median()), 1)
(3.0, 8.0)
"""

from . import accessor as _accessor  # noqa: F401  (registers .trackoff)
from ._version import __version__
from .classifier.filter import filter_probability
from .exceptions import (
    AuthenticationError,
    CalibrationNotAvailableError,
    CoordinateError,
    DimensionError,
    DownloadError,
    GridMismatchError,
    ImageDTypeError,
    ImageReadError,
    ImageTooSmallError,
    IncompleteStoreError,
    InvalidParameterError,
    MethodNotAvailableError,
    MissingCredentialsError,
    MissingMetadataError,
    NetworkError,
    NotASafeProductError,
    OutputExistsError,
    OutputLocationError,
    PolarisationError,
    PolarisationMismatchWarning,
    ProtectedOutputError,
    TrackOffError,
    UnknownMethodError,
)
from .filters import fill_gaps, filter_median, filter_offsets, filter_score, filter_velocity
from .grid import GridSpec
from .io import open_image
from .matchers import available_methods, get_matcher, register_matcher
from .options import get_options, set_options
from .sentinel1 import check_s1_pair, open_safe
from .tracking import offsets
from .velocity import pair_metadata, velocity
from .writers import append_pair, open_zarr, to_csv, to_geotiff, to_zarr

__all__ = [
    "AuthenticationError",
    "CalibrationNotAvailableError",
    "CoordinateError",
    "DimensionError",
    "DownloadError",
    "GridMismatchError",
    "GridSpec",
    "ImageDTypeError",
    "ImageReadError",
    "ImageTooSmallError",
    "IncompleteStoreError",
    "InvalidParameterError",
    "MethodNotAvailableError",
    "MissingCredentialsError",
    "MissingMetadataError",
    "NetworkError",
    "NotASafeProductError",
    "OutputExistsError",
    "OutputLocationError",
    "PolarisationError",
    "PolarisationMismatchWarning",
    "ProtectedOutputError",
    "TrackOffError",
    "UnknownMethodError",
    "__version__",
    "append_pair",
    "available_methods",
    "check_s1_pair",
    "fill_gaps",
    "filter_median",
    "filter_offsets",
    "filter_probability",
    "filter_score",
    "filter_velocity",
    "get_matcher",
    "get_options",
    "offsets",
    "open_image",
    "open_safe",
    "open_zarr",
    "pair_metadata",
    "register_matcher",
    "set_options",
    "to_csv",
    "to_geotiff",
    "to_zarr",
    "velocity",
]
