"""``trackoff`` never loses a user's file, stops on Ctrl-C, and speaks in flags and points.

Issue 10: the CLI side of output safety (``--out``/``--csv``/``--overwrite``),
interrupts (SIGINT/SIGTERM), the demo and train outputs, progress in grid points,
``-q`` and messages that name the command-line flags.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from trackoff_xr import cli
from trackoff_xr.io import open_zarr, to_zarr
from trackoff_xr.testing.synthetic import shifted_pair

from .helpers import snapshot

# a small, fast ncc run: 192 x 192 px -> 5 x 5 points
FAST = ("--method", "ncc", "--patch-size", "32", "--spacing", "32", "--search-radius", "6")


def write_pair(folder: Path, shape=(192, 192), shift=(2.0, 3.0), seed=0) -> tuple[Path, Path]:
    """Write a generated pair (``sec`` = ``ref`` moved by ``shift``) as two GeoTIFFs."""
    import rioxarray  # noqa: F401  (registers .rio)

    ref, sec = shifted_pair(shape, shift=shift, seed=seed)
    paths = folder / "ref.tif", folder / "sec.tif"
    for image, path in zip((ref, sec), paths, strict=True):
        image.rio.to_raster(path)
    return paths


def run_main(*args) -> int:
    """Run ``trackoff`` in this process; return its exit status."""
    try:
        cli.main([str(a) for a in args])
    except SystemExit as exc:
        return 0 if exc.code is None else int(exc.code)
    return 0


def trackoff_process(*args, cwd=None, **kwargs) -> subprocess.Popen:
    code = "import sys; from trackoff_xr.cli import main; sys.argv[0] = 'trackoff'; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """A folder holding the inputs and other user files; the current directory."""
    folder = tmp_path / "work"
    folder.mkdir()
    write_pair(folder)
    (folder / "notes.txt").write_text("my field notes\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "a.txt").write_text("a")
    (folder / "sub" / "b.bin").write_bytes(bytes(range(256)))
    (folder / "mydir").mkdir()
    (folder / "mydir" / "keep.txt").write_text("do not delete")
    monkeypatch.chdir(folder)
    return folder


# -- THE acceptance test: every pre-existing file survives ---------------------------------


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize(
    "target",
    [
        ("--out", "."),
        ("--out", "<folder>"),
        ("--out", "mydir"),
        ("--out", "sub"),
        ("--out", "new.zarr", "--csv", "ref.tif"),
        ("--out", "new.zarr", "--csv", "notes.txt"),
        ("--out", "new.zarr", "--csv", "<folder>/sec.tif"),
    ],
    ids=["dot", "abs-folder", "plain-dir", "subdir", "csv-ref", "csv-user-file", "csv-abs-sec"],
)
def test_refused_outputs_leave_every_file_byte_identical(user_folder, target, overwrite, capsys):
    args = [a.replace("<folder>", str(user_folder)) for a in target]
    before = snapshot(user_folder)
    code = run_main("run", "ref.tif", "sec.tif", *args, *FAST, *(["--overwrite"] * overwrite))
    err = capsys.readouterr().err
    assert code == 2, err
    assert snapshot(user_folder) == before  # nothing changed, nothing added
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "mode=" not in err  # speaks flags, not Python


def test_new_store_then_refused_then_overwritten(user_folder, capsys):
    before = snapshot(user_folder)
    assert run_main("run", "ref.tif", "sec.tif", "--out", "new.zarr", *FAST, "-q") == 0
    first = open_zarr(user_folder / "new.zarr")
    assert first.attrs["spacing"] == 32
    after_first = snapshot(user_folder)
    assert before.items() <= after_first.items()  # the user's files untouched

    capsys.readouterr()
    assert run_main("run", "ref.tif", "sec.tif", "--out", "new.zarr", *FAST) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "mode=" not in err and err.count("\n") == 1
    assert snapshot(user_folder) == after_first  # refused before computing anything

    args = ("run", "ref.tif", "sec.tif", "--out", "new.zarr", *FAST, "--spacing", "16")
    assert run_main(*args, "--overwrite", "-q") == 0
    second = open_zarr(user_folder / "new.zarr")
    assert second.attrs["spacing"] == 16 and second.sizes["x"] > first.sizes["x"]
    assert before.items() <= snapshot(user_folder).items()
    assert not [p for p in os.listdir(user_folder) if p.endswith((".partial", ".old"))]


def test_csv_is_refused_then_replaced_with_overwrite(user_folder, capsys):
    args = ("run", "ref.tif", "sec.tif", *FAST, "-q", "--csv", "points.csv")
    assert run_main(*args, "--out", "a.zarr") == 0
    table = (user_folder / "points.csv").read_text()
    capsys.readouterr()
    assert run_main(*args, "--out", "b.zarr") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert not (user_folder / "b.zarr").exists()  # checked before computing
    assert run_main(*args, "--out", "b.zarr", "--overwrite") == 0
    assert (user_folder / "points.csv").read_text().splitlines()[0] == table.splitlines()[0]
    assert (user_folder / "b.zarr").is_dir()


def test_csv_inside_the_store_is_refused(user_folder, capsys):
    before = snapshot(user_folder)
    code = run_main("run", "ref.tif", "sec.tif", *FAST, "--out", "r.zarr", "--csv", "r.zarr/p.csv")
    assert code == 2 and "--csv" in capsys.readouterr().err
    assert snapshot(user_folder) == before


@pytest.mark.parametrize(
    "out, needle",
    [
        ("memory://x.zarr", "memory://x.zarr"),
        ("notes.txt/x.zarr", "notes.txt"),  # parent is a file
    ],
)
def test_unusable_out_fails_at_once(user_folder, out, needle, capsys, monkeypatch):
    import trackoff_xr

    def no_tracking(*args, **kwargs):
        raise AssertionError("tracking started before the output was checked")

    monkeypatch.setattr(trackoff_xr, "offsets", no_tracking)
    before = snapshot(user_folder)
    assert run_main("run", "ref.tif", "sec.tif", "--out", out, *FAST) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
    assert snapshot(user_folder) == before


def test_read_only_folder_fails_at_once(user_folder, capsys, monkeypatch):
    locked = user_folder / "locked"
    locked.mkdir()
    real_access = os.access

    def access(path, mode, *args, **kwargs):  # as for a user without write permission there
        if Path(path).resolve() == locked.resolve() and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    before = snapshot(user_folder)
    assert run_main("run", "ref.tif", "sec.tif", "--out", "locked/r.zarr", *FAST) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "locked" in err and "partial" not in err, err
    assert snapshot(user_folder) == before


# -- interrupts -------------------------------------------------------------------------------


def _wait_for_partial(folder: Path, name: str, proc: subprocess.Popen, timeout=60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(f".{name}.*.partial"))
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"trackoff ended before writing: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no partial store appeared")


@pytest.mark.parametrize(
    "method, sig, status",
    [
        ("ncc", signal.SIGINT, 130),
        ("ncc", signal.SIGTERM, 143),
        # the classifier's blocks ran on for minutes after Ctrl-C
        ("classifier", signal.SIGINT, 130),
    ],
    ids=["ncc-SIGINT", "ncc-SIGTERM", "classifier-SIGINT"],
)
def test_interrupt_removes_the_partial_and_exits_at_once(tmp_path, method, sig, status):
    # 1024 x 1024 px at spacing 4: ~58 000 points, minutes of work on 2 cores
    write_pair(tmp_path, shape=(1024, 1024))
    proc = trackoff_process(
        "run",
        "ref.tif",
        "sec.tif",
        "--out",
        "o.zarr",
        "--method",
        method,
        "--spacing",
        "4",
        "--chunks",
        "256",
        "-q",
        cwd=tmp_path,
    )
    _wait_for_partial(tmp_path, "o.zarr", proc)
    time.sleep(0.5)  # the computation is running
    assert proc.poll() is None
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("trackoff did not stop within 10 s of the signal")
    assert time.monotonic() - sent < 10
    assert proc.returncode == status, err
    assert err.splitlines() == ["interrupted; the partial output was removed"], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.tif", "sec.tif"]


# -- progress in points, -q -------------------------------------------------------------------


def test_progress_counts_points_plain_lines_without_a_tty(user_folder, capsys):
    assert run_main("run", "ref.tif", "sec.tif", "--out", "p.zarr", *FAST) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    ds = open_zarr(user_folder / "p.zarr")
    points = ds.sizes["y"] * ds.sizes["x"]
    assert f"progress: {points} of {points} grid points (100%)" in err
    assert "Completed" not in err  # not dask's task bar


def _lazy_offsets(shape=(192, 160), chunks=(64, 96)):
    import trackoff_xr

    ref, sec = shifted_pair(shape, shift=(1.0, 2.0))
    chunks = dict(zip(("y", "x"), chunks, strict=True))
    return trackoff_xr.offsets(
        ref.chunk(chunks),
        sec.chunk(chunks),
        method="ncc",
        patch_size=32,
        spacing=16,
        search_radius=4,
    )


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_point_progress_weights_blocks_by_their_points():
    ds = _lazy_offsets()
    blocks = cli._grid_blocks(ds)
    assert len(blocks[0]) * len(blocks[1]) > 1  # several blocks of different sizes
    seen = []

    class Recording(cli.PointProgress):
        def _posttask(self, key, result, dsk, state, worker_id):
            super()._posttask(key, result, dsk, state, worker_id)
            seen.append(self.done)

    stream = io.StringIO()
    with Recording(blocks, stream=stream) as bar:
        ds.dx.compute()
    total = ds.sizes["y"] * ds.sizes["x"]
    assert bar.total == total and bar.done == total
    # the count rises in steps of whole blocks' points, not of dask tasks
    steps = {b - a for a, b in zip([0, *dict.fromkeys(seen)], dict.fromkeys(seen), strict=False)}
    sizes = {r * c for r in blocks[0] for c in blocks[1]}
    assert steps - {0} <= sizes
    assert stream.getvalue() == f"progress: {total} of {total} grid points (100%), 0 s\n"


def test_point_progress_redraws_one_line_on_a_terminal():
    ds = _lazy_offsets()
    stream = _Terminal()
    with cli.PointProgress(cli._grid_blocks(ds), stream=stream):
        ds.dx.compute()
    text = stream.getvalue()
    total = ds.sizes["y"] * ds.sizes["x"]
    assert text.startswith("\r[") and text.endswith("\n") and text.count("\n") == 1
    assert f"100% {total} of {total} grid points" in text.rsplit("\r", 1)[-1]


def test_quiet_prints_nothing_even_with_tensorflow(tmp_path):
    """-q: no header, no progress, no summary, no TensorFlow/absl start-up lines."""
    write_pair(tmp_path, shape=(160, 160))
    proc = trackoff_process(
        "run",
        "ref.tif",
        "sec.tif",
        "--out",
        "q.zarr",
        "--method",
        "cnn",
        "-q",
        "--spacing",
        "64",
        cwd=tmp_path,
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out == "" and err == ""


# -- edge peaks --------------------------------------------------------------------------------


def test_info_says_to_raise_the_search_radius_when_many_points_hit_the_edge(tmp_path, capsys):
    shape = (4, 5)
    edge = np.zeros(shape, bool)
    edge[:2] = True  # 10 of 20 points peaked on the window's border
    ds = xr.Dataset(
        {
            "dx": (("y", "x"), np.full(shape, 3.0, np.float32)),
            "dy": (("y", "x"), np.zeros(shape, np.float32)),
            "score": (("y", "x"), np.full(shape, 0.8, np.float32)),
            "peak_at_edge": (("y", "x"), edge),
        },
        coords={"y": np.arange(4.0), "x": np.arange(5.0)},
        attrs={"search_radius": 7, "method": "ncc"},
    )
    to_zarr(ds, tmp_path / "edge.zarr")
    assert run_main("info", tmp_path / "edge.zarr") == 0
    err = capsys.readouterr().err
    assert err == (
        "warning: 10 points (50 %) matched at the edge of the search window: the motion may "
        "exceed --search-radius 7; raise it\n"
    )
    ds["peak_at_edge"][:] = False
    ds["peak_at_edge"][0, 0] = True  # 1 of 20: below the threshold
    assert cli._edge_warning(ds) is None
    assert cli._edge_warning(ds.drop_vars("peak_at_edge")) is None


def test_run_warns_when_the_motion_exceeds_the_search_radius(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_pair(tmp_path, shift=(0.0, 12.0))  # 12 px of motion, radius 4
    args = (
        "run",
        "ref.tif",
        "sec.tif",
        "--out",
        "e.zarr",
        "--method",
        "ncc",
        "--patch-size",
        "32",
        "--spacing",
        "16",
        "--search-radius",
        "4",
        "--no-filter",
    )
    assert run_main(*args) == 0
    if "peak_at_edge" not in open_zarr(tmp_path / "e.zarr"):
        pytest.skip("offsets() does not report peak_at_edge yet")
    err = capsys.readouterr().err
    assert re.search(r"warning: \d+ points \(\d+ %\) matched at the edge", err), err
    assert "--search-radius 4; raise it" in err


# -- messages name flags -----------------------------------------------------------------------


def test_messages_name_flags_not_python_arguments():
    assert (
        cli.cli_message("patch_size=7 is smaller than the minimum of 8 pixels; use patch_size >= 8")
        == "--patch-size 7 is smaller than the minimum of 8 pixels; use --patch-size >= 8"
    )
    assert cli.cli_message("'r.zarr' exists; pass mode='w' to replace it") == (
        "'r.zarr' exists; pass --overwrite to replace it"
    )
    assert cli.cli_message('write it again with mode="w"') == "write it again with --overwrite"
    text = cli.cli_message(
        "pass days= (e.g. days=12); pixel_size=0 or search_radius=-1 or spacing=0, chunks=0"
    )
    assert text == (
        "pass --days (e.g. --days 12); --pixel-size 0 or --search-radius -1 or --spacing 0, "
        "--chunks 0"
    )
    # English words and other names are left alone
    assert cli.cli_message("12 days apart; grid spacing; range_spacing") == (
        "12 days apart; grid spacing; range_spacing"
    )


def test_run_error_names_the_flag(user_folder, capsys):
    assert run_main("run", "ref.tif", "sec.tif", "--out", "x.zarr", "--patch-size", "4") == 2
    err = capsys.readouterr().err
    assert "--patch-size 4" in err and "patch_size" not in err
    assert not (user_folder / "x.zarr").exists()


def test_days_error_names_the_flag(user_folder, capsys):
    # --days without a pixel size: a non-georeferenced pair has none
    code = run_main("run", "ref.tif", "sec.tif", "--out", "v.zarr", *FAST, "--days", "12")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--pixel-size" in err and "pixel_size" not in err


# -- demo and train ----------------------------------------------------------------------------


def test_demo_writes_a_store_info_reads_and_a_rerun_replaces(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ("demo", "--out", "d", "--size", "256", "--method", "ncc")
    assert run_main(*args) == 0
    out = capsys.readouterr().out
    assert re.search(r"RMSE against the known displacement field: \d+\.\d{3} px", out)
    store = tmp_path / "d" / "offsets.zarr"
    assert open_zarr(store).attrs["trackoff_write_complete"]  # written by to_zarr
    assert run_main("info", store) == 0
    assert "grid:" in capsys.readouterr().out
    first = snapshot(tmp_path / "d")
    assert run_main(*args, "--seed", "7") == 0  # its own output: replaced
    assert snapshot(tmp_path / "d") != first
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["offsets.png", "offsets.zarr"]


def test_demo_never_replaces_a_users_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    user = tmp_path / "d" / "offsets.zarr"
    user.mkdir(parents=True)
    (user / "mine.txt").write_text("mine")
    before = snapshot(tmp_path)
    assert run_main("demo", "--out", "d", "--size", "256", "--method", "ncc") == 2
    assert snapshot(tmp_path) == before
    (user / "mine.txt").unlink()
    user.rmdir()
    (tmp_path / "d" / "offsets.png").write_bytes(b"my own figure")
    before = snapshot(tmp_path)
    assert run_main("demo", "--out", "d", "--size", "256", "--method", "ncc") == 2
    assert snapshot(tmp_path) == before


def test_train_refuses_the_package_folder(capsys):
    from trackoff_xr.matchers.cnn.features import DEFAULT_WEIGHTS

    folder = DEFAULT_WEIGHTS.parent
    before = snapshot(folder)
    for out in (folder, folder.parent):
        assert run_main("train", "--out", out, "--steps", "1") == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "never written" in err
    assert snapshot(folder) == before


def test_train_defaults_to_a_folder_in_the_current_directory():
    import importlib

    training = importlib.import_module("trackoff_xr.matchers.cnn.train")

    option = next(p for p in cli.train.params if p.name == "out_dir")
    assert option.default == "trackoff_weights"
    assert training.DEFAULT_OUT == Path("trackoff_weights")
    assert not Path(training.DEFAULT_OUT).is_absolute()
    with pytest.raises(Exception, match="never written"):
        training.train(Path(training.__file__).parent / "weights", steps=1)


# -- plot, s1 search and train: the same rule -------------------------------------------------


def _users_png(path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (5, 4), (0, 90, 200)).save(path)


@pytest.fixture
def plot_folder(user_folder):
    """The user folder with a small result store ``r.zarr`` in it."""
    to_zarr(_lazy_offsets(shape=(128, 128), chunks=(128, 128)), user_folder / "r.zarr")
    return user_folder


PLOT = ("--figure", "histogram", "--background", "none", "--dpi", "30")


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_plot_never_replaces_a_users_png(plot_folder, overwrite, capsys):
    _users_png(plot_folder / "fig.png")
    (plot_folder / "figs").mkdir()
    _users_png(plot_folder / "figs" / "score_map.png")  # one of the folder's figures
    before = snapshot(plot_folder)
    flags = ["--overwrite"] * overwrite
    assert run_main("plot", "r.zarr", "--out", "fig.png", *PLOT, *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "fig.png" in err, err
    # a folder: every figure is checked before any is written
    assert run_main("plot", "r.zarr", "--out", "figs", "--dpi", "30", *flags) == 2
    assert "score_map.png" in capsys.readouterr().err
    assert snapshot(plot_folder) == before


def test_plot_replaces_its_own_png_only_with_overwrite(plot_folder, capsys):
    from PIL import Image

    assert run_main("plot", "r.zarr", "--out", "fig.png", *PLOT, "-q") == 0
    with Image.open(plot_folder / "fig.png") as image:
        assert image.text["Software"].startswith("trackoff_xr ")
        first_size = image.size
    before = snapshot(plot_folder)
    capsys.readouterr()
    assert run_main("plot", "r.zarr", "--out", "fig.png", *PLOT) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "mode=" not in err and err.count("\n") == 1, err
    assert snapshot(plot_folder) == before
    assert run_main("plot", "r.zarr", "--out", "fig.png", *PLOT, "--dpi", "60", "--overwrite") == 0
    with Image.open(plot_folder / "fig.png") as image:
        assert image.size == (2 * first_size[0], 2 * first_size[1])
    assert not [p for p in os.listdir(plot_folder) if p.endswith(".partial")]


@pytest.fixture
def asf_search_calls(monkeypatch):
    """``asf_search.search`` answering with the recorded ASF search; the calls made."""
    asf_search = pytest.importorskip("asf_search")
    from .helpers import recorded_results

    calls = []
    monkeypatch.setattr(asf_search, "search", lambda **kw: calls.append(kw) or recorded_results())
    return calls


S1_SEARCH = (
    "s1",
    "search",
    "--bbox",
    "-50.2",
    "69.05",
    "-49.4",
    "69.25",
    "--start",
    "2021-03-01",
    "--end",
    "2021-04-01",
    "--gap",
    "12",
)


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_s1_search_never_replaces_a_users_file(user_folder, asf_search_calls, overwrite, capsys):
    (user_folder / "pairs.csv").write_text("reference,secondary\nmy,own pairs\n")
    before = snapshot(user_folder)
    for out in ("pairs.csv", "ref.tif", "notes.txt"):
        code = run_main(*S1_SEARCH, "--out", out, *(["--overwrite"] * overwrite))
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert out in err and "did not write" in err, err
    assert snapshot(user_folder) == before
    assert asf_search_calls == []  # refused before searching


def test_s1_search_replaces_its_own_table_only_with_overwrite(
    user_folder, asf_search_calls, capsys
):
    from trackoff_xr.io import TABLE_COLUMNS

    assert run_main(*S1_SEARCH, "--out", "pairs.csv") == 0
    lines = (user_folder / "pairs.csv").read_text().splitlines()
    assert lines[0] == ",".join(TABLE_COLUMNS["s1_pairs"]) and len(lines) > 1
    before = snapshot(user_folder)
    capsys.readouterr()
    assert run_main(*S1_SEARCH, "--out", "pairs.csv") == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "mode=" not in err and err.count("\n") == 1, err
    assert snapshot(user_folder) == before
    assert run_main(*S1_SEARCH, "--out", "pairs.csv", "--scenes", "--overwrite") == 0
    header = (user_folder / "pairs.csv").read_text().splitlines()[0]
    assert header == ",".join(TABLE_COLUMNS["s1_scenes"])


def test_s1_search_writes_an_empty_table_it_recognises(user_folder, monkeypatch):
    pytest.importorskip("asf_search")
    from trackoff_xr.io import asf as s1

    from .helpers import recorded_results

    monkeypatch.setattr(s1._asf(), "search", lambda **kw: recorded_results())
    assert run_main(*S1_SEARCH[:-1], "100", "--out", "none.csv") == 0  # no pair 100 days apart
    assert run_main(*S1_SEARCH[:-1], "100", "--out", "none.csv", "--overwrite") == 0


@pytest.fixture
def no_training(monkeypatch):
    """``trackoff train`` without TensorFlow: training fails the test if it starts."""
    training = importlib.import_module("trackoff_xr.matchers.cnn.train")

    def build_model(*args, **kwargs):
        raise AssertionError("training started before the output was checked")

    monkeypatch.setattr(training, "build_model", build_model)
    monkeypatch.setattr(cli, "_import_tensorflow_quietly", lambda: None)


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize(
    "files",
    [
        {"trackoff_cnn_v2.weights.h5": b"my weights"},
        {"trackoff_cnn_v2.json": b'{"version": "trackoff_cnn_v2"}'},
        {"trackoff_cnn_v2.weights.h5": b"my weights", "trackoff_cnn_v2.json": b"{}"},
        {"trackoff_cnn_v2_wide.weights.h5": b"my weights"},
        {"trackoff_cnn_v2_pruned.json": b"{}"},
    ],
    ids=["weights", "json", "both", "wide-stage", "pruned-stage"],
)
def test_train_never_replaces_a_users_files(user_folder, no_training, files, overwrite, capsys):
    out = user_folder / "trackoff_weights"
    out.mkdir()
    for name, content in files.items():
        (out / name).write_bytes(content)
    before = snapshot(user_folder)
    code = run_main("train", "--steps", "1", *(["--overwrite"] * overwrite))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "did not write" in err
    assert snapshot(user_folder) == before


def test_train_replaces_its_own_weights_only_with_overwrite(user_folder, monkeypatch, capsys):
    training = importlib.import_module("trackoff_xr.matchers.cnn.train")
    from trackoff_xr.io import save_weights

    modes = []

    def build_model(out, *, seed, steps, mode="w-", **kwargs):  # tiny files, ours
        modes.append(mode)
        path = Path(out) / "trackoff_cnn_v2.weights.h5"
        return save_weights(lambda p: Path(p).write_bytes(b"%d" % seed), {}, path, mode=mode)

    monkeypatch.setattr(training, "build_model", build_model)
    monkeypatch.setattr(cli, "_import_tensorflow_quietly", lambda: None)
    assert run_main("train", "--out", "w", "--seed", "1") == 0
    before = snapshot(user_folder)
    capsys.readouterr()
    assert run_main("train", "--out", "w", "--seed", "2") == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "mode=" not in err and err.count("\n") == 1, err
    assert modes == ["w-"]  # refused before training
    assert snapshot(user_folder) == before
    assert run_main("train", "--out", "w", "--seed", "2", "--overwrite") == 0
    assert modes == ["w-", "w"]
    assert (user_folder / "w" / "trackoff_cnn_v2.weights.h5").read_bytes() == b"2"


def test_train_api_checks_before_training_and_replaces_only_its_own(tmp_path):
    pytest.importorskip("tensorflow")
    from trackoff_xr.exceptions import OutputExistsError, ProtectedOutputError
    from trackoff_xr.matchers.cnn.train import train
    from trackoff_xr.matchers.cnn.training_data import TrainingSpec

    def no_batches(rng, n):
        raise AssertionError("training started before the output was checked")

    user = tmp_path / "user"
    user.mkdir()
    (user / "trackoff_cnn_v2.weights.h5").write_bytes(b"my weights")
    before = snapshot(user)
    for mode in ("w-", "w"):
        with pytest.raises(ProtectedOutputError, match="did not write"):
            train(user, steps=1, batch_source=no_batches, mode=mode)
    assert snapshot(user) == before

    spec = TrainingSpec(patch=24, radius=3, max_shift=2.0, scene=96)
    kw = dict(steps=1, batch_size=2, spec=spec, log_every=0)
    weights = train(tmp_path / "w", seed=1, **kw)
    meta = json.loads(weights.with_name("trackoff_cnn_v2.json").read_text())
    assert meta["software"] == "trackoff_xr" and meta["training"]["seed"] == 1
    with pytest.raises(OutputExistsError, match="mode='w'"):
        train(tmp_path / "w", batch_source=no_batches, **kw)
    train(tmp_path / "w", seed=2, mode="w", **kw)
    meta = json.loads(weights.with_name("trackoff_cnn_v2.json").read_text())
    assert meta["training"]["seed"] == 2
    assert sorted(p.name for p in weights.parent.iterdir()) == [
        "trackoff_cnn_v2.json",
        "trackoff_cnn_v2.weights.h5",
    ]


def test_demo_marks_its_png_and_never_replaces_a_users_png(tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    args = ("demo", "--out", "d", "--size", "256", "--method", "ncc")
    assert run_main(*args) == 0
    figure = tmp_path / "d" / "offsets.png"
    with Image.open(figure) as image:
        assert image.text["Software"].startswith("trackoff_xr ")
    _users_png(figure)  # the user's own figure, beside the demo's store
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert run_main(*args) == 2
    err = capsys.readouterr().err
    assert "offsets.png" in err and "did not write" in err and err.count("\n") == 1, err
    assert snapshot(tmp_path) == before
