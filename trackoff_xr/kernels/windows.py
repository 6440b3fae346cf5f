"""Cut templates and search windows out of an image block."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["WindowLattice", "extract_windows", "window_views"]


def _lattice_view(
    image: np.ndarray, first: tuple[int, int], count: tuple[int, int], step: int, size: int
) -> np.ndarray:
    """Strided view ``(ny, nx, size, size[, channels])`` of the windows: no copy."""
    ny, nx = count
    channels = image.shape[2:]
    if ny == 0 or nx == 0:
        return np.empty((ny, nx, size, size, *channels), dtype=image.dtype)
    r0, c0 = first
    view = np.lib.stride_tricks.sliding_window_view(image, (size, size), axis=(0, 1))
    if channels:  # (rows, cols, C, size, size) -> (rows, cols, size, size, C)
        view = np.moveaxis(view, 2, -1)
    lattice = view[r0 : r0 + (ny - 1) * step + 1 : step, c0 : c0 + (nx - 1) * step + 1 : step]
    if r0 < 0 or c0 < 0 or lattice.shape[:2] != (ny, nx):
        raise ValueError(
            f"image block of shape {image.shape} cannot hold {ny} x {nx} windows of "
            f"{size} px every {step} px from {first}"
        )
    return lattice


def _shifted_view(
    image: np.ndarray,
    first: tuple[int, int],
    count: tuple[int, int],
    step: int,
    size: int,
    shifts: np.ndarray,
) -> np.ndarray:
    """Sliding-window view ``(rows', cols', size, size[, channels])`` of the whole image.

    Window ``k`` of a shifted lattice is at ``view[corner_k]``; every corner
    must leave the window inside the image.
    """
    channels = image.shape[2:]
    ny, nx = count
    if ny == 0 or nx == 0:
        return np.empty((0, 0, size, size, *channels), dtype=image.dtype)
    rows, cols = np.divmod(np.arange(ny * nx), nx)
    rows = first[0] + rows * step + shifts[:, 0]
    cols = first[1] + cols * step + shifts[:, 1]
    if (
        rows.min() < 0
        or cols.min() < 0
        or rows.max() + size > image.shape[0]
        or cols.max() + size > image.shape[1]
    ):
        raise ValueError(
            f"image block of shape {image.shape} cannot hold {ny} x {nx} windows of "
            f"{size} px every {step} px from {first} with shifts up to "
            f"{int(np.abs(shifts).max())} px"
        )
    view = np.lib.stride_tricks.sliding_window_view(image, (size, size), axis=(0, 1))
    if channels:
        view = np.moveaxis(view, 2, -1)
    return view


def extract_windows(
    image: np.ndarray,
    first: tuple[int, int],
    count: tuple[int, int],
    step: int,
    size: int,
) -> np.ndarray:
    """Copy a regular lattice of square windows out of ``image``.

    Parameters
    ----------
    image : ndarray, shape (rows, cols) or (rows, cols, channels)
        The pixels to cut from.
    first : (int, int)
        Row and column of the top-left corner of the first window.
    count : (int, int)
        Number of windows along rows and columns.
    step : int
        Distance between the corners of neighbouring windows.
    size : int
        Edge of each window.

    Returns
    -------
    ndarray, shape (count[0] * count[1], size, size[, channels])
        The windows in row-major order of the lattice, as a contiguous copy.

    Examples
    --------
    >>> img = np.arange(36.0).reshape(6, 6)
    >>> w = extract_windows(img, first=(0, 1), count=(2, 2), step=3, size=2)
    >>> w.shape
    (4, 2, 2)
    >>> w[1]
    array([[ 4.,  5.],
           [10., 11.]])
    """
    lattice = _lattice_view(image, first, count, step, size)
    ny, nx = count
    return np.ascontiguousarray(lattice).reshape(ny * nx, size, size, *image.shape[2:])


class WindowLattice:
    """A batch of equally spaced square windows of one image, without copying them.

    It stands in for the ``(n, size, size)`` array :func:`extract_windows`
    would return: ``len()``, ``.shape`` and ``.dtype`` are the array's,
    ``lattice[k]`` is window ``k`` as a *view* of the image, ``lattice[items]``
    (an index array or boolean mask) is a smaller lattice, and
    ``np.asarray(lattice)`` copies the windows out. Kernels that only look
    at one window at a time (OpenCV's ``matchTemplate``) thus read the image
    in place; per-window statistics (:meth:`stats`, :meth:`ranges`) read
    each window in place too.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        The pixels to cut from.
    first, count, step, size
        As for :func:`extract_windows`.
    shifts : ndarray, shape (count[0] * count[1], 2), int, optional
        A row and column shift for each window of the lattice (row-major):
        window ``k`` then starts at its lattice corner plus ``shifts[k]``
        (searches centred on an initial offset). All shifted windows must
        lie inside ``image``.

    Examples
    --------
    >>> img = np.arange(36.0).reshape(6, 6)
    >>> lat = WindowLattice(img, first=(0, 1), count=(2, 2), step=3, size=2)
    >>> lat.shape, np.shares_memory(lat[1], img)
    ((4, 2, 2), True)
    >>> np.array_equal(np.asarray(lat), extract_windows(img, (0, 1), (2, 2), 3, 2))
    True
    >>> lat[[1, 3]][0]
    array([[ 4.,  5.],
           [10., 11.]])
    >>> moved = WindowLattice(img, (0, 1), (2, 2), 3, 2, shifts=[[0, 0], [1, -1], [0, 0], [0, 0]])
    >>> moved[1]
    array([[ 9., 10.],
           [15., 16.]])
    >>> mean, std, finite = lat.stats()
    >>> mean[1], finite.all()
    (np.float64(7.5), np.True_)
    """

    def __init__(
        self,
        image: np.ndarray,
        first: tuple[int, int],
        count: tuple[int, int],
        step: int,
        size: int,
        items: np.ndarray | None = None,
        _image_state: dict | None = None,
        _view: np.ndarray | None = None,
        shifts: np.ndarray | None = None,
    ) -> None:
        self.image = image
        # facts about the whole image, shared with the lattice's subsets
        self._image_state = {} if _image_state is None else _image_state
        self.first: tuple[int, int] = (first[0], first[1])
        self.count: tuple[int, int] = (count[0], count[1])
        self.step, self.size = step, size
        total = self.count[0] * self.count[1]
        self.items = np.arange(total) if items is None else np.asarray(items, dtype=np.intp)
        self.shifts = None if shifts is None else np.asarray(shifts, dtype=np.intp)
        if self.shifts is not None and self.shifts.shape != (total, 2):
            raise ValueError(
                f"shifts of shape {self.shifts.shape} do not match {total} windows; "
                "give one (row, column) shift per window of the lattice"
            )
        if _view is None:
            _view = (
                _lattice_view(image, self.first, self.count, step, size)
                if self.shifts is None
                else _shifted_view(image, self.first, self.count, step, size, self.shifts)
            )
        self._view = _view

    # -- the array-like surface -------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """``(n, size, size[, channels])``, as the copied array would be."""
        return (self.items.size, self.size, self.size, *self.image.shape[2:])

    @property
    def dtype(self) -> np.dtype:
        """The image's dtype."""
        return self.image.dtype

    @property
    def ndim(self) -> int:
        """Dimensions of the copied array."""
        return len(self.shape)

    def __len__(self) -> int:
        return int(self.items.size)

    def _positions(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the windows ``items`` sit in :attr:`_view`."""
        if self.shifts is None:
            return np.divmod(items, self.count[1])
        rows, cols = self.corners_of(items)
        return rows, cols

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            r, c = self._positions(self.items[[int(key)]])
            return self._view[int(r[0]), int(c[0])]
        return WindowLattice(
            self.image,
            self.first,
            self.count,
            self.step,
            self.size,
            self.items[key],
            self._image_state,
            self._view,
            self.shifts,
        )

    def views(self, positions: np.ndarray | None = None) -> list[np.ndarray]:
        """In-place views of the windows at ``positions`` (all by default), one per window.

        The same arrays as ``[lattice[k] for k in positions]``, with the
        corners found in one vectorised step.

        Examples
        --------
        >>> img = np.arange(36.0).reshape(6, 6)
        >>> lat = WindowLattice(img, (0, 1), (2, 2), 3, 2)
        >>> [np.array_equal(v, lat[k]) for k, v in enumerate(lat.views())]
        [True, True, True, True]
        """
        picked = self.items if positions is None else self.items[np.asarray(positions)]
        rows, cols = self._positions(picked)
        view = self._view
        return [view[r, c] for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        rows, cols = self._positions(self.items)
        out = self._view[rows, cols]  # fancy indexing copies
        return out if dtype is None else out.astype(dtype, copy=False)

    @property
    def regular(self) -> bool:
        """Whether the windows lie on the regular lattice (no per-window shifts)."""
        return self.shifts is None

    def __repr__(self) -> str:
        return (
            f"WindowLattice(n={len(self)}, size={self.size}, step={self.step}, "
            f"first={self.first}, image shape={self.image.shape})"
        )

    def channel(self, index: int) -> WindowLattice:
        """Return the same windows of one channel of the image, made a contiguous 2-D image.

        The channel is copied once (OpenCV needs contiguous rows); the copy
        is the size of the image block, not of the (overlapping) windows.
        """
        image = np.ascontiguousarray(self.image[..., index])
        return WindowLattice(
            image, self.first, self.count, self.step, self.size, self.items, shifts=self.shifts
        )

    # -- statistics from integral images ---------------------------------------
    def corners(self) -> tuple[np.ndarray, np.ndarray]:
        """Image row and column of each window's top-left corner."""
        return self.corners_of(self.items)

    def corners_of(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image row and column of the top-left corners of the lattice's windows ``items``."""
        rows, cols = np.divmod(items, self.count[1])
        rows, cols = self.first[0] + rows * self.step, self.first[1] + cols * self.step
        if self.shifts is not None:
            rows, cols = rows + self.shifts[items, 0], cols + self.shifts[items, 1]
        return rows, cols

    def image_is_finite(self) -> bool:
        """Whether the whole image is free of NaN and inf (checked once per image)."""
        state = self._image_state
        if "finite" not in state:
            # a float32 sum overflowing to inf only sends us down the exact path
            state["finite"] = bool(np.isfinite(self.image.sum()))
        return state["finite"]

    def finite(self) -> np.ndarray:
        """Flag windows free of NaN and inf (one pass over the image when it has none)."""
        if self.image_is_finite():
            return np.ones(len(self), dtype=bool)
        state = self._image_state
        if "bad_integral" not in state:
            import cv2

            image = self.image
            if image.ndim == 3:  # a pixel is bad if any channel is (an OR per
                # channel: numpy's any() over a 2-long last axis crawls)
                bad = ~np.isfinite(image[..., 0])
                for c in range(1, image.shape[2]):
                    bad |= ~np.isfinite(image[..., c])
            else:
                bad = ~np.isfinite(image)
            state["bad_integral"] = cv2.integral(bad.view(np.uint8), sdepth=cv2.CV_32S)
        return self._gather(state["bad_integral"]) == 0

    def ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """Smallest and largest value of every window (NaN where it is not finite).

        One OpenCV ``minMaxLoc`` per window, read in place: each verdict
        depends on the window's own pixels only.
        """
        import cv2

        if self.image.ndim != 2:
            raise ValueError("ranges() needs a single-channel image")
        low, high = np.full(len(self), np.nan), np.full(len(self), np.nan)
        for k in np.flatnonzero(self.finite()).tolist():
            low[k], high[k], _, _ = cv2.minMaxLoc(self[k])
        return low, high

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, standard deviation and finiteness of every window.

        One OpenCV ``meanStdDev`` (float64 sums) per window, read in place:
        each window's numbers come from its own pixels only, so an extreme
        pixel elsewhere in the block cannot cancel them (block-wide integral
        images would let it). Mean and standard deviation are NaN for windows
        that are not finite.
        """
        import cv2

        if self.image.ndim != 2:
            raise ValueError("stats() needs a single-channel image")
        finite = self.finite()
        mean, std = np.full(len(self), np.nan), np.full(len(self), np.nan)
        for k in np.flatnonzero(finite).tolist():
            m, s = cv2.meanStdDev(self[k])
            mean[k], std[k] = m[0, 0], s[0, 0]
        return mean, std, finite

    def _gather(self, integral: np.ndarray) -> np.ndarray:
        """Sum of every window from an integral image (one row/column larger)."""
        r, c = self.corners()
        s = self.size
        return integral[r + s, c + s] - integral[r, c + s] - integral[r + s, c] + integral[r, c]


def window_views(batch: Any, items: np.ndarray) -> list[np.ndarray]:
    """Return the windows ``items`` of a batch, read in place (a lattice's views, an array's rows).

    Examples
    --------
    >>> img = np.arange(36.0).reshape(6, 6)
    >>> lat = WindowLattice(img, (0, 1), (2, 2), 3, 2)
    >>> [np.array_equal(a, b) for a, b in zip(window_views(lat, np.array([1, 3])),
    ...                                       window_views(np.asarray(lat), np.array([1, 3])))]
    [True, True]
    """
    if isinstance(batch, WindowLattice):
        return batch.views(items)
    return [batch[item] for item in np.asarray(items).tolist()]
