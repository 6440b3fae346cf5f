"""Writing offsets and velocities: Zarr (ITS_LIVE-style), GeoTIFF/COG and TrackOff CSV.

* :func:`to_zarr` writes one pair to a Zarr store (a local directory or any
  fsspec URL: ``s3://``, ``gs://``, ``memory://``, ...) with CF-1.8 and
  ITS_LIVE-compatible names: ``vx``, ``vy``, ``v`` in ``meter/year`` with
  their standard names, ``grid_mapping``, ``date_center``, ``date_dt``,
  ``acquisition_date_img1``/``acquisition_date_img2``, the processing
  parameters and the software version.
* :func:`append_pair` stacks pairs into one store along ``mid_date``, as the
  ITS_LIVE data cubes do.
* :func:`open_zarr` opens a store written here and refuses one whose write
  did not finish.
* :func:`to_geotiff` writes one Cloud Optimized GeoTIFF per variable, and
  :func:`to_csv` the point table of the original TrackOff scripts.

Outputs never destroy anything
------------------------------
Every writer follows one rule, checked by :func:`check_output` before anything
is computed: it replaces only what trackoff_xr itself wrote, and only when
asked (``mode="w"``). ``mode="w-"`` (the default) refuses any existing target.
Whatever the mode, a writer never replaces

* a plain folder or a file trackoff_xr did not write. Ours are: a Zarr store
  whose root attributes hold ``trackoff_write_complete`` (complete or
  interrupted), a CSV whose header is exactly :data:`CSV_COLUMNS`, a GeoTIFF
  carrying the ``TRACKOFF_XR_WRITER`` tag, a PNG figure whose ``Software``
  text names trackoff_xr (:func:`save_figure`), a search table whose header
  is one of :data:`TABLE_COLUMNS` (:func:`write_table`), CNN weights whose
  JSON holds ``"software": "trackoff_xr"`` (:func:`save_weights`);
* a path passed in ``protect`` (the run's inputs, and the
  ``reference_image``/``secondary_image`` attributes of the Dataset), nor a
  folder holding one, compared after resolving symbolic links and relative
  paths.

Local outputs are written to a hidden sibling ``.<name>.<pid>.<random>.partial``
and renamed into place only once complete, so an interrupted write never leaves
anything that looks complete; the partial is removed on any exception
(``KeyboardInterrupt`` included), and the next write to the same target removes
partials left by processes that no longer run (:func:`remove_partials`). Every
store gets ``trackoff_write_complete = 1`` last, and :func:`open_zarr` checks
it. Stores are Zarr format 2 with consolidated metadata, readable by
zarr-python 2 and 3 and by ``xr.open_zarr``; their attributes can be written to
netCDF as they are.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .exceptions import (  # noqa: F401
    GridMismatchError,
    IncompleteStoreError,
    InvalidParameterError,
    OutputExistsError,
    OutputLocationError,
    ProtectedOutputError,
    TrackOffError,
)

__all__ = [
    "COMPLETE_ATTR",
    "CSV_COLUMNS",
    "SOFTWARE",
    "TABLE_COLUMNS",
    "TIFF_TAG",
    "IncompleteStoreError",
    "OutputExistsError",
    "append_pair",
    "check_output",
    "open_zarr",
    "prepare_dataset",
    "remove_partials",
    "save_figure",
    "save_weights",
    "to_csv",
    "to_geotiff",
    "to_zarr",
    "weights_json",
    "write_table",
    "write_weights_meta",
]

COMPLETE_ATTR = "trackoff_write_complete"
CSV_COLUMNS = ("no", "x", "y", "dX", "dY", "dX_m", "dY_m", "dmax", "dmax_m", "vel", "probab")
TIFF_TAG = "TRACKOFF_XR_WRITER"
#: marks the PNGs (``Software`` text chunk) and weights JSONs (``software`` key) written here
SOFTWARE = "trackoff_xr"
#: the tables ``trackoff s1 search --out`` writes: a CSV with one of these headers is ours
TABLE_COLUMNS = {
    "s1_scenes": (
        "scene", "start", "stop", "relative_orbit", "frame", "flight_direction",
        "polarization", "platform", "url", "file_name", "bytes", "md5sum", "geometry",
    ),
    "s1_pairs": (
        "reference", "secondary", "ref_start", "sec_start", "days", "gap", "relative_orbit",
        "frame", "flight_direction", "ref_url", "sec_url", "ref_file_name", "sec_file_name",
        "ref_bytes", "sec_bytes", "ref_md5sum", "sec_md5sum",
    ),
}  # fmt: skip

_CSV_HEADER = ",".join(CSV_COLUMNS)
_HEADERS = {
    "csv": frozenset({_CSV_HEADER}),
    "table": frozenset(",".join(c) for c in TABLE_COLUMNS.values()),
}
_KINDS = ("zarr", "csv", "geotiff", "figure", "table", "weights")
#: kinds written by libraries that write local files only (GDAL, matplotlib, Keras)
_LOCAL_ONLY = {
    "geotiff": "to_geotiff cannot write to the URL {shown!r}: GDAL writes GeoTIFFs to local "
    "files; write to a local folder, then upload it",
    "figure": "cannot save a figure to the URL {shown!r}: figures are written to local "
    "files; save it to a local path, then upload it",
    "weights": "cannot save weights to the URL {shown!r}: Keras writes weights to local "
    "files; write them to a local folder, then upload them",
}
_WEIGHTS_SUFFIX = ".weights.h5"
_MODES = ("w-", "w")
_PARTIAL_SUFFIXES = (".partial", ".old")
_PARTIAL_MIDDLE = re.compile(r"(\d+)\.([A-Za-z0-9_]+)")
_INPUT_ATTRS = ("reference_image", "secondary_image")
_DEFAULT_CHUNK = 512
_TIME_ENCODING = {"units": "microseconds since 1970-01-01", "dtype": "int64"}
# per-pair attributes that become variables along mid_date in a cube
_PAIR_TIMES = ("acquisition_date_img1", "acquisition_date_img2")


# -- targets: local paths and fsspec URLs -------------------------------------


@dataclass(frozen=True)
class _Target:
    """An output location: a resolved local path, or a path on an fsspec filesystem."""

    shown: str
    path: Path | None = None
    absolute: str = ""
    fs: Any = None
    url_path: str = ""

    @property
    def local(self) -> bool:
        return self.path is not None

    def key(self) -> str:
        """Return a comparable form: the resolved path, or the URL with its protocol."""
        if self.path is not None:
            return str(self.path)
        return str(self.fs.unstrip_protocol(self.url_path)) if self.fs is not None else self.shown

    def child(self, name: str) -> _Target:
        """Return the target ``<self>/<name>`` (local folders only)."""
        assert self.path is not None
        return _Target(
            os.path.join(self.shown, name), self.path / name, os.path.join(self.absolute, name)
        )


def _text(target: Any) -> str:
    if not isinstance(target, (str, os.PathLike)):
        raise OutputLocationError(
            f"the output {target!r} is not a path or URL; pass a local path or an fsspec URL "
            "string such as 's3://bucket/pair.zarr'"
        )
    text = os.fsdecode(os.fspath(target))
    if not text:
        raise OutputLocationError("the output path is empty; pass a file or folder path")
    return text


def _is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def _local_target(shown: str, text: str) -> _Target:
    try:
        resolved = Path(text).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise OutputLocationError(
            f"cannot resolve the output path {shown!r} ({exc}); choose another path"
        ) from exc
    return _Target(shown, resolved, os.path.abspath(text))


def _parse(target: Any) -> _Target:
    """Parse ``target`` into a local or fsspec :class:`_Target`, refusing unusable URLs."""
    text = _text(target)
    if not _is_url(text):
        return _local_target(text, text[len("file://") :] if text.startswith("file://") else text)
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as exc:
        raise OutputLocationError(
            f"cannot write to {text!r} ({exc}); install the fsspec backend of that protocol "
            "(e.g. s3fs for s3://, gcsfs for gs://) or write to a local path"
        ) from exc
    if "file" in np.atleast_1d(fs.protocol):
        return _local_target(text, path)
    return _Target(text, fs=fs, url_path=str(path).rstrip("/"))


def _protected(protect: Any, ds: xr.Dataset | None = None) -> tuple[_Target, ...]:
    """Targets that must never be written: ``protect`` plus the inputs named in ``ds.attrs``."""
    if protect is None:
        items: list[Any] = []
    elif isinstance(protect, (str, os.PathLike)):
        items = [protect]
    else:
        items = list(protect)
    if ds is not None:
        items += [ds.attrs[k] for k in _INPUT_ATTRS if isinstance(ds.attrs.get(k), str)]
    out = []
    for item in items:
        try:
            out.append(_parse(item))
        except OutputLocationError:
            out.append(_Target(os.fsdecode(os.fspath(item))))  # compared as text only
    return tuple(out)


# -- ownership: what trackoff_xr wrote ------------------------------------------


def _is_complete(value: Any) -> bool:
    """Whether a completion marker value says complete (``1``, ``"true"``, or the old ``True``)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value) == 1
    return isinstance(value, str) and value.lower() == "true"


