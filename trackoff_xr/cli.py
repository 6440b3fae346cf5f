"""The ``trackoff`` command line: ``run``, ``plot``, ``info``, ``demo`` and ``train``.

Errors a user can fix (a :class:`~trackoff_xr.TrackOffError`, a missing file,
a bad option) print one line naming the command-line flags and exit with
status 2; ``--debug`` shows the traceback instead. Ctrl-C (SIGINT) and
SIGTERM stop a run at once: the partial output is removed, one line is
printed and the exit status is 130 (143 for SIGTERM).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TextIO

import click
from dask.callbacks import Callback

from .exceptions import TrackOffError

__all__ = ["PointProgress", "cli", "cli_message", "main", "write_zarr"]

#: methods whose matcher runs TensorFlow (imported quietly before the graph is built)
_TENSORFLOW_METHODS = ("cnn", "classifier")
#: share of the points with data matched at the window edge above which the CLI warns
EDGE_WARNING_FRACTION = 0.05


@dataclass
class _Session:
    """What one ``trackoff`` invocation needs to clean up after itself."""

    debug: bool = False
    #: outputs being written: their hidden partial copies are removed on an interrupt
    targets: list[str] = field(default_factory=list)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C."""


def _session() -> _Session:
    return click.get_current_context().ensure_object(_Session)


def _debug_option(func: Any) -> Any:
    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(_Session).debug = True
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


#: the options ``trackoff run`` and ``trackoff batch`` share, in the order --help lists them
_TRACKING_OPTIONS = (
    click.option(
        "--method",
        default="cnn",
        show_default=True,
        type=click.Choice(["ncc", "cnn", "classifier"]),
        help="Matcher.",
    ),
    click.option(
        "--patch-size",
        default=64,
        show_default=True,
        type=click.IntRange(min=1),
        help="Template edge, pixels.",
    ),
    click.option(
        "--spacing",
        default=32,
        show_default=True,
        type=click.IntRange(min=1),
        help="Distance between grid points, pixels.",
    ),
    click.option(
        "--search-radius",
        default=None,
        type=click.IntRange(min=0),
        help="Largest offset searched along each axis around each point's search centre, "
        "pixels [default: 6 around the coarse pass's centres, 16 otherwise].",
    ),
    click.option(
        "--chunks",
        default=2048,
        show_default=True,
        type=click.IntRange(min=64),
        help="Dask chunk edge for reading the images, pixels.",
    ),
    click.option(
        "--scheduler",
        default="threads",
        show_default=True,
        callback=lambda ctx, param, value: _check_scheduler(value),
        help="threads, processes, distributed (starts a local cluster) or the address of a "
        "running dask scheduler to join (tcp://host:8786).",
    ),
    click.option(
        "--workers",
        default=None,
        type=click.IntRange(min=1),
        help="Threads, processes or cluster workers (default: one per core).",
    ),
    click.option(
        "--memory-limit",
        default=None,
        callback=lambda ctx, param, value: _check_memory_limit(value),
        help="Memory of each worker of the local cluster (--scheduler distributed), e.g. 2GiB.",
    ),
    click.option(
        "--filter/--no-filter",
        "apply_filter",
        default=True,
        show_default=True,
        help="Apply the default filter chain (score + median/MAD test).",
    ),
    click.option(
        "--days",
        default=None,
        type=click.FloatRange(min=0, min_open=True),
        help="Days between the images (default: from their acquisition times).",
    ),
    click.option(
        "--pixel-size",
        default=None,
        type=click.FloatRange(min=0, min_open=True),
        help="Pixel size in metres (default: from the CRS or the S1 annotation).",
    ),
)


def _tracking_options(func: Any) -> Any:
    """Add the matching, scheduling, filtering and velocity options of run and batch."""
    for option in reversed(_TRACKING_OPTIONS):
        func = option(func)
    return func


