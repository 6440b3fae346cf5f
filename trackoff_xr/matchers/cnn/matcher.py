"""``method="cnn"``: correlation of learnt Siamese features, refined and calibrated.

Per dask block, both images pass once through the shared feature extractor
(:mod:`trackoff_xr.matchers.cnn.features`); every grid point's template and window are
then cut from the feature maps, their zero-normalised correlation is searched
over the whole radius (OpenCV), the peak refined to sub-pixel by
inverse-compositional Gauss-Newton on the lightly smoothed normalised image
(shift-equivariant, unlike the learnt features), and the peak statistics of
the feature correlation turned into a calibrated confidence
(:func:`confidence`).

Because the extractor is fully convolutional and the correlation is computed
for any window, any ``patch_size`` and ``search_radius`` work without
retraining, within :data:`PATCH_LIMITS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...exceptions import InvalidParameterError
from ...kernels import WindowLattice
from ...kernels.match import check_subpixel, correlate_and_refine
from ...kernels.ncc import ncc_surfaces
from ...kernels.uncertainty import (
    ERROR_OUTPUT_ATTRS,
    ERROR_OUTPUTS,
    MatchResultWithErrors,
    error_model,
    match_errors,
    patch_size_of,
)
from ..base import MatcherBase
from .features import (
    DEFAULT_WEIGHTS,
    LCN_RADIUS,
    architecture,
    extract_channels,
    model_metadata,
    network_radius,
)

__all__ = ["FUSION", "PATCH_LIMITS", "CNNMatcher", "confidence", "peak_statistics"]

#: Template sizes the network was validated for (pixels, inclusive).
PATCH_LIMITS = (16, 256)

#: Weight of the learnt features' correlation in the surface searched; the
#: rest is the correlation of the normalised image (channel 1). Chosen on
#: generated pairs only (``benchmarks/choose_fusion.py``: the 12 pairs of
#: ``choose_coarse.py``, seeds 3000+; pooled > 1 px outliers over the returned
#: points, ties within 0.3 points broken by RMSE): 0.0 23.90 %, 0.3 22.04 %,
#: 0.5 21.33 %, 0.7 21.04 % (RMSE 2.932 px), 1.0 21.80 % (2.934 px); on the
#: Sentinel-1-like pairs alone 39.85, 37.56, 36.77, 36.84, 38.81 %. (The
#: earlier default, 0.3, had been chosen on the real-texture evaluation,
#: which is for evaluation only.) The two fail on different points: margins
#: and saturation for the features, speckle for the image.
FUSION = 0.7

#: surfaces :func:`peak_statistics` reads at once
_STATISTICS_BATCH = 256


def peak_statistics(surfaces: np.ndarray, exclusion: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Highest correlation and the highest one outside ``exclusion`` px of it.

    Examples
    --------
    >>> s = np.zeros((1, 9, 9)); s[0, 4, 4] = 0.9; s[0, 4, 5] = 0.8; s[0, 0, 0] = 0.5
    >>> peak_statistics(s)
    (array([0.9]), array([0.5]))
    """
    n, rows, cols = surfaces.shape
    yy, xx = np.mgrid[0:rows, 0:cols].reshape(2, 1, -1)
    peaks, seconds = [], []
    # in batches of points: the int64 distance arrays of a whole block's
    # surfaces (4096 x 33 x 33) took ~90 MB at once
    for start in range(0, n, _STATISTICS_BATCH) if n else (0,):
        part = surfaces[start : start + _STATISTICS_BATCH]
        filled = np.where(np.isfinite(part), part, -1.0).reshape(len(part), rows * cols)
        best = filled.argmax(axis=1)
        r, c = np.divmod(best, cols)
        near = (np.abs(yy - r[:, None]) <= exclusion) & (np.abs(xx - c[:, None]) <= exclusion)
        seconds.append(np.where(near, -1.0, filled).max(axis=1))
        peaks.append(filled[np.arange(len(part)), best])
    return np.concatenate(peaks), np.concatenate(seconds)


