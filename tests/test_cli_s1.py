"""Two Sentinel-1 products -> a velocity map: ``trackoff run --crs ... --dem ...`` and the pipeline.

The generated SAFE pair (:func:`trackoff_xr.testing.safe_pair.make_safe_pair`)
has a slice start ~22 lines apart (beyond the search radius), an image
offset its annotation does not record, and a glacier-like motion field on
stable ground.
"""

from __future__ import annotations

import sys

import dask
import numpy as np
import pytest
import xarray as xr

from trackoff_xr import pipeline
from trackoff_xr.cli import main
from trackoff_xr.exceptions import InvalidParameterError
from trackoff_xr.io.geocode import geocode, map_grid
from trackoff_xr.io.safe import open_safe
from trackoff_xr.io.zarr import open_zarr, to_zarr
from trackoff_xr.testing.safe_pair import make_safe_pair

from .helpers import NAME, raise_if_dask_computes, shared_file, write_dem, write_geotiff_pair

CRS = "EPSG:32632"
GRID = {"method": "ncc", "patch_size": 64, "spacing": 32, "search_radius": 16}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    template = shared_file("s1_grd", f"{NAME}.SAFE")
    return make_safe_pair(tmp_path_factory.mktemp("s1_pair"), template, shape=(512, 512))


@pytest.fixture(scope="module")
def dem(pair, tmp_path_factory):
    return write_dem(open_safe(pair.ref), tmp_path_factory.mktemp("dem") / "dem.tif")


def true_speed(pair, ds: xr.Dataset, dem) -> np.ndarray:
    """The built-in speed (m/yr, ground range x azimuth) geocoded to the result's points."""
    ref = open_safe(pair.ref, chunks=256)
    truth = pair.truth
    speed = np.hypot(
        truth.dy * truth.attrs["azimuth_pixel_spacing"],
        truth.dx * truth.attrs["range_pixel_spacing"],
    ) * (365.25 / pair.days)
    image = ref.copy(data=speed.values.astype(np.float32))
    grid = map_grid([ref, open_safe(pair.sec)], crs=CRS, resolution=10.0)
    return geocode(image, grid, dem=dem).interp(x=ds.x, y=ds.y).compute().values


