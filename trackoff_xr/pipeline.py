"""The pipeline, in one place: open -> offsets -> velocity -> filter -> write.

``trackoff run``, ``trackoff demo`` and the examples all go through
:func:`run`; its stages are public too, for a caller that needs to act
between them (the Sentinel-1 example projects the opened pair onto a map
grid before tracking it):

* :func:`open_pair` -- two paths (or images already in memory) as lazy images;
* :func:`prepare` -- for Sentinel-1 products: geocoding onto one map grid
  (``crs=``, lazily), the global offset (:func:`trackoff_xr.coregister`)
  that aligns the pair to the whole pixel, and the search prior;
* :func:`track` -- :func:`trackoff_xr.offsets`, then velocities
  (:func:`trackoff_xr.velocity`) whenever the time span and pixel size are
  known, then a filter chain; nothing is computed;
* :func:`write` -- the Zarr store, then the CSV and GeoTIFFs read back from
  it (the offsets are computed once), every target checked before anything is
  computed, the inputs never replaced.

Examples
--------
>>> import tempfile, pathlib
>>> from trackoff_xr.testing.synthetic import shifted_pair
>>> ref, sec = shifted_pair(shape=(128, 128), shift=(3.0, 5.0), seed=0)
>>> out = pathlib.Path(tempfile.mkdtemp()) / "result.zarr"
>>> result = run(ref, sec, out, csv=out.with_suffix(".csv"), chunks=64,
...              patch_size=32, spacing=32, search_radius=8, method="ncc")
>>> result.zarr.name, result.csv.name
('result.zarr', 'result.csv')
>>> ds = result.dataset.compute()   # read back from the store
>>> round(float(ds.dy.median()), 1), round(float(ds.dx.median()), 1)
(3.0, 5.0)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .exceptions import InvalidParameterError, MissingMetadataError
from .georef import crs_of, iso_date

__all__ = ["PipelineResult", "PreparedPair", "open_pair", "prepare", "run", "track", "write"]

#: what writes the Zarr store: ``store(ds, path, mode=..., protect=...)``
StoreWriter = Callable[..., Any]


@dataclass
class PipelineResult:
    """What :func:`run` (or :func:`write`) produced.

    Attributes
    ----------
    dataset : xarray.Dataset
        The result: read back from the Zarr store when one was written
        (lazy, nothing recomputed), the computed Dataset with
        ``compute=True``, else the lazy Dataset.
    zarr, csv : pathlib.Path or None
        The store and the CSV table written, if asked for.
    geotiff : list of pathlib.Path
        The GeoTIFFs written, one per variable.
    """

    dataset: xr.Dataset
    zarr: Path | None = None
    csv: Path | None = None
    geotiff: list[Path] = field(default_factory=list)


def open_pair(
    ref: Any,
    sec: Any,
    *,
    chunks: Any = 2048,
    dates: Sequence[Any] | None = None,
    polarisation: str | None = None,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Open a reference and a secondary image lazily.

    Parameters
    ----------
    ref, sec : str, path-like or xarray.DataArray
        Paths (anything :func:`trackoff_xr.open_image` reads) or images
        already opened; images held in memory (numpy) are chunked with
        ``chunks``, lazy ones keep theirs.
    chunks : int, tuple, dict, "auto" or None, default 2048
        Dask chunks (see :func:`~trackoff_xr.open_image`); ``None`` reads
        files eagerly and leaves in-memory images as they are.
    dates : (date, date), optional
        Acquisition times of ``ref`` and ``sec``, stored as their
        ``acquisition_start`` attribute (see :func:`~trackoff_xr.open_image`).
    polarisation : {"VV", "VH", "HH", "HV"}, optional
        Which measurement of Sentinel-1 products (``.SAFE`` folders or their
        ``.zip``) to open; default VV. Refused for other files.

    Returns
    -------
    (xarray.DataArray, xarray.DataArray)
        The two images.

    Raises
    ------
    InvalidParameterError
        ``dates`` is not a pair of dates.
    ImageReadError
        A file cannot be read.

    Examples
    --------
    >>> from trackoff_xr.testing.synthetic import shifted_pair
    >>> a, b = open_pair(*shifted_pair(shape=(64, 64), shift=(1.0, 2.0)), chunks=32,
    ...                  dates=("2024-02-03", "2024-02-15"))
    >>> a.chunks, b.attrs["acquisition_start"]
    (((32, 32), (32, 32)), '2024-02-15')
    """
    from .io.raster import open_image

    if dates is not None and (isinstance(dates, (str, bytes)) or len(dates) != 2):
        raise InvalidParameterError(
            f"dates={dates!r} is not a pair; pass (reference date, secondary date), "
            "e.g. dates=('2024-02-03', '2024-02-15')"
        )
    images = []
    for image, date in zip((ref, sec), dates if dates is not None else (None, None), strict=True):
        if isinstance(image, xr.DataArray):
            if chunks is not None and image.chunks is None:
                image = image.chunk(chunks)
            if date is not None:
                image = image.assign_attrs(acquisition_start=iso_date(date))
        else:
            options = {} if polarisation is None else {"polarisation": polarisation}
            image = open_image(image, chunks=chunks, date=date, **options)
        images.append(image)
    return images[0], images[1]


