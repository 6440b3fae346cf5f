"""Stacks of pairs: track many image pairs into one resumable Zarr data cube.

:func:`track_pairs` tracks each pair (:func:`~trackoff_xr.offsets`, then
:func:`~trackoff_xr.velocity` where pixel size and dates allow, then the
default filters) and writes it as its own region of one cube along
``mid_date``; :func:`open_cube` reads it back.

Layout (as ITS_LIVE's cubes)
    Variables on ``(mid_date, y, x)`` in chunks of ``(1, 512, 512)`` points
    (or the whole axis when shorter): one pair per chunk along ``mid_date``,
    so a pair is written without touching another's chunks. Per-pair
    variables on ``mid_date`` alone, in chunks of :data:`PAIR_CHUNK` slots
    (opening a cube of thousands of pairs reads a few chunks, not one per
    pair): ``pair_id``, ``reference_image``, ``secondary_image``,
    ``acquisition_date_img1``, ``acquisition_date_img2``, ``date_dt`` and
    ``pair_complete``.

Order
    The cube is append-only: a new pair takes the next slot, whatever its
    date, so slots are in processing order (which differs between runs and
    between concurrent writers). :func:`open_cube` returns the complete
    slots sorted by ``mid_date`` then ``pair_id``: the same Dataset whatever
    the processing order.

Resuming
    ``pair_id`` (names of the two images and a hash of their full paths, or
    of the scene names) is the registry: a pair whose slot has
    ``pair_complete == 1`` is skipped. The flag is written last, after the
    pair's data, so an interrupted pair keeps ``pair_complete == 0``: it is
    left out by :func:`open_cube` and tracked again by the next run, into
    the same slot. Structure changes (a new slot: every per-pair array grows
    by one) are repaired by the next writer if interrupted halfway (arrays
    cut back to their common length; a slot left without a ``pair_id`` is
    reused by the next new pair).

Concurrency
    Writers of one cube serialise their registry updates with a lock; the
    data of different pairs go to disjoint chunks, in parallel. For a local
    cube the lock is a POSIX record lock (``fcntl.lockf``) on the hidden
    sibling file ``.<name>.lock``, released by the system when its process
    dies: no stale lock is ever left. The same file holds one claim per slot
    being tracked, so two processes given the same pairs split them instead
    of tracking one twice. Where POSIX locks are unavailable (fsspec URLs,
    Windows) the lock is the sibling object ``.<name>.lock`` created with an
    exclusive create (``open(..., "xb")``), holding the owner's host and
    pid; a lock left by a dead process on the same host is removed. There,
    two writers may track one pair twice (identical data, harmless).

Examples
--------
>>> import tempfile, os
>>> from trackoff_xr.testing import shifted_pair
>>> pairs = []
>>> for k, day in enumerate(["2024-01-01", "2024-01-13"]):
...     ref, sec = shifted_pair((160, 160), shift=(1.0, 2.0 + k), seed=k)
...     pairs.append((ref.rename(f"ref{k}"), sec, (day, "2024-02-06")))
>>> store = os.path.join(tempfile.mkdtemp(), "cube.zarr")
>>> options = dict(method="ncc", patch_size=32, spacing=16, search_radius=6)
>>> report = track_pairs(pairs, store, **options)
>>> len(report.processed), len(track_pairs(pairs, store, **options).skipped)
(2, 2)
>>> cube = open_cube(store)
>>> cube.sizes["mid_date"], [round(float(v), 1) for v in cube.dx.median(("y", "x"))]
(2, [2.0, 3.0])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .exceptions import (
    CubeLockedError,
    GridMismatchError,
    IncompleteStoreError,
    InvalidParameterError,
    MissingMetadataError,
    OutputExistsError,
)
from .georef import crs_wkt, iso_date
from .io.safety import (
    COMPLETE_ATTR,
    _alive,
    _check,
    _check_existing,
    _exists,
    _is_complete,
    _mkdir,
    _new_partial,
    _protected,
    _remove,
    _Target,
    _what,
    remove_partials,
)

__all__ = [
    "CUBE_ATTR",
    "PAIR_CHUNK",
    "Pair",
    "PairEvent",
    "StackReport",
    "open_cube",
    "read_pairs",
    "track_pairs",
]

log = logging.getLogger(__name__)

#: root attribute naming a cube written by :func:`track_pairs` (its layout version)
CUBE_ATTR = "trackoff_cube"
#: root attribute holding the tracking options every pair of the cube shares (JSON)
OPTIONS_ATTR = "trackoff_cube_options"
#: slots per chunk of the per-pair (``mid_date``) variables
PAIR_CHUNK = 1024
#: points per chunk along ``y`` and ``x`` (or the whole axis when shorter)
SPATIAL_CHUNK = 512

_CUBE_VERSION = 1
_TIME_UNITS = "microseconds since 1970-01-01"
_PAIR_TIMES = ("acquisition_date_img1", "acquisition_date_img2")
_PAIR_STRINGS = ("pair_id", "reference_image", "secondary_image")
#: attributes that differ from pair to pair: variables along mid_date, not cube attributes
_PER_PAIR_ATTRS = ("reference_image", "secondary_image", "date_center", "date_dt", *_PAIR_TIMES)
_CUBE_DIMS = ("mid_date", "y", "x")


# ----------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Pair:
    """One pair to track: two images (paths, URLs or DataArrays) and their dates."""

    reference: Any
    secondary: Any
    reference_date: Any = None
    secondary_date: Any = None
    pair_id: str = ""
    #: a row of :func:`trackoff_xr.io.asf.find_pairs`: the scenes are downloaded first
    scenes: Any = None


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(np.all(np.asarray(value != value)))  # NaN, NaT
    except (TypeError, ValueError):
        return False


def _resolve(item: Any, base: Path | None) -> Any:
    if isinstance(item, xr.DataArray):
        return item
    if not isinstance(item, (str, os.PathLike)):
        raise InvalidParameterError(
            f"an image of a pair is {item!r} ({type(item).__name__}); give a path, an fsspec "
            "URL or an xarray.DataArray"
        )
    text = os.fsdecode(os.fspath(item))
    if "://" in text and not text.startswith("file://"):
        return text
    text = text[len("file://") :] if text.startswith("file://") else text
    path = Path(text)
    if base is not None and not path.is_absolute():
        path = base / path
    return str(path.absolute())


def _key(item: Any) -> str:
    """Return what identifies an image: its full path or URL, or its data's dask token."""
    if isinstance(item, xr.DataArray):
        from dask.base import tokenize

        return f"array:{tokenize(item)}"
    return str(item)


