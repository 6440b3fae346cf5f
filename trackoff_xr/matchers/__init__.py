"""Matchers: the pluggable step that turns templates and windows into offsets.

The contract a matcher fulfils, and the optional capabilities the engine may
read, are declared in :mod:`trackoff_xr.matchers.base` (:class:`Matcher`,
:class:`MatcherCapabilities`). The engine, not the matcher, blanks offsets on
the border of the search window and reports them as ``peak_at_edge``
(:func:`trackoff_xr.kernels.lattice.match_arrays`).

* :mod:`.ncc` -- ``method="ncc"``, :class:`NCCMatcher`;
* :mod:`.cnn` -- ``method="cnn"``, the shared pre-trained CNN;
* :mod:`.classifier` -- ``method="classifier"``, the per-tile classifier of
  the TrackOff paper.

Matchers are looked up by name with :func:`get_matcher`; new ones join with
:func:`register_matcher`. The blockwise engine knows only this interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..exceptions import InvalidParameterError, UnknownMethodError
from ..kernels import SUBPIXEL_METHODS
from ..kernels.match import MatchResult, check_subpixel, correlate_and_refine
from .base import Matcher, MatcherBase, MatcherCapabilities, capabilities
from .ncc import NCCMatcher

__all__ = [
    "SUBPIXEL_METHODS",
    "MatchResult",
    "check_subpixel",
    "correlate_and_refine",
    "Matcher",
    "MatcherBase",
    "MatcherCapabilities",
    "NCCMatcher",
    "capabilities",
    "available_methods",
    "get_matcher",
    "register_matcher",
]


def _cnn(**options: Any) -> Matcher:
    from .cnn.matcher import CNNMatcher

    return CNNMatcher(**options)


def _classifier(**options: Any) -> Matcher:
    from .classifier.matcher import ClassifierMatcher

    return ClassifierMatcher(**options)


_REGISTRY: dict[str, Callable[..., Matcher]] = {
    "ncc": NCCMatcher,
    "cnn": _cnn,
    "classifier": _classifier,
}


def register_matcher(name: str, factory: Callable[..., Matcher]) -> None:
    """Make ``factory(**options)`` available as ``offsets(..., method=name)``."""
    _REGISTRY[name] = factory


def available_methods() -> tuple[str, ...]:
    """Names accepted as ``method=``."""
    return tuple(_REGISTRY)


def get_matcher(method: str, **options: Any) -> Matcher:
    """Build the matcher registered as ``method`` with its ``options``.

    Raises
    ------
    UnknownMethodError
        If ``method`` is not registered.
    MethodNotAvailableError
        If the method exists but cannot run here.
    """
    try:
        factory = _REGISTRY[method]
    except (KeyError, TypeError):
        raise UnknownMethodError(
            f"method={method!r} is not a known matching method; use one of "
            f"{', '.join(map(repr, available_methods()))}"
        ) from None
    try:
        return factory(**options)
    except TypeError as exc:
        raise InvalidParameterError(
            f"method={method!r} does not accept the options {sorted(options)}: {exc}"
        ) from exc
