"""The ``trackoff`` command line: ``run``, ``plot``, ``info`` and ``demo``.

Errors a user can fix (a :class:`~trackoff_xr.TrackOffError`, a missing file,
a bad option) print one line and exit with status 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import click

from .exceptions import TrackOffError

__all__ = ["cli", "main"]

_STATE = {"debug": False}


def _debug_option(func: Any) -> Any:
    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            _STATE["debug"] = True
            logging.basicConfig(level=logging.WARNING)
            logging.getLogger("trackoff_xr").setLevel(logging.DEBUG)

    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=callback,
        help="Log the choices made and show tracebacks on errors.",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trackoff_xr")
def cli() -> None:
    """Measure ground motion between two images (glacier velocity from SAR pairs).

    \b
    Examples:
      trackoff run before.tif after.tif --out result.zarr
      trackoff info result.zarr
      trackoff plot result.zarr --out figures/
      trackoff demo                 # generated pair -> demo_output/
    """  # noqa: D301 (click's \b needs a real backspace)


@cli.command()
@click.argument("ref", metavar="REF")
@click.argument("sec", metavar="SEC")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=True, file_okay=False),
    help="Zarr store to write (replaced if it exists).",
)
@click.option(
    "--method",
    default="cnn",
    show_default=True,
    type=click.Choice(["ncc", "cnn", "classifier"]),
    help="Matcher.",
)
@click.option(
    "--patch-size",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Template edge, pixels.",
)
@click.option(
    "--spacing",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="Distance between grid points, pixels.",
)
@click.option(
    "--search-radius",
    default=16,
    show_default=True,
    type=click.IntRange(min=0),
    help="Largest offset searched along each axis, pixels.",
)
@click.option(
    "--chunks",
    default=2048,
    show_default=True,
    type=click.IntRange(min=64),
    help="Dask chunk edge for reading the images, pixels.",
)
@click.option(
    "--scheduler",
    default="threads",
    show_default=True,
    type=click.Choice(["threads", "processes", "distributed"]),
    help="Dask scheduler; 'distributed' starts a local cluster.",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    help="Threads, processes or cluster workers (default: one per core).",
)
@click.option(
    "--filter/--no-filter",
    "apply_filter",
    default=True,
    show_default=True,
    help="Apply the default filter chain (score + median/MAD test).",
)
@click.option(
    "--days",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Days between the images (default: from their acquisition times).",
)
@click.option(
    "--pixel-size",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Pixel size in metres (default: from the CRS or the S1 annotation).",
)
@click.option(
    "--csv",
    "csv_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the valid points as CSV (the TrackOff paper's columns).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@_debug_option
def run(
    ref: str,
    sec: str,
    out: str,
    method: str,
    patch_size: int,
    spacing: int,
    search_radius: int,
    chunks: int,
    scheduler: str,
    workers: int | None,
    apply_filter: bool,
    days: float | None,
    pixel_size: float | None,
    csv_path: str | None,
    quiet: bool,
) -> None:
    """Track REF (earlier image) against SEC (later image) and write a Zarr store.

    \b
    Examples:
      trackoff run before.tif after.tif --out result.zarr
      trackoff run before.tif after.tif --out r.zarr --patch-size 32 --spacing 16 \\
          --search-radius 24 --csv points.csv
      trackoff run before.tif after.tif --out r.zarr --scheduler distributed --workers 4
      trackoff run before.tif after.tif --out r.zarr --days 12 --pixel-size 10

    Velocities (vx, vy, v in meter/year) are added whenever the time span and
    pixel size are known, from the options or from the images.
    """  # noqa: D301 (click's \b needs a real backspace)
    import trackoff_xr

    from .filters import filter_offsets
    from .velocity import MissingMetadataError, velocity

    ref_image = trackoff_xr.open_image(ref, chunks=chunks)
    sec_image = trackoff_xr.open_image(sec, chunks=chunks)
    ds = trackoff_xr.offsets(
        ref_image,
        sec_image,
        patch_size=patch_size,
        spacing=spacing,
        search_radius=search_radius,
        method=method,
    )
    try:
        ds = velocity(ds, days=days, pixel_size=pixel_size)
    except MissingMetadataError:
        if days is not None or pixel_size is not None:
            raise  # asked for velocities: say what is missing
    if apply_filter:
        ds = filter_offsets(ds)
    ds.attrs["reference_image"] = os.path.abspath(ref) if os.path.exists(ref) else ref
    ds.attrs["secondary_image"] = os.path.abspath(sec) if os.path.exists(sec) else sec
    if not quiet:
        click.echo(
            f"tracking {ref_image.shape[0]} x {ref_image.shape[1]} px -> "
            f"{ds.sizes['y']} x {ds.sizes['x']} points with method={method!r} "
            f"({scheduler} scheduler)",
            err=True,
        )
    write_zarr(ds, out, scheduler=scheduler, workers=workers, progress=not quiet)
    if csv_path:
        _write_csv(out, csv_path)
    if not quiet:
        click.echo(_summary(out))
        click.echo(f"wrote {out}" + (f" and {csv_path}" if csv_path else ""))


def _scheduler_context(scheduler: str, workers: int | None) -> tuple[AbstractContextManager, Any]:
    import dask

    if scheduler == "distributed":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=workers or None, threads_per_worker=1, dashboard_address=None, processes=True
        )
        client = Client(cluster)
        return client, client
    options: dict[str, Any] = {"scheduler": scheduler}
    if workers:
        options["num_workers"] = workers
    return dask.config.set(**options), None


def write_zarr(
    ds: Any,
    path: str | os.PathLike[str],
    *,
    scheduler: str = "threads",
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Compute ``ds`` into a Zarr store at ``path``, atomically.

    The store is written to a hidden sibling first and renamed into place at
    the end, so an interrupted run never leaves a complete-looking store.

    Parameters
    ----------
    ds : xarray.Dataset
        Lazy result (e.g. of :func:`trackoff_xr.offsets`).
    path : path-like
        Destination; an existing store there is replaced.
    scheduler : {"threads", "processes", "distributed"}
        Dask scheduler used for the computation.
    workers : int, optional
        Number of threads, processes or cluster workers.
    progress : bool
        Show a progress bar (dask's on local schedulers, distributed's on a
        cluster).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from .writers import to_zarr

    context, client = _scheduler_context(scheduler, workers)
    try:
        with context:
            # writers.to_zarr writes to a hidden sibling and renames it into
            # place once complete; here we only choose where it is computed
            delayed = to_zarr(ds, path, compute=False, mode="w")
            if client is not None:
                future = client.compute(delayed)
                if progress:
                    from distributed import progress as show_progress

                    show_progress(future)
                    click.echo("", err=True)
                future.result()
            else:
                from dask.diagnostics import ProgressBar

                bar: AbstractContextManager = (
                    ProgressBar(minimum=1.0, out=sys.stderr) if progress else nullcontext()
                )
                with bar:
                    delayed.compute()
    finally:
        if client is not None:
            cluster = client.cluster
            client.close()
            cluster.close()
    return Path(path)


def _open_result(path: str) -> Any:

    if not os.path.exists(path):
        raise click.BadParameter(
            f"no Zarr store at {path!r}; pass the --out path of 'trackoff run'", param_hint="RESULT"
        )
    from .writers import open_zarr

    try:
        ds = open_zarr(path)
    except TrackOffError:
        raise
    except Exception as exc:  # zarr raises several unrelated types
        raise click.BadParameter(
            f"{path!r} is not a readable Zarr store ({exc}); pass the --out path of 'trackoff run'",
            param_hint="RESULT",
        ) from exc
    if "dx" not in ds or "dy" not in ds:
        raise click.BadParameter(
            f"{path!r} holds {sorted(map(str, ds.data_vars))}, not dx and "
            "dy; pass a store written by 'trackoff run'",
            param_hint="RESULT",
        )
    return ds


def _write_csv(store: str, csv_path: str) -> None:
    from .writers import to_csv

    to_csv(_open_result(store), csv_path)


def _summary(store: str) -> str:
    import numpy as np

    ds = _open_result(store).compute()
    valid = np.isfinite(ds.dx.values) & np.isfinite(ds.dy.values)
    if "valid" in ds:
        valid &= ds.valid.values.astype(bool)
    n = valid.size
    lines = [
        f"grid: {ds.sizes['y']} x {ds.sizes['x']} points ({n}), "
        f"patch {ds.attrs.get('patch_size')} px, spacing {ds.attrs.get('spacing')} px, "
        f"search radius {ds.attrs.get('search_radius')} px, method {ds.attrs.get('method')}",
        f"valid: {int(valid.sum())} points ({100 * valid.sum() / max(n, 1):.1f}%)",
    ]
    if valid.any():
        mag = np.hypot(ds.dx.values, ds.dy.values)[valid]
        lines.append(
            f"offset: median {np.median(mag):.3f} px, max {mag.max():.3f} px "
            f"(median dx {np.median(ds.dx.values[valid]):.3f}, "
            f"dy {np.median(ds.dy.values[valid]):.3f})"
        )
        if "v" in ds:
            v = ds.v.values[valid & np.isfinite(ds.v.values)]
            units = ds.v.attrs.get("units", "")
            if v.size:
                lines.append(
                    f"velocity: median {np.median(v):.3f} {units}, max {v.max():.3f} {units}"
                )
    if ds.attrs.get("filters"):
        lines.append(f"filters: {ds.attrs['filters']}")
    return "\n".join(lines)


@cli.command()
@click.argument("result", metavar="RESULT")
@_debug_option
def info(result: str) -> None:
    """Summarise a RESULT store: grid, valid fraction, offsets (and velocities).

    \b
    Example:
      trackoff info result.zarr
    """  # noqa: D301 (click's \b needs a real backspace)
    click.echo(_summary(result))


FIGURES = ("velocity", "score", "histogram", "comparison")


@cli.command()
@click.argument("result", metavar="RESULT")
@click.option(
    "--out",
    "out",
    default="figures",
    show_default=True,
    help="Folder for the PNGs, or a .png file with one --figure.",
)
@click.option(
    "--figure",
    "figures",
    multiple=True,
    type=click.Choice(FIGURES + ("all",)),
    default=("all",),
    show_default=True,
    help="Which figure(s) to draw.",
)
@click.option(
    "--background",
    default=None,
    help="Image drawn under the motion map (default: the run's reference "
    "image, when the file is still there; 'none' for no image).",
)
@click.option("--dpi", default=110, show_default=True, type=click.IntRange(min=20))
@click.option("--quiet", "-q", is_flag=True, help="Do not list the files written.")
@_debug_option
def plot(
    result: str, out: str, figures: tuple[str, ...], background: str | None, dpi: int, quiet: bool
) -> None:
    """Draw PNG figures of a RESULT store written by 'trackoff run'.

    Writes velocity_map.png (motion over the reference image), score_map.png,
    offset_histogram.png and, for an unfiltered result, filter_comparison.png
    (what the default filters would remove).

    \b
    Examples:
      trackoff plot result.zarr --out figures/
      trackoff demo --out demo_output && \\
          trackoff plot demo_output/offsets.zarr --figure velocity --out docs/figures/demo.png
    """  # noqa: D301 (click's \b needs a real backspace)
    import trackoff_xr

    from . import plot as plots
    from .filters import filter_offsets

    ds = _open_result(result)
    wanted = FIGURES if "all" in figures else tuple(dict.fromkeys(figures))
    single_file = out.lower().endswith(".png")
    if single_file and len(wanted) != 1:
        raise click.BadParameter(
            f"--out {out!r} is one file but {len(wanted)} figures were "
            "asked for; pick one with --figure, or give a folder",
            param_hint="--out",
        )
    image = None
    if "velocity" in wanted:
        path = background if background is not None else ds.attrs.get("reference_image")
        if path and path.lower() != "none" and (background is not None or os.path.exists(path)):
            image = trackoff_xr.open_image(path, chunks=2048)
    made: dict[str, Any] = {}
    if "velocity" in wanted:
        made["velocity_map"] = plots.velocity_map(ds, background=image)
    if "score" in wanted and "score" in ds:
        made["score_map"] = plots.score_map(ds)
    if "histogram" in wanted:
        made["offset_histogram"] = plots.offset_histogram(ds)
    if "comparison" in wanted and not ds.attrs.get("filters"):
        made["filter_comparison"] = plots.filter_comparison(ds, filter_offsets(ds))
    if not made:
        raise click.BadParameter(
            f"nothing to draw for --figure {' '.join(figures)} (the "
            "comparison needs an unfiltered result: run with --no-filter)",
            param_hint="--figure",
        )
    if single_file:
        paths = {name: Path(out) for name in made}
    else:
        paths = {name: Path(out) / f"{name}.png" for name in made}
    for name, fig in made.items():
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(paths[name], dpi=dpi)
        if not quiet:
            click.echo(f"wrote {paths[name]}")


@cli.command()
@click.option(
    "--out",
    "out_dir",
    default="demo_output",
    show_default=True,
    help="Folder for offsets.zarr and offsets.png.",
)
@click.option("--size", default=1024, show_default=True, help="Image edge in pixels.")
@click.option("--method", default="cnn", show_default=True, help="Matcher to run.")
@click.option("--seed", default=42, show_default=True, help="Seed of the generated pair.")
@_debug_option
def demo(out_dir: str, size: int, method: str, seed: int) -> None:
    """Track a generated SAR-like glacier pair and score it against the known motion."""
    from .demo import run_demo

    click.echo(f"generating a {size} x {size} speckled glacier pair (seed {seed}) ...")
    result = run_demo(out_dir, size=size, method=method, seed=seed)
    ds = result.dataset
    click.echo(
        f"tracked {ds.sizes['y']} x {ds.sizes['x']} points with method={method!r}: "
        f"{100 * result.valid_fraction:.0f}% valid"
    )
    click.echo(f"RMSE against the known displacement field: {result.rmse:.3f} px")
    click.echo(f"wrote {result.zarr_path} and {result.figure_path}")


@cli.command()
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder for the weights and their JSON [default: the package's own].",
)
@click.option("--seed", default=0, show_default=True, help="Seed of data, weights and order.")
@click.option(
    "--steps",
    default=3000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Optimisation steps (batch of 32 generated pairs each).",
)
@click.option(
    "--calibration-scenes",
    default=24,
    show_default=True,
    type=click.IntRange(min=2),
    help="Generated scenes for the confidence calibration.",
)
@_debug_option
def train(out_dir: str | None, seed: int, steps: int, calibration_scenes: int) -> None:
    """Train the shared CNN matcher on generated pairs, then calibrate its confidence.

    \b
    Reproduces the shipped weights (same seed, steps and library versions):
      trackoff train --seed 0 --steps 3000
    Takes about 15 minutes on 2 CPU cores; needs TensorFlow (pip install 'trackoff_xr[cnn]').
    """  # noqa: D301 (click's \b needs a real backspace)
    from .cnn.features import DEFAULT_WEIGHTS
    from .cnn.train import build_model

    weights = build_model(
        out_dir or DEFAULT_WEIGHTS.parent,
        seed=seed,
        steps=steps,
        calibration_scenes=calibration_scenes,
    )
    click.echo(f"wrote {weights} and its .json")


@cli.group()
def s1() -> None:
    """Find and download Sentinel-1 IW GRD scenes (ASF, Earthdata Login).

    \b
    Examples:
      trackoff s1 search --bbox -50.2 69.05 -49.4 69.25 --start 2024-02-01 \\
          --end 2024-03-01 --gap 12 --out pairs.csv
      trackoff s1 download pairs.csv --dir scenes/      # uses EARTHDATA_TOKEN or ~/.netrc
    """  # noqa: D301 (click's \b needs a real backspace)


@s1.command("search")
@click.option("--bbox", nargs=4, type=float, default=None, metavar="W S E N",
              help="Area as a bounding box in degrees.")
@click.option("--wkt", default=None, help="Area as WKT (EPSG:4326).")
@click.option("--start", required=True, help="First date (UTC), e.g. 2024-02-01.")
@click.option("--end", required=True, help="Last date (UTC).")
@click.option("--gap", "gaps", multiple=True, type=float, default=(12.0,), show_default=True,
              help="Wanted time gap in days between paired scenes (repeatable: 6, 12, 24).")
@click.option("--scenes", "scenes_only", is_flag=True, help="List scenes instead of pairs.")
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False),
              help="Also write the table as CSV (input for 'trackoff s1 download').")
@_debug_option
def s1_search(bbox: tuple[float, ...] | None, wkt: str | None, start: str, end: str,
              gaps: tuple[float, ...], scenes_only: bool, out: str | None) -> None:
    """Search scenes over an area and date range and pair them on one orbit and frame."""
    from . import s1 as s1_api

    if (bbox is None) == (wkt is None):
        raise click.UsageError("give the area as exactly one of --bbox W S E N or --wkt WKT")
    scenes = s1_api.search_scenes(bbox if bbox is not None else wkt, start, end)
    table = scenes if scenes_only else s1_api.find_pairs(scenes, gaps)
    columns = ([c for c in ("scene", "start", "relative_orbit", "frame", "flight_direction")
                if c in table] if scenes_only else
               ["reference", "secondary", "days", "relative_orbit", "frame"])
    click.echo(table[columns].to_string(index=False) if len(table) else "nothing found")
    if out:
        table.to_csv(out, index=False)
        click.echo(f"wrote {len(table)} rows to {out}")


@s1.command("download")
@click.argument("items", nargs=-1, required=True)
@click.option("--dir", "directory", default=".", show_default=True,
              type=click.Path(file_okay=False), help="Where the products go.")
@click.option("--token", default=None, envvar="EARTHDATA_TOKEN", show_envvar=True,
              help="Earthdata Login token (else ~/.netrc).")
@_debug_option
def s1_download(items: tuple[str, ...], directory: str, token: str | None) -> None:
    """Download ITEMS: a CSV written by 'trackoff s1 search --out', or product URLs."""
    import pandas as pd

    from . import s1 as s1_api

    targets: list[str] | pd.DataFrame
    if len(items) == 1 and items[0].endswith(".csv"):
        if not os.path.exists(items[0]):
            raise click.BadParameter(f"no file {items[0]!r}", param_hint="ITEMS")
        targets = pd.read_csv(items[0])
    else:
        targets = list(items)
    paths = s1_api.download(targets, directory, token=token)
    for path in paths:
        click.echo(str(path))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; user errors print one line and exit with status 2.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).
    """
    _STATE["debug"] = False
    try:
        cli.main(args=argv, prog_name="trackoff", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except (TrackOffError, click.ClickException, FileNotFoundError) as exc:
        if _STATE["debug"]:
            raise
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        click.echo(f"error: {_one_line(message)}", err=True)
        sys.exit(2)
    except Exception as exc:
        if _STATE["debug"]:
            raise
        click.echo(
            f"error: {type(exc).__name__}: {_one_line(str(exc))} (rerun with --debug "
            "for the traceback)",
            err=True,
        )
        sys.exit(1)


def _one_line(message: str) -> str:
    return " ".join(message.split())
