"""What offsets() and open_image() accept: dims by name, coordinates, nodata, dtypes, paths."""

from __future__ import annotations

import re

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import trackoff_xr
from trackoff_xr import (
    CoordinateError,
    DimensionError,
    ImageDTypeError,
    ImageReadError,
    InvalidParameterError,
    TrackOffError,
)
from trackoff_xr.inputs import prepare_image
from trackoff_xr.testing.synthetic import shifted_pair

from .helpers import georeference, raise_if_dask_computes, write_geotiff_pair

SMALL = dict(patch_size=32, spacing=16, search_radius=4, method="ncc")
FIELDS = ["dx", "dy", "score"]


@pytest.fixture(scope="module")
def pair():
    """A non-square pair (rows != columns) so that swapped axes cannot go unnoticed."""
    return shifted_pair((96, 160), shift=(2.0, -3.0), seed=1)


@pytest.fixture(scope="module")
def expected(pair):
    return trackoff_xr.offsets(*pair, **SMALL)


# --- dims by name ---------------------------------------------------------------------


def test_transposed_input_gives_the_same_answer(pair, expected):
    ref, sec = pair
    xr.testing.assert_identical(trackoff_xr.offsets(ref.T, sec.T, **SMALL), expected)
    xr.testing.assert_identical(trackoff_xr.offsets(ref.T, sec, **SMALL), expected)
    xr.testing.assert_identical(ref.T.trackoff.offsets(sec.T, **SMALL), expected)


@pytest.mark.parametrize(
    "ydim, xdim",
    [
        ("lat", "lon"),
        ("latitude", "longitude"),
        ("row", "col"),
        ("rows", "cols"),
        ("line", "sample"),
    ],
)
def test_recognised_dim_names_in_any_order(pair, expected, ydim, xdim):
    ref, sec = (img.rename(y=ydim, x=xdim).T for img in pair)
    assert ref.dims == (xdim, ydim)
    ds = trackoff_xr.offsets(ref, sec, **SMALL)
    assert ds.dx.dims == ("y", "x")
    xr.testing.assert_identical(ds[FIELDS], expected[FIELDS])
    np.testing.assert_array_equal(ds.y.values, expected.y.values)


def test_dims_rioxarray_identifies_by_cf_axis(pair, expected):
    def cf(img):
        img = img.rename(y="northing", x="easting")
        img["northing"].attrs["axis"] = "Y"
        img["easting"].attrs["axis"] = "X"
        return img.T

    ref, sec = cf(pair[0]), cf(pair[1])
    assert (ref.rio.y_dim, ref.rio.x_dim) == ("northing", "easting")
    ds = trackoff_xr.offsets(ref, sec, **SMALL)
    xr.testing.assert_identical(ds[FIELDS], expected[FIELDS])


def test_opened_images_keep_their_dims(tmp_path):
    ref_path, _ = write_geotiff_pair(tmp_path, shape=(64, 64))
    img = trackoff_xr.open_image(ref_path, chunks=32)
    out = prepare_image(img, "ref")
    assert out.dims == ("y", "x")
    xr.testing.assert_identical(out, img)  # nothing to mask: the same image


@pytest.mark.parametrize("dims", [("dim_0", "dim_1"), ("a", "b"), ("y", "col"), ("band", "x")])
def test_unknown_dims_are_refused_with_the_fix(pair, dims):
    ref, sec = (img.rename(dict(zip(("y", "x"), dims, strict=True))) for img in pair)
    with pytest.raises(DimensionError, match=rf"{dims[0]!r}, {dims[1]!r}.*rename") as info:
        trackoff_xr.offsets(ref, sec, **SMALL)
    assert "('y', 'x')" in str(info.value)


def test_unnamed_numpy_wrap_is_refused(pair):
    ref, sec = (xr.DataArray(img.values) for img in pair)
    with pytest.raises(DimensionError, match=r"'dim_0', 'dim_1'.*rename"):
        trackoff_xr.offsets(ref, sec, **SMALL)


# --- coordinates ----------------------------------------------------------------------


def test_nan_coordinates_are_refused(pair):
    x = pair[0].x.values.copy()
    x[7] = np.nan
    ref, sec = (img.assign_coords(x=x) for img in pair)
    with pytest.raises(CoordinateError, match=r"ref.*'x'.*NaN.*\[7\]"):
        trackoff_xr.offsets(ref, sec, **SMALL)


def test_shuffled_coordinates_are_refused(pair):
    order = np.random.default_rng(0).permutation(pair[0].sizes["y"])
    ref, sec = (img.isel(y=order) for img in pair)
    with pytest.raises(CoordinateError, match=r"'y'.*not monotonic.*sortby\('y'\)"):
        trackoff_xr.offsets(ref, sec, **SMALL)


