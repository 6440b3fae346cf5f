"""Stacks of pairs (issue 15 item 4): track_pairs, open_cube and ``trackoff batch``.

Four generated pairs (GeoTIFFs on one EPSG:3413 grid, each with its own known
uniform shift and dates, listed out of date order) are tracked with ncc.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import trackoff_xr
from trackoff_xr import stacks
from trackoff_xr.exceptions import (
    CubeLockedError,
    GridMismatchError,
    InvalidParameterError,
    MissingMetadataError,
    OutputExistsError,
    ProtectedOutputError,
)
from trackoff_xr.io.safety import COMPLETE_ATTR
from trackoff_xr.stacks import PAIR_CHUNK, open_cube, track_pairs
from trackoff_xr.testing import shifted_pair

OPTIONS = dict(method="ncc", patch_size=32, spacing=16, search_radius=6)
CLI_OPTIONS = ("--method", "ncc", "--patch-size", "32", "--spacing", "16", "--search-radius", "6")
# (dy, dx) in pixels and dates of the four pairs: the third is the earliest
SHIFTS = [(1.0, 2.0), (-1.0, 3.0), (2.0, -2.0), (0.5, 1.5)]
DATES = [
    ("2024-02-03", "2024-02-15"),
    ("2024-02-15", "2024-02-27"),
    ("2024-01-10", "2024-01-22"),
    ("2024-02-03", "2024-02-27"),
]
PIXEL = 10.0


def _write_pairs(folder: Path, shape=(128, 128)) -> Path:
    """Write the four pairs as GeoTIFFs in folder/pairK/ and list them in folder/pairs.csv."""
    import rioxarray  # noqa: F401

    rows = []
    for k, shift in enumerate(SHIFTS):
        ref, sec = shifted_pair(shape, shift=shift, seed=k)
        sub = folder / f"pair{k}"
        sub.mkdir(parents=True, exist_ok=True)
        for name, image in (("ref", ref), ("sec", sec)):
            geo = image.assign_coords(
                x=500_000.0 + PIXEL * (image.x + 0.5), y=-2_000_000.0 - PIXEL * (image.y + 0.5)
            )
            geo.attrs = {}
            geo.rio.write_crs("EPSG:3413").rio.to_raster(sub / f"{name}.tif")
        rows.append(
            {
                "reference": f"pair{k}/ref.tif",  # relative to the CSV's folder
                "secondary": f"pair{k}/sec.tif",
                "reference_date": DATES[k][0],
                "secondary_date": DATES[k][1],
            }
        )
    csv = folder / "pairs.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory) -> Path:
    return _write_pairs(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def table(pairs_csv) -> pd.DataFrame:
    out = pd.read_csv(pairs_csv)
    for col in ("reference", "secondary"):
        out[col] = [str(pairs_csv.parent / p) for p in out[col]]
    return out


@pytest.fixture(scope="module")
def full_cube(table, tmp_path_factory) -> xr.Dataset:
    """The cube of one uninterrupted batch of all four pairs."""
    store = tmp_path_factory.mktemp("full") / "cube.zarr"
    report = track_pairs(table, store, **OPTIONS)
    assert len(report.processed) == 4 and not report.skipped
    return open_cube(store).compute()


def _assert_same_cube(got: xr.Dataset, expected: xr.Dataset) -> None:
    got, expected = got.compute(), expected.compute()
    assert sorted(got.variables) == sorted(expected.variables)
    for name in expected.variables:
        xr.testing.assert_identical(got[name].variable, expected[name].variable)
    ignore = {"history", "date_created"}
    assert {k: v for k, v in got.attrs.items() if k not in ignore} == {
        k: v for k, v in expected.attrs.items() if k not in ignore
    }


@pytest.fixture
def counted(monkeypatch):
    """Count the pairs actually tracked (calls of offsets())."""
    calls = []
    original = trackoff_xr.tracking.offsets

    def offsets(ref, sec, **kwargs):
        calls.append(ref.encoding.get("source") or ref.attrs.get("acquisition_start"))
        return original(ref, sec, **kwargs)

    monkeypatch.setattr(trackoff_xr.tracking, "offsets", offsets)
    return calls


# -- the cube -------------------------------------------------------------------


def test_cube_holds_each_pair_in_date_order_with_readable_chunks(full_cube, table, tmp_path):
    cube = full_cube
    assert cube.sizes["mid_date"] == 4
    mids = [np.datetime64(a) + (np.datetime64(b) - np.datetime64(a)) / 2 for a, b in DATES]
    order = np.argsort(mids, kind="stable")
    np.testing.assert_array_equal(cube.mid_date.values, np.array(mids, "datetime64[ns]")[order])
    np.testing.assert_array_equal(
        cube.date_dt.values,
        [
            (np.datetime64(DATES[k][1]) - np.datetime64(DATES[k][0])) / np.timedelta64(1, "D")
            for k in order
        ],
    )
    np.testing.assert_array_equal(
        cube.acquisition_date_img1.values, np.array([DATES[k][0] for k in order], "datetime64[ns]")
    )
    assert list(cube.reference_image.values) == [table.reference[k] for k in order]
    assert (cube.pair_complete.values == 1).all()
    assert len(set(cube.pair_id.values)) == 4
    for slot, k in enumerate(order):  # each pair's known shift, pixels and metres/year
        dy, dx = SHIFTS[k]
        assert float(cube.dx[slot].median()) == pytest.approx(dx, abs=0.05)
        assert float(cube.dy[slot].median()) == pytest.approx(dy, abs=0.05)
        years = float(cube.date_dt[slot]) / trackoff_xr.postprocess.velocity.DAYS_PER_YEAR
        assert float(cube.vx[slot].median()) == pytest.approx(dx * PIXEL / years, rel=0.03)
    assert cube.dx.attrs["units"] and cube.attrs["method"] == "ncc"
    assert "reference_image" not in cube.attrs and "date_center" not in cube.attrs
    # chunks: one pair per chunk along mid_date, whole (<= 512) slices in y/x, and the
    # per-pair variables in chunks of PAIR_CHUNK slots
    store = tmp_path / "c.zarr"
    track_pairs(table.iloc[:2], store, **OPTIONS)
    raw = xr.open_zarr(store)
    assert raw.dx.encoding["chunks"] == (1, raw.sizes["y"], raw.sizes["x"])
    for name in ("mid_date", "pair_id", "date_dt", "pair_complete", "acquisition_date_img2"):
        assert raw[name].encoding["chunks"] == (PAIR_CHUNK,), name


def test_two_then_four_equals_four_at_once(full_cube, pairs_csv, table, tmp_path, counted):
    store = tmp_path / "cube.zarr"
    first = track_pairs(pairs_csv, store, **OPTIONS)  # the CSV: paths relative to it
    assert len(counted) == 4  # sanity of the counter
    counted.clear()
    store2 = tmp_path / "cube2.zarr"
    first = track_pairs(table.iloc[:2], store2, **OPTIONS)
    assert len(first.processed) == 2 and len(counted) == 2
    counted.clear()
    second = track_pairs(table, store2, **OPTIONS)
    assert len(counted) == 2  # only the two new pairs were tracked
    assert second.skipped == first.processed
    assert len(second.processed) == 2
    _assert_same_cube(open_cube(store2), full_cube)
    _assert_same_cube(open_cube(store), full_cube)
    counted.clear()
    again = track_pairs(table, store2, **OPTIONS)  # idempotent
    assert counted == [] and len(again.skipped) == 4
    assert xr.open_zarr(store2).sizes["mid_date"] == 4


def test_interrupted_after_the_first_pair_then_rerun(full_cube, table, tmp_path, counted):
    store = tmp_path / "cube.zarr"

    def stop(event):
        if event.status == "done":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        track_pairs(table, store, progress=stop, **OPTIONS)
    assert len(open_cube(store).mid_date) == 1
    counted.clear()
    report = track_pairs(table, store, **OPTIONS)
    assert len(report.processed) == 3 and len(report.skipped) == 1 and len(counted) == 3
    _assert_same_cube(open_cube(store), full_cube)


def test_interrupted_inside_a_pair_leaves_it_incomplete_and_it_is_redone(
    full_cube, table, tmp_path, monkeypatch
):
    store = tmp_path / "cube.zarr"
    real = stacks._compute
    calls = []

    def compute(delayed, scheduler):
        calls.append(1)
        if len(calls) == 2:  # the second pair: its slot is registered, its data not written
            raise KeyboardInterrupt
        real(delayed, scheduler)

    monkeypatch.setattr(stacks, "_compute", compute)
    with pytest.raises(KeyboardInterrupt):
        track_pairs(table, store, **OPTIONS)
    raw = open_cube(store, complete=False)
    assert list(raw.pair_complete.values) == [1, 0]  # the second slot does not look complete
    assert np.isnan(raw.dx[1]).all()
    assert open_cube(store).sizes["mid_date"] == 1
    monkeypatch.setattr(stacks, "_compute", real)
    report = track_pairs(table, store, **OPTIONS)
    assert len(report.processed) == 3
    assert open_cube(store, complete=False).sizes["mid_date"] == 4  # its slot was reused
    _assert_same_cube(open_cube(store), full_cube)


def test_a_resize_cut_short_is_repaired(full_cube, table, tmp_path):
    import zarr

    store = tmp_path / "cube.zarr"
    track_pairs(table.iloc[:2], store, **OPTIONS)
    group = zarr.open_group(str(store), mode="r+", use_consolidated=False)
    # a writer killed while growing the arrays: some have a third slot, others not
    for name in ("dx", "pair_complete", "mid_date"):
        group[name].resize((3, *group[name].shape[1:]))
    report = track_pairs(table, store, **OPTIONS)
    assert len(report.processed) == 2
    _assert_same_cube(open_cube(store), full_cube)
    # a killed writer whose slot got no pair_id: the next new pair takes it
    store = tmp_path / "cube2.zarr"
    track_pairs(table.iloc[:1], store, **OPTIONS)
    group = zarr.open_group(str(store), mode="r+", use_consolidated=False)
    for array in stacks._pair_arrays(group).values():
        array.resize((2, *array.shape[1:]))
    zarr.consolidate_metadata(str(store))
    track_pairs(table, store, **OPTIONS)
    assert open_cube(store, complete=False).sizes["mid_date"] == 4
    _assert_same_cube(open_cube(store), full_cube)


def _batch_process(records: list, store: str, reverse: bool) -> int:
    table = pd.DataFrame(records)
    if reverse:
        table = table.iloc[::-1]
    return len(track_pairs(table, store, scheduler="synchronous", **OPTIONS).processed)


def test_two_processes_on_one_cube(full_cube, table, tmp_path):
    store = str(tmp_path / "cube.zarr")
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = [
            pool.apply_async(_batch_process, (table.to_dict("records"), store, reverse))
            for reverse in (False, True)
        ]
        processed = [r.get(timeout=300) for r in results]
    assert sum(processed) == 4  # every pair tracked once, by one of them
    raw = open_cube(store, complete=False)
    assert raw.sizes["mid_date"] == 4 and len(set(raw.pair_id.values)) == 4
    _assert_same_cube(open_cube(store), full_cube)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".partial", ".old"))]


def test_threads_of_one_process_on_one_cube(full_cube, table, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    store = tmp_path / "cube.zarr"
    with ThreadPoolExecutor(2) as pool:
        jobs = [
            pool.submit(track_pairs, t, store, scheduler="synchronous", **OPTIONS)
            for t in (table, table.iloc[::-1])
        ]
        reports = [j.result() for j in jobs]
    assert sum(len(r.processed) for r in reports) == 4
    assert open_cube(store, complete=False).sizes["mid_date"] == 4
    _assert_same_cube(open_cube(store), full_cube)


def test_memory_store_and_other_schedulers(full_cube, table):
    from distributed import Client

    store = "memory://stacks-test/cube.zarr"
    try:
        track_pairs(table.iloc[:2], store, scheduler="synchronous", **OPTIONS)
        with Client(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
        ) as c:
            report = track_pairs(table, store, scheduler=c, **OPTIONS)
        assert len(report.processed) == 2
        _assert_same_cube(open_cube(store), full_cube)
    finally:
        import fsspec

        fsspec.filesystem("memory").rm("/stacks-test", recursive=True)


def test_dataarray_pairs_with_dates():
    pairs = []
    for k, (dy, dx) in enumerate(SHIFTS[:2]):
        ref, sec = shifted_pair((128, 128), shift=(dy, dx), seed=k)
        pairs.append((ref, sec, DATES[k]))
    store = "memory://stacks-arrays/cube.zarr"
    try:
        report = track_pairs(pairs, store, **OPTIONS, pixel_size=PIXEL)
        assert len(report.processed) == 2
        again = track_pairs(pairs, store, **OPTIONS, pixel_size=PIXEL)
        assert again.skipped == report.processed  # ids from the data, stable
        cube = open_cube(store)
        assert [round(float(v), 2) for v in cube.dx.median(("y", "x"))] == [2.0, 3.0]
        assert all(v.startswith("array:") for v in cube.reference_image.values)
    finally:
        import fsspec

        fsspec.filesystem("memory").rm("/stacks-arrays", recursive=True)


# -- what is refused ------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(folder.rglob("*"))
    }


def test_user_folder_and_foreign_stores_are_never_touched(table, tmp_path):
    user = tmp_path / "thesis"
    user.mkdir()
    (user / "chapter1.tex").write_text("precious")
    before = _snapshot(tmp_path)
    for mode in ("a", "w", "w-"):
        with pytest.raises(ProtectedOutputError, match="did not write"):
            track_pairs(table, user, mode=mode, **OPTIONS)
    assert _snapshot(tmp_path) == before
    # a cube holding the inputs
    with pytest.raises(ProtectedOutputError, match="input"):
        track_pairs(table, Path(table.reference[0]).parent.parent, **OPTIONS)
    # a store of ours that is no cube: refused unless mode="w"
    single = tmp_path / "single.zarr"
    trackoff_xr.to_zarr(xr.Dataset({"dx": (("y", "x"), np.zeros((2, 2), np.float32))}), single)
    with pytest.raises(OutputExistsError, match="not a cube"):
        track_pairs(table.iloc[:1], single, **OPTIONS)
    store = tmp_path / "cube.zarr"
    track_pairs(table.iloc[:1], store, **OPTIONS)
    with pytest.raises(OutputExistsError, match="already exists"):
        track_pairs(table.iloc[:1], store, mode="w-", **OPTIONS)
    report = track_pairs(table.iloc[:1], single, mode="w", **OPTIONS)  # replaced: ours
    assert len(report.processed) == 1 and open_cube(single).sizes["mid_date"] == 1
    report = track_pairs(table.iloc[1:2], store, mode="w", **OPTIONS)  # rebuilt from scratch
    assert len(open_cube(store).mid_date) == 1 and report.processed == list(
        open_cube(store).pair_id.values
    )
    with pytest.raises(InvalidParameterError, match="mode='q'"):
        track_pairs(table, store, mode="q", **OPTIONS)


def test_pairs_that_do_not_fit_the_cube(table, tmp_path, pairs_csv):
    store = tmp_path / "cube.zarr"
    track_pairs(table.iloc[:1], store, **OPTIONS)
    with pytest.raises(InvalidParameterError, match=r"spacing=16 \(now 32\)"):
        track_pairs(table, store, **{**OPTIONS, "spacing": 32})
    undated = table.drop(columns=["reference_date", "secondary_date"])
    with pytest.raises(MissingMetadataError, match="reference_date and secondary_date"):
        track_pairs(undated.iloc[1:2], tmp_path / "other.zarr", **OPTIONS)
    other = _write_pairs(tmp_path / "small", shape=(96, 96))
    with pytest.raises(GridMismatchError, match="differ from the cube"):
        track_pairs(other, store, **OPTIONS)
    with pytest.raises(InvalidParameterError, match="no \\['secondary'\\] column"):
        track_pairs(table.drop(columns=["secondary"]), store, **OPTIONS)
    assert open_cube(store).sizes["mid_date"] == 1  # unchanged by the refusals
    single = tmp_path / "single.zarr"
    trackoff_xr.to_zarr(xr.Dataset({"dx": (("y", "x"), np.zeros((2, 2), np.float32))}), single)
    with pytest.raises(InvalidParameterError, match="open it with trackoff_xr.open_zarr"):
        open_cube(single)


# -- locks ----------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_exclusive_lock_waits_for_a_live_owner_and_breaks_a_dead_ones(table):
    import fsspec

    fs = fsspec.filesystem("memory")
    store = "memory://stacks-lock/cube.zarr"
    lock = "/stacks-lock/.cube.zarr.lock"
    try:
        fs.pipe(lock, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        started = time.monotonic()
        with pytest.raises(CubeLockedError, match=r"held by pid \d+ .*remove memory://"):
            track_pairs(table.iloc[:1], store, lock_timeout=0.3, **OPTIONS)
        assert time.monotonic() - started < 5
        assert not fs.exists("/stacks-lock/cube.zarr")
        fs.pipe(lock, json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}).encode())
        report = track_pairs(table.iloc[:1], store, lock_timeout=5, **OPTIONS)
        assert len(report.processed) == 1 and not fs.exists(lock)  # released after use
    finally:
        fs.rm("/stacks-lock", recursive=True)


def test_posix_lock_is_released_when_its_process_dies(table, tmp_path):
    store = tmp_path / "cube.zarr"
    code = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
        "fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0); print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / ".cube.zarr.lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CubeLockedError, match="waited 0.3 s"):
            track_pairs(table.iloc[:1], store, lock_timeout=0.3, **OPTIONS)
        holder.kill()  # a writer killed while holding the lock leaves nothing stale
        holder.wait()
        assert len(track_pairs(table.iloc[:1], store, lock_timeout=5, **OPTIONS).processed) == 1
    finally:
        holder.kill()


# -- scenes from find_pairs, downloaded ----------------------------------------


class _Response:
    def __init__(self, body: bytes):
        self.status_code, self.body = 200, body

    def iter_content(self, chunk_size):
        for i in range(0, len(self.body), chunk_size):
            yield self.body[i : i + chunk_size]

    def close(self):
        pass


class _Session:
    """Serves the generated GeoTIFFs as recorded responses of ASF's download URLs."""

    def __init__(self, files: dict[str, Path]):
        self.files, self.urls = files, []

    def get(self, url, stream, timeout):
        self.urls.append(url)
        return _Response(self.files[url].read_bytes())


