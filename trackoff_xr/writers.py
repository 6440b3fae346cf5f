"""Writing offsets and velocities: Zarr (ITS_LIVE-style), GeoTIFF/COG and TrackOff CSV.

* :func:`to_zarr` writes one pair to a Zarr store (a local directory or any
  fsspec URL: ``s3://``, ``gs://``, ``memory://``, ...) with CF-1.8 and
  ITS_LIVE-compatible names: ``vx``, ``vy``, ``v`` in ``meter/year`` with
  their standard names, ``grid_mapping``, ``date_center``, ``date_dt``,
  ``acquisition_date_img1``/``acquisition_date_img2``, the processing
  parameters and the software version.
* :func:`append_pair` stacks pairs into one store along ``mid_date``, as the
  ITS_LIVE data cubes do.
* :func:`open_zarr` opens a store written here and refuses one whose write
  did not finish.
* :func:`to_geotiff` writes one Cloud Optimized GeoTIFF per variable, and
  :func:`to_csv` the point table of the original TrackOff scripts.

A write that is interrupted never leaves a store that looks complete: local
stores are written to a hidden ``.<name>.*.partial`` sibling and renamed into
place at the end; every store gets the attribute
``trackoff_write_complete = True`` last, and :func:`open_zarr` checks it.
Stores are Zarr format 2 with consolidated metadata, readable by zarr-python
2 and 3 and by ``xr.open_zarr``.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .exceptions import (  # noqa: F401
    GridMismatchError,
    IncompleteStoreError,
    InvalidParameterError,
    OutputExistsError,
    TrackOffError,
)

__all__ = [
    "COMPLETE_ATTR",
    "IncompleteStoreError",
    "OutputExistsError",
    "append_pair",
    "open_zarr",
    "prepare_dataset",
    "to_csv",
    "to_geotiff",
    "to_zarr",
]

COMPLETE_ATTR = "trackoff_write_complete"
CSV_COLUMNS = ("no", "x", "y", "dX", "dY", "dX_m", "dY_m", "dmax", "dmax_m", "vel", "probab")

_DEFAULT_CHUNK = 512
_TIME_ENCODING = {"units": "microseconds since 1970-01-01", "dtype": "int64"}
# per-pair attributes that become variables along mid_date in a cube
_PAIR_TIMES = ("acquisition_date_img1", "acquisition_date_img2")




def _is_local(store: Any) -> bool:
    if isinstance(store, os.PathLike):
        return True
    return isinstance(store, str) and ("://" not in store or store.startswith("file://"))


def _local_path(store: Any) -> Path:
    text = os.fspath(store)
    return Path(text[len("file://") :] if text.startswith("file://") else text)


def _store_exists(store: Any) -> bool:
    if _is_local(store):
        return _local_path(store).exists()
    import fsspec

    fs, path = fsspec.core.url_to_fs(store)
    return bool(
        fs.exists(path.rstrip("/") + "/.zgroup") or fs.exists(path.rstrip("/") + "/zarr.json")
    )


def _plain(value: Any) -> Any:
    """Convert an attribute value to a type JSON and netCDF can store."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (datetime.datetime, datetime.date, np.datetime64)):
        return str(np.datetime64(value))
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _uniform_chunks(ds: xr.Dataset, extra: dict[str, int] | None = None) -> xr.Dataset:
    """Rechunk every variable to one regular chunk size per dimension (Zarr needs it)."""
    target: dict[Any, int] = {}
    for var in ds.variables.values():
        if var.chunks is None:
            continue
        for dim, sizes in zip(var.dims, var.chunks, strict=True):
            target[dim] = max(target.get(dim, 0), max(sizes))
    chunks = {
        dim: min(int(size), target.get(dim, _DEFAULT_CHUNK)) or 1 for dim, size in ds.sizes.items()
    }
    chunks.update(extra or {})
    return ds.chunk(chunks)


