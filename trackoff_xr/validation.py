"""Checks on user input, each failing with a message that says what to do."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from .exceptions import DimensionError, GridMismatchError

__all__ = ["check_image", "check_pair", "crs_wkt"]


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


def crs_wkt(image: xr.DataArray) -> str | None:
    """Return the CRS of ``image`` as WKT, read from its ``spatial_ref`` coordinate."""
    if "spatial_ref" not in image.coords:
        return None
    attrs = image.coords["spatial_ref"].attrs
    return attrs.get("crs_wkt") or attrs.get("spatial_ref")


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