def test_find_pairs_table_downloads_only_what_it_tracks(pairs_csv, tmp_path, full_cube):
    from trackoff_xr.io import asf

    folder = pairs_csv.parent
    scenes, files = [], {}
    for k, (d1, d2) in enumerate(DATES):
        for role, day in (("ref", d1), ("sec", d2)):
            name = f"S1A_IW_GRDH_{k}{role}"
            url = f"https://datapool.asf.alaska.edu/GRD_HD/SA/{name}.tif"
            files[url] = folder / f"pair{k}" / f"{role}.tif"
            scenes.append(
                {
                    "scene": name,
                    "start": pd.Timestamp(day),
                    "relative_orbit": 90 + k,  # one orbit per pair: find_pairs pairs them
                    "frame": 7,
                    "url": url,
                    "file_name": f"{name}.tif",
                    "bytes": files[url].stat().st_size,
                }
            )
    pairs = asf.find_pairs(pd.DataFrame(scenes), gaps=(12, 24))
    assert len(pairs) == 4
    session = _Session(files)
    store, scenes_dir = tmp_path / "cube.zarr", tmp_path / "scenes"
    with pytest.raises(InvalidParameterError, match="download_dir"):
        track_pairs(pairs, store, session=session, **OPTIONS)
    track_pairs(pairs.iloc[:2], store, download_dir=scenes_dir, session=session, **OPTIONS)
    assert len(session.urls) == 4
    session.urls.clear()
    report = track_pairs(pairs, store, download_dir=scenes_dir, session=session, **OPTIONS)
    assert len(report.processed) == 2 and len(session.urls) == 4  # the new pairs' scenes only
    cube = open_cube(store)
    for name in ("dx", "dy", "vx", "vy", "mid_date", "date_dt"):
        xr.testing.assert_equal(cube[name].variable, full_cube[name].variable)
    with pytest.raises(ProtectedOutputError, match="holding the input"):  # the scenes
        track_pairs(pairs, scenes_dir.parent, download_dir=scenes_dir, session=session, **OPTIONS)