def _zarr_root_attrs(read: Any) -> dict[str, Any] | None:
    """Root attributes of a Zarr store, read with ``read(name) -> bytes`` (None if not Zarr)."""
    for name in (".zattrs", "zarr.json", ".zmetadata"):
        try:
            meta = json.loads(read(name))
        except (OSError, ValueError, KeyError):
            continue
        if not isinstance(meta, dict):
            continue
        if name == ".zattrs":
            return meta
        if name == "zarr.json":
            return meta.get("attributes", {}) if meta.get("node_type") == "group" else None
        return meta.get("metadata", {}).get(".zattrs")
    return None


def _local_reader(path: Path) -> Any:
    return lambda name: (path / name).read_bytes()


def _first_line(raw: bytes) -> str:
    try:
        return raw.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        return ""


def _tiff_is_ours(path: Path) -> bool:
    import rasterio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                return TIFF_TAG in src.tags()
    except Exception:  # not a raster GDAL can read: not ours
        return False


def _png_is_ours(path: Path) -> bool:
    """Whether ``path`` is a PNG whose ``Software`` text chunk names trackoff_xr."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                if image.format != "PNG":
                    return False
                text = dict(getattr(image, "text", None) or image.info)
    except Exception:  # not an image PIL can read: not ours
        return False
    software = str(text.get("Software", ""))
    return software == SOFTWARE or software.startswith(f"{SOFTWARE} ")


def _json_is_ours(path: Path) -> bool:
    """Whether ``path`` is a weights JSON whose ``software`` key names trackoff_xr."""
    try:
        meta = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("software") == SOFTWARE


def weights_json(weights: str | os.PathLike[str]) -> Path:
    """Return the JSON beside a ``<name>.weights.h5`` file: ``<name>.json``.

    Raises
    ------
    InvalidParameterError
        ``weights`` does not end with ``.weights.h5`` (Keras needs that ending).

    Examples
    --------
    >>> weights_json("out/trackoff_cnn_v1.weights.h5").name
    'trackoff_cnn_v1.json'
    """
    path = Path(os.fspath(weights))
    if not path.name.endswith(_WEIGHTS_SUFFIX) or path.name == _WEIGHTS_SUFFIX:
        raise InvalidParameterError(
            f"the weights file {os.fspath(weights)!r} does not end with {_WEIGHTS_SUFFIX!r}; "
            f"name it <name>{_WEIGHTS_SUFFIX}"
        )
    return path.with_name(path.name[: -len(_WEIGHTS_SUFFIX)] + ".json")


def _file_is_ours(path: Path, kind: str) -> str | None:
    """Describe the existing file ``path`` when trackoff_xr did not write it; None when ours."""
    not_ours = "a file that trackoff_xr did not write"
    if kind in _HEADERS:
        with open(path, "rb") as handle:
            header = _first_line(handle.read(4096))
        if header in _HEADERS[kind]:
            return None
        what = "the trackoff_xr CSV header" if kind == "csv" else "a trackoff_xr table header"
        return f"{not_ours} (its first line is not {what})"
    if kind == "geotiff":
        if _tiff_is_ours(path):
            return None
        return f"{not_ours} (not a trackoff_xr GeoTIFF: no {TIFF_TAG} tag)"
    if kind == "figure":
        if _png_is_ours(path):
            return None
        return f"{not_ours} (not a PNG whose Software text names {SOFTWARE})"
    if kind == "weights":
        json_path = path if path.name.endswith(".json") else weights_json(path)
        if json_path.is_file() and _json_is_ours(json_path):
            return None
        return f'{not_ours} (no {json_path.name} beside it with "software": "{SOFTWARE}")'
    return not_ours


def _exists(t: _Target) -> bool:
    if t.path is not None:
        return os.path.lexists(t.path)
    return bool(t.fs.exists(t.url_path))


def _what(t: _Target, kind: str) -> str | None:
    """Describe an existing target trackoff_xr did not write; None when it is ours."""
    not_ours = "that trackoff_xr did not write"
    if t.path is not None:
        isdir = t.path.is_dir()
        if kind == "zarr" and isdir:
            attrs = _zarr_root_attrs(_local_reader(t.path))
            if attrs is not None and COMPLETE_ATTR in attrs:
                return None
            return f"a folder {not_ours} (it has no {COMPLETE_ATTR} attribute)"
        if kind != "zarr" and t.path.is_file():
            return _file_is_ours(t.path, kind)
        return f"{'a folder' if isdir else 'a file'} {not_ours}"
    fs, path = t.fs, t.url_path
    if kind == "zarr":
        attrs = _zarr_root_attrs(lambda name: fs.cat_file(f"{path}/{name}"))
        if attrs is not None and COMPLETE_ATTR in attrs:
            return None
        return f"an object or folder {not_ours} (no Zarr store with a {COMPLETE_ATTR} attribute)"
    if fs.isdir(path):
        return f"a folder {not_ours}"
    with fs.open(path, "rb") as handle:
        header = _first_line(handle.read(4096))
    if header in _HEADERS.get(kind, frozenset({_CSV_HEADER})):
        return None
    what = "the trackoff_xr CSV header" if kind == "csv" else "a trackoff_xr table header"
    return f"a file {not_ours} (its first line is not {what})"


# -- the checks ---------------------------------------------------------------------


def _check_mode(mode: Any) -> None:
    if mode not in _MODES:
        raise InvalidParameterError(
            f"mode={mode!r} is not supported; use mode='w-' (refuse any existing output) or "
            "mode='w' (replace an output trackoff_xr wrote); to add pairs to a cube use "
            "append_pair()"
        )


def _same_file(a: _Target, b: _Target) -> bool:
    """Whether two existing local targets are the same file (hard links, bind mounts)."""
    if a.path is None or b.path is None:
        return False
    try:
        return os.path.samefile(a.path, b.path)
    except OSError:  # one of them does not exist
        return False


def _check_protect(t: _Target, protected: Iterable[_Target], *, container: bool) -> None:
    for p in protected:
        if p.key() == t.key() or _same_file(p, t):
            raise ProtectedOutputError(
                f"the output {t.shown!r} is an input of this run ({p.shown}); it is never "
                "replaced: choose another output path"
            )
        inside = (
            t.path in p.path.parents
            if t.path is not None and p.path is not None
            else p.key().startswith(t.key().rstrip("/") + "/")
        )
        if container and inside:
            raise ProtectedOutputError(
                f"the output {t.shown!r} is a folder holding the input {p.shown}; it is never "
                "replaced: choose another output path (e.g. a new folder)"
            )


def _check_location(t: _Target, *, folder: bool = False) -> None:
    """Refuse a local target whose folder is a file or read-only (``folder``: t is the folder)."""
    assert t.path is not None
    place = t.path if folder else t.path.parent
    while not os.path.lexists(place) and place != place.parent:
        place = place.parent
    if not place.is_dir():
        what = "the output" if place == t.path else f"{place}, a folder on its path,"
        raise OutputLocationError(
            f"cannot write {t.shown!r}: {what} is a file, not a folder; choose an output "
            "path inside a folder"
        )
    if not os.access(place, os.W_OK | os.X_OK):
        raise OutputLocationError(
            f"cannot write {t.shown!r}: the folder {place} is read-only; choose a folder you "
            "can write to"
        )


def _check_existing(t: _Target, kind: str, mode: str, *, append: bool = False) -> None:
    """Refuse an existing target that is not ours, or that is ours and ``mode="w-"``."""
    if not _exists(t):
        return
    what = _what(t, kind)
    if what is not None:
        raise ProtectedOutputError(
            f"the output {t.shown!r} already exists and is {what}; it is never replaced, "
            "whatever the mode: choose another path"
        )
    if mode == "w-" and not append:
        raise OutputExistsError(
            f"the output {t.shown!r} already exists (written by trackoff_xr); pass mode='w' "
            "to replace it or choose another path"
        )


def _check(
    target: Any,
    *,
    kind: str,
    mode: str,
    protected: tuple[_Target, ...],
    variables: Iterable[str] = ("vx", "vy", "v"),
    append: bool = False,
) -> _Target:
    """Every check a writer makes before computing; returns the parsed target."""
    _check_mode(mode)
    if kind not in _KINDS:
        raise InvalidParameterError(f"kind={kind!r} is not one of {_KINDS}; pass one of them")
    t = _parse(target)
    if kind in _LOCAL_ONLY and not t.local:
        raise OutputLocationError(_LOCAL_ONLY[kind].format(shown=t.shown))
    if kind in ("figure", "weights"):
        _check_protect(t, protected, container=False)
        _check_location(t)
        if kind == "weights":
            meta = _Target(
                str(weights_json(t.shown)), weights_json(t.path), str(weights_json(t.absolute))
            )
            _check_protect(meta, protected, container=False)
            _check_existing(t, kind, mode)
            _check_existing(meta, kind, mode)
            return t
        _check_existing(t, kind, mode)
        return t
    if kind == "geotiff":
        _check_protect(t, protected, container=False)
        _check_location(t, folder=True)
        for name in _names(variables):
            file = t.child(f"{name}.tif")
            _check_protect(file, protected, container=False)
            _check_existing(file, kind, mode)
        return t
    _check_protect(t, protected, container=kind == "zarr")
    if t.local:
        _check_location(t)
        _check_existing(t, kind, mode, append=append)
        return t
    try:
        _check_existing(t, kind, mode, append=append)
    except TrackOffError:
        raise
    except Exception as exc:  # fsspec backends raise their own errors (credentials, network)
        raise OutputLocationError(
            f"cannot check the output {t.shown!r} ({type(exc).__name__}: {exc}); check the URL "
            "and your credentials, or write to a local path"
        ) from exc
    return t


def check_output(
    target: Any,
    *,
    kind: str,
    mode: str = "w-",
    protect: Any = (),
    variables: Iterable[str] = ("vx", "vy", "v"),
) -> None:
    """Make every check a writer makes, before anything is computed.

    Parameters
    ----------
    target : str or path-like
        The store (``kind="zarr"``), file (``"csv"``, ``"table"``,
        ``"figure"``), folder (``"geotiff"``) or ``<name>.weights.h5`` file
        (``"weights"``, checked together with its ``<name>.json``) to be
        written: a local path, or an fsspec URL for ``"zarr"``, ``"csv"`` and
        ``"table"``.
    kind : {"zarr", "csv", "geotiff", "figure", "table", "weights"}
        The writer: :func:`to_zarr`/:func:`append_pair`, :func:`to_csv`,
        :func:`to_geotiff`, :func:`save_figure` (ours: a PNG whose
        ``Software`` text starts with ``trackoff_xr``), :func:`write_table`
        (ours: a CSV whose header is one of :data:`TABLE_COLUMNS`),
        :func:`save_weights` (ours: the JSON beside the weights has
        ``"software": "trackoff_xr"``).
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses any existing target; ``"w"`` allows replacing one
        trackoff_xr wrote.
    protect : iterable of str or path-like
        Paths (the run's inputs) that must never be the target, nor lie inside
        a target store.
    variables : iterable of str, default ("vx", "vy", "v")
        For ``kind="geotiff"``: the variables, whose ``<name>.tif`` are checked.

    Raises
    ------
    OutputExistsError
        The target exists (it is ours) and ``mode="w-"``.
    ProtectedOutputError
        The target exists but trackoff_xr did not write it, or it is (or holds)
        a protected path: refused whatever the mode.
    OutputLocationError
        The target's folder is a file or read-only, or the URL cannot be written.
    InvalidParameterError
        ``mode`` or ``kind`` is not one of the values above.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_output(folder, kind="zarr", mode="w")
    Traceback (most recent call last):
    ...
    trackoff_xr.exceptions.ProtectedOutputError: ... a folder that trackoff_xr did not write ...
    >>> check_output(os.path.join(folder, "new.zarr"), kind="zarr") is None
    True
    """
    _check(target, kind=kind, mode=mode, protected=_protected(protect), variables=variables)


def _names(variables: Iterable[str]) -> list[str]:
    return [variables] if isinstance(variables, str) else list(variables)


# -- partial outputs ----------------------------------------------------------------


def _alive(pid: int) -> bool:
    """Whether process ``pid`` may still run (unknown counts as alive)."""
    if pid <= 0 or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def _partial_pid(entry: str, name: str) -> int | None:
    """Return the pid in ``.<name>.<pid>.<random>.partial`` (or ``.old``), else None."""
    prefix = f".{name}."
    suffix = next((s for s in _PARTIAL_SUFFIXES if entry.endswith(s)), None)
    if suffix is None or not entry.startswith(prefix):
        return None
    match = _PARTIAL_MIDDLE.fullmatch(entry[len(prefix) : -len(suffix)])
    return int(match.group(1)) if match else None


def _remove(path: Path) -> None:
    """Remove a partial file or store; dask threads still finishing may write into it a moment."""
    for _ in range(20):
        if path.is_symlink() or path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            return
        time.sleep(0.05)


def remove_partials(target: Any, *, include_own: bool = False) -> list[Path]:
    """Remove the hidden partial outputs of ``target`` left by processes that no longer run.

    Writers call this before writing, so a write killed before it could clean
    up is cleaned by the next write to the same target. Only entries named
    ``.<name>.<pid>.<random>.partial`` (or ``.old``) next to ``target`` are
    considered, and only those whose ``pid`` is not a running process.

    Parameters
    ----------
    target : str or path-like
        The output (store, CSV file, or one ``<folder>/<name>.tif``). URLs
        have no partials: nothing is removed.
    include_own : bool, default False
        Also remove the partials of this process (e.g. in a SIGINT handler,
        once its computation has stopped). Never do this while one of its
        writes (``compute=False``) may still run.

    Returns
    -------
    list of pathlib.Path
        The partials removed.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / f".pair.zarr.{os.getpid()}.ab12.partial").mkdir()
    >>> remove_partials(folder / "pair.zarr")  # this process runs: kept
    []
    >>> [p.name == f".pair.zarr.{os.getpid()}.ab12.partial"
    ...  for p in remove_partials(folder / "pair.zarr", include_own=True)]
    [True]
    """
    t = _parse(target)
    if t.path is None or not t.path.parent.is_dir():
        return []
    removed = []
    for entry in sorted(t.path.parent.iterdir()):
        pid = _partial_pid(entry.name, t.path.name)
        if pid is None or (pid == os.getpid() and not include_own):
            continue
        if pid != os.getpid() and _alive(pid):
            continue
        _remove(entry)
        if not os.path.lexists(entry):
            removed.append(entry)
    return removed


def _location_error(t: _Target, exc: OSError) -> OutputLocationError:
    reason = exc.strerror or str(exc)
    return OutputLocationError(
        f"cannot write {t.shown!r}: {reason} in {t.path.parent if t.path else t.shown}; "
        "choose a folder you can write to"
    )


def _mkdir(t: _Target, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _location_error(t, exc) from exc


def _new_partial(t: _Target, *, directory: bool, suffix: str = ".partial") -> Path:
    """Create the hidden sibling ``.<name>.<pid>.<random><suffix>`` of ``t`` (umask applies)."""
    assert t.path is not None
    for _ in range(100):
        path = t.path.parent / f".{t.path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}"
        try:
            if directory:
                os.mkdir(path, 0o777)
            else:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise _location_error(t, exc) from exc
        return path
    raise OutputLocationError(f"cannot create a temporary file next to {t.shown!r}")


# -- metadata -------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Convert an attribute value to a type JSON and netCDF can store (bool becomes 0/1)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (datetime.datetime, datetime.date, np.datetime64)):
        return str(np.datetime64(value))
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _plain_attrs(attrs: dict[Any, Any]) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in attrs.items() if v is not None}


def _uniform_chunks(ds: xr.Dataset, extra: dict[str, int] | None = None) -> xr.Dataset:
    """Rechunk every variable to one regular chunk size per dimension (Zarr needs it).

    Chunks are at least :data:`_DEFAULT_CHUNK` points along each dimension
    (or the whole dimension), whatever the blocks that computed them: a
    reader of a whole-scene result opens a few chunks, not thousands of
    32 x 32-point ones. The results are small (a few floats per point), so
    merging blocks into a chunk costs no memory to speak of.
    """
    target: dict[Any, int] = {}
    for var in ds.variables.values():
        if var.chunks is None:
            continue
        for dim, sizes in zip(var.dims, var.chunks, strict=True):
            target[dim] = max(target.get(dim, _DEFAULT_CHUNK), max(sizes))
    chunks = {
        dim: min(int(size), target.get(dim, _DEFAULT_CHUNK)) or 1 for dim, size in ds.sizes.items()
    }
    chunks.update(extra or {})
    return ds.chunk(chunks)


def _stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def prepare_dataset(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` with CF-1.8 / ITS_LIVE metadata, ready to be written.

    Adds ``Conventions``, ``software``/``software_version``, ``history`` and
    ``grid_mapping`` where a ``spatial_ref`` exists; makes every attribute
    JSON- and netCDF-serialisable (booleans become 0/1, ``None`` is dropped);
    stores ``valid`` as ``uint8`` flags; clears encodings inherited from the
    source files; rechunks to regular chunks. Lazy.

    Examples
    --------
    >>> ds = xr.Dataset({"dx": (("y", "x"), np.zeros((2, 3), np.float32))})
    >>> prepare_dataset(ds).attrs["Conventions"]
    'CF-1.8'
    """
    from ._version import __version__

    out = ds.copy()
    for var in out.variables.values():
        var.encoding = {}
    if "valid" in out and out["valid"].dtype == bool:
        out["valid"] = out["valid"].astype(np.uint8).assign_attrs(out["valid"].attrs)
    if "spatial_ref" in out.coords:
        for name in out.data_vars:
            if {"y", "x"} <= set(out[name].dims):
                out[name].attrs["grid_mapping"] = "spatial_ref"
    for name in out.variables:
        out[name].attrs = _plain_attrs(out[name].attrs)
    attrs = {k: v for k, v in _plain_attrs(out.attrs).items() if k != COMPLETE_ATTR}
    attrs.setdefault("title", "ice surface offsets and velocity measured by trackoff_xr")
    attrs["Conventions"] = "CF-1.8"
    attrs.setdefault("software", "trackoff_xr")
    attrs.setdefault("software_version", __version__)
    stamp = _stamp()
    attrs["history"] = _add_history(attrs.get("history"), f"written by trackoff_xr {__version__}")
    attrs.setdefault("date_created", stamp)
    out.attrs = attrs
    return _uniform_chunks(out)