def _label(item: Any) -> str:
    if isinstance(item, xr.DataArray):
        return str(item.name) if item.name is not None else "array"
    name = str(item).rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".zip", ".SAFE", ".tif", ".tiff", ".TIF", ".png", ".jpg", ".zarr"):
        name = name.removesuffix(suffix)
    return name


def _pair_id(ref_key: str, sec_key: str, ref_label: str, sec_label: str) -> str:
    digest = hashlib.sha1(f"{ref_key}\n{sec_key}".encode(), usedforsecurity=False).hexdigest()
    return f"{ref_label}_{sec_label}_{digest[:8]}"


def _make_pair(ref: Any, sec: Any, d1: Any, d2: Any, base: Path | None, pid: Any = None) -> Pair:
    ref, sec = _resolve(ref, base), _resolve(sec, base)
    if _is_missing(pid) or pid == "":
        pid = _pair_id(_key(ref), _key(sec), _label(ref), _label(sec))
    return Pair(
        ref, sec, None if _is_missing(d1) else d1, None if _is_missing(d2) else d2, str(pid)
    )


def _pairs_from_table(table: Any, base: Path | None) -> list[Pair]:
    columns = set(table.columns)
    if {"ref_url", "sec_url"} <= columns:  # trackoff_xr.io.asf.find_pairs
        out = []
        for row in table.to_dict("records"):
            ref, sec = str(row["reference"]), str(row["secondary"])
            out.append(
                Pair(
                    ref,
                    sec,
                    row.get("ref_start"),
                    row.get("sec_start"),
                    _pair_id(ref, sec, ref, sec),
                    scenes=row,
                )
            )
        return out
    missing = {"reference", "secondary"} - columns
    if missing:
        raise InvalidParameterError(
            f"the pairs table has no {sorted(missing)} column (it has {sorted(columns)}); give "
            "the columns reference, secondary and optionally reference_date, secondary_date, "
            "pair_id, or the table of trackoff_xr.io.asf.find_pairs"
        )
    return [
        _make_pair(
            row["reference"],
            row["secondary"],
            row.get("reference_date"),
            row.get("secondary_date"),
            base,
            row.get("pair_id"),
        )
        for row in table.to_dict("records")
    ]


def read_pairs(pairs: Any) -> list[Pair]:
    """Turn the ``pairs`` of :func:`track_pairs` into a list of :class:`Pair`.

    Parameters
    ----------
    pairs : str, path-like, pandas.DataFrame or iterable
        A CSV file (relative image paths are relative to its folder) or a
        DataFrame with the columns ``reference``, ``secondary`` and
        optionally ``reference_date``, ``secondary_date``, ``pair_id``; the
        DataFrame of :func:`trackoff_xr.io.asf.find_pairs`; or an iterable of
        ``(reference, secondary)``, ``(reference, secondary, (date1, date2))``
        or ``(reference, secondary, date1, date2)`` of paths, URLs or
        DataArrays.

    Examples
    --------
    >>> [p.reference_date for p in read_pairs([("/a/r.tif", "/a/s.tif", ("2024-01-01",
    ...                                          "2024-01-13"))])]
    ['2024-01-01']
    >>> read_pairs([("/a/r.tif", "/a/s.tif")])[0].pair_id.startswith("r_s_")
    True
    """
    import pandas as pd

    if isinstance(pairs, (str, os.PathLike)):
        path = Path(os.fspath(pairs))
        if not path.is_file():
            raise InvalidParameterError(f"no pairs file {str(path)!r}; give a CSV file")
        try:
            table = pd.read_csv(path)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidParameterError(f"{str(path)!r} is not a readable CSV ({exc})") from exc
        return _pairs_from_table(table, path.parent.absolute())
    if isinstance(pairs, pd.DataFrame):
        return _pairs_from_table(pairs, None)
    if isinstance(pairs, (xr.DataArray, xr.Dataset)) or not isinstance(pairs, Iterable):
        raise InvalidParameterError(
            f"pairs is a {type(pairs).__name__}; give a CSV path, a DataFrame or a list of "
            "(reference, secondary[, dates]) tuples"
        )
    out = []
    for item in pairs:
        if isinstance(item, Pair):
            out.append(item)
            continue
        item = tuple(item) if isinstance(item, (tuple, list)) else (item,)
        if len(item) == 2:
            out.append(_make_pair(*item, None, None, None))
        elif len(item) == 3 and isinstance(item[2], (tuple, list)) and len(item[2]) == 2:
            d1, d2 = item[2]
            out.append(_make_pair(item[0], item[1], d1, d2, None))
        elif len(item) == 4:
            out.append(_make_pair(*item, None))
        else:
            raise InvalidParameterError(
                f"a pair is {item!r}; give (reference, secondary), (reference, secondary, "
                "(date1, date2)) or (reference, secondary, date1, date2)"
            )
    return out


