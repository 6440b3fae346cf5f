"""Training examples of the per-tile classifier: every candidate tile and its augmentations.

Łucka (2025) writes, for every candidate secondary tile, the tile itself and
a set of augmented copies as 8-bit PNG files. Here the same recipes run on
in-memory uint8 batches with :mod:`trackoff_xr.kernels.augment`: all tiles of a block
and all their candidates at once, no files.

The recipes of the paper (``AugmentConfig.paper()``, 72 images per class):

* the tile, and the tile filtered with CONTOUR, FIND_EDGES, EMBOSS, DETAIL,
  EDGE_ENHANCE, SHARPEN, SMOOTH (family ``"filters"``);
* the tile cut ``buff = 2`` px larger and smaller and resized back, each also
  with DETAIL, EDGE_ENHANCE, SHARPEN, SMOOTH (family ``"rescale"``);
* a 15 px larger crop rotated by -15, -10, -5, 5, 10, 15 degrees, its centre
  cut out, each also with all eight filters, filtered before cutting
  (family ``"rotate"``).

Differences from the original, all at the edge of the search window only:
filters of the plain tile are computed on the whole search window (padded by
reflection) and then cut, and rotated/rescaled crops that reach past the
search window read reflected pixels there instead of image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ...exceptions import InvalidParameterError
from ...kernels.augment import PIL_FILTERS, pil_filter, rescale, rotate
from .classes import crop_corners

__all__ = ["FAMILIES", "AugmentConfig", "to_uint8", "training_images"]

#: Augmentation families that can be switched off one by one.
FAMILIES = ("filters", "rescale", "rotate")

_ALL = ("CONTOUR", "FIND_EDGES", "EMBOSS", "DETAIL", "EDGE_ENHANCE", "SHARPEN", "SMOOTH", "BLUR")
_DETAIL = ("DETAIL", "EDGE_ENHANCE", "SHARPEN", "SMOOTH")


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmented copies of each candidate tile are trained on.

    Parameters
    ----------
    filters : tuple of str
        PIL filters applied to the plain tile.
    rescale : tuple of int
        ``buff`` values: crop ``buff`` px larger (> 0) or smaller (< 0) on each
        side, resize back to the tile size.
    rescale_filters : tuple of str
        Filters applied to each rescaled tile.
    angles : tuple of float
        Rotations, degrees counter-clockwise, of a crop ``rotate_margin`` px
        larger on each side, whose centre is then cut out.
    rotate_filters : tuple of str
        Filters applied to each rotated crop (before cutting the centre).
    rotate_margin : int
        See ``angles`` (15 in the paper).
    """

    filters: tuple[str, ...] = ()
    rescale: tuple[int, ...] = ()
    rescale_filters: tuple[str, ...] = ()
    angles: tuple[float, ...] = ()
    rotate_filters: tuple[str, ...] = ()
    rotate_margin: int = 15

    def __post_init__(self) -> None:
        for name in (*self.filters, *self.rescale_filters, *self.rotate_filters):
            if name not in PIL_FILTERS:
                raise InvalidParameterError(
                    f"augmentation filter {name!r} is not one of the paper's filters; use "
                    f"one of {sorted(PIL_FILTERS)}"
                )
        if any(int(b) == 0 for b in self.rescale):
            raise InvalidParameterError("rescale buff 0 is the plain tile; use e.g. (2, -2)")

    @classmethod
    def paper(cls) -> AugmentConfig:
        """Return the recipes of Łucka (2025): 72 images per class."""
        return cls(
            filters=_ALL[:-1],
            rescale=(2, -2),
            rescale_filters=_DETAIL,
            angles=(-15, -10, -5, 5, 10, 15),
            rotate_filters=_ALL,
            rotate_margin=15,
        )

    @classmethod
    def fast(cls) -> AugmentConfig:
        """Return a small set (7 images per class): two filters, +-2 px rescaling, +-5 deg."""
        return cls(filters=("SMOOTH", "SHARPEN"), rescale=(2, -2), angles=(-5, 5), rotate_margin=5)

    def without(self, *families: str) -> AugmentConfig:
        """Return the same recipes with whole families (:data:`FAMILIES`) switched off.

        Examples
        --------
        >>> AugmentConfig.paper().without("rotate", "rescale").per_class
        8
        """
        unknown = sorted(set(families) - set(FAMILIES))
        if unknown:
            raise InvalidParameterError(
                f"augmentation families {unknown} do not exist; use some of {list(FAMILIES)}"
            )
        cfg = self
        if "filters" in families:
            cfg = replace(cfg, filters=(), rescale_filters=(), rotate_filters=())
        if "rescale" in families:
            cfg = replace(cfg, rescale=(), rescale_filters=())
        if "rotate" in families:
            cfg = replace(cfg, angles=(), rotate_filters=())
        return cfg

    @property
    def per_class(self) -> int:
        """Training images per class (the plain tile included)."""
        return (
            1
            + len(self.filters)
            + len(self.rescale) * (1 + len(self.rescale_filters))
            + len(self.angles) * (1 + len(self.rotate_filters))
        )

    @property
    def margin(self) -> int:
        """Pixels read beyond a tile by the geometric augmentations."""
        m = max([int(b) for b in self.rescale if b > 0], default=0)
        return max(m, int(self.rotate_margin) if self.angles else 0, 1)


