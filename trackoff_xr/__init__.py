"""trackoff_xr: measure ground motion between two images, blockwise on xarray and dask.

Importing the package registers the ``.trackoff`` accessor on DataArrays.

>>> import trackoff_xr
>>> from trackoff_xr.testing.synthetic import shifted_pair
>>> ref, sec = shifted_pair(shape=(128, 128), shift=(3.0, 8.0), seed=0)
>>> ds = ref.trackoff.offsets(sec, patch_size=32, spacing=32, search_radius=10, method="ncc")
>>> round(float(ds.dy.median()), 1), round(float(ds.dx.median()), 1)
(3.0, 8.0)
"""

from . import accessor as _accessor  # noqa: F401  (registers .trackoff)
from ._version import __version__
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
from .grid import GridSpec
from .io.csv import to_csv
from .io.geotiff import to_geotiff
from .io.netcdf import to_netcdf
from .io.raster import open_image
from .io.safe import check_s1_pair, open_safe
from .io.zarr import append_pair, open_zarr, to_zarr
from .matchers import available_methods, get_matcher, register_matcher
from .matchers.classifier.probability_filter import filter_probability
from .options import get_options, set_options
from .postprocess.errors import speed_error
from .postprocess.filters import (
    fill_gaps,
    filter_median,
    filter_offsets,
    filter_score,
    filter_velocity,
)
from .postprocess.stable import stable_mask, stable_shift
from .postprocess.velocity import pair_metadata, velocity
from .stacks import track_pairs
from .tracking import offsets

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
    "speed_error",
    "stable_mask",
    "stable_shift",
    "to_csv",
    "to_geotiff",
    "to_netcdf",
    "to_zarr",
    "track_pairs",
    "velocity",
]