# ----------------------------------------------------------------------------- locks


_GUARD = threading.Lock()
#: per lock file: [open descriptor, users, thread lock, slots claimed by this process]
_OPEN: dict[str, list[Any]] = {}


class _CubeLock:
    """The registry mutex and per-slot claims of one cube (see the module docstring)."""

    def __init__(self, t: _Target, timeout: float) -> None:
        self.timeout = float(timeout)
        self.posix = False
        if t.path is not None:
            self.key = str(t.path.parent / f".{t.path.name}.lock")
            try:
                import fcntl  # noqa: F401

                self.posix = True
            except ImportError:  # pragma: no cover - Windows
                pass
            import fsspec

            self.fs, self.path = fsspec.filesystem("file"), self.key
        else:
            parent, _, name = t.url_path.rpartition("/")
            self.fs, self.path = t.fs, f"{parent}/.{name}.lock"
            self.key = str(t.fs.unstrip_protocol(self.path))
        self.fd = -1
        self.entry: list[Any] = []

    def __enter__(self) -> _CubeLock:
        with _GUARD:
            entry = _OPEN.get(self.key)
            if entry is None:
                fd = -1
                if self.posix:
                    fd = os.open(self.key, os.O_RDWR | os.O_CREAT, 0o666)
                entry = _OPEN[self.key] = [fd, 0, threading.Lock(), set()]
            entry[1] += 1
            self.entry, self.fd = entry, entry[0]
        return self

    def __exit__(self, *exc: Any) -> None:
        with _GUARD:
            self.entry[1] -= 1
            if self.entry[1] == 0:
                _OPEN.pop(self.key, None)
                if self.fd >= 0:  # closing releases this process's record locks: none held
                    os.close(self.fd)

    def _locked(self, what: str) -> CubeLockedError:
        owner = ""
        if not self.posix:
            with contextlib.suppress(Exception):
                info = json.loads(self.fs.cat_file(self.path))
                owner = f" (held by pid {info.get('pid')} on {info.get('host')})"
        return CubeLockedError(
            f"waited {self.timeout:g} s for the lock of the cube{owner} while {what}; another "
            "writer is busy with it: wait for it, or raise lock_timeout"
            + ("" if self.posix else f"; if no trackoff_xr writer runs, remove {self.key}")
        )

    @contextlib.contextmanager
    def mutex(self, what: str = "updating its pair registry") -> Iterator[None]:
        """Hold the registry lock: other threads and processes wait."""
        thread_lock = self.entry[2]
        if not thread_lock.acquire(timeout=self.timeout):
            raise self._locked(what)
        try:
            if self.posix:
                self._posix_acquire(0, wait=True, what=what)
                try:
                    yield
                finally:
                    import fcntl

                    fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, 0)
            else:
                owned = self._exclusive_acquire(what)
                try:
                    yield
                finally:
                    if owned:
                        with contextlib.suppress(FileNotFoundError):
                            self.fs.rm(self.path)
        finally:
            thread_lock.release()

    def _posix_acquire(self, byte: int, *, wait: bool, what: str) -> bool:
        import fcntl

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, byte)
                return True
            except OSError:  # BlockingIOError or PermissionError: held elsewhere
                if not wait:
                    return False
                if time.monotonic() > deadline:
                    raise self._locked(what) from None
                time.sleep(0.02)

    def _exclusive_acquire(self, what: str) -> bool:
        """Create the lock object exclusively; False where the filesystem cannot."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                with self.fs.open(self.path, "xb") as handle:
                    handle.write(json.dumps(me).encode())
                return True
            except FileExistsError:
                if self._stale():
                    log.debug("removing the stale lock %s", self.key)
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm(self.path)
                    continue
            except (ValueError, NotImplementedError, TypeError):  # no exclusive create here
                log.warning(
                    "%s cannot create files exclusively: concurrent writers of the cube are "
                    "not serialised (threads of this process are)",
                    type(self.fs).__name__,
                )
                return False
            if time.monotonic() > deadline:
                raise self._locked(what)
            time.sleep(0.05)

    def _stale(self) -> bool:
        try:
            info = json.loads(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return False
        except (OSError, ValueError):  # being written right now, or unreadable
            return False
        same_host = info.get("host") == socket.gethostname()
        return bool(same_host and not _alive(int(info.get("pid", 0))))

    # per-slot claims: a process tracking a slot holds a record lock on byte 1 + slot
    def try_claim(self, index: int) -> bool:
        """Claim slot ``index`` for this process; False while another one holds it."""
        claims = self.entry[3]
        if index in claims:
            return False
        if self.posix and not self._posix_acquire(1 + index, wait=False, what=""):
            return False
        claims.add(index)
        return True

    def release(self, index: int) -> None:
        """Release the claim on slot ``index``."""
        claims = self.entry[3]
        if index not in claims:
            return
        claims.discard(index)
        if self.posix:
            import fcntl

            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, 1 + index)

    def wait_claim(self, index: int) -> None:
        """Wait until no other process claims slot ``index`` (its writer ends or dies)."""
        while not self.try_claim(index):
            time.sleep(0.1)
        self.release(index)


# ----------------------------------------------------------------------------- cube


def _store(t: _Target) -> str:
    return str(t.path) if t.path is not None else t.shown


def _group(t: _Target) -> Any:
    import zarr

    return zarr.open_group(_store(t), mode="r+", use_consolidated=False)


def _consolidate(t: _Target) -> None:
    import zarr

    zarr.consolidate_metadata(_store(t))


def _strings(values: Any) -> np.ndarray:
    """Return ``values`` (zarr's StringDType, or objects) as a numpy unicode array."""
    return np.array([str(v) for v in np.asarray(values).tolist()], dtype=str)


def _pair_arrays(group: Any) -> dict[str, Any]:
    """Return the arrays whose first axis is ``mid_date`` (they grow together)."""
    out = {}
    for name, array in group.arrays():
        dims = array.attrs.get("_ARRAY_DIMENSIONS") or []
        if dims and dims[0] == "mid_date":
            out[name] = array
    return out


def _heal(arrays: dict[str, Any]) -> int:
    """Cut the arrays back to their common length (a resize cut short); return it."""
    lengths = {name: a.shape[0] for name, a in arrays.items()}
    n = min(lengths.values())
    for name, array in arrays.items():
        if lengths[name] != n:
            log.debug("cube repair: %s had %d slots, cut to %d", name, lengths[name], n)
            array.resize((n, *array.shape[1:]))
    return n


def _cube_vars(ds: Any) -> list[str]:
    return sorted(str(name) for name, var in ds.variables.items() if tuple(var.dims) == _CUBE_DIMS)


def _slot(ds: xr.Dataset, pair: Pair, number: int) -> xr.Dataset:
    """Make the pair one ``mid_date`` slot of the cube, prepared (CF attributes, encodings)."""
    from .io.zarr import _cube_slice, prepare_dataset

    if ds.attrs.get("date_center") is None:
        raise MissingMetadataError(
            f"pair {number} ({_label(pair.reference)}, {_label(pair.secondary)}) has no "
            "acquisition dates, so its place along mid_date is unknown; give the columns "
            "reference_date and secondary_date (or dates in the tuple), or images that "
            "carry their acquisition times"
        )
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("reference_image", "secondary_image")}
    cube = prepare_dataset(_cube_slice(ds.assign_attrs(attrs, clear=True), None))
    for key in _PER_PAIR_ATTRS:
        cube.attrs.pop(key, None)
    for name in list(cube.variables):  # small: held in memory, written with the registry
        if tuple(cube[name].dims) != _CUBE_DIMS:
            cube[name] = cube[name].compute()
    names = {
        "pair_id": (pair.pair_id, "identifier of the image pair"),
        "reference_image": (_key(pair.reference), "reference (earlier) image"),
        "secondary_image": (_key(pair.secondary), "secondary (later) image"),
    }
    for name, (value, long_name) in names.items():
        cube[name] = xr.Variable(
            ("mid_date",), np.array([value], dtype=object), {"long_name": long_name}
        )
    cube["pair_complete"] = xr.Variable(
        ("mid_date",),
        np.zeros(1, np.uint8),
        {
            "long_name": "pair completely written",
            "flag_values": np.array([0, 1], np.uint8),
            "flag_meanings": "incomplete complete",
            "comment": "written last; readers keep the slots where it is 1 (open_cube)",
        },
    )
    return cube


