"""One Cloud Optimized GeoTIFF per variable: :func:`to_geotiff`."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..exceptions import (
    InvalidParameterError,
)
from .safety import (
    COMPLETE_ATTR,
    TIFF_TAG,
    _check,
    _created_folders,
    _mkdir,
    _names,
    _new_partial,
    _protected,
    _remove,
    _remove_empty,
    _replace_file,
    remove_partials,
)
from .zarr import _plain

__all__ = ["to_geotiff"]


def _geotiff_array(loaded: xr.Dataset, name: str, gcps: Any) -> xr.DataArray:
    """One variable ready for ``rio.to_raster``: no inherited encodings or fill values."""
    da = loaded[name].copy()
    if da.dtype == bool:
        da = da.astype(np.uint8)
    da.encoding = {}
    for coord in da.coords.values():
        coord.encoding = {}
    drop = ("grid_mapping", "_FillValue", "missing_value")
    da.attrs = {k: str(v) for k, v in da.attrs.items() if k not in drop}
    da = da.rio.set_spatial_dims(x_dim="x", y_dim="y")
    if gcps is not None:
        da = da.drop_vars("spatial_ref").rio.write_gcps(*gcps)
    if da.dtype.kind == "f":
        da = da.rio.write_nodata(np.nan)
    return da


def to_geotiff(
    ds: xr.Dataset,
    directory: str | os.PathLike[str],
    variables: Iterable[str] = ("vx", "vy", "v"),
    *,
    cog: bool = True,
    mode: str = "w-",
    protect: Any = (),
) -> list[Path]:
    """Write each variable to ``<directory>/<name>.tif`` (Cloud Optimized GeoTIFF).

    Parameters
    ----------
    ds : xarray.Dataset
        Offsets/velocity on a regular ``(y, x)`` grid, e.g. read back with
        :func:`open_zarr`. The variables are computed together, once.
    directory : str or path-like
        A local folder, created if missing. Other files in it are left alone.
        URLs are refused: write locally, then upload.
    variables : iterable of str, default ("vx", "vy", "v")
        Names to write; missing ones raise. ``valid`` is written as uint8.
    cog : bool, default True
        Cloud Optimized GeoTIFF (GDAL's COG driver, deflate); ``False``
        writes a plain tiled GeoTIFF.
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses an existing ``<name>.tif``; ``"w"`` replaces one
        trackoff_xr wrote (it carries the ``TRACKOFF_XR_WRITER`` tag). Other
        files are never replaced.
    protect : iterable of str or path-like
        The run's inputs: never replaced (``ds.attrs["reference_image"]`` and
        ``["secondary_image"]`` too).

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    OutputExistsError, ProtectedOutputError, OutputLocationError
        As :func:`check_output` with ``kind="geotiff"``, before anything is
        computed.

    Notes
    -----
    Map grids keep their CRS and get a GeoTransform from the grid
    coordinates. Radar-geometry grids keep the product's ground control
    points, moved onto the output grid; as GDAL's COG driver cannot store
    those, they are written as tiled GeoTIFFs. Each file is written to a
    hidden partial sibling and renamed into place once all are complete.
    """
    import rioxarray  # noqa: F401  (registers .rio)

    from .._version import __version__

    names = _names(variables)
    absent = [n for n in names if n not in ds]
    if absent:
        raise InvalidParameterError(
            f"variables {absent} are not in the Dataset (it has {list(ds.data_vars)}); "
            "compute them first (e.g. trackoff_xr.velocity(ds)) or choose others"
        )
    if ds.sizes.get("y", 0) < 2 or ds.sizes.get("x", 0) < 2:
        raise InvalidParameterError(
            f"the grid has {dict(ds.sizes)} points; a GeoTIFF needs at least 2 along y and x"
        )
    t = _check(
        directory, kind="geotiff", mode=mode, protected=_protected(protect, ds), variables=names
    )
    assert t.path is not None
    loaded = ds[names].compute()
    gcps = _grid_gcps(loaded)
    tags = {**_plain_tags(ds.attrs), TIFF_TAG: __version__}
    # GDAL's COG driver drops ground control points: radar grids get a tiled GTiff
    if cog and gcps is None:
        profile: dict[str, Any] = {"driver": "COG", "compress": "deflate"}
    else:
        profile = {"driver": "GTiff", "tiled": True, "compress": "deflate"}
    created = _created_folders(t.path)
    _mkdir(t, t.path)
    files = [t.child(f"{name}.tif") for name in names]
    partials: list[Path] = []
    try:
        for name, file in zip(names, files, strict=True):
            remove_partials(file.path)
            partials.append(_new_partial(file, directory=False))
            _geotiff_array(loaded, name, gcps).rio.to_raster(partials[-1], tags=tags, **profile)
        for tmp, file in zip(partials, files, strict=True):
            _replace_file(tmp, file, "geotiff", mode)
    except BaseException:
        for tmp in partials:
            _remove(tmp)
        _remove_empty(created)
        raise
    return [Path(os.fspath(directory)) / f"{name}.tif" for name in names]


def _plain_tags(attrs: dict[str, Any]) -> dict[str, str]:
    return {k: str(_plain(v)) for k, v in attrs.items() if k != COMPLETE_ATTR}


def _grid_gcps(ds: xr.Dataset) -> tuple[list[Any], Any] | None:
    """Ground control points of the input image, moved onto the output grid."""
    if "spatial_ref" not in ds.coords or "gcps" not in ds.coords["spatial_ref"].attrs:
        return None
    from rasterio.control import GroundControlPoint

    gcps = ds.rio.get_gcps() or []
    x, y = ds["x"].values, ds["y"].values
    sx, sy = x[1] - x[0], y[1] - y[0]

    # GCP pixel-space u = coordinate + 0.5; output pixel-space = (coord - c0) / step + 0.5
    def move(u: float, c0: float, step: float) -> float:
        return float((u - 0.5 - c0) / step + 0.5)

    moved = [
        GroundControlPoint(
            row=move(g.row, y[0], sy), col=move(g.col, x[0], sx), x=g.x, y=g.y, z=g.z, id=g.id
        )
        for g in gcps
    ]
    return moved, ds.rio.crs