def cli(args, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["trackoff", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_cli_geocodes_coregisters_and_writes_velocity_on_the_map_grid(
    pair, dem, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "v.zarr"
    gcps = open_safe(pair.ref).rio.get_gcps()
    lon, lat = np.array([g.x for g in gcps]), np.array([g.y for g in gcps])
    bbox = (lon.min() - 0.1, lat.min() - 0.1, lon.max() + 0.1, lat.max() + 0.1)
    args = ["run", pair.ref, pair.sec, "--out", out, "--crs", CRS, "--resolution", 10]
    args += ["--dem", dem, "--bbox", *bbox, "--polarisation", "VV", "--chunks", 256]
    args += ["--method", "ncc", "--quiet"]
    code, err = cli(args, monkeypatch, capsys)
    assert code == 0, err
    ds = open_zarr(out).compute()
    # on the map grid: the CRS, 10 m pixels, velocities along map x/y
    assert ds.rio.crs.to_epsg() == 32632
    assert {"vx", "vy", "v"} <= set(ds.data_vars)
    assert ds.attrs["geometry"] == "map"
    step = ds.attrs["spacing"] * 10.0
    np.testing.assert_allclose(np.diff(ds.x.values), step)
    np.testing.assert_allclose(np.diff(ds.y.values), -step)
    # the slice start was found (within 0.5 px of what was built in) and removed
    assert abs(ds.attrs["coregistration_dy"] - pair.global_offset[0]) <= 0.5
    assert abs(ds.attrs["coregistration_dx"] - pair.global_offset[1]) <= 0.5
    truth = true_speed(pair, ds, dem)
    ok = ds.valid.values.astype(bool) & np.isfinite(truth)
    fast, still = ok & (truth > 0.5 * np.nanmax(truth)), ok & (truth < 1.0)
    assert fast.sum() >= 20 and still.sum() >= 20
    # stable ground reads ~0 (without the coregistration: ~0.2 of the top speed)
    assert np.median(ds.v.values[still]) <= 0.05 * np.nanmax(truth)
    # the glacier's speed within 10 % (median over its fast part)
    assert np.median(np.abs(ds.v.values[fast] - truth[fast]) / truth[fast]) <= 0.10


def test_pipeline_builds_the_map_graph_without_computing(pair, dem, tmp_path):
    """The only computes before the write are the coregistration's reads (radar geometry)."""
    seen = {}

    def store(ds, path, *, mode, protect):
        seen["computes"] = counter.total_computes
        with dask.config.set(scheduler="threads"):
            return to_zarr(ds, path, mode=mode, protect=protect)

    options = dict(crs=CRS, resolution=10, dem=dem, chunks=256, mode="w", store=store, **GRID)
    with raise_if_dask_computes(max_computes=0) as counter:
        result = pipeline.run(pair.ref, pair.sec, tmp_path / "a.zarr", coregister=False, **options)
    assert seen["computes"] == 0
    assert result.dataset.attrs["geometry"] == "map"
    # coregistration: two computes (block means, then a few full-resolution patches)
    with raise_if_dask_computes(max_computes=2) as counter:
        pipeline.run(pair.ref, pair.sec, tmp_path / "b.zarr", **options)
    assert seen["computes"] == 2


def test_radar_geometry_pair_is_aligned_on_the_slice_start(pair):
    prepared = pipeline.prepare(pair.ref, pair.sec, chunks=256)
    est = prepared.coregistration.attrs
    assert abs(est["global_dy"] - pair.global_offset[0]) <= 0.5
    assert abs(est["global_dx"] - pair.global_offset[1]) <= 0.5
    # sec moved by the whole pixels onto ref's grid; the rest is removed after matching
    assert prepared.sec.shape == prepared.ref.shape
    rest = np.array(prepared.remove_offset)
    np.testing.assert_allclose(
        rest, np.array(pair.global_offset) - np.round(pair.global_offset), atol=0.5
    )
    ds = pipeline.track(
        prepared.ref,
        prepared.sec,
        remove_offset=prepared.remove_offset,
        coregistration=prepared.coregistration,
        **GRID,
    ).compute()
    dy, dx = pair.truth.dy.interp(y=ds.y, x=ds.x), pair.truth.dx.interp(y=ds.y, x=ds.x)
    ok = ds.valid.values.astype(bool)
    err = np.hypot(ds.dy - dy, ds.dx - dx).values[ok]
    assert ok.sum() >= 50 and np.median(err) <= 0.3


def test_align_moves_by_whole_pixels_and_returns_the_rest():
    ref = xr.DataArray(np.zeros((6, 7), np.float32), dims=("y", "x"))
    sec = xr.DataArray(np.arange(42, dtype=np.float32).reshape(6, 7), dims=("y", "x"))
    moved, rest = pipeline.align(ref, sec.chunk(3), (-2.4, 1.6))
    values = moved.values
    # ref (y, x) reads sec (y - 2, x + 2)
    np.testing.assert_array_equal(values[2:, :5], sec.values[:4, 2:])
    assert np.isnan(values[:2]).all() and np.isnan(values[:, 5:]).all()
    assert rest == pytest.approx((-0.4, -0.4))
    with pytest.raises(InvalidParameterError, match="no overlap"):
        pipeline.align(ref, sec, (10.0, 0.0))


@pytest.fixture(scope="module")
def geotiffs(tmp_path_factory):
    return write_geotiff_pair(tmp_path_factory.mktemp("tifs"))


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--resolution", "10"], ["--resolution", "without --crs"]),
        (["--bbox", "10", "46", "11", "47"], ["--bbox", "without --crs"]),
        (["--dem", "dem.tif"], ["--dem", "without --crs"]),
        (["--coarse", "--prior", "PRIOR"], ["--coarse", "--prior", "both"]),
        (["--coregister", "--prior", "PRIOR"], ["--coregister", "--no-coregister"]),
        (["--prior", "absent.zarr"], ["--prior", "absent.zarr", "does not exist"]),
        (["--crs", CRS, "--tifs"], ["--crs", "radar-geometry", "ref"]),
        (["--polarisation", "VH"], ["VH"]),
    ],
)
def test_bad_flags_are_refused_with_exit_2(
    extra, needles, pair, geotiffs, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    prior = tmp_path / "prior.zarr"
    xr.Dataset(
        {"dx": (("y", "x"), np.zeros((2, 2))), "dy": (("y", "x"), np.zeros((2, 2)))},
        coords={"y": [0.0, 600.0], "x": [0.0, 600.0]},
    ).to_zarr(prior)
    inputs = list(geotiffs) if "--tifs" in extra else [pair.ref, pair.sec]
    extra = [str(prior) if e == "PRIOR" else e for e in extra if e != "--tifs"]
    code, err = cli(["run", *inputs, "--out", tmp_path / "x.zarr", *extra], monkeypatch, capsys)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not (tmp_path / "x.zarr").exists()


def test_s1_example_writes_the_map_velocity_through_the_pipeline(pair, dem, tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "s1_velocity.py"
    spec = importlib.util.spec_from_file_location("s1_example_map", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    calls = []
    real_run = pipeline.run
    monkeypatch.setattr(pipeline, "run", lambda *a, **k: calls.append(k) or real_run(*a, **k))
    ds = example.process_pair(
        pair.ref, pair.sec, tmp_path / "out", crs=CRS, resolution=10, dem=dem, chunks=256
    )["dataset"]
    assert len(calls) == 1 and calls[0]["crs"] == CRS and calls[0]["dem"] == dem
    assert ds.rio.crs.to_epsg() == 32632 and {"vx", "vy"} <= set(ds.data_vars)
    assert "reproject" not in path.read_text()  # no in-memory projection step left