def _encoding(slot: xr.Dataset, spatial: tuple[int, int]) -> dict[str, dict[str, Any]]:
    from .io.zarr import _TIME_ENCODING

    encoding: dict[str, dict[str, Any]] = {}
    for name, var in slot.variables.items():
        if tuple(var.dims) == _CUBE_DIMS:
            encoding[str(name)] = {"chunks": (1, *spatial)}
        elif tuple(var.dims) == ("mid_date",):
            encoding[str(name)] = {"chunks": (PAIR_CHUNK,)}
    for name in ("mid_date", *_PAIR_TIMES):
        if name in slot.variables:
            encoding[name].update(_TIME_ENCODING)
    return encoding


def _create(t: _Target, slot: xr.Dataset, options: dict[str, Any]) -> None:
    """Write the cube's structure with ``slot`` as its first (incomplete) slot; no data."""
    from .io.zarr import _mark_complete

    spatial = (min(slot.sizes["y"], SPATIAL_CHUNK), min(slot.sizes["x"], SPATIAL_CHUNK))
    struct = slot.chunk({"mid_date": 1, "y": spatial[0], "x": spatial[1]})
    for name in list(struct.variables):
        if tuple(struct[name].dims) != _CUBE_DIMS:
            struct[name] = slot[name]  # held in memory: written now
    struct.attrs = {
        **slot.attrs,
        CUBE_ATTR: _CUBE_VERSION,
        OPTIONS_ATTR: json.dumps(options, sort_keys=True),
        COMPLETE_ATTR: 0,
    }
    kwargs: dict[str, Any] = {
        "compute": False,
        "zarr_format": 2,
        "consolidated": True,
        "encoding": _encoding(struct, spatial),
    }
    if t.path is None:
        struct.to_zarr(t.shown, mode="w-", **kwargs)
        _mark_complete(t.shown)
        return
    remove_partials(t.path)
    _mkdir(t, t.path.parent)
    tmp = _new_partial(t, directory=True)
    try:
        struct.to_zarr(tmp, mode="w", **kwargs)
        _mark_complete(str(tmp))
        _check_existing(t, "zarr", "w-")  # something appeared there meanwhile: refused
        os.replace(tmp, t.path)
    except BaseException:
        _remove(tmp)
        raise


