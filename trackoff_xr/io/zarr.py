"""Zarr stores, ITS_LIVE-style: :func:`to_zarr`, :func:`append_pair`, :func:`open_zarr`."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..exceptions import (
    GridMismatchError,
    IncompleteStoreError,
    InvalidParameterError,
    OutputExistsError,
)
from ..georef import crs_of, crs_wkt, iso_date
from .safety import (
    COMPLETE_ATTR,
    NETCDF_ATTR,
    _check,
    _check_existing,
    _check_protect,
    _exists,
    _is_complete,
    _is_url,
    _mkdir,
    _new_partial,
    _protected,
    _remove,
    _Target,
    remove_partials,
)

__all__ = ["TYPED_ATTRS", "append_pair", "open_zarr", "prepare_dataset", "retype_attrs", "to_zarr"]


_DEFAULT_CHUNK = 512


_TIME_ENCODING = {"units": "microseconds since 1970-01-01", "dtype": "int64"}


# per-pair attributes that become variables along mid_date in a cube
_PAIR_TIMES = ("acquisition_date_img1", "acquisition_date_img2")


def _plain(value: Any) -> Any:
    """Convert an attribute value to a type JSON and netCDF can store (bool becomes 0/1)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (datetime.datetime, datetime.date, np.datetime64)):
        try:
            return iso_date(value)
        except InvalidParameterError:  # a missing time (NaT) is written as numpy writes it
            return str(np.datetime64(value))
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _plain_attrs(attrs: dict[Any, Any]) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in attrs.items() if v is not None}


def _uniform_chunks(ds: xr.Dataset, extra: dict[str, int] | None = None) -> xr.Dataset:
    """Rechunk every variable to one regular chunk size per dimension (Zarr needs it).

    Chunks are at least :data:`_DEFAULT_CHUNK` points along each dimension
    (or the whole dimension), whatever the blocks that computed them: a
    reader of a whole-scene result opens a few chunks, not thousands of
    32 x 32-point ones. The results are small (a few floats per point), so
    merging blocks into a chunk costs no memory to speak of.
    """
    target: dict[Any, int] = {}
    for var in ds.variables.values():
        if var.chunks is None:
            continue
        for dim, sizes in zip(var.dims, var.chunks, strict=True):
            target[dim] = max(target.get(dim, _DEFAULT_CHUNK), max(sizes))
    chunks = {
        dim: min(int(size), target.get(dim, _DEFAULT_CHUNK)) or 1 for dim, size in ds.sizes.items()
    }
    chunks.update(extra or {})
    return ds.chunk(chunks)


def _stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


#: attributes CF wants typed like their variable; Zarr (JSON) gives them back as lists
TYPED_ATTRS = (
    "flag_values",
    "flag_masks",
    "valid_range",
    "valid_min",
    "valid_max",
    "actual_range",
    "missing_value",
)


#: the flag variables of a result: int8 on disk (CF-1.8 has no unsigned or bool types)
FLAG_VARIABLES = ("valid", "peak_at_edge", "interp_mask")


def _coverage_content_type(name: str, attrs: dict[str, Any]) -> str:
    """ACDD ``coverage_content_type`` of a result variable."""
    if name == "score" or name.endswith("_error") or "flag_meanings" in attrs:
        return "qualityInformation"
    if name.startswith("search_"):
        return "auxiliaryInformation"
    return "physicalMeasurement"


