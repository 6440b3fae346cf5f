"""Generated image pairs with known displacement: for tests, demos, benchmarks, training.

Everything is made from a seed, with numpy and scipy only:

* :func:`fractal_texture` -- a positive, band-limited "backscatter" field
  with a power-law spectrum (natural-looking multi-scale texture);
* :func:`speckle` -- multiplicative Gamma speckle of ``looks`` looks, as in
  multi-looked SAR intensity;
* :func:`glacier_field` -- a smooth, glacier-like displacement field: a
  curving ice stream with a plug-flow profile, stable ground around it;
* :func:`warp` -- moves an image by a displacement field (sub-pixel);
* :func:`shifted_pair`, :func:`sar_pair` -- ready-made ``(ref, sec)``
  DataArray pairs.

Sign convention everywhere: a feature at ``(y, x)`` of the reference appears
at ``(y + dy, x + dx)`` of the secondary.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

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


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def fractal_texture(
    shape: tuple[int, int],
    *,
    beta: float = 2.6,
    contrast: float = 0.8,
    smallest_scale: float = 1.5,
    seed: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Positive multi-scale texture with a power-law spectrum (periodic).

    Parameters
    ----------
    shape : (int, int)
        Rows and columns.
    beta : float
        Spectral slope: power falls as ``f ** -beta`` (larger = smoother).
    contrast : float
        Standard deviation of the log-texture; ``exp`` makes it positive.
    smallest_scale : float
        Wavelength, in pixels, below which the spectrum is cut (keeps the
        texture band-limited, so sub-pixel shifts are well defined).
    seed : int or Generator

    Returns
    -------
    ndarray, float64, mean about 1.

    Examples
    --------
    >>> t = fractal_texture((64, 64), seed=1)
    >>> t.shape, bool((t > 0).all())
    ((64, 64), True)
    """
    rng = _rng(seed)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    amplitude = f ** (-beta / 2.0)
    amplitude[0, 0] = 0.0
    amplitude[f > 1.0 / smallest_scale] = 0.0
    spectrum = amplitude * (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape))
    field = np.fft.irfft2(spectrum, s=shape)
    field = (field - field.mean()) / (field.std() + 1e-12)
    out = np.exp(contrast * field)
    return out / out.mean()


def speckle(
    intensity: np.ndarray, looks: float, seed: int | np.random.Generator | None = 0
) -> np.ndarray:
    """Multiply ``intensity`` by unit-mean Gamma speckle of ``looks`` looks.

    Examples
    --------
    >>> s = speckle(np.ones((200, 200)), looks=4, seed=0)
    >>> round(float(s.mean()), 1), round(float(s.var()), 2)
    (1.0, 0.25)
    """
    rng = _rng(seed)
    return intensity * rng.gamma(shape=looks, scale=1.0 / looks, size=intensity.shape)


