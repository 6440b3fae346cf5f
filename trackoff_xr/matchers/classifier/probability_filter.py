"""The filter of Łucka (2025) for the per-tile classifier's results.

A point is kept only if its top class probability (``score``) stands out of
its tile's class-probability map, ``score > prob_mean + sigmas * prob_std``,
and exceeds ``threshold`` (the original's 4_Filtering.py: 3 sigma, 5 %).
"""

from __future__ import annotations

import xarray as xr

from ...exceptions import InvalidParameterError
from ...postprocess.filters import _apply, _check_dataset, _positive

__all__ = ["filter_probability"]


def filter_probability(ds: xr.Dataset, threshold: float = 0.05, sigmas: float = 3.0) -> xr.Dataset:
    """Keep points whose top probability beats ``mean + sigmas * std`` and ``threshold``.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of ``offsets(..., method="classifier")`` (it has ``score``,
        ``prob_mean``, ``prob_std``), or of another filter.
    threshold : float, default 0.05
        Lowest accepted top probability, in [0, 1] (the paper's 5 %).
    sigmas : float, default 3.0
        How many standard deviations of the tile's probability map the top
        probability must exceed the map's mean by.

    Returns
    -------
    xarray.Dataset
        A new Dataset with ``valid`` narrowed and rejected ``dx``, ``dy``
        (and velocities) set to NaN; lazy when ``ds`` is.

    Examples
    --------
    >>> import numpy as np
    >>> ds = xr.Dataset({"dx": ("x", [8.0, 8.0, 8.0]), "dy": ("x", [3.0, 3.0, 3.0]),
    ...                  "score": ("x", [0.9, 0.04, 0.2]),
    ...                  "prob_mean": ("x", [0.01, 0.01, 0.1]),
    ...                  "prob_std": ("x", [0.05, 0.001, 0.05])})
    >>> filter_probability(ds).valid.values
    array([ True, False, False])
    """
    _check_dataset(ds, "filter_probability")
    missing = [name for name in ("score", "prob_mean", "prob_std") if name not in ds]
    if missing:
        raise InvalidParameterError(
            f"filter_probability() needs the variables {missing}, which the Dataset (with "
            f"{sorted(map(str, ds.data_vars))}) lacks; pass the result of "
            "offsets(..., method='classifier')"
        )
    threshold = _positive("threshold", threshold)
    sigmas = _positive("sigmas", sigmas)
    if threshold > 1:
        raise InvalidParameterError(
            f"threshold={threshold!r} is a probability and must be <= 1; pass e.g. "
            "threshold=0.05 for 5 %"
        )
    score = ds["score"]
    keep = (score > ds["prob_mean"] + sigmas * ds["prob_std"]) & (score > threshold)
    return _apply(
        ds,
        keep,
        f"probability > mean + {sigmas:g} sigma of the tile's class "
        f"probabilities and > {threshold:g}",
    )
