"""Reading images into lazy ``(y, x)`` DataArrays with rioxarray."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import xarray as xr

from .exceptions import ImageReadError

__all__ = ["open_image"]

# ITU-R BT.601 luma weights, as PIL's convert("L") uses
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _is_url(path: str) -> bool:
    return "://" in path or path.startswith("/vsi")


def open_image(path: str | os.PathLike[str], chunks: Any = 2048) -> xr.DataArray:
    """Open a GeoTIFF or PNG/JPEG as a lazy, float32, single-band ``(y, x)`` image.

    Parameters
    ----------
    path : str or path-like
        Any raster GDAL reads: GeoTIFF/COG, PNG, JPEG, ...
    chunks : int, tuple, dict or "auto", default 2048
        Dask chunks for the pixels; ``None`` reads eagerly into numpy.

    Returns
    -------
    xarray.DataArray
        Dims ``(y, x)``, float32. RGB(A) images are converted to luminance
        (alpha ignored). Images without georeferencing get pixel-index
        coordinates ``0 .. N-1``; georeferenced ones keep their coordinates
        and ``spatial_ref``.

    Raises
    ------
    ImageReadError
        If the file does not exist or cannot be read as a raster.

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

    path_str = os.fspath(path)
    if not _is_url(path_str) and not os.path.exists(path_str):
        raise ImageReadError(
            f"no file at {path_str!r}; check the path (relative paths are taken from "
            f"{os.getcwd()!r})"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            raw = rioxarray.open_rasterio(path_str, chunks=chunks, masked=True, lock=False)
    except (RasterioIOError, OSError, ValueError) as exc:
        raise ImageReadError(
            f"could not read {path_str!r} as a raster image ({exc}); pass a GeoTIFF, "
            "PNG or JPEG file"
        ) from exc
    if isinstance(raw, list):
        raise ImageReadError(
            f"{path_str!r} holds several subdatasets; open the one you want by its GDAL "
            "name"
        )
    image = _to_gray(raw)
    georeferenced = raw.rio.crs is not None or not raw.rio.transform().is_identity
    if not georeferenced:
        # pixels are read lazily, later, by dask: the warning would fire then
        warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
        image = image.assign_coords(
            y=np.arange(image.sizes["y"], dtype=np.float64),
            x=np.arange(image.sizes["x"], dtype=np.float64),
        )
        image = image.drop_vars("spatial_ref", errors="ignore")
    image.name = os.path.splitext(os.path.basename(path_str))[0]
    image.attrs["source"] = path_str
    return image


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
