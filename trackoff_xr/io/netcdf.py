"""netCDF files, CF-1.8: :func:`to_netcdf`.

xarray's own ``Dataset.to_netcdf`` cannot write a CF-clean result by itself:
it puts ``_FillValue = NaN`` on every float coordinate (CF 2.5.1 forbids
one on coordinates), and a Dataset opened from Zarr holds its typed
attributes (``flag_values``) as JSON lists. :func:`to_netcdf` fixes both, adds
the metadata of :func:`prepare_dataset`, and follows the output rule of
:mod:`trackoff_xr.io.safety`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import xarray as xr

from ..exceptions import MissingDependencyError
from .safety import NETCDF_ATTR, _check, _protected, _write_file
from .zarr import prepare_dataset, retype_attrs

__all__ = ["to_netcdf"]


#: compression of every data variable (netCDF4/HDF5 zlib, as ITS_LIVE granules)
_COMPRESSION = {"zlib": True, "complevel": 2, "shuffle": True}


def _engine() -> Literal["netcdf4"]:
    try:
        import netCDF4  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "to_netcdf needs the netCDF4 package, which is not installed; "
            "pip install 'netCDF4>=1.7' (or write to Zarr with trackoff_xr.to_zarr)"
        ) from exc
    return "netcdf4"


def _default_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    encoding: dict[str, dict[str, Any]] = {str(n): {"_FillValue": None} for n in ds.coords}
    for name, var in ds.data_vars.items():
        if var.ndim and var.dtype.kind in "iufb":
            encoding[str(name)] = dict(_COMPRESSION)
    return encoding


def _netcdf_ready(ds: xr.Dataset) -> xr.Dataset:
    """Typed attributes, and no attribute netCDF cannot store (nested dicts as text)."""
    import json

    out = retype_attrs(ds)
    holders: list[xr.Variable | xr.Dataset] = [*out.variables.values(), out]
    for var in holders:
        for key, value in list(var.attrs.items()):
            if isinstance(value, dict):
                var.attrs[key] = json.dumps(value)
            elif isinstance(value, (list, tuple)) and any(
                isinstance(v, (list, dict)) for v in value
            ):
                var.attrs[key] = json.dumps(value)
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                var.attrs[key] = ", ".join(value)
    return out


def to_netcdf(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    mode: str = "w-",
    protect: Any = (),
    profile: str | None = None,
) -> Path:
    """Write an offsets/velocity Dataset to a CF-1.8 netCDF-4 file.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`trackoff_xr.offsets` / :func:`trackoff_xr.velocity`,
        in memory, lazy, or opened with :func:`open_zarr`.
    path : str or path-like
        A local file. It is written to a hidden partial sibling
        ``.<name>.<pid>.<random>.partial`` and renamed into place once
        complete. URLs are refused (netCDF4 writes local files).
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses any existing file; ``"w"`` replaces a file
        ``to_netcdf`` wrote (its global attributes hold
        ``trackoff_netcdf_writer``). Any other file is never replaced, a
        file exported from a store with plain ``xarray`` included.
    protect : iterable of str or path-like
        The run's inputs: never replaced (``ds.attrs["reference_image"]`` and
        ``["secondary_image"]`` too).
    profile : {None, "its_live"}, default None
        ``None``: the CF-1.8 result (checked with cfchecks and
        compliance-checker). ``"its_live"``: the layout of ITS_LIVE granules
        (:mod:`trackoff_xr.io.its_live`), not CF-clean by design.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    OutputExistsError, ProtectedOutputError, OutputLocationError
        As :func:`check_output` with ``kind="netcdf"``, before anything is
        computed.
    MissingDependencyError
        netCDF4 is not installed.
    ProfileGeometryError
        ``profile="its_live"`` with a result that is not on a map grid.

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np
    >>> ds = xr.Dataset({"dx": (("y", "x"), np.ones((1, 2), np.float32))},
    ...                 coords={"y": [15.5], "x": [15.5, 47.5]})
    >>> path = to_netcdf(ds, os.path.join(tempfile.mkdtemp(), "pair.nc"))
    >>> with xr.open_dataset(path) as back:
    ...     float(back.dx.sum()), "_FillValue" in back.x.encoding
    (2.0, False)
    >>> to_netcdf(ds, path)
    Traceback (most recent call last):
    ...
    trackoff_xr.exceptions.OutputExistsError: the output ... already exists ...; pass mode='w' ...
    """
    from .its_live import check_profile, its_live_dataset

    check_profile(profile)
    engine = _engine()
    t = _check(path, kind="netcdf", mode=mode, protected=_protected(protect, ds))
    if profile == "its_live":
        prepared, encoding = its_live_dataset(ds, engine="netcdf")
    else:
        prepared = prepare_dataset(ds)
        encoding = _default_encoding(prepared)
    prepared = _netcdf_ready(prepared)
    from .._version import __version__

    prepared.attrs[NETCDF_ATTR] = f"trackoff_xr {__version__}"  # marks the file as ours
    for var in prepared.variables.values():
        var.encoding = {}
    _write_file(
        t,
        "netcdf",
        mode,
        lambda tmp: prepared.to_netcdf(tmp, engine=engine, format="NETCDF4", encoding=encoding),
    )
    return Path(os.fspath(path))
