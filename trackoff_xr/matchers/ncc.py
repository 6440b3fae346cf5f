"""``method="ncc"``: zero-normalised cross-correlation with a sub-pixel peak fit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kernels.match import check_subpixel, correlate_and_refine
from ..kernels.uncertainty import (
    ERROR_OUTPUT_ATTRS,
    ERROR_OUTPUTS,
    MatchResultWithErrors,
    error_model,
    match_errors,
    patch_size_of,
)
from .base import MatcherBase

__all__ = ["NCCMatcher"]


@dataclass(frozen=True)
class NCCMatcher(MatcherBase):
    """Zero-normalised cross-correlation with a sub-pixel peak fit.

    Parameters
    ----------
    subpixel : {"gauss-newton", "affine", "gaussian", "parabolic", "none"}
        How the integer correlation maximum is refined: ``"gauss-newton"``
        (default) finds the sub-pixel ZNCC maximum itself by inverse
        compositional Gauss-Newton (:mod:`trackoff_xr.kernels.refine`);
        ``"affine"`` then refits, where the template is strained, sheared or
        rotated across its width, the displacement of its centre under an
        affine warp (:mod:`trackoff_xr.kernels.refine_affine`); the others
        fit three samples around the peak (:mod:`trackoff_xr.kernels.subpixel`);
        ``"none"`` keeps whole pixels.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> win = rng.random((1, 40, 40), dtype=np.float32)
    >>> tmpl = win[:, 13:37, 11:35]   # the window's centre is [8:32, 8:32]
    >>> result = NCCMatcher()(tmpl, win)
    >>> round(float(result.dy[0])), round(float(result.dx[0])), bool(result.score[0] > 0.99)
    (5, 3, True)

    Each offset comes with its calibrated 1-sigma uncertainty in pixels
    (:mod:`trackoff_xr.kernels.uncertainty`), as ``dy_error`` and ``dx_error``:

    >>> bool(result.dy_error[0] < 0.1)
    True
    """

    subpixel: str = "gauss-newton"
    name: str = "ncc"

    def __post_init__(self) -> None:
        check_subpixel(self.subpixel)

    #: the engine may pass :class:`~trackoff_xr.kernels.WindowLattice` batches
    #: (read in place) instead of copied arrays
    accepts_lattices = True
    #: 1-sigma uncertainty of dy and dx per point (pixels)
    extra_outputs = ERROR_OUTPUTS
    output_attrs = ERROR_OUTPUT_ATTRS

    def __call__(self, templates: np.ndarray, windows: np.ndarray) -> MatchResultWithErrors:
        """Match each template in its window by ZNCC; estimate each offset's uncertainty."""
        dy, dx, score, surfaces = self.match_surfaces(templates, windows)
        model = error_model("ncc", self.subpixel)
        dy_error, dx_error = match_errors(dy, dx, surfaces, patch_size_of(templates), model)
        return MatchResultWithErrors(dy, dx, score, dy_error, dx_error)

    def match_surfaces(
        self, templates: np.ndarray, windows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``dy``, ``dx``, ``score`` and the integer ZNCC surfaces the offsets were found on."""
        dy, dx, peak, surfaces = correlate_and_refine(templates, windows, self.subpixel)
        score = np.nan_to_num(np.clip(peak, 0.0, 1.0), nan=0.0).astype(np.float32)
        return dy, dx, score, surfaces

    def describe(self) -> dict[str, Any]:
        """Parameters recorded in the output attributes."""
        return {"subpixel": self.subpixel}