def _add_history(history: Any, line: str) -> str:
    return (f"{history}\n" if history else "") + f"{_stamp()}: {line}"


# -- Zarr -----------------------------------------------------------------------------


def _mark_complete(store: Any, complete: bool = True) -> None:
    import zarr

    group = zarr.open_group(store, mode="r+")
    group.attrs[COMPLETE_ATTR] = 1 if complete else 0
    zarr.consolidate_metadata(store)


def _finalize_local(
    _: Any, tmp: Path, t: _Target, mode: str, protected: tuple[_Target, ...]
) -> str:
    """Mark the partial store complete and rename it into place, replacing an old one of ours."""
    assert t.path is not None
    try:
        _mark_complete(str(tmp))
        # the target may have appeared (or changed) while the data were computed
        _check_protect(t, protected, container=True)
        _check_existing(t, "zarr", mode)
        if not os.path.lexists(t.path):
            os.replace(tmp, t.path)
            return t.absolute
        old = _new_partial(t, directory=True, suffix=".old")
        os.replace(t.path, old / t.path.name)
        try:
            os.replace(tmp, t.path)
        except BaseException:
            os.replace(old / t.path.name, t.path)
            raise
        _remove(old)
    except BaseException:
        _remove(tmp)
        raise
    return t.absolute


