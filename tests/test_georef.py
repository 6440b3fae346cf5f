"""Georeferencing and date metadata in one module (trackoff_xr.georef, issue 11)."""

import ast
import datetime
import importlib
from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from pyproj import CRS

from trackoff_xr import InvalidParameterError, georef

WKT_3413 = CRS.from_epsg(3413).to_wkt()
CET = datetime.timezone(datetime.timedelta(hours=1))


def _image(**attrs):
    return xr.DataArray(
        np.zeros((3, 4), np.float32),
        dims=("y", "x"),
        coords={"y": [25.0, 15.0, 5.0], "x": [5.0, 15.0, 25.0, 35.0]},
        attrs=attrs,
    )


# -- CRS -----------------------------------------------------------------------------------


def test_crs_wkt_from_a_rio_crs():
    img = _image().rio.write_crs("EPSG:3413")
    wkt = georef.crs_wkt(img)
    assert CRS.from_wkt(wkt) == CRS.from_epsg(3413)
    assert georef.crs_wkt(img.to_dataset(name="v")) == wkt


def test_crs_wkt_from_spatial_ref_attributes():
    only_gdal = _image().assign_coords(spatial_ref=xr.Variable((), 0, {"spatial_ref": "A"}))
    assert georef.crs_wkt(only_gdal) == "A"
    both = {"crs_wkt": "B", "spatial_ref": "A"}
    assert georef.crs_wkt(both) == "B"  # CF's name first
    assert georef.crs_wkt({"spatial_ref": "A"}) == "A"


def test_no_crs_gives_none():
    assert georef.crs_wkt(_image()) is None
    assert georef.crs_wkt({}) is None
    assert georef.crs_of(_image()) is None
    assert georef.crs_of({}) is None


def test_crs_of_reads_spatial_ref_and_other_grid_mappings():
    assert georef.crs_of(_image().rio.write_crs("EPSG:3413")) == CRS.from_epsg(3413)
    assert georef.crs_of({"crs_wkt": WKT_3413}) == CRS.from_epsg(3413)
    # an ITS_LIVE-style Dataset: the grid mapping is a variable named "mapping"
    mapping = xr.Variable((), 0, {"crs_wkt": WKT_3413, "spatial_ref": WKT_3413})
    vx = xr.Variable(("y", "x"), np.zeros((3, 4)), {"grid_mapping": "mapping"})
    cube = xr.Dataset({"vx": vx}, coords={"mapping": mapping, "y": [3, 2, 1], "x": [1, 2, 3, 4]})
    found = georef.crs_of(cube)
    assert isinstance(found, CRS)
    assert found == CRS.from_epsg(3413)


# -- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-02-03", "2024-02-03"),
        ("2024-02-03T05:26:23", "2024-02-03T05:26:23"),
        (datetime.date(2024, 2, 3), "2024-02-03"),
        (datetime.datetime(2024, 2, 3, 5, 26, 23), "2024-02-03T05:26:23.000000"),
        (np.datetime64("2024-02-03T05:26"), "2024-02-03T05:26"),
        (
            datetime.datetime(2024, 2, 3, 6, 26, tzinfo=CET),
            "2024-02-03T05:26:00.000000",
        ),
    ],
)
def test_iso_date_with_and_without_time(value, expected):
    assert georef.iso_date(value) == expected


def test_iso_date_in_a_given_unit():
    assert georef.iso_date("2024-02-03", unit="us") == "2024-02-03T00:00:00.000000"
    assert georef.iso_date(np.datetime64("2024-02-03T05:26:23.75", "us"), unit="s") == (
        "2024-02-03T05:26:23"
    )


@pytest.mark.parametrize("bad", ["yesterday", "NaT", [1, 2]])
def test_iso_date_refuses_what_is_not_a_date(bad):
    with pytest.raises(InvalidParameterError, match=r"is not a date; pass"):
        georef.iso_date(bad)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("acquisition_start", "2024-02-03T05:26:23"),
        ("acquisition_start", "2024-02-03T05:26:23Z"),
        ("acquisition_date", " 2024-02-03 05:26:23 "),
        ("TIFFTAG_DATETIME_ACQUISITION", "2024:02:03 05:26:23"),
        ("start_time", np.datetime64("2024-02-03T05:26:23")),
        ("date", datetime.datetime(2024, 2, 3, 5, 26, 23)),
        (
            "datetime",
            datetime.datetime(2024, 2, 3, 6, 26, 23, tzinfo=CET),
        ),
    ],
)
def test_acquisition_time_in_every_accepted_form(key, value):
    expected = np.datetime64("2024-02-03T05:26:23", "us")
    assert georef.acquisition_time(_image(**{key: value})) == expected
    assert georef.acquisition_time({key: value}) == expected
    assert georef.acquisition_time(xr.Dataset(attrs={key: value})) == expected


