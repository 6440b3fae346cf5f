"""Helpers shared by the test modules: import them from here, never from conftest or a test.

``conftest.py`` holds only pytest configuration and fixtures; a test module
holds only its own tests. What several modules need lives here:

* the shared evaluation data (:func:`shared_file`);
* a dask compute counter (:func:`raise_if_dask_computes`, as xarray's tests);
* a snapshot of a folder's bytes (:func:`snapshot`), to prove nothing changed;
* a georeferenced GeoTIFF pair with a known shift and dates
  (:func:`write_geotiff_pair`, :data:`SHIFT`, :data:`PIXEL`, :data:`DATES`);
* the recorded ASF search (:func:`recorded_results`).
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr

from trackoff_xr.testing.synthetic import shifted_pair

__all__ = [
    "CRS",
    "DATA",
    "DATES",
    "PIXEL",
    "SHARED_DATA",
    "SHIFT",
    "X0",
    "Y0",
    "CountingScheduler",
    "georeference",
    "raise_if_dask_computes",
    "recorded_results",
    "shared_file",
    "snapshot",
    "write_geotiff_pair",
]

#: the shared evaluation data (never trained or calibrated on)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: the test suite's own recorded data
DATA = Path(__file__).parent / "data"

# EPSG:3413 (NSIDC polar stereographic north), 10 m pixels, north-up
CRS = "EPSG:3413"
PIXEL = 10.0
X0, Y0 = -200_000.0, -2_200_000.0  # upper-left corner
SHIFT = (3.0, -5.0)  # rows (down), columns (left)
DATES = ("2024-02-03T10:00:00", "2024-02-15T10:00:00")  # 12 days


def shared_file(*parts: str) -> Path:
    """A file of the shared data; skip the test where it is missing (fail in CI)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared evaluation data missing in CI: {path}")
        pytest.skip(f"shared evaluation data not found at {path}")
    return path


class CountingScheduler:
    """Counts how often dask computes (as xarray's tests do)."""

    def __init__(self, max_computes: int = 0):
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"Too many computes. Total: {self.total_computes} > max: {self.max_computes}."
            )
        return dask.get(dsk, keys, **kwargs)


@contextmanager
def raise_if_dask_computes(max_computes: int = 0):
    """Fail when dask computes more than ``max_computes`` times inside the block."""
    scheduler = CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler


def snapshot(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Map every file under ``folder`` (hidden ones too) to the SHA-256 of its bytes.

    Folders appear as ``"<dir>"`` so a removed or added (sub)folder shows too.
    Compare two snapshots with ``==``, or check that every entry of an earlier
    one is unchanged with ``before.items() <= after.items()``.
    """
    root = Path(folder)
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = f"<link {os.readlink(path)}>"
        elif path.is_dir():
            out[rel] = "<dir>"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def georeference(image: xr.DataArray, crs: str = CRS, pixel: float = PIXEL) -> xr.DataArray:
    """Put ``image`` on a north-up grid in ``crs`` with ``pixel`` metre pixels."""
    import rioxarray  # noqa: F401  (registers .rio)

    ny, nx = image.shape
    out = image.assign_coords(
        y=Y0 - (np.arange(ny) + 0.5) * pixel,
        x=X0 + (np.arange(nx) + 0.5) * pixel,
    )
    out.attrs = {}
    return out.rio.write_crs(crs).rio.write_transform()


def write_geotiff_pair(
    directory: Path,
    *,
    shape=(192, 192),
    shift=SHIFT,
    crs=CRS,
    nodata_box=None,
) -> tuple[Path, Path]:
    """Write ref.tif / sec.tif in ``crs`` with 10 m pixels; sec = ref moved by ``shift``."""
    ref, sec = shifted_pair(shape=shape, shift=shift, seed=3)
    paths = []
    for name, img in (("ref", ref), ("sec", sec)):
        geo = georeference(img, crs)
        if nodata_box is not None:
            geo = geo.copy()
            geo[nodata_box] = -9999.0
        geo = geo.rio.write_nodata(-9999.0)
        path = Path(directory) / f"{name}.tif"
        geo.rio.to_raster(path)
        paths.append(path)
    return paths[0], paths[1]


def recorded_results():
    """The recorded search as asf_search.ASFSearchResults of ASFProducts."""
    asf_search = pytest.importorskip("asf_search")
    collection = json.loads((DATA / "asf_s1_grd_search.json").read_text())
    products = []
    for feature in collection["features"]:
        product = object.__new__(asf_search.ASFProduct)
        product.properties = feature["properties"]
        product.geometry = feature["geometry"]
        product.umm = product.meta = product.baseline = product.session = None
        products.append(product)
    results = asf_search.ASFSearchResults(products)
    results.searchComplete = True
    return results


#: the shared Sentinel-1 product (../shared/data/s1_grd)
NAME = "S1B_IW_GRDH_1SDV_20210401T052623_20210401T052648_026269_032297_ECC8"


def write_dem(image, path, resolution: float = 0.0005):
    """A DEM (EPSG:4326) over the image's footprint: its GCP heights, interpolated."""
    import rasterio
    from rasterio.transform import from_origin
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

    gcps = image.rio.get_gcps()
    lonlat = np.array([(g.x, g.y) for g in gcps])
    height = np.array([g.z for g in gcps])
    west, south = lonlat.min(axis=0) - 0.05
    east, north = lonlat.max(axis=0) + 0.05
    xs = np.arange(west, east, resolution) + resolution / 2
    ys = np.arange(north, south, -resolution) - resolution / 2
    xx, yy = np.meshgrid(xs, ys)
    values = LinearNDInterpolator(lonlat, height)(xx, yy)
    values = np.where(
        np.isnan(values), NearestNDInterpolator(lonlat, height)(xx, yy), values
    ).astype(np.float32)
    profile = dict(driver="GTiff", width=xs.size, height=ys.size, count=1, dtype="float32")
    transform = from_origin(west, north, resolution, resolution)
    with rasterio.open(path, "w", crs="EPSG:4326", transform=transform, **profile) as dst:
        dst.write(values, 1)
    return path
