"""The installed version of trackoff_xr (one place, imported by modules that record it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trackoff_xr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
