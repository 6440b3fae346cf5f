"""Lazy map geocoding of radar-geometry Sentinel-1 scenes onto one map grid.

:func:`geocode_pair` puts two scenes from :func:`trackoff_xr.io.safe.open_safe`
onto one grid (``crs=``, ``resolution=``, ``bbox=``) as dask-backed
DataArrays; building them reads no pixel, and computing them reads each
radar chunk only where an output chunk needs it, so a full IW scene never
sits in memory.

Two ways, chosen by ``dem=``:

``dem=None`` -- ground control points (odc-geo)
    The annotation's geolocation grid (the image's GCPs, about 200 points
    on the terrain heights ESA used) maps radar pixels to the map through a
    fitted polynomial; :meth:`odc.geo.xr.ODCExtensionDa.reproject` builds a
    dask graph of one task per output chunk reading only the overlapping
    radar chunks. Positions are as good as the GCP heights: where the
    terrain differs from them, a point moves in ground range by
    ``dh / tan(incidence)``.

``dem="dem.tif"`` (a path or URL GDAL can read, or a DataArray) -- terrain correction (sarsen)
    The DEM is reprojected (lazily, odc-geo) onto the output grid, and
    :func:`sarsen.apps.do_terrain_correction` finds, for every output pixel
    and its DEM height, the zero-Doppler azimuth time on the orbit and the
    slant range, carried to ground range with the annotation's
    slant-to-ground-range polynomials; the image is sampled there
    (``interp="linear"`` by default). The orbit, timing and polynomials
    come from the product's annotation (:func:`sar_product`), the pixels
    from the image as opened (any calibration), so the result is the same
    image in map geometry, not beta nought.

Memory: the reads bound GDAL's block cache
    GDAL keeps decoded blocks in one process-wide cache, by default 5 % of
    the RAM, which counts in the process's memory: a measurement TIFF in
    strips of one line (25,788 pixels) fills it with whole lines. Every
    read of a raster that geocoding triggers (the image's radar chunks,
    the DEM) therefore runs with the cache held at :data:`GDAL_CACHE_MB`
    (64 MiB) -- inside the dask tasks that read, so it holds on any
    scheduler -- and the cache is given back its size when no such read is
    running. A ``GDAL_CACHEMAX`` environment variable, if set, is left to
    GDAL (set it before the first read).

The output grid is aligned on multiples of ``resolution`` (so separate
calls give identical coordinates), north-up, with a ``spatial_ref``
(rioxarray) and ``geometry="map"``; every attribute of the input is kept.
sarsen and odc-geo are imported only when geocoding (``pip install
trackoff_xr[s1]``).

Examples
--------
>>> import glob
>>> from trackoff_xr.io.safe import open_safe
>>> img = open_safe(glob.glob("../shared/data/s1_grd/*.SAFE")[0])
>>> grid = map_grid([img], crs="EPSG:32632", resolution=100.0)
>>> grid.shape
Shape2d(x=2779, y=2065)
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
import xarray as xr

from ..exceptions import GeocodingError, InvalidParameterError
from ..georef import crs_of, is_radar_reference

__all__ = ["gdal_cache_bound", "geocode", "geocode_pair", "map_grid", "sar_product"]

RESAMPLING = ("nearest", "bilinear", "cubic", "average")
#: edge of the output chunks (pixels): one task each, reading only the radar chunks it overlaps
CHUNK = 1024
#: GDAL's block cache (MiB) while geocoding reads pixels, unless ``GDAL_CACHEMAX`` is set
GDAL_CACHE_MB = 64


# -- GDAL's block cache while reading ---------------------------------------------------

_cache_lock = threading.Lock()
_cache_readers = 0
_cache_saved: int | None = None


@contextlib.contextmanager
def gdal_cache_bound(megabytes: float = GDAL_CACHE_MB) -> Iterator[None]:
    """Hold GDAL's process-wide block cache at ``megabytes`` while the block runs.

    Nested and concurrent uses (the threads of one dask worker) share one
    bound: the first to enter lowers the cache (GDAL drops blocks beyond
    it), the last to leave gives it back its size. Nothing changes when
    ``GDAL_CACHEMAX`` is set in the environment (the user's choice) or the
    cache is already smaller.

    Examples
    --------
    >>> from rasterio.env import get_gdal_config
    >>> with gdal_cache_bound(32):
    ...     bounded = get_gdal_config("GDAL_CACHEMAX")
    >>> "GDAL_CACHEMAX" in os.environ or bounded <= 32 * 2**20
    True
    """
    global _cache_readers, _cache_saved
    if os.environ.get("GDAL_CACHEMAX"):
        yield
        return
    from rasterio.env import get_gdal_config, set_gdal_config

    bound = int(megabytes * 2**20)
    with _cache_lock:
        if _cache_readers == 0:
            # rasterio reads and sets GDAL's live cache size in bytes (GDALSetCacheMax64)
            current = int(get_gdal_config("GDAL_CACHEMAX") or 0)
            if current > bound:
                _cache_saved = current
                set_gdal_config("GDAL_CACHEMAX", bound)
        _cache_readers += 1
    try:
        yield
    finally:
        with _cache_lock:
            _cache_readers -= 1
            if _cache_readers == 0 and _cache_saved is not None:
                set_gdal_config("GDAL_CACHEMAX", _cache_saved)
                _cache_saved = None


class _BoundedReads:
    """A lazily indexed raster whose reads run under :func:`gdal_cache_bound`.

    Stands in for the array a dask ``getter`` task indexes (the data node of
    ``rioxarray.open_rasterio(chunks=...)``), so the bound applies in the
    task that reads, on whichever worker runs it; picklable like the array.
    """

    def __init__(self, array: Any, megabytes: float):
        self.array = array
        self.megabytes = megabytes
        self.shape = array.shape
        self.dtype = array.dtype
        self.ndim = len(array.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        with gdal_cache_bound(self.megabytes):
            return np.asarray(self.array[key])

    def __repr__(self) -> str:
        return f"_BoundedReads({self.array!r}, megabytes={self.megabytes})"


def _reads_raster(value: Any) -> bool:
    """Whether a graph value is a lazily indexed rasterio/rioxarray array."""
    for _ in range(16):  # xarray wraps the backend array in a few adapters
        if type(value).__module__.startswith(("rioxarray", "rasterio")):
            return True
        if not hasattr(value, "array"):
            return False
        value = value.array
    return False


def _bound_reads(image: xr.DataArray, megabytes: float = GDAL_CACHE_MB) -> xr.DataArray:
    """Return the same lazy image with every raster read of its graph under the bound.

    The graph keeps its keys and tasks; only the arrays the read tasks
    index are wrapped. A numpy-backed image (already read) is returned as is.
    """
    from dask.base import is_dask_collection
    from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

    data = image.data
    if not is_dask_collection(data):
        return image
    graph = data.__dask_graph__()
    if not isinstance(graph, HighLevelGraph):
        return image
    layers = dict(graph.layers)
    for name, layer in graph.layers.items():
        if not isinstance(layer, MaterializedLayer) or len(layer) != 1:
            continue
        ((key, value),) = layer.mapping.items()
        if isinstance(value, _BoundedReads) or not _reads_raster(value):
            continue
        layers[name] = MaterializedLayer({key: _BoundedReads(value, megabytes)})
    if all(layers[n] is graph.layers[n] for n in layers):
        return image
    import dask.array as da

    bounded = HighLevelGraph(layers, graph.dependencies)
    array = da.Array(bounded, data.name, data.chunks, meta=data._meta)
    return image.copy(data=array)


def _check_image(image: Any, name: str) -> xr.DataArray:
    if not isinstance(image, xr.DataArray) or image.ndim != 2:
        raise InvalidParameterError(
            f"{name} must be a 2-D DataArray from trackoff_xr.io.safe.open_safe; got "
            f"{type(image).__name__}"
        )
    ref = image.coords["spatial_ref"].attrs if "spatial_ref" in image.coords else {}
    if not is_radar_reference(ref):
        raise GeocodingError(
            f"{name} carries no ground control points (spatial_ref.gcps), so where its pixels "
            "lie is unknown; open the product with trackoff_xr.io.safe.open_safe"
        )
    return image


def _check_resolution(resolution: Any) -> float:
    try:
        value = float(resolution)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"resolution={resolution!r} is not a number; pass the pixel size in CRS units, "
            "e.g. resolution=10"
        ) from exc
    if not np.isfinite(value) or value <= 0:
        raise InvalidParameterError(f"resolution={resolution!r} must be a positive number")
    return value


def map_grid(
    images: Sequence[xr.DataArray],
    *,
    crs: Any,
    resolution: float,
    bbox: Sequence[float] | None = None,
) -> Any:
    """Make the common map grid (an odc-geo ``GeoBox``) of radar-geometry scenes.

    Parameters
    ----------
    images : sequence of xarray.DataArray
        Scenes with ground control points (:func:`~trackoff_xr.io.safe.open_safe`).
    crs : str or CRS
        A projected CRS, e.g. ``"EPSG:3413"``.
    resolution : float
        Pixel size in CRS units.
    bbox : (W, S, E, N), optional
        Longitude/latitude box (EPSG:4326); default: where all scenes overlap.

    Returns
    -------
    odc.geo.geobox.GeoBox
        North-up, aligned on multiples of ``resolution``.

    Raises
    ------
    GeocodingError
        Scenes that do not overlap, or a ``bbox`` outside them.
    InvalidParameterError
        A bad ``crs``, ``resolution`` or ``bbox``.
    """
    import odc.geo.xr  # noqa: F401  (registers .odc)
    from odc.geo import geom
    from odc.geo.geobox import GeoBox
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    res = _check_resolution(resolution)
    try:
        target = CRS.from_user_input(crs)
    except CRSError as exc:
        raise InvalidParameterError(
            f"crs={crs!r} is not a coordinate reference system ({exc}); pass e.g. 'EPSG:3413'"
        ) from exc
    if target.is_geographic:
        raise InvalidParameterError(
            f"crs={crs!r} is geographic (degrees); pass a projected CRS in metres, e.g. "
            "'EPSG:3413' or a UTM zone"
        )
    area = None
    for k, image in enumerate(images):
        _check_image(image, f"images[{k}]")
        with warnings.catch_warnings():  # odc-geo 0.5 calls a deprecated shapely function
            warnings.simplefilter("ignore", DeprecationWarning)
            footprint = image.odc.geobox.extent.to_crs(target)
        area = footprint if area is None else area.intersection(footprint)
    if area is None:
        raise InvalidParameterError("map_grid needs at least one image")
    if bbox is not None:
        if len(bbox) != 4 or not (bbox[0] < bbox[2] and bbox[1] < bbox[3]):
            raise InvalidParameterError(
                f"bbox={tuple(bbox)!r} is not (W, S, E, N) with W < E and S < N (degrees)"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            west, south, east, north = map(float, bbox)
            box = geom.box(west, south, east, north, "EPSG:4326").to_crs(target)
        area = area.intersection(box)
    if area.is_empty or area.area <= (2 * res) ** 2:
        raise GeocodingError(
            "the scenes (and bbox) do not overlap on the map: nothing to geocode; check that "
            "both products cover the bbox, and that the bbox is (W, S, E, N) in degrees"
        )
    return GeoBox.from_bbox(area.boundingbox, target, resolution=res)


def _finish(out: xr.DataArray, image: xr.DataArray, how: str) -> xr.DataArray:
    import rioxarray  # noqa: F401

    out = out.rename(image.name) if image.name is not None else out
    out.attrs = dict(image.attrs)
    out.attrs["geometry"] = "map"
    out.attrs["geocoding"] = how
    return out


def geocode(
    image: xr.DataArray,
    grid: Any = None,
    *,
    crs: Any = None,
    resolution: float | None = None,
    bbox: Sequence[float] | None = None,
    dem: Any = None,
    resampling: str = "bilinear",
    chunks: int = CHUNK,
) -> xr.DataArray:
    """Put one radar-geometry scene on a map grid, lazily.

    Parameters
    ----------
    image : xarray.DataArray
        From :func:`~trackoff_xr.io.safe.open_safe` (dask-backed for laziness).
    grid : odc.geo.geobox.GeoBox, optional
        The output grid (:func:`map_grid`); else made from ``crs``,
        ``resolution``, ``bbox``.
    crs, resolution, bbox
        See :func:`map_grid`.
    dem : str, path or xarray.DataArray, optional
        A DEM (heights above the WGS84 ellipsoid, any CRS, GDAL-readable
        path or URL): terrain correction with sarsen. ``None``: GCP-based.
    resampling : {"nearest", "bilinear", "cubic", "average"}
        How the radar image is sampled (the DEM path supports nearest and
        bilinear).
    chunks : int, default 1024
        Edge of the output's square dask chunks; memory per task grows with
        its square (plus the radar chunks it overlaps).

    Returns
    -------
    xarray.DataArray
        Float32 ``(y, x)`` on ``grid``, NaN outside the scene; attributes of
        ``image`` plus ``geometry="map"`` and ``geocoding`` (how).

    Raises
    ------
    GeocodingError, InvalidParameterError
        See :func:`map_grid`; a DEM that cannot be read or does not cover
        the grid.
    """
    _check_image(image, "image")
    if resampling not in RESAMPLING:
        raise InvalidParameterError(f"resampling={resampling!r} is not one of {RESAMPLING}")
    if grid is None:
        if crs is None or resolution is None:
            raise InvalidParameterError(
                "geocode needs grid= (from map_grid) or both crs= and resolution="
            )
        grid = map_grid([image], crs=crs, resolution=resolution, bbox=bbox)
    image = _bound_reads(image)  # GDAL's block cache stays small in the tasks that read
    if dem is None:
        import odc.geo.xr  # noqa: F401

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            out = image.odc.reproject(
                grid, resampling=resampling, dst_nodata=np.nan, chunks=(chunks, chunks)
            )
        out = out.astype(np.float32)
        return _finish(out, image, "ground control points (odc-geo GCP reprojection)")
    return _terrain_correct(image, grid, dem, resampling, chunks)


def geocode_pair(
    ref: xr.DataArray,
    sec: xr.DataArray,
    *,
    crs: Any,
    resolution: float,
    bbox: Sequence[float] | None = None,
    dem: Any = None,
    resampling: str = "bilinear",
    chunks: int = CHUNK,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Put two radar-geometry scenes on one map grid, lazily (see :func:`geocode`).

    The grid covers where both scenes overlap (within ``bbox`` if given),
    so the two outputs have identical coordinates and can go straight to
    :func:`trackoff_xr.offsets`.

    Examples
    --------
    >>> import glob
    >>> from trackoff_xr.io.safe import open_safe
    >>> img = open_safe(glob.glob("../shared/data/s1_grd/*.SAFE")[0])
    >>> a, b = geocode_pair(img, img, crs="EPSG:32632", resolution=200.0)   # lazy
    >>> a.shape == b.shape, a.attrs["geometry"]
    (True, 'map')
    """
    grid = map_grid([ref, sec], crs=crs, resolution=resolution, bbox=bbox)
    return (
        geocode(ref, grid, dem=dem, resampling=resampling, chunks=chunks),
        geocode(sec, grid, dem=dem, resampling=resampling, chunks=chunks),
    )


# -- terrain correction ---------------------------------------------------------------


def _annotation(image: xr.DataArray) -> ET.Element:
    from .safe import _Product, _resolve

    source = image.attrs.get("source")
    polarisation = image.attrs.get("polarisation", "VV")
    if not source or not os.path.exists(str(source)):
        raise GeocodingError(
            f"terrain correction reads the product's orbit from its annotation, but the image's "
            f"source={source!r} is not a product on disk; open it with open_safe(path)"
        )
    product = _Product(_resolve(source))
    try:
        name = product.find("annotation", polarisation)
        if name is None:
            raise GeocodingError(f"{source!r} has no {polarisation} annotation")
        return product.xml(name)
    finally:
        product.close()


def _dt(text: str | None) -> np.datetime64:
    return np.datetime64((text or "").strip().rstrip("Z"), "ns")


def sar_product(image: xr.DataArray) -> Any:
    """Wrap an :func:`~trackoff_xr.io.safe.open_safe` image as a sarsen ``GroundRangeSarProduct``.

    The orbit state vectors and the slant-to-ground-range polynomials are
    read from the product's annotation; :meth:`beta_nought` returns the
    image itself (as opened) on ``(azimuth_time, ground_range)``
    coordinates, so sarsen geocodes exactly those pixels.
    """
    from sarsen import datamodel

    ann = _annotation(image)
    info = "imageAnnotation/imageInformation/"
    first = _dt(ann.findtext(info + "productFirstLineUtcTime"))
    ati = float(ann.findtext(info + "azimuthTimeInterval", "nan"))
    spacing = float(ann.findtext(info + "rangePixelSpacing", "nan"))
    orbits = list(ann.iter("orbit"))
    times = np.array([_dt(o.findtext("time")) for o in orbits])
    position = np.array(
        [[float(o.findtext(f"position/{a}", "nan")) for a in "xyz"] for o in orbits]
    )
    state = xr.DataArray(
        position,
        dims=("azimuth_time", "axis"),
        coords={"azimuth_time": times, "axis": [0, 1, 2]},
        name="position",
    )
    conv = [c for c in ann.iter("coordinateConversion") if c.find("sr0") is not None]
    if not conv or len(orbits) < 6:
        raise GeocodingError(
            "the annotation has no slant-to-ground-range polynomials or too few orbit state "
            "vectors for terrain correction; use dem=None (GCP geocoding)"
        )
    conv.sort(key=lambda c: _dt(c.findtext("azimuthTime")))
    conv_times = np.array([_dt(c.findtext("azimuthTime")) for c in conv])
    conv = [c for k, c in enumerate(conv) if k == 0 or conv_times[k] > conv_times[k - 1]]
    conv_times = np.unique(conv_times)
    sr0 = np.array([float(c.findtext("sr0", "nan")) for c in conv])
    coeffs = [np.array((c.findtext("srgrCoefficients") or "").split(), float) for c in conv]
    degree = max(len(c) for c in coeffs)
    table = np.zeros((len(conv), degree))
    for k, c in enumerate(coeffs):
        table[k, : len(c)] = c
    conversion = xr.Dataset(
        {
            "sr0": ("azimuth_time", sr0),
            "srgrCoefficients": (("azimuth_time", "degree"), table),
        },
        coords={"azimuth_time": conv_times, "degree": np.arange(degree)},
    )
    ydim, xdim = image.dims
    lines = np.arange(image.sizes[ydim])
    azimuth = first + (lines * ati * 1e9).round().astype("timedelta64[ns]")
    ground = np.arange(image.sizes[xdim], dtype=np.float64) * spacing
    pixels = (
        image.drop_vars([c for c in image.coords if c not in (ydim, xdim)])
        .rename({ydim: "azimuth_time", xdim: "ground_range"})
        .assign_coords(azimuth_time=azimuth, ground_range=ground)
    )
    token = (str(image.attrs.get("source")), image.attrs.get("polarisation"), image.name)

    class _Product(datamodel.GroundRangeSarProduct):
        product_type = "GRD"

        def state_vectors(self) -> xr.DataArray:
            return state

        def beta_nought(self) -> xr.DataArray:
            return pixels

        def slant_range_time_to_ground_range(
            self, azimuth_time: xr.DataArray, slant_range_time: xr.DataArray
        ) -> xr.DataArray:
            slant = 299_792_458.0 / 2.0 * slant_range_time
            at = conversion.interp(azimuth_time=azimuth_time, kwargs={"fill_value": None})
            x = slant - at.sr0
            return (at.srgrCoefficients * x**at.degree).sum("degree")

        def grid_parameters(self, grouping_area_factor: Any = (3.0, 3.0)) -> dict[str, Any]:
            raise NotImplementedError("radiometric terrain flattening is not used here")

        def __dask_tokenize__(self) -> Any:
            return ("trackoff_xr.sar_product", token)

    return _Product()


def _open_dem(dem: Any) -> xr.DataArray:
    import rioxarray

    if isinstance(dem, xr.DataArray):
        return dem.squeeze(drop=True)
    path = os.fspath(dem)
    if "://" not in path and not os.path.exists(path):
        raise GeocodingError(f"no DEM at {path!r}; pass a GeoTIFF path or a URL GDAL can read")
    if path.startswith(("http://", "https://")):
        path = f"/vsicurl/{path}"
    try:
        raster = rioxarray.open_rasterio(path, chunks=1024, masked=True)
    except Exception as exc:  # noqa: BLE001 - rasterio raises several kinds
        raise GeocodingError(f"could not read the DEM {dem!r} ({exc})") from exc
    if isinstance(raster, list) or raster.ndim != 3 or raster.sizes["band"] != 1:
        raise GeocodingError(f"the DEM {dem!r} must be a single-band raster")
    # a Dataset has no ndim, so only a DataArray gets here
    return _bound_reads(cast(xr.DataArray, raster.isel(band=0, drop=True)))


def _terrain_correct(
    image: xr.DataArray, grid: Any, dem: Any, resampling: str, chunks: int = CHUNK
) -> xr.DataArray:
    import odc.geo.xr  # noqa: F401
    import rioxarray  # noqa: F401
    from sarsen import apps

    if resampling not in ("nearest", "bilinear"):
        raise InvalidParameterError(
            f"resampling={resampling!r} is not available with a DEM; use 'nearest' or 'bilinear'"
        )
    raster = _open_dem(dem)
    if crs_of(raster) is None:
        raise GeocodingError(f"the DEM {dem!r} has no CRS; write one (rio.write_crs)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        heights = raster.astype(np.float64).odc.reproject(grid, resampling="bilinear")
    heights = heights.chunk({"y": chunks, "x": chunks})
    product = sar_product(image)
    geocoded, _ = apps.do_terrain_correction(
        product,
        heights.rio.write_crs(grid.crs.to_wkt()),
        interp_method="linear" if resampling == "bilinear" else "nearest",
    )
    # no DEM height (outside the DEM): no position
    out = geocoded.where(heights.notnull()).astype(np.float32)
    out = out.drop_vars([c for c in out.coords if c not in ("y", "x")])
    out = out.rio.write_crs(grid.crs.to_wkt()).rio.write_transform(grid.transform)
    dem_name = dem if not isinstance(dem, xr.DataArray) else (dem.name or "DataArray")
    return _finish(out, image, f"terrain correction (sarsen, DEM {dem_name})")
