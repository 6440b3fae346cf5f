"""``method="classifier"``: the per-tile CNN classifier of Łucka (2025) as a matcher.

For every grid point, each candidate integer offset of its search window is
a class; the class's training images are the secondary tile at that offset
and its augmentations (:mod:`.augmentation`); a classifier is trained for
the tile (:mod:`.network`, all tiles of a dask block in one loop) and the
reference tile is classified: the class gives the integer offset, its
softmax probability the ``score``. The mean and standard deviation of the
tile's class-probability map come out as ``prob_mean`` and ``prob_std`` for
the paper's filter (:func:`.filter.filter_probability`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

import numpy as np

from ...exceptions import InvalidParameterError
from ..base import MatcherBase
from .augmentation import FAMILIES, AugmentConfig, to_uint8, training_images
from .classes import candidate_steps, class_offsets
from .network import ALEXNET, SMALL, NetworkSpec, predict, train_tiles

__all__ = ["PRESETS", "ClassifierMatcher", "ClassifierResult"]

#: name -> (network and schedule, augmentations)
PRESETS: dict[str, tuple[NetworkSpec, AugmentConfig]] = {
    # the original: AlexNet, Adam 1e-3, batch 128, 100 epochs, 60 % of the
    # images trained on, best-accuracy checkpoint, no early stopping
    "paper": (
        NetworkSpec(
            layers=ALEXNET,
            normalise="minmax",
            learning_rate=1e-3,
            batch_size=128,
            epochs=100,
            train_fraction=0.6,
            restore_best=True,
            tiles_per_group=1,
        ),
        AugmentConfig.paper(),
    ),
    # one strided convolution, imprinted softmax layer, 7 images per class,
    # stops once every candidate tile is told apart (1-3 epochs; at most 10)
    "fast": (
        NetworkSpec(
            layers=SMALL,
            normalise="standard",
            learning_rate=1e-3,
            batch_size=128,
            epochs=10,
            imprint=True,
            stop_accuracy=1.0,
            tiles_per_group=8,
        ),
        AugmentConfig.fast(),
    ),
}

_SPEC_OPTIONS = {f.name for f in fields(NetworkSpec)} - {"layers", "extra"}


class ClassifierResult(NamedTuple):
    """Offsets, top probability and probability-map statistics per point."""

    dy: np.ndarray
    dx: np.ndarray
    score: np.ndarray
    prob_mean: np.ndarray
    prob_std: np.ndarray


@dataclass(frozen=True)
class ClassifierMatcher(MatcherBase):
    """Train a classifier per tile over the candidate offsets; classify the reference tile.

    Parameters
    ----------
    preset : {"fast", "paper"}
        ``"paper"``: the AlexNet-style network and the 72 images per class of
        the original, 100 epochs (hours per tile on a CPU). ``"fast"``
        (default): a one-convolution network, 7 images per class, early
        stopping.
    candidate_step : int
        Distance between candidate offsets, pixels (1: every integer offset).
    filters, rescale, rotate : bool
        Switch an augmentation family off (``False``); on by default as the
        preset has it.
    **options
        Override fields of the preset's
        :class:`~trackoff_xr.matchers.classifier.network.NetworkSpec`, e.g.
        ``epochs=5``, ``tiles_per_group=4``, ``seed=1``.

    Examples
    --------
    >>> m = ClassifierMatcher(preset="fast", rotate=False)
    >>> m.describe()["augment_per_class"]
    5
    """

    preset: str = "fast"
    candidate_step: int = 1
    filters: bool = True
    rescale: bool = True
    rotate: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    name: str = "classifier"
    #: extra per-point outputs (float32 variables of the result)
    extra_outputs: tuple[str, ...] = ("prob_mean", "prob_std")
    #: attributes of the extra output variables
    output_attrs = {  # a class attribute, not a dataclass field: no annotation
        "prob_mean": {"long_name": "mean of the tile's class-probability map", "units": "1"},
        "prob_std": {
            "long_name": "standard deviation of the tile's class-probability map",
            "units": "1",
        },
    }

    def __init__(
        self,
        preset: str = "fast",
        candidate_step: int = 1,
        filters: bool = True,
        rescale: bool = True,
        rotate: bool = True,
        **options: Any,
    ) -> None:
        if preset not in PRESETS:
            raise InvalidParameterError(
                f"preset={preset!r} is not a classifier preset; use one of {sorted(PRESETS)}"
            )
        unknown = sorted(set(options) - _SPEC_OPTIONS)
        if unknown:
            raise InvalidParameterError(
                f"classifier options {unknown} are not known; use candidate_step, filters, "
                f"rescale, rotate or some of {sorted(_SPEC_OPTIONS)}"
            )
        candidate_steps(0, candidate_step)  # validates the step
        object.__setattr__(self, "preset", preset)
        object.__setattr__(self, "candidate_step", int(candidate_step))
        object.__setattr__(self, "filters", bool(filters))
        object.__setattr__(self, "rescale", bool(rescale))
        object.__setattr__(self, "rotate", bool(rotate))
        object.__setattr__(self, "options", dict(options))
        object.__setattr__(self, "name", "classifier")
        object.__setattr__(self, "extra_outputs", ("prob_mean", "prob_std"))
        self.spec  # validates the options  # noqa: B018

    def __hash__(self) -> int:
        return hash(
            (
                self.preset,
                self.candidate_step,
                self.filters,
                self.rescale,
                self.rotate,
                tuple(sorted(self.options.items())),
            )
        )

    def __dask_tokenize__(self) -> Any:
        return (
            type(self).__name__,
            self.preset,
            self.candidate_step,
            self.filters,
            self.rescale,
            self.rotate,
            sorted(self.options.items()),
        )

    @property
    def spec(self) -> NetworkSpec:
        """Network and training schedule."""
        return replace(PRESETS[self.preset][0], **self.options)

    @property
    def _switches(self) -> tuple[bool, bool, bool]:
        return (self.filters, self.rescale, self.rotate)

    @property
    def augment(self) -> AugmentConfig:
        """Augmentation recipes."""
        off = [name for name, on in zip(FAMILIES, self._switches, strict=True) if not on]
        return PRESETS[self.preset][1].without(*off)

    def __call__(self, templates: np.ndarray, windows: np.ndarray) -> ClassifierResult:
        """Classify each template among the candidate tiles of its window."""
        n, p = templates.shape[0], templates.shape[-1]
        radius = (windows.shape[-1] - p) // 2
        offsets = class_offsets(radius, self.candidate_step)
        probs = self.probabilities(templates, windows)
        best = probs.argmax(axis=1)
        return ClassifierResult(
            dy=offsets[best, 0].astype(np.float32),
            dx=offsets[best, 1].astype(np.float32),
            score=probs[np.arange(n), best].astype(np.float32),
            prob_mean=probs.mean(axis=1).astype(np.float32),
            prob_std=probs.std(axis=1).astype(np.float32),
        )

    def search_extent(self, radius: int) -> int:
        """Return the outermost candidate offset in a window of ``radius``: its border.

        With a ``candidate_step`` that does not divide the radius the
        candidates stop short of it; a class there is as much a border peak as
        one at the radius itself (the engine does not report it as a match).
        """
        return int(candidate_steps(radius, self.candidate_step).max())

    def probabilities(self, templates: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """Class-probability map of every template: ``(n, classes)``.

        Classes are ordered as :func:`trackoff_xr.matchers.classifier.classes.class_offsets`.
        """
        n, p = templates.shape[0], templates.shape[-1]
        radius = (windows.shape[-1] - p) // 2
        k = class_offsets(radius, self.candidate_step).shape[0]
        out = np.empty((n, k), dtype=np.float32)
        if n == 0:
            return out
        spec, config = self.spec, self.augment
        group = spec.tiles_per_group
        t8, w8 = to_uint8(templates, windows)
        for start in range(0, n, group):
            stop = min(start + group, n)
            # pad the last group to the full size: one compiled shape per run
            take = np.arange(start, start + group).clip(max=stop - 1)
            images = training_images(w8[take], p, radius, self.candidate_step, config)
            trained = train_tiles(images, spec)
            out[start:stop] = predict(trained, t8[take])[: stop - start]
        return out

    def describe(self) -> dict[str, Any]:
        """Parameters recorded in the output attributes."""
        spec, config = self.spec, self.augment
        return {
            "preset": self.preset,
            "candidate_step": self.candidate_step,
            "augment_families": " ".join(
                name for name, on in zip(FAMILIES, self._switches, strict=True) if on
            ),
            "augment_per_class": config.per_class,
            "epochs": spec.epochs,
            "learning_rate": spec.learning_rate,
            "seed": spec.seed,
        }
