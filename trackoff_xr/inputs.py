"""Checks on user input, each failing with a message that says what to do.

:func:`prepare_image` is what :func:`trackoff_xr.offsets` does to each input
before matching: it checks the array, finds its row and column dimensions
by name, orders it ``(rows, columns)``, checks the coordinates and masks the
nodata value the array declares, all without computing anything.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from .exceptions import CoordinateError, DimensionError, GridMismatchError, ImageDTypeError
from .georef import crs_wkt  # also re-exported from here, its old home

__all__ = [
    "SPATIAL_DIM_NAMES",
    "check_image",
    "check_pair",
    "crs_wkt",
    "declared_nodata",
    "prepare_image",
    "spatial_dims",
]

#: (rows, columns) dimension names recognised, as rioxarray and radar tools name them
SPATIAL_DIM_NAMES: tuple[tuple[str, str], ...] = (
    ("y", "x"),
    ("lat", "lon"),
    ("latitude", "longitude"),
    ("row", "col"),
    ("rows", "cols"),
    ("line", "sample"),
)

# where a nodata value may be declared: CF / rioxarray attributes
_NODATA_ATTRS = ("_FillValue", "missing_value", "fill_value", "nodata")


def check_image(image: Any, name: str) -> xr.DataArray:
    """Return ``image`` if it is a 2-D DataArray, else raise a helpful error."""
    if not isinstance(image, xr.DataArray):
        hint = ""
        if isinstance(image, np.ndarray) or hasattr(image, "__array__"):
            hint = f"; wrap it with xr.DataArray({name}, dims=('y', 'x'))"
        raise DimensionError(
            f"{name} is a {type(image).__name__}, not an xarray.DataArray{hint}, "
            "or open it with trackoff_xr.open_image(path)"
        )
    if image.ndim != 2:
        dims = dict(zip(image.dims, image.shape, strict=False))
        extra = [d for d, s in dims.items() if s == 1]
        fix = (
            f"drop the length-1 dimension(s) with {name}.squeeze({extra!r})"
            if extra and image.ndim - len(extra) == 2
            else f"select one 2-D (rows, columns) slice, e.g. {name}.isel(band=0)"
        )
        raise DimensionError(
            f"{name} has {image.ndim} dimensions {dims}; trackoff_xr needs a 2-D "
            f"(rows, columns) image: {fix}"
        )
    return image


def prepare_image(image: Any, name: str) -> xr.DataArray:
    """Check an input image and return it ordered ``(rows, columns)``, nodata as NaN.

    Parameters
    ----------
    image : xarray.DataArray
        A 2-D image, numpy- or dask-backed, whose dimensions are named as
        :func:`spatial_dims` recognises, in either order.
    name : str
        How the messages call the image (``"ref"``, ``"sec"``).

    Returns
    -------
    xarray.DataArray
        ``image`` transposed to (rows, columns), with the nodata value it
        declares (:func:`declared_nodata`) replaced by NaN (integers become
        float32 then). Dimension names are kept. Nothing is computed: a
        dask-backed image stays dask-backed, a numpy one stays numpy.

    Raises
    ------
    DimensionError
        Not a 2-D DataArray, or dimensions that cannot be told apart by name.
    ImageDTypeError
        Complex, boolean, date/time or non-numeric values.
    CoordinateError
        NaN, repeated or unsorted coordinates along rows or columns.

    Examples
    --------
    >>> img = xr.DataArray(np.array([[0, 5, 6], [7, 8, 0]], np.uint8), dims=("x", "y"),
    ...                    attrs={"_FillValue": 0})
    >>> out = prepare_image(img, "ref")
    >>> out.dims, out.dtype.name
    (('y', 'x'), 'float32')
    >>> out.values.tolist()
    [[nan, 7.0], [5.0, 8.0], [6.0, nan]]
    """
    image = check_image(image, name)
    _check_dtype(image, name)
    ydim, xdim = spatial_dims(image, name)
    if image.dims != (ydim, xdim):
        image = image.transpose(ydim, xdim)
    for dim in (ydim, xdim):
        _check_coordinate(image, dim, name)
    return _mask_nodata(image, declared_nodata(image))


def spatial_dims(image: xr.DataArray, name: str = "image") -> tuple[Hashable, Hashable]:
    """Find the (rows, columns) dimensions of a 2-D image by their names.

    Parameters
    ----------
    image : xarray.DataArray
        A 2-D image.
    name : str, default "image"
        How the message calls the image.

    Returns
    -------
    tuple
        ``(row_dim, column_dim)``: a pair of :data:`SPATIAL_DIM_NAMES` (any
        letter case), else what rioxarray reports as ``image.rio.y_dim`` and
        ``image.rio.x_dim`` (e.g. coordinates with CF ``axis`` attributes, or
        set by ``image.rio.set_spatial_dims``). Never taken by position.

    Raises
    ------
    DimensionError
        Neither way identifies both dimensions; the message names them and
        how to rename them.

    Examples
    --------
    >>> spatial_dims(xr.DataArray(np.zeros((2, 3)), dims=("lon", "lat")))
    ('lat', 'lon')
    """
    lower = {str(d).lower(): d for d in image.dims}
    for row, col in SPATIAL_DIM_NAMES:
        if row in lower and col in lower:
            return lower[row], lower[col]
    found = _rioxarray_dims(image)
    if found is not None:
        return found
    dims = tuple(image.dims)
    names = ", ".join(repr(pair) for pair in SPATIAL_DIM_NAMES)
    raise DimensionError(
        f"{name} has dimensions {dims}, which trackoff_xr cannot tell apart as rows and "
        f"columns: it finds them by name, one of {names}, or what rioxarray reports as "
        f"{name}.rio.y_dim / {name}.rio.x_dim; rename them to ('y', 'x'), e.g. "
        f"{name}.rename({{{dims[0]!r}: 'y', {dims[1]!r}: 'x'}}) if {dims[0]!r} runs along "
        "the rows"
    )


def _rioxarray_dims(image: xr.DataArray) -> tuple[Hashable, Hashable] | None:
    """``(rio.y_dim, rio.x_dim)`` where rioxarray can tell, else None."""
    try:
        import rioxarray  # noqa: F401  (registers .rio)
        from rioxarray.exceptions import RioXarrayError
    except ImportError:  # pragma: no cover - rioxarray is a dependency
        return None
    try:
        ydim, xdim = image.rio.y_dim, image.rio.x_dim
    except RioXarrayError:
        return None
    if ydim == xdim or ydim not in image.dims or xdim not in image.dims:
        return None
    return ydim, xdim


_DTYPE_FIXES = {
    "c": "track the amplitude: pass np.abs({name}) (lazy on dask), or the intensity "
    "np.abs({name}) ** 2",
    "b": "pass a real-valued image; a mask is no image to track, but {name}.astype('float32') "
    "converts it if it really is one",
    "M": "pass the image's pixel values (reflectance, amplitude, DN), not dates",
    "m": "pass the image's pixel values (reflectance, amplitude, DN), not time spans",
}


def _check_dtype(image: xr.DataArray, name: str) -> None:
    kind = image.dtype.kind
    if kind in "iuf":
        return
    fix = _DTYPE_FIXES.get(
        kind, "pass a real-valued numeric image, e.g. {name}.astype('float32')"
    ).format(name=name)
    raise ImageDTypeError(
        f"{name} holds {image.dtype} values, but trackoff_xr tracks real-valued images "
        f"(integer or float): {fix}"
    )


def _check_coordinate(image: xr.DataArray, dim: Hashable, name: str) -> None:
    """Refuse NaN, non-numeric and non-monotonic coordinates along ``dim``."""
    if dim not in image.coords:
        return
    values = np.asarray(image[dim].values)
    if values.dtype.kind not in "iuf":
        raise CoordinateError(
            f"{name}'s {dim!r} coordinate holds {values.dtype} values; spatial coordinates "
            f"must be numbers (pixel indices, metres, degrees): replace them, or drop them "
            f"with {name}.drop_vars({dim!r})"
        )
    bad = np.flatnonzero(~np.isfinite(values.astype(np.float64)))
    if len(bad):
        raise CoordinateError(
            f"{name}'s {dim!r} coordinate is NaN or infinite at {len(bad)} position(s), "
            f"first at [{int(bad[0])}]; give every row and column a finite coordinate "
            f"(e.g. rebuild them from the transform with {name}.rio.write_transform(), or "
            f"drop them with {name}.drop_vars({dim!r}))"
        )
    step = np.diff(values.astype(np.float64))
    if not ((step > 0).all() or (step < 0).all()):
        wrong_way = (step <= 0) if step[0] > 0 else (step >= 0)
        where = int(np.flatnonzero(wrong_way)[0])
        raise CoordinateError(
            f"{name}'s {dim!r} coordinate is not monotonic (strictly increasing or "
            f"decreasing): {values[where].item()!r} at [{where}] is followed by "
            f"{values[where + 1].item()!r}; the pixels must be in grid order: sort them with "
            f"{name}.sortby({dim!r}) (ascending=False for north-up rows)"
        )


def declared_nodata(image: xr.DataArray) -> tuple[float, ...]:
    """Return the nodata values an array declares, as rioxarray and CF read them.

    Parameters
    ----------
    image : xarray.DataArray
        Any array.

    Returns
    -------
    tuple of float
        The distinct, non-NaN values found in the attributes ``_FillValue``,
        ``missing_value``, ``fill_value``, ``nodata`` and ``nodatavals``
        (``rio.write_nodata`` writes ``_FillValue``), in ``image.rio.nodata``,
        and in the encoding's ``_FillValue``/``missing_value``
        (``rio.encoded_nodata``) unless the encoding also scales the values
        (then decoding already made them NaN, and the number is in packed
        units). Empty if there is none.

    Examples
    --------
    >>> img = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), attrs={"nodata": -9999})
    >>> declared_nodata(img)
    (-9999.0,)
    """
    found: list[Any] = [image.attrs.get(key) for key in (*_NODATA_ATTRS, "nodatavals")]
    encoding = image.encoding
    if "scale_factor" not in encoding and "add_offset" not in encoding:
        found += [encoding.get("_FillValue"), encoding.get("missing_value")]
    found.append(_rio_nodata(image))
    values: list[float] = []
    for item in found:
        if item is None:
            continue
        try:
            numbers = np.asarray(item, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            continue  # not a number (e.g. a string attribute): nothing to mask
        values += [float(v) for v in numbers if not np.isnan(v) and float(v) not in values]
    return tuple(values)


def _rio_nodata(image: xr.DataArray) -> Any:
    """``image.rio.nodata`` if rioxarray is loaded (it may hold a value set in place)."""
    if "rioxarray" not in sys.modules:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return image.rio.nodata
    except Exception:  # noqa: BLE001 - an unreadable declaration declares nothing
        return None


def _mask_nodata(image: xr.DataArray, nodata: tuple[float, ...]) -> xr.DataArray:
    """``image`` with ``nodata`` values set to NaN, lazily (integers become float32)."""
    if not nodata:
        return image
    attrs = dict(image.attrs)
    if image.dtype.kind != "f":
        image = image.astype(np.float32)
    keep = image != nodata[0]
    for value in nodata[1:]:
        keep = keep & (image != value)
    masked = image.where(keep)
    masked.attrs = attrs
    masked.encoding = dict(image.encoding)
    return masked


def _coords_equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        scale = max(float(np.nanmax(np.abs(a), initial=0.0)), 1.0)
        return bool(np.allclose(a, b, rtol=0.0, atol=1e-9 * scale))
    return bool(np.array_equal(a, b))


def check_pair(ref: xr.DataArray, sec: xr.DataArray) -> None:
    """Raise :class:`GridMismatchError` unless both images share one grid."""
    if ref.shape != sec.shape:
        raise GridMismatchError(
            f"ref has shape {ref.shape} but sec has shape {sec.shape}; both images "
            "must cover the same pixel grid: crop or reproject one onto the other "
            "(e.g. sec.rio.reproject_match(ref))"
        )
    if ref.dims != sec.dims:
        raise GridMismatchError(
            f"ref has dimensions {ref.dims} but sec has {sec.dims}; rename or "
            "transpose one so both are (rows, columns) with the same names"
        )
    for dim in ref.dims:
        in_ref, in_sec = dim in ref.coords, dim in sec.coords
        if in_ref != in_sec:
            have, lack = ("ref", "sec") if in_ref else ("sec", "ref")
            raise GridMismatchError(
                f"{have} has coordinates along {dim!r} but {lack} has none; give both "
                "the same coordinates (or drop them from both)"
            )
        if not in_ref:
            continue
        a, b = np.asarray(ref[dim].values), np.asarray(sec[dim].values)
        if not _coords_equal(a, b):
            where = (
                int(np.flatnonzero(~np.isclose(a, b, rtol=0, atol=0))[0])
                if a.dtype.kind in "fiu"
                else 0
            )
            raise GridMismatchError(
                f"the {dim!r} coordinates differ: ref[{where}]={a[where]!r} but "
                f"sec[{where}]={b[where]!r}; the images must be on the same grid "
                "(reproject one onto the other, e.g. sec.rio.reproject_match(ref))"
            )
    crs_ref, crs_sec = crs_wkt(ref), crs_wkt(sec)
    if crs_ref != crs_sec:
        raise GridMismatchError(
            f"the images have different CRS: ref {_short(crs_ref)} but sec "
            f"{_short(crs_sec)}; reproject one onto the other "
            "(e.g. sec.rio.reproject_match(ref))"
        )


def _short(wkt: str | None) -> str:
    if wkt is None:
        return "has none"
    head = wkt.split('"')
    return repr(head[1]) if len(head) > 1 else repr(wkt[:40])
