"""Old module paths, kept for one release: each forwards to its new module with a warning.

A shim is a module of two lines::

    from trackoff_xr._compat import moved
    __getattr__, __dir__ = moved(__name__, "trackoff_xr.io.safe")

Reading any name from it imports the new module (on first use, so importing a
shim costs nothing) and returns the new module's own object, with a
:class:`DeprecationWarning` that names the new path. The shim holds no state
of its own: there is one module object per concept, and a counter or cache
read through the old path is the new module's.

Examples
--------
>>> import warnings
>>> import trackoff_xr.sentinel1 as old
>>> import trackoff_xr.io.safe as new
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     same = old.open_safe is new.open_safe
>>> same, caught[0].category.__name__, "trackoff_xr.io.safe" in str(caught[0].message)
(True, 'DeprecationWarning', True)
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["MOVED", "moved"]

#: old module path -> new module path (every shim, for the tests and the docs)
MOVED: dict[str, str] = {}


def moved(old: str, new: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` forwarding ``old`` to ``new``.

    Parameters
    ----------
    old : str
        The deprecated module's name (the shim's ``__name__``).
    new : str
        The module that now holds its contents.

    Returns
    -------
    (__getattr__, __dir__)
        To be assigned at the shim's module level (PEP 562).
    """
    MOVED[old] = new

    def __getattr__(name: str) -> Any:
        target = importlib.import_module(new)
        try:
            value = getattr(target, name)
        except AttributeError:
            raise AttributeError(f"module {old!r} has no attribute {name!r}") from None
        warnings.warn(
            f"{old} is deprecated and will be removed in the next release; "
            f"use {new}.{name} (module {new})",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    def __dir__() -> list[str]:
        return sorted(dir(importlib.import_module(new)))

    return __getattr__, __dir__