def glacier_field(
    shape: tuple[int, int],
    *,
    max_displacement: float = 8.0,
    width_fraction: float = 0.35,
    seed: int | np.random.Generator | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Make a smooth, glacier-like displacement field ``(dy, dx)`` in pixels.

    An ice stream enters at the left edge, curves across the image and
    leaves at the right; displacement follows its centre line with a
    plug-flow cross profile ``1 - (d / half_width) ** 4`` and speeds up
    downstream; the ground beyond its margins does not move.

    Examples
    --------
    >>> dy, dx = glacier_field((128, 128), max_displacement=6.0, seed=0)
    >>> float(np.hypot(dy, dx).max()) <= 6.0, float(np.hypot(dy, dx).min())
    (True, 0.0)
    """
    rng = _rng(seed)
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    t = xx / max(cols - 1, 1)
    phase = rng.uniform(0, 2 * np.pi)
    amp = rng.uniform(0.08, 0.18) * rows
    centre = rows * rng.uniform(0.4, 0.6) + amp * np.sin(2 * np.pi * 0.8 * t + phase)
    slope = np.gradient(centre, axis=1)  # d(centre)/dx
    half_width = 0.5 * width_fraction * rows * (1.0 - 0.3 * t)
    dist = np.abs(yy - centre) / np.sqrt(1.0 + slope**2)
    profile = np.clip(1.0 - (dist / half_width) ** 4, 0.0, None)
    speed = max_displacement * profile * (0.55 + 0.45 * t)
    norm = np.sqrt(1.0 + slope**2)
    return speed * slope / norm, speed / norm


def smooth_field(
    shape: tuple[int, int],
    *,
    max_displacement: float = 10.0,
    correlation_length: float = 200.0,
    seed: int | np.random.Generator | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Make a smooth random displacement field ``(dy, dx)`` of largest length ``max_displacement``.

    Each component is white noise smoothed by a Gaussian of
    ``correlation_length / 4`` pixels, then the pair is scaled so the largest
    vector has length ``max_displacement``.

    Examples
    --------
    >>> dy, dx = smooth_field((128, 128), max_displacement=5.0, correlation_length=64, seed=1)
    >>> round(float(np.hypot(dy, dx).max()), 6)
    5.0
    """
    from scipy import ndimage

    rng = _rng(seed)
    sigma = correlation_length / 4.0
    dy, dx = (
        ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap") for _ in range(2)
    )
    scale = max_displacement / max(float(np.hypot(dy, dx).max()), 1e-12)
    return dy * scale, dx * scale


def warp(
    image: np.ndarray, dy: np.ndarray | float, dx: np.ndarray | float, *, order: int = 3
) -> np.ndarray:
    """Move ``image`` so a feature at ``(y, x)`` lands on ``(y + dy, x + dx)``.

    ``dy``, ``dx`` are given on the *reference* grid; the secondary pixel
    ``p`` samples the reference at the point ``q`` with ``q + d(q) = p``
    (found by fixed-point iteration), so smooth, strongly varying fields are
    moved exactly rather than approximately.

    Examples
    --------
    >>> img = fractal_texture((64, 64), seed=0)
    >>> moved = warp(img, 2.0, -1.0)
    >>> bool(np.allclose(moved[20 + 2, 30 - 1], img[20, 30]))
    True
    """
    from scipy import ndimage

    rows, cols = image.shape
    py, px = np.mgrid[0:rows, 0:cols].astype(np.float64)
    dy_f = np.broadcast_to(np.asarray(dy, dtype=np.float64), image.shape)
    dx_f = np.broadcast_to(np.asarray(dx, dtype=np.float64), image.shape)
    qy, qx = py - dy_f, px - dx_f
    for _ in range(6):
        at_q = np.stack([qy, qx])
        qy = py - ndimage.map_coordinates(dy_f, at_q, order=1, mode="nearest")
        qx = px - ndimage.map_coordinates(dx_f, at_q, order=1, mode="nearest")
    return ndimage.map_coordinates(image, np.stack([qy, qx]), order=order, mode="mirror")


def _as_pair(ref: np.ndarray, sec: np.ndarray, attrs: dict) -> tuple[xr.DataArray, xr.DataArray]:
    coords = {
        "y": np.arange(ref.shape[0], dtype=np.float64),
        "x": np.arange(ref.shape[1], dtype=np.float64),
    }
    return (
        xr.DataArray(
            ref.astype(np.float32), dims=("y", "x"), coords=coords, name="ref", attrs=attrs
        ),
        xr.DataArray(
            sec.astype(np.float32), dims=("y", "x"), coords=coords, name="sec", attrs=attrs
        ),
    )


def shifted_pair(
    shape: tuple[int, int] = (256, 256),
    shift: tuple[float, float] = (-4.37, 6.81),
    *,
    looks: float | None = None,
    seed: int = 0,
    beta: float = 2.6,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Make a textured pair whose secondary is the reference moved by a uniform ``shift``.

    The shift is applied in the Fourier domain, exact for the band-limited,
    periodic texture. With ``looks``, independent speckle is added to each image.

    Examples
    --------
    >>> ref, sec = shifted_pair((64, 64), shift=(0.0, 2.0))
    >>> bool(np.allclose(sec.values[10, 12], ref.values[10, 10], atol=1e-4))
    True
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    tex = fractal_texture(shape, beta=beta, seed=rng)
    moved = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(tex), shift)).real
    if looks is not None:
        tex, moved = speckle(tex, looks, rng), speckle(moved, looks, rng)
    return _as_pair(tex, moved, {"true_dy": float(shift[0]), "true_dx": float(shift[1])})


