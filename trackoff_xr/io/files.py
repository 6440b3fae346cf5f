"""Figures, search tables and CNN weights.

:func:`save_figure`, :func:`write_table`, :func:`save_weights`, :func:`write_weights_meta`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..exceptions import (
    InvalidParameterError,
)
from .safety import (
    SOFTWARE,
    TABLE_COLUMNS,
    _check,
    _check_existing,
    _mkdir,
    _new_partial,
    _protected,
    _remove,
    _Target,
    _write_file,
    remove_partials,
    weights_json,
)

__all__ = ["save_figure", "save_weights", "write_table", "write_weights_meta"]


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
    from .._version import __version__

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
        :func:`trackoff_xr.io.asf.search_scenes` and :func:`~trackoff_xr.io.asf.find_pairs`),
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
            "table of trackoff_xr.io.asf.search_scenes() or find_pairs() unchanged"
        )
    t = _check(path, kind="table", mode=mode, protected=_protected(protect))
    if t.path is None:
        with t.fs.open(t.url_path, "w", newline="") as handle:
            table.to_csv(handle, index=False)
        return t.shown
    _write_file(t, "table", mode, lambda tmp: table.to_csv(tmp, index=False))
    return Path(os.fspath(path))


def _marked(meta: dict[str, Any]) -> dict[str, Any]:
    from .._version import __version__

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