def prepare_dataset(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` with CF-1.8 / ITS_LIVE metadata, ready to be written.

    Adds ``Conventions``, ``software``/``software_version``, ``history`` and
    ``grid_mapping`` where a ``spatial_ref`` exists; makes every attribute
    JSON-serialisable; stores ``valid`` as ``uint8`` flags; clears encodings
    inherited from the source files; rechunks to regular chunks. Lazy.

    Examples
    --------
    >>> ds = xr.Dataset({"dx": (("y", "x"), np.zeros((2, 3), np.float32))})
    >>> prepare_dataset(ds).attrs["Conventions"]
    'CF-1.8'
    """
    from . import __version__

    out = ds.copy()
    for var in out.variables.values():
        var.encoding = {}
    if "valid" in out and out["valid"].dtype == bool:
        out["valid"] = out["valid"].astype(np.uint8).assign_attrs(out["valid"].attrs)
    if "spatial_ref" in out.coords:
        for name in out.data_vars:
            if {"y", "x"} <= set(out[name].dims):
                out[name].attrs["grid_mapping"] = "spatial_ref"
    for name in out.variables:
        out[name].attrs = {k: _plain(v) for k, v in out[name].attrs.items()}
    attrs = {k: _plain(v) for k, v in out.attrs.items() if k != COMPLETE_ATTR}
    attrs.setdefault("title", "ice surface offsets and velocity measured by trackoff_xr")
    attrs["Conventions"] = "CF-1.8"
    attrs.setdefault("software", "trackoff_xr")
    attrs.setdefault("software_version", __version__)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    history = attrs.get("history", "")
    attrs["history"] = (history + "\n" if history else "") + (
        f"{stamp}: written by trackoff_xr {__version__}"
    )
    attrs.setdefault("date_created", stamp)
    out.attrs = attrs
    return _uniform_chunks(out)


def _mark_complete(store: Any, complete: bool = True) -> None:
    import zarr

    group = zarr.open_group(os.fspath(store) if _is_local(store) else store, mode="r+")
    group.attrs[COMPLETE_ATTR] = complete
    zarr.consolidate_metadata(os.fspath(store) if _is_local(store) else store)


def _remove(path: Path) -> None:
    """Remove a partial store; dask threads still finishing may write into it for a moment."""
    for _ in range(20):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.05)


def _finalize_local(_: Any, tmp: Path, target: Path, mode: str) -> str:
    _mark_complete(tmp)
    if target.exists():
        if mode == "w-":
            shutil.rmtree(tmp, ignore_errors=True)
            raise OutputExistsError(
                f"{str(target)!r} appeared while writing; pass mode='w' to replace it"
            )
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return str(target)


def _finalize_remote(_: Any, store: str) -> str:
    _mark_complete(store)
    return store


def _write(
    prepared: xr.Dataset,
    store: Any,
    *,
    mode: str,
    compute: bool,
    encoding: dict[str, Any] | None = None,
) -> Any:
    import dask

    if mode not in ("w-", "w"):
        raise InvalidParameterError(
            f"mode={mode!r} is not supported; use mode='w-' (refuse to overwrite) or "
            "mode='w' (replace); to add pairs to a cube use append_pair()"
        )
    if mode == "w-" and _store_exists(store):
        raise OutputExistsError(
            f"{os.fspath(store)!r} already exists; pass mode='w' to replace it or choose "
            "another path"
        )
    kwargs = {"zarr_format": 2, "consolidated": True, "encoding": encoding or {}}
    if _is_local(store):
        target = _local_path(store).absolute()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        )
        try:
            writes = prepared.to_zarr(tmp, mode="w", compute=False, **kwargs)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        done = dask.delayed(_finalize_local)(writes, tmp, target, mode)
        if not compute:
            return done
        try:
            return done.compute()
        except BaseException:
            _remove(tmp)
            raise
    writes = prepared.to_zarr(store, mode=mode, compute=False, **kwargs)
    done = dask.delayed(_finalize_remote)(writes, store)
    return done.compute() if compute else done


def to_zarr(ds: xr.Dataset, store: Any, *, compute: bool = True, mode: str = "w-") -> Any:
    """Write an offsets/velocity Dataset to a Zarr store, CF-1.8 and ITS_LIVE-style.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`trackoff_xr.offsets`, usually after
        :func:`trackoff_xr.velocity.velocity`. May be lazy with irregular
        chunks: it is rechunked to regular chunks first.
    store : str or path-like
        A local directory or an fsspec URL (``s3://bucket/v.zarr``,
        ``memory://v.zarr``, ...).
    compute : bool, default True
        ``False`` writes the metadata now and returns a ``dask.delayed``
        object that writes the data, then marks the store complete.
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses to overwrite an existing store; ``"w"`` replaces it
        (for local stores only once the new one is complete).

    Returns
    -------
    str or dask.delayed.Delayed
        The store written, or the delayed write.

    Raises
    ------
    OutputExistsError
        The store exists and ``mode="w-"``.

    Examples
    --------
    >>> import tempfile, os
    >>> ds = xr.Dataset({"vx": (("y", "x"), np.ones((2, 3), np.float32))},
    ...                 coords={"y": [1.0, 0.0], "x": [0.0, 1.0, 2.0]})
    >>> path = os.path.join(tempfile.mkdtemp(), "pair.zarr")
    >>> delayed = to_zarr(ds, path, compute=False)
    >>> os.path.exists(path)          # nothing at the target until the write is done
    False
    >>> delayed.compute() == path
    True
    >>> float(open_zarr(path).vx.sum())
    6.0
    """
    return _write(prepare_dataset(ds), store, mode=mode, compute=compute)


def open_zarr(store: Any, **kwargs: Any) -> xr.Dataset:
    """Open a store written by :func:`to_zarr`/:func:`append_pair`, checking it is complete.

    Parameters
    ----------
    store : str or path-like
        Local directory or fsspec URL.
    **kwargs
        Passed to :func:`xarray.open_zarr`.

    Raises
    ------
    IncompleteStoreError
        The store lacks the completion marker: its write was interrupted.
    """
    from .exceptions import ImageReadError

    if _is_local(store) and not _local_path(store).exists():
        raise ImageReadError(f"no Zarr store at {os.fspath(store)!r}; check the path")
    try:
        ds = xr.open_zarr(store, **kwargs)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise ImageReadError(
            f"could not open {os.fspath(store) if _is_local(store) else store!r} as a Zarr "
            f"store ({exc}); check the path"
        ) from exc
    if ds.attrs.get(COMPLETE_ATTR) is not True:
        raise IncompleteStoreError(
            f"{store!r} was not completely written (no {COMPLETE_ATTR}=True attribute); "
            "its write was interrupted: write it again with mode='w'"
        )
    return ds


def _cube_slice(ds: xr.Dataset, mid_date: Any) -> xr.Dataset:
    from .velocity import MissingMetadataError

    center = mid_date if mid_date is not None else ds.attrs.get("date_center")
    if center is None:
        raise MissingMetadataError(
            "the pair has no date_center attribute, so its place along mid_date is "
            "unknown; compute velocity() from images with acquisition dates, or pass "
            "mid_date='2024-02-09T00:00:00'"
        )
    try:
        stamp = np.datetime64(center, "us")
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"mid_date={center!r} is not a date; pass an ISO 8601 string"
        ) from exc
    pair = ds.copy()
    per_pair: dict[str, Any] = {}
    if pair.attrs.get("date_dt") is not None:
        per_pair["date_dt"] = (
            ("mid_date",),
            [float(pair.attrs["date_dt"])],
            {"long_name": "time between the two images", "units": "day"},
        )
    for key in _PAIR_TIMES:
        if pair.attrs.get(key) is not None:
            per_pair[key] = (
                ("mid_date",),
                [np.datetime64(pair.attrs[key], "us")],
                {"long_name": key.replace("_", " ")},
            )
    for key in ("date_center", "date_dt", *_PAIR_TIMES):
        pair.attrs.pop(key, None)
    cube = pair.expand_dims(mid_date=[stamp])
    cube["mid_date"].attrs = {
        "long_name": "midpoint of the two acquisitions",
        "standard_name": "time",
    }
    for name, (dims, values, attrs) in per_pair.items():
        cube[name] = xr.Variable(dims, np.asarray(values), attrs)
    return cube


def append_pair(ds: xr.Dataset, store: Any, *, mid_date: Any = None) -> str:
    """Add one pair to a Zarr data cube along ``mid_date`` (created if missing).

    Parameters
    ----------
    ds : xarray.Dataset
        One pair, as :func:`to_zarr` takes it, with a ``date_center``
        attribute (or pass ``mid_date``).
    store : str or path-like
        Local directory or fsspec URL of the cube.
    mid_date : str or datetime, optional
        The pair's centre date; default ``ds.attrs["date_center"]``.

    Returns
    -------
    str
        The store.

    Raises
    ------
    GridMismatchError
        The pair is not on the cube's grid (coordinates or CRS differ).
    OutputExistsError
        The cube already holds this pair (same ``mid_date`` and ``date_dt``).
    IncompleteStoreError
        The cube's previous write was interrupted.
    """
    from .validation import crs_wkt

    cube = prepare_dataset(_cube_slice(ds, mid_date))
    encoding = {"mid_date": dict(_TIME_ENCODING)}
    for key in _PAIR_TIMES:
        if key in cube:
            encoding[key] = dict(_TIME_ENCODING)
    if not _store_exists(store):
        cube = _uniform_chunks(cube, {"mid_date": 1})
        return str(_write(cube, store, mode="w-", compute=True, encoding=encoding))
    existing = open_zarr(store)
    for dim in ("y", "x"):
        a, b = existing[dim].values, cube[dim].values
        if a.shape != b.shape or not np.allclose(
            a, b, rtol=0, atol=1e-9 * max(1.0, np.abs(a).max())
        ):
            raise GridMismatchError(
                f"the pair's {dim!r} coordinates ({b.size} points from {b[0]!r}) differ from "
                f"the cube's ({a.size} points from {a[0]!r}); track on the cube's grid, or "
                "start a new cube"
            )
    if crs_wkt(existing) != crs_wkt(cube):
        raise GridMismatchError(
            "the pair's CRS differs from the cube's; reproject the images onto the cube's "
            "CRS, or start a new cube"
        )
    stamp = cube["mid_date"].values[0]
    same = existing["mid_date"].values == stamp
    if same.any() and (
        "date_dt" not in existing
        or "date_dt" not in cube
        or np.isclose(existing["date_dt"].values[same], cube["date_dt"].values[0]).any()
    ):
        raise OutputExistsError(
            f"the cube already holds a pair with mid_date={stamp}; it is not appended again"
        )
    missing = sorted(set(existing.data_vars) ^ set(cube.data_vars))
    if missing:
        raise InvalidParameterError(
            f"the pair and the cube have different variables ({missing}); compute the same "
            "variables for every pair (e.g. run velocity() on each)"
        )
    chunks = {"mid_date": 1}
    for dim in ("y", "x"):
        var = next(v for v in existing.data_vars.values() if dim in v.dims)
        chunks[dim] = var.encoding["chunks"][var.dims.index(dim)]
    cube = cube.chunk(chunks)
    cube.attrs = {}
    target = os.fspath(store) if _is_local(store) else store
    _mark_complete(target, False)
    cube.to_zarr(target, append_dim="mid_date", zarr_format=2, consolidated=True)
    _mark_complete(target, True)
    return str(target)


def to_geotiff(
    ds: xr.Dataset,
    directory: str | os.PathLike[str],
    variables: Iterable[str] = ("vx", "vy", "v"),
    *,
    cog: bool = True,
) -> list[Path]:
    """Write each variable to ``<directory>/<name>.tif`` (Cloud Optimized GeoTIFF).

    Parameters
    ----------
    ds : xarray.Dataset
        Offsets/velocity on a regular ``(y, x)`` grid. The variables are
        computed together, once.
    directory : str or path-like
        Created if missing; existing files of the same name are replaced.
    variables : iterable of str, default ("vx", "vy", "v")
        Names to write; missing ones raise. ``valid`` is written as uint8.
    cog : bool, default True
        Cloud Optimized GeoTIFF (GDAL's COG driver, deflate); ``False``
        writes a plain tiled GeoTIFF.

    Returns
    -------
    list of pathlib.Path

    Notes
    -----
    Map grids keep their CRS and get a GeoTransform from the grid
    coordinates. Radar-geometry grids keep the product's ground control
    points, moved onto the output grid; as GDAL's COG driver cannot store
    those, they are written as tiled GeoTIFFs.
    """
    import rioxarray  # noqa: F401  (registers .rio)

    names = list(variables)
    absent = [n for n in names if n not in ds]
    if absent:
        raise InvalidParameterError(
            f"variables {absent} are not in the Dataset (it has {list(ds.data_vars)}); "
            "compute them first (e.g. trackoff_xr.velocity.velocity(ds)) or choose others"
        )
    if ds.sizes.get("y", 0) < 2 or ds.sizes.get("x", 0) < 2:
        raise InvalidParameterError(
            f"the grid has {dict(ds.sizes)} points; a GeoTIFF needs at least 2 along y and x"
        )
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = ds[names].compute()
    gcps = _grid_gcps(loaded)
    paths = []
    for name in names:
        da = loaded[name]
        if da.dtype == bool:
            da = da.astype(np.uint8)
        da.attrs = {k: str(v) for k, v in da.attrs.items() if k != "grid_mapping"}
        da = da.rio.set_spatial_dims(x_dim="x", y_dim="y")
        if gcps is not None:
            da = da.drop_vars("spatial_ref").rio.write_gcps(*gcps)
        if da.dtype.kind == "f":
            da = da.rio.write_nodata(np.nan)
        path = out_dir / f"{name}.tif"
        # GDAL's COG driver drops ground control points: radar grids get a tiled GTiff
        if cog and gcps is None:
            profile: dict[str, Any] = {"driver": "COG", "compress": "deflate"}
        else:
            profile = {"driver": "GTiff", "tiled": True, "compress": "deflate"}
        da.rio.to_raster(path, tags=_plain_tags(ds.attrs), **profile)
        paths.append(path)
    return paths


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


def to_csv(ds: xr.Dataset, path: str | os.PathLike[str], *, only_valid: bool = True) -> Path:
    """Write the point table of the original TrackOff scripts.

    Columns: ``no`` (point number in the full grid, row-major), ``x``, ``y``
    (grid coordinates), ``dX``, ``dY`` (offsets in pixels along columns and
    rows: ``dX = dx``, ``dY = dy``), ``dX_m``, ``dY_m`` (the same in metres),
    ``dmax``, ``dmax_m`` (offset length in pixels and metres), ``vel`` (speed
    in **metres per day**, as in TrackOff: ``dmax_m / date_dt``) and
    ``probab`` (the match ``score``). Metre columns are empty until
    :func:`trackoff_xr.velocity.velocity` has been run.

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or path-like
    only_valid : bool, default True
        Keep only points with finite offsets that passed the filters.

    Examples
    --------
    >>> import tempfile, os
    >>> ds = xr.Dataset({"dx": (("y", "x"), [[8.0, np.nan]]), "dy": (("y", "x"), [[3.0, 1.0]]),
    ...                  "score": (("y", "x"), [[0.9, 0.1]])},
    ...                 coords={"y": [31.5], "x": [31.5, 63.5]})
    >>> path = to_csv(ds, os.path.join(tempfile.mkdtemp(), "pair.csv"))
    >>> print(path.read_text().strip())
    no,x,y,dX,dY,dX_m,dY_m,dmax,dmax_m,vel,probab
    0,31.5,31.5,8.0,3.0,,,8.54400374531753,,,0.9
    """
    import dask
    import pandas as pd

    for name in ("dx", "dy"):
        if name not in ds:
            raise InvalidParameterError(
                f"the Dataset has no {name!r}; pass the result of trackoff_xr.offsets()"
            )
    nan = xr.full_like(ds["dx"], np.nan, dtype=np.float64)
    fields = {
        "dX": ds["dx"],
        "dY": ds["dy"],
        "dX_m": ds["dx_m"] if "dx_m" in ds else nan,
        "dY_m": ds["dy_m"] if "dy_m" in ds else nan,
        "probab": ds["score"] if "score" in ds else nan,
        "valid": ds["valid"] if "valid" in ds else np.isfinite(ds["dx"]) & np.isfinite(ds["dy"]),
    }
    (values,) = dask.compute({k: v.data for k, v in fields.items()})
    yy, xx = np.meshgrid(ds["y"].values, ds["x"].values, indexing="ij")
    table = pd.DataFrame(
        {
            "no": np.arange(yy.size),
            "x": xx.ravel(),
            "y": yy.ravel(),
            **{
                k: np.asarray(values[k], dtype=np.float64).ravel()
                for k in ("dX", "dY", "dX_m", "dY_m")
            },
        }
    )
    table["dmax"] = np.hypot(table["dX"], table["dY"])
    table["dmax_m"] = np.hypot(table["dX_m"], table["dY_m"])
    days = ds.attrs.get("date_dt")
    table["vel"] = table["dmax_m"] / float(days) if days else np.nan
    table["probab"] = np.asarray(values["probab"], dtype=np.float64).ravel()
    keep = np.ones(len(table), dtype=bool)
    if only_valid:
        keep = np.asarray(values["valid"]).ravel().astype(bool)
        keep &= np.isfinite(table["dX"].to_numpy()) & np.isfinite(table["dY"].to_numpy())
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.loc[keep, list(CSV_COLUMNS)].to_csv(out, index=False)
    return out