@dataclass
class PreparedPair:
    """A pair ready for :func:`track`, from :func:`prepare`.

    Attributes
    ----------
    ref, sec : xarray.DataArray
        The images, lazy: on the map grid when geocoded; ``sec`` moved by the
        coregistration's whole-pixel offset onto ``ref``'s grid (NaN where
        it has no data) when coregistered.
    prior : xarray.Dataset or None
        The search prior to pass to :func:`trackoff_xr.offsets`.
    coregistration : xarray.Dataset or None
        What :func:`trackoff_xr.coregister` returned (its estimate in the
        attributes).
    remove_offset : (float, float) or None
        What is left of the global offset after the whole-pixel alignment:
        :func:`track` subtracts it from ``dy``, ``dx`` so that the offsets
        (and velocities) are motion relative to stable ground.
    """

    ref: xr.DataArray
    sec: xr.DataArray
    prior: xr.Dataset | None = None
    coregistration: xr.Dataset | None = None
    remove_offset: tuple[float, float] | None = None


def _is_s1(image: xr.DataArray) -> bool:
    return "first_line_time" in image.attrs and "azimuth_time_interval" in image.attrs


def open_prior(prior: Any) -> xr.Dataset:
    """Open a search prior: a Dataset, or the path of a Zarr store or netCDF file.

    Raises
    ------
    PriorError
        Nothing readable at the path.

    Examples
    --------
    >>> open_prior("absent.zarr")
    Traceback (most recent call last):
    ...
    trackoff_xr.exceptions.PriorError: prior='absent.zarr' does not exist; ...
    """
    from .exceptions import PriorError

    if isinstance(prior, xr.Dataset):
        return prior
    path = os.fspath(prior)
    if not os.path.exists(path):
        raise PriorError(
            f"prior={path!r} does not exist; pass a Zarr store or netCDF file of offsets "
            "(dx, dy in pixels) or velocities (vx, vy with units), e.g. an ITS_LIVE mosaic"
        )
    try:
        if os.path.isdir(path):
            return xr.open_zarr(path)
        return xr.open_dataset(path, chunks={})
    except Exception as exc:  # noqa: BLE001 - each backend raises its own errors
        raise PriorError(
            f"prior={path!r} could not be read as a Zarr store or netCDF file ({exc})"
        ) from exc


def _check_prepare_options(
    crs: Any,
    resolution: Any,
    bbox: Any,
    dem: Any,
    prior: Any,
    coregister: bool | None,
    coarse: Any,
) -> None:
    if crs is None:
        for name, value in (("resolution", resolution), ("bbox", bbox), ("dem", dem)):
            if value is not None:
                raise InvalidParameterError(
                    f"{name}= was given without crs=; {name}= describes the map grid that "
                    "Sentinel-1 products are geocoded onto: add crs= (e.g. crs='EPSG:3413'), "
                    f"or leave {name}= out to track in radar geometry"
                )
    if prior is not None and coarse is True:
        raise InvalidParameterError(
            "coarse=True and prior= were both given; the prior already centres every "
            "search: leave coarse= out (or coarse=False) with prior="
        )
    if coregister is True and prior is not None and "dx" in prior.data_vars:
        raise InvalidParameterError(
            "coregister=True and a prior= in pixels (dx, dy) were both given; a prior in "
            "pixels already holds the pair's offset: pass coregister=False, or a prior "
            "of velocities (vx, vy)"
        )


