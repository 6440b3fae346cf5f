"""Sentinel-1 GRD products: lazy opening, metadata, calibration, pairs."""

import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import trackoff_xr
from trackoff_xr import GridMismatchError, ImageReadError, InvalidParameterError, TrackOffError
from trackoff_xr.io.safe import (
    CalibrationNotAvailableError,
    NotASafeProductError,
    PolarisationError,
    PolarisationMismatchWarning,
    check_s1_pair,
    open_safe,
    safe_metadata,
)
from trackoff_xr.postprocess.velocity import pair_metadata, velocity

from .helpers import raise_if_dask_computes, shared_file

NAME = "S1B_IW_GRDH_1SDV_20210401T052623_20210401T052648_026269_032297_ECC8"
STAMP = "20210401t052623-20210401t052648-026269-032297"


@pytest.fixture(scope="module")
def product() -> Path:
    return shared_file("s1_grd", f"{NAME}.SAFE")


def make_product(
    source: Path,
    directory: Path,
    *,
    days: int = 0,
    relative_orbit: int | None = None,
    vh_measurement: bool = False,
    calibration: str | None = None,
) -> Path:
    """A copy of the shared product, ``days`` later; the big TIFF is symlinked."""
    day = 1 + days
    date, date_c = f"2021-04-{day:02d}", f"202104{day:02d}"
    target = directory / f"{NAME.replace('20210401', date_c)}.SAFE"
    (target / "annotation" / "calibration").mkdir(parents=True)
    (target / "measurement").mkdir()
    annotations = [f"annotation/{p.name}" for p in (source / "annotation").iterdir()]
    for rel in ["manifest.safe", *annotations]:
        text = (source / rel).read_text()
        text = text.replace("2021-04-01T", f"{date}T").replace("20210401t", f"{date_c}t")
        if relative_orbit is not None and rel == "manifest.safe":
            text = text.replace(
                '<safe:relativeOrbitNumber type="start">168<',
                f'<safe:relativeOrbitNumber type="start">{relative_orbit}<',
            )
        (target / rel.replace("20210401t", f"{date_c}t")).write_text(text)
    tiff = next((source / "measurement").iterdir())
    (target / "measurement" / tiff.name.replace("20210401t", f"{date_c}t")).symlink_to(tiff)
    if vh_measurement:
        vh = tiff.name.replace("-vv-", "-vh-").replace("-001.", "-002.")
        (target / "measurement" / vh.replace("20210401t", f"{date_c}t")).symlink_to(tiff)
    if calibration is not None:
        name = f"calibration-s1b-iw-grd-vv-{STAMP.replace('20210401t', f'{date_c}t')}-001.xml"
        (target / "annotation" / "calibration" / name).write_text(calibration)
    return target


def test_opens_lazily_with_the_right_metadata(product, monkeypatch):
    import rasterio.io

    def no_pixels(*args, **kwargs):
        raise AssertionError("open_safe read pixels")

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", no_pixels)
    open_safe(product)  # warm up imports and GDAL
    start = time.perf_counter()
    with raise_if_dask_computes():
        img = open_safe(product)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"opening took {elapsed:.2f} s"
    assert img.shape == (16685, 25788) and img.dims == ("y", "x")
    assert img.dtype == np.float32 and img.chunks is not None
    a = img.attrs
    assert a["range_pixel_spacing"] == pytest.approx(10.0)
    assert a["azimuth_pixel_spacing"] == pytest.approx(10.0)
    assert a["first_line_time"] == "2021-04-01T05:26:23.794457"
    assert a["last_line_time"] == "2021-04-01T05:26:48.793373"
    assert a["acquisition_start"] == a["first_line_time"]
    assert (a["mission"], a["platform"], a["polarisation"]) == ("S1B", "Sentinel-1B", "VV")
    assert (a["relative_orbit"], a["absolute_orbit"], a["pass_direction"]) == (
        168,
        26269,
        "DESCENDING",
    )
    assert a["geometry"] == "radar" and a["calibration"] == "amplitude"
    gcps = img.rio.get_gcps()
    assert len(gcps) == 210 and img.rio.crs.to_epsg() == 4326
    assert 8 < min(g.x for g in gcps) < max(g.x for g in gcps) < 13  # longitudes
    assert float(img.x[-1]) == 25787.0


def test_reads_pixels_and_dispatches_from_open_image(product):
    img = trackoff_xr.open_image(product, chunks=1024)
    assert img.attrs["relative_orbit"] == 168
    assert float(img[:4, :6].mean()) == 1.0  # the publisher blanked the pixels to 1
    assert safe_metadata(product / "manifest.safe")["pass_direction"] == "DESCENDING"


def test_zip_product(product, tmp_path):
    archive = tmp_path / f"{NAME}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for path in product.rglob("*"):
            if path.is_file() and "-vh-" not in path.name:
                zf.write(path, Path(f"{NAME}.SAFE") / path.relative_to(product))
    img = trackoff_xr.open_image(archive)
    assert img.shape == (16685, 25788) and img.attrs["relative_orbit"] == 168
    assert float(img[:2, :2].mean()) == 1.0


