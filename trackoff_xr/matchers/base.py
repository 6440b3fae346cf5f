"""The matcher contract: what the engine calls, and the optional capabilities it reads.

A matcher is any picklable callable with the signature::

    matcher(templates, windows) -> MatchResult

where ``templates`` has shape ``(n, P, P)`` and ``windows`` shape
``(n, P + 2R, P + 2R)`` (float32, each window centred on its template), and
the result holds ``dy``, ``dx`` (pixels, sub-pixel, the offset at which the
template's content appears in the window) and ``score`` in [0, 1], each of
shape ``(n,)``. Featureless or NaN pairs give NaN offsets and score 0. It has
a ``name`` and a ``describe()`` giving the parameters worth recording
(:class:`Matcher`).

Everything else a matcher may say about itself is one of the optional
capabilities of :class:`MatcherCapabilities`, each with a default that means
"not offered". The engine (:mod:`trackoff_xr.blockwise`,
:mod:`trackoff_xr.tracking`) reads them only through :func:`capabilities`, so
a matcher registered with :func:`~trackoff_xr.matchers.register_matcher` that
declares none of them keeps working. Subclassing :class:`MatcherBase` is
optional; it only declares the defaults on the class.

Examples
--------
>>> import numpy as np
>>> from trackoff_xr.kernels.match import MatchResult
>>> class Zero:
...     name = "zero"
...     def __call__(self, templates, windows):
...         n = len(templates)
...         return MatchResult(np.zeros(n), np.zeros(n), np.ones(n))
...     def describe(self):
...         return {}
>>> caps = capabilities(Zero())
>>> caps.context, caps.accepts_lattices, caps.extra_outputs, caps.transform is None
(0, False, (), True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["MatchOutput", "Matcher", "MatcherBase", "MatcherCapabilities", "capabilities"]


class MatchOutput(Protocol):
    """What a matcher returns: ``dy``, ``dx`` and ``score``, each of shape ``(n,)``.

    :class:`~trackoff_xr.kernels.match.MatchResult`, or any named tuple that
    starts with the same three fields and adds the matcher's
    ``extra_outputs`` (the classifier's probability statistics, the errors).
    """

    @property
    def dy(self) -> np.ndarray:
        """Offsets along rows, pixels, shape ``(n,)``."""
        ...

    @property
    def dx(self) -> np.ndarray:
        """Offsets along columns, pixels, shape ``(n,)``."""
        ...

    @property
    def score(self) -> np.ndarray:
        """Match quality in [0, 1], shape ``(n,)``."""
        ...


@runtime_checkable
class Matcher(Protocol):
    """Anything that matches a batch of templates inside their search windows."""

    @property
    def name(self) -> str:
        """Short name of the method (names the dask tasks and the recorded attributes)."""
        ...

    def __call__(self, templates: np.ndarray, windows: np.ndarray) -> MatchOutput:
        """Match each template in its window."""
        ...

    def describe(self) -> dict[str, Any]:
        """Parameters worth recording in the output's attributes."""
        ...


def _no_attrs() -> Mapping[str, Mapping[str, str]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class MatcherCapabilities:
    """The optional capabilities of a matcher, with the defaults of one that declares none.

    Attributes
    ----------
    name : str
        The matcher's ``name`` (``"match"`` if it has none); names the dask tasks.
    transform : callable or None
        ``transform(block) -> (rows, cols, channels)``: a fully convolutional
        feature extractor. The engine transforms both image blocks once and
        cuts the windows from the features. ``None``: windows are cut from
        the pixels.
    context : int
        Pixels the transform needs beyond every window; 0 without a transform.
    channels : int or None
        Channels ``transform`` makes. When known, and the inputs are shared,
        features are computed once per input chunk
        (:func:`~trackoff_xr.blockwise.transform_blockwise`).
    accepts_lattices : bool
        The matcher takes :class:`~trackoff_xr.kernels.WindowLattice` batches
        (views read in place) instead of copied arrays.
    extra_outputs : tuple of str
        Names of extra per-point arrays in the matcher's result, added as
        float32 variables after ``dy``, ``dx``, ``score``, ``peak_at_edge``.
    output_attrs : mapping
        Attributes of the extra output variables, by name.
    check_grid : callable or None
        ``check_grid(grid)`` refuses a :class:`~trackoff_xr.grid.GridSpec`
        the matcher cannot use, before any work is done.
    search_extent : callable or None
        ``search_extent(radius) -> float``: the largest offset the matcher can
        answer in a window of ``radius`` (its border); ``None``: the radius.
    """

    name: str = "match"
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    context: int = 0
    channels: int | None = None
    accepts_lattices: bool = False
    extra_outputs: tuple[str, ...] = ()
    output_attrs: Mapping[str, Mapping[str, str]] = field(default_factory=_no_attrs)
    check_grid: Callable[[Any], None] | None = None
    search_extent: Callable[[int], float] | None = None


def capabilities(matcher: Any) -> MatcherCapabilities:
    """Read the declared optional capabilities of ``matcher`` (defaults for the others).

    Only the names of :class:`MatcherCapabilities` are read; this is the one
    place the engine asks a matcher about itself.

    Parameters
    ----------
    matcher : Matcher
        Any matcher, a :class:`MatcherBase` subclass or not.

    Returns
    -------
    MatcherCapabilities

    Examples
    --------
    >>> from trackoff_xr.matchers import NCCMatcher
    >>> caps = capabilities(NCCMatcher())
    >>> caps.name, caps.accepts_lattices, caps.context
    ('ncc', True, 0)
    """
    values = {f.name: getattr(matcher, f.name, None) for f in fields(MatcherCapabilities)}
    out = {k: v for k, v in values.items() if v is not None}
    if "extra_outputs" in out:
        out["extra_outputs"] = tuple(out["extra_outputs"])
    if "output_attrs" in out:
        out["output_attrs"] = MappingProxyType(dict(out["output_attrs"]))
    if "accepts_lattices" in out:
        out["accepts_lattices"] = bool(out["accepts_lattices"])
    # the context is the transform's: without one there is nothing to pad for
    out["context"] = int(out.get("context", 0)) if "transform" in out else 0
    return MatcherCapabilities(**out)


class MatcherBase:
    """Optional base class declaring every capability at its default.

    Subclasses override what they offer (a method for ``transform``,
    ``check_grid`` or ``search_extent``; a class attribute or property for
    the others). See :class:`MatcherCapabilities` for what each one means.
    """

    name: str = "match"
    #: feature extractor of a block, or None (see :class:`MatcherCapabilities`)
    transform: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def context(self) -> int:
        """Pixels the transform needs beyond every window (read-only; 0 by default)."""
        return 0

    #: channels the transform makes, if known
    channels: int | None = None
    #: takes WindowLattice batches instead of copied arrays
    accepts_lattices: bool = False
    #: names of extra per-point outputs
    extra_outputs: tuple[str, ...] = ()
    #: attributes of the extra output variables
    output_attrs: Mapping[str, Mapping[str, str]] = MappingProxyType({})
    #: refuses a grid the matcher cannot use, or None
    check_grid: Callable[[Any], None] | None = None
    #: border of the candidate offsets for a radius, or None (the radius)
    search_extent: Callable[[int], float] | None = None

    def describe(self) -> dict[str, Any]:
        """Parameters worth recording in the output's attributes (none by default)."""
        return {}
