"""Figures of an offsets Dataset: motion map, score map, filter comparison, histograms.

Each function returns a :class:`matplotlib.figure.Figure` built without
:mod:`matplotlib.pyplot`, so nothing here changes the backend of a user's
session and no figure is left open in pyplot's registry. Save with
``fig.savefig("map.png")`` (rendered by Agg), or let Jupyter display it.

Axes follow the image: the first row of the grid is at the top. On pixel
coordinates (row index increasing downward) the y axis is inverted; on a
north-up georeferenced grid (y decreasing with row) it is not. Arrows are
drawn in data coordinates (``angles="xy"``) with components ``dx`` and
``dy`` times the signed coordinate step of one pixel, so a positive ``dy``
points down the image on either kind of grid.

>>> import trackoff_xr
>>> from trackoff_xr.testing.synthetic import shifted_pair
>>> ref, sec = shifted_pair((160, 160), shift=(2.0, -3.0), seed=0)
>>> ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=16, search_radius=6, method="ncc")
>>> fig = velocity_map(ds, background=ref)
>>> type(fig).__name__, len(fig.axes)   # the map and its colour bar
('Figure', 2)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .exceptions import InvalidParameterError
from .schema import check_offsets, valid_mask

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["filter_comparison", "offset_histogram", "score_map", "velocity_map"]

#: Arrows drawn along the longer grid axis of :func:`velocity_map`.
ARROWS_ACROSS = 22
#: Longest edge, in pixels, of a background image after block-averaging.
BACKGROUND_MAX_PIXELS = 1600


def _new_figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=110, layout="constrained")


def _check(ds: Any, func: str) -> xr.Dataset:
    check_offsets(ds, func)
    names = [n for n in ("dx", "dy", "score", "valid", "v", "vx", "vy", "interp_mask") if n in ds]
    return ds[names].compute()


def _valid(ds: xr.Dataset) -> np.ndarray:
    return np.asarray(valid_mask(ds).values)


def _magnitude(ds: xr.Dataset) -> tuple[np.ndarray, str]:
    """Speed if the Dataset has ``v``, else the offset length in pixels, NaN where invalid."""
    valid = _valid(ds)
    if "v" in ds:
        units = ds["v"].attrs.get("units", "meter/year")
        return np.where(valid, ds["v"].values, np.nan), f"velocity ({units})"
    return np.where(
        valid, np.hypot(ds["dx"].values, ds["dy"].values), np.nan
    ), "offset magnitude (pixel)"


def _steps(ds: xr.Dataset) -> tuple[float, float]:
    """Signed coordinate step of one grid cell along y and x."""
    out = []
    for dim in ("y", "x"):
        values = np.asarray(ds[dim].values, dtype=np.float64)
        spacing = float(ds.attrs.get("spacing", 1))
        out.append(float(values[1] - values[0]) if values.size > 1 else spacing)
    return out[0], out[1]


def _pixel_steps(ds: xr.Dataset) -> tuple[float, float]:
    """Signed coordinate step of one image pixel along y and x."""
    spacing = float(ds.attrs.get("spacing", 1) or 1)
    sy, sx = _steps(ds)
    if ds.sizes["y"] < 2 and ds.sizes["x"] < 2:
        return 1.0, 1.0
    return sy / spacing, sx / spacing


def _extent(ds: xr.Dataset) -> tuple[float, float, float, float]:
    """``(left, right, bottom, top)`` of the grid cells, first row on top."""
    sy, sx = _steps(ds)
    y, x = ds["y"].values, ds["x"].values
    return (
        float(x[0] - sx / 2),
        float(x[-1] + sx / 2),
        float(y[-1] + sy / 2),
        float(y[0] - sy / 2),
    )


def _frame(ax: Axes, ds: xr.Dataset) -> None:
    left, right, bottom, top = _extent(ds)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)  # first row on top, whichever way y runs
    ax.set_aspect("equal")
    pixel_grid = "spatial_ref" not in ds.coords and _pixel_steps(ds) == (1.0, 1.0)
    ax.set_xlabel("column (pixel)" if pixel_grid else _coord_label(ds, "x"))
    ax.set_ylabel("row (pixel)" if pixel_grid else _coord_label(ds, "y"))


def _coord_label(ds: xr.Dataset, dim: str) -> str:
    units = ds[dim].attrs.get("units")
    return f"{dim} ({units})" if units else dim


def _robust_max(values: np.ndarray, q: float = 99.0) -> float:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 1.0
    top = float(np.percentile(finite, q))
    return top if top > 0 else max(float(finite.max()), 1.0)


def _background(ax: Axes, image: xr.DataArray) -> None:
    """Draw ``image`` in grey, block-averaged to a screen size and 2-98 % stretched."""
    if not isinstance(image, xr.DataArray) or image.ndim != 2:
        raise InvalidParameterError(
            f"background must be a 2-D xarray.DataArray (the reference image), got "
            f"{type(image).__name__}; open it with trackoff_xr.open_image(path)"
        )
    ydim, xdim = image.dims
    factor = max(1, math.ceil(max(image.shape) / BACKGROUND_MAX_PIXELS))
    if factor > 1:
        image = image.coarsen({ydim: factor, xdim: factor}, boundary="trim").mean()
    values = np.asarray(image.values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    y = image[ydim].values if ydim in image.coords else np.arange(image.shape[0]) * factor
    x = image[xdim].values if xdim in image.coords else np.arange(image.shape[1]) * factor
    sy = float(y[1] - y[0]) if y.size > 1 else 1.0
    sx = float(x[1] - x[0]) if x.size > 1 else 1.0
    extent = (x[0] - sx / 2, x[-1] + sx / 2, y[-1] + sy / 2, y[0] - sy / 2)
    ax.imshow(
        values,
        cmap="gray",
        vmin=lo,
        vmax=hi,
        extent=extent,
        origin="upper",
        interpolation="antialiased",
    )


def velocity_map(
    ds: xr.Dataset,
    background: xr.DataArray | None = None,
    *,
    title: str | None = None,
    arrows: int = ARROWS_ACROSS,
) -> Figure:
    """Map of the motion: magnitude in colour, direction as arrows, over the image.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of :func:`trackoff_xr.offsets`, filtered or not. Shows ``v``
        (with its units) when present, else ``hypot(dx, dy)`` in pixels;
        points that are not ``valid`` are left blank.
    background : xarray.DataArray, optional
        The reference image, on the same coordinates as the one tracked;
        drawn in grey with a 2-98 percentile stretch (block-averaged first
        when large, so a big lazy image is cheap to show).
    title : str, optional
        Figure title; a default names the method and grid.
    arrows : int, default 22
        About how many arrows along the longer axis (thinned grid).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import trackoff_xr
    >>> from trackoff_xr.testing.synthetic import shifted_pair
    >>> ref, sec = shifted_pair((128, 128), shift=(3.0, 1.0), seed=0)
    >>> ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=16, search_radius=6,
    ...                          method="ncc")
    >>> fig = velocity_map(ds)
    >>> fig.axes[1].get_ylabel()
    'offset magnitude (pixel)'
    """
    from matplotlib.cm import ScalarMappable

    data = _check(ds, "velocity_map")
    magnitude, label = _magnitude(data)
    ny, nx = data.sizes["y"], data.sizes["x"]
    aspect = (ny / max(nx, 1)) if ny and nx else 1.0
    fig = _new_figure((7.5, max(3.5, min(9.0, 6.0 * aspect + 0.8))))
    ax = fig.add_subplot()
    if background is not None:
        _background(ax, background)
    vmax = _robust_max(magnitude)
    mesh = ax.pcolormesh(
        data["x"].values,
        data["y"].values,
        magnitude,
        shading="nearest",
        cmap="viridis",
        vmin=0.0,
        vmax=vmax,
        alpha=0.6 if background is not None else 1.0,
    )
    # the colour bar shows the colours at full strength, not the translucent overlay
    fig.colorbar(
        ScalarMappable(norm=mesh.norm, cmap=mesh.cmap),
        ax=ax,
        label=label,
        shrink=0.85,
        extend="max",
    )
    _quiver(ax, data, arrows)
    _frame(ax, data)
    ax.set_title(title or _default_title(data, "motion"), loc="left", fontsize="medium")
    return fig


def _quiver(ax: Axes, ds: xr.Dataset, arrows: int) -> None:
    valid = _valid(ds)
    ny, nx = valid.shape
    step = max(1, math.ceil(max(ny, nx) / max(arrows, 1)))
    start_y, start_x = (ny - 1) % step // 2, (nx - 1) % step // 2  # centre the thinned grid
    sel = (slice(start_y, None, step), slice(start_x, None, step))
    keep = valid[sel]
    if not keep.any():
        return
    py, px = _pixel_steps(ds)
    xx, yy = np.meshgrid(ds["x"].values[sel[1]], ds["y"].values[sel[0]])
    # direction in data coordinates: +dy goes toward increasing row, whatever y's sign
    u = ds["dx"].values[sel] * px
    v = ds["dy"].values[sel] * py
    length = np.hypot(u, v)
    sy, sx = _steps(ds)
    cell = step * min(abs(sx), abs(sy))
    typical = float(np.percentile(length[keep], 95))
    if typical <= 0:
        return
    keep &= length > 0.04 * typical  # no dots on stable ground
    scale = typical / (0.85 * cell)  # data units of vector per data unit of arrow
    q = ax.quiver(
        xx[keep],
        yy[keep],
        u[keep],
        v[keep],
        angles="xy",
        scale_units="xy",
        scale=scale,
        color="white",
        edgecolor="black",
        linewidth=0.4,
        width=0.0035,
        headwidth=4,
        pivot="tail",
        zorder=3,
    )
    pixels = float(np.percentile(np.hypot(ds["dx"].values, ds["dy"].values)[valid], 95))
    key = _nice(pixels)
    ratio = key / pixels if pixels > 0 else 1.0
    ax.quiverkey(
        q,
        0.86,
        1.025,
        typical * ratio,
        f"{key:g} px",
        labelpos="E",
        coordinates="axes",
        color="black",
        labelcolor="black",
        fontproperties={"size": "small"},
    )


def _nice(value: float) -> float:
    """Round ``value`` to 1, 2 or 5 times a power of ten."""
    if not np.isfinite(value) or value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        if value <= m * power * 1.5:
            return m * power
    return 10 * power


def _default_title(ds: xr.Dataset, what: str) -> str:
    method = ds.attrs.get("method")
    parts = [f"trackoff_xr {what}"]
    if method:
        parts.append(
            f"{method}, patch {ds.attrs.get('patch_size')} px, spacing {ds.attrs.get('spacing')} px"
        )
    return ": ".join(parts)


def score_map(ds: xr.Dataset, *, title: str | None = None) -> Figure:
    """Map of the match ``score`` in [0, 1], rejected points marked with a cross.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of :func:`trackoff_xr.offsets`, filtered or not.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import trackoff_xr
    >>> from trackoff_xr.testing.synthetic import shifted_pair
    >>> ref, sec = shifted_pair((128, 128), shift=(3.0, 1.0), seed=0)
    >>> ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=16, search_radius=6,
    ...                          method="ncc")
    >>> score_map(ds).axes[1].get_ylabel()
    'match score'
    """
    data = _check(ds, "score_map")
    if "score" not in data:
        raise InvalidParameterError(
            f"score_map() needs a 'score' variable and the Dataset has only "
            f"{sorted(map(str, data.data_vars))}; pass the result of offsets()"
        )
    score = data["score"].values
    ny, nx = score.shape
    fig = _new_figure((7.0, max(3.5, min(9.0, 5.5 * ny / max(nx, 1) + 0.8))))
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(
        data["x"].values,
        data["y"].values,
        score,
        shading="nearest",
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
    )
    fig.colorbar(mesh, ax=ax, label="match score", shrink=0.85)
    rejected = np.isfinite(score) & ~_valid(data)
    if rejected.any():
        yy, xx = np.meshgrid(data["y"].values, data["x"].values, indexing="ij")
        ax.scatter(
            xx[rejected],
            yy[rejected],
            marker="x",
            s=12,
            color="red",
            linewidths=0.8,
            label=f"rejected ({int(rejected.sum())})",
        )
        ax.legend(loc="lower right", fontsize="small", framealpha=0.8)
    _frame(ax, data)
    valid_fraction = float(_valid(data).mean()) if score.size else 0.0
    ax.set_title(title or f"match score ({100 * valid_fraction:.0f}% of points valid)")
    return fig


def filter_comparison(raw: xr.Dataset, filtered: xr.Dataset, *, title: str | None = None) -> Figure:
    """Before / after a filter: both magnitudes on one colour scale, and what changed.

    Parameters
    ----------
    raw : xarray.Dataset
        The Dataset before filtering.
    filtered : xarray.Dataset
        The same grid after one or more filters.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Three panels: raw magnitude, filtered magnitude, and a map of points
        kept, removed, interpolated, or without a measurement.

    Examples
    --------
    >>> import trackoff_xr
    >>> from trackoff_xr.postprocess.filters import filter_offsets
    >>> from trackoff_xr.testing.synthetic import shifted_pair
    >>> ref, sec = shifted_pair((128, 128), shift=(3.0, 1.0), looks=1, seed=0)
    >>> ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=16, search_radius=6,
    ...                          method="ncc")
    >>> len(filter_comparison(ds, filter_offsets(ds)).axes)   # 3 panels, 1 colour bar
    4
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    before = _check(raw, "filter_comparison")
    after = _check(filtered, "filter_comparison")
    if before.sizes["y"] != after.sizes["y"] or before.sizes["x"] != after.sizes["x"]:
        raise InvalidParameterError(
            f"raw has grid {dict(before.sizes)} but filtered has {dict(after.sizes)}; pass "
            "the same result before and after filtering"
        )
    mag_before, label = _magnitude(before)
    mag_after, _ = _magnitude(after)
    vmax = _robust_max(mag_before)
    ny, nx = mag_before.shape
    fig = _new_figure((15.0, max(3.5, min(8.0, 4.6 * ny / max(nx, 1) + 1.0))))
    axes = fig.subplots(1, 3, sharex=True, sharey=True)
    for ax, mag, name in ((axes[0], mag_before, "before"), (axes[1], mag_after, "after")):
        mesh = ax.pcolormesh(
            before["x"].values,
            before["y"].values,
            mag,
            shading="nearest",
            cmap="viridis",
            vmin=0.0,
            vmax=vmax,
        )
        n_valid = int(np.isfinite(mag).sum())
        ax.set_title(f"{name}: {n_valid} valid points")
        _frame(ax, before)
    fig.colorbar(mesh, ax=axes[:2].tolist(), label=label, shrink=0.85, extend="max")

    status = np.zeros((ny, nx), dtype=np.int8)  # 0: no measurement
    v_before, v_after = _valid(before), _valid(after)
    status[v_before & v_after] = 1
    status[v_before & ~v_after] = 2
    if "interp_mask" in after:
        status[(after["interp_mask"].values > 0) & v_after] = 3
    colours = ["#d9d9d9", "#4daf4a", "#e41a1c", "#377eb8"]
    names = ["no measurement", "kept", "removed", "interpolated"]
    axes[2].pcolormesh(
        before["x"].values,
        before["y"].values,
        status,
        shading="nearest",
        cmap=ListedColormap(colours),
        norm=BoundaryNorm(np.arange(-0.5, 4), 4),
    )
    counts = [int((status == k).sum()) for k in range(4)]
    axes[2].legend(
        handles=[
            Patch(color=c, label=f"{n} ({k})")
            for c, n, k in zip(colours, names, counts, strict=True)
            if k
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=2,
        fontsize="small",
        frameon=False,
    )
    axes[2].set_title("effect of the filters")
    _frame(axes[2], before)
    for ax in axes[1:]:
        ax.set_ylabel("")
    chain = after.attrs.get("filters") or filtered.attrs.get("filters")
    fig.suptitle(
        title or (f"filters: {chain}" if chain else "filter comparison"), fontsize="medium"
    )
    return fig


def offset_histogram(ds: xr.Dataset, *, bins: int = 60, title: str | None = None) -> Figure:
    """Distributions of the valid offsets: ``dx`` and ``dy`` histograms and their joint density.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of :func:`trackoff_xr.offsets`, filtered or not.
    bins : int, default 60
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import trackoff_xr
    >>> from trackoff_xr.testing.synthetic import shifted_pair
    >>> ref, sec = shifted_pair((128, 128), shift=(3.0, 1.0), seed=0)
    >>> ds = trackoff_xr.offsets(ref, sec, patch_size=32, spacing=16, search_radius=6,
    ...                          method="ncc")
    >>> offset_histogram(ds).axes[0].get_xlabel()
    'offset (pixel)'
    """
    from matplotlib.colors import LogNorm

    data = _check(ds, "offset_histogram")
    valid = _valid(data)
    dx, dy = data["dx"].values[valid], data["dy"].values[valid]
    fig = _new_figure((11.0, 4.2))
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.4, 1])
    if dx.size:
        lo = float(min(dx.min(), dy.min()))
        hi = float(max(dx.max(), dy.max()))
        if hi - lo < 1e-6:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        for values, name, colour in ((dx, "dx", "tab:blue"), (dy, "dy", "tab:orange")):
            med = float(np.median(values))
            ax1.hist(
                values,
                bins=edges,
                histtype="stepfilled",
                alpha=0.45,
                color=colour,
                label=f"{name} (median {med:.2f})",
            )
            ax1.axvline(med, color=colour, linestyle="--", linewidth=1)
        ax1.legend(fontsize="small")
        _, _, _, image = ax2.hist2d(
            dx, dy, bins=min(bins, 40), cmin=1, cmap="viridis", norm=LogNorm()
        )
        fig.colorbar(image, ax=ax2, label="points", shrink=0.85)
        ax2.set_aspect("equal", adjustable="datalim")
        ax2.invert_yaxis()  # +dy (toward increasing rows) points down, as in the image
    else:
        ax1.text(0.5, 0.5, "no valid points", ha="center", va="center", transform=ax1.transAxes)
    ax1.set_xlabel("offset (pixel)")
    ax1.set_ylabel("points")
    ax2.set_xlabel("dx (pixel)")
    ax2.set_ylabel("dy (pixel, + = down the image)")
    ax2.set_title("joint distribution", fontsize="medium")
    fig.suptitle(title or f"{dx.size} valid offsets", fontsize="medium")
    return fig