@cli.command()
@click.argument("ref", metavar="REF")
@click.argument("sec", metavar="SEC")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=True, file_okay=False),
    help="Zarr store to write. An existing path is refused unless --overwrite is given.",
)
@_tracking_options
@click.option(
    "--csv",
    "csv_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the valid points as CSV (the TrackOff paper's columns).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing --out store (and --csv file) that trackoff wrote; a folder "
    "or file it did not write, or one holding REF or SEC, is never replaced.",
)
@click.option(
    "--polarisation",
    default=None,
    type=click.Choice(["VV", "VH", "HH", "HV"], case_sensitive=False),
    help="Measurement of Sentinel-1 products (.SAFE or .zip) to track [default: VV].",
)
@click.option(
    "--crs",
    default=None,
    help="Geocode Sentinel-1 products onto a map grid in this CRS (lazily), e.g. EPSG:3413; "
    "default: track in radar geometry.",
)
@click.option(
    "--resolution",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Map grid pixel size in CRS units, with --crs [default: the range pixel spacing].",
)
@click.option(
    "--bbox",
    default=None,
    nargs=4,
    type=float,
    metavar="W S E N",
    help="Map grid box in degrees (longitude/latitude), with --crs [default: where both "
    "scenes overlap].",
)
@click.option(
    "--dem",
    default=None,
    help="DEM (GeoTIFF path or URL, heights above the ellipsoid) for terrain correction, "
    "with --crs [default: the products' ground control points].",
)
@click.option(
    "--prior",
    default=None,
    type=click.Path(exists=False),
    help="Zarr store or netCDF file of offsets (dx, dy, pixels) or velocities (vx, vy with "
    "units, any CRS and grid, e.g. ITS_LIVE) that centres each search.",
)
@click.option(
    "--coregister/--no-coregister",
    default=None,
    help="Measure the global offset of the pair (annotation, then the images), align on it "
    "and report motion relative to stable ground [default: on for two Sentinel-1 products "
    "without --prior].",
)
@click.option(
    "--coarse/--no-coarse",
    default=None,
    help="Coarse-to-fine search for motion beyond --search-radius [default: on, unless "
    "--prior is given or the image is small].",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only errors: no progress, no summary.")
@_debug_option
def run(
    ref: str,
    sec: str,
    out: str,
    method: str,
    patch_size: int,
    spacing: int,
    search_radius: int | None,
    chunks: int,
    scheduler: str,
    workers: int | None,
    memory_limit: str | None,
    apply_filter: bool,
    days: float | None,
    pixel_size: float | None,
    csv_path: str | None,
    overwrite: bool,
    polarisation: str | None,
    crs: str | None,
    resolution: float | None,
    bbox: tuple[float, float, float, float] | None,
    dem: str | None,
    prior: str | None,
    coregister: bool | None,
    coarse: bool | None,
    quiet: bool,
) -> None:
    """Track REF (earlier image) against SEC (later image) and write a Zarr store.

    \b
    Examples:
      trackoff run before.tif after.tif --out result.zarr
      trackoff run before.tif after.tif --out r.zarr --patch-size 32 --spacing 16 \\
          --search-radius 24 --csv points.csv
      trackoff run before.tif after.tif --out r.zarr --scheduler distributed --workers 4 \\
          --memory-limit 2GiB
      trackoff run before.tif after.tif --out r.zarr --scheduler tcp://10.0.0.5:8786
      trackoff run before.tif after.tif --out r.zarr --days 12 --pixel-size 10
      trackoff run before.tif after.tif --out r.zarr --overwrite   # replace an earlier run
      trackoff run a.zip b.zip --out v.zarr --crs EPSG:3413 --resolution 10 \\
          --dem dem.tif --bbox -50.2 69.05 -49.4 69.25 --polarisation VV --prior prior.zarr

    Velocities (vx, vy, v in meter/year) are added whenever the time span and
    pixel size are known, from the options or from the images. An existing
    --out or --csv is replaced only with --overwrite, and only if trackoff
    wrote it; REF, SEC and the folders holding them are never replaced.

    Sentinel-1 GRD products (.SAFE folders or their .zip) of one orbit are
    coregistered (their global offset, e.g. the slice start, is measured
    and removed) and, with --crs, geocoded lazily onto one map grid (with
    --dem: terrain-corrected).
    """  # noqa: D301 (click's \b needs a real backspace)
    mode = "w" if overwrite else "w-"
    protect = tuple(p for p in (ref, sec, dem, prior) if p is not None and "://" not in p)
    _check_outputs(out, csv_path, mode=mode, protect=protect)
    _session().targets.extend(t for t in (out, csv_path) if t)
    tensorflow = method in _TENSORFLOW_METHODS
    if tensorflow:
        _import_tensorflow_quietly()
    from . import pipeline

    pair = pipeline.prepare(
        ref,
        sec,
        chunks=chunks,
        polarisation=polarisation.upper() if polarisation else None,
        crs=crs,
        resolution=resolution,
        bbox=bbox,
        dem=dem,
        prior=prior,
        coregister=coregister,
        coarse=coarse,
    )
    ref_image = pair.ref
    if pair.coregistration is not None and not quiet:
        est = pair.coregistration.attrs
        click.echo(
            f"coregistered: global offset {est['global_dy']:.2f}, {est['global_dx']:.2f} px "
            f"(radar lines, samples) from {est['n_matches']} matches",
            err=True,
        )

    def store(ds: Any, path: str, *, mode: str, protect: Sequence[str]) -> Path:
        if not quiet:
            click.echo(
                f"tracking {ref_image.shape[0]} x {ref_image.shape[1]} px -> "
                f"{ds.sizes['y']} x {ds.sizes['x']} points with method={method!r} "
                f"({scheduler} scheduler)",
                err=True,
            )
        return write_zarr(
            ds,
            path,
            scheduler=scheduler,
            workers=workers,
            memory_limit=memory_limit,
            progress=not quiet,
            mode=mode,
            protect=protect,
            tensorflow=tensorflow,
        )

    search: dict[str, Any] = {} if coarse is None else {"coarse": coarse}
    pipeline.run(
        pair,
        None,
        out,
        csv=csv_path,
        days=days,
        pixel_size=pixel_size,
        filters=apply_filter,
        mode=mode,
        protect=protect,
        store=store,
        method=method,
        patch_size=patch_size,
        spacing=spacing,
        search_radius=search_radius,
        **search,
    )
    if not quiet:
        click.echo(_summary(out))
        warning = _edge_warning(_open_result(out))
        if warning:
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"wrote {out}" + (f" and {csv_path}" if csv_path else ""))


def _url_scheme(path: str) -> str | None:
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", str(path))
    return match.group(1).lower() if match else None


def _same_or_inside(path: str, folder: str) -> bool:
    if _url_scheme(path) or _url_scheme(folder):
        return False
    inner, outer = Path(path).resolve(), Path(folder).resolve()
    return inner == outer or outer in inner.parents


def _check_outputs(out: str, csv_path: str | None, *, mode: str, protect: Sequence[str]) -> None:
    """Refuse unusable or protected outputs before anything is computed.

    Raises
    ------
    click.BadParameter
        ``--out`` is an in-memory URL, or ``--csv`` lies inside ``--out``.
    trackoff_xr.OutputExistsError, trackoff_xr.OutputLocationError
        From :func:`trackoff_xr.io.check_output`.
    """
    from .io.safety import check_output

    if _url_scheme(out) == "memory":
        raise click.BadParameter(
            f"{out!r} is an in-memory store, gone when trackoff exits; give a folder path "
            "or a URL such as s3://bucket/result.zarr",
            param_hint="--out",
        )
    check_output(out, kind="zarr", mode=mode, protect=protect)
    if csv_path:
        if _same_or_inside(csv_path, out):
            raise click.BadParameter(
                f"{csv_path!r} is inside the --out store {out!r}; write the CSV elsewhere",
                param_hint="--csv",
            )
        check_output(csv_path, kind="csv", mode=mode, protect=protect)