def _finalize_remote(_: Any, store: str) -> str:
    _mark_complete(store)
    return store


def _write(
    prepared: xr.Dataset,
    t: _Target,
    *,
    mode: str,
    compute: bool,
    protected: tuple[_Target, ...],
    encoding: dict[str, Any] | None = None,
) -> Any:
    """Write a prepared Dataset to the checked target ``t`` (marked incomplete until the end)."""
    import dask

    prepared = prepared.assign_attrs({COMPLETE_ATTR: 0})
    kwargs: dict[str, Any] = {"zarr_format": 2, "consolidated": True, "encoding": encoding or {}}
    if t.path is None:
        kwargs["mode"] = mode
        writes = prepared.to_zarr(t.shown, compute=False, **kwargs)
        done = dask.delayed(_finalize_remote)(writes, t.shown)
        return done.compute() if compute else done
    remove_partials(t.path)
    _mkdir(t, t.path.parent)
    tmp = _new_partial(t, directory=True)
    try:
        writes = prepared.to_zarr(tmp, compute=False, **{**kwargs, "mode": "w"})
    except BaseException:
        _remove(tmp)
        raise
    done = dask.delayed(_finalize_local)(writes, tmp, t, mode, protected)
    if not compute:
        return done
    try:
        return done.compute()
    except BaseException:
        _remove(tmp)
        raise


