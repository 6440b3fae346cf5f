"""Generated Sentinel-1-like scenes and training pairs, reproducible from a seed.

A :func:`sar_scene` is a noise-free backscatter intensity in squared 8-bit
grey levels (its square root is the amplitude an 8-bit product would show
before clipping at 255), laid out as real glacier scenes are:

* **regions with sharp margins**: an ice stream between two smooth, rough
  edged curves (a glacier margin), rock islands in it (nunataks), and the
  ground beside it split by a fractal level set (coastlines); each region
  has its own mean and texture, and the step between them is sub-pixel sharp
  (sometimes with a bright or dark rim: moraine, ice cliff);
* **saturated and featureless regions**: bright ice whose mean amplitude is
  above 255 clips to flat white, and calm water or snow fields are almost
  constant;
* **terrain** rendered from a height field as a side-looking radar sees it
  (local incidence angle, foreshortening, layover, shadow): a synthetic
  ridged fractal relief or the real DEM that matplotlib ships
  (``jacksboro_fault_dem.npz``);
* **bright point scatterers** (with the separable sinc-squared response and
  its cross-shaped side lobes) and **layover-like streaks** (short bright
  lines along the range direction);
* **crevasse fields**: oriented, quasi-periodic stripes of 4-16 px
  wavelength, bending with a smooth phase field;
* **real natural texture**: a crop of the photograph matplotlib ships
  (``grace_hopper.jpg``), rotated and zoomed, as one region's texture.

:func:`sar_training_pair` moves a scene by a known field (translation,
affine with rotation, shear and scale, a glacier plug flow whose shear
margins follow the scene's own ice margins, or a smooth field), changes part
of it between the dates (temporal decorrelation, in patches covering a set
fraction), changes the radiometry (gain, gamma, a smooth gain trend), adds
independent speckle of 1-8 looks to each image (and, sometimes, a "frozen"
speckle that belongs to the scene and moves with it), and quantises both to
8 bits with saturation at 255.

What chose the numbers: the statistics of the Sentinel-1 amplitude
``../shared/data/glacier_synthetic/DJ_before.tiff`` were looked at once, for
intuition only (about 44 % of its pixels are saturated at 255, mostly one
large bright ice region plus many small specks; the rest has a nearly flat
grey-level histogram between 30 and 250; a 15-px local coefficient of
variation of about 0.2; about 7 % of pixels with 15-px local standard
deviation under 3 grey levels; a Canny edge density of 0.25). No pixel of it,
nor of any other file under ``shared/data``, enters this generator: its
only data are the two files matplotlib ships, read through
:func:`matplotlib.cbook.get_sample_data`. ``skimage.data`` was not used:
scikit-image is not a dependency of the project (it is on PyPI, 0.26), and
matplotlib, which is, ships a real DEM and a photograph.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from .synthetic import glacier_field, smooth_field

__all__ = [
    "SarPair",
    "SarScene",
    "natural_texture",
    "sar_pair_layers",
    "sar_scene",
    "sar_scene_layers",
    "sar_training_pair",
]

#: region kinds, in the order of the codes in :attr:`SarScene.labels`
KINDS = ("ice", "terrain", "dem", "flat", "photo", "fractal", "white")
_NATURAL = {"dem": "jacksboro_fault_dem.npz", "photo": "grace_hopper.jpg"}
FIELDS = ("translation", "affine", "glacier", "smooth")


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    from ..exceptions import InvalidParameterError

    try:
        rows, cols = (int(s) for s in shape)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"shape must be two integers (rows, cols); received {shape!r}"
        ) from exc
    if rows < 16 or cols < 16:
        raise InvalidParameterError(
            f"shape must be at least (16, 16) pixels; received {shape!r}: ask for a larger scene"
        )
    return rows, cols


@functools.cache
def natural_texture(name: str) -> np.ndarray:
    """Return a real texture that matplotlib ships: ``"dem"`` (heights, m) or ``"photo"`` (grey).

    ``"dem"`` is the 344 x 403 elevation grid ``jacksboro_fault_dem.npz``
    (3-arc-second SRTM of the Jacksboro fault, Tennessee); ``"photo"`` the
    600 x 512 grey levels of ``grace_hopper.jpg``. The array is read-only
    and cached.

    Raises
    ------
    InvalidParameterError
        ``name`` is not one of the two.
    MissingDependencyError
        The installed matplotlib does not ship the file.

    Examples
    --------
    >>> natural_texture("dem").shape, natural_texture("photo").shape
    ((344, 403), (600, 512))
    """
    from ..exceptions import InvalidParameterError, MissingDependencyError

    if name not in _NATURAL:
        raise InvalidParameterError(
            f"natural texture must be one of {sorted(_NATURAL)}; received {name!r}"
        )
    from matplotlib import cbook

    try:
        path = cbook.get_sample_data(_NATURAL[name], asfileobj=False)
        if name == "dem":
            with np.load(path) as data:
                out = np.asarray(data["elevation"], dtype=np.float64)
        else:
            from PIL import Image

            with Image.open(path) as img:
                out = np.asarray(img.convert("L"), dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise MissingDependencyError(
            f"matplotlib's sample file {_NATURAL[name]!r} could not be read ({exc}); "
            "reinstall matplotlib>=3.8, which ships it in mpl-data/sample_data"
        ) from exc
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=16)
def _log_frequency(shape: tuple[int, int]) -> np.ndarray:
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    out = np.log(f)
    out.setflags(write=False)
    return out


def _gaussian_field(
    shape: tuple[int, int], beta: float, rng: np.random.Generator, smallest: float = 1.5
) -> np.ndarray:
    """Zero-mean, unit-variance periodic Gaussian field with a ``f**-beta`` spectrum."""
    logf = _log_frequency(tuple(shape))
    amp = np.exp((-beta / 2.0) * logf)
    amp[0, 0] = 0.0
    amp[logf > -np.log(smallest)] = 0.0
    noise = rng.standard_normal((2, *logf.shape))
    spec = amp * noise[0] + 1j * (amp * noise[1])
    out = np.fft.irfft2(spec, s=shape)
    out -= out.mean()
    out /= out.std() + 1e-12
    return out


def _warp(image: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """:func:`trackoff_xr.testing.synthetic.warp` with OpenCV: bicubic, mirrored edges.

    The secondary pixel ``p`` samples the image at ``q`` with
    ``q + d(q) = p``, found by fixed-point iteration.
    """
    import cv2

    rows, cols = image.shape
    py, px = np.mgrid[0:rows, 0:cols].astype(np.float32)
    dy32, dx32 = dy.astype(np.float32), dx.astype(np.float32)
    qy, qx = py - dy32, px - dx32
    for _ in range(6):
        at_y = cv2.remap(dy32, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        at_x = cv2.remap(dx32, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        qy, qx = py - at_y, px - at_x
    return cv2.remap(
        image.astype(np.float32), qx, qy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
    ).astype(np.float64)


def _texture(shape, rng, contrast, beta=2.6, smallest=1.5) -> np.ndarray:
    out = np.exp(contrast * _gaussian_field(shape, beta, rng, smallest))
    return out / out.mean()


def _level_distance(g: np.ndarray, level: float) -> np.ndarray:
    """Approximate signed distance, in pixels, to the contour ``g == level``."""
    gy, gx = np.gradient(g)
    return (g - level) / np.maximum(np.hypot(gy, gx), 1e-3)


def _soft(distance: np.ndarray) -> np.ndarray:
    """Sub-pixel sharp mask (a one-pixel ramp at the boundary)."""
    return np.clip(0.5 + distance, 0.0, 1.0)


def _resample(source: np.ndarray, shape, rng, zoom: tuple[float, float]) -> np.ndarray:
    """Cut a random rotated, zoomed, flipped crop of ``source`` filling ``shape``."""
    import cv2

    rows, cols = shape
    z = rng.uniform(*zoom)  # output pixels per source pixel
    a = rng.uniform(0, 2 * np.pi)
    flip = -1.0 if rng.random() < 0.5 else 1.0
    m = np.array([[np.cos(a), -np.sin(a) * flip], [np.sin(a), np.cos(a) * flip]]) / z
    span = np.hypot(rows, cols) / z / 2
    cy = rng.uniform(span, max(source.shape[0] - span, span + 1e-6))
    cx = rng.uniform(span, max(source.shape[1] - span, span + 1e-6))
    centre = np.array([(cols - 1) / 2, (rows - 1) / 2])
    t = np.array([cx, cy]) - m @ centre
    mat = np.hstack([m, t[:, None]]).astype(np.float64)
    return cv2.warpAffine(
        np.ascontiguousarray(source, dtype=np.float32),
        mat,
        (cols, rows),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    ).astype(np.float64)


def _render_terrain(h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Side-looking radar brightness of height field ``h`` (pixel units), mean 1.

    Local incidence ``theta - atan(dh/dr)`` along a random range direction:
    brightness ``cos^2 / sin`` of it (backscatter times foreshortening),
    layover where it drops below zero, shadow beyond 90 degrees.
    """
    gy, gx = np.gradient(h)
    phi = rng.uniform(0, 2 * np.pi)
    theta = np.deg2rad(rng.uniform(30, 45))
    slope = np.arctan(gx * np.cos(phi) + gy * np.sin(phi))
    local = theta - slope
    bright = np.cos(local) ** 2 * np.sin(theta) / np.maximum(np.sin(local), 0.08)
    bright = np.where(local <= 0, 14.0, bright)  # layover
    bright = np.where(local >= np.pi / 2, 0.01, bright)  # shadow
    bright = bright * _texture(h.shape, rng, rng.uniform(0.1, 0.5), beta=2.2)
    return bright / bright.mean()