def _edge_warning(ds: Any) -> str | None:
    """Say so when many points peaked on the border of the search window, else ``None``."""
    import numpy as np

    if "peak_at_edge" not in ds:
        return None
    edge = np.asarray(ds["peak_at_edge"].values, dtype=np.float64) > 0.5
    quality = ds["score"] if "score" in ds else ds["dx"]
    with_data = edge | np.isfinite(np.asarray(quality.values, dtype=np.float64))
    n_edge, n_data = int(edge.sum()), int(with_data.sum())
    if n_data == 0 or n_edge <= EDGE_WARNING_FRACTION * n_data:
        return None
    radius = ds.attrs.get("search_radius", "?")
    return (
        f"{n_edge} points ({100 * n_edge / n_data:.0f} %) matched at the edge of the search "
        f"window: the motion may exceed --search-radius {radius}; raise it"
    )


def write_zarr(
    ds: Any,
    path: str | os.PathLike[str],
    *,
    scheduler: str = "threads",
    workers: int | None = None,
    memory_limit: str | None = None,
    progress: bool = True,
    mode: str = "w-",
    protect: Iterable[str | os.PathLike[str]] = (),
    tensorflow: bool = False,
) -> Path:
    """Compute ``ds`` into a Zarr store at ``path``, atomically, on the chosen scheduler.

    The store goes through :func:`trackoff_xr.io.to_zarr`: it is written
    to a hidden sibling and renamed into place at the end, so an interrupted
    run never leaves a complete-looking store; if the computation fails or is
    interrupted, the hidden copy is removed.

    Parameters
    ----------
    ds : xarray.Dataset
        Lazy result (e.g. of :func:`trackoff_xr.offsets`).
    path : path-like
        Destination.
    scheduler : {"threads", "processes", "distributed"} or str
        Dask scheduler used for the computation; ``"distributed"`` starts a
        local cluster, an address (``tcp://host:8786``) joins a running one
        (which is left running).
    workers : int, optional
        Number of threads, processes or cluster workers.
    memory_limit : str, optional
        Memory of each worker of a local cluster, e.g. ``"2GiB"``.
    progress : bool
        Show progress on stderr: grid points done (:class:`PointProgress`) on
        local schedulers; distributed's bar on a terminal, or a line every
        few seconds otherwise, on a cluster.
    mode : {"w-", "w"}
        ``"w-"`` refuses an existing ``path``; ``"w"`` replaces a store
        trackoff_xr wrote (never anything else).
    protect : iterable of path-like
        Paths (the inputs) that must never be replaced nor lie inside ``path``.
    tensorflow : bool
        The matcher runs TensorFlow: worker processes import it quietly first.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from .io.safety import remove_partials
    from .io.zarr import to_zarr

    blocks = _grid_blocks(ds)
    delayed = to_zarr(ds, path, compute=False, mode=mode, protect=tuple(protect))
    try:
        if scheduler == "distributed" or "://" in scheduler:
            address = None if scheduler == "distributed" else scheduler
            _compute_on_cluster(
                delayed,
                workers,
                progress=progress,
                tensorflow=tensorflow,
                address=address,
                memory_limit=memory_limit,
            )
        else:
            _compute_locally(
                delayed, scheduler, workers, progress=progress, blocks=blocks, tensorflow=tensorflow
            )
    except BaseException:
        remove_partials(path, include_own=True)
        raise
    return Path(path)


def _grid_blocks(ds: Any) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Points per block along ``y`` and ``x`` of the result (its chunks), if it is lazy."""
    for name in ("dx", "dy", "score"):
        if name in ds and ds[name].chunks is not None and {"y", "x"} <= set(ds[name].dims):
            chunks = dict(zip(ds[name].dims, ds[name].chunks, strict=True))
            return tuple(chunks["y"]), tuple(chunks["x"])
    return None


def _compute_locally(
    delayed: Any,
    scheduler: str,
    workers: int | None,
    *,
    progress: bool,
    blocks: tuple[tuple[int, ...], tuple[int, ...]] | None,
    tensorflow: bool,
) -> None:
    """Compute on the threaded or multiprocessing scheduler; workers stop on an interrupt."""
    import dask

    options: dict[str, Any] = {"scheduler": scheduler}
    if workers:
        options["num_workers"] = workers
    pool = None
    if scheduler == "processes":
        pool = _process_pool(workers, tensorflow=tensorflow)
        options["pool"] = pool
    bar: AbstractContextManager = PointProgress(blocks) if progress else nullcontext()
    try:
        with dask.config.set(**options), bar:
            delayed.compute()
    except BaseException:
        if pool is not None:
            _stop_pool(pool)
        raise
    if pool is not None:
        pool.shutdown(wait=True)


def _process_pool(workers: int | None, *, tensorflow: bool) -> Any:
    """Make a process pool like dask's own, whose workers leave Ctrl-C to the parent."""
    from concurrent.futures import ProcessPoolExecutor

    from dask.multiprocessing import get_context, initialize_worker_process

    # as dask.multiprocessing.get does: the same string hashes in every worker
    if os.environ.get("PYTHONHASHSEED") in (None, "0"):
        os.environ["PYTHONHASHSEED"] = "6640"
    initializer = partial(
        initialize_worker_process,
        user_initializer=partial(_quiet_worker, tensorflow=tensorflow, ignore_sigint=True),
    )
    return ProcessPoolExecutor(
        workers or os.cpu_count() or 1, mp_context=get_context(), initializer=initializer
    )