def to_uint8(templates: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-bit versions of templates and their windows, one linear scale per pair.

    Pairs whose values are all integers in [0, 255] (8-bit images, like the
    paper's) are kept as they are; others are mapped linearly from their
    joint minimum..maximum to 0..255 and rounded.

    Examples
    --------
    >>> t, w = to_uint8(np.full((1, 2, 2), 0.5), np.linspace(0, 1, 16).reshape(1, 4, 4))
    >>> int(t[0, 0, 0]), int(w.max())
    (128, 255)
    """
    t = np.asarray(templates, dtype=np.float64)
    w = np.asarray(windows, dtype=np.float64)
    lo = np.minimum(t.min(axis=(1, 2)), w.min(axis=(1, 2)))[:, None, None]
    hi = np.maximum(t.max(axis=(1, 2)), w.max(axis=(1, 2)))[:, None, None]
    integral = (
        ((t == np.round(t)).all(axis=(1, 2)) & (w == np.round(w)).all(axis=(1, 2)))[:, None, None]
        & (lo >= 0)
        & (hi <= 255)
    )
    scale = 255.0 / np.maximum(hi - lo, 1e-12)

    def convert(a: np.ndarray) -> np.ndarray:
        mapped = np.where(integral, a, (a - lo) * scale)
        return np.clip(np.round(mapped), 0, 255).astype(np.uint8)

    return convert(t), convert(w)


def _crops(images: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """``(n, k, size, size)`` crops of each image at each corner."""
    view = np.lib.stride_tricks.sliding_window_view(images, (size, size), axis=(1, 2))
    return view[:, corners[:, 0], corners[:, 1]]


def _u8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    np.rint(a, out=a)
    np.clip(a, 0, 255, out=a)
    return a.astype(np.uint8)


def training_images(
    windows: np.ndarray,
    patch_size: int,
    radius: int,
    step: int = 1,
    config: AugmentConfig | None = None,
) -> np.ndarray:
    """All training images of a batch of tiles: ``(n, classes, per_class, P, P)`` uint8.

    Parameters
    ----------
    windows : ndarray, shape (n, P + 2 R, P + 2 R), uint8
        Search windows of the secondary image (see :func:`to_uint8`).
    patch_size, radius : int
        ``P`` and ``R``.
    step : int
        ``candidate_step``: distance between candidate offsets.
    config : AugmentConfig
        Recipes (default: none, the plain tiles only).

    Returns
    -------
    ndarray
        Index ``[t, k, 0]`` is the plain candidate tile of class ``k``
        (:func:`trackoff_xr.matchers.classifier.classes.class_offsets`), the others
        its augmented copies in the order of :class:`AugmentConfig`'s fields.

    Examples
    --------
    >>> w = np.arange(36, dtype=np.uint8).reshape(1, 6, 6)
    >>> x = training_images(w, patch_size=4, radius=1)
    >>> x.shape, bool((x[0, 8, 0] == w[0, 2:, 2:]).all())
    ((1, 9, 1, 4, 4), True)
    """
    config = config or AugmentConfig()
    windows = np.asarray(windows, dtype=np.uint8)
    n, p = windows.shape[0], int(patch_size)
    corners = crop_corners(radius, step)
    k = corners.shape[0]
    out = np.empty((n, k, config.per_class, p, p), dtype=np.uint8)
    m = config.margin
    padded = np.pad(windows, ((0, 0), (m, m), (m, m)), mode="reflect")
    out[:, :, 0] = _crops(windows, corners, p)
    j = 1
    for name in config.filters:
        out[:, :, j] = _crops(pil_filter(padded, name, uint8=True), corners + m, p)
        j += 1
    for buff in config.rescale:
        grow = max(int(buff), 0)
        crops = _crops(padded, corners + m - grow, p + 2 * grow).reshape(n * k, p + 2 * grow, -1)
        scaled = _u8(rescale(crops, int(buff)))
        out[:, :, j] = scaled.reshape(n, k, p, p)
        for name in config.rescale_filters:
            out[:, :, j + 1] = pil_filter(scaled, name, uint8=True).reshape(n, k, p, p)
            j += 1
        j += 1
    if config.angles:
        mr = int(config.rotate_margin)
        big = _crops(padded, corners + m - mr, p + 2 * mr).reshape(n * k, p + 2 * mr, -1)
        for angle in config.angles:
            if not config.rotate_filters:  # only the centre is needed
                out[:, :, j] = _u8(rotate(big, float(angle), crop=p)).reshape(n, k, p, p)
                j += 1
                continue
            turned = _u8(rotate(big, float(angle)))
            out[:, :, j] = turned[:, mr : mr + p, mr : mr + p].reshape(n, k, p, p)
            for name in config.rotate_filters:
                filtered = pil_filter(turned, name, uint8=True)
                out[:, :, j + 1] = filtered[:, mr : mr + p, mr : mr + p].reshape(n, k, p, p)
                j += 1
            j += 1
    return out
