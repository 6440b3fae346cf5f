"""The ``trackoff`` command line: run, info, plot, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import trackoff_xr
from trackoff_xr.cli import main, write_zarr
from trackoff_xr.postprocess.filters import filter_offsets

from .helpers import shared_file


def trackoff(*args, cwd=None):
    """Run ``trackoff`` through main() in a subprocess, as a user would."""
    code = "import sys; from trackoff_xr.cli import main; sys.argv[0] = 'trackoff'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture(scope="module")
def glacier_files():
    return (
        shared_file("glacier_synthetic", "DJ_before.tiff"),
        shared_file("glacier_synthetic", "DJ_after.tiff"),
    )


@pytest.fixture(scope="module")
def glacier_run(glacier_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "result.zarr"
    csv = out.parent / "points.csv"
    proc = trackoff(
        "run", *glacier_files, "--out", out, "--no-filter", "--csv", csv, "--chunks", "512"
    )
    assert proc.returncode == 0, proc.stderr
    return out, csv, proc


def test_run_matches_python_api(glacier_files, glacier_run):
    out, csv, proc = glacier_run
    ref = trackoff_xr.open_image(glacier_files[0], chunks=512)
    sec = trackoff_xr.open_image(glacier_files[1], chunks=512)
    expected = trackoff_xr.offsets(ref, sec).compute()  # the default method, as the CLI's
    got = xr.open_zarr(out).compute()
    np.testing.assert_array_equal(got.dx.values, expected.dx.values)
    np.testing.assert_array_equal(got.dy.values, expected.dy.values)
    np.testing.assert_array_equal(got.valid.values, expected.valid.values)
    assert got.attrs["method"] == "cnn" and "filters" not in got.attrs
    assert np.nanmedian(got.dy) == pytest.approx(3.0, abs=0.01)
    assert np.nanmedian(got.dx) == pytest.approx(8.0, abs=0.01)
    # no temporary sibling left behind
    assert sorted(p.name for p in out.parent.iterdir()) == ["points.csv", "result.zarr"]
    lines = csv.read_text().splitlines()
    assert lines[0] == "no,x,y,dX,dY,dX_m,dY_m,dmax,dmax_m,vel,probab"  # the paper's columns
    assert len(lines) - 1 == int(expected.valid.sum())
    assert "valid:" in proc.stdout
    # progress in grid points, as plain lines (stderr is not a terminal here)
    points = got.sizes["y"] * got.sizes["x"]
    assert f"progress: {points} of {points} grid points (100%)" in proc.stderr
    assert "\r" not in proc.stderr


def _run_and_python_api(glacier_files, out):
    """Check a `trackoff run --spacing 64 --method ncc` store against the Python API."""
    ref = trackoff_xr.open_image(glacier_files[0])
    sec = trackoff_xr.open_image(glacier_files[1])
    expected = filter_offsets(trackoff_xr.offsets(ref, sec, spacing=64, method="ncc")).compute()
    got = xr.open_zarr(out).compute()
    np.testing.assert_array_equal(got.dx.values, expected.dx.values)
    np.testing.assert_array_equal(got.valid.values, expected.valid.values)
    return got, expected


def test_run_with_filter_equals_filter_offsets(glacier_files, tmp_path):
    out = tmp_path / "f.zarr"
    proc = trackoff(
        "run",
        *glacier_files,
        "--out",
        out,
        "--quiet",
        "--scheduler",
        "processes",
        "--workers",
        "2",
        "--spacing",
        "64",
        "--method",
        "ncc",
    )
    assert proc.returncode == 0, proc.stderr
    # quiet: no summary, no progress bar (worker processes may still print the
    # NotGeoreferencedWarning that io.open_image silences only in the parent process)
    assert proc.stdout == "" and "Completed" not in proc.stderr
    got, expected = _run_and_python_api(glacier_files, out)
    assert got.attrs["filters"] == expected.attrs["filters"]


def test_info(glacier_run):
    proc = trackoff("info", glacier_run[0])
    assert proc.returncode == 0, proc.stderr
    assert "grid: 59 x 44 points" in proc.stdout
    assert "valid:" in proc.stdout and "median 8.54" in proc.stdout


def test_plot_writes_pngs(glacier_run, tmp_path):
    proc = trackoff("plot", glacier_run[0], "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == [
        "filter_comparison.png",
        "offset_histogram.png",
        "score_map.png",
        "velocity_map.png",
    ]
    for p in (tmp_path / "figs").iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one = tmp_path / "one.png"
    proc = trackoff(
        "plot", glacier_run[0], "--figure", "velocity", "--out", one, "--background", "none"
    )
    assert proc.returncode == 0, proc.stderr
    assert one.exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["run", "missing_before.tif", "missing_after.tif", "--out", "x.zarr"],
            "missing_before.tif",
        ),
        (["run", "a.tif", "b.tif", "--out", "x.zarr", "--bogus"], "--bogus"),
        (["run", "a.tif", "b.tif", "--out", "x.zarr", "--scheduler", "mpi"], "mpi"),
        (["info", "nowhere.zarr"], "nowhere.zarr"),
        (["plot", "nowhere.zarr"], "nowhere.zarr"),
    ],
)
def test_errors_are_one_line_exit_2(args, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["trackoff", *args])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err
    assert "Traceback" not in err


def test_trackoff_errors_one_line_and_debug_traceback(glacier_files, tmp_path):
    args = ("run", *glacier_files, "--out", tmp_path / "x.zarr", "--patch-size", "4")
    proc = trackoff(*args)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --patch-size 4 is smaller than the minimum of 8 pixels; use --patch-size >= 8"
    ]
    proc = trackoff(*args, "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    proc = trackoff("run", *glacier_files, "--out", tmp_path / "x.zarr", "--method", "phase")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "'ncc'" in proc.stderr
    assert not (tmp_path / "x.zarr").exists()


def test_help_has_examples():
    proc = trackoff("run", "--help")
    assert proc.returncode == 0
    assert "Examples:" in proc.stdout and "trackoff run before.tif after.tif" in proc.stdout
    assert "trackoff plot result.zarr" in trackoff("--help").stdout


def _option_facts(param):
    return (
        param.opts,
        param.secondary_opts,
        param.default,
        param.type.to_info_dict(),
        param.help,
    )


def test_run_and_batch_share_their_tracking_options():
    """_TRACKING_OPTIONS read the same in run and batch: flags, default, type and help."""
    import click

    from trackoff_xr.cli import _TRACKING_OPTIONS, _tracking_options, batch, run

    tracking = [p.name for p in click.command()(_tracking_options(lambda **kw: None)).params]
    assert len(tracking) == len(_TRACKING_OPTIONS) > 0
    params = {cmd.name: {p.name: p for p in cmd.params} for cmd in (run, batch)}
    for name in [*tracking, "debug"]:
        in_run, in_batch = params["run"].get(name), params["batch"].get(name)
        assert in_run is not None and in_batch is not None, name
        assert _option_facts(in_run) == _option_facts(in_batch), name
    # an option both commands define by hand must go into _TRACKING_OPTIONS, unless it
    # says something different in each (the store vs the cube)
    own = {"out", "overwrite", "quiet"}
    assert set(params["run"]) & set(params["batch"]) == {*tracking, "debug", *own}


def test_write_zarr_is_atomic_and_regular(tmp_path):
    import dask.array as da

    from trackoff_xr.exceptions import OutputExistsError, ProtectedOutputError

    data = da.from_array(np.arange(30.0).reshape(5, 6), chunks=((2, 3), (4, 2)))
    ds = xr.Dataset({"dx": (("y", "x"), data), "dy": (("y", "x"), data)})
    path = tmp_path / "out.zarr"
    path.mkdir()
    (path / "stale").write_text("a user's folder")
    with pytest.raises(ProtectedOutputError):  # a folder trackoff did not write: never replaced
        write_zarr(ds, path, progress=False, mode="w")
    assert (path / "stale").read_text() == "a user's folder"
    (path / "stale").unlink()
    path.rmdir()
    write_zarr(ds, path, progress=False)
    with pytest.raises(OutputExistsError):
        write_zarr(ds, path, progress=False)
    write_zarr(ds * 2, path, progress=False, mode="w")  # its own store: replaced
    back = xr.open_zarr(path)
    xr.testing.assert_equal(back.compute(), (ds * 2).compute())
    assert back.attrs["Conventions"].startswith("CF-1.8") and back.attrs["trackoff_write_complete"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]


def test_run_adds_velocity_when_days_and_pixel_size_are_given(glacier_files, tmp_path):
    out = tmp_path / "v.zarr"
    proc = trackoff(
        "run",
        *glacier_files,
        "--out",
        out,
        "--quiet",
        "--method",
        "ncc",
        "--spacing",
        "128",
        "--days",
        "12",
        "--pixel-size",
        "10",
    )
    assert proc.returncode == 0, proc.stderr
    got = xr.open_zarr(out).compute()
    ok = got.valid.values.astype(bool)
    # 8 columns in 12 days at 10 m: 80 m / 12 d * 365.25 d/yr along +x; 3 rows down
    assert np.nanmedian(got.vx.values[ok]) == pytest.approx(8 * 10 / 12 * 365.25, rel=1e-3)
    assert got.v.attrs["units"] == "meter/year"
    proc = trackoff("run", *glacier_files, "--out", tmp_path / "w.zarr", "--days", "12")
    assert proc.returncode == 2 and "pixel" in proc.stderr and proc.stderr.count("\n") == 1


def test_run_on_a_local_distributed_cluster(glacier_files, tmp_path):
    out = tmp_path / "d.zarr"
    proc = trackoff(
        "run",
        *glacier_files,
        "--out",
        out,
        "--scheduler",
        "distributed",
        "--workers",
        "2",
        "--spacing",
        "64",
        "--method",
        "ncc",
    )
    assert proc.returncode == 0, proc.stderr
    _run_and_python_api(glacier_files, out)
    assert "valid:" in proc.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["d.zarr"]  # nothing left behind


def test_run_joins_a_running_scheduler_and_leaves_it_running(glacier_files, tmp_path):
    import distributed

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None
    ) as cluster:
        out = tmp_path / "joined.zarr"
        proc = trackoff(
            "run",
            *glacier_files,
            "--out",
            out,
            "--scheduler",
            cluster.scheduler_address,
            "--spacing",
            "64",
            "--method",
            "ncc",
        )
        assert proc.returncode == 0, proc.stderr
        _run_and_python_api(glacier_files, out)
        with distributed.Client(cluster) as client:  # still serving after the run
            assert client.submit(sum, [1, 2]).result() == 3
            assert len(client.scheduler_info()["workers"]) == 1


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--scheduler", "gpu-farm"), ("--memory-limit", "lots"), ("--memory-limit", "0")],
)
def test_cluster_options_are_checked(glacier_files, tmp_path, flag, value):
    proc = trackoff("run", *glacier_files, "--out", tmp_path / "r.zarr", flag, value)
    assert proc.returncode == 2
    assert flag in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert repr(value) in proc.stderr and "pass e.g." in proc.stderr  # says what to do
    assert not (tmp_path / "r.zarr").exists()


def test_memory_limit_reaches_the_local_cluster(monkeypatch):
    import distributed

    from trackoff_xr import cli

    seen = {}

    class Recorder(distributed.LocalCluster):
        def __init__(self, *args, **kwargs):
            seen.update(kwargs)
            super().__init__(*args, **{**kwargs, "processes": False})

    monkeypatch.setattr(distributed, "LocalCluster", Recorder)
    delayed = __import__("dask").delayed(sum)([1, 2])
    cli._compute_on_cluster(delayed, 1, progress=False, tensorflow=False, memory_limit="1500MiB")
    assert seen["memory_limit"] == "1500MiB"


def test_the_api_runs_on_the_active_client():
    import distributed

    from trackoff_xr.testing.synthetic import shifted_pair

    ref, sec = shifted_pair((256, 256), shift=(1.5, -2.0), seed=3)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        lazy = trackoff_xr.offsets(ref.chunk(128), sec.chunk(128), method="ncc", patch_size=32)
        with distributed.get_task_stream(client) as stream:
            ds = lazy.compute()
        ran = {t["key"][0] if isinstance(t["key"], tuple) else t["key"] for t in stream.data}
    assert any(str(k).startswith("trackoff-ncc-") for k in ran)
    expected = trackoff_xr.offsets(ref, sec, method="ncc", patch_size=32)
    np.testing.assert_array_equal(ds.dx.values, expected.dx.values)
