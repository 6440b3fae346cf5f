"""Reading images into lazy ``(y, x)`` DataArrays with rioxarray.

:func:`open_image` reads any raster GDAL reads (GeoTIFF/COG, PNG, JPEG, ...)
from a local path, a GDAL virtual path (``/vsicurl/...``), or a URL:
``https://``/``http://`` go through ``/vsicurl/``, ``s3://`` through
``/vsis3/``, ``gs://`` through ``/vsigs/``, ``az://``/``abfs://`` through
``/vsiaz/`` (GDAL streams the byte ranges it needs, so COGs are read lazily
block by block); a file on any other fsspec protocol (``memory://``,
``ftp://``, ...) is first copied to fsspec's local ``simplecache``.
Sentinel-1 ``.SAFE`` folders and their ``.zip`` archives are handed to
:func:`trackoff_xr.io.safe.open_safe`.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import xarray as xr

from ..chunks import check_chunks as _check_chunks
from ..chunks import raster_chunks as _raster_chunks
from ..exceptions import ImageReadError, InvalidParameterError
from ..georef import crs_of, iso_date

__all__ = ["open_image"]

# ITU-R BT.601 luma weights, as PIL's convert("L") uses
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# URL schemes GDAL reads natively, and the virtual file system for each
_GDAL_SCHEMES = {
    "http": "/vsicurl/",
    "https": "/vsicurl/",
    "s3": "/vsis3/",
    "gs": "/vsigs/",
    "gcs": "/vsigs/",
    "az": "/vsiaz/",
    "abfs": "/vsiaz/",
}


def _is_url(path: str) -> bool:
    return "://" in path or path.startswith("/vsi")


def _is_safe(path: str) -> bool:
    name = path.rstrip("/\\").lower()
    if name.endswith((".safe", ".zip")):
        return True
    return os.path.isfile(os.path.join(path, "manifest.safe"))


def _gdal_path(path: str) -> tuple[str, dict[str, Any]]:
    """Map ``path`` to what rasterio opens: a GDAL path plus extra open arguments."""
    if path.startswith("/vsi") or "://" not in path:
        return path, {}
    scheme, rest = path.split("://", 1)
    scheme = scheme.lower()
    if scheme == "file":
        return rest, {}
    if scheme in ("http", "https"):
        return _GDAL_SCHEMES[scheme] + path, {}
    if scheme in _GDAL_SCHEMES:
        return _GDAL_SCHEMES[scheme] + rest, {}
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec ships with dask
        raise ImageReadError(
            f"{path!r} needs fsspec to be read; install it with `pip install fsspec`"
        ) from exc
    try:
        fs, fs_path = fsspec.core.url_to_fs(path)
    except (ImportError, ValueError) as exc:
        raise ImageReadError(
            f"no fsspec file system for {scheme!r} in {path!r} ({exc}); install the "
            "fsspec plugin for it or pass a local path"
        ) from exc
    if not fs.exists(fs_path):
        raise ImageReadError(f"no file at {path!r}; check the URL")
    # GDAL cannot stream from this file system: copy the file to fsspec's local
    # cache once and read that lazily (rasterio's Python-opener bridge breaks when
    # dask threads open and close the dataset)
    local = fsspec.open_local(f"simplecache::{path}")
    return str(local), {}


def open_image(
    path: str | os.PathLike[str],
    chunks: Any = 2048,
    *,
    date: Any = None,
    **safe_options: Any,
) -> xr.DataArray:
    """Open a GeoTIFF or PNG/JPEG as a lazy, float32, single-band ``(y, x)`` image.

    Parameters
    ----------
    path : str or path-like
        Any raster GDAL reads: GeoTIFF/COG, PNG, JPEG, ..., as a local path,
        a GDAL ``/vsi...`` path or a URL (``https://``, ``s3://``, ``gs://``,
        or any fsspec protocol). A Sentinel-1 ``.SAFE`` folder or its
        ``.zip`` is opened with :func:`trackoff_xr.io.safe.open_safe`.
    chunks : int, tuple, dict, "auto" or None, default 2048
        Dask chunks for the pixels: a positive int (pixels per chunk side),
        ``-1`` (one chunk along the axis), a ``(rows, columns)`` pair of
        those, a dict such as ``{"y": 1024, "x": 1024}``, or ``"auto"``;
        ``None`` reads eagerly into numpy.
    date : str, datetime or numpy.datetime64, optional
        Acquisition time of the image, stored as the ``acquisition_start``
        attribute (ISO 8601) so that :func:`trackoff_xr.velocity`
        can find the time between two images.
    **safe_options
        For ``.SAFE`` products only: ``polarisation`` and ``calibration``,
        passed to :func:`~trackoff_xr.io.safe.open_safe`.

    Returns
    -------
    xarray.DataArray
        Dims ``(y, x)``, float32. RGB(A) images are converted to luminance
        (alpha ignored). Images without georeferencing get pixel-index
        coordinates ``0 .. N-1``; georeferenced ones keep their coordinates
        and ``spatial_ref`` (CRS and GeoTransform, as rioxarray writes them).
        Nodata pixels (the file's nodata value) are NaN.

    Raises
    ------
    InvalidParameterError
        ``path`` is not a path (e.g. a number, or an image already opened),
        or ``chunks`` is not one of the forms above.
    ImageReadError
        If the file does not exist or cannot be read as a raster: a
        directory that is no ``.SAFE`` product (a Zarr store, say), or a
        GeoTIFF whose last block cannot be read (truncated or corrupt; checked
        here, by reading that one block, rather than at compute time).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "photo.png"
    >>> rgba = np.zeros((40, 60, 4), dtype=np.uint8); rgba[..., 1] = 100; rgba[..., 3] = 255
    >>> Image.fromarray(rgba).save(path)
    >>> img = open_image(path, chunks=20)
    >>> img.dims, img.shape, img.dtype.name
    (('y', 'x'), (40, 60), 'float32')
    >>> round(float(img[0, 0]), 1)   # luminance: 0.587 * 100
    58.7
    """
    import rioxarray  # noqa: F401  (registers .rio)
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    path_str = _path_string(path)
    _check_chunks(chunks)
    if not _is_url(path_str) and not os.path.exists(path_str):
        raise ImageReadError(
            f"no file at {path_str!r}; check the path (relative paths are taken from "
            f"{os.getcwd()!r})"
        )
    if not _is_url(path_str) and _is_safe(path_str):
        from .safe import open_safe

        image = open_safe(path_str, chunks=chunks, **safe_options)
        if date is not None:
            image.attrs["acquisition_start"] = iso_date(date)
        return image
    if safe_options:
        raise InvalidParameterError(
            f"{sorted(safe_options)} only apply to Sentinel-1 .SAFE products, but "
            f"{path_str!r} is not one; drop these arguments"
        )
    gdal_path, open_kwargs = _gdal_path(path_str)
    chunks = _raster_chunks(chunks)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            raw = rioxarray.open_rasterio(
                gdal_path, chunks=chunks, masked=True, lock=False, **open_kwargs
            )
    except (RasterioIOError, OSError, ValueError) as exc:
        raise ImageReadError(_unreadable(path_str, exc)) from exc
    if not isinstance(raw, xr.DataArray):  # a list of subdatasets, or a Dataset
        raise ImageReadError(
            f"{path_str!r} holds several subdatasets; open the one you want by its GDAL name"
        )
    _check_complete(gdal_path, path_str)
    image = _to_gray(raw)
    georeferenced = crs_of(raw) is not None or not raw.rio.transform().is_identity
    if not georeferenced:
        reopened = _pixel_grid(gdal_path, chunks, open_kwargs)
        if reopened is not None:
            image = _to_gray(reopened)
        image = image.assign_coords(
            y=np.arange(image.sizes["y"], dtype=np.float64),
            x=np.arange(image.sizes["x"], dtype=np.float64),
        )
        image = image.drop_vars("spatial_ref", errors="ignore")
    image.name = os.path.splitext(os.path.basename(path_str.rstrip("/")))[0]
    image.attrs["source"] = path_str
    if date is not None:
        image.attrs["acquisition_start"] = iso_date(date)
    return image


def _pixel_grid(gdal_path: str, chunks: Any, open_kwargs: dict[str, Any]) -> xr.DataArray | None:
    """Reopen a raster without georeferencing through a VRT that states the identity transform.

    rasterio warns (``NotGeoreferencedWarning``) every time such a file is
    opened, and dask opens it again in each thread that reads pixels, later,
    at compute time: a filter around this function could not reach those
    reads, and a process-wide one would change the caller's warning
    settings. GDAL's ``vrt://`` connection (``a_gt=``) gives the file the
    identity GeoTransform -- what rasterio assumes anyway -- so nothing is
    raised; blocks, nodata and pixel values are the file's own. A path
    holding ``?`` (a signed URL, say) cannot go into a ``vrt://`` string and
    is returned as ``None``: rasterio then warns where it reads.
    """
    import rioxarray
    from rasterio.errors import RasterioIOError

    if "?" in gdal_path:
        return None
    try:
        raw = rioxarray.open_rasterio(
            f"vrt://{gdal_path}?a_gt=0,1,0,0,0,1",
            chunks=chunks,
            masked=True,
            lock=False,
            **open_kwargs,
        )
    except (RasterioIOError, OSError, ValueError):  # a GDAL without vrt://: the plain read
        return None
    return raw if isinstance(raw, xr.DataArray) else None


def _path_string(path: Any) -> str:
    """``path`` as a str, or a clear error when it is no path at all."""
    if isinstance(path, (xr.DataArray, xr.Dataset)):
        raise InvalidParameterError(
            f"path is already an xarray.{type(path).__name__}, not a file path; "
            "open_image reads files: pass the image to trackoff_xr.offsets() directly"
        )
    if not isinstance(path, (str, bytes, os.PathLike)):
        shown = repr(path)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise InvalidParameterError(
            f"path={shown} ({type(path).__name__}) is not a file path or URL; pass a str "
            "or pathlib.Path, e.g. open_image('before.tif')"
        )
    return os.fsdecode(path)


def _unreadable(path_str: str, exc: Exception) -> str:
    """Say what ``path_str`` is, when GDAL cannot read it, and what open_image reads."""
    reads = (
        "open_image reads one raster file GDAL reads (GeoTIFF/COG, PNG, JPEG, ...) or a "
        "Sentinel-1 .SAFE product"
    )
    if not _is_url(path_str) and os.path.isdir(path_str):
        zarr_format = _zarr_format(path_str)
        if zarr_format:
            return (
                f"{path_str!r} is a Zarr store (format {zarr_format}), which GDAL cannot "
                f"read here ({exc}); {reads}: open the store with "
                f"xarray.open_zarr({path_str!r}) and pass the 2-D DataArray you want "
                "(e.g. ds['band']) to trackoff_xr.offsets()"
            )
        return f"{path_str!r} is a directory, not an image; {reads}: pass one raster file inside it"
    if not _is_url(path_str) and os.path.isfile(path_str):
        if os.path.getsize(path_str) == 0:
            return f"{path_str!r} is empty (0 bytes); copy or download the image again"
        with open(path_str, "rb") as f:
            magic = f.read(4)
        if magic in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return (
                f"{path_str!r} is a TIFF file that GDAL cannot read ({exc}): it is "
                "probably truncated or corrupt; copy or download it again"
            )
    return (
        f"could not read {path_str!r} as a raster image ({exc}); {reads}: pass a "
        "GeoTIFF, PNG or JPEG file"
    )


def _zarr_format(path: str) -> int | None:
    if os.path.isfile(os.path.join(path, "zarr.json")):
        return 3
    if any(os.path.isfile(os.path.join(path, n)) for n in (".zgroup", ".zarray")):
        return 2
    return None


def _check_complete(gdal_path: str, path_str: str) -> None:
    """Read the last block of a GeoTIFF, so that a truncated file fails at open.

    The pixels are otherwise read only at compute time, where a short file
    shows up as a GDAL read error in a dask task. GDAL writes a GeoTIFF's
    blocks in order, so a file cut short loses its last block first; one
    block (one strip or tile, every band) is cheap to read, also remotely.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(gdal_path)
        with src:
            if src.driver != "GTiff" or src.width == 0 or src.height == 0:
                return
            block_rows, block_cols = src.block_shapes[0]
            last = (-(-src.height // block_rows) - 1, -(-src.width // block_cols) - 1)
            src.read(window=src.block_window(1, *last))
    except RasterioIOError as exc:
        cause = exc.__cause__ or exc.__context__
        detail = str(cause) if cause is not None else str(exc)
        raise ImageReadError(
            f"{path_str!r} is truncated or corrupt: its last block cannot be read "
            f"({detail}); copy or download the file again"
        ) from exc


def _to_gray(raw: xr.DataArray) -> xr.DataArray:
    bands = raw.sizes.get("band", 1)
    attrs = {k: v for k, v in raw.attrs.items() if k not in ("scale_factor", "add_offset")}
    if bands >= 3:
        weights = xr.DataArray(_LUMA, dims="band", coords={"band": raw.band[:3]})
        gray = (raw.isel(band=slice(0, 3)).astype(np.float32) * weights).sum("band")
    else:
        gray = raw.isel(band=0, drop=True).astype(np.float32)
    gray = gray.drop_vars("band", errors="ignore")
    gray.attrs = attrs
    return gray