def to_map(
    ref: xr.DataArray,
    sec: xr.DataArray,
    *,
    crs: Any,
    resolution: float | None = None,
    bbox: Sequence[float] | None = None,
    dem: Any = None,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Geocode two radar-geometry Sentinel-1 scenes onto one map grid, lazily.

    :func:`trackoff_xr.io.geocode.geocode_pair`; ``resolution`` defaults to
    the reference's range pixel spacing.

    Raises
    ------
    InvalidParameterError
        An image that is not a radar-geometry Sentinel-1 product.
    """
    from .io.geocode import geocode_pair

    for name, image in (("ref", ref), ("sec", sec)):
        if image.attrs.get("geometry") != "radar" or "spatial_ref" not in image.coords:
            raise InvalidParameterError(
                f"crs= geocodes radar-geometry Sentinel-1 products, but {name} "
                f"(geometry={image.attrs.get('geometry')!r}) is not one; pass .SAFE folders "
                "or their .zip, or leave crs= out for images already on a map grid"
            )
    if resolution is None:
        resolution = ref.attrs.get("range_pixel_spacing")
        if resolution is None:
            raise InvalidParameterError("crs= needs resolution= (metres), e.g. resolution=10")
    return geocode_pair(ref, sec, crs=crs, resolution=resolution, bbox=bbox, dem=dem)


def align(
    ref: xr.DataArray, sec: xr.DataArray, offset: tuple[float, float]
) -> tuple[xr.DataArray, tuple[float, float]]:
    """Move ``sec`` by the whole-pixel part of ``offset`` onto ``ref``'s grid, lazily.

    ``offset`` is ``(dy, dx)``: stable ground at ``ref[y, x]`` is at
    ``sec[y + dy, x + dx]``. The result has ``ref``'s shape and coordinates
    (NaN where ``sec`` has no data) and ``sec``'s attributes; what is left of
    the offset (at most half a pixel per axis) is returned with it.

    Examples
    --------
    >>> import numpy as np
    >>> ref = xr.DataArray(np.zeros((4, 5)), dims=("y", "x"))
    >>> sec = xr.DataArray(np.arange(20.0).reshape(4, 5), dims=("y", "x"))
    >>> moved, rest = align(ref, sec, (1.2, -0.6))
    >>> moved.values[0].tolist(), rest
    ([nan, 5.0, 6.0, 7.0, 8.0], (0.2, 0.4))
    """
    import dask.array as da

    whole = [int(round(v)) for v in offset]
    data = sec.data if sec.chunks is not None else da.from_array(np.asarray(sec.data))
    data = data.astype(np.float32) if not np.issubdtype(data.dtype, np.floating) else data
    pads, cuts = [], []
    for axis, shift in enumerate(whole):
        n_ref, n_sec = ref.shape[axis], sec.shape[axis]
        first = max(0, -shift)  # first ref index that sec covers
        last = min(n_ref, n_sec - shift)  # one past the last
        if last <= first:
            raise InvalidParameterError(
                f"an offset of {offset} pixels leaves no overlap between the images"
            )
        cuts.append(slice(first + shift, last + shift))
        pads.append((first, n_ref - last))
    data = da.pad(data[tuple(cuts)], pads, mode="constant", constant_values=np.nan)
    if ref.chunks is not None:
        data = data.rechunk(ref.data.chunks)
    moved = xr.DataArray(data, dims=ref.dims, coords=ref.coords, attrs=dict(sec.attrs))
    moved.name = sec.name
    rest = (round(float(offset[0]) - whole[0], 6), round(float(offset[1]) - whole[1], 6))
    return moved, rest


def prepare(
    ref: Any,
    sec: Any,
    *,
    chunks: Any = 2048,
    dates: Sequence[Any] | None = None,
    polarisation: str | None = None,
    crs: Any = None,
    resolution: float | None = None,
    bbox: Sequence[float] | None = None,
    dem: Any = None,
    prior: Any = None,
    coregister: bool | None = None,
    coarse: Any = None,
) -> PreparedPair:
    """Open a pair and put it in shape for :func:`track`: geocoded, coregistered, prior.

    Parameters
    ----------
    ref, sec, chunks, dates, polarisation
        See :func:`open_pair`.
    crs : str or CRS, optional
        Geocode both (radar-geometry Sentinel-1) scenes onto one map grid
        in this CRS, lazily (:func:`to_map`); default: keep their geometry.
    resolution, bbox, dem
        The grid's pixel size (default: the range pixel spacing), its
        ``(W, S, E, N)`` box in degrees, and a DEM for terrain correction;
        only with ``crs``.
    prior : xarray.Dataset or path, optional
        Search prior for :func:`trackoff_xr.offsets` (see :func:`open_prior`).
    coregister : bool, optional
        Measure the pair's global offset (:func:`trackoff_xr.coregister`,
        in radar geometry from the annotation and the images; carried to
        the map grid when geocoded, :func:`map_offset`), move ``sec`` by its whole-pixel part
        (:func:`align`), and have :func:`track` subtract the rest. Default:
        for two Sentinel-1 products when no ``prior`` is given. This reads
        the images once (block means and a few patches).
    coarse : bool, optional
        Only checked here (``coarse=True`` with ``prior`` is refused); pass it
        to :func:`track`.

    Returns
    -------
    PreparedPair

    Raises
    ------
    InvalidParameterError
        Options that do not go together, e.g. ``resolution`` without ``crs``.
    GridMismatchError
        Sentinel-1 products of different orbits.
    CoregistrationError, GeocodingError, PriorError
        From the steps.

    Examples
    --------
    >>> from trackoff_xr.testing.synthetic import shifted_pair
    >>> ref, sec = shifted_pair(shape=(128, 128), shift=(2.0, 3.0), seed=0)
    >>> pair = prepare(ref, sec, chunks=64)     # not Sentinel-1: nothing to do
    >>> pair.coregistration is None, pair.ref.chunks[0]
    (True, (64, 64))
    >>> prepare(ref, sec, resolution=10)
    Traceback (most recent call last):
    ...
    trackoff_xr.exceptions.InvalidParameterError: resolution= was given without crs=; ...
    """
    prior = open_prior(prior) if prior is not None else None
    _check_prepare_options(crs, resolution, bbox, dem, prior, coregister, coarse)
    ref_image, sec_image = open_pair(
        ref, sec, chunks=chunks, dates=dates, polarisation=polarisation
    )
    s1 = _is_s1(ref_image) and _is_s1(sec_image)
    if s1:
        from .io.safe import check_s1_pair

        check_s1_pair(ref_image, sec_image)  # one orbit and pass direction
    if coregister is None:
        coregister = s1 and prior is None
    estimate = offset = None
    if coregister:
        from .coregister import coregister as measure

        # in the images' own geometry: radar pairs from the annotation, then the images
        estimate = measure(ref_image, sec_image)
        offset = (float(estimate.attrs["global_dy"]), float(estimate.attrs["global_dx"]))
    if crs is not None:
        radar = ref_image, sec_image
        ref_image, sec_image = to_map(*radar, crs=crs, resolution=resolution, bbox=bbox, dem=dem)
        if offset is not None and estimate is not None:  # both set by coregister
            offset = map_offset(*radar, offset, ref_image)
            estimate.attrs.update(map_dy=offset[0], map_dx=offset[1])
    pair = PreparedPair(ref_image, sec_image, prior, coregistration=estimate)
    if offset is not None:
        pair.sec, pair.remove_offset = align(ref_image, sec_image, offset)
    return pair


def map_offset(
    ref: xr.DataArray,
    sec: xr.DataArray,
    offset: tuple[float, float],
    grid_image: xr.DataArray,
    points: int = 7,
) -> tuple[float, float]:
    """Carry a radar-geometry offset between two scenes to their common map grid.

    Stable ground at ``ref[y, x]`` is at ``sec[y + dy, x + dx]`` (radar
    pixels). Each scene is geocoded with its own geolocation, so most of
    that offset (the slice start, recorded in the annotation) vanishes on
    the map; what is left (timing and orbit errors the annotation does not
    record) is where each scene's ground control points put those two
    pixels: ``sec``'s at ``(y + dy, x + dx)`` less ``ref``'s at ``(y, x)``,
    in map pixels of ``grid_image`` (rows down), the median over a
    ``points`` x ``points`` grid of the reference.

    Examples
    --------
    >>> import glob
    >>> from trackoff_xr.io.safe import open_safe
    >>> from trackoff_xr.io.geocode import geocode
    >>> img = open_safe(glob.glob("../shared/data/s1_grd/*.SAFE")[0])
    >>> grid = geocode(img, crs="EPSG:32632", resolution=100.0)   # lazy
    >>> dy, dx = map_offset(img, img, (10.0, 0.0), grid)   # 10 lines = 100 m along track
    >>> round(float(np.hypot(dy, dx)), 1)
    1.0
    """
    from pyproj import Transformer
    from scipy.interpolate import LinearNDInterpolator

    crs = crs_of(grid_image)
    transform = grid_image.rio.transform()
    to_map = Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    def where(image: xr.DataArray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        gcps = image.rio.get_gcps()
        known = np.array([(g.row, g.col) for g in gcps])
        lonlat = np.array([(g.x, g.y) for g in gcps])
        lon, lat = LinearNDInterpolator(known, lonlat)(np.column_stack([rows, cols])).T
        return np.array(to_map.transform(lon, lat))

    rows, cols = np.meshgrid(
        np.linspace(0.1, 0.9, points) * ref.shape[0], np.linspace(0.1, 0.9, points) * ref.shape[1]
    )
    rows, cols = rows.ravel() + 0.5, cols.ravel() + 0.5  # GCPs: pixel centres at +0.5
    start = where(ref, rows, cols)
    end = where(sec, rows + offset[0], cols + offset[1])
    dx = (end[0] - start[0]) / transform.a
    dy = (end[1] - start[1]) / transform.e
    keep = np.isfinite(dx) & np.isfinite(dy)
    if not keep.any():
        from .exceptions import CoregistrationError

        raise CoregistrationError(
            "the ground control points of ref and sec do not cover the same pixels; the "
            "scenes may not overlap"
        )
    return float(np.median(dy[keep])), float(np.median(dx[keep]))


def track(
    ref: xr.DataArray,
    sec: xr.DataArray,
    *,
    days: float | None = None,
    pixel_size: float | tuple[float, float] | None = None,
    velocities: bool | None = None,
    filters: bool | Callable[[xr.Dataset], xr.Dataset] = False,
    remove_offset: tuple[float, float] | None = None,
    coregistration: xr.Dataset | None = None,
    **offsets_options: Any,
) -> xr.Dataset:
    """Build the lazy offsets, velocity and filter graph of a pair; computes nothing.

    Parameters
    ----------
    ref, sec : xarray.DataArray
        The images, e.g. from :func:`open_pair`.
    days, pixel_size : optional
        Passed to :func:`trackoff_xr.velocity`; either one asks for
        velocities (an error says what else is missing).
    velocities : bool, optional
        ``True``: velocities or an error; ``False``: offsets only; default:
        velocities whenever the time span and pixel size can be found.
    filters : bool or callable, default False
        ``True`` applies :func:`trackoff_xr.filter_offsets`; a callable is
        applied to the Dataset (after the velocities, so that they are
        masked with the offsets).
    remove_offset : (float, float), optional
        ``(dy, dx)`` pixels subtracted from the offsets before the
        velocities (:attr:`PreparedPair.remove_offset`); recorded in the
        attributes ``offset_removed_dy``, ``offset_removed_dx``.
    coregistration : xarray.Dataset, optional
        :attr:`PreparedPair.coregistration`: its estimate goes into the
        attributes (``coregistration_dy``, ``coregistration_dx``,
        ``coregistration_method``, ...).
    **offsets_options
        Passed to :func:`trackoff_xr.offsets` (``method``, ``patch_size``,
        ``prior``, ``coarse``, ...).

    Returns
    -------
    xarray.Dataset
        Lazy; the attributes ``reference_image``/``secondary_image`` name the
        files the images came from (absolute paths), when known.

    Raises
    ------
    MissingMetadataError
        Velocities were asked for (``days``, ``pixel_size`` or
        ``velocities=True``) but cannot be computed.

    Examples
    --------
    >>> from trackoff_xr.testing.synthetic import shifted_pair
    >>> ref, sec = shifted_pair(shape=(96, 96), shift=(2.0, 4.0), seed=1)
    >>> ds = track(ref, sec, days=10, pixel_size=5.0, patch_size=32, spacing=32,
    ...            search_radius=6, method="ncc")
    >>> round(float(ds.vx.median()))   # 4 px * 5 m in 10 days, per year
    730
    """
    from .postprocess.filters import filter_offsets
    from .postprocess.velocity import velocity
    from .tracking import offsets

    ds = offsets(ref, sec, **offsets_options)
    if coregistration is not None:
        for key in ("global_dy", "global_dx", "annotation_dy", "annotation_dx"):
            ds.attrs[key.replace("global", "coregistration")] = float(coregistration.attrs[key])
        for key in ("coregistration_method", "n_matches", "residual_std", "map_dy", "map_dx"):
            if key in coregistration.attrs:
                name = key if key.startswith("coreg") else f"coregistration_{key}"
                ds.attrs[name] = coregistration.attrs[key]
    if remove_offset is not None:
        # motion relative to stable ground: what the alignment left of the global offset
        for name, value in zip(("dy", "dx"), remove_offset, strict=True):
            ds[name] = (ds[name] - np.float32(value)).assign_attrs(ds[name].attrs)
            ds.attrs[f"offset_removed_{name}"] = float(value)
    if velocities is not False:
        try:
            ds = velocity(ds, days=days, pixel_size=pixel_size)
        except MissingMetadataError:
            if velocities or days is not None or pixel_size is not None:
                raise  # asked for velocities: say what is missing
    if filters is True:
        ds = filter_offsets(ds)
    elif callable(filters):
        ds = filters(ds)
    elif filters is not False:
        raise InvalidParameterError(
            f"filters={filters!r} is neither True, False nor a function of the Dataset; "
            "pass filters=True for the default chain"
        )
    for key, image in (("reference_image", ref), ("secondary_image", sec)):
        source = image.attrs.get("source")
        if source:
            ds.attrs[key] = os.path.abspath(source) if os.path.exists(source) else str(source)
    return ds


def _sources(*images: xr.DataArray) -> tuple[str, ...]:
    return tuple(str(i.attrs["source"]) for i in images if i.attrs.get("source"))


def _check_targets(
    ds: xr.Dataset,
    out: Any,
    csv: Any,
    geotiff: Any,
    geotiff_variables: Iterable[str] | None,
    mode: str,
    protect: tuple[Any, ...],
) -> tuple[str, ...]:
    """Make every writer's checks on every target; return the GeoTIFF variables."""
    from .io.safety import check_output

    variables: tuple[str, ...] = ()
    if geotiff is not None:
        if geotiff_variables is None:
            components = ("vx", "vy") if "vx" in ds else ("v_range", "v_azimuth")
            geotiff_variables = (*components, "v", "score")
        variables = tuple(geotiff_variables)
    targets: list[tuple[Any, str, dict[str, Any]]] = [
        (out, "zarr", {}),
        (csv, "csv", {}),
        (geotiff, "geotiff", {"variables": variables}),
    ]
    for target, kind, extra in targets:
        if target is not None:
            check_output(target, kind=kind, mode=mode, protect=protect, **extra)
    return variables


