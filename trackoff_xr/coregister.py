"""Global offset between two scenes of one orbit and frame, as a search prior.

Repeat-pass GRD slices are not pixel-aligned: the secondary's first line
is some tens of lines (the slice start moves along the orbit) and a few
samples (the orbit tube, the near range) away from the reference's.
:func:`coregister` measures that offset in three steps:

1. **Annotation** (radar geometry, from :func:`trackoff_xr.io.safe.open_safe`
   attributes). Lines: the time of each first line after its orbit's
   ascending node, differenced and divided by the azimuth time interval,
   ``dy = ((t1 - anx1) - (t2 - anx2)) / dt_az`` (without ascending node
   times, the first-line times' difference less its whole days). Samples:
   the near-range slant range times' difference, carried to ground range
   with the near-range incidence angle, ``dx = -c/2 (tau2 - tau1) /
   sin(theta) / spacing``. Map-geometry pairs (already on one grid) start at 0.
2. **Coarse correlation**: both images block-averaged ``factor`` times
   (speckle averages out; one lazy pass over each scene, no scene in
   memory), a grid of patches correlated (NCC) within ``reach`` pixels
   of the annotation's offset; the median of the good matches.
3. **Fine correlation**: a sparse grid of full-resolution patches (only
   those are read) searched a few pixels around the coarse offset, with
   sub-pixel peaks. The offset is the median over the matches of the
   largest cluster (within ``1`` pixel of the median), which is stable
   ground wherever the ground that does not move covers most of the scene.
   With ``fit="affine"`` a robust least-squares plane ``d = a + b y + c x``
   per component is fitted to the fine matches instead.

The result is a Dataset of ``dy``, ``dx`` (pixels) on a coarse grid of the
reference's coordinates, the form ``trackoff_xr.offsets(..., prior=...)``
reads (it interpolates the prior at every point); the estimate and how it
was found are in its attributes.

Examples
--------
>>> from trackoff_xr.testing import shifted_pair
>>> ref, sec = shifted_pair((512, 512), shift=(-27.3, 35.6), seed=1)
>>> prior = coregister(ref, sec, factor=4)
>>> abs(prior.attrs["global_dy"] + 27.3) < 0.1, abs(prior.attrs["global_dx"] - 35.6) < 0.1
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from .exceptions import CoregistrationError, InvalidParameterError

__all__ = ["annotation_offset", "coregister"]

SPEED_OF_LIGHT = 299_792_458.0
_FITS = ("constant", "affine")


def _time(value: Any) -> np.datetime64 | None:
    if value is None or value == "":
        return None
    return np.datetime64(str(value).strip().rstrip("Z"), "ns")


def annotation_offset(ref: xr.DataArray, sec: xr.DataArray) -> tuple[float, float, str]:
    """Offset ``(dy, dx)`` in pixels between two radar-geometry scenes, from their annotation.

    Parameters
    ----------
    ref, sec : xarray.DataArray
        Images from :func:`trackoff_xr.io.safe.open_safe` (their attributes
        are read: ``first_line_time``, ``azimuth_time_interval``,
        ``ascending_node_time``, ``slant_range_time``,
        ``incidence_angle_near_range``, ``range_pixel_spacing``).

    Returns
    -------
    dy, dx : float
        A stable ground point at reference ``(y, x)`` is at secondary
        ``(y + dy, x + dx)``.
    method : str
        What was used.

    Raises
    ------
    InvalidParameterError
        An image without those attributes.

    Examples
    --------
    >>> attrs = {"first_line_time": "2021-04-01T05:26:23.0", "azimuth_time_interval": 0.0015,
    ...          "ascending_node_time": "2021-04-01T04:49:55.0", "slant_range_time": 5.0e-3,
    ...          "incidence_angle_near_range": 30.0, "range_pixel_spacing": 10.0}
    >>> ref = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), attrs=attrs)
    >>> later = dict(attrs, first_line_time="2021-04-13T05:26:23.03",
    ...              ascending_node_time="2021-04-13T04:49:55.0")
    >>> dy, dx, _ = annotation_offset(ref, ref.copy().assign_attrs(later))
    >>> round(dy, 6), abs(round(dx, 6))
    (-20.0, 0.0)
    """
    a, b = ref.attrs, sec.attrs
    for key in ("first_line_time", "azimuth_time_interval"):
        for name, attrs in (("ref", a), ("sec", b)):
            if attrs.get(key) is None:
                raise InvalidParameterError(
                    f"{name} has no {key!r} attribute, so its radar timing is unknown; open "
                    "both products with trackoff_xr.io.safe.open_safe, or coregister them as "
                    "map images (geometry='map')"
                )
    t1, t2 = _time(a["first_line_time"]), _time(b["first_line_time"])
    if t1 is None or t2 is None:  # present but empty
        raise InvalidParameterError(
            f"first_line_time is empty (ref {a['first_line_time']!r}, sec "
            f"{b['first_line_time']!r}); open both products with trackoff_xr.io.safe.open_safe"
        )
    ati = float(a["azimuth_time_interval"])
    anx1, anx2 = _time(a.get("ascending_node_time")), _time(b.get("ascending_node_time"))
    if anx1 is not None and anx2 is not None:
        lag = ((t2 - anx2) - (t1 - anx1)) / np.timedelta64(1, "s")
        how = "first line times after the ascending node / azimuth time interval"
    else:
        days = (t2 - t1) / np.timedelta64(1, "D")
        lag = ((t2 - t1) - np.timedelta64(int(round(days)), "D")) / np.timedelta64(1, "s")
        how = "first line times less whole days / azimuth time interval"
    dy = -float(lag) / ati
    dx = 0.0
    tau1, tau2 = a.get("slant_range_time"), b.get("slant_range_time")
    theta = a.get("incidence_angle_near_range", a.get("incidence_angle_mid_swath"))
    spacing = a.get("range_pixel_spacing")
    if tau1 is not None and tau2 is not None and theta is not None and spacing is not None:
        slant = SPEED_OF_LIGHT / 2.0 * (float(tau2) - float(tau1))
        dx = -slant / np.sin(np.radians(float(theta))) / float(spacing)
        how += "; near-range slant range times / sin(incidence) / pixel spacing"
    return dy, float(dx), how


def _block_means(images: list[xr.DataArray], factor: int) -> list[np.ndarray]:
    """Block-averaged images, computed together in one lazy pass."""
    import dask

    coarse = []
    for image in images:
        ydim, xdim = image.dims
        coarse.append(image.coarsen({ydim: factor, xdim: factor}, boundary="trim").mean().data)
    return [np.asarray(c, dtype=np.float32) for c in dask.compute(*coarse)]


def _match(
    ref: np.ndarray,
    sec: np.ndarray,
    centres: list[tuple[int, int]],
    shift: tuple[int, int],
    patch: int,
    radius: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """NCC of ref patches (top-left ``centres``) against sec around ``+shift``."""
    from .kernels.ncc import ncc_surfaces
    from .kernels.subpixel import refine_peaks

    templates, windows, where = [], [], []
    for y0, x0 in centres:
        wy, wx = y0 + shift[0] - radius, x0 + shift[1] - radius
        size = patch + 2 * radius
        if wy < 0 or wx < 0 or wy + size > sec.shape[0] or wx + size > sec.shape[1]:
            continue
        if y0 + patch > ref.shape[0] or x0 + patch > ref.shape[1]:
            continue
        templates.append(ref[y0 : y0 + patch, x0 : x0 + patch])
        windows.append(sec[wy : wy + size, wx : wx + size])
        where.append((y0 + (patch - 1) / 2.0, x0 + (patch - 1) / 2.0))
    if not templates:
        empty = np.empty(0)
        return empty, empty, empty, np.empty((0, 2))
    surfaces = ncc_surfaces(np.stack(templates), np.stack(windows))
    dy, dx, peak = refine_peaks(surfaces, "gaussian")
    # a maximum on the window's border is not a measurement
    edge = (np.abs(dy) >= radius - 0.5) | (np.abs(dx) >= radius - 0.5)
    peak = np.where(edge, np.nan, peak)
    return dy + shift[0], dx + shift[1], peak, np.asarray(where)


def _starts(length: int, patch: int, count: int, margin: int) -> list[int]:
    low, high = margin, length - patch - margin
    if high < low:
        return []
    return sorted({int(v) for v in np.linspace(low, high, count).round()})


def _cluster(dy: np.ndarray, dx: np.ndarray, tol: float) -> np.ndarray:
    """Mask of the matches within ``tol`` of the (component-wise) median."""
    my, mx = np.median(dy), np.median(dx)
    return np.hypot(dy - my, dx - mx) <= tol


def _fit_affine(
    points: np.ndarray, dy: np.ndarray, dx: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust planes ``d = a + b*y + c*x``: refit on the matches within 3 MAD of the fit."""
    design = np.column_stack([np.ones(len(points)), points[:, 0], points[:, 1]])
    coef_y = coef_x = np.zeros(3)
    for _ in range(8):
        coef_y = np.linalg.lstsq(design[keep], dy[keep], rcond=None)[0]
        coef_x = np.linalg.lstsq(design[keep], dx[keep], rcond=None)[0]
        res = np.hypot(dy - design @ coef_y, dx - design @ coef_x)
        mad = max(float(np.median(res[keep])), 0.05)
        new = res <= 3.0 * 1.4826 * mad + 0.1
        if new.sum() < 3 or np.array_equal(new, keep):
            break
        keep = new
    return coef_y, coef_x, keep