def to_zarr(
    ds: xr.Dataset, store: Any, *, compute: bool = True, mode: str = "w-", protect: Any = ()
) -> Any:
    """Write an offsets/velocity Dataset to a Zarr store, CF-1.8 and ITS_LIVE-style.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`trackoff_xr.offsets`, usually after
        :func:`trackoff_xr.velocity.velocity`. May be lazy with irregular
        chunks: it is rechunked to regular chunks first.
    store : str or path-like
        A local directory or an fsspec URL (``s3://bucket/v.zarr``,
        ``memory://v.zarr``, ...).
    compute : bool, default True
        ``False`` writes the metadata now and returns a ``dask.delayed``
        object that writes the data, then marks the store complete. If that
        computation fails, its hidden partial store remains until
        :func:`remove_partials` removes it.
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses any existing store; ``"w"`` replaces a store
        trackoff_xr wrote (for local stores only once the new one is
        complete). A folder or file it did not write is never replaced.
    protect : iterable of str or path-like
        The run's inputs: the store must not be one, nor hold one. The
        ``reference_image``/``secondary_image`` attributes of ``ds`` are
        protected too.

    Returns
    -------
    str or dask.delayed.Delayed
        The store written, or the delayed write.

    Raises
    ------
    OutputExistsError, ProtectedOutputError, OutputLocationError
        As :func:`check_output`, which runs before anything is computed.

    Examples
    --------
    >>> import tempfile, os
    >>> ds = xr.Dataset({"vx": (("y", "x"), np.ones((2, 3), np.float32))},
    ...                 coords={"y": [1.0, 0.0], "x": [0.0, 1.0, 2.0]})
    >>> path = os.path.join(tempfile.mkdtemp(), "pair.zarr")
    >>> delayed = to_zarr(ds, path, compute=False)
    >>> os.path.exists(path)          # nothing at the target until the write is done
    False
    >>> delayed.compute() == path
    True
    >>> float(open_zarr(path).vx.sum())
    6.0
    """
    protected = _protected(protect, ds)
    t = _check(store, kind="zarr", mode=mode, protected=protected)
    return _write(prepare_dataset(ds), t, mode=mode, compute=compute, protected=protected)


def open_zarr(store: Any, **kwargs: Any) -> xr.Dataset:
    """Open a store written by :func:`to_zarr`/:func:`append_pair`, checking it is complete.

    Parameters
    ----------
    store : str or path-like
        Local directory or fsspec URL.
    **kwargs
        Passed to :func:`xarray.open_zarr`.

    Raises
    ------
    IncompleteStoreError
        The store lacks the completion marker: its write was interrupted.
    """
    from .exceptions import ImageReadError

    text = os.fsdecode(os.fspath(store))
    local = text[len("file://") :] if text.startswith("file://") else text
    if not _is_url(text) and not os.path.exists(local):
        raise ImageReadError(f"no Zarr store at {os.fspath(store)!r}; check the path")
    try:
        ds = xr.open_zarr(store, **kwargs)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise ImageReadError(
            f"could not open {os.fspath(store)!r} as a Zarr store ({exc}); check the path"
        ) from exc
    if not _is_complete(ds.attrs.get(COMPLETE_ATTR)):
        raise IncompleteStoreError(
            f"{os.fspath(store)!r} was not completely written (no {COMPLETE_ATTR}=1 "
            "attribute); its write was interrupted: write it again with mode='w'"
        )
    return ds


def _cube_slice(ds: xr.Dataset, mid_date: Any) -> xr.Dataset:
    from .velocity import MissingMetadataError

    center = mid_date if mid_date is not None else ds.attrs.get("date_center")
    if center is None:
        raise MissingMetadataError(
            "the pair has no date_center attribute, so its place along mid_date is "
            "unknown; compute velocity() from images with acquisition dates, or pass "
            "mid_date='2024-02-09T00:00:00'"
        )
    try:
        stamp = np.datetime64(center, "us")
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"mid_date={center!r} is not a date; pass an ISO 8601 string"
        ) from exc
    pair = ds.copy()
    per_pair: dict[str, Any] = {}
    if pair.attrs.get("date_dt") is not None:
        per_pair["date_dt"] = (
            ("mid_date",),
            [float(pair.attrs["date_dt"])],
            {"long_name": "time between the two images", "units": "day"},
        )
    for key in _PAIR_TIMES:
        if pair.attrs.get(key) is not None:
            per_pair[key] = (
                ("mid_date",),
                [np.datetime64(pair.attrs[key], "us")],
                {"long_name": key.replace("_", " ")},
            )
    for key in ("date_center", "date_dt", *_PAIR_TIMES):
        pair.attrs.pop(key, None)
    cube = pair.expand_dims(mid_date=[stamp])
    cube["mid_date"].attrs = {
        "long_name": "midpoint of the two acquisitions",
        "standard_name": "time",
    }
    for name, (dims, values, attrs) in per_pair.items():
        cube[name] = xr.Variable(dims, np.asarray(values), attrs)
    return cube


