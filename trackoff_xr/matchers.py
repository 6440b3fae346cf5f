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
from typing import Any, NamedTuple, Protocol

import numpy as np

from .exceptions import InvalidParameterError, UnknownMethodError
from .kernels import SUBPIXEL_METHODS, ncc_surfaces, refine_peaks, refine_translation

__all__ = [
    "MatchResult",
    "correlate_and_refine",
    "Matcher",
    "NCCMatcher",
    "available_methods",
    "get_matcher",
    "register_matcher",
]


#: integer-peak ZNCC at and above which a match is taken as exact (no refinement)
EXACT_MATCH = 0.999


class MatchResult(NamedTuple):
    """Offsets and match quality for a batch of template/window pairs."""

    dy: np.ndarray
    dx: np.ndarray
    score: np.ndarray


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
        if self.subpixel not in ("gauss-newton", *SUBPIXEL_METHODS):
            raise InvalidParameterError(
                f"subpixel={self.subpixel!r} is not a sub-pixel method; use one of "
                f"{', '.join(map(repr, ('gauss-newton', *SUBPIXEL_METHODS)))}"
            )

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


def correlate_and_refine(
    templates: np.ndarray,
    windows: np.ndarray,
    subpixel: str = "gauss-newton",
    refine_on: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ZNCC search over the whole window, then sub-pixel refinement of the peak.

    ``refine_on`` optionally gives other (templates, windows) -- e.g. a
    linear, shift-equivariant version of the images -- for the Gauss-Newton
    refinement, while the integer search uses ``templates``/``windows``.

    An integer peak on the border of the search window (``|dy|`` or ``|dx|``
    equal to ``R``) is not refined inward: it is returned on the border, where
    the engine marks it as not a measurement
    (:func:`~trackoff_xr.blockwise.match_arrays`).

    Returns
    -------
    dy, dx : ndarray (n,), float32
        Offsets; NaN where nothing correlates positively.
    peak : ndarray (n,), float32
        Correlation at the returned offset (NaN for unusable pairs).
    surfaces : ndarray (n, 2R + 1, 2R + 1)
        The integer correlation surfaces.
    """
    surfaces = ncc_surfaces(templates, windows)
    if subpixel != "gauss-newton":
        dy, dx, peak = refine_peaks(surfaces, subpixel)  # type: ignore[arg-type]
    else:
        iy, ix, peak = refine_peaks(surfaces, "none")
        dy, dx, _ = refine_peaks(surfaces, "gaussian")  # a close start: fewer steps
        # a whole-pixel match that is already essentially perfect is not
        # moved: along an edge (the aperture problem) the refinement could
        # otherwise drift on interpolation error. Comparing correlations in
        # general would favour integers, where no interpolation smooths noise.
        exact = peak >= EXACT_MATCH
        dy[exact], dx[exact] = iy[exact], ix[exact]
        # the maximum of a border peak may lie beyond the window: refining it
        # would pull it inward and present it as an inner match
        radius = (surfaces.shape[1] - 1) // 2
        border = (np.maximum(np.abs(iy), np.abs(ix)) >= radius) & (radius >= 1)
        todo = np.flatnonzero(np.isfinite(peak) & ~exact & ~border)
        rt, rw = refine_on if refine_on is not None else (templates, windows)
        ry, rx, zncc = refine_translation(rt[todo], rw[todo], dy[todo], dx[todo])
        dy[todo], dx[todo] = ry, rx
        if refine_on is None:
            peak[todo] = np.fmax(peak[todo], zncc)
    # no positive correlation anywhere: nothing was matched
    dy[~(peak > 0)] = np.nan
    dx[~(peak > 0)] = np.nan
    return dy, dx, peak, surfaces


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
