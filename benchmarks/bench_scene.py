"""Whole scenes: seconds, points/s and peak memory of a Sentinel-1 IW-size pair, in one run.

A pair the size of an IW GRDH scene (16,685 x 25,788 px) is written to a
chunked Zarr store on disk: the real S1 amplitude of ``../shared/data``
(``DJ_before.tiff``) mirrored to fill the scene, the secondary moved by a
uniform sub-pixel shift, independent 4-look speckle in both, 8-bit. Then,
each in a fresh process, ``offsets()`` -> ``to_zarr`` runs for every method
on a quarter and on the full scene, with the threaded scheduler (2 threads)
and on a ``LocalCluster(n_workers=2, threads_per_worker=1,
memory_limit="2GiB")``. Reported: seconds, points/s, peak RSS of the process
and of each worker, worker restarts and spilled bytes, and the ratios
full/quarter (memory and speed) and distributed/threaded, and the largest
difference of the offsets between the threaded and the distributed run.

Run: ``python benchmarks/bench_scene.py [--scale 0.25] [--methods ncc cnn] [--store PATH]``
(``--scale`` shrinks both sides of the scene, for a quick look; ``--store`` keeps
the scene for reruns: written there if the path does not exist, else read as it
is; ``--smoke`` runs a tiny scene with ncc on threads, as the test suite does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

IW_SHAPE = (16685, 25788)
CHUNKS = 2048

_RUN = r"""
import json, os, time
import xarray as xr, trackoff_xr

def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