# -- the command line ------------------------------------------------------------


def _trackoff(*args, cwd=None, **popen):
    code = "import sys; from trackoff_xr.cli import main; sys.argv[0] = 'trackoff'; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        **popen,
    )


def test_batch_cli_resumes_after_ctrl_c_and_equals_one_run(pairs_csv, tmp_path, full_cube):
    out = tmp_path / "cube.zarr"
    proc = _trackoff("batch", pairs_csv, "--out", out, *CLI_OPTIONS)
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("pair 1/4"):
                proc.send_signal(signal.SIGINT)
                break
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, "".join(lines) + err
    *progress_lines, last = err.strip().splitlines()
    assert all(line.startswith("pair 2/4") for line in progress_lines)  # it may have finished
    assert re.fullmatch(r"interrupted after [12] of 4 pairs; .* to resume", last)
    assert "Traceback" not in err
    assert 1 <= open_cube(out).sizes["mid_date"] <= 2  # the one being tracked may have finished
    proc = _trackoff("batch", pairs_csv, "--out", out, *CLI_OPTIONS)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "already in the cube, skipped" in err and "pair 4/4" in err
    assert "pairs tracked" in stdout
    _assert_same_cube(open_cube(out), full_cube)
    # --overwrite rebuilds it; a folder trackoff did not write is refused, untouched
    proc = _trackoff("batch", pairs_csv, "--out", out, "--overwrite", "-q", *CLI_OPTIONS)
    assert proc.communicate(timeout=120)[1] == "" and proc.returncode == 0
    _assert_same_cube(open_cube(out), full_cube)
    proc = _trackoff("batch", pairs_csv, "--out", pairs_csv.parent, *CLI_OPTIONS)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.startswith("error:") and len(err.splitlines()) == 1
    assert not (pairs_csv.parent / ".zattrs").exists()
    with open(out / ".zattrs") as handle:
        assert json.load(handle)[COMPLETE_ATTR] == 1
