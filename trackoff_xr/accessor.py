"""The ``.trackoff`` accessor: a thin shell over the package's functions."""

from __future__ import annotations

from typing import Any

import xarray as xr

from .tracking import offsets

__all__ = ["TrackOffAccessor"]


@xr.register_dataarray_accessor("trackoff")
class TrackOffAccessor:
    """Displacement tracking from a reference image, ``ref.trackoff``.

    Examples
    --------
    >>> import trackoff_xr
    >>> from trackoff_xr.testing.synthetic import shifted_pair
    >>> ref, sec = shifted_pair(shape=(128, 128), shift=(1.0, 2.0), seed=0)
    >>> ds = ref.trackoff.offsets(sec, patch_size=32, spacing=32, search_radius=8,
    ...                           method="ncc")
    >>> sorted(ds.data_vars)
    ['dx', 'dx_error', 'dy', 'dy_error', 'peak_at_edge', 'score', 'valid']
    """

    def __init__(self, obj: xr.DataArray) -> None:
        self._obj = obj

    def offsets(self, sec: xr.DataArray, **kwargs: Any) -> xr.Dataset:
        """Offsets from this image (the reference) to ``sec``.

        Same as ``trackoff_xr.offsets(ref, sec, **kwargs)``; see
        :func:`trackoff_xr.offsets` for the parameters and the result.
        """
        return offsets(self._obj, sec, **kwargs)