def _patch_stacks(
    reads: list[tuple[xr.DataArray, list[tuple[int, int]], int]],
) -> list[np.ndarray]:
    """Read only the ``size`` x ``size`` patches at ``starts`` of each image (one compute)."""
    import dask

    pieces = [
        [image.data[y : y + size, x : x + size] for y, x in starts] for image, starts, size in reads
    ]
    computed = dask.compute(*pieces)
    return [np.stack([np.asarray(p, dtype=np.float32) for p in stack]) for stack in computed]


def coregister(
    ref: xr.DataArray,
    sec: xr.DataArray,
    *,
    fit: str = "constant",
    factor: int = 8,
    reach: int = 64,
    patch: int = 64,
    points: int = 12,
    min_score: float = 0.3,
    use_annotation: bool = True,
) -> xr.Dataset:
    """Measure the global offset between two scenes and return it as a search prior.

    Parameters
    ----------
    ref, sec : xarray.DataArray
        Two 2-D images of one scene (numpy- or dask-backed; sizes may
        differ): radar-geometry products from
        :func:`trackoff_xr.io.safe.open_safe`, or map images on one grid.
    fit : {"constant", "affine"}
        One offset for the scene, or a plane ``a + b y + c x`` per
        component (for residual rotation/scale, e.g. along-track drift).
    factor : int
        Block averaging of the coarse pass (``1`` skips it).
    reach : int
        Largest error of the annotation offset that is searched (pixels of
        the full image); the coarse pass searches ``reach / factor`` blocks.
    patch : int
        Template size of the fine pass (the coarse pass uses 32 blocks).
    points : int
        Patches per axis of each pass (``points**2`` at most).
    min_score : float
        Matches with a lower NCC peak are not used.
    use_annotation : bool
        Start from the annotation offset (radar geometry); ``False`` starts
        at 0.

    Returns
    -------
    xarray.Dataset
        ``dy``, ``dx`` (float32, pixels) on a 17 x 17 grid spanning the
        reference's coordinates, with its ``spatial_ref`` if any, usable as
        ``trackoff_xr.offsets(ref, sec, prior=...)`` where ``ref``/``sec``
        are on one grid. Attributes: ``global_dy``, ``global_dx`` (the
        offset at the image centre), ``annotation_dy``, ``annotation_dx``,
        ``coregistration_method``, ``fit``, ``n_matches``,
        ``residual_std`` (pixels, of the used matches about the fit), and
        for ``fit="affine"`` the coefficients ``affine_dy``, ``affine_dx``
        (``[a, b, c]`` in pixel indices).

    Raises
    ------
    InvalidParameterError
        Bad parameters, or a radar image without timing attributes.
    CoregistrationError
        Fewer than 5 good matches (the scenes do not overlap, are
        featureless, or are further apart than ``reach``).
    """
    from .inputs import spatial_dims

    if fit not in _FITS:
        raise InvalidParameterError(f"fit={fit!r} is not known; use one of {_FITS}")
    for name, value, low in (("factor", factor, 1), ("reach", reach, 1), ("patch", patch, 8)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise InvalidParameterError(f"{name}={value!r} must be an integer >= {low}")
    if not isinstance(points, (int, np.integer)) or points < 3:
        raise InvalidParameterError(f"points={points!r} must be an integer >= 3")
    for name, image in (("ref", ref), ("sec", sec)):
        if not isinstance(image, xr.DataArray) or image.ndim != 2:
            raise InvalidParameterError(
                f"{name} must be a 2-D xarray.DataArray; got {type(image).__name__} "
                f"{getattr(image, 'shape', '')}"
            )
    ydim, xdim = spatial_dims(ref, "ref")
    ref = ref.transpose(ydim, xdim)
    sec = sec.transpose(*spatial_dims(sec, "sec"))

    radar = ref.attrs.get("geometry") == "radar" and "first_line_time" in ref.attrs
    ann_dy = ann_dx = 0.0
    methods = []
    if use_annotation and radar:
        ann_dy, ann_dx, how = annotation_offset(ref, sec)
        methods.append(f"annotation ({how})")
    est = (ann_dy, ann_dx)

    # -- coarse pass on block averages
    if factor > 1:
        small_ref, small_sec = _block_means([ref, sec], factor)
        cpatch = 32
        radius = int(np.ceil(reach / factor)) + 1
        ys = _starts(small_ref.shape[0], cpatch, points, 0)
        xs = _starts(small_ref.shape[1], cpatch, points, 0)
        shift = (int(round(est[0] / factor)), int(round(est[1] / factor)))
        cdy, cdx, cpeak, _ = _match(
            small_ref, small_sec, [(y, x) for y in ys for x in xs], shift, cpatch, radius
        )
        good = np.isfinite(cpeak) & (cpeak >= min_score)
        if good.sum() < 5:
            raise CoregistrationError(
                f"the coarse pass (blocks of {factor} pixels) found {int(good.sum())} good "
                f"matches of {len(cpeak)} (NCC >= {min_score}); the scenes may not overlap, be "
                f"featureless, or lie more than reach={reach} pixels from the annotation's "
                "offset: raise reach=, lower factor= or min_score="
            )
        cy, cx = cdy[good], cdx[good]
        keep = _cluster(cy, cx, 1.0)
        est = (float(np.median(cy[keep])) * factor, float(np.median(cx[keep])) * factor)
        methods.append(f"NCC of {factor}x{factor} block means, median of {int(keep.sum())}")

    # -- fine pass: sparse full-resolution patches
    radius = max(4, factor // 2 + 2) if factor > 1 else reach
    shift = (int(round(est[0])), int(round(est[1])))
    size = patch + 2 * radius
    rows, cols = ref.shape
    starts = [
        (y, x)
        for y in _starts(rows, patch, points, 0)
        for x in _starts(cols, patch, points, 0)
        if 0 <= y + shift[0] - radius
        and y + shift[0] - radius + size <= sec.shape[0]
        and 0 <= x + shift[1] - radius
        and x + shift[1] - radius + size <= sec.shape[1]
    ]
    if len(starts) < 5:
        raise CoregistrationError(
            f"only {len(starts)} fine patches of {patch} pixels fit both scenes at the offset "
            f"({shift[0]}, {shift[1]}); the scenes barely overlap: use a smaller patch="
        )
    templates, windows = _patch_stacks(
        [
            (ref, starts, patch),
            (sec, [(y + shift[0] - radius, x + shift[1] - radius) for y, x in starts], size),
        ]
    )
    from .kernels.ncc import ncc_surfaces
    from .kernels.subpixel import refine_peaks

    surfaces = ncc_surfaces(templates, windows)
    fdy, fdx, fpeak = refine_peaks(surfaces, "gaussian")
    edge = (np.abs(fdy) >= radius - 0.5) | (np.abs(fdx) >= radius - 0.5)
    good = np.isfinite(fpeak) & (fpeak >= min_score) & ~edge
    if good.sum() < 5:
        raise CoregistrationError(
            f"the full-resolution pass found {int(good.sum())} good matches of {len(starts)} "
            f"(NCC >= {min_score}); the images may be too noisy or featureless: lower "
            "min_score= or raise patch="
        )
    where = np.array([(y + (patch - 1) / 2.0, x + (patch - 1) / 2.0) for y, x in starts])
    fdy, fdx = fdy.astype(np.float64) + shift[0], fdx.astype(np.float64) + shift[1]
    fdy, fdx, where = fdy[good], fdx[good], where[good]
    keep = _cluster(fdy, fdx, 1.0)
    centre = np.array([(rows - 1) / 2.0, (cols - 1) / 2.0])
    attrs: dict[str, Any] = {"fit": fit}
    if fit == "affine" and keep.sum() >= 6:
        # a plane spreads the offsets: start from a wider cluster, trim by residuals
        coef_y, coef_x, keep = _fit_affine(where, fdy, fdx, _cluster(fdy, fdx, 3.0))
        design = np.column_stack([np.ones(len(where)), where])
        res = np.hypot(fdy - design @ coef_y, fdx - design @ coef_x)[keep]
        gdy = float(coef_y @ [1.0, *centre])
        gdx = float(coef_x @ [1.0, *centre])
        attrs["affine_dy"] = [float(c) for c in coef_y]
        attrs["affine_dx"] = [float(c) for c in coef_x]
        methods.append(f"full-resolution NCC, robust affine fit to {int(keep.sum())} matches")
    else:
        if fit == "affine":
            raise CoregistrationError(
                f"fit='affine' needs at least 6 consistent matches, found {int(keep.sum())}; "
                "use fit='constant' or raise points="
            )
        gdy, gdx = float(np.median(fdy[keep])), float(np.median(fdx[keep]))
        coef_y, coef_x = np.array([gdy, 0.0, 0.0]), np.array([gdx, 0.0, 0.0])
        res = np.hypot(fdy - gdy, fdx - gdx)[keep]
        methods.append(f"full-resolution NCC, median of {int(keep.sum())} matches")

    # the prior: the fit on a coarse grid of the reference's own coordinates
    iy = np.linspace(0, rows - 1, 17)
    ix = np.linspace(0, cols - 1, 17)
    yy, xx = np.meshgrid(iy, ix, indexing="ij")
    dy_grid = coef_y[0] + coef_y[1] * yy + coef_y[2] * xx
    dx_grid = coef_x[0] + coef_x[1] * yy + coef_x[2] * xx
    ycoord = np.interp(iy, np.arange(rows), np.asarray(ref[ydim].values, dtype=np.float64))
    xcoord = np.interp(ix, np.arange(cols), np.asarray(ref[xdim].values, dtype=np.float64))
    prior = xr.Dataset(
        {
            "dy": ((ydim, xdim), dy_grid.astype(np.float32), {"units": "pixel"}),
            "dx": ((ydim, xdim), dx_grid.astype(np.float32), {"units": "pixel"}),
        },
        coords={ydim: ycoord, xdim: xcoord},
    )
    if "spatial_ref" in ref.coords:
        prior = prior.assign_coords(spatial_ref=ref.coords["spatial_ref"])
    attrs.update(
        global_dy=gdy,
        global_dx=gdx,
        annotation_dy=float(ann_dy),
        annotation_dx=float(ann_dx),
        coregistration_method="; then ".join(methods),
        n_matches=int(keep.sum()),
        residual_std=float(np.sqrt(np.mean(res**2))) if res.size else float("nan"),
    )
    prior.attrs = attrs
    return prior
