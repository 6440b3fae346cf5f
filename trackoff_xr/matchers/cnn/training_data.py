"""Training pairs for the CNN matcher, generated from a seed (never from real data).

Each example is a reference patch and a secondary patch around it, already
locally normalised, with the true sub-pixel offset of the patch centre. The
scene behind it varies in everything the matcher must not care about:

* texture: fractal backscatter fields of varied smoothness and contrast,
  sometimes stretched into streaks (crevasse-like), sometimes low-contrast;
* speckle: independent multiplicative Gamma speckle of 1-8 looks in each
  image (amplitude), or none;
* geometry: sub-pixel translation plus rotation (up to 15 degrees) and
  scale change (up to 4 %) about the patch centre, as Łucka (2025) bought by
  augmentation;
* radiometry: gain, offset and gamma changes; the paper's PIL filters
  (BLUR, SMOOTH, SHARPEN, DETAIL, EDGE_ENHANCE, ...) and Gaussian blur,
  applied to one image or both.

:func:`make_sar_batch` draws the same format from Sentinel-1-like scenes
(:mod:`trackoff_xr.testing.sar_scenes`), optionally mixed with these; pass
it as ``batch_source`` to :func:`~trackoff_xr.matchers.cnn.train.train`
(``make_batch`` stays the default, so the shipped weights are reproduced).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...kernels.augment import pil_filter
from ...testing.synthetic import fractal_texture
from .features import LCN_RADIUS, NETWORK_RADIUS, local_normalise

__all__ = ["DEFAULT_SPEC", "TrainingSpec", "make_batch", "make_sar_batch", "make_scene_pair"]

_FILTERS = ("BLUR", "SMOOTH", "SHARPEN", "DETAIL", "EDGE_ENHANCE")


@dataclass(frozen=True)
class TrainingSpec:
    """Geometry of training examples."""

    patch: int = 48
    radius: int = 8
    max_shift: float = 6.0
    scene: int = 144

    @property
    def ref_size(self) -> int:
        """Reference input: template plus the network's margin."""
        return self.patch + 2 * NETWORK_RADIUS

    @property
    def sec_size(self) -> int:
        """Secondary input: window plus the network's margin."""
        return self.patch + 2 * self.radius + 2 * NETWORK_RADIUS


DEFAULT_SPEC = TrainingSpec()


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = rng.random()
    tex = fractal_texture(
        (size, size),
        beta=rng.uniform(1.6, 3.4),
        contrast=rng.uniform(0.2, 1.3),
        smallest_scale=rng.uniform(1.0, 3.0),
        seed=rng,
    )
    if kind < 0.25:  # streaks: squeeze the texture across a random direction
        import cv2

        theta = rng.uniform(0, np.pi)
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        squeeze = rot @ np.diag([1.0, rng.uniform(2, 5)]) @ rot.T
        centre = np.array([size / 2, size / 2])
        matrix = np.hstack([squeeze, (centre - squeeze @ centre)[:, None]]).astype(np.float32)
        tex = cv2.warpAffine(
            tex.astype(np.float32),
            matrix,
            (size, size),
            flags=cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REFLECT,
        ).astype(np.float64)
        tex = np.clip(tex, 1e-3, None)
    return tex


