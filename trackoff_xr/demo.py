"""The offline demo: a generated SAR-like glacier pair, tracked and checked against its truth."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from . import pipeline
from .io.files import save_figure
from .io.safety import check_output
from .testing.synthetic import sar_pair, truth_at_points

__all__ = ["DemoResult", "demo_paths", "run_demo"]


@dataclass
class DemoResult:
    """What the demo produced."""

    dataset: xr.Dataset
    zarr_path: Path
    figure_path: Path
    rmse: float
    valid_fraction: float


def _figure(ref: xr.DataArray, ds: xr.Dataset, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: the user's backend is left alone

    magnitude = np.hypot(ds.dx, ds.dy)
    lo, hi = np.nanpercentile(ref.values, [2, 98])
    fig = Figure(figsize=(7, 6), dpi=100)
    ax = fig.subplots()
    ax.imshow(
        ref.values,
        cmap="gray",
        vmin=lo,
        vmax=hi,
        extent=(ref.x[0] - 0.5, ref.x[-1] + 0.5, ref.y[-1] + 0.5, ref.y[0] - 0.5),
    )
    step = max(1, ds.sizes["x"] // 25)
    mesh = ax.pcolormesh(ds.x, ds.y, magnitude, cmap="viridis", alpha=0.6, shading="nearest")
    sub = ds.isel(y=slice(None, None, step), x=slice(None, None, step))
    ax.quiver(
        sub.x,
        sub.y,
        sub.dx,
        sub.dy,
        color="white",
        angles="xy",
        scale_units="xy",
        scale=0.15,
        width=0.003,
    )
    fig.colorbar(mesh, ax=ax, label="offset magnitude (pixels)")
    ax.set_title("trackoff_xr demo: offsets on a generated glacier pair")
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    fig.tight_layout()
    save_figure(fig, path, mode="w")  # marked as ours, atomic; an earlier demo's is replaced


def demo_paths(out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Return the demo's Zarr store and figure inside ``out_dir``.

    Examples
    --------
    >>> [p.name for p in demo_paths("demo_output")]
    ['offsets.zarr', 'offsets.png']
    """
    out = Path(out_dir)
    return out / "offsets.zarr", out / "offsets.png"


def _check_demo_outputs(zarr_path: Path, figure_path: Path) -> None:
    """Refuse, before anything is computed, to replace what an earlier demo did not write.

    Both go through :func:`trackoff_xr.io.check_output`: only a store
    and a PNG trackoff_xr wrote are replaced.
    """
    check_output(zarr_path, kind="zarr", mode="w")
    check_output(figure_path, kind="figure", mode="w")


def run_demo(
    out_dir: str | os.PathLike[str] = "demo_output",
    *,
    size: int = 1024,
    method: str = "cnn",
    seed: int = 42,
    chunks: int = 512,
) -> DemoResult:
    """Generate a glacier-like pair, track it, write Zarr and PNG, score against the truth.

    Parameters
    ----------
    out_dir : path
        Folder for ``offsets.zarr`` and ``offsets.png`` (created if needed). The
        store and figure of an earlier demo there are replaced; a folder or
        file the demo did not write is refused
        (:class:`~trackoff_xr.ProtectedOutputError`) before anything is computed.
    size : int
        Image edge in pixels.
    method : str
        Matcher passed to :func:`trackoff_xr.offsets`.
    seed : int
        Seed of the generated pair.
    chunks : int
        Dask chunk size of the generated images.

    Returns
    -------
    DemoResult
        The offsets Dataset (with ``true_dx``/``true_dy``), output paths, the
        RMSE (pixels) of the offset vectors against the known field over
        valid points, and the fraction of valid points.
    """
    zarr_path, figure_path = demo_paths(out_dir)
    _check_demo_outputs(zarr_path, figure_path)
    ref, sec, truth = sar_pair((size, size), max_displacement=10.0, looks=4.0, seed=seed)

    def with_truth(ds: xr.Dataset) -> xr.Dataset:
        expected = truth_at_points(truth, ds)
        return ds.assign(
            true_dx=expected.dx.assign_attrs(long_name="true offset along columns", units="pixel"),
            true_dy=expected.dy.assign_attrs(long_name="true offset along rows", units="pixel"),
        )

    # the package's pipeline, its writer: completion marker, CF attributes, atomic replace
    ds = pipeline.run(
        ref,
        sec,
        zarr_path,
        chunks=chunks,
        velocities=False,
        compute=True,
        annotate=with_truth,
        mode="w",
        patch_size=64,
        spacing=32,
        search_radius=16,
        method=method,
    ).dataset
    valid = ds.valid.values
    err = np.hypot(ds.dx - ds.true_dx, ds.dy - ds.true_dy).values[valid]
    rmse = float(np.sqrt(np.mean(err**2))) if err.size else float("nan")
    _figure(ref, ds, figure_path)
    return DemoResult(ds, zarr_path, figure_path, rmse, float(valid.mean()))