def append_pair(ds: xr.Dataset, store: Any, *, mid_date: Any = None, protect: Any = ()) -> str:
    """Add one pair to a Zarr data cube along ``mid_date`` (created if missing).

    The cube's global attributes (``Conventions``, ``title``, the first
    pair's parameters, ...) are kept; ``history`` gets one line per pair.

    Parameters
    ----------
    ds : xarray.Dataset
        One pair, as :func:`to_zarr` takes it, with a ``date_center``
        attribute (or pass ``mid_date``).
    store : str or path-like
        Local directory or fsspec URL of the cube.
    mid_date : str or datetime, optional
        The pair's centre date; default ``ds.attrs["date_center"]``.
    protect : iterable of str or path-like
        The run's inputs, as in :func:`to_zarr`.

    Returns
    -------
    str
        The store.

    Raises
    ------
    GridMismatchError
        The pair is not on the cube's grid (coordinates or CRS differ).
    OutputExistsError
        The cube already holds this pair (same ``mid_date`` and ``date_dt``).
    ProtectedOutputError, OutputLocationError
        As :func:`check_output`: ``store`` exists but is not a cube
        trackoff_xr wrote, or is (or holds) a protected path.
    IncompleteStoreError
        The cube's previous write was interrupted.
    """
    from ._version import __version__
    from .validation import crs_wkt

    protected = _protected(protect, ds)
    t = _check(store, kind="zarr", mode="w", protected=protected, append=True)
    cube = prepare_dataset(_cube_slice(ds, mid_date))
    encoding = {"mid_date": dict(_TIME_ENCODING)}
    for key in _PAIR_TIMES:
        if key in cube:
            encoding[key] = dict(_TIME_ENCODING)
    if not _exists(t):
        cube = _uniform_chunks(cube, {"mid_date": 1})
        written = _write(cube, t, mode="w-", compute=True, protected=protected, encoding=encoding)
        return str(written)
    target = str(t.path) if t.path is not None else t.shown
    existing = open_zarr(target)
    for dim in ("y", "x"):
        a, b = existing[dim].values, cube[dim].values
        if a.shape != b.shape or not np.allclose(
            a, b, rtol=0, atol=1e-9 * max(1.0, np.abs(a).max())
        ):
            raise GridMismatchError(
                f"the pair's {dim!r} coordinates ({b.size} points from {b[0]!r}) differ from "
                f"the cube's ({a.size} points from {a[0]!r}); track on the cube's grid, or "
                "start a new cube"
            )
    if crs_wkt(existing) != crs_wkt(cube):
        raise GridMismatchError(
            "the pair's CRS differs from the cube's; reproject the images onto the cube's "
            "CRS, or start a new cube"
        )
    stamp = cube["mid_date"].values[0]
    same = existing["mid_date"].values == stamp
    if same.any() and (
        "date_dt" not in existing
        or "date_dt" not in cube
        or np.isclose(existing["date_dt"].values[same], cube["date_dt"].values[0]).any()
    ):
        raise OutputExistsError(
            f"the cube already holds a pair with mid_date={stamp}; it is not appended again"
        )
    missing = sorted(map(str, set(existing.data_vars) ^ set(cube.data_vars)))
    if missing:
        raise InvalidParameterError(
            f"the pair and the cube have different variables ({missing}); compute the same "
            "variables for every pair (e.g. run velocity() on each)"
        )
    chunks = {"mid_date": 1}
    for dim in ("y", "x"):
        var = next(v for v in existing.data_vars.values() if dim in v.dims)
        chunks[dim] = var.encoding["chunks"][var.dims.index(dim)]
    cube = cube.chunk(chunks)
    # appending rewrites the root attributes: keep the cube's, with one more history line
    attrs = {k: v for k, v in existing.attrs.items() if k != COMPLETE_ATTR}
    attrs["history"] = _add_history(
        attrs.get("history"),
        f"appended the pair mid_date={np.datetime_as_string(stamp, unit='s')} with trackoff_xr "
        f"{__version__}",
    )
    cube.attrs = {**attrs, COMPLETE_ATTR: 0}
    _mark_complete(target, False)
    cube.to_zarr(target, append_dim="mid_date", zarr_format=2, consolidated=True)
    _mark_complete(target, True)
    return target if t.path is None else t.absolute


def _geotiff_array(loaded: xr.Dataset, name: str, gcps: Any) -> xr.DataArray:
    """One variable ready for ``rio.to_raster``: no inherited encodings or fill values."""
    da = loaded[name].copy()
    if da.dtype == bool:
        da = da.astype(np.uint8)
    da.encoding = {}
    for coord in da.coords.values():
        coord.encoding = {}
    drop = ("grid_mapping", "_FillValue", "missing_value")
    da.attrs = {k: str(v) for k, v in da.attrs.items() if k not in drop}
    da = da.rio.set_spatial_dims(x_dim="x", y_dim="y")
    if gcps is not None:
        da = da.drop_vars("spatial_ref").rio.write_gcps(*gcps)
    if da.dtype.kind == "f":
        da = da.rio.write_nodata(np.nan)
    return da


def _replace_file(tmp: Path, t: _Target, kind: str, mode: str) -> None:
    """Rename the complete partial ``tmp`` onto ``t``, checking again what is there now."""
    assert t.path is not None
    _check_existing(t, kind, mode)
    os.replace(tmp, t.path)