def test_acquisition_time_prefers_the_most_specific_attribute():
    img = _image(date="2020-01-01", acquisition_start="2024-02-03", first_line_time="")
    assert georef.acquisition_time(img) == np.datetime64("2024-02-03", "us")
    assert georef.acquisition_time(_image(date="", start_time=None)) is None
    assert georef.acquisition_time(_image()) is None


def test_acquisition_time_refuses_a_bad_date():
    with pytest.raises(InvalidParameterError, match="acquisition_start='soon' is not a date"):
        georef.acquisition_time(_image(acquisition_start="soon"))


def test_pair_dates_give_its_live_attributes():
    t1 = georef.acquisition_time({"date": "2024-02-03T06:00:00"})
    t2 = georef.acquisition_time({"date": "2024-02-15T18:00:00"})
    dates = georef.pair_dates(t1, t2)
    assert dates == {
        "acquisition_date_img1": "2024-02-03T06:00:00.000000",
        "acquisition_date_img2": "2024-02-15T18:00:00.000000",
        "date_center": "2024-02-09T12:00:00.000000",  # the mid_date of a cube
        "date_dt": 12.5,
    }
    assert isinstance(dates["date_dt"], float)
    back = georef.pair_dates(t2, t1)
    assert back["date_dt"] == -12.5 and back["date_center"] == dates["date_center"]
    assert georef.pair_dates("2024-02-03", "2024-02-04")["date_dt"] == 1.0


# -- spatial_ref ---------------------------------------------------------------------------


def test_output_spatial_ref_drops_the_input_geotransform():
    img = _image().rio.write_crs("EPSG:3413").rio.write_transform()
    assert "GeoTransform" in img.spatial_ref.attrs
    out = georef.output_spatial_ref(img)
    assert isinstance(out, xr.DataArray)
    assert out.dtype == np.int32 and out.ndim == 0
    assert "GeoTransform" not in out.attrs
    assert out.attrs["crs_wkt"] == img.spatial_ref.attrs["crs_wkt"]
    assert out.attrs["latitude_of_projection_origin"] == 90.0  # CF, missing from pyproj
    assert out.attrs["long_name"] == "coordinate reference system"
    assert georef.output_spatial_ref(_image()) is None


def test_spatial_ref_variable_of_a_radar_image_is_no_grid_mapping():
    gcps = {"gcps": {"type": "FeatureCollection"}, "grid_mapping_name": "x"}
    var = georef.spatial_ref_variable(gcps)
    assert "grid_mapping_name" not in var.attrs
    assert var.attrs["long_name"] == "ground control points of the radar image"
    assert georef.is_radar_reference(var.attrs)
    assert not georef.is_radar_reference(CRS.from_epsg(3413).to_cf())
    south = georef.spatial_ref_variable(CRS.from_epsg(3031).to_cf())
    assert south.attrs["latitude_of_projection_origin"] == -90.0


# -- one home ------------------------------------------------------------------------------


def test_old_names_are_the_georef_objects():
    from trackoff_xr import inputs, schema

    velocity = importlib.import_module("trackoff_xr.postprocess.velocity")  # not the function

    assert inputs.crs_wkt is georef.crs_wkt
    assert velocity.acquisition_time is georef.acquisition_time
    assert schema.spatial_ref_variable is georef.spatial_ref_variable
    assert schema.is_radar_reference is georef.is_radar_reference


def test_georef_sits_below_the_modules_that_use_it():
    tree = ast.parse(Path(georef.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            imported.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trackoff_xr"):
            imported.add(node.module.split(".")[1])
    assert imported <= {"exceptions"}, imported


def test_crs_name_is_short():
    assert georef.crs_name(CRS.from_epsg(32624)) == "EPSG:32624"
    assert georef.crs_name(WKT_3413) == "EPSG:3413"
    odd = "+proj=stere +lat_0=80 +lat_ts=70 +lon_0=-45 +datum=WGS84"
    assert georef.crs_name(odd) == repr(CRS.from_user_input(odd).name)
