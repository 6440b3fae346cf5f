"""pytest configuration and fixtures only; helpers the tests share live in helpers.py."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from .helpers import raise_if_dask_computes, shared_file  # noqa: F401  (old import path)

settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=15, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def glacier_pair():
    import trackoff_xr

    before = shared_file("glacier_synthetic", "DJ_before.tiff")
    after = shared_file("glacier_synthetic", "DJ_after.tiff")
    return trackoff_xr.open_image(before, chunks=512), trackoff_xr.open_image(after, chunks=512)
