"""Evaluation pairs made from real image texture (``../shared/data``), moved by known fields.

Evaluation only: nothing here is ever used to train, calibrate or choose a
hyper-parameter of the shipped CNN (those use generated data, see
``trackoff_xr.matchers.cnn.train``).

* ``dj``: the Sentinel-1 amplitude of Daugaard-Jensen glacier
  (``glacier_synthetic/DJ_before.tiff``, 8-bit, 1950 x 1450 px): bright,
  saturated ice next to rough terrain, the texture the CNN must handle.
* ``cat``: the photograph of the original TrackOff demo, a natural-image
  control.

A pair is the texture and a copy moved by a known displacement field
(:func:`trackoff_xr.testing.synthetic.warp`), with independent Gamma speckle of
``looks`` looks applied to the amplitude of one or both images, then
quantised to 8 bits with the saturation at 255 that the DJ product has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_texture(name: str) -> np.ndarray:
    """Return the texture ``name`` ("dj" or "cat") as float64 grey levels 0..255."""
    import trackoff_xr

    path = {
        "dj": DATA / "glacier_synthetic" / "DJ_before.tiff",
        "cat": DATA / "cat" / "CAT1.png",
    }[name]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the real-texture cases need ../shared/data")
    return np.asarray(trackoff_xr.open_image(str(path)).values, dtype=np.float64)


def affine_field(
    shape: tuple[int, int], rotation_deg: float, shear: float, shift: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Displacement ``(dy, dx)`` of a rotation and shear about the centre, plus a shift."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    yc, xc = yy - (rows - 1) / 2, xx - (cols - 1) / 2
    t = np.deg2rad(rotation_deg)
    ny = np.sin(t) * xc + np.cos(t) * yc
    nx = np.cos(t) * xc - np.sin(t) * yc + shear * yc
    return ny - yc + shift[0], nx - xc + shift[1]


def _speckle_amplitude(amplitude: np.ndarray, looks: float | None, rng) -> np.ndarray:
    if looks is None:
        return amplitude
    intensity = amplitude**2 * rng.gamma(looks, 1.0 / looks, size=amplitude.shape)
    return np.sqrt(intensity)


def _to_8bit(amplitude: np.ndarray) -> np.ndarray:
    return np.clip(np.round(amplitude), 0, 255).astype(np.float32)


@dataclass(frozen=True)
class Case:
    """One real-texture evaluation pair."""

    name: str
    texture: str
    field: str  # "affine", "glacier", "smooth"
    max_displacement: float
    looks_ref: float | None
    looks_sec: float | None
    seed: int

    @property
    def secondary_only(self) -> bool:
        """Only the secondary is speckled: the template keeps its texture."""
        return self.looks_ref is None and self.looks_sec is not None


CASES = (
    Case("DJ affine (rot 2 deg, shear 2 %), 8 looks in sec", "dj", "affine", 0, None, 8.0, 901),
    Case("DJ affine (rot 2 deg, shear 2 %), 4 looks in sec", "dj", "affine", 0, None, 4.0, 902),
    Case("DJ glacier band <= 6 px, 4 looks in both", "dj", "glacier", 6.0, 4.0, 4.0, 903),
    Case("DJ glacier band <= 6 px, 8 looks in both", "dj", "glacier", 6.0, 8.0, 8.0, 904),
    Case("DJ glacier band <= 10 px, 2 looks in sec", "dj", "glacier", 10.0, None, 2.0, 905),
    Case("DJ smooth field <= 10 px, 4 looks in both", "dj", "smooth", 10.0, 4.0, 4.0, 906),
    Case("cat affine (control), 4 looks in sec", "cat", "affine", 0, None, 4.0, 907),
)


def make_pair(case: Case):
    """Return ``ref``, ``sec`` (DataArrays, pixel coordinates) and the per-pixel truth."""
    import xarray as xr

    from trackoff_xr.testing.synthetic import glacier_field, smooth_field, warp

    rng = np.random.default_rng(case.seed)
    texture = load_texture(case.texture)
    shape = texture.shape
    if case.field == "affine":
        dy, dx = affine_field(shape, 2.0, 0.02, (rng.uniform(-3, 3), rng.uniform(-3, 3)))
        # keep the largest motion within the search radius used (16 px)
        limit = 12.0 / max(float(np.abs(dy).max()), float(np.abs(dx).max()), 12.0)
        dy, dx = dy * limit, dx * limit
    elif case.field == "glacier":
        dy, dx = glacier_field(shape, max_displacement=case.max_displacement, seed=rng)
    else:
        dy, dx = smooth_field(shape, max_displacement=case.max_displacement, seed=rng)
    moved = warp(texture, dy, dx)
    ref = _to_8bit(_speckle_amplitude(texture, case.looks_ref, rng))
    sec = _to_8bit(_speckle_amplitude(np.clip(moved, 0, None), case.looks_sec, rng))
    coords = {"y": np.arange(shape[0], dtype=float), "x": np.arange(shape[1], dtype=float)}
    ref_da = xr.DataArray(ref, dims=("y", "x"), coords=coords)
    sec_da = xr.DataArray(sec, dims=("y", "x"), coords=coords)
    truth = xr.Dataset(
        {"dy": (("y", "x"), dy.astype(np.float32)), "dx": (("y", "x"), dx.astype(np.float32))},
        coords=coords,
    )
    return ref_da, sec_da, truth


def tiled_scene(size: int, looks: float, shift: tuple[float, float], seed: int):
    """A ``size`` x ``size`` real-texture pair: the DJ texture mirrored to fill, moved by ``shift``.

    The secondary is the reference moved by a uniform sub-pixel shift, both
    speckled independently, quantised to 8 bits.
    """
    import xarray as xr
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    texture = load_texture("dj")
    reps = (int(np.ceil(size / texture.shape[0])) + 1, int(np.ceil(size / texture.shape[1])) + 1)
    tile = np.block([[texture, texture[:, ::-1]], [texture[::-1], texture[::-1, ::-1]]])
    big = np.tile(tile, (reps[0] // 2 + 1, reps[1] // 2 + 1))[: size + 64, : size + 64]
    moved = ndimage.shift(big, shift, order=3, mode="mirror")
    ref = _to_8bit(_speckle_amplitude(big, looks, rng))[:size, :size]
    sec = _to_8bit(_speckle_amplitude(np.clip(moved, 0, None), looks, rng))[:size, :size]
    coords = {"y": np.arange(size, dtype=np.float64), "x": np.arange(size, dtype=np.float64)}
    return (
        xr.DataArray(ref, dims=("y", "x"), coords=coords),
        xr.DataArray(sec, dims=("y", "x"), coords=coords),
    )
