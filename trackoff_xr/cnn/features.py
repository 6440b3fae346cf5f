"""Deprecated module path, removed in the next release (see :mod:`trackoff_xr._compat`)."""

from trackoff_xr._compat import moved

__getattr__, __dir__ = moved(__name__, "trackoff_xr.matchers.cnn.features")
