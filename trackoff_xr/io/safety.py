"""Outputs never destroy anything: the checks and partial-file helpers every writer uses.

See :mod:`trackoff_xr.io` for the rule; :func:`check_output` applies it before
anything is computed, :func:`remove_partials` cleans up after interrupted runs.
"""

from __future__ import annotations

import contextlib
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
from typing import Any, cast

import numpy as np
import xarray as xr

from ..exceptions import (
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
    "NETCDF_ATTR",
    "TIFF_TAG",
    "check_output",
    "remove_partials",
    "weights_json",
]


COMPLETE_ATTR = "trackoff_write_complete"


CSV_COLUMNS = ("no", "x", "y", "dX", "dY", "dX_m", "dY_m", "dmax", "dmax_m", "vel", "probab")


TIFF_TAG = "TRACKOFF_XR_WRITER"


#: the global attribute that marks a netCDF file written by ``to_netcdf`` (its version)
NETCDF_ATTR = "trackoff_netcdf_writer"


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


_KINDS = ("zarr", "csv", "geotiff", "figure", "table", "weights", "netcdf")


#: kinds written by libraries that write local files only (GDAL, matplotlib, Keras)
_LOCAL_ONLY = {
    "geotiff": "to_geotiff cannot write to the URL {shown!r}: GDAL writes GeoTIFFs to local "
    "files; write to a local folder, then upload it",
    "figure": "cannot save a figure to the URL {shown!r}: figures are written to local "
    "files; save it to a local path, then upload it",
    "weights": "cannot save weights to the URL {shown!r}: Keras writes weights to local "
    "files; write them to a local folder, then upload them",
    "netcdf": "to_netcdf cannot write to the URL {shown!r}: netCDF4 writes local files; "
    "write to a local folder, then upload it (or use to_zarr, which writes to URLs)",
}


_WEIGHTS_SUFFIX = ".weights.h5"


_MODES = ("w-", "w")


_PARTIAL_SUFFIXES = (".partial", ".old")


_PARTIAL_MIDDLE = re.compile(r"(\d+)\.([A-Za-z0-9_]+)")


_INPUT_ATTRS = ("reference_image", "secondary_image")


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


def _netcdf_is_ours(path: Path) -> bool:
    """Whether ``path`` is a netCDF file whose global attributes hold :data:`NETCDF_ATTR`.

    Not :data:`COMPLETE_ATTR`: ``xr.open_zarr(store).to_netcdf(path)`` copies that one from
    a store into a file trackoff_xr did not write.
    """
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if not (magic.startswith(b"CDF") or magic.startswith(b"\x89HDF")):
        return False  # neither netCDF-3 nor netCDF-4/HDF5: not opened at all
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with xr.open_dataset(path, decode_cf=False, cache=False) as ds:
                return bool(ds.attrs.get(NETCDF_ATTR))
    except Exception:  # not a file xarray can read: not ours
        return False


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
    >>> weights_json("out/trackoff_cnn_v2.weights.h5").name
    'trackoff_cnn_v2.json'
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
    if kind == "netcdf":
        if _netcdf_is_ours(path):
            return None
        return f"{not_ours} (not a netCDF file with a global {NETCDF_ATTR} attribute)"
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
                str(weights_json(t.shown)),
                weights_json(cast(Path, t.path)),  # weights are local only (checked above)
                str(weights_json(t.absolute)),
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
        ``"figure"``, ``"netcdf"``), folder (``"geotiff"``) or ``<name>.weights.h5`` file
        (``"weights"``, checked together with its ``<name>.json``) to be
        written: a local path, or an fsspec URL for ``"zarr"``, ``"csv"`` and
        ``"table"``.
    kind : {"zarr", "csv", "geotiff", "figure", "table", "weights", "netcdf"}
        The writer: :func:`to_zarr`/:func:`append_pair`, :func:`to_netcdf`
        (ours: a netCDF file whose global attributes hold
        ``trackoff_netcdf_writer``), :func:`to_csv`,
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