def _stop_pool(pool: Any) -> None:
    """Kill a process pool's workers now (a running task would otherwise be waited for)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _compute_on_cluster(
    delayed: Any,
    workers: int | None,
    *,
    progress: bool,
    tensorflow: bool,
    address: str | None = None,
    memory_limit: str | None = None,
) -> None:
    """Compute on dask.distributed, on a local cluster or on a running scheduler.

    A local cluster is closed however the computation ends; with ``address``
    the running scheduler is joined and only the client is closed.
    """
    from distributed import Client, LocalCluster

    caught: list[BaseException] = []
    cluster = None
    with _signals_deferred(caught):  # a cluster half started could not be closed
        if address is None:
            cluster = LocalCluster(
                n_workers=workers or None,
                threads_per_worker=1,
                dashboard_address=":0" if _has_dashboard() else None,
                processes=True,
                silence_logs=logging.ERROR,
                memory_limit=memory_limit or "auto",
            )
            client = Client(cluster)
        else:
            try:
                client = Client(address, timeout=10)
            except (OSError, TimeoutError) as exc:
                raise click.BadParameter(
                    f"no dask scheduler answered at {address!r} ({exc}); start one "
                    "(dask scheduler) or pass --scheduler distributed for a local cluster",
                    param_hint="--scheduler",
                ) from exc
    try:
        if caught:
            raise caught[0]
        if progress and (cluster is None or _has_dashboard()) and client.dashboard_link:
            click.echo(f"dask dashboard: {client.dashboard_link}", err=True)
        if cluster is not None:
            client.run(_quiet_worker, tensorflow=tensorflow, ignore_sigint=False)
        future = client.compute(delayed)
        if progress:
            _cluster_progress(future, sys.stderr)
        future.result()
    finally:
        closings = [partial(client.close, timeout=3)]
        if cluster is not None:  # a scheduler we joined is left running
            closings.append(partial(cluster.close, timeout=5))
        for closing in closings:
            try:
                closing()
            except Exception:  # closing after an interrupt: exit promptly rather than fail
                logging.getLogger("trackoff_xr").debug("closing the cluster", exc_info=True)


def _has_dashboard() -> bool:
    """Whether distributed can serve its dashboard here (it needs bokeh)."""
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _check_scheduler(value: str) -> str:
    """Accept a local scheduler's name or a scheduler address (``tcp://host:port``)."""
    if value in ("threads", "processes", "distributed") or "://" in value:
        return value
    raise click.BadParameter(
        f"{value!r} is neither threads, processes, distributed nor a scheduler address; "
        "pass e.g. --scheduler distributed or --scheduler tcp://host:8786",
        param_hint="--scheduler",
    )


def _check_memory_limit(value: str | None) -> str | None:
    """Accept a memory size dask understands (``2GiB``, ``1500MB``), or nothing."""
    if value is None:
        return None
    from dask.utils import parse_bytes

    try:
        if parse_bytes(value) <= 0:
            raise ValueError(value)
    except (ValueError, TypeError):
        raise click.BadParameter(
            f"{value!r} is not a memory size; pass e.g. --memory-limit 2GiB",
            param_hint="--memory-limit",
        ) from None
    return value