def _relief(h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale ``h`` so its median slope is a random 10-40 degrees."""
    gy, gx = np.gradient(h)
    typical = float(np.median(np.hypot(gy, gx))) + 1e-9
    return h * np.tan(np.deg2rad(rng.uniform(10, 40))) / typical


def _region_texture(kind: str, shape, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Texture (mean 1) and mean amplitude (grey levels) of one region kind."""
    if kind == "ice":
        # bright, smooth, with streaks along a direction; often above saturation
        tex = _texture(shape, rng, rng.uniform(0.05, 0.35), beta=rng.uniform(2.2, 3.2))
        return tex, rng.uniform(120, 460)
    if kind == "terrain":
        g = _gaussian_field(shape, rng.uniform(3.2, 4.2), rng)
        h = 1.0 - np.abs(g) if rng.random() < 0.5 else g  # ridged or rolling
        return _render_terrain(_relief(h, rng), rng), rng.uniform(40, 190)
    if kind == "dem":
        h = _resample(natural_texture("dem"), shape, rng, (1.0, 3.0))
        return _render_terrain(_relief(h, rng), rng), rng.uniform(40, 190)
    if kind == "photo":
        grey = _resample(natural_texture("photo"), shape, rng, (0.7, 2.5))
        tex = (np.clip(grey, 0, None) / 255.0 + 0.04) ** 2
        return tex / tex.mean(), rng.uniform(50, 200)
    if kind == "flat":
        tex = _texture(shape, rng, rng.uniform(0.005, 0.03), beta=3.5)
        return tex, rng.uniform(8, 110)
    if kind == "white":  # saturated snow field: flat above the clip level
        return _texture(shape, rng, rng.uniform(0.01, 0.1), beta=3.0), rng.uniform(290, 480)
    tex = _texture(shape, rng, rng.uniform(0.3, 1.2), beta=rng.uniform(1.8, 3.2))
    return tex, rng.uniform(30, 200)  # "fractal"


@dataclass
class SarScene:
    """A generated scene and the layers that say where each feature is.

    Attributes
    ----------
    intensity : ndarray
        Noise-free backscatter in squared grey levels (amplitude
        ``sqrt(intensity)``, clipped at 255 by an 8-bit product).
    labels : ndarray of int8
        Region of each pixel: an index into :data:`KINDS`.
    margin : ndarray
        Signed distance (px) to the nearest region boundary (a step in mean
        sits at ``margin == 0``); positive inside the ice next to an ice margin.
    band : ndarray or None
        Across-flow distance from the ice stream's centre line in units of
        its half width (``|band| < 1`` inside), or None without a stream.
    flow_angle : ndarray or None
        Direction of flow (radians, ``atan2(dy, dx)``) along the stream.
    scatterers : ndarray
        ``(n, 2)`` row, column of the bright point scatterers.
    streaks : ndarray of bool
        Pixels of the layover-like streaks.
    crevasses : ndarray of bool
        Pixels of the crevasse field; ``crevasse_wavelength`` and
        ``crevasse_angle`` (radians, of the wave vector) describe it.
    """

    intensity: np.ndarray
    labels: np.ndarray
    margin: np.ndarray
    band: np.ndarray | None
    flow_angle: np.ndarray | None
    scatterers: np.ndarray
    streaks: np.ndarray
    crevasses: np.ndarray
    crevasse_wavelength: float = 0.0
    crevasse_angle: float = 0.0
    kinds: tuple[str, ...] = field(default=KINDS)


def sar_scene_layers(
    shape: tuple[int, int],
    seed: int | np.random.Generator | None = 0,
    *,
    ice_stream: bool | None = None,
    kinds: tuple[str, ...] | None = None,
    scatterer_density: float | None = None,
    streaks: int | None = None,
    crevasses: bool | None = None,
    rim: bool | None = None,
) -> SarScene:
    """Make a Sentinel-1-like scene with the layers that locate its features.

    Parameters
    ----------
    shape : (int, int)
        Rows and columns (at least 16 each).
    seed : int or Generator
        The same seed gives the same scene, bit for bit.
    ice_stream : bool, optional
        Whether an ice stream crosses the scene (drawn: 70 %).
    kinds : tuple of str, optional
        Kinds (from :data:`KINDS`) for the ground beside the stream: the
        first for one side of the coastline, the second for the other. Drawn
        when omitted.
    scatterer_density : float, optional
        Bright point scatterers per pixel (drawn: 0 to 0.002).
    streaks : int, optional
        Number of layover-like streaks (drawn: 0 to 8).
    crevasses : bool, optional
        Whether the ice has a crevasse field (drawn: 50 % with a stream).
    rim : bool, optional
        Whether a bright or dark rim lines the margins (drawn: 30 %).

    Returns
    -------
    SarScene

    Examples
    --------
    >>> s = sar_scene_layers((96, 96), seed=3, ice_stream=True, crevasses=True)
    >>> s.intensity.shape, bool((s.intensity > 0).all()), bool(s.crevasses.any())
    ((96, 96), True, True)
    """
    import cv2

    from ..exceptions import InvalidParameterError

    rows, cols = _check_shape(shape)
    shape = (rows, cols)
    rng = _rng(seed)
    size = float(np.hypot(rows, cols) / np.sqrt(2))
    if kinds is not None and (len(kinds) != 2 or any(k not in KINDS for k in kinds)):
        raise InvalidParameterError(f"kinds must be two of {KINDS}; received {kinds!r}")
    has_band = rng.random() < 0.7 if ice_stream is None else bool(ice_stream)
    ground = ("terrain", "dem", "flat", "photo", "fractal", "white", "terrain", "dem")
    if kinds is None:
        kinds = (str(rng.choice(ground)), str(rng.choice(ground)))
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)

    # coastline: a fractal level set splits the ground in two
    g = _gaussian_field(shape, rng.uniform(2.6, 3.8), rng, smallest=2.0)
    coast = _level_distance(g, rng.uniform(-0.8, 0.8))
    labels = np.where(coast > 0, KINDS.index(kinds[1]), KINDS.index(kinds[0])).astype(np.int8)
    margin = coast.copy()
    band = flow_angle = None
    if has_band:
        a = rng.uniform(0, np.pi)  # flow direction (x-axis angle)
        cy, cx = (rows - 1) / 2, (cols - 1) / 2
        t = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
        s = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
        wave = rng.uniform(1.0, 4.0) * size
        amp = rng.uniform(0.0, 0.12) * size * wave / size
        phase = rng.uniform(0, 2 * np.pi)
        centre = rng.uniform(-0.35, 0.35) * size + amp * np.sin(2 * np.pi * t / wave + phase)
        dcentre = amp * 2 * np.pi / wave * np.cos(2 * np.pi * t / wave + phase)
        norm = np.sqrt(1 + dcentre**2)
        half = rng.uniform(0.12, 0.5) * size * (1 + 0.2 * np.sin(2 * np.pi * t / (2 * wave)))
        rough = rng.uniform(0.0, 3.0) * _gaussian_field(shape, 2.2, rng, smallest=2.0)
        across = (s - centre) / norm
        band = across / half
        flow_angle = a + np.arctan(dcentre)
        inside = half - np.abs(across) + rough  # px inside the margin
        # nunataks: rock islands poking through the ice
        isl = _level_distance(_gaussian_field(shape, 3.4, rng), rng.uniform(1.2, 2.6))
        ice_d = np.minimum(inside, -isl)
        rock = KINDS.index(str(rng.choice(("terrain", "dem"))))
        labels = np.where(ice_d > 0, KINDS.index("ice"), np.where(isl > 0, rock, labels))
        labels = labels.astype(np.int8)
        near_ice = np.abs(ice_d) < np.abs(margin)
        margin = np.where(near_ice, ice_d, margin)

    intensity = np.zeros(shape)
    weight = np.zeros(shape)
    for code in np.unique(labels):
        tex, level = _region_texture(KINDS[int(code)], shape, rng)
        m = _soft(np.where(labels == code, np.abs(margin), -np.abs(margin)))
        intensity += m * tex * level**2
        weight += m
    intensity /= np.maximum(weight, 1e-9)
    if (rng.random() < 0.3) if rim is None else rim:  # a bright or dark rim on the margins
        rim = rng.choice((-0.6, 1.5)) * np.exp(-((margin / rng.uniform(0.7, 2.0)) ** 2))
        intensity *= 1 + rim

    crev = np.zeros(shape, bool)
    wavelength = angle = 0.0
    want_crev = (has_band and rng.random() < 0.5) if crevasses is None else bool(crevasses)
    if want_crev:
        blob = _gaussian_field(shape, 3.6, rng) > rng.uniform(-0.6, 0.4)
        crev = blob & (labels == KINDS.index("ice")) if has_band else blob
        wavelength = rng.uniform(4.0, 16.0)
        angle = rng.uniform(0, np.pi)
        bend = rng.uniform(0, 3.0) * _gaussian_field(shape, 4.0, rng)
        ph = 2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / wavelength + bend
        sharp = rng.uniform(1.0, 5.0)
        depth = rng.uniform(0.4, 0.9)
        wave_mod = 1 + depth * np.tanh(sharp * np.cos(ph)) / np.tanh(sharp)
        intensity = np.where(crev, intensity * wave_mod, intensity)

    density = rng.uniform(0, 0.002) if scatterer_density is None else float(scatterer_density)
    n_pts = int(rng.poisson(density * rows * cols))
    pts = np.column_stack([rng.integers(0, rows, n_pts), rng.integers(0, cols, n_pts)])
    if n_pts:
        impulses = np.zeros(shape)
        local = cv2.blur(intensity, (9, 9))
        np.add.at(impulses, (pts[:, 0], pts[:, 1]), local[pts[:, 0], pts[:, 1]])
        gains = rng.uniform(10, 400, n_pts)
        impulses[pts[:, 0], pts[:, 1]] *= gains
        res = rng.uniform(0.7, 1.2)
        k = np.sinc(np.arange(-7, 8) / res) ** 2
        k /= k.sum()
        intensity += cv2.sepFilter2D(impulses, -1, k, k, borderType=cv2.BORDER_CONSTANT)

    n_streaks = int(rng.integers(0, 9)) if streaks is None else int(streaks)
    streak = np.zeros(shape, np.float32)
    if n_streaks:
        rng_dir = rng.uniform(0, np.pi)
        for _ in range(n_streaks):
            length = rng.uniform(5, 40)
            d = rng_dir + rng.normal(0, 0.05)
            y0, x0 = rng.uniform(0, rows), rng.uniform(0, cols)
            p0 = (int(round(x0 * 16)), int(round(y0 * 16)))
            p1 = (
                int(round((x0 + length * np.cos(d)) * 16)),
                int(round((y0 + length * np.sin(d)) * 16)),
            )
            val = float(rng.uniform(4, 30))
            cv2.line(streak, p0, p1, val, int(rng.integers(1, 3)), cv2.LINE_AA, shift=4)
        local = cv2.blur(intensity, (9, 9))
        intensity = intensity + streak * local
    return SarScene(
        intensity=intensity,
        labels=labels,
        margin=margin,
        band=band,
        flow_angle=flow_angle,
        scatterers=pts,
        streaks=streak > 1.0,
        crevasses=crev,
        crevasse_wavelength=float(wavelength),
        crevasse_angle=float(angle),
    )


