"""Shared fixtures: the shared evaluation data and a dask compute counter."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import dask
import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=15, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared evaluation data missing in CI: {path}")
        pytest.skip(f"shared evaluation data not found at {path}")
    return path


class CountingScheduler:
    """Counts how often dask computes (as xarray's tests do)."""

    def __init__(self, max_computes: int = 0):
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"Too many computes. Total: {self.total_computes} > max: {self.max_computes}."
            )
        return dask.get(dsk, keys, **kwargs)


@contextmanager
def raise_if_dask_computes(max_computes: int = 0):
    scheduler = CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler


@pytest.fixture(scope="session")
def glacier_pair():
    import trackoff_xr

    before = shared_file("glacier_synthetic", "DJ_before.tiff")
    after = shared_file("glacier_synthetic", "DJ_after.tiff")
    return trackoff_xr.open_image(before, chunks=512), trackoff_xr.open_image(after, chunks=512)