def _remove_cube(t: _Target) -> None:
    """Remove a cube trackoff_xr wrote (``mode="w"``); anything else is refused by _check."""
    if not _exists(t):
        return
    if _what(t, "zarr") is not None:  # checked before; checked again under the lock
        raise OutputExistsError(f"{t.shown!r} is not a store trackoff_xr wrote; not removed")
    if t.path is None:
        t.fs.rm(t.url_path, recursive=True)
        return
    old = _new_partial(t, directory=True, suffix=".old")
    os.replace(t.path, old / t.path.name)
    _remove(old)


def _check_cube(t: _Target, group: Any, options: dict[str, Any]) -> None:
    attrs = dict(group.attrs)
    if CUBE_ATTR not in attrs:
        raise OutputExistsError(
            f"{t.shown!r} is a store trackoff_xr wrote, but not a cube of track_pairs (a single "
            "pair, or an append_pair cube); pass mode='w' to replace it, or choose another path"
        )
    theirs = json.loads(attrs.get(OPTIONS_ATTR, "{}"))
    if theirs != json.loads(json.dumps(options, sort_keys=True)):
        differ = sorted(k for k in set(theirs) | set(options) if theirs.get(k) != options.get(k))
        shown = ", ".join(f"{k}={theirs.get(k)!r} (now {options.get(k)!r})" for k in differ)
        raise InvalidParameterError(
            f"the cube {t.shown!r} was tracked with other options: {shown}; every pair of a "
            "cube is tracked alike: use the cube's options, or write a new cube (or mode='w')"
        )


def _check_grid(t: _Target, group: Any, slot: xr.Dataset) -> None:
    for dim in ("y", "x"):
        a, b = np.asarray(group[dim][:]), slot[dim].values
        if a.shape != b.shape or not np.allclose(
            a, b, rtol=0, atol=1e-9 * max(1.0, float(np.abs(a).max(initial=0)))
        ):
            raise GridMismatchError(
                f"the pair's {dim!r} coordinates ({b.size} points from {b[0]!r}) differ from "
                f"the cube {t.shown!r} ({a.size} points from {a[0]!r}); give pairs on one grid "
                "(same size, CRS and transform), or start a new cube"
            )
    wkt_cube = crs_wkt(group["spatial_ref"].attrs) if "spatial_ref" in group else None
    wkt_pair = crs_wkt(slot)
    if wkt_cube != wkt_pair:
        raise GridMismatchError(
            f"the pair's CRS differs from the cube {t.shown!r}'s; reproject its images onto "
            "the cube's CRS, or start a new cube"
        )
    have, want = sorted(n for n in _pair_arrays(group) if group[n].ndim == 3), _cube_vars(slot)
    if have != want:
        raise InvalidParameterError(
            f"the pair has the variables {want} but the cube {t.shown!r} has {have}; every pair "
            "needs the same: give all pairs dates and pixel sizes (or none), or days=/pixel_size="
        )


def _encoded(slot: xr.Dataset) -> dict[str, Any]:
    """Return the per-pair values of ``slot`` as stored (times in microseconds since 1970)."""
    values: dict[str, Any] = {}
    for name, var in slot.variables.items():
        if tuple(var.dims) != ("mid_date",) or name == "pair_complete":
            continue
        value = var.values[0]
        if np.issubdtype(var.dtype, np.datetime64):
            value = int(np.datetime64(value, "us").astype(np.int64))
        values[str(name)] = value
    return values


@dataclass
class _Registered:
    status: str  # "new": slot reserved and claimed; "skipped": complete; "busy": claimed elsewhere
    index: int = -1


def _lookup(t: _Target, pair_id: str, lock: _CubeLock) -> _Registered | None:
    """Whether ``pair_id`` is complete (skipped) or being tracked (busy); None: track it."""
    if not _exists(t):
        return None
    group = _group(t)
    if CUBE_ATTR not in group.attrs or "pair_id" not in group:
        return None  # _register says why
    arrays = _pair_arrays(group)
    n = min(a.shape[0] for a in arrays.values())
    ids = _strings(group["pair_id"][:n])
    complete = np.asarray(group["pair_complete"][:n])
    hits = np.flatnonzero(ids == pair_id)
    if hits.size and (complete[hits] == 1).any():
        return _Registered("skipped", int(hits[complete[hits] == 1][0]))
    if hits.size:
        if not lock.try_claim(int(hits[0])):
            return _Registered("busy", int(hits[0]))
        lock.release(int(hits[0]))
    return None