def sar_scene(shape: tuple[int, int], seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Return a Sentinel-1-like backscatter intensity (squared grey levels), from a seed.

    See :func:`sar_scene_layers` for what is in it and where.

    Examples
    --------
    >>> a, b = sar_scene((64, 64), seed=5), sar_scene((64, 64), seed=5)
    >>> a.shape, bool(np.array_equal(a, b))
    ((64, 64), True)
    """
    return sar_scene_layers(shape, seed).intensity


@dataclass
class SarPair:
    """An 8-bit pair, its displacement field and what changed between the dates.

    ``ref`` and ``sec`` are float32 grey levels 0..255 (integers); ``dy``,
    ``dx`` the displacement of each reference pixel (sign convention of
    :mod:`trackoff_xr.testing.synthetic`); ``changed`` marks the reference
    pixels whose texture changed between the dates; ``field`` names the kind
    of displacement field; ``gain``, ``gamma``: the secondary's radiometric
    change; ``looks_ref``, ``looks_sec``: independent speckle (None: none);
    ``frozen_looks``: speckle that belongs to the scene and moves with it.
    """

    ref: np.ndarray
    sec: np.ndarray
    dy: np.ndarray
    dx: np.ndarray
    changed: np.ndarray
    scene: SarScene
    field: str
    gain: float
    gamma: float
    looks_ref: float | None
    looks_sec: float | None
    frozen_looks: float | None


def _field(kind, shape, rng, scene: SarScene, max_displacement: float):
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    yc, xc = yy - (rows - 1) / 2, xx - (cols - 1) / 2
    if kind == "translation":
        return np.zeros(shape), np.zeros(shape)
    if kind == "affine":
        t = np.deg2rad(rng.uniform(-15, 15) if rng.random() < 0.4 else rng.uniform(-3, 3))
        sc = 1 + rng.uniform(-0.04, 0.04)
        shear = rng.uniform(-0.06, 0.06)
        ny = sc * (np.sin(t) * xc + np.cos(t) * yc)
        nx = sc * (np.cos(t) * xc - np.sin(t) * yc) + shear * yc
        return ny - yc, nx - xc
    if kind == "glacier":
        speed = rng.uniform(0.5, 1.0) * max_displacement
        band, flow_angle = scene.band, scene.flow_angle  # set together: both or neither
        if band is not None and flow_angle is not None and rng.random() < 0.8:
            # plug flow in the scene's own ice stream: shear margins on its margins
            profile = np.clip(1 - np.abs(band) ** rng.uniform(2, 8), 0, None)
            profile = np.where(scene.labels == KINDS.index("ice"), profile, 0.0)
            ang = flow_angle + (np.pi if rng.random() < 0.5 else 0.0)
            return speed * profile * np.sin(ang), speed * profile * np.cos(ang)
        dy, dx = glacier_field(shape, max_displacement=speed, seed=rng)
        k = int(rng.integers(0, 4)) if rows == cols else 0  # any of four orientations
        dy, dx = np.rot90(dy, k), np.rot90(dx, k)
        for _ in range(k):  # rotating the image by 90 degrees turns the vectors too
            dy, dx = -dx, dy
        return np.ascontiguousarray(dy), np.ascontiguousarray(dx)
    return smooth_field(
        shape,
        max_displacement=rng.uniform(0.3, 1.0) * max_displacement,
        correlation_length=rng.uniform(0.5, 3.0) * min(shape),
        seed=rng,
    )


def sar_pair_layers(
    shape: tuple[int, int],
    seed: int | np.random.Generator | None = 0,
    *,
    field: str | None = None,
    max_displacement: float = 6.0,
    shift: tuple[float, float] | None = None,
    anchor: int | None = None,
    decorrelation: float | None = None,
    looks_ref: float | None | str = "draw",
    looks_sec: float | None | str = "draw",
    frozen_looks: float | None | str = "draw",
    radiometry: bool = True,
    scene: SarScene | None = None,
) -> SarPair:
    """Make an 8-bit Sentinel-1-like pair with its displacement and change layers.

    Parameters
    ----------
    shape : (int, int)
        Rows and columns.
    seed : int or Generator
        The same seed and arguments give the same pair, bit for bit.
    field : {"translation", "affine", "glacier", "smooth"}, optional
        Kind of displacement field (drawn when omitted).
    max_displacement : float, default 6.0
        Largest non-uniform part of the field (px).
    shift : (float, float), optional
        Uniform part: the field's mean over the central ``anchor`` square
        (the whole image without ``anchor``) is made ``shift``. Drawn
        uniformly within ``max_displacement`` when omitted.
    anchor : int, optional
        Side of the central square that ``shift`` refers to (a template).
    decorrelation : float, optional
        Fraction of the reference whose texture changes by the second date,
        in patches (drawn: 0 to 0.4).
    looks_ref, looks_sec : float or None, optional
        Independent speckle looks of each image (None: none). Drawn from
        1-8 (ref: none 20 % of the time) when left as ``"draw"``.
    frozen_looks : float or None, optional
        Speckle that belongs to the scene and moves with it (drawn: 1-8,
        or none half of the time).
    radiometry : bool, default True
        Change the secondary's gain, gamma and gain trend.
    scene : SarScene, optional
        Use this scene rather than drawing one.

    Returns
    -------
    SarPair

    Examples
    --------
    >>> p = sar_pair_layers((96, 96), seed=1, field="translation", shift=(1.5, -2.0))
    >>> p.ref.dtype, float(p.ref.max()) <= 255, float(p.dy.mean()), float(p.dx.mean())
    (dtype('float32'), True, 1.5, -2.0)
    """
    from ..exceptions import InvalidParameterError

    rows, cols = _check_shape(shape)
    shape = (rows, cols)
    if field is not None and field not in FIELDS:
        raise InvalidParameterError(f"field must be one of {FIELDS}; received {field!r}")
    if decorrelation is not None and not 0.0 <= decorrelation <= 1.0:
        raise InvalidParameterError(
            f"decorrelation is a fraction in [0, 1]; received {decorrelation!r}"
        )
    for name, value in (("looks_ref", looks_ref), ("looks_sec", looks_sec)):
        if value not in (None, "draw") and not float(value) > 0:  # type: ignore[arg-type]
            raise InvalidParameterError(f"{name} must be positive or None; received {value!r}")
    rng = _rng(seed)
    scene = sar_scene_layers(shape, rng) if scene is None else scene
    kind = str(rng.choice(FIELDS, p=(0.15, 0.35, 0.3, 0.2))) if field is None else field
    dy, dx = _field(kind, shape, rng, scene, max_displacement)
    if shift is None:
        shift = tuple(rng.uniform(-max_displacement, max_displacement, 2))
    if anchor is None:
        wy = wx = slice(None)
    else:
        r0, c0 = (rows - anchor) // 2, (cols - anchor) // 2
        wy, wx = slice(r0, r0 + anchor), slice(c0, c0 + anchor)
    dy = dy - dy[wy, wx].mean() + shift[0]
    dx = dx - dx[wy, wx].mean() + shift[1]

    def draw_looks(value: float | str | None, none_chance: float) -> float | None:
        if value != "draw":
            return cast("float | None", value)  # the only string accepted is "draw"
        return None if rng.random() < none_chance else float(rng.integers(1, 9))

    before = scene.intensity
    frozen_looks = draw_looks(frozen_looks, 0.5)
    if frozen_looks is not None:
        before = before * rng.gamma(frozen_looks, 1.0 / frozen_looks, shape)

    # temporal change: a fraction of the area, in patches, gets new texture
    frac = rng.uniform(0.0, 0.4) if decorrelation is None else float(decorrelation)
    g = _gaussian_field(shape, rng.uniform(2.8, 3.8), rng)
    changed = g > np.quantile(g, 1.0 - frac) if frac > 0 else np.zeros(shape, bool)
    if frac >= 1.0:
        changed = np.ones(shape, bool)
    import cv2

    local = cv2.GaussianBlur(before, (0, 0), rng.uniform(2.0, 6.0))
    new = local * _texture(shape, rng, rng.uniform(0.2, 1.0)) * rng.uniform(0.4, 2.0)
    new = new * rng.gamma(4.0, 0.25, shape)  # new scatterers: fresh fine texture
    mix = _soft(_level_distance(g, np.quantile(g, 1.0 - frac))) if 0 < frac < 1 else changed
    after = before * (1 - mix) + new * mix

    moved = np.clip(_warp(after, dy, dx), 0.0, None)
    gain, gamma = 1.0, 1.0
    if radiometry:
        gain, gamma = float(rng.uniform(0.6, 1.6)), float(rng.uniform(0.8, 1.25))
        trend = np.exp(0.3 * rng.uniform(-1, 1) * _gaussian_field(shape, 5.0, rng))
        moved = gain * 255.0**2 * (moved / 255.0**2) ** gamma * trend

    looks_ref = draw_looks(looks_ref, 0.2)
    looks_sec = draw_looks(looks_sec, 0.0)
    ref_i, sec_i = before, moved
    if looks_ref is not None:
        ref_i = ref_i * rng.gamma(looks_ref, 1.0 / looks_ref, shape)
    if looks_sec is not None:
        sec_i = sec_i * rng.gamma(looks_sec, 1.0 / looks_sec, shape)
    ref = np.clip(np.round(np.sqrt(ref_i)), 0, 255).astype(np.float32)
    sec = np.clip(np.round(np.sqrt(sec_i)), 0, 255).astype(np.float32)
    return SarPair(
        ref=ref,
        sec=sec,
        dy=dy,
        dx=dx,
        changed=changed,
        scene=scene,
        field=kind,
        gain=gain,
        gamma=gamma,
        looks_ref=looks_ref,
        looks_sec=looks_sec,
        frozen_looks=frozen_looks,
    )


def sar_training_pair(
    shape: tuple[int, int], seed: int | np.random.Generator | None = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(ref, sec, dy, dx)``: an 8-bit Sentinel-1-like pair and its displacement.

    Everything is drawn from ``seed`` (see :func:`sar_pair_layers`).

    Examples
    --------
    >>> ref, sec, dy, dx = sar_training_pair((96, 96), seed=2)
    >>> ref.shape == sec.shape == dy.shape == dx.shape == (96, 96)
    True
    """
    p = sar_pair_layers(shape, seed)
    return p.ref, p.sec, p.dy, p.dx
