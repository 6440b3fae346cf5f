"""The augmentations of the TrackOff paper, on numpy batches.

Łucka (2025) augments each candidate tile with PIL's image filters, small
rescalings and rotations, writing image files. These functions do the same on
in-memory arrays, for batches of images ``(n, rows, cols)`` or single images:

* :func:`pil_filter` -- the eight PIL kernels (CONTOUR, FIND_EDGES, EMBOSS,
  DETAIL, EDGE_ENHANCE, SHARPEN, SMOOTH, BLUR) with PIL's scale and offset;
  ``uint8=True`` reproduces PIL on 8-bit images (rounding, clipping, the
  unfiltered one-pixel frame), the default keeps float values for training;
* :func:`rescale` -- crop ``buff`` pixels larger or smaller, resize back;
* :func:`rotate` -- rotate about the centre (the paper rotates a larger crop,
  then cuts the centre: pass the larger crop and ``crop=``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["PIL_FILTERS", "pil_filter", "rescale", "rotate"]

#: name -> (kernel, scale, offset), as PIL.ImageFilter defines them
PIL_FILTERS: dict[str, tuple[np.ndarray, float, float]] = {
    name: (np.array(kernel, dtype=np.float32).reshape(size, size), float(scale), float(offset))
    for name, size, scale, offset, kernel in [
        (
            "BLUR",
            5,
            16,
            0,
            (1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1),
        ),
        ("CONTOUR", 3, 1, 255, (-1, -1, -1, -1, 8, -1, -1, -1, -1)),
        ("DETAIL", 3, 6, 0, (0, -1, 0, -1, 10, -1, 0, -1, 0)),
        ("EDGE_ENHANCE", 3, 2, 0, (-1, -1, -1, -1, 10, -1, -1, -1, -1)),
        ("EMBOSS", 3, 1, 128, (-1, 0, 0, 0, 1, 0, 0, 0, 0)),
        ("FIND_EDGES", 3, 1, 0, (-1, -1, -1, -1, 8, -1, -1, -1, -1)),
        ("SHARPEN", 3, 16, 0, (-2, -2, -2, -2, 32, -2, -2, -2, -2)),
        ("SMOOTH", 3, 13, 0, (1, 1, 1, 1, 5, 1, 1, 1, 1)),
    ]
}


def _batch(images: np.ndarray) -> tuple[np.ndarray, bool]:
    images = np.asarray(images)
    return (images[None], True) if images.ndim == 2 else (images, False)


def pil_filter(images: np.ndarray, name: str, *, uint8: bool = False) -> np.ndarray:
    """Apply PIL's ``ImageFilter.<name>`` kernel to an image or a batch.

    Parameters
    ----------
    images : ndarray, shape (rows, cols) or (n, rows, cols)
    name : str
        One of :data:`PIL_FILTERS`.
    uint8 : bool
        Reproduce PIL on 8-bit images: add the offset, round, clip to
        [0, 255], keep the outer frame (half the kernel wide) unfiltered, and
        return uint8. Otherwise return float32 ``kernel * image / scale``
        (the offset, meaningless for normalised data, is left out).

    Examples
    --------
    >>> img = np.zeros((5, 5)); img[2, 2] = 13.0
    >>> pil_filter(img, "SMOOTH")[1:4, 1:4]
    array([[1., 1., 1.],
           [1., 5., 1.],
           [1., 1., 1.]], dtype=float32)
    """
    import cv2

    try:
        kernel, scale, offset = PIL_FILTERS[name.upper()]
    except KeyError:
        from ..exceptions import InvalidParameterError

        raise InvalidParameterError(
            f"filter {name!r} is not one of the paper's filters; use one of {sorted(PIL_FILTERS)}"
        ) from None
    batch, single = _batch(images)
    # PIL's C loop applies the kernel's first row to the row *below* the
    # pixel and its first column to the column to the left: cv2.filter2D
    # correlation with the rows flipped. PIL divides the kernel by the scale
    # in float32 first, and so do we.
    k = np.ascontiguousarray(kernel[::-1, :] / np.float32(scale))
    out = np.stack(
        [
            cv2.filter2D(img.astype(np.float32), -1, k, borderType=cv2.BORDER_REPLICATE)
            for img in batch
        ]
    )
    if uint8:
        half = kernel.shape[0] // 2
        filtered = np.clip(np.floor(out.astype(np.float64) + offset + 0.5), 0, 255).astype(np.uint8)
        framed = batch.astype(np.uint8).copy()
        framed[:, half:-half, half:-half] = filtered[:, half:-half, half:-half]
        out = framed
    return out[0] if single else out


def rescale(images: np.ndarray, buff: int) -> np.ndarray:
    """Crop ``buff`` pixels larger (``buff > 0``, zoom out) or smaller (zoom in), resize back.

    A positive ``buff`` needs the caller to pass images ``buff`` pixels wider
    on each side than wanted; the centre region is then resized from the
    larger crop. Returned images are ``2 * max(buff, 0)`` pixels smaller than
    the input in each dimension.

    Examples
    --------
    >>> rescale(np.ones((1, 20, 20), np.float32), 2).shape
    (1, 16, 16)
    """
    import cv2

    batch, single = _batch(images)
    n, rows, cols = batch.shape
    margin = max(buff, 0)
    out_shape = (rows - 2 * margin, cols - 2 * margin)
    crop = margin - buff  # pixels cut from each side before resizing
    out = np.stack(
        [
            cv2.resize(
                img[crop : rows - crop, crop : cols - crop].astype(np.float32),
                (out_shape[1], out_shape[0]),
                interpolation=cv2.INTER_LINEAR,
            )
            for img in batch
        ]
    )
    return out[0] if single else out


def rotate(images: np.ndarray, angle: float, *, crop: int | None = None) -> np.ndarray:
    """Rotate images by ``angle`` degrees (counter-clockwise) about their centres.

    With ``crop``, return the central ``crop`` x ``crop`` pixels (the paper
    rotates a larger tile, then cuts the centre so no corner is empty).

    Examples
    --------
    >>> img = np.zeros((9, 9), np.float32); img[4, 8] = 1.0
    >>> out = rotate(img, 90)
    >>> np.unravel_index(out.argmax(), out.shape)
    (np.int64(0), np.int64(4))
    """
    import cv2

    batch, single = _batch(images)
    n, rows, cols = batch.shape
    matrix = cv2.getRotationMatrix2D(((cols - 1) / 2, (rows - 1) / 2), angle, 1.0)
    out = np.stack(
        [
            cv2.warpAffine(
                img.astype(np.float32),
                matrix,
                (cols, rows),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT,
            )
            for img in batch
        ]
    )
    if crop is not None:
        r0, c0 = (rows - crop) // 2, (cols - crop) // 2
        out = out[:, r0 : r0 + crop, c0 : c0 + crop]
    return out[0] if single else out