@contextmanager
def _signals_deferred(caught: list[BaseException]) -> Iterator[None]:
    """Hold SIGINT and SIGTERM back during the block; what arrived is put in ``caught``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def hold(signum: int, frame: Any) -> None:
        caught.append(KeyboardInterrupt() if signum == signal.SIGINT else _Terminated())

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _cluster_progress(future: Any, stream: TextIO, interval: float = 10.0) -> None:
    """Distributed's bar on a terminal; otherwise a plain line every ``interval`` s."""
    from distributed import progress as show_progress
    from distributed import wait

    if _isatty(stream):
        show_progress(future)
        click.echo("", err=True)
        return
    started = time.perf_counter()
    while True:
        try:
            wait(future, timeout=interval)
            break
        except TimeoutError:
            elapsed = time.perf_counter() - started
            print(f"progress: computing on the cluster, {elapsed:.0f} s", file=stream, flush=True)
    elapsed = time.perf_counter() - started
    print(f"progress: done in {elapsed:.0f} s", file=stream, flush=True)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with the C++/absl start-up lines sent to /dev/null.

    ``TF_CPP_MIN_LOG_LEVEL`` does not hide the lines TensorFlow's libraries
    print while they load (absl's "All log messages before
    absl::InitializeLog()", oneDNN's notice), so file descriptor 2 is pointed
    at /dev/null for the import only. An import failure is left to the
    matcher, which reports it with an install hint.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to silence
        saved = -1
    try:
        if saved >= 0:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
        try:
            import tensorflow as tf

            tf.get_logger().setLevel(logging.ERROR)
        except Exception:  # noqa: S110 - reported by the matcher when it needs TensorFlow
            pass
    finally:
        if saved >= 0:
            os.dup2(saved, 2)
            os.close(saved)


def _quiet_worker(*, tensorflow: bool, ignore_sigint: bool) -> None:
    """Prepare a worker process: the parent handles Ctrl-C, no start-up noise.

    No warning filter: images without georeferencing are read through a VRT
    that states their pixel grid (:func:`trackoff_xr.open_image`), so
    rasterio has nothing to warn about in the workers either.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if tensorflow:
        _import_tensorflow_quietly()


def _is_match_key(key: Any) -> bool:
    """Tell a match task (``("trackoff-ncc-…", by, bx, 0)``, see ``match_blockwise``)."""
    return (
        isinstance(key, tuple)
        and len(key) >= 3
        and isinstance(key[0], str)
        and key[0].startswith("trackoff-")
        and not key[0].startswith(("trackoff-features-", "trackoff-coarse-", "trackoff-prior-"))
        and isinstance(key[1], int)
        and isinstance(key[2], int)
    )


def _task_weights(
    keys: Iterable[Any], blocks: tuple[tuple[int, ...], tuple[int, ...]] | None
) -> tuple[dict[Any, int], str]:
    """Weight of each counted task and the unit: grid points, else blocks, else tasks."""
    keys = list(keys)
    match = [k for k in keys if _is_match_key(k)]
    if not match:
        return {k: 1 for k in keys}, "tasks"
    if blocks is not None and all(k[1] < len(blocks[0]) and k[2] < len(blocks[1]) for k in match):
        return {k: blocks[0][k[1]] * blocks[1][k[2]] for k in match}, "grid points"
    return {k: 1 for k in match}, "blocks"


class PointProgress(Callback):
    r"""Progress of a dask computation in grid points, on stderr.

    Every finished match block (the tasks of
    :func:`trackoff_xr.blockwise.match_blockwise`) counts for its points, the
    product of its chunk sizes in ``blocks``; other tasks do not count. A
    graph without match tasks is counted in tasks. On a terminal one line is
    redrawn (``\r``); elsewhere (a log file, a pipe) a plain line is printed
    every ``interval`` seconds and once at the end.

    Parameters
    ----------
    blocks : (tuple of int, tuple of int), optional
        Points per block along ``y`` and ``x`` (the result's chunks).
    stream : file-like, optional
        Where to write (default: ``sys.stderr`` when created).
    interval : float, optional
        Seconds between lines: default 0.5 on a terminal, 10 otherwise.
    """

    def __init__(
        self,
        blocks: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
        *,
        stream: TextIO | None = None,
        interval: float | None = None,
    ) -> None:
        super().__init__()
        self._blocks = blocks
        self._stream = stream if stream is not None else sys.stderr
        self._tty = _isatty(self._stream)
        self._interval = interval if interval is not None else (0.5 if self._tty else 10.0)
        self._graph: Any = None
        self._weights: dict[Any, int] = {}
        self._unit = "grid points"
        self._done = 0
        self._started = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def total(self) -> int:
        """Points (or blocks, or tasks) in the computation being watched."""
        return sum(self._weights.values())

    @property
    def done(self) -> int:
        """Points (or blocks, or tasks) finished so far."""
        return self._done

    def _start(self, dsk: Any) -> None:
        if self._graph is not None:  # a compute nested in a task: not ours to count
            return
        self._graph = dsk
        self._weights, self._unit = _task_weights(dsk, self._blocks)
        self._done = 0
        self._started = time.perf_counter()
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="trackoff-progress", daemon=True)
        self._ticker.start()

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        if dsk is not self._graph:
            return
        weight = self._weights.get(key)
        if weight:
            self._done += weight
            if self._tty:
                self._draw()

    def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
        if dsk is not self._graph:
            return
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if not errored:
            self._draw()
        if self._tty:
            self._write("\n")
        self._graph = None

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            self._draw()

    def _draw(self) -> None:
        total = self.total
        fraction = self._done / total if total else 1.0
        elapsed = time.perf_counter() - self._started
        counts = f"{self._done} of {total} {self._unit}"
        if self._tty:
            filled = int(round(30 * fraction))
            bar = "#" * filled + " " * (30 - filled)
            self._write(f"\r[{bar}] {100 * fraction:3.0f}% {counts} | {elapsed:.0f} s")
        else:
            self._write(f"progress: {counts} ({100 * fraction:.0f}%), {elapsed:.0f} s\n")

    def _write(self, text: str) -> None:
        with self._lock:
            self._stream.write(text)
            self._stream.flush()


def _open_result(path: str) -> Any:
    if _url_scheme(path) is None and not os.path.exists(path):
        raise click.BadParameter(
            f"no Zarr store at {path!r}; pass the --out path of 'trackoff run'", param_hint="RESULT"
        )
    from .io.zarr import open_zarr

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
    warning = _edge_warning(_open_result(result))
    if warning:
        click.echo(f"warning: {warning}", err=True)


FIGURES = ("velocity", "score", "histogram", "comparison")


@cli.command()
@click.argument("result", metavar="RESULT")
@click.option(
    "--out",
    "out",
    default="figures",
    show_default=True,
    help="Folder for the PNGs, or a .png file with one --figure. An existing PNG is "
    "refused unless --overwrite is given.",
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
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace existing PNGs that trackoff drew; any other file is never replaced.",
)
@click.option("--quiet", "-q", is_flag=True, help="Do not list the files written.")
@_debug_option
def plot(
    result: str,
    out: str,
    figures: tuple[str, ...],
    background: str | None,
    dpi: int,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Draw PNG figures of a RESULT store written by 'trackoff run'.

    Writes velocity_map.png (motion over the reference image), score_map.png,
    offset_histogram.png and, for an unfiltered result, filter_comparison.png
    (what the default filters would remove). An existing PNG is replaced
    only with --overwrite, and only if trackoff drew it.

    \b
    Examples:
      trackoff plot result.zarr --out figures/
      trackoff plot result.zarr --out figures/ --overwrite   # redraw
      trackoff demo --out demo_output && \\
          trackoff plot demo_output/offsets.zarr --figure velocity --out docs/figures/demo.png
    """  # noqa: D301 (click's \b needs a real backspace)
    import trackoff_xr

    from . import plot as plots
    from .io.files import save_figure
    from .io.safety import check_output
    from .postprocess.filters import filter_offsets

    mode = "w" if overwrite else "w-"
    ds = _open_result(result)
    wanted = FIGURES if "all" in figures else tuple(dict.fromkeys(figures))
    single_file = out.lower().endswith(".png")
    if single_file and len(wanted) != 1:
        raise click.BadParameter(
            f"--out {out!r} is one file but {len(wanted)} figures were "
            "asked for; pick one with --figure, or give a folder",
            param_hint="--out",
        )
    named = (result, background, ds.attrs.get("reference_image"))
    protect = tuple(p for p in named if p and p.lower() != "none")
    if single_file:  # refused before anything is drawn
        check_output(out, kind="figure", mode=mode, protect=protect)
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
    for path in paths.values():  # every file checked before any is written
        check_output(path, kind="figure", mode=mode, protect=protect)
    for name, fig in made.items():
        save_figure(fig, paths[name], mode=mode, protect=protect, dpi=dpi)
        if not quiet:
            click.echo(f"wrote {paths[name]}")


@cli.command()
@click.option(
    "--out",
    "out_dir",
    default="demo_output",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for offsets.zarr and offsets.png; an earlier demo's are replaced.",
)
@click.option("--size", default=1024, show_default=True, help="Image edge in pixels.")
@click.option(
    "--method",
    default="cnn",
    show_default=True,
    type=click.Choice(["ncc", "cnn", "classifier"]),
    help="Matcher to run.",
)
@click.option("--seed", default=42, show_default=True, help="Seed of the generated pair.")
@_debug_option
def demo(out_dir: str, size: int, method: str, seed: int) -> None:
    """Track a generated SAR-like glacier pair and score it against the known motion.

    Writes OUT/offsets.zarr (readable by 'trackoff info' and 'trackoff plot')
    and OUT/offsets.png. Running the demo again replaces its own earlier
    output, never a folder or file it did not write.
    """
    from .demo import demo_paths, run_demo

    _session().targets.append(str(demo_paths(out_dir)[0]))
    if method in _TENSORFLOW_METHODS:
        _import_tensorflow_quietly()
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
    default="trackoff_weights",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the weights and their JSON (never the installed package's own). "
    "Existing weights there are refused unless --overwrite is given.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of data, weights and order.")
@click.option(
    "--steps",
    default=3000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Optimisation steps of the 16-channel network (batch of 32 generated pairs each).",
)
@click.option(
    "--width",
    default=8,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Channels per hidden layer after pruning (16: no pruning).",
)
@click.option(
    "--tune-steps",
    default=600,
    show_default=True,
    type=click.IntRange(min=1),
    help="Fine-tuning steps after pruning.",
)
@click.option(
    "--calibration-scenes",
    default=96,
    show_default=True,
    type=click.IntRange(min=2),
    help="Generated scenes for the confidence calibration.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace weights (and their JSON) that trackoff train wrote; other files never.",
)
@_debug_option
def train(
    out_dir: str,
    seed: int,
    steps: int,
    width: int,
    tune_steps: int,
    calibration_scenes: int,
    overwrite: bool,
) -> None:
    """Train the shared CNN matcher on generated pairs, prune it, then calibrate its confidence.

    \b
    Reproduces the shipped weights (same seed, steps and library versions):
      trackoff train --seed 0 --steps 3000 --width 8 --out trackoff_weights
    then use them with offsets(..., weights="trackoff_weights/trackoff_cnn_v2.weights.h5").
    Takes 25-40 minutes on 2 CPU cores; needs TensorFlow (pip install 'trackoff_xr[cnn]').
    Existing weights in OUT are replaced only with --overwrite, and only if
    their JSON says trackoff wrote them; this is checked before training.
    """  # noqa: D301 (click's \b needs a real backspace)
    from .matchers.cnn.train import build_model, build_outputs, check_weights_output

    mode = "w" if overwrite else "w-"
    for name in build_outputs(width):  # before minutes of training
        check_weights_output(out_dir, name, mode=mode)
    _import_tensorflow_quietly()
    weights = build_model(
        out_dir,
        seed=seed,
        steps=steps,
        width=width,
        tune_steps=tune_steps,
        calibration_scenes=calibration_scenes,
        mode=mode,
    )
    click.echo(f"wrote {weights} and its .json")


@cli.command()
@click.argument("pairs_csv", metavar="PAIRS.csv", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=True, file_okay=False),
    help="Zarr cube to create or add to (resumed: pairs already in it are skipped).",
)
@_tracking_options
@click.option(
    "--download-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="For a 'trackoff s1 search' table: where the scenes are downloaded.",
)
@click.option("--token", default=None, envvar="EARTHDATA_TOKEN", show_envvar=True)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Rebuild an existing --out cube that trackoff wrote (without it, the cube is "
    "resumed); a folder or file it did not write is never touched.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
@_debug_option
def batch(
    pairs_csv: str,
    out: str,
    method: str,
    patch_size: int,
    spacing: int,
    search_radius: int | None,
    chunks: int,
    scheduler: str,
    workers: int | None,
    memory_limit: str | None,
    apply_filter: bool,
    days: float | None,
    pixel_size: float | None,
    download_dir: str | None,
    token: str | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Track every pair of PAIRS.csv into one Zarr cube along mid_date.

    \b
    PAIRS.csv has the columns reference, secondary (image paths, relative to
    the CSV's folder) and optionally reference_date, secondary_date, pair_id;
    or it is a table of 'trackoff s1 search --out' (with --download-dir).

    \b
    Examples:
      trackoff batch pairs.csv --out cube.zarr --method ncc
      trackoff batch pairs.csv --out cube.zarr      # again: only the new pairs
      trackoff batch pairs.csv --out cube.zarr --scheduler distributed --workers 4

    Rerunning after Ctrl-C, or with more pairs, tracks only the pairs not yet
    complete in the cube; read it with trackoff_xr.stacks.open_cube.
    """  # noqa: D301 (click's \b needs a real backspace)
    from .stacks import read_pairs, track_pairs

    if _url_scheme(out) == "memory":
        raise click.BadParameter(
            f"{out!r} is an in-memory store, gone when trackoff exits; give a folder path",
            param_hint="--out",
        )
    if not os.path.isfile(pairs_csv):
        raise click.BadParameter(f"no file {pairs_csv!r}", param_hint="PAIRS.csv")
    pairs = read_pairs(pairs_csv)
    if method in _TENSORFLOW_METHODS:
        _import_tensorflow_quietly()
    _session().targets.append(out)  # a cube being created is a hidden partial until then
    counts = {"done": 0, "skipped": 0}

    def progress(event: Any) -> None:
        counts[event.status] += 1
        if not quiet:
            what = "tracked" if event.status == "done" else "already in the cube, skipped"
            click.echo(
                f"pair {event.number}/{event.total} {event.pair_id}: {what} "
                f"({event.seconds:.1f} s)",
                err=True,
            )

    with _batch_scheduler(scheduler, workers, memory_limit) as where:
        try:
            track_pairs(
                pairs,
                out,
                method=method,
                patch_size=patch_size,
                spacing=spacing,
                search_radius=search_radius,
                chunks=chunks,
                apply_filter=apply_filter,
                days=days,
                pixel_size=pixel_size,
                mode="w" if overwrite else "a",
                scheduler=where,
                progress=progress,
                download_dir=download_dir,
                token=token,
            )
        except KeyboardInterrupt as exc:
            _batch_interrupted(exc, counts, len(pairs))
    if not quiet:
        click.echo(
            f"wrote {out}: {counts['done']} pairs tracked, {counts['skipped']} already there"
        )


@contextmanager
def _batch_scheduler(scheduler: str, workers: int | None, memory_limit: str | None) -> Any:
    """Yield what ``track_pairs(scheduler=...)`` takes: a name, or a distributed Client."""
    import dask

    if scheduler != "distributed" and "://" not in scheduler:
        options: dict[str, Any] = {"scheduler": scheduler}
        if workers:
            options["num_workers"] = workers
        with dask.config.set(**options):
            yield scheduler
        return
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler == "distributed":
        cluster = LocalCluster(
            n_workers=workers or None,
            threads_per_worker=1,
            dashboard_address=None,
            processes=True,
            silence_logs=logging.ERROR,
            memory_limit=memory_limit or "auto",
        )
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise click.BadParameter(
                f"no dask scheduler answered at {scheduler!r} ({exc})", param_hint="--scheduler"
            ) from exc
    try:
        yield client
    finally:
        client.close(timeout=3)
        if cluster is not None:
            cluster.close(timeout=5)


def _batch_interrupted(exc: KeyboardInterrupt, counts: dict[str, int], total: int) -> NoReturn:
    """Say in one line what the cube holds, and end the process now (as main() does)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    with warnings.catch_warnings():  # as _exit_interrupted: the line below says it all
        warnings.simplefilter("ignore")
        _remove_partials(_session().targets)
        click.echo(
            f"interrupted after {counts['done'] + counts['skipped']} of {total} pairs; the "
            "cube keeps the complete ones: run the same command again to resume",
            err=True,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(143 if isinstance(exc, _Terminated) else 130)


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
@click.option(
    "--bbox",
    nargs=4,
    type=float,
    default=None,
    metavar="W S E N",
    help="Area as a bounding box in degrees.",
)
@click.option("--wkt", default=None, help="Area as WKT (EPSG:4326).")
@click.option("--start", required=True, help="First date (UTC), e.g. 2024-02-01.")
@click.option("--end", required=True, help="Last date (UTC).")
@click.option(
    "--gap",
    "gaps",
    multiple=True,
    type=float,
    default=(12.0,),
    show_default=True,
    help="Wanted time gap in days between paired scenes (repeatable: 6, 12, 24).",
)
@click.option("--scenes", "scenes_only", is_flag=True, help="List scenes instead of pairs.")
@click.option(
    "--out",
    "out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the table as CSV (input for 'trackoff s1 download'). An "
    "existing file is refused unless --overwrite is given.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing --out table that trackoff wrote; any other file never.",
)
@_debug_option
def s1_search(
    bbox: tuple[float, ...] | None,
    wkt: str | None,
    start: str,
    end: str,
    gaps: tuple[float, ...],
    scenes_only: bool,
    out: str | None,
    overwrite: bool,
) -> None:
    """Search scenes over an area and date range and pair them on one orbit and frame.

    An existing --out file is replaced only with --overwrite, and only if it
    is a table trackoff wrote (checked before searching).
    """
    from .io import asf as s1_api
    from .io.files import write_table
    from .io.safety import TABLE_COLUMNS, check_output

    if (bbox is None) == (wkt is None):
        raise click.UsageError("give the area as exactly one of --bbox W S E N or --wkt WKT")
    mode = "w" if overwrite else "w-"
    if out:
        check_output(out, kind="table", mode=mode)
    scenes = s1_api.search_scenes(bbox if bbox is not None else wkt, start, end)
    table = scenes if scenes_only else s1_api.find_pairs(scenes, gaps)
    if not len(table):  # an empty table keeps its header: the file stays recognisable
        kind = "s1_scenes" if scenes_only else "s1_pairs"
        table = table.reindex(columns=list(TABLE_COLUMNS[kind]))
    columns = (
        [c for c in ("scene", "start", "relative_orbit", "frame", "flight_direction") if c in table]
        if scenes_only
        else ["reference", "secondary", "days", "relative_orbit", "frame"]
    )
    click.echo(table[columns].to_string(index=False) if len(table) else "nothing found")
    if out:
        write_table(table, out, mode=mode)
        click.echo(f"wrote {len(table)} rows to {out}")


@s1.command("download")
@click.argument("items", nargs=-1, required=True)
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the products go.",
)
@click.option(
    "--token",
    default=None,
    envvar="EARTHDATA_TOKEN",
    show_envvar=True,
    help="Earthdata Login token (else ~/.netrc).",
)
@_debug_option
def s1_download(items: tuple[str, ...], directory: str, token: str | None) -> None:
    """Download ITEMS: a CSV written by 'trackoff s1 search --out', or product URLs."""
    import pandas as pd

    from .io import asf as s1_api

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


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI; user errors print one line and exit with status 2.

    Ctrl-C (or SIGTERM) removes the partial output, prints one line and
    ends the process at once with status 130 (143 for SIGTERM): dask's
    worker threads still finishing a block are not waited for.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).
    """
    # before anything imports TensorFlow: no C++ INFO/WARNING lines
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    session = _Session()
    args = list(sys.argv[1:] if argv is None else argv)
    restore_sigterm = _raise_on_sigterm()
    try:
        with cli.make_context("trackoff", args, obj=session) as ctx:
            cli.invoke(ctx)
    except KeyboardInterrupt as exc:
        _exit_interrupted(session, exc)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"error: {_one_line(exc.format_message())}{hint}", err=True)
        sys.exit(2)
    except (TrackOffError, click.ClickException, FileNotFoundError) as exc:
        if session.debug:
            raise
        if isinstance(exc, click.ClickException):
            message = exc.format_message()
        elif isinstance(exc, TrackOffError):
            message = cli_message(str(exc))
        else:
            message = str(exc)
        click.echo(f"error: {_one_line(message)}", err=True)
        sys.exit(2)
    except Exception as exc:
        if session.debug:
            raise
        click.echo(
            f"error: {type(exc).__name__}: {_one_line(str(exc))} (rerun with --debug "
            "for the traceback)",
            err=True,
        )
        sys.exit(1)
    finally:
        restore_sigterm()


def _raise_on_sigterm() -> Any:
    """Make SIGTERM unwind the main thread like Ctrl-C; return what restores the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(
        signal.SIGTERM, previous if previous is not None else signal.SIG_DFL
    )


def _exit_interrupted(session: _Session, exc: KeyboardInterrupt) -> NoReturn:
    """Remove the partial outputs, say so in one line and end the process now.

    ``os._exit``: the interpreter would otherwise join dask's worker threads,
    which finish the block they are on (minutes for the classifier), and a
    second Ctrl-C would interrupt that join with a threading traceback.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):  # let the clean-up finish
        signal.signal(sig, signal.SIG_IGN)
    # worker threads still writing into the partial being removed may warn about
    # what they find there: the process is ending, the one line below says it all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _remove_partials(session.targets)  # write_zarr may have removed them already
        click.echo(
            "interrupted; the partial output was removed" if session.targets else "interrupted",
            err=True,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(143 if isinstance(exc, _Terminated) else 130)


def _remove_partials(targets: Iterable[str]) -> list[Path]:
    """Remove the hidden partial copies of ``targets``; twice, as threads may still write."""
    targets = list(targets)
    if not targets:
        return []
    from .io.safety import remove_partials

    removed: list[Path] = []
    for attempt in range(2):
        for target in targets:
            try:
                removed.extend(remove_partials(target, include_own=True))
            except Exception:  # best effort while exiting; never hide the interrupt
                logging.getLogger("trackoff_xr").debug("removing partials", exc_info=True)
        if attempt == 0:
            time.sleep(0.1)
    return removed


#: Python argument names in messages -> the ``trackoff run`` flags that set them
_FLAGS = {
    "patch_size": "--patch-size",
    "search_radius": "--search-radius",
    "pixel_size": "--pixel-size",
    "spacing": "--spacing",
    "chunks": "--chunks",
    "days": "--days",
    "polarisation": "--polarisation",
    "resolution": "--resolution",
    "coregister": "--coregister",
    "coarse": "--coarse",
    "prior": "--prior",
    "bbox": "--bbox",
    "crs": "--crs",
    "dem": "--dem",
}


def cli_message(message: str) -> str:
    """Say a library message in the command line's words: flags, not Python arguments.

    >>> cli_message("patch_size=4 is too small; use patch_size >= 8")
    '--patch-size 4 is too small; use --patch-size >= 8'
    >>> cli_message("it exists; pass mode='w' to replace it, or days= (e.g. days=12)")
    'it exists; pass --overwrite to replace it, or --days (e.g. --days 12)'
    >>> cli_message("pass coarse=False, or resolution= with crs=")
    'pass --no-coarse, or --resolution with --crs'
    """
    text = re.sub(r"""(?<![\w.])mode=(['"])w\1""", "--overwrite", message)
    text = re.sub(r"""(?<![\w.])mode=(['"])w-\1""", "no --overwrite", text)
    for name in ("coarse", "coregister"):  # on/off flags
        text = re.sub(rf"(?<![\w.-]){name}=True\b", f"--{name}", text)
        text = re.sub(rf"(?<![\w.-]){name}=False\b", f"--no-{name}", text)
    text = re.sub(r"(?<![\w.-])dem=None\b", "no --dem", text)
    for name, flag in _FLAGS.items():
        text = re.sub(rf"(?<![\w.-]){name}=(?=[^\s,;.)])", f"{flag} ", text)
        text = re.sub(rf"(?<![\w.-]){name}=", flag, text)
        if "_" in name:  # a bare Python name ("use patch_size >= 8"), not an English word
            text = re.sub(rf"(?<![\w.-]){name}\b", flag, text)
    return text


def _one_line(message: str) -> str:
    return " ".join(message.split())
