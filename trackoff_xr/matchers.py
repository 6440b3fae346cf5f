"""Matchers: the pluggable step that turns templates and windows into offsets.

A matcher is any picklable callable with the signature::

    matcher(templates, windows) -> MatchResult

where ``templates`` has shape ``(n, P, P)`` and ``windows`` shape
``(n, P + 2R, P + 2R)`` (float32, each window centred on its template), and
the result holds ``dy``, ``dx`` (pixels, sub-pixel, the offset at which the
template's content appears in the window) and ``score`` in [0, 1], each of
shape ``(n,)``. Featureless or NaN pairs give NaN offsets and score 0.
The engine, not the matcher, blanks offsets on the border of the search
window and reports them as ``peak_at_edge``
(:func:`trackoff_xr.blockwise.match_arrays`); a matcher whose candidate
offsets stop short of the radius says where its border is with an optional
``search_extent(radius)`` method.

Matchers are looked up by name with :func:`get_matcher`; new ones join with
:func:`register_matcher`. The blockwise engine knows only this interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .exceptions import InvalidParameterError, UnknownMethodError
from .kernels import SUBPIXEL_METHODS
from .kernels.match import MatchResult, check_subpixel, correlate_and_refine

__all__ = [
    "SUBPIXEL_METHODS",
    "MatchResult",
    "check_subpixel",
    "correlate_and_refine",
    "Matcher",
    "NCCMatcher",
    "available_methods",
    "get_matcher",
    "register_matcher",
]


class Matcher(Protocol):
    """Anything that matches a batch of templates inside their search windows."""

    name: str

    def __call__(self, templates: np.ndarray, windows: np.ndarray) -> MatchResult:
        """Match each template in its window."""
        ...

    def describe(self) -> dict[str, Any]:
        """Parameters worth recording in the output's attributes."""
        ...


@dataclass(frozen=True)
class NCCMatcher:
    """Zero-normalised cross-correlation with a sub-pixel peak fit.

    Parameters
    ----------
    subpixel : {"gauss-newton", "gaussian", "parabolic", "none"}
        How the integer correlation maximum is refined: ``"gauss-newton"``
        (default) finds the sub-pixel ZNCC maximum itself by inverse
        compositional Gauss-Newton (:mod:`trackoff_xr.kernels.refine`);
        the others fit three samples around the peak
        (:mod:`trackoff_xr.kernels.subpixel`); ``"none"`` keeps whole pixels.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> win = rng.random((1, 40, 40), dtype=np.float32)
    >>> tmpl = win[:, 13:37, 11:35]   # the window's centre is [8:32, 8:32]
    >>> result = NCCMatcher()(tmpl, win)
    >>> round(float(result.dy[0])), round(float(result.dx[0])), bool(result.score[0] > 0.99)
    (5, 3, True)
    """

    subpixel: str = "gauss-newton"
    name: str = "ncc"

    def __post_init__(self) -> None:
        check_subpixel(self.subpixel)

    #: the engine may pass :class:`~trackoff_xr.kernels.WindowLattice` batches
    #: (read in place) instead of copied arrays
    accepts_lattices = True

    def __call__(self, templates: np.ndarray, windows: np.ndarray) -> MatchResult:
        """Match each template in its window by ZNCC."""
        dy, dx, peak, _ = correlate_and_refine(templates, windows, self.subpixel)
        score = np.nan_to_num(np.clip(peak, 0.0, 1.0), nan=0.0).astype(np.float32)
        return MatchResult(dy=dy, dx=dx, score=score)

    def describe(self) -> dict[str, Any]:
        """Parameters recorded in the output attributes."""
        return {"subpixel": self.subpixel}


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