def test_repeated_coordinates_are_refused(pair):
    x = pair[0].x.values.copy()
    x[5] = x[4]
    ref, sec = (img.assign_coords(x=x) for img in pair)
    with pytest.raises(CoordinateError, match="not monotonic"):
        trackoff_xr.offsets(ref, sec, **SMALL)


def test_decreasing_coordinates_are_fine(pair, expected):
    ref, sec = (georeference(img) for img in pair)  # north-up: y decreases
    assert (np.diff(ref.y.values) < 0).all()
    ds = trackoff_xr.offsets(ref, sec, **SMALL)
    np.testing.assert_array_equal(ds.dx.values, expected.dx.values)
    assert (np.diff(ds.y.values) < 0).all()


# --- nodata declared on the array -----------------------------------------------------

BOX = (slice(40, 52), slice(60, 72))


def _declare(img: xr.DataArray, how: str, value: float = 0.0) -> xr.DataArray:
    img = img.copy()
    if how == "rio.write_nodata":
        return img.rio.write_nodata(value)
    if how == "attrs _FillValue":
        img.attrs["_FillValue"] = value
    elif how == "attrs missing_value":
        img.attrs["missing_value"] = value
    elif how == "encoding _FillValue":
        img.encoding["_FillValue"] = value
    return img


def _with_box(img: xr.DataArray, value: float) -> xr.DataArray:
    img = img.copy()
    img[BOX] = value
    return img


@pytest.fixture(scope="module")
def nan_box_result(pair):
    ref, sec = pair
    return trackoff_xr.offsets(ref, _with_box(sec, np.nan), **SMALL)


@pytest.mark.parametrize(
    "how",
    ["rio.write_nodata", "attrs _FillValue", "attrs missing_value", "encoding _FillValue"],
)
def test_declared_nodata_is_nan(pair, nan_box_result, how):
    ref, sec = pair
    sec = _declare(_with_box(sec, 0.0), how)
    ds = trackoff_xr.offsets(_declare(ref, how), sec, **SMALL)
    touched = np.isnan(nan_box_result.dx.values) & ~np.isnan(
        trackoff_xr.offsets(ref, pair[1], **SMALL).dx.values
    )
    assert touched.sum() >= 4
    assert np.isnan(ds.dx.values[touched]).all() and np.isnan(ds.score.values[touched]).all()
    assert not ds.valid.values[touched].any()
    xr.testing.assert_identical(ds[FIELDS], nan_box_result[FIELDS])


def test_declared_nodata_of_an_integer_image(pair, nan_box_result):
    ref, sec = (np.clip(img * 40 + 128, 1, 255).astype(np.uint8) for img in pair)
    sec = _with_box(sec, 0).rio.write_nodata(0)
    out = prepare_image(sec, "sec")
    assert np.isnan(out.values[BOX]).all() and np.isfinite(out.values[:40]).all()
    ds = trackoff_xr.offsets(ref, sec, **SMALL)
    np.testing.assert_array_equal(np.isnan(ds.dx.values), np.isnan(nan_box_result.dx.values))


def test_nodata_mask_stays_lazy(pair, nan_box_result):
    ref, sec = pair
    ref = ref.chunk(48).rio.write_nodata(0)
    sec = _with_box(sec, 0.0).chunk(48).rio.write_nodata(0)
    with raise_if_dask_computes():
        masked = prepare_image(sec, "sec")
        ds = trackoff_xr.offsets(ref, sec, **SMALL)
    assert masked.chunks == sec.chunks
    assert ds.dx.chunks is not None
    xr.testing.assert_identical(ds[FIELDS].compute(), nan_box_result[FIELDS])


def test_numpy_stays_numpy(pair):
    out = prepare_image(_with_box(pair[1], 0.0).rio.write_nodata(0), "sec")
    assert isinstance(out.data, np.ndarray)
    assert np.isnan(out.values[BOX]).all()
    assert out.attrs == pair[1].rio.write_nodata(0).attrs  # attributes kept


def test_encoded_fill_of_scaled_data_is_not_applied_twice(pair):
    # decoding already turned the packed fill value into NaN; 0 here is a real value
    sec = _with_box(pair[1], 0.0)
    sec.encoding.update({"_FillValue": 0, "scale_factor": 0.01, "add_offset": -5.0})
    out = prepare_image(sec, "sec")
    assert (out.values[BOX] == 0).all()


