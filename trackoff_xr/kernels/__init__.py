"""Numpy kernels: numpy arrays in, numpy arrays out. No dask, no xarray."""

from .ncc import ncc_surfaces
from .refine import refine_translation
from .subpixel import SUBPIXEL_METHODS, refine_peaks
from .windows import extract_windows

__all__ = [
    "SUBPIXEL_METHODS",
    "extract_windows",
    "ncc_surfaces",
    "refine_peaks",
    "refine_translation",
]