def write(
    ds: xr.Dataset,
    out: str | os.PathLike[str] | None = None,
    *,
    csv: str | os.PathLike[str] | None = None,
    geotiff: str | os.PathLike[str] | None = None,
    geotiff_variables: Iterable[str] | None = None,
    mode: str = "w-",
    protect: Iterable[str | os.PathLike[str]] = (),
    store: StoreWriter | None = None,
) -> PipelineResult:
    """Write a result: the Zarr store first, then the CSV and GeoTIFFs read back from it.

    Parameters
    ----------
    ds : xarray.Dataset
        Lazy or computed result of :func:`track`.
    out : path-like, optional
        Zarr store; with it, ``ds`` is computed once, into the store, and the
        other files are written from the store.
    csv : path-like, optional
        The valid points as CSV (:func:`trackoff_xr.to_csv`).
    geotiff : path-like, optional
        Folder of GeoTIFFs (:func:`trackoff_xr.to_geotiff`), one per variable.
    geotiff_variables : iterable of str, optional
        Default: the velocity components and ``v`` (``vx``, ``vy`` or
        ``v_range``, ``v_azimuth``), and ``score``.
    mode : {"w-", "w"}, default "w-"
        ``"w"`` replaces outputs trackoff_xr wrote (never anything else).
    protect : iterable of path-like
        Paths (the inputs) never to be replaced nor to lie inside an output.
    store : callable, optional
        Writes the store: ``store(ds, path, mode=mode, protect=protect)``.
        Default :func:`trackoff_xr.to_zarr`; the command line passes its own,
        which shows progress and runs on the chosen dask scheduler.

    Returns
    -------
    PipelineResult

    Raises
    ------
    OutputExistsError, ProtectedOutputError, OutputLocationError
        From the checks made on every target before anything is computed.
    """
    from .io.csv import to_csv
    from .io.geotiff import to_geotiff
    from .io.zarr import open_zarr, to_zarr

    protect = tuple(protect)
    variables = _check_targets(ds, out, csv, geotiff, geotiff_variables, mode, protect)
    result = PipelineResult(ds)
    if out is not None:
        (store or to_zarr)(ds, out, mode=mode, protect=protect)
        result.zarr = Path(out)
        result.dataset = open_zarr(out)
    if csv is not None:
        result.csv = Path(to_csv(result.dataset, csv, mode=mode, protect=protect))
    if geotiff is not None:
        result.geotiff = to_geotiff(
            result.dataset, geotiff, variables=variables, mode=mode, protect=protect
        )
    return result


