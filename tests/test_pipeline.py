"""One pipeline (open -> offsets -> velocity -> filter -> write) for the CLI, demo and examples."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import trackoff_xr
from trackoff_xr import (
    InvalidParameterError,
    MissingMetadataError,
    OutputExistsError,
    ProtectedOutputError,
    pipeline,
)
from trackoff_xr.io.zarr import open_zarr
from trackoff_xr.postprocess.filters import filter_offsets
from trackoff_xr.testing.synthetic import shifted_pair

from .helpers import DATES, PIXEL, SHIFT, raise_if_dask_computes, snapshot, write_geotiff_pair

GRID = {"patch_size": 32, "spacing": 32, "search_radius": 8, "method": "ncc"}
YEARS = 12 / 365.25  # DATES are 12 days apart
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def geo_pair(tmp_path_factory):
    return write_geotiff_pair(tmp_path_factory.mktemp("pair"))


def test_run_opens_tracks_adds_velocity_and_writes_every_output(geo_pair, tmp_path):
    ref, sec = geo_pair
    result = pipeline.run(
        ref,
        sec,
        tmp_path / "v.zarr",
        dates=DATES,
        csv=tmp_path / "points.csv",
        geotiff=tmp_path / "tif",
        chunks=96,
        **GRID,
    )
    ds = result.dataset.compute()
    valid = ds.valid.values.astype(bool)  # stored as 0/1
    assert valid.sum() > 4
    # the known shift (rows down, columns left) in metres per year, north-up grid
    np.testing.assert_allclose(ds.vx.values[valid], SHIFT[1] * PIXEL / YEARS, rtol=0.02)
    np.testing.assert_allclose(ds.vy.values[valid], -SHIFT[0] * PIXEL / YEARS, rtol=0.02)
    assert ds.attrs["reference_image"] == str(Path(ref).resolve())
    assert ds.attrs["secondary_image"] == str(Path(sec).resolve())
    # the dataset is the store read back: nothing recomputed, the same values
    stored = open_zarr(result.zarr).compute()
    np.testing.assert_array_equal(stored.dx.values, ds.dx.values)
    assert [p.name for p in result.geotiff] == ["vx.tif", "vy.tif", "v.tif", "score.tif"]
    lines = result.csv.read_text().splitlines()
    assert lines[0].startswith("no,x,y,dX,dY") and len(lines) - 1 == int(valid.sum())


def test_run_equals_the_steps_it_names(geo_pair):
    ref, sec = geo_pair
    got = pipeline.run(ref, sec, dates=DATES, filters=True, chunks=96, **GRID).dataset
    a = trackoff_xr.open_image(ref, chunks=96, date=DATES[0])
    b = trackoff_xr.open_image(sec, chunks=96, date=DATES[1])
    expected = filter_offsets(trackoff_xr.velocity(trackoff_xr.offsets(a, b, **GRID)))
    xr.testing.assert_identical(got.drop_attrs(), expected.drop_attrs())
    assert got.attrs["filters"] == expected.attrs["filters"]


def test_every_output_is_checked_before_anything_is_computed(geo_pair, tmp_path):
    ref, sec = geo_pair
    (tmp_path / "points.csv").write_text("my own table\n")
    before = snapshot(tmp_path)
    with raise_if_dask_computes(), pytest.raises(ProtectedOutputError, match="points.csv"):
        pipeline.run(ref, sec, tmp_path / "v.zarr", csv=tmp_path / "points.csv", **GRID)
    assert snapshot(tmp_path) == before  # no store begun
    with raise_if_dask_computes(), pytest.raises(ProtectedOutputError):
        # the inputs are protected by default: a store may not hold them
        pipeline.run(ref, sec, Path(ref).parent, mode="w", **GRID)


def test_compute_and_annotate_see_the_computed_result(tmp_path):
    ref, sec = shifted_pair((128, 128), shift=(1.0, -2.0), seed=4)
    seen = []

    def annotate(ds):
        seen.append(ds.dx.chunks)
        return ds.assign(label=ds.dx * 0 + 1)

    result = pipeline.run(
        ref, sec, tmp_path / "a.zarr", chunks=64, compute=True, annotate=annotate, **GRID
    )
    assert seen == [None]  # computed before annotate
    assert result.dataset.dx.chunks is None and "label" in result.dataset
    assert "label" in open_zarr(result.zarr)
    with pytest.raises(OutputExistsError):  # mode "w-" by default: no replacing
        pipeline.run(ref, sec, tmp_path / "a.zarr", **GRID)


def test_velocities_only_when_known_or_asked_for():
    ref, sec = shifted_pair((96, 96), shift=(1.0, 1.0), seed=2)  # no pixel size, no dates
    ds = pipeline.track(ref, sec, **GRID)
    assert "vx" not in ds and "v" not in ds
    with pytest.raises(MissingMetadataError, match="pixel_size="):
        pipeline.track(ref, sec, days=12, **GRID)
    with pytest.raises(MissingMetadataError):
        pipeline.track(ref, sec, velocities=True, **GRID)
    ds = pipeline.track(ref, sec, days=12, pixel_size=10, **GRID)
    assert float(ds.vx.median()) == pytest.approx(1.0 * 10 / YEARS, rel=0.02)
    assert "vx" not in pipeline.track(ref, sec, days=12, pixel_size=10, velocities=False, **GRID)


def test_store_hook_writes_the_store(tmp_path):
    ref, sec = shifted_pair((96, 96), shift=(1.0, 1.0), seed=2)
    calls = []

    def store(ds, path, *, mode, protect):
        calls.append((Path(path).name, mode, protect))
        return trackoff_xr.to_zarr(ds, path, mode=mode, protect=protect)

    result = pipeline.run(ref, sec, tmp_path / "s.zarr", store=store, protect=("x",), **GRID)
    assert calls == [("s.zarr", "w-", ("x",))]
    assert "dx" in result.dataset


def test_open_pair_chunks_in_memory_images_and_keeps_lazy_ones():
    ref, sec = shifted_pair((96, 96), shift=(1.0, 1.0))
    a, b = pipeline.open_pair(ref, sec.chunk(48), chunks=32, dates=("2024-02-03", "2024-02-15"))
    assert a.chunks == ((32, 32, 32), (32, 32, 32)) and b.chunks == ((48, 48), (48, 48))
    assert (a.attrs["acquisition_start"], b.attrs["acquisition_start"]) == (
        "2024-02-03",
        "2024-02-15",
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda r, s: pipeline.open_pair(r, s, dates="2024-02-03"), "dates='2024-02-03'"),
        (lambda r, s: pipeline.open_pair(r, s, dates=("2024-02-03",)), "not a pair"),
        (lambda r, s: pipeline.track(r, s, filters="median", **GRID), "filters='median'"),
    ],
)
def test_bad_arguments_say_what_to_pass(call, match):
    ref, sec = shifted_pair((96, 96), shift=(1.0, 1.0))
    with pytest.raises(InvalidParameterError, match=match):
        call(ref, sec)


# -- the CLI, the demo and the examples go through it -----------------------------------------


@pytest.fixture
def spy(monkeypatch):
    calls = []
    original = pipeline.run

    def run(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run", run)
    return calls


def test_cli_run_goes_through_the_pipeline(spy, geo_pair, tmp_path):
    from trackoff_xr.cli import main

    ref, sec = geo_pair
    out = tmp_path / "cli.zarr"
    args = ["run", ref, sec, "--out", out, "--quiet", "--days", "12", *("--method", "ncc")]
    args += ["--patch-size", "32", "--spacing", "32", "--search-radius", "8"]
    main([str(a) for a in args])
    assert len(spy) == 1 and spy[0]["days"] == 12 and spy[0]["filters"] is True
    assert "vx" in open_zarr(out)


def test_demo_goes_through_the_pipeline(spy, tmp_path):
    from trackoff_xr.demo import run_demo

    result = run_demo(tmp_path / "demo", size=256, method="ncc", chunks=128)
    assert len(spy) == 1 and spy[0]["compute"] is True and spy[0]["velocities"] is False
    ds = result.dataset
    err = np.hypot(ds.dx - ds.true_dx, ds.dy - ds.true_dy).values[ds.valid.values]
    assert err.size and result.rmse == pytest.approx(float(np.sqrt(np.mean(err**2))))
    assert open_zarr(result.zarr_path).true_dx.shape == ds.dx.shape  # annotated, then written


def test_s1_example_goes_through_the_pipeline(spy, geo_pair, tmp_path):
    path = ROOT / "examples" / "s1_velocity.py"
    spec = importlib.util.spec_from_file_location("s1_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    ref, sec = geo_pair
    result = example.process_pair(ref, sec, tmp_path / "s1", dates=DATES, **GRID)
    assert len(spy) == 1 and spy[0]["velocities"] is True
    assert result["zarr"].is_dir() and len(result["geotiff"]) == 4


def test_paper_example_uses_the_pipeline():
    # running it trains one classifier per tile (minutes): check what it calls instead
    source = (ROOT / "examples" / "trackoff_paper.py").read_text()
    assert "pipeline.run(" in source and "trackoff_xr.offsets(" not in source
    assert "matplotlib.use" not in source  # figures through the Figure API, no backend change
