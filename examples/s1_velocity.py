"""Sentinel-1 ice velocity, end to end: search -> download -> offsets -> velocity -> files.

Online (needs Earthdata Login: EARTHDATA_TOKEN, ~/.netrc, or --token)::

    python examples/s1_velocity.py --bbox -50.2 69.05 -49.4 69.25 \
        --start 2024-02-01 --end 2024-03-01 --gap 12 --out dj_velocity \
        --crs EPSG:3413 --resolution 10 [--dem dem.tif] [--prior its_live.nc]

What it does:

1. ``trackoff_xr.io.asf.search_scenes`` finds IW GRD-HD scenes over the box;
   ``find_pairs`` keeps pairs on one relative orbit and frame ``--gap`` days apart.
2. ``trackoff_xr.io.asf.download`` fetches the first pair (complete files are skipped).
3. ``trackoff_xr.pipeline.run`` (the pipeline of ``trackoff run``) opens both
   ``.zip`` products lazily (radar geometry) and refuses pairs from different
   orbits (``check_s1_pair``);
4. measures the pair's global offset (``trackoff_xr.coregister``: the slice
   start from the annotation, refined on the images), which is removed, so the
   velocities are motion relative to stable ground;
5. geocodes both scenes lazily onto one map grid (``--crs``, ``--resolution``,
   ``--bbox``; terrain-corrected with ``--dem``, else through the products'
   ground control points): no scene is ever held in memory. Without ``--crs``
   they are tracked in radar geometry and the output names the components
   ``v_range``/``v_azimuth``;
6. ``trackoff_xr.offsets`` (NCC here; a coarse pass, or ``--prior``, centres
   the searches) and ``trackoff_xr.velocity`` give ``vx``, ``vy``, ``v`` in
   meter/year;
7. writes ``velocity.zarr`` (ITS_LIVE-style), one COG per component and the
   TrackOff CSV, all computed chunk by chunk while the store is written.

Steps 3-7 are :func:`process_pair`, one call of ``trackoff_xr.pipeline.run``;
the same as::

    trackoff run ref.zip sec.zip --out velocity.zarr --crs EPSG:3413 --resolution 10 \
        --dem dem.tif --bbox -50.2 69.05 -49.4 69.25 --method ncc

The test suite runs it offline on generated GeoTIFFs and a generated SAFE pair.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trackoff_xr import pipeline


def find_pair(bbox: tuple[float, float, float, float], start: str, end: str, gap: float = 12):
    """Search ASF and return the first pair ``gap`` days apart (a pandas Series)."""
    from trackoff_xr.io import asf as s1

    scenes = s1.search_scenes(bbox, start, end)
    pairs = s1.find_pairs(scenes, gaps=(gap,))
    if pairs.empty:
        raise SystemExit(
            f"no pair {gap} days apart among {len(scenes)} scenes; widen the dates or the gap"
        )
    return pairs.iloc[0]


def fetch(pair, directory: Path, **credentials: Any) -> tuple[Path, Path]:
    """Download both products of ``pair`` (skipping complete files)."""
    from trackoff_xr.io import asf as s1

    ref, sec = s1.download(pair.to_frame().T, directory, **credentials)
    return ref, sec


def process_pair(
    ref_path: str | Path,
    sec_path: str | Path,
    out_dir: str | Path,
    *,
    dates: tuple[str, str] | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    dem: str | Path | None = None,
    prior: str | Path | None = None,
    polarisation: str | None = None,
    coregister: bool | None = None,
    patch_size: int = 64,
    spacing: int = 32,
    search_radius: int = 16,
    method: str = "ncc",
    chunks: Any = 2048,
) -> dict[str, Any]:
    """Open a pair, geocode, coregister and track it lazily; write Zarr, GeoTIFFs and CSV."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # open -> coregister -> geocode -> offsets -> velocity -> the store, then GeoTIFFs and
    # CSV read back from it: lazy until the store is written, tracked once
    result = pipeline.run(
        ref_path,
        sec_path,
        out / "velocity.zarr",
        chunks=chunks,
        dates=dates,
        polarisation=polarisation,
        crs=crs,
        resolution=resolution,
        bbox=bbox,
        dem=dem,
        prior=prior,
        coregister=coregister,
        velocities=True,
        geotiff=out / "geotiff",
        csv=out / "points.csv",
        mode="w",
        patch_size=patch_size,
        spacing=spacing,
        search_radius=search_radius,
        method=method,
    )
    return {
        "zarr": result.zarr,
        "geotiff": result.geotiff,
        "csv": result.csv,
        "dataset": result.dataset,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bbox", nargs=4, type=float, required=True, metavar=("W", "S", "E", "N"))
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--gap", type=float, default=12)
    parser.add_argument("--out", default="s1_velocity")
    parser.add_argument("--crs", default="EPSG:3413")
    parser.add_argument("--resolution", type=float, default=10.0)
    parser.add_argument("--dem", default=None, help="DEM GeoTIFF for terrain correction")
    parser.add_argument("--prior", default=None, help="velocity prior (Zarr or netCDF)")
    parser.add_argument("--token", default=None, help="Earthdata token (else env/netrc)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    pair = find_pair(tuple(args.bbox), args.start, args.end, args.gap)
    print(f"pair: {pair.reference} -> {pair.secondary} ({pair.days:.1f} days)")
    ref_path, sec_path = fetch(pair, out / "downloads", token=args.token)
    result = process_pair(
        ref_path,
        sec_path,
        out,
        crs=args.crs,
        resolution=args.resolution,
        bbox=tuple(args.bbox),
        dem=args.dem,
        prior=args.prior,
    )
    print(f"wrote {result['zarr']}, {len(result['geotiff'])} GeoTIFFs and {result['csv']}")


if __name__ == "__main__":
    main()
