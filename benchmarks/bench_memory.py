"""Peak memory of a whole-scene run, against the size of the scene, in one run.

A generated pair is written to a Zarr store on disk, then, each in a fresh
process, three things are measured (peak resident memory):

* ``import``: the interpreter with trackoff_xr, numpy, xarray and dask
  imported: the floor every run pays;
* ``load``: reading both images into memory with numpy, as a script would;
* ``offsets``: ``trackoff_xr.offsets`` from the Zarr store (lazy, chunked)
  to a Zarr store of offsets, with the default threaded scheduler.

The report gives each peak minus the import floor, for several scene sizes:
loading grows with the scene's area; a chunked run holds each worker
thread's working set (~125 MB for ``ncc``: integral images and scratch
buffers of one block) plus the input chunks of the few block rows in
flight, so it grows with the scene's width only.

Run: ``python benchmarks/bench_memory.py [--sizes 4096 8192 12288] [--method ncc]``;
``--smoke`` measures one tiny scene (the test suite does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_IMPORT = "import trackoff_xr, numpy, xarray, dask.array"

_LOAD = """
import xarray as xr, numpy as np
ds = xr.open_zarr({store!r})
ref, sec = ds.ref.values, ds.sec.values
"""

_RUN = """
import xarray as xr, trackoff_xr
ds = xr.open_zarr({store!r})
out = trackoff_xr.offsets(ds.ref, ds.sec, method={method!r})
trackoff_xr.to_zarr(out, {target!r})
"""

# VmHWM, not ru_maxrss: the latter survives fork+exec and would report the
# parent's peak (the parent holds the generated scene)
_PEAK = """
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) * 1024)
"""


def _peak(code: str) -> int:
    """Peak resident bytes of a fresh interpreter running ``code``."""
    script = f"{_IMPORT}\n{code}\n{_PEAK}"
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    return int(out.strip().splitlines()[-1])


def run(size: int = 8192, chunks: int = 1024, method: str = "ncc") -> dict:
    """Write a ``size`` x ``size`` pair to Zarr and measure the three peaks."""
    import xarray as xr

    from trackoff_xr.testing.synthetic import shifted_pair

    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "pair.zarr")
        ref, sec = shifted_pair((size, size), shift=(-4.37, 6.81), looks=4.0, seed=7)
        pair = xr.Dataset({"ref": ref, "sec": sec}).chunk(chunks)
        pair.to_zarr(store, zarr_format=2)
        scene_bytes = 2 * size * size * 4
        del ref, sec, pair
        floor = _peak("")
        load = _peak(_LOAD.format(store=store))
        offsets = _peak(
            _RUN.format(store=store, method=method, target=str(Path(tmp) / "offsets.zarr"))
        )
    mib = 2**20
    return {
        "size": size,
        "chunks": chunks,
        "method": method,
        "scene_mib": scene_bytes / mib,
        "import_floor_mib": floor / mib,
        "load_with_numpy_mib_above_floor": (load - floor) / mib,
        "offsets_mib_above_floor": (offsets - floor) / mib,
        "offsets_fraction_of_scene": (offsets - floor) / scene_bytes,
        "load_fraction_of_scene": (load - floor) / scene_bytes,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 12288])
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument("--method", default="ncc")
    parser.add_argument("--smoke", action="store_true", help="one tiny scene: checks that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.chunks = [256], 128
    rows = [run(size, args.chunks, args.method) for size in args.sizes]
    print(json.dumps([{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
                      for r in rows], indent=2))  # fmt: skip
    print(
        f"{'scene':>8} {'pair MiB':>9} {'numpy load':>11} {'offsets':>9}  (MiB above import floor)"
    )
    for r in rows:
        print(
            f"{r['size']:>6}^2 {r['scene_mib']:>9.0f} {r['load_with_numpy_mib_above_floor']:>11.0f}"
            f" {r['offsets_mib_above_floor']:>9.0f}"
        )


if __name__ == "__main__":
    main()