def confidence(
    peak: np.ndarray, second: np.ndarray, coefficients: dict[str, float] | None
) -> np.ndarray:
    """Calibrated probability that a match is within one pixel of the truth.

    A logistic model of the peak correlation and its margin over the second
    peak, fitted on held-back generated pairs (see
    :func:`trackoff_xr.matchers.cnn.calibrate.fit_calibration`). Without coefficients
    the peak correlation itself is returned.
    """
    peak = np.nan_to_num(peak, nan=0.0)
    if not coefficients:
        return np.clip(peak, 0.0, 1.0)
    z = (
        coefficients["intercept"]
        + coefficients["peak"] * peak
        + coefficients["margin"] * (peak - np.nan_to_num(second, nan=-1.0))
    )
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class CNNMatcher(MatcherBase):
    """The shared pre-trained CNN matcher.

    Parameters
    ----------
    weights : str
        Keras weights file; the default ships inside the package. Pass the
        path returned by :func:`trackoff_xr.matchers.cnn.fine_tune` to use weights
        adapted to your scene.
    subpixel : {"gauss-newton", "affine", "gaussian", "parabolic", "none"}
        Refinement of the integer peak, as for ``method="ncc"``.
        ``"affine"`` (opt-in) refits the translation refinement's result
        under an affine warp where the template deforms: on the 12 generated
        pairs of ``benchmarks/choose_subpixel.py`` it cut > 1 px outliers from
        22.0 % to 20.8 % (among points kept by ``filter_offsets``: 9.7 % to
        8.5 %), but it takes ``cnn`` from 0.35-0.43x to 0.28-0.30x ``ncc``'s
        speed on a real-texture 4096 x 4096 pair.
    calibrated : bool
        Report the calibrated confidence as ``score`` (default); ``False``
        reports the raw peak of the correlation surface searched.
    fusion : float, default :data:`FUSION`
        Weight, in [0, 1], of the learnt features' ZNCC in the surface whose
        maximum is the integer match; ``1 - fusion`` goes to the ZNCC of the
        lightly smoothed normalised image. ``1.0`` searches the learnt
        features alone (the matcher of model v1 before this option). The
        confidence is calibrated for ``1.0`` and for :data:`FUSION` (both
        recorded with the weights); for other values ``score`` is the raw peak.
    """

    weights: str = str(DEFAULT_WEIGHTS)
    subpixel: str = "gauss-newton"
    calibrated: bool = True
    fusion: float = FUSION
    name: str = "cnn"
    _meta: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        from pathlib import Path

        object.__setattr__(self, "weights", str(self.weights))
        if not Path(self.weights).exists():
            raise InvalidParameterError(
                f"weights={self.weights!r} does not exist; pass a file written by "
                "trackoff_xr.matchers.cnn.train or fine_tune, or leave weights out for the "
                "shipped model"
            )
        check_subpixel(self.subpixel)
        if not (isinstance(self.fusion, (int, float)) and 0.0 <= float(self.fusion) <= 1.0):
            raise InvalidParameterError(
                f"fusion={self.fusion!r} is not a weight in [0, 1]; use e.g. fusion=0.7 "
                "(the default), or 1.0 for the learnt features alone"
            )
        object.__setattr__(self, "fusion", float(self.fusion))
        self._meta.update(model_metadata(self.weights))
        # read the architecture once: the engine asks for the context per block
        self._meta["context"] = LCN_RADIUS + network_radius(*architecture(self.weights))

    @property
    def context(self) -> int:
        """Pixels of context the feature extractor needs around each window."""
        return int(self._meta["context"])

    def check_grid(self, grid: Any) -> None:
        """Refuse template sizes outside :data:`PATCH_LIMITS` before any work is done."""
        if not PATCH_LIMITS[0] <= grid.patch_size <= PATCH_LIMITS[1]:
            raise InvalidParameterError(
                f"patch_size={grid.patch_size} is outside the range the CNN was validated "
                f"for, {PATCH_LIMITS[0]}..{PATCH_LIMITS[1]} pixels; use a patch_size in that "
                "range, or method='ncc'"
            )

    def transform(self, image: np.ndarray) -> np.ndarray:
        """Feature channels of one image block, ``(rows, cols, 2)``, NaN-tolerant."""
        return extract_channels(image, self.weights)

    #: the engine may pass :class:`~trackoff_xr.kernels.WindowLattice` batches
    #: of the feature blocks (read in place) instead of copied arrays
    accepts_lattices = True
    #: channels :meth:`transform` makes: the engine computes them once per
    #: chunk (:func:`~trackoff_xr.blockwise.transform_blockwise`)
    channels = 2
    #: 1-sigma uncertainty of dy and dx per point (pixels), from the feature
    #: correlation's peak (:mod:`trackoff_xr.kernels.uncertainty`)
    extra_outputs = ERROR_OUTPUTS
    output_attrs = ERROR_OUTPUT_ATTRS

    def __call__(self, templates: Any, windows: Any) -> MatchResultWithErrors:
        """Search on the learnt features (channel 0), refine on channel 1."""
        dy, dx, score, surfaces = self.match_surfaces(templates, windows)
        # fitted for the default mix (also used for other mixes) and for the features alone
        model = error_model("cnn_features" if self.fusion == 1.0 else "cnn", self.subpixel)
        dy_error, dx_error = match_errors(dy, dx, surfaces, patch_size_of(templates), model)
        return MatchResultWithErrors(dy, dx, score, dy_error, dx_error)

    def match_surfaces(
        self, templates: Any, windows: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``dy``, ``dx``, ``score`` and the feature-correlation surfaces of the search."""

        def channel(batch: Any, index: int) -> Any:
            if isinstance(batch, WindowLattice):
                return batch.channel(index)
            return np.ascontiguousarray(np.asarray(batch)[..., index])

        features = channel(templates, 0), channel(windows, 0)
        image = channel(templates, 1), channel(windows, 1)
        surfaces = ncc_surfaces(*features)
        if self.fusion < 1.0:
            surfaces *= self.fusion
            surfaces += (1.0 - self.fusion) * ncc_surfaces(*image)
        dy, dx, peak, surfaces = correlate_and_refine(
            *features, self.subpixel, refine_on=image, surfaces=surfaces
        )
        _, second = peak_statistics(surfaces)
        score = confidence(peak, second, self.calibration if self.calibrated else None)
        score = np.where(np.isfinite(dy), score, 0.0).astype(np.float32)
        return dy, dx, score, surfaces

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The confidence model fitted for this matcher's ``fusion``, if the weights hold one."""
        if self.fusion == 1.0:
            return self._meta.get("calibration")
        fused = self._meta.get("calibration_fused")
        return fused if fused and float(fused.get("fusion", -1)) == self.fusion else None

    def describe(self) -> dict[str, Any]:
        """Parameters recorded in the output attributes."""
        return {
            "model_version": self._meta.get("version", "unknown"),
            "subpixel": self.subpixel,
            "fusion": self.fusion,
        }