def _acdd_globals(ds: xr.Dataset) -> dict[str, Any]:
    """ACDD-1.3 global attributes trackoff_xr can know: time span and (map grids) extent."""
    attrs: dict[str, Any] = {}
    t1, t2 = ds.attrs.get("acquisition_date_img1"), ds.attrs.get("acquisition_date_img2")
    if t1 and t2:
        try:
            attrs["time_coverage_start"] = f"{iso_date(t1, unit='s')}Z"
            attrs["time_coverage_end"] = f"{iso_date(t2, unit='s')}Z"
        except ValueError:  # InvalidParameterError: not a date
            attrs = {}
    if ds.attrs.get("date_dt") is not None:
        attrs["time_coverage_duration"] = f"P{float(ds.attrs['date_dt']):g}D"
    gm = dict(ds["spatial_ref"].attrs) if "spatial_ref" in ds.variables else {}
    if "grid_mapping_name" not in gm or not crs_wkt(gm) or ds.sizes.get("x", 0) < 1:
        return attrs
    from pyproj import Transformer

    try:
        to_lonlat = Transformer.from_crs(crs_of(gm), 4326, always_xy=True)
    except Exception:  # noqa: BLE001 - an unusual CRS: leave the extent out
        return attrs
    x, y = np.asarray(ds["x"].values, float), np.asarray(ds["y"].values, float)
    xx = np.concatenate([x, np.full(y.size, x[-1]), x[::-1], np.full(y.size, x[0])])
    yy = np.concatenate([np.full(x.size, y[0]), y, np.full(x.size, y[-1]), y[::-1]])
    lon, lat = to_lonlat.transform(xx, yy)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        return attrs
    step = max(1, lon.size // 64)
    ring = [f"{la:.5f} {lo:.5f}" for lo, la in zip(lon[::step], lat[::step], strict=True)]
    attrs.update(
        geospatial_lat_min=float(lat.min()),
        geospatial_lat_max=float(lat.max()),
        geospatial_lon_min=float(lon.min()),
        geospatial_lon_max=float(lon.max()),
        geospatial_lat_units="degrees_north",
        geospatial_lon_units="degrees_east",
        geospatial_bounds=f"POLYGON (({', '.join([*ring, ring[0]])}))",
        geospatial_bounds_crs="EPSG:4326",
    )
    return attrs


def prepare_dataset(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` with CF-1.8 / ACDD-1.3 metadata, ready to be written.

    Adds ``Conventions``, ``software``/``software_version``, ``history``,
    ``date_created``, the ACDD time span and (map grids) extent, each
    variable's ``coverage_content_type``, and the CF grid metadata of
    :func:`trackoff_xr.schema.cf_grid` (``grid_mapping`` on map grids only,
    an ``int32`` ``spatial_ref``, coordinate attributes); makes every
    attribute JSON- and netCDF-serialisable (booleans become 0/1, ``None`` is
    dropped); stores the flags (``valid``, ``peak_at_edge``,
    ``interp_mask``) as ``int8``; clears encodings inherited from the source
    files; rechunks to regular chunks. Lazy.

    Examples
    --------
    >>> ds = xr.Dataset({"dx": (("y", "x"), np.zeros((2, 3), np.float32))})
    >>> prepare_dataset(ds).attrs["Conventions"]
    'CF-1.8, ACDD-1.3'
    """
    from .._version import __version__
    from ..schema import cf_grid

    out = ds.copy()
    for var in out.variables.values():
        var.encoding = {}
    for name in FLAG_VARIABLES:
        if name in out and (out[name].dtype == bool or out[name].dtype.kind == "u"):
            out[name] = out[name].astype(np.int8).assign_attrs(out[name].attrs)
        if name in out and "flag_values" in out[name].attrs:
            out[name].attrs["flag_values"] = np.asarray(out[name].attrs["flag_values"], np.int8)
    out = cf_grid(out)
    for key, data in out.data_vars.items():
        if data.ndim:
            data.attrs.setdefault(
                "coverage_content_type", _coverage_content_type(str(key), data.attrs)
            )
    for key in out.variables:
        out[key].attrs = _plain_attrs(out[key].attrs)
    marks = (COMPLETE_ATTR, NETCDF_ATTR)  # set by the writers themselves, never inherited
    attrs = {k: v for k, v in _plain_attrs(out.attrs).items() if k not in marks}
    attrs.setdefault("title", "ice surface offsets and velocity measured by trackoff_xr")
    attrs["Conventions"] = "CF-1.8, ACDD-1.3"
    for key, value in _acdd_globals(out).items():
        attrs.setdefault(key, value)
    attrs.setdefault("software", "trackoff_xr")
    attrs.setdefault("software_version", __version__)
    stamp = _stamp()
    attrs["history"] = _add_history(attrs.get("history"), f"written by trackoff_xr {__version__}")
    attrs.setdefault("date_created", stamp)
    out.attrs = attrs
    return _uniform_chunks(out)


def _add_history(history: Any, line: str) -> str:
    return (f"{history}\n" if history else "") + f"{_stamp()}: {line}"


def _mark_complete(store: Any, complete: bool = True) -> None:
    import zarr

    group = zarr.open_group(store, mode="r+")
    group.attrs[COMPLETE_ATTR] = 1 if complete else 0
    zarr.consolidate_metadata(store)


def _finalize_local(
    _: Any, tmp: Path, t: _Target, mode: str, protected: tuple[_Target, ...]
) -> str:
    """Mark the partial store complete and rename it into place, replacing an old one of ours."""
    assert t.path is not None
    try:
        _mark_complete(str(tmp))
        # the target may have appeared (or changed) while the data were computed
        _check_protect(t, protected, container=True)
        _check_existing(t, "zarr", mode)
        if not os.path.lexists(t.path):
            os.replace(tmp, t.path)
            return t.absolute
        old = _new_partial(t, directory=True, suffix=".old")
        os.replace(t.path, old / t.path.name)
        try:
            os.replace(tmp, t.path)
        except BaseException:
            os.replace(old / t.path.name, t.path)
            raise
        _remove(old)
    except BaseException:
        _remove(tmp)
        raise
    return t.absolute


def _finalize_remote(_: Any, store: str) -> str:
    _mark_complete(store)
    return store


def _write(
    prepared: xr.Dataset,
    t: _Target,
    *,
    mode: str,
    compute: bool,
    protected: tuple[_Target, ...],
    encoding: dict[str, Any] | None = None,
) -> Any:
    """Write a prepared Dataset to the checked target ``t`` (marked incomplete until the end)."""
    import dask

    prepared = prepared.assign_attrs({COMPLETE_ATTR: 0})
    encoding = {k: dict(v) for k, v in (encoding or {}).items()}
    for name in prepared.coords:  # CF 2.5.1: no fill value on coordinates
        encoding.setdefault(str(name), {}).setdefault("_FillValue", None)
    kwargs: dict[str, Any] = {"zarr_format": 2, "consolidated": True, "encoding": encoding}
    if t.path is None:
        kwargs["mode"] = mode
        writes = prepared.to_zarr(t.shown, compute=False, **kwargs)
        done = dask.delayed(_finalize_remote)(writes, t.shown)
        return done.compute() if compute else done
    remove_partials(t.path)
    _mkdir(t, t.path.parent)
    tmp = _new_partial(t, directory=True)
    try:
        writes = prepared.to_zarr(tmp, compute=False, **{**kwargs, "mode": "w"})
    except BaseException:
        _remove(tmp)
        raise
    done = dask.delayed(_finalize_local)(writes, tmp, t, mode, protected)
    if not compute:
        return done
    try:
        return done.compute()
    except BaseException:
        _remove(tmp)
        raise


def to_zarr(
    ds: xr.Dataset,
    store: Any,
    *,
    compute: bool = True,
    mode: str = "w-",
    protect: Any = (),
    profile: str | None = None,
) -> Any:
    """Write an offsets/velocity Dataset to a Zarr store, CF-1.8 and ITS_LIVE-style.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`trackoff_xr.offsets`, usually after
        :func:`trackoff_xr.velocity`. May be lazy with irregular
        chunks: it is rechunked to regular chunks first.
    store : str or path-like
        A local directory or an fsspec URL (``s3://bucket/v.zarr``,
        ``memory://v.zarr``, ...).
    compute : bool, default True
        ``False`` writes the metadata now and returns a ``dask.delayed``
        object that writes the data, then marks the store complete. If that
        computation fails, its hidden partial store remains until
        :func:`remove_partials` removes it.
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses any existing store; ``"w"`` replaces a store
        trackoff_xr wrote (for local stores only once the new one is
        complete). A folder or file it did not write is never replaced.
    protect : iterable of str or path-like
        The run's inputs: the store must not be one, nor hold one. The
        ``reference_image``/``secondary_image`` attributes of ``ds`` are
        protected too.
    profile : {None, "its_live"}, default None
        ``None`` writes the CF-1.8 result as it is. ``"its_live"`` writes the
        layout of ITS_LIVE granules (:mod:`trackoff_xr.io.its_live`):
        ``mapping``, ``img_pair_info``, int16 velocities with
        ``_FillValue=-32767`` at 365 days a year, ``vr``/``va``; map grids only.

    Returns
    -------
    str or dask.delayed.Delayed
        The store written, or the delayed write.

    Raises
    ------
    OutputExistsError, ProtectedOutputError, OutputLocationError
        As :func:`check_output`, which runs before anything is computed.
    ProfileGeometryError
        ``profile="its_live"`` with a result that is not on a map grid.

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
    from .its_live import check_profile, its_live_dataset

    check_profile(profile)
    protected = _protected(protect, ds)
    t = _check(store, kind="zarr", mode=mode, protected=protected)
    if profile == "its_live":
        prepared, encoding = its_live_dataset(ds, engine="zarr")
        return _write(
            prepared, t, mode=mode, compute=compute, protected=protected, encoding=encoding
        )
    return _write(prepare_dataset(ds), t, mode=mode, compute=compute, protected=protected)


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
    from ..exceptions import ImageReadError

    text = os.fsdecode(os.fspath(store))
    local = text[len("file://") :] if text.startswith("file://") else text
    if not _is_url(text) and not os.path.exists(local):
        raise ImageReadError(f"no Zarr store at {os.fspath(store)!r}; check the path")
    try:
        ds = xr.open_zarr(store, **kwargs)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise ImageReadError(
            f"could not open {os.fspath(store)!r} as a Zarr store ({exc}); check the path"
        ) from exc
    if not _is_complete(ds.attrs.get(COMPLETE_ATTR)):
        raise IncompleteStoreError(
            f"{os.fspath(store)!r} was not completely written (no {COMPLETE_ATTR}=1 "
            "attribute); its write was interrupted: write it again with mode='w'"
        )
    return retype_attrs(ds)


def retype_attrs(ds: xr.Dataset) -> xr.Dataset:
    """Give the :data:`TYPED_ATTRS` back the type of their variable (a shallow copy).

    Zarr stores attributes as JSON, so ``flag_values`` come back as a list of
    Python ints; CF wants them typed like the variable as stored
    (``int8`` for the flags, ``bool`` in memory included).

    Examples
    --------
    >>> ds = xr.Dataset({"valid": ("x", np.array([True, False]), {"flag_values": [0, 1]})})
    >>> retype_attrs(ds).valid.attrs["flag_values"].dtype
    dtype('int8')
    """
    out = ds.copy()
    for var in out.variables.values():
        dtype = np.dtype(var.encoding.get("dtype", var.dtype))
        if dtype.kind == "b":
            dtype = np.dtype(np.int8)
        if dtype.kind not in "iuf":
            continue
        for key in TYPED_ATTRS:
            value = var.attrs.get(key)
            if isinstance(value, (list, tuple, int, float, np.ndarray, np.generic)) and not (
                isinstance(value, (bool, np.bool_))
            ):
                var.attrs[key] = np.asarray(value, dtype=dtype)
    return out


def _cube_slice(ds: xr.Dataset, mid_date: Any) -> xr.Dataset:
    from ..postprocess.velocity import MissingMetadataError

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


def append_pair(ds: xr.Dataset, store: Any, *, mid_date: Any = None, protect: Any = ()) -> str:
    """Add one pair to a Zarr data cube along ``mid_date`` (created if missing).

    The cube's global attributes (``Conventions``, ``title``, the first
    pair's parameters, ...) are kept; ``history`` gets one line per pair.

    Parameters
    ----------
    ds : xarray.Dataset
        One pair, as :func:`to_zarr` takes it, with a ``date_center``
        attribute (or pass ``mid_date``).
    store : str or path-like
        Local directory or fsspec URL of the cube.
    mid_date : str or datetime, optional
        The pair's centre date; default ``ds.attrs["date_center"]``.
    protect : iterable of str or path-like
        The run's inputs, as in :func:`to_zarr`.

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
    ProtectedOutputError, OutputLocationError
        As :func:`check_output`: ``store`` exists but is not a cube
        trackoff_xr wrote, or is (or holds) a protected path.
    IncompleteStoreError
        The cube's previous write was interrupted.
    """
    from .._version import __version__

    protected = _protected(protect, ds)
    t = _check(store, kind="zarr", mode="w", protected=protected, append=True)
    cube = prepare_dataset(_cube_slice(ds, mid_date))
    encoding = {"mid_date": dict(_TIME_ENCODING)}
    for key in _PAIR_TIMES:
        if key in cube:
            encoding[key] = dict(_TIME_ENCODING)
    if not _exists(t):
        cube = _uniform_chunks(cube, {"mid_date": 1})
        written = _write(cube, t, mode="w-", compute=True, protected=protected, encoding=encoding)
        return str(written)
    target = str(t.path) if t.path is not None else t.shown
    existing = open_zarr(target)
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
    missing = sorted(map(str, set(existing.data_vars) ^ set(cube.data_vars)))
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
    # appending rewrites the root attributes: keep the cube's, with one more history line
    attrs = {k: v for k, v in existing.attrs.items() if k != COMPLETE_ATTR}
    attrs["history"] = _add_history(
        attrs.get("history"),
        f"appended the pair mid_date={iso_date(stamp, unit='s')} with trackoff_xr {__version__}",
    )
    cube.attrs = {**attrs, COMPLETE_ATTR: 0}
    _mark_complete(target, False)
    cube.to_zarr(target, append_dim="mid_date", zarr_format=2, consolidated=True)
    _mark_complete(target, True)
    return target if t.path is None else t.absolute