store, target, method, part, scheduler = {args!r}
pair = xr.open_zarr(store)
ref, sec = pair.ref, pair.sec
if part == "quarter":
    ref = ref.isel(y=slice(0, ref.shape[0] // 2), x=slice(0, ref.shape[1] // 2))
    sec = sec.isel(y=slice(0, sec.shape[0] // 2), x=slice(0, sec.shape[1] // 2))
out = {{"shape": list(ref.shape)}}
client = None
if scheduler == "cluster":
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="2GiB",
                           dashboard_address=None)
    client = Client(cluster)
    pids = sorted(client.run(os.getpid).values())
t0 = time.perf_counter()
ds = trackoff_xr.offsets(ref, sec, method=method)
points = int(ds.sizes["y"] * ds.sizes["x"])
trackoff_xr.to_zarr(ds, target)
out["seconds"] = time.perf_counter() - t0
out["points"] = points
out["points_per_s"] = points / out["seconds"]
if client is not None:
    def worker_stats(dask_worker):
        data = dask_worker.data
        slow = getattr(data, "slow", None)
        spilled = sum(getattr(slow, "weight_by_key", {{}}).values()) if slow is not None else 0
        return {{"peak_rss": peak_rss(), "spilled_bytes": getattr(data, "spilled_total", spilled)}}
    stats = client.run(worker_stats)
    out["worker_peak_rss"] = [s["peak_rss"] for s in stats.values()]
    out["worker_spilled_bytes"] = [s["spilled_bytes"] for s in stats.values()]
    out["worker_restarts"] = len(set(pids) ^ set(client.run(os.getpid).values())) // 2
    client.close(); cluster.close()
out["peak_rss"] = peak_rss()
print(json.dumps(out))
"""


def write_scene(store: Path, shape: tuple[int, int], seed: int = 77) -> None:
    """Write the real-texture IW-size pair to ``store`` (uint8, chunks of 2048), blockwise."""
    import dask.array as da
    import numpy as np
    import xarray as xr
    from scipy import ndimage

    try:
        from .real_texture import load_texture
    except ImportError:
        from real_texture import load_texture  # type: ignore[no-redef]

    texture = load_texture("dj")
    tile = np.block([[texture, texture[:, ::-1]], [texture[::-1], texture[::-1, ::-1]]])
    shift, looks, halo = (-4.37, 6.81), 4.0, 8

    def block(zeros, moved, block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        rows = np.arange(y0 - halo, y1 + halo) % tile.shape[0]
        cols = np.arange(x0 - halo, x1 + halo) % tile.shape[1]
        amplitude = tile[np.ix_(rows, cols)]
        if moved:
            amplitude = ndimage.shift(amplitude, shift, order=3, mode="mirror")
        amplitude = amplitude[halo:-halo, halo:-halo]
        rng = np.random.default_rng([seed, int(moved), y0, x0])
        speckled = np.sqrt(amplitude.clip(0) ** 2 * rng.gamma(looks, 1 / looks, amplitude.shape))
        return np.clip(np.round(speckled), 0, 255).astype(np.uint8)

    base = da.zeros(shape, chunks=CHUNKS, dtype=np.uint8)
    images = {
        name: xr.DataArray(base.map_blocks(block, moved=moved, dtype=np.uint8), dims=("y", "x"))
        for name, moved in (("ref", False), ("sec", True))
    }
    xr.Dataset(images).to_zarr(store, mode="w", zarr_format=2)


def measure(store: Path, work: Path, method: str, part: str, scheduler: str) -> dict:
    """Run one configuration in a fresh interpreter and return its figures."""
    target = work / f"out-{method}-{part}-{scheduler}.zarr"
    code = _RUN.format(args=(str(store), str(target), method, part, scheduler))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:  # the exception's line, not the warnings printed after it
        lines = done.stderr.strip().splitlines()
        errors = [line for line in lines if "Error" in line or "Killed" in line]
        return {"error": (errors or lines)[-3:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_results(first: Path, second: Path) -> float:
    """Largest difference (px) of ``dy``/``dx`` between two result stores (NaN where they agree)."""
    import numpy as np
    import xarray as xr

    worst = 0.0
    with xr.open_zarr(first) as a, xr.open_zarr(second) as b:
        for name in ("dy", "dx"):
            x, y = a[name].values, b[name].values
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                return float("inf")
            worst = max(worst, float(np.nanmax(np.abs(x - y), initial=0.0)))
    return worst


def run(
    scale: float = 1.0,
    methods=("ncc", "cnn"),
    schedulers=("threads", "cluster"),
    store: Path | None = None,
) -> dict:
    """Write the scene, measure every configuration, compute the ratios.

    With ``store``, the scene is read from there, and written there first
    only if nothing is there yet (an existing path is never written to).
    """
    shape = (int(IW_SHAPE[0] * scale), int(IW_SHAPE[1] * scale))
    report: dict = {"scene": list(shape), "chunks": CHUNKS, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        if store is None:
            store = Path(tmp) / "scene.zarr"
        if not store.exists():
            write_scene(store, shape)
        else:  # a kept scene: its own size, whatever --scale says
            import xarray as xr

            with xr.open_zarr(store) as kept:
                report["scene"] = list(kept.ref.shape)
        for method in methods:
            for scheduler in schedulers:
                for part in ("quarter", "full"):
                    key = f"{method}/{scheduler}/{part}"
                    report["runs"][key] = measure(store, Path(tmp), method, part, scheduler)
                    print(key, json.dumps(report["runs"][key]), file=sys.stderr)
        for method in methods:
            for part in ("quarter", "full"):
                keys = [f"{method}/{s}/{part}" for s in ("threads", "cluster")]
                if all(k in report["runs"] and "error" not in report["runs"][k] for k in keys):
                    outputs = [
                        Path(tmp) / f"out-{method}-{part}-{s}.zarr" for s in ("threads", "cluster")
                    ]
                    report[f"{method}/{part}/threads_vs_cluster_max_abs_px"] = same_results(
                        *outputs
                    )
    for method in methods:
        for scheduler in schedulers:
            quarter = report["runs"][f"{method}/{scheduler}/quarter"]
            full = report["runs"][f"{method}/{scheduler}/full"]
            if "error" in quarter or "error" in full:
                continue
            peak = "worker_peak_rss" if scheduler == "cluster" else "peak_rss"
            q_peak, f_peak = (
                max(r[peak]) if scheduler == "cluster" else r[peak] for r in (quarter, full)
            )
            report[f"{method}/{scheduler}/full_over_quarter_peak"] = f_peak / q_peak
            report[f"{method}/{scheduler}/full_over_quarter_speed"] = (
                full["points_per_s"] / quarter["points_per_s"]
            )
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each IW side")
    parser.add_argument("--methods", nargs="+", default=["ncc", "cnn"])
    parser.add_argument("--schedulers", nargs="+", default=["threads", "cluster"])
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny scene, ncc, threads: checks that it runs"
    )
    parser.add_argument(
        "--store",
        type=Path,
        help="read the scene from this Zarr store; it is written there first if the path "
        "does not exist (keep it for reruns; an existing path is never written to)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.scale, args.methods, args.schedulers = 0.02, ["ncc"], ["threads"]
    report = run(args.scale, tuple(args.methods), tuple(args.schedulers), args.store)
    print(json.dumps(report, indent=2, default=lambda v: round(v, 4)))
    gib = 2.0**30
    for key, r in report["runs"].items():
        if "error" in r:
            print(f"{key:>24}: failed: {r['error']}")
            continue
        workers = ""
        if "worker_peak_rss" in r:
            workers = (
                f", workers {', '.join(f'{w / gib:.2f}' for w in r['worker_peak_rss'])} GiB, "
                f"restarts {r['worker_restarts']}"
            )
        print(
            f"{key:>24}: {r['seconds']:.0f} s, {r['points_per_s']:.0f} pts/s, peak "
            f"{r['peak_rss'] / gib:.2f} GiB{workers}"
        )
    for key, value in report.items():
        if key.endswith(("_peak", "_speed", "_max_abs_px")):
            print(f"{key:>44}: {value:.3g}")


if __name__ == "__main__":
    main()
