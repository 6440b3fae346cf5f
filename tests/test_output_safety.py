"""Writers never destroy what trackoff_xr did not write (issue 10, item 1, API side).

Every case runs in a temporary folder full of user files; each checks that the
files are byte-identical afterwards. :func:`snapshot` is shared with the CLI
tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dask.array as dsa
import fsspec
import numpy as np
import pandas as pd
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from rasterio.transform import from_origin

from trackoff_xr.exceptions import (
    IncompleteStoreError,
    InvalidParameterError,
    OutputExistsError,
    OutputLocationError,
    ProtectedOutputError,
)
from trackoff_xr.io import (
    COMPLETE_ATTR,
    append_pair,
    check_output,
    open_zarr,
    remove_partials,
    to_csv,
    to_geotiff,
    to_zarr,
)
from trackoff_xr.io import geotiff as io_geotiff
from trackoff_xr.io import safety as io_safety
from trackoff_xr.io import zarr as io_zarr

from .helpers import snapshot


def _write_user_tif(path: Path) -> None:
    """A small GeoTIFF of the user's, not written by trackoff_xr."""
    data = np.arange(64, dtype=np.uint8).reshape(8, 8)
    profile = dict(driver="GTiff", height=8, width=8, count=1, dtype="uint8", crs="EPSG:3413")
    with rasterio.open(path, "w", transform=from_origin(0, 80, 10, 10), **profile) as dst:
        dst.write(data, 1)