def _register(
    t: _Target, slot: xr.Dataset, options: dict[str, Any], lock: _CubeLock
) -> _Registered:
    """Reserve (and claim) the pair's slot, creating or repairing the cube; under the mutex."""
    pair_id = str(slot["pair_id"].values[0])
    if _exists(t):
        group = _group(t)
        if CUBE_ATTR in group.attrs and not _is_complete(group.attrs.get(COMPLETE_ATTR)):
            if t.path is not None:  # local cubes appear complete or not at all
                raise IncompleteStoreError(f"{t.shown!r} is an incomplete cube; remove it")
            log.debug("the creation of %s was interrupted: written again", t.shown)
            t.fs.rm(t.url_path, recursive=True)
    if not _exists(t):
        lock.try_claim(0)
        try:
            _create(t, slot, options)
        except BaseException:
            lock.release(0)
            raise
        return _Registered("new", 0)
    group = _group(t)
    _check_cube(t, group, options)
    _check_grid(t, group, slot)
    arrays = _pair_arrays(group)
    n = _heal(arrays)
    ids = _strings(group["pair_id"][:n]) if n else np.array([], str)
    complete = np.asarray(group["pair_complete"][:n]) if n else np.array([], np.uint8)
    hits = np.flatnonzero(ids == pair_id)
    if hits.size and (complete[hits] == 1).any():
        return _Registered("skipped", int(hits[complete[hits] == 1][0]))
    empty = np.flatnonzero(ids == "")
    index = int(hits[0]) if hits.size else int(empty[0]) if empty.size else n
    if not lock.try_claim(index):
        return _Registered("busy", index)
    try:
        if index == n:
            for array in arrays.values():
                array.resize((n + 1, *array.shape[1:]))
        group["pair_complete"][index] = 0  # first: the slot is incomplete from now on
        values = _encoded(slot)
        for name, value in values.items():
            if name != "pair_id":
                group[name][index] = value
        group["pair_id"][index] = values["pair_id"]  # last: the slot is this pair's
        _consolidate(t)
    except BaseException:
        lock.release(index)
        raise
    return _Registered("new", index)


def _write_data(t: _Target, slot: xr.Dataset, index: int) -> Any:
    """Return the delayed write of the pair's ``(mid_date, y, x)`` data into slot ``index``."""
    group = _group(t)
    names = _cube_vars(slot)
    data = slot[names]
    data = data.drop_vars(list(data.coords))
    chunks = group[names[0]].chunks
    data = data.chunk({"mid_date": 1, "y": chunks[1], "x": chunks[2]})
    for var in data.variables.values():
        var.encoding = {}
    return data.to_zarr(
        _store(t),
        region={"mid_date": slice(index, index + 1)},
        compute=False,
        consolidated=False,  # the registry's writers consolidate, under the lock
        zarr_format=2,
    )


def _mark_pair(t: _Target, index: int, pair_id: str) -> None:
    group = _group(t)
    found = str(_strings(group["pair_id"][index : index + 1])[0])
    if found != pair_id:
        raise IncompleteStoreError(
            f"slot {index} of the cube {t.shown!r} was taken by {found!r} while {pair_id!r} was "
            "written (the cube was replaced meanwhile?); run again to add the pair"
        )
    group["pair_complete"][index] = 1


def open_cube(store: Any, *, complete: bool = True, **kwargs: Any) -> xr.Dataset:
    """Open a cube of :func:`track_pairs`: its complete pairs, by ``mid_date`` then ``pair_id``.

    Parameters
    ----------
    store : str or path-like
        Local directory or fsspec URL of the cube.
    complete : bool, default True
        Keep only the pairs completely written (``pair_complete == 1``);
        ``False`` returns every slot, in the order they were taken.
    **kwargs
        Passed to :func:`trackoff_xr.io.open_zarr`.

    Raises
    ------
    InvalidParameterError
        ``store`` is a store trackoff_xr wrote, but not a cube of
        :func:`track_pairs` (open it with :func:`trackoff_xr.open_zarr`).
    IncompleteStoreError, ImageReadError
        As :func:`trackoff_xr.open_zarr`.
    """
    from .io.zarr import open_zarr

    ds = open_zarr(store, **kwargs)
    if CUBE_ATTR not in ds.attrs or "pair_id" not in ds:
        raise InvalidParameterError(
            f"{os.fspath(store)!r} is not a cube of track_pairs (no {CUBE_ATTR} attribute); "
            "open it with trackoff_xr.open_zarr"
        )
    if not complete:
        return ds
    keep = np.flatnonzero(np.asarray(ds["pair_complete"].values) == 1)
    ds = ds.isel(mid_date=keep)
    ids = _strings(ds["pair_id"].values)
    order = np.lexsort((ids, np.asarray(ds["mid_date"].values)))
    return ds.isel(mid_date=order)


# ----------------------------------------------------------------------------- tracking


@dataclass(frozen=True)
class PairEvent:
    """What :func:`track_pairs` tells its ``progress`` callback after each pair."""

    number: int  # 1-based position in the pairs given
    total: int
    pair_id: str
    status: str  # "done" (tracked and written), "skipped" (already complete)
    seconds: float
    slot: int  # its index along mid_date in the cube (processing order)


