"""Numpy kernels: numpy arrays in, numpy arrays out. No dask, no xarray."""

from .ncc import ncc_surfaces
from .refine import refine_translation
from .refine_affine import refine_affine
from .subpixel import SUBPIXEL_METHODS, refine_peaks
from .threads import opencv_threads
from .windows import WindowLattice, extract_windows

__all__ = [
    "SUBPIXEL_METHODS",
    "WindowLattice",
    "extract_windows",
    "ncc_surfaces",
    "opencv_threads",
    "refine_affine",
    "refine_peaks",
    "refine_translation",
]