@pytest.fixture
def user_folder(tmp_path):
    """A folder holding a user's files: notes, an image, a subfolder."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("field notes, 2024\n")
    _write_user_tif(folder / "image.tif")
    (folder / "sub").mkdir()
    (folder / "sub" / "a.txt").write_text("a\n")
    (folder / "sub" / "b.bin").write_bytes(bytes(range(256)))
    return folder


def _result(chunks: int = 3) -> xr.Dataset:
    """A small lazy offsets/velocity Dataset on a north-up grid with a CRS."""
    rng = np.random.default_rng(0)
    shape = (6, 5)
    data = {
        name: (("y", "x"), dsa.from_array(rng.normal(size=shape).astype("f4"), chunks=chunks))
        for name in ("dx", "dy", "vx", "vy", "v")
    }
    data["score"] = (("y", "x"), dsa.from_array(np.full(shape, 0.9, "f4"), chunks=chunks))
    data["valid"] = (("y", "x"), dsa.from_array(np.ones(shape, bool), chunks=chunks))
    ds = xr.Dataset(
        data,
        coords={"y": 1000.0 - 10.0 * np.arange(shape[0]), "x": 10.0 * np.arange(shape[1])},
        attrs={"method": "ncc", "date_dt": 12.0, "date_center": "2024-02-09T10:00:00"},
    )
    return ds.rio.write_crs(3413)


def _failing(ds: xr.Dataset, error: type[BaseException]) -> xr.Dataset:
    """``ds`` with one more variable whose computation raises ``error`` in one block."""

    def boom(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 1):
            raise error("stopped")
        return block

    bad = dsa.map_blocks(boom, dsa.zeros(ds.dx.shape, chunks=3, dtype="f4"), dtype="f4")
    return ds.assign(broken=(("y", "x"), bad))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- to_zarr ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["w", "w-"])
def test_zarr_never_replaces_a_plain_folder(user_folder, mode):
    before = snapshot(user_folder.parent)
    for target in (user_folder, user_folder / "sub"):
        with pytest.raises(ProtectedOutputError, match="folder that trackoff_xr did not write"):
            to_zarr(_result(), target, mode=mode)
    assert snapshot(user_folder.parent) == before


def test_zarr_never_replaces_a_file(user_folder):
    before = snapshot(user_folder)
    for name in ("notes.txt", "image.tif"):
        with pytest.raises(ProtectedOutputError, match="is a file") as info:
            to_zarr(_result(), user_folder / name, mode="w")
        assert name in str(info.value) and "choose another path" in str(info.value)
    assert snapshot(user_folder) == before


def test_zarr_refuses_cwd_and_folder_holding_inputs(user_folder, tmp_path, monkeypatch):
    before = snapshot(user_folder)
    monkeypatch.chdir(user_folder)
    with pytest.raises(ProtectedOutputError):
        to_zarr(_result(), ".", mode="w")
    # an input named relatively, the folder reached through a symbolic link
    (tmp_path / "link").symlink_to(user_folder, target_is_directory=True)
    with pytest.raises(ProtectedOutputError, match="holding the input"):
        to_zarr(_result(), tmp_path / "link", mode="w", protect=["image.tif"])
    # an input named by the Dataset's own attributes
    ds = _result().assign_attrs(reference_image=str(user_folder / "sub" / "a.txt"))
    with pytest.raises(ProtectedOutputError, match="holding the input"):
        to_zarr(ds, user_folder / "sub" / ".", mode="w")
    assert snapshot(user_folder) == before


def test_zarr_never_replaces_a_protected_store_even_its_own(tmp_path):
    store = tmp_path / "in.zarr"
    to_zarr(_result(), store)
    before = snapshot(tmp_path)
    with pytest.raises(ProtectedOutputError, match="is an input"):
        to_zarr(_result(), store, mode="w", protect=[tmp_path / "." / "in.zarr"])
    with pytest.raises(ProtectedOutputError, match="holding the input"):
        to_zarr(_result(), store, mode="w", protect=[store / "vx"])
    assert snapshot(tmp_path) == before


def test_zarr_mode_w_replaces_only_its_own_store(tmp_path):
    store = tmp_path / "pair.zarr"
    to_zarr(_result(), store)
    with pytest.raises(OutputExistsError, match="mode='w'") as info:
        to_zarr(_result(), store)
    assert not isinstance(info.value, ProtectedOutputError)
    to_zarr(_result().assign(vx=lambda d: d.vx * 0), store, mode="w")
    assert float(abs(open_zarr(store).vx).max()) == 0.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair.zarr"]


def test_interrupted_store_of_ours_may_be_replaced(tmp_path):
    store = tmp_path / "pair.zarr"
    delayed = to_zarr(_failing(_result(), RuntimeError), store, compute=False)
    with pytest.raises(RuntimeError, match="stopped"):
        delayed.compute()
    (partial,) = tmp_path.iterdir()
    os.replace(partial, store)  # as if the rename had happened without the marker
    with pytest.raises(IncompleteStoreError):
        open_zarr(store)
    check_output(store, kind="zarr", mode="w")
    to_zarr(_result(), store, mode="w")
    assert open_zarr(store).attrs[COMPLETE_ATTR] == 1


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_interrupt_during_compute_leaves_no_partial(tmp_path, error):
    with pytest.raises(error):
        to_zarr(_failing(_result(), error), tmp_path / "pair.zarr")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_while_finalizing_leaves_no_partial(tmp_path, monkeypatch):
    def interrupted(store, complete=True):
        raise KeyboardInterrupt

    monkeypatch.setattr(io_zarr, "_mark_complete", interrupted)
    with pytest.raises(KeyboardInterrupt):
        to_zarr(_result(), tmp_path / "pair.zarr")
    assert list(tmp_path.iterdir()) == []


def test_stale_partials_of_dead_processes_are_cleaned_by_next_write(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    stale = tmp_path / f".pair.zarr.{dead}.ab12cd34.partial"
    kept = [
        tmp_path / f".pair.zarr.{live}.ab12cd34.partial",  # this process runs
        tmp_path / ".pair.zarr.ab12cd34.partial",  # no pid: not provably ours
        tmp_path / f".other.zarr.{dead}.ab12cd34.partial",  # another target
        tmp_path / f".pair.zarr.{dead}.ab12cd34",  # not a partial name
    ]
    for path in (stale, *kept):
        path.mkdir()
        (path / ".zgroup").write_text("{}")
    to_zarr(_result(), tmp_path / "pair.zarr")
    assert not stale.exists()
    assert all(path.exists() for path in kept)
    assert remove_partials(tmp_path / "pair.zarr") == []
    assert remove_partials(tmp_path / "pair.zarr", include_own=True) == [kept[0]]


def test_partial_names_carry_the_pid(tmp_path):
    delayed = to_zarr(_result(), tmp_path / "pair.zarr", compute=False)
    (partial,) = tmp_path.iterdir()
    assert partial.name.startswith(f".pair.zarr.{os.getpid()}.")
    assert partial.name.endswith(".partial")
    delayed.compute()


# -- to_csv -----------------------------------------------------------------------


def test_csv_never_replaces_a_file_it_did_not_write(user_folder):
    before = snapshot(user_folder)
    for mode in ("w", "w-"):
        for name in ("notes.txt", "image.tif", "sub"):
            with pytest.raises(ProtectedOutputError, match="trackoff_xr did not write"):
                to_csv(_result(), user_folder / name, mode=mode)
    # a CSV of ours, but an input of the run
    ours = to_csv(_result(), user_folder / "sub" / "points.csv")
    before = snapshot(user_folder)
    with pytest.raises(ProtectedOutputError, match="is an input"):
        to_csv(_result(), ours, mode="w", protect=[ours])
    assert snapshot(user_folder) == before


def test_csv_refuses_any_existing_file_by_default_and_replaces_its_own(tmp_path):
    path = tmp_path / "points.csv"
    to_csv(_result(), path)
    with pytest.raises(OutputExistsError, match="mode='w'") as info:
        to_csv(_result(), path)
    assert not isinstance(info.value, ProtectedOutputError)
    first = path.read_text()
    to_csv(_result().assign(dx=lambda d: d.dx + 100), path, mode="w")
    assert path.read_text() != first
    assert pd.read_csv(path).dX.min() > 50
    assert [p.name for p in tmp_path.iterdir()] == ["points.csv"]


def test_writers_check_before_computing(user_folder):
    """A refused output fails at once: the broken computation never runs."""
    broken = _failing(_result(), RuntimeError)
    broken = broken.assign(dx=broken.broken, vx=broken.broken)
    with pytest.raises(ProtectedOutputError):
        to_csv(broken, user_folder / "notes.txt", mode="w")
    with pytest.raises(ProtectedOutputError):
        to_zarr(broken, user_folder, mode="w")
    with pytest.raises(ProtectedOutputError):
        to_geotiff(broken, user_folder, mode="w", protect=[user_folder / "vx.tif"])


# -- URLs -------------------------------------------------------------------------


def test_memory_urls_go_to_fsspec_or_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = "memory://trackoff-safety/points.csv"
    assert to_csv(_result(), url) == url
    with fsspec.open(url, "r") as handle:
        assert tuple(pd.read_csv(handle).columns) == io_safety.CSV_COLUMNS
    with pytest.raises(OutputExistsError, match="mode='w'"):
        to_csv(_result(), url)
    to_csv(_result(), url, mode="w")
    with pytest.raises(OutputLocationError, match="local folder"):
        to_geotiff(_result(), "memory://trackoff-safety/tifs")
    # a remote object that is not ours is protected like a local one
    with fsspec.open("memory://trackoff-safety/plain/data.bin", "wb") as handle:
        handle.write(b"user data")
    with pytest.raises(ProtectedOutputError):
        to_zarr(_result(), "memory://trackoff-safety/plain", mode="w")
    with pytest.raises(ProtectedOutputError):
        to_csv(_result(), "memory://trackoff-safety/plain/data.bin", mode="w")
    assert fsspec.filesystem("memory").cat("/trackoff-safety/plain/data.bin") == b"user data"
    assert list(tmp_path.iterdir()) == []  # no local "memory:" folder


def test_unknown_url_scheme_is_a_location_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for kind in ("zarr", "csv"):
        with pytest.raises(OutputLocationError, match="nosuchproto"):
            check_output("nosuchproto://bucket/out", kind=kind)
    assert list(tmp_path.iterdir()) == []


# -- locations --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zarr", "csv", "geotiff"])
def test_parent_is_a_file(user_folder, kind):
    before = snapshot(user_folder)
    target = user_folder / "notes.txt" / "deeper" / "out"
    with pytest.raises(OutputLocationError, match="is a file, not a folder") as info:
        check_output(target, kind=kind)
    assert str(target) in str(info.value)
    writer = {"zarr": to_zarr, "csv": to_csv, "geotiff": to_geotiff}[kind]
    with pytest.raises(OutputLocationError):
        writer(_result(), target)
    assert snapshot(user_folder) == before


def test_read_only_folder_is_refused_before_computing(tmp_path, monkeypatch):
    """The folder check uses os.access (simulated here: tests may run as root)."""
    real = os.access

    def access(path, mode, **kwargs):
        return False if Path(path) == tmp_path else real(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    for kind, name in (("zarr", "pair.zarr"), ("csv", "p.csv"), ("geotiff", "tifs")):
        with pytest.raises(OutputLocationError, match="read-only") as info:
            check_output(tmp_path / name, kind=kind)
        assert repr(str(tmp_path / name)) in str(info.value)
        assert ".partial" not in str(info.value)


def test_permission_error_names_the_target_not_the_partial(tmp_path, monkeypatch):
    """If the folder refuses the hidden partial anyway, the error names the output."""
    real = os.mkdir

    def mkdir(path, *args, **kwargs):
        if Path(path).name.endswith(".partial"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(OutputLocationError, match="Permission denied") as info:
        to_zarr(_result(), tmp_path / "pair.zarr")
    assert "'" + str(tmp_path / "pair.zarr") + "'" in str(info.value)
    assert ".partial" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


# -- to_geotiff -------------------------------------------------------------------


def test_geotiff_writes_into_a_user_folder_and_replaces_only_its_own(user_folder):
    before = snapshot(user_folder)
    paths = to_geotiff(_result(), user_folder, variables=("vx", "v"))
    assert [p.name for p in paths] == ["vx.tif", "v.tif"]
    after = snapshot(user_folder)
    assert before.items() <= after.items()
    assert set(after) - set(before) == {"vx.tif", "v.tif"}
    with pytest.raises(OutputExistsError, match="mode='w'") as info:
        to_geotiff(_result(), user_folder, variables=("vx",))
    assert not isinstance(info.value, ProtectedOutputError)
    to_geotiff(_result().assign(vx=lambda d: d.vx * 0), user_folder, variables=("vx",), mode="w")
    with rasterio.open(user_folder / "vx.tif") as src:
        assert float(np.abs(src.read(1)).max()) == 0.0
    # a user's GeoTIFF of the same name is never replaced
    (user_folder / "image.tif").rename(user_folder / "vy.tif")
    before = snapshot(user_folder)
    for mode in ("w", "w-"):
        with pytest.raises(ProtectedOutputError, match="not a trackoff_xr GeoTIFF"):
            to_geotiff(_result(), user_folder, variables=("vy",), mode=mode)
    with pytest.raises(ProtectedOutputError, match="is an input"):
        to_geotiff(_result(), user_folder, variables=("v",), mode="w", protect=[paths[1]])
    assert snapshot(user_folder) == before
    assert not [p for p in user_folder.iterdir() if p.name.endswith(".partial")]


def test_interrupted_geotiff_leaves_no_partial_and_no_new_folder(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(io_geotiff, "_replace_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        to_geotiff(_result(), tmp_path / "new" / "tifs")
    assert list(tmp_path.iterdir()) == []


# -- append_pair and check_output -------------------------------------------------


def test_append_pair_refuses_user_folder_and_inputs(user_folder):
    before = snapshot(user_folder)
    with pytest.raises(ProtectedOutputError):
        append_pair(_result(), user_folder / "sub")
    with pytest.raises(ProtectedOutputError, match="holding the input"):
        append_pair(_result(), user_folder / "cube.zarr", protect=[user_folder / "cube.zarr/x"])
    assert snapshot(user_folder) == before


def test_check_output_refuses_bad_mode_and_kind(tmp_path):
    with pytest.raises(InvalidParameterError, match="mode='a'"):
        check_output(tmp_path / "a.zarr", kind="zarr", mode="a")
    with pytest.raises(InvalidParameterError, match="kind='nc'"):
        check_output(tmp_path / "a.nc", kind="nc")
    with pytest.raises(InvalidParameterError, match="mode='x'"):
        to_csv(_result(), tmp_path / "p.csv", mode="x")
    assert check_output(tmp_path / "new" / "a.zarr", kind="zarr") is None
    assert list(tmp_path.iterdir()) == []


def test_hard_link_to_an_input_is_the_input(user_folder):
    os.link(user_folder / "notes.txt", user_folder / "alias.csv")
    before = snapshot(user_folder)
    with pytest.raises(ProtectedOutputError, match="is an input"):
        check_output(
            user_folder / "alias.csv",
            kind="csv",
            mode="w",
            protect=["/nowhere", user_folder / "notes.txt"],
        )
    assert snapshot(user_folder) == before


def test_unreachable_remote_is_a_location_error(monkeypatch):
    fs = fsspec.filesystem("memory")

    def refuse(path):
        raise PermissionError("no credentials")

    monkeypatch.setattr(type(fs), "exists", lambda self, path: refuse(path))
    with pytest.raises(OutputLocationError, match="no credentials.*credentials"):
        check_output("memory://trackoff-safety/denied.zarr", kind="zarr")