def make_scene_pair(
    rng: np.random.Generator,
    size: int,
    shift: tuple[float, float],
    *,
    rotation: float = 0.0,
    scale: float = 1.0,
    shear: float = 0.0,
    looks: float | None = None,
    texture: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Make a reference scene and its secondary: content moved by ``shift`` at the centre.

    The secondary samples the reference at ``A (p - c - shift) + c`` where
    ``A`` undoes a rotation by ``rotation`` degrees, a scaling by ``scale``
    and a simple shear ``shear`` (column motion per row, as across a glacier
    margin), so the centre ``c`` of the reference lands at ``c + shift``.
    """
    from scipy import ndimage

    tex = _texture(rng, size) if texture is None else texture
    c = (np.array(tex.shape) - 1) / 2.0
    theta = np.deg2rad(rotation)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) / scale
    rot = rot @ np.linalg.inv(np.array([[1.0, 0.0], [shear, 1.0]]))
    offset = c - rot @ (c + np.asarray(shift))
    moved = ndimage.affine_transform(tex, rot, offset=offset, order=3, mode="mirror")
    moved = np.clip(moved, 1e-4, None)
    if looks is not None:
        tex = np.sqrt(tex * rng.gamma(looks, 1.0 / looks, tex.shape))
        moved = np.sqrt(moved * rng.gamma(looks, 1.0 / looks, moved.shape))
    return tex, moved


def _radiometry(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    img = img * rng.uniform(0.3, 3.0) + rng.uniform(-0.2, 0.5)
    if rng.random() < 0.3:
        img = np.sign(img) * np.abs(img) ** rng.uniform(0.6, 1.6)
    roll = rng.random()
    if roll < 0.25:
        img = pil_filter(img.astype(np.float32), str(rng.choice(_FILTERS))).astype(np.float64)
    elif roll < 0.35:
        import cv2

        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    return img


def _bilinear_target(shift: tuple[float, float], radius: int) -> np.ndarray:
    target = np.zeros((2 * radius + 1, 2 * radius + 1), np.float32)
    fy, fx = shift[0] + radius, shift[1] + radius
    y0, x0 = int(np.floor(fy)), int(np.floor(fx))
    ay, ax = fy - y0, fx - x0
    for dy, wy in ((0, 1 - ay), (1, ay)):
        for dx, wx in ((0, 1 - ax), (1, ax)):
            if 0 <= y0 + dy <= 2 * radius and 0 <= x0 + dx <= 2 * radius:
                target[y0 + dy, x0 + dx] += wy * wx
    return target / target.sum()


def make_batch(
    rng: np.random.Generator, n: int, spec: TrainingSpec = DEFAULT_SPEC
) -> dict[str, np.ndarray]:
    """``n`` training examples: normalised ``ref`` and ``sec`` inputs, ``shift``, ``target``.

    Examples
    --------
    >>> b = make_batch(np.random.default_rng(0), 2)
    >>> b["ref"].shape, b["sec"].shape, b["target"].shape
    ((2, 64, 64, 1), (2, 80, 80, 1), (2, 17, 17))
    """
    refs = np.empty((n, spec.ref_size, spec.ref_size, 1), np.float32)
    secs = np.empty((n, spec.sec_size, spec.sec_size, 1), np.float32)
    shifts = np.empty((n, 2), np.float32)
    targets = np.empty((n, 2 * spec.radius + 1, 2 * spec.radius + 1), np.float32)
    for i in range(n):
        ref, sec, shift = _fractal_example(rng, spec)
        refs[i, ..., 0], secs[i, ..., 0] = _crops(ref, sec, spec)
        shifts[i] = shift
        targets[i] = _bilinear_target(shift, spec.radius)
    return {"ref": refs, "sec": secs, "shift": shifts, "target": targets}


def _fractal_example(
    rng: np.random.Generator, spec: TrainingSpec
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """One normalised fractal-texture scene pair and its shift (as :func:`make_batch` draws)."""
    shift = tuple(rng.uniform(-spec.max_shift, spec.max_shift, 2))
    big = rng.random() < 0.4
    rotation = rng.uniform(-15, 15) if big else rng.uniform(-2, 2)
    scale = 1.0 + (rng.uniform(-0.04, 0.04) if big else rng.uniform(-0.01, 0.01))
    shear = rng.uniform(-0.06, 0.06) if rng.random() < 0.3 else 0.0
    looks = None if rng.random() < 0.15 else float(rng.integers(1, 9))
    ref, sec = make_scene_pair(
        rng, spec.scene, shift, rotation=rotation, scale=scale, shear=shear, looks=looks
    )
    ref, sec = local_normalise(_radiometry(rng, ref)), local_normalise(_radiometry(rng, sec))
    return ref, sec, shift  # type: ignore[return-value]


def _crops(ref: np.ndarray, sec: np.ndarray, spec: TrainingSpec) -> tuple[np.ndarray, np.ndarray]:
    """Cut the network's reference and secondary inputs about the scene centre."""
    assert spec.scene // 2 - 1 - spec.sec_size // 2 >= LCN_RADIUS
    half = spec.scene // 2
    # the scene centre is at (scene - 1) / 2: even patches straddle it
    r0 = half - spec.ref_size // 2
    s0 = half - spec.sec_size // 2
    return (
        ref[r0 : r0 + spec.ref_size, r0 : r0 + spec.ref_size],
        sec[s0 : s0 + spec.sec_size, s0 : s0 + spec.sec_size],
    )


def make_sar_batch(
    rng: np.random.Generator,
    n: int,
    spec: TrainingSpec = DEFAULT_SPEC,
    *,
    sar_fraction: float = 1.0,
    max_displacement: float = 4.0,
) -> dict[str, np.ndarray]:
    """``n`` examples from Sentinel-1-like scenes, in :func:`make_batch`'s format.

    Each example is drawn, with probability ``sar_fraction``, from
    :func:`trackoff_xr.testing.sar_scenes.sar_pair_layers` (margins,
    saturation, featureless areas, scatterers, crevasses, real DEM and photo
    texture, temporal change, radiometric change, non-rigid fields, speckle,
    8-bit quantisation), otherwise as :func:`make_batch` draws it. The pair's
    displacement field is made to average ``shift`` over the template (the
    central ``spec.patch`` square), which is also what the evaluation's truth
    (:func:`~trackoff_xr.testing.synthetic.truth_at_points`) measures; its
    non-uniform part is at most ``max_displacement`` px.

    Returns
    -------
    dict
        ``ref``, ``sec``, ``shift``, ``target`` as :func:`make_batch`, plus
        ``spread`` (n,): the largest distance (px) of the field over the
        template from ``shift`` (0 for fractal examples and rigid shifts),
        and ``changed`` (n,): the fraction of the template whose texture
        changed between the dates.

    Raises
    ------
    InvalidParameterError
        ``sar_fraction`` outside [0, 1] or a negative ``max_displacement``.

    Examples
    --------
    >>> b = make_sar_batch(np.random.default_rng(0), 2)
    >>> b["ref"].shape, b["sec"].shape, b["target"].shape, b["spread"].shape
    ((2, 64, 64, 1), (2, 80, 80, 1), (2, 17, 17), (2,))
    """
    from ...exceptions import InvalidParameterError
    from ...testing.sar_scenes import sar_pair_layers

    if not 0.0 <= sar_fraction <= 1.0:
        raise InvalidParameterError(f"sar_fraction must be in [0, 1]; received {sar_fraction!r}")
    if not max_displacement >= 0:
        raise InvalidParameterError(
            f"max_displacement must be >= 0 px; received {max_displacement!r}"
        )
    refs = np.empty((n, spec.ref_size, spec.ref_size, 1), np.float32)
    secs = np.empty((n, spec.sec_size, spec.sec_size, 1), np.float32)
    shifts = np.empty((n, 2), np.float32)
    targets = np.empty((n, 2 * spec.radius + 1, 2 * spec.radius + 1), np.float32)
    spread = np.zeros(n, np.float32)
    changed = np.zeros(n, np.float32)
    r0 = (spec.scene - spec.patch) // 2
    template = (slice(r0, r0 + spec.patch),) * 2
    for i in range(n):
        if rng.random() < sar_fraction:
            sub = np.random.default_rng(int(rng.integers(2**63)))
            sy, sx = (float(v) for v in sub.uniform(-spec.max_shift, spec.max_shift, 2))
            shift = (sy, sx)
            pair = sar_pair_layers(
                (spec.scene, spec.scene),
                sub,
                shift=shift,
                anchor=spec.patch,
                max_displacement=max_displacement,
            )
            ref, sec = local_normalise(pair.ref), local_normalise(pair.sec)
            dev = np.hypot(pair.dy[template] - shift[0], pair.dx[template] - shift[1])
            spread[i] = dev.max()
            changed[i] = pair.changed[template].mean()
        else:
            ref, sec, shift = _fractal_example(rng, spec)
        refs[i, ..., 0], secs[i, ..., 0] = _crops(ref, sec, spec)
        shifts[i] = shift
        targets[i] = _bilinear_target(shift, spec.radius)
    return {
        "ref": refs,
        "sec": secs,
        "shift": shifts,
        "target": targets,
        "spread": spread,
        "changed": changed,
    }
