"""Synthetic data for tests, examples and benchmarks (:mod:`.synthetic`)."""

from .synthetic import (
    fractal_texture,
    glacier_field,
    sar_pair,
    shifted_pair,
    smooth_field,
    speckle,
    truth_at_points,
    warp,
)

__all__ = [
    "fractal_texture",
    "glacier_field",
    "sar_pair",
    "shifted_pair",
    "smooth_field",
    "speckle",
    "truth_at_points",
    "warp",
]