@dataclass
class StackReport:
    """The outcome of :func:`track_pairs`: the pair ids tracked now and those skipped."""

    store: str
    processed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _image(item: Any, date: Any, chunks: Any) -> xr.DataArray:
    from .io.raster import open_image

    if isinstance(item, xr.DataArray):
        image = item if item.chunks is not None else item.chunk(chunks)
        if date is not None:
            image = image.assign_attrs(acquisition_start=iso_date(_date(date), unit="us"))
        return image
    return open_image(item, chunks=chunks, date=None if date is None else _date(date))


def _date(value: Any) -> Any:
    if hasattr(value, "to_datetime64"):  # pandas.Timestamp
        value = value.tz_convert(None) if getattr(value, "tzinfo", None) else value
        return value.to_datetime64()
    return value


def _downloaded(pair: Pair, fetch: dict[str, Any]) -> Pair:
    """Download the pair's two scenes (skipped when complete); return it with their paths."""
    import pandas as pd

    from .io import asf

    download_dir = fetch["download_dir"]
    if download_dir is None:
        raise InvalidParameterError(
            "the pairs come from find_pairs (scenes to download); pass download_dir= (a "
            "folder for the scenes) and Earthdata credentials (token= or EARTHDATA_TOKEN)"
        )
    paths = asf.download(
        pd.DataFrame([pair.scenes]), download_dir, token=fetch["token"], session=fetch["session"]
    )
    ref, sec = (paths * 2)[:2] if len(paths) == 1 else paths[:2]
    return Pair(str(ref), str(sec), pair.reference_date, pair.secondary_date, pair.pair_id)


def _track_one(pair: Pair, settings: dict[str, Any]) -> xr.Dataset:
    """Build the lazy offsets (velocity, filtered) of one pair, as ``trackoff run`` does."""
    from .postprocess.filters import filter_offsets
    from .postprocess.velocity import velocity
    from .tracking import offsets

    ref = _image(pair.reference, pair.reference_date, settings["chunks"])
    sec = _image(pair.secondary, pair.secondary_date, settings["chunks"])
    ds = offsets(
        ref,
        sec,
        patch_size=settings["patch_size"],
        spacing=settings["spacing"],
        search_radius=settings["search_radius"],
        method=settings["method"],
        **settings["offsets_options"],
    )
    days, pixel_size = settings["days"], settings["pixel_size"]
    try:
        ds = velocity(ds, days=days, pixel_size=pixel_size)
    except MissingMetadataError:
        if days is not None or pixel_size is not None:
            raise  # velocities were asked for: say what is missing
    if settings["apply_filter"]:
        ds = filter_offsets(ds)
    return ds


def _compute(delayed: Any, scheduler: Any) -> None:
    if scheduler is None:
        delayed.compute()
    elif hasattr(scheduler, "submit") and hasattr(scheduler, "compute"):  # distributed.Client
        scheduler.compute(delayed).result()
    else:
        delayed.compute(scheduler=scheduler)


def _check_modes(mode: Any) -> str:
    if mode not in ("a", "w", "w-"):
        raise InvalidParameterError(
            f"mode={mode!r} is not supported; use mode='a' (add to or resume a cube), "
            "mode='w' (replace a cube trackoff_xr wrote) or mode='w-' (refuse any existing "
            "store)"
        )
    return str(mode)