# --- dtypes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "convert, fragment",
    [
        (lambda a: a.astype(np.complex64), r"complex64.*np\.abs"),
        (lambda a: a > 0, r"bool.*astype"),
        (lambda a: (a * 1e9).astype("datetime64[ns]"), "datetime64"),
        (lambda a: (a * 1e9).astype("timedelta64[ns]"), "timedelta64"),
    ],
    ids=["complex", "bool", "datetime64", "timedelta64"],
)
def test_non_amplitude_dtypes_are_refused(pair, convert, fragment):
    ref, sec = (img.copy(data=convert(img.values)) for img in pair)
    with pytest.raises(ImageDTypeError, match=f"ref.*{fragment}") as info:
        trackoff_xr.offsets(ref, sec, **SMALL)
    assert isinstance(info.value, TrackOffError)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float64])
def test_integer_and_float_images_work(pair, dtype):
    ref, sec = (np.clip(img * 40 + 128, 0, 255).astype(dtype) for img in pair)
    ds = trackoff_xr.offsets(ref, sec, **SMALL)
    fits = ds.valid.values
    assert fits.sum() > 10
    np.testing.assert_allclose(ds.dy.values[fits], 2.0, atol=0.2)
    np.testing.assert_allclose(ds.dx.values[fits], -3.0, atol=0.2)


# --- open_image: what it accepts ------------------------------------------------------


@pytest.fixture(scope="module")
def geotiff(tmp_path_factory):
    ref, _ = write_geotiff_pair(tmp_path_factory.mktemp("contract"), shape=(256, 256))
    return ref


@pytest.mark.parametrize("path", [123, 1.5, None, ["a.tif"]], ids=repr)
def test_open_image_refuses_what_is_not_a_path(path):
    with pytest.raises(
        InvalidParameterError, match=rf"path={re.escape(repr(path))}.*{type(path).__name__}"
    ):
        trackoff_xr.open_image(path)


def test_open_image_of_an_image_says_to_pass_it_on(pair):
    with pytest.raises(InvalidParameterError, match="already an xarray.DataArray.*offsets"):
        trackoff_xr.open_image(pair[0])


@pytest.mark.parametrize(
    "chunks",
    [0, -5, "big", 1.5, True, (0, 64), (64,), (64, 64, 64), {"y": 0}, {"z": 64}],
    ids=repr,
)
def test_open_image_refuses_bad_chunks(geotiff, chunks):
    with pytest.raises(InvalidParameterError, match=r"chunks=.*positive int.*'auto'.*None"):
        trackoff_xr.open_image(geotiff, chunks=chunks)


@pytest.mark.parametrize(
    "chunks, expected",
    [
        (64, ((64,) * 4, (64,) * 4)),
        (-1, ((256,), (256,))),
        ((128, -1), ((128, 128), (256,))),
        ({"y": 128, "x": 64}, ((128, 128), (64,) * 4)),
        ("auto", None),
        (None, None),
    ],
    ids=repr,
)
def test_open_image_accepts_good_chunks(geotiff, chunks, expected):
    img = trackoff_xr.open_image(geotiff, chunks=chunks)
    if chunks is None:
        assert img.chunks is None
    else:
        assert img.chunks is not None
    if expected is not None:
        assert img.chunks == expected


def test_open_image_of_a_zarr_v3_store_says_what_it_is(tmp_path, pair):
    store = tmp_path / "image.zarr"
    xr.Dataset({"band": pair[0]}).to_zarr(store, zarr_format=3, consolidated=False)
    with pytest.raises(ImageReadError, match=r"Zarr store.*open_zarr") as info:
        trackoff_xr.open_image(store)
    assert "pass a GeoTIFF, PNG or JPEG file" not in str(info.value)


def test_open_image_of_a_plain_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageReadError, match=r"is a directory.*one raster file"):
        trackoff_xr.open_image(tmp_path)


def test_truncated_tiff_fails_at_open(tmp_path, geotiff):
    data = geotiff.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut.tif.*truncated or corrupt.*again"):
        trackoff_xr.open_image(cut)
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        trackoff_xr.open_image(cut, chunks=None)
    cut.write_bytes(data[:16])  # not even the whole header
    with pytest.raises(ImageReadError, match=r"TIFF file.*truncated or corrupt"):
        trackoff_xr.open_image(cut)
    cut.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"cut.tif' is empty"):
        trackoff_xr.open_image(cut)


def test_complete_tiff_still_opens_lazily(geotiff):
    with raise_if_dask_computes():
        img = trackoff_xr.open_image(geotiff, chunks=64)
    assert np.isfinite(img.values[10:, 10:]).all()