def test_bad_inputs(product, tmp_path):
    with pytest.raises(ImageReadError, match="no Sentinel-1 product"):
        open_safe(tmp_path / "absent.SAFE")
    (tmp_path / "fake.SAFE").mkdir()
    with pytest.raises(NotASafeProductError, match="no manifest.safe"):
        trackoff_xr.open_image(tmp_path / "fake.SAFE")
    with pytest.raises(PolarisationError, match="polarisation='XX'.*'VV'"):
        open_safe(product, polarisation="XX")
    with pytest.raises(PolarisationError, match="no VH measurement.*\\['VV'\\]") as info:
        open_safe(product, polarisation="VH")
    assert isinstance(info.value, TrackOffError)
    with pytest.raises(CalibrationNotAvailableError, match="calibration='amplitude'"):
        open_safe(product, calibration="sigma0")
    with pytest.raises(InvalidParameterError, match="calibration='gamma'"):
        open_safe(product, calibration="gamma")


CALIBRATION = """<?xml version="1.0" encoding="UTF-8"?>
<calibration><calibrationVectorList count="2">
<calibrationVector><line>-10</line><pixel count="2">0 30000</pixel>
<sigmaNought count="2">100 400</sigmaNought></calibrationVector>
<calibrationVector><line>17000</line><pixel count="2">0 30000</pixel>
<sigmaNought count="2">100 400</sigmaNought></calibrationVector>
</calibrationVectorList></calibration>"""


def test_sigma0_from_the_calibration_lut(product, tmp_path):
    copy = make_product(product, tmp_path, calibration=CALIBRATION)
    with raise_if_dask_computes():
        sigma0 = open_safe(copy, calibration="sigma0", chunks=512)
    # DN = 1, LUT = 100 + 0.01 * pixel: sigma0 = 1 / LUT**2
    window = sigma0[1000:1002, [0, 20000]].values
    np.testing.assert_allclose(window, [[1e-4, 1 / 300**2]] * 2, rtol=1e-5)
    db = open_safe(copy, calibration="sigma0_db", chunks=512)
    assert float(db[5, 0]) == pytest.approx(-40.0, abs=1e-4)
    assert db.attrs["units"] == "dB"


def test_pairs_of_products(product, tmp_path):
    later = make_product(product, tmp_path / "a", days=12, vh_measurement=True)
    ref, sec = open_safe(product), open_safe(later)
    assert sec.attrs["first_line_time"] == "2021-04-13T05:26:23.794457"
    assert check_s1_pair(ref, sec) == pytest.approx(12.0)
    assert check_s1_pair(product, later) == pytest.approx(12.0)
    meta = pair_metadata(ref, sec)
    assert meta["date_dt"] == pytest.approx(12.0) and meta["geometry"] == "radar"
    assert meta["range_pixel_spacing"] == 10.0
    # velocity in radar geometry from the product metadata
    ds = trackoff_xr.offsets(
        ref[:256, :256], sec[:256, :256], patch_size=64, spacing=64, search_radius=8, method="ncc"
    )
    dx = ds.dx.fillna(2.0)
    out = velocity(ds.assign(dx=dx, dy=dx * 0 - 1.0), ref=ref, sec=sec)
    assert float(out.v_range[0, 0]) == pytest.approx(2 * 10.0 * 365.25 / 12.0)
    assert float(out.v_azimuth[0, 0]) == pytest.approx(-10.0 * 365.25 / 12.0)
    # radar-geometry GeoTIFFs keep the ground control points, moved onto the grid
    import rasterio

    from trackoff_xr.io import to_geotiff

    (path,) = to_geotiff(out, tmp_path / "tif", variables=("v",))
    with rasterio.open(path) as src:
        gcps, crs = src.gcps
        assert len(gcps) == 210 and crs.to_epsg() == 4326
        first = min(gcps, key=lambda g: (g.row, g.col))
        assert first.row == pytest.approx((0 - 0.5 - 31.5) / 64 + 0.5)
    # polarisations differ: a warning
    vh = open_safe(later, polarisation="VH")
    with pytest.warns(PolarisationMismatchWarning, match="VV but sec VH"):
        check_s1_pair(ref, vh)
    # another relative orbit: refused
    other = make_product(product, tmp_path / "b", days=6, relative_orbit=90)
    with pytest.raises(GridMismatchError, match="relative orbit 168 but sec on 90"):
        check_s1_pair(ref, open_safe(other))
    with pytest.raises(InvalidParameterError, match="open_safe"):
        check_s1_pair(ref, {"relative_orbit": 168})


def test_symlinks_are_used(product, tmp_path):
    copy = make_product(product, tmp_path)
    tiff = next((copy / "measurement").iterdir())
    assert tiff.is_symlink() and os.path.getsize(tiff) > 400_000