def _created_folders(folder: Path) -> list[Path]:
    """List the folders ``mkdir(parents=True)`` would create for ``folder``, deepest first."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; a folder that holds anything stays
        with contextlib.suppress(OSError):
            folder.rmdir()


def to_geotiff(
    ds: xr.Dataset,
    directory: str | os.PathLike[str],
    variables: Iterable[str] = ("vx", "vy", "v"),
    *,
    cog: bool = True,
    mode: str = "w-",
    protect: Any = (),
) -> list[Path]:
    """Write each variable to ``<directory>/<name>.tif`` (Cloud Optimized GeoTIFF).

    Parameters
    ----------
    ds : xarray.Dataset
        Offsets/velocity on a regular ``(y, x)`` grid, e.g. read back with
        :func:`open_zarr`. The variables are computed together, once.
    directory : str or path-like
        A local folder, created if missing. Other files in it are left alone.
        URLs are refused: write locally, then upload.
    variables : iterable of str, default ("vx", "vy", "v")
        Names to write; missing ones raise. ``valid`` is written as uint8.
    cog : bool, default True
        Cloud Optimized GeoTIFF (GDAL's COG driver, deflate); ``False``
        writes a plain tiled GeoTIFF.
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses an existing ``<name>.tif``; ``"w"`` replaces one
        trackoff_xr wrote (it carries the ``TRACKOFF_XR_WRITER`` tag). Other
        files are never replaced.
    protect : iterable of str or path-like
        The run's inputs: never replaced (``ds.attrs["reference_image"]`` and
        ``["secondary_image"]`` too).

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    OutputExistsError, ProtectedOutputError, OutputLocationError
        As :func:`check_output` with ``kind="geotiff"``, before anything is
        computed.

    Notes
    -----
    Map grids keep their CRS and get a GeoTransform from the grid
    coordinates. Radar-geometry grids keep the product's ground control
    points, moved onto the output grid; as GDAL's COG driver cannot store
    those, they are written as tiled GeoTIFFs. Each file is written to a
    hidden partial sibling and renamed into place once all are complete.
    """
    import rioxarray  # noqa: F401  (registers .rio)

    from ._version import __version__

    names = _names(variables)
    absent = [n for n in names if n not in ds]
    if absent:
        raise InvalidParameterError(
            f"variables {absent} are not in the Dataset (it has {list(ds.data_vars)}); "
            "compute them first (e.g. trackoff_xr.velocity.velocity(ds)) or choose others"
        )
    if ds.sizes.get("y", 0) < 2 or ds.sizes.get("x", 0) < 2:
        raise InvalidParameterError(
            f"the grid has {dict(ds.sizes)} points; a GeoTIFF needs at least 2 along y and x"
        )
    t = _check(
        directory, kind="geotiff", mode=mode, protected=_protected(protect, ds), variables=names
    )
    assert t.path is not None
    loaded = ds[names].compute()
    gcps = _grid_gcps(loaded)
    tags = {**_plain_tags(ds.attrs), TIFF_TAG: __version__}
    # GDAL's COG driver drops ground control points: radar grids get a tiled GTiff
    if cog and gcps is None:
        profile: dict[str, Any] = {"driver": "COG", "compress": "deflate"}
    else:
        profile = {"driver": "GTiff", "tiled": True, "compress": "deflate"}
    created = _created_folders(t.path)
    _mkdir(t, t.path)
    files = [t.child(f"{name}.tif") for name in names]
    partials: list[Path] = []
    try:
        for name, file in zip(names, files, strict=True):
            remove_partials(file.path)
            partials.append(_new_partial(file, directory=False))
            _geotiff_array(loaded, name, gcps).rio.to_raster(partials[-1], tags=tags, **profile)
        for tmp, file in zip(partials, files, strict=True):
            _replace_file(tmp, file, "geotiff", mode)
    except BaseException:
        for tmp in partials:
            _remove(tmp)
        _remove_empty(created)
        raise
    return [Path(os.fspath(directory)) / f"{name}.tif" for name in names]


def _plain_tags(attrs: dict[str, Any]) -> dict[str, str]:
    return {k: str(_plain(v)) for k, v in attrs.items() if k != COMPLETE_ATTR}


def _grid_gcps(ds: xr.Dataset) -> tuple[list[Any], Any] | None:
    """Ground control points of the input image, moved onto the output grid."""
    if "spatial_ref" not in ds.coords or "gcps" not in ds.coords["spatial_ref"].attrs:
        return None
    from rasterio.control import GroundControlPoint

    gcps = ds.rio.get_gcps() or []
    x, y = ds["x"].values, ds["y"].values
    sx, sy = x[1] - x[0], y[1] - y[0]

    # GCP pixel-space u = coordinate + 0.5; output pixel-space = (coord - c0) / step + 0.5
    def move(u: float, c0: float, step: float) -> float:
        return float((u - 0.5 - c0) / step + 0.5)

    moved = [
        GroundControlPoint(
            row=move(g.row, y[0], sy), col=move(g.col, x[0], sx), x=g.x, y=g.y, z=g.z, id=g.id
        )
        for g in gcps
    ]
    return moved, ds.rio.crs


def _csv_table(ds: xr.Dataset, only_valid: bool) -> Any:
    """Build the TrackOff point table of ``ds`` (computes the variables it needs, once)."""
    import dask
    import pandas as pd

    nan = xr.full_like(ds["dx"], np.nan, dtype=np.float64)
    fields = {
        "dX": ds["dx"],
        "dY": ds["dy"],
        "dX_m": ds["dx_m"] if "dx_m" in ds else nan,
        "dY_m": ds["dy_m"] if "dy_m" in ds else nan,
        "probab": ds["score"] if "score" in ds else nan,
        "valid": ds["valid"] if "valid" in ds else np.isfinite(ds["dx"]) & np.isfinite(ds["dy"]),
    }
    (values,) = dask.compute({k: v.data for k, v in fields.items()})
    yy, xx = np.meshgrid(ds["y"].values, ds["x"].values, indexing="ij")
    table = pd.DataFrame(
        {
            "no": np.arange(yy.size),
            "x": xx.ravel(),
            "y": yy.ravel(),
            **{
                k: np.asarray(values[k], dtype=np.float64).ravel()
                for k in ("dX", "dY", "dX_m", "dY_m")
            },
        }
    )
    table["dmax"] = np.hypot(table["dX"], table["dY"])
    table["dmax_m"] = np.hypot(table["dX_m"], table["dY_m"])
    days = ds.attrs.get("date_dt")
    table["vel"] = table["dmax_m"] / float(days) if days else np.nan
    table["probab"] = np.asarray(values["probab"], dtype=np.float64).ravel()
    keep = np.ones(len(table), dtype=bool)
    if only_valid:
        keep = np.asarray(values["valid"]).ravel().astype(bool)
        keep &= np.isfinite(table["dX"].to_numpy()) & np.isfinite(table["dY"].to_numpy())
    return table.loc[keep, list(CSV_COLUMNS)]


def to_csv(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    only_valid: bool = True,
    mode: str = "w-",
    protect: Any = (),
) -> Path | str:
    """Write the point table of the original TrackOff scripts.

    Columns: ``no`` (point number in the full grid, row-major), ``x``, ``y``
    (grid coordinates), ``dX``, ``dY`` (offsets in pixels along columns and
    rows: ``dX = dx``, ``dY = dy``), ``dX_m``, ``dY_m`` (the same in metres),
    ``dmax``, ``dmax_m`` (offset length in pixels and metres), ``vel`` (speed
    in **metres per day**, as in TrackOff: ``dmax_m / date_dt``) and
    ``probab`` (the match ``score``). Metre columns are empty until
    :func:`trackoff_xr.velocity.velocity` has been run.

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or path-like
        A local file (written to a hidden partial sibling, then renamed into
        place) or an fsspec URL (``memory://p.csv``, ``s3://...``).
    only_valid : bool, default True
        Keep only points with finite offsets that passed the filters.
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses any existing file; ``"w"`` replaces a CSV written
        by ``to_csv`` (its header is exactly :data:`CSV_COLUMNS`). Any other
        file is never replaced.
    protect : iterable of str or path-like
        The run's inputs: never replaced (``ds.attrs["reference_image"]`` and
        ``["secondary_image"]`` too).

    Returns
    -------
    pathlib.Path or str
        The file written (the URL, as given, for fsspec URLs).

    Raises
    ------
    OutputExistsError, ProtectedOutputError, OutputLocationError
        As :func:`check_output` with ``kind="csv"``, before anything is
        computed.

    Examples
    --------
    >>> import tempfile, os
    >>> ds = xr.Dataset({"dx": (("y", "x"), [[8.0, np.nan]]), "dy": (("y", "x"), [[3.0, 1.0]]),
    ...                  "score": (("y", "x"), [[0.9, 0.1]])},
    ...                 coords={"y": [31.5], "x": [31.5, 63.5]})
    >>> path = to_csv(ds, os.path.join(tempfile.mkdtemp(), "pair.csv"))
    >>> print(path.read_text().strip())
    no,x,y,dX,dY,dX_m,dY_m,dmax,dmax_m,vel,probab
    0,31.5,31.5,8.0,3.0,,,8.54400374531753,,,0.9
    >>> to_csv(ds, path)
    Traceback (most recent call last):
    ...
    trackoff_xr.exceptions.OutputExistsError: the output ... already exists ...; pass mode='w' ...
    """
    for name in ("dx", "dy"):
        if name not in ds:
            raise InvalidParameterError(
                f"the Dataset has no {name!r}; pass the result of trackoff_xr.offsets()"
            )
    t = _check(path, kind="csv", mode=mode, protected=_protected(protect, ds))
    table = _csv_table(ds, only_valid)
    if t.path is None:
        with t.fs.open(t.url_path, "w", newline="") as handle:
            table.to_csv(handle, index=False)
        return t.shown
    remove_partials(t.path)
    _mkdir(t, t.path.parent)
    tmp = _new_partial(t, directory=False)
    try:
        table.to_csv(tmp, index=False)
        _replace_file(tmp, t, "csv", mode)
    except BaseException:
        _remove(tmp)
        raise
    return Path(os.fspath(path))


# -- figures, search tables, CNN weights ---------------------------------------------------


def _write_file(t: _Target, kind: str, mode: str, write: Any) -> None:
    """Write a local file atomically: ``write(partial)``, re-check ``t``, rename into place."""
    assert t.path is not None
    remove_partials(t.path)
    _mkdir(t, t.path.parent)
    tmp = _new_partial(t, directory=False)
    try:
        write(tmp)
        _replace_file(tmp, t, kind, mode)
    except BaseException:
        _remove(tmp)
        raise


def save_figure(
    fig: Any,
    path: str | os.PathLike[str],
    *,
    mode: str = "w-",
    protect: Any = (),
    dpi: Any = None,
) -> Path:
    """Save a matplotlib figure as a PNG that trackoff_xr can later recognise as its own.

    The PNG's ``Software`` text chunk says ``trackoff_xr <version>``; it is
    written to a hidden partial sibling and renamed into place.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path-like
        A local ``.png`` file; its folder is created if missing.
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses an existing file; ``"w"`` replaces a PNG saved by
        this function. Any other file is never replaced.
    protect : iterable of str or path-like
        Paths (inputs) that must never be replaced.
    dpi : float, optional
        Resolution; default matplotlib's ``savefig.dpi``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputExistsError, ProtectedOutputError, OutputLocationError
        As :func:`check_output` with ``kind="figure"``.

    Examples
    --------
    >>> import tempfile
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(1, 1))
    >>> path = save_figure(fig, os.path.join(tempfile.mkdtemp(), "f.png"), dpi=20)
    >>> save_figure(fig, path, mode="w") == path
    True
    """
    from ._version import __version__

    t = _check(path, kind="figure", mode=mode, protected=_protected(protect))
    metadata = {"Software": f"{SOFTWARE} {__version__}"}
    _write_file(
        t, "figure", mode, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, metadata=metadata)
    )
    return Path(os.fspath(path))


def write_table(
    table: Any, path: str | os.PathLike[str], *, mode: str = "w-", protect: Any = ()
) -> Path | str:
    """Write a search table (scenes or pairs) as CSV, replacing only a table written here.

    Parameters
    ----------
    table : pandas.DataFrame
        Its columns must be one of :data:`TABLE_COLUMNS` (the tables of
        :func:`trackoff_xr.s1.search_scenes` and :func:`~trackoff_xr.s1.find_pairs`),
        so that the file is recognised as ours later.
    path : str or path-like
        A local file (written to a hidden partial sibling, then renamed into
        place) or an fsspec URL.
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses any existing file; ``"w"`` replaces a table written
        here (its header is one of :data:`TABLE_COLUMNS`). Any other file is
        never replaced.
    protect : iterable of str or path-like
        Paths (inputs) that must never be replaced.

    Returns
    -------
    pathlib.Path or str
        The file written (the URL, as given, for fsspec URLs).

    Raises
    ------
    InvalidParameterError
        The table's columns are not one of :data:`TABLE_COLUMNS`.
    OutputExistsError, ProtectedOutputError, OutputLocationError
        As :func:`check_output` with ``kind="table"``.
    """
    columns = tuple(str(c) for c in table.columns)
    if columns not in TABLE_COLUMNS.values():
        raise InvalidParameterError(
            f"the table's columns {list(columns)} are not those of a search table; pass the "
            "table of trackoff_xr.s1.search_scenes() or find_pairs() unchanged"
        )
    t = _check(path, kind="table", mode=mode, protected=_protected(protect))
    if t.path is None:
        with t.fs.open(t.url_path, "w", newline="") as handle:
            table.to_csv(handle, index=False)
        return t.shown
    _write_file(t, "table", mode, lambda tmp: table.to_csv(tmp, index=False))
    return Path(os.fspath(path))


def _marked(meta: dict[str, Any]) -> dict[str, Any]:
    from ._version import __version__

    return {**meta, "software": SOFTWARE, "software_version": __version__}


def _weights_targets(path: Any, mode: str, protect: Any) -> tuple[_Target, _Target]:
    t = _check(path, kind="weights", mode=mode, protected=_protected(protect))
    assert t.path is not None
    shown = str(weights_json(t.shown))
    return t, _Target(shown, weights_json(t.path), str(weights_json(t.absolute)))


def save_weights(
    save: Any,
    meta: dict[str, Any],
    path: str | os.PathLike[str],
    *,
    mode: str = "w-",
    protect: Any = (),
) -> Path:
    """Write CNN weights and their JSON, replacing only weights trackoff_xr wrote.

    Both files are written to hidden partial siblings and renamed into place
    once both are complete. The JSON gets ``"software": "trackoff_xr"`` and
    ``"software_version"``: that is how the pair is recognised as ours.

    Parameters
    ----------
    save : callable
        ``save(path)`` writes the weights to the ``str`` path it is given
        (e.g. ``network.save_weights``); the path ends with ``.weights.h5``.
    meta : dict
        The metadata (JSON-serialisable) written to ``<name>.json``.
    path : str or path-like
        The local ``<name>.weights.h5`` file.
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses an existing ``<name>.weights.h5`` or ``<name>.json``;
        ``"w"`` replaces them when the JSON says trackoff_xr wrote them.
    protect : iterable of str or path-like
        Paths (inputs, e.g. the starting weights) that must never be replaced.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputExistsError, ProtectedOutputError, OutputLocationError
        As :func:`check_output` with ``kind="weights"``.
    """
    t, j = _weights_targets(path, mode, protect)
    assert t.path is not None and j.path is not None
    text = json.dumps(_marked(meta), indent=2)
    remove_partials(t.path)
    remove_partials(j.path)
    _mkdir(t, t.path.parent)
    folder = _new_partial(t, directory=True)  # Keras needs the name to end with .weights.h5
    tmp_json: Path | None = None
    try:
        save(str(folder / t.path.name))
        tmp_json = _new_partial(j, directory=False)
        tmp_json.write_text(text)
        _check_existing(t, "weights", mode)  # what is there may have changed while training
        _check_existing(j, "weights", mode)
        os.replace(folder / t.path.name, t.path)
        os.replace(tmp_json, j.path)
    except BaseException:
        if tmp_json is not None:
            _remove(tmp_json)
        raise
    finally:
        _remove(folder)
    return Path(os.fspath(path))


def write_weights_meta(
    meta: dict[str, Any], path: str | os.PathLike[str], *, mode: str = "w", protect: Any = ()
) -> Path:
    """Rewrite the JSON beside weights trackoff_xr wrote (e.g. to add their calibration).

    Parameters
    ----------
    meta : dict
        The new metadata; the ``software`` marker is added.
    path : str or path-like
        The ``<name>.weights.h5`` file; ``<name>.json`` is written, atomically.
    mode : {"w", "w-"}, default "w"
        As :func:`save_weights`.
    protect : iterable of str or path-like
        Paths that must never be replaced.

    Returns
    -------
    pathlib.Path
        The JSON file.
    """
    _, j = _weights_targets(path, mode, protect)
    assert j.path is not None
    text = json.dumps(_marked(meta), indent=2)
    _write_file(j, "weights", mode, lambda tmp: tmp.write_text(text))
    return j.path