def run(
    ref: Any,
    sec: Any,
    out: str | os.PathLike[str] | None = None,
    *,
    chunks: Any = 2048,
    dates: Sequence[Any] | None = None,
    polarisation: str | None = None,
    crs: Any = None,
    resolution: float | None = None,
    bbox: Sequence[float] | None = None,
    dem: Any = None,
    prior: Any = None,
    coregister: bool | None = None,
    days: float | None = None,
    pixel_size: float | tuple[float, float] | None = None,
    velocities: bool | None = None,
    filters: bool | Callable[[xr.Dataset], xr.Dataset] = False,
    compute: bool = False,
    annotate: Callable[[xr.Dataset], xr.Dataset] | None = None,
    csv: str | os.PathLike[str] | None = None,
    geotiff: str | os.PathLike[str] | None = None,
    geotiff_variables: Iterable[str] | None = None,
    mode: str = "w-",
    protect: Iterable[str | os.PathLike[str]] | None = None,
    store: StoreWriter | None = None,
    **offsets_options: Any,
) -> PipelineResult:
    """Open a pair, track it, add velocities, filter, and write the outputs.

    :func:`prepare` (which opens the pair, and for Sentinel-1 products
    geocodes and coregisters it), then :func:`track`, then :func:`write`.
    Nothing is computed before the write but the coregistration's reads.

    Parameters
    ----------
    ref, sec : str, path-like or xarray.DataArray
        The reference (earlier) and secondary (later) image; or ``ref`` a
        :class:`PreparedPair` (from :func:`prepare`) and ``sec`` None.
    out : path-like, optional
        Zarr store to write (see :func:`write`); without it nothing is
        written and the result stays lazy (unless ``compute``).
    chunks, dates, polarisation, crs, resolution, bbox, dem, prior, coregister
        See :func:`prepare`.
    days, pixel_size, velocities, filters
        See :func:`track`.
    compute : bool, default False
        Compute the result in memory before writing (then
        :attr:`PipelineResult.dataset` holds it); otherwise it is computed
        while the store is written.
    annotate : callable, optional
        Applied to the (computed, with ``compute``) Dataset before writing,
        e.g. to add the known truth to a generated pair.
    csv, geotiff, geotiff_variables, mode, store
        See :func:`write`.
    protect : iterable of path-like, optional
        Never replaced nor inside an output; default: the files ``ref`` and
        ``sec`` were read from.
    **offsets_options
        Passed to :func:`trackoff_xr.offsets`.

    Returns
    -------
    PipelineResult
    """
    pair = (
        ref
        if isinstance(ref, PreparedPair)
        else prepare(
            ref,
            sec,
            chunks=chunks,
            dates=dates,
            polarisation=polarisation,
            crs=crs,
            resolution=resolution,
            bbox=bbox,
            dem=dem,
            prior=prior,
            coregister=coregister,
            coarse=offsets_options.get("coarse"),
        )
    )
    ref_image, sec_image = pair.ref, pair.sec
    if pair.prior is not None:
        offsets_options["prior"] = pair.prior
    ds = track(
        ref_image,
        sec_image,
        days=days,
        pixel_size=pixel_size,
        velocities=velocities,
        filters=filters,
        remove_offset=pair.remove_offset,
        coregistration=pair.coregistration,
        **offsets_options,
    )
    protect = tuple(_sources(ref_image, sec_image) if protect is None else protect)
    # every output checked before anything is computed
    _check_targets(ds, out, csv, geotiff, geotiff_variables, mode, protect)
    if compute:
        ds = ds.compute()
    if annotate is not None:
        ds = annotate(ds)
    result = write(
        ds,
        out,
        csv=csv,
        geotiff=geotiff,
        geotiff_variables=geotiff_variables,
        mode=mode,
        protect=protect,
        store=store,
    )
    if compute:
        result.dataset = ds
    return result