def track_pairs(
    pairs: Any,
    store: Any,
    *,
    patch_size: int = 64,
    spacing: int = 32,
    search_radius: int | None = None,
    method: str = "cnn",
    days: float | None = None,
    pixel_size: float | tuple[float, float] | None = None,
    apply_filter: bool = True,
    chunks: Any = 2048,
    mode: str = "a",
    scheduler: Any = None,
    progress: Callable[[PairEvent], Any] | None = None,
    download_dir: Any = None,
    token: str | None = None,
    session: Any = None,
    protect: Any = (),
    lock_timeout: float = 600.0,
    **offsets_options: Any,
) -> StackReport:
    """Track many pairs into one Zarr cube along ``mid_date``, resumably.

    Each pair is tracked as ``trackoff run`` does (:func:`~trackoff_xr.offsets`,
    :func:`~trackoff_xr.velocity` where pixel size and dates are known, then
    :func:`~trackoff_xr.filter_offsets`) and written as its own slot; the
    pairs already complete in the cube are skipped, so a rerun after an
    interruption, or with more pairs, tracks only the missing ones. See
    :mod:`trackoff_xr.stacks` for the layout, order and locking.

    Parameters
    ----------
    pairs : str, path-like, pandas.DataFrame or iterable
        See :func:`read_pairs`: a CSV or DataFrame with ``reference``,
        ``secondary`` (and optionally ``reference_date``,
        ``secondary_date``, ``pair_id``), the DataFrame of
        :func:`trackoff_xr.io.asf.find_pairs` (with ``download_dir``), or
        ``(reference, secondary[, dates])`` tuples of paths or DataArrays.
        Every pair needs acquisition dates (columns, tuple, or the images'
        own metadata) and the same grid.
    store : str or path-like
        Local directory or fsspec URL of the cube.
    patch_size, spacing, search_radius, method, **offsets_options
        As :func:`trackoff_xr.offsets`; recorded in the cube, which refuses
        pairs tracked otherwise.
    days, pixel_size : optional
        As :func:`trackoff_xr.velocity`, for every pair (default: each pair's
        dates, and the images' pixel size).
    apply_filter : bool, default True
        Apply :func:`~trackoff_xr.filter_offsets` to each pair.
    chunks : int or tuple, default 2048
        Dask chunks for reading the images, pixels.
    mode : {"a", "w", "w-"}, default "a"
        ``"a"`` creates the cube or adds to it (resuming); ``"w"`` first
        removes a cube trackoff_xr wrote, then builds it again (an
        interrupted rebuild is resumed with ``"a"``); ``"w-"`` refuses any
        existing store. A folder or file trackoff_xr did not write is never
        touched.
    scheduler : str, callable or distributed.Client, optional
        Where the pixels are computed: ``"threads"``, ``"processes"``,
        ``"synchronous"``, a ``get`` function, or a ``distributed.Client``
        (a cluster: the cube must be reachable from its workers). Default:
        dask's current scheduler.
    progress : callable, optional
        Called with a :class:`PairEvent` after each pair.
    download_dir, token, session : optional
        For a :func:`~trackoff_xr.io.asf.find_pairs` table: the folder for
        the scenes and the Earthdata credentials of
        :func:`trackoff_xr.io.asf.download`. Scenes of pairs already in the
        cube are not downloaded.
    protect : iterable of path-like
        More paths the cube must not be, nor hold (the images always are).
    lock_timeout : float, default 600
        Seconds to wait for another writer's registry update before raising
        :class:`~trackoff_xr.exceptions.CubeLockedError`.

    Returns
    -------
    StackReport
        The ``pair_id`` of the pairs tracked now and of those skipped.

    Raises
    ------
    ProtectedOutputError, OutputExistsError, OutputLocationError
        As :func:`trackoff_xr.io.check_output`, before anything is computed;
        ``OutputExistsError`` also for a store of trackoff_xr that is no cube
        (unless ``mode="w"``).
    MissingMetadataError
        A pair without acquisition dates.
    GridMismatchError
        A pair on another grid than the cube.
    InvalidParameterError
        Options other than the cube's, or bad ``pairs``.
    CubeLockedError
        Another writer held the lock longer than ``lock_timeout``.
    """
    mode = _check_modes(mode)
    items = read_pairs(pairs)
    paths = [
        p
        for pair in items
        if pair.scenes is None  # scenes to download are names, not paths
        for p in (pair.reference, pair.secondary)
        if isinstance(p, str)
    ]
    extra = _protected(protect)
    protected = _protected(paths + ([download_dir] if download_dir is not None else [])) + extra
    t = _check(
        store,
        kind="zarr",
        mode="w-" if mode == "w-" else "w",
        protected=protected,
        append=mode == "a",
    )
    settings = {
        "patch_size": int(patch_size),
        "spacing": int(spacing),
        "search_radius": None if search_radius is None else int(search_radius),
        "method": str(method),
        "days": days,
        "pixel_size": pixel_size,
        "apply_filter": bool(apply_filter),
        "chunks": chunks,
        "offsets_options": dict(offsets_options),
    }
    options = {k: v for k, v in settings.items() if k not in ("chunks",)}
    options = json.loads(json.dumps(options, default=str))
    fetch = {"download_dir": download_dir, "token": token, "session": session}
    report = StackReport(store=_store(t) if t.path is None else t.absolute)
    seen: set[str] = set()
    with _CubeLock(t, lock_timeout) as lock:
        with lock.mutex("checking the cube"):
            if mode == "w":
                _remove_cube(t)
            elif _exists(t):
                _check_cube(t, _group(t), options)
        pending = list(enumerate(items, start=1))
        while pending:
            deferred = []
            for number, pair in pending:
                started = time.perf_counter()
                if pair.pair_id in seen:
                    outcome = _Registered("skipped")
                else:
                    outcome = _process(t, pair, number, settings, options, fetch, lock, scheduler)
                if outcome.status == "busy":
                    deferred.append((number, pair, outcome.index))
                    continue
                seen.add(pair.pair_id)
                (report.processed if outcome.status == "new" else report.skipped).append(
                    pair.pair_id
                )
                if progress is not None:
                    progress(
                        PairEvent(
                            number,
                            len(items),
                            pair.pair_id,
                            "done" if outcome.status == "new" else "skipped",
                            time.perf_counter() - started,
                            outcome.index,
                        )
                    )
            for _, _, index in deferred:  # tracked by another writer: wait for it
                lock.wait_claim(index)
            pending = [(number, pair) for number, pair, _ in deferred]
    return report


def _process(
    t: _Target,
    pair: Pair,
    number: int,
    settings: dict[str, Any],
    options: dict[str, Any],
    fetch: dict[str, Any],
    lock: _CubeLock,
    scheduler: Any,
) -> _Registered:
    with lock.mutex():
        known = _lookup(t, pair.pair_id, lock)
    if known is not None:
        return known
    if pair.scenes is not None:
        pair = _downloaded(pair, fetch)
    slot = _slot(_track_one(pair, settings), pair, number)
    with lock.mutex():
        outcome = _register(t, slot, options, lock)
    if outcome.status != "new":
        return outcome
    try:
        _compute(_write_data(t, slot, outcome.index), scheduler)
        with lock.mutex("marking a pair complete"):
            _mark_pair(t, outcome.index, pair.pair_id)
    finally:
        lock.release(outcome.index)
    log.debug("pair %s written into slot %d of %s", pair.pair_id, outcome.index, t.shown)
    return outcome