def sar_pair(
    shape: tuple[int, int] = (1024, 1024),
    *,
    max_displacement: float = 8.0,
    looks: float = 4.0,
    seed: int = 0,
    beta: float = 2.6,
    contrast: float = 0.8,
    field: str = "glacier",
) -> tuple[xr.DataArray, xr.DataArray, xr.Dataset]:
    """Make a speckled SAR-like amplitude pair over a glacier-like displacement field.

    ``beta`` and ``contrast`` set the backscatter texture (see
    :func:`fractal_texture`); ``field="smooth"`` replaces the glacier (whose
    margins shear sharply) by :func:`smooth_field`.

    Returns
    -------
    ref, sec : xarray.DataArray
        Amplitude images (square root of speckled intensity), independent
        speckle in each.
    truth : xarray.Dataset
        ``dy``, ``dx``: the displacement of every reference pixel.

    Examples
    --------
    >>> ref, sec, truth = sar_pair((128, 128), max_displacement=4.0, seed=0)
    >>> ref.shape == sec.shape == truth.dy.shape
    True
    """
    rng = np.random.default_rng(seed)
    tex = fractal_texture(shape, beta=beta, contrast=contrast, seed=rng)
    make_field = smooth_field if field == "smooth" else glacier_field
    dy, dx = make_field(shape, max_displacement=max_displacement, seed=rng)
    moved = warp(tex, dy, dx)
    ref = np.sqrt(speckle(tex, looks, rng))
    sec = np.sqrt(speckle(np.clip(moved, 1e-6, None), looks, rng))
    ref_da, sec_da = _as_pair(ref, sec, {"looks": looks})
    truth = xr.Dataset(
        {"dy": (("y", "x"), dy.astype(np.float32)), "dx": (("y", "x"), dx.astype(np.float32))},
        coords=ref_da.coords,
    )
    return ref_da, sec_da, truth


def truth_at_points(truth: xr.Dataset, ds: xr.Dataset) -> xr.Dataset:
    """Average a per-pixel displacement ``truth`` over each template of ``ds``.

    That is the quantity a template matcher estimates. ``truth`` and the
    images behind ``ds`` must have pixel-index coordinates (as the pairs made
    here have), so that the grid coordinate of ``ds`` locates each template.

    Examples
    --------
    >>> import trackoff_xr
    >>> ref, sec, truth = sar_pair((160, 160), max_displacement=4.0, seed=0)
    >>> ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=32, search_radius=6,
    ...                          method="ncc")
    >>> truth_at_points(truth, ds).dx.shape == ds.dx.shape
    True
    """
    patch = int(ds.attrs["patch_size"])
    smooth = truth.rolling(y=patch, x=patch, center=False).mean()
    # a rolling window ending at pixel i + patch - 1 covers the template starting at i
    ends_y = np.round(ds.y.values - (patch - 1) / 2).astype(int) + patch - 1
    ends_x = np.round(ds.x.values - (patch - 1) / 2).astype(int) + patch - 1
    return smooth.isel(
        y=xr.DataArray(ends_y, dims="y"), x=xr.DataArray(ends_x, dims="x")
    ).assign_coords(y=ds.y, x=ds.x)
