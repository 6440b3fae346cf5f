"""The point table of the original TrackOff scripts: :func:`to_csv`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..exceptions import (
    InvalidParameterError,
)
from .safety import (
    CSV_COLUMNS,
    _check,
    _mkdir,
    _new_partial,
    _protected,
    _remove,
    _replace_file,
    remove_partials,
)

__all__ = ["to_csv"]


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
    :func:`trackoff_xr.velocity` has been run.

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
