"""Sentinel-1 ice velocity, end to end: search -> download -> offsets -> velocity -> files.

Online (needs Earthdata Login: EARTHDATA_TOKEN, ~/.netrc, or --token)::

    python examples/s1_velocity.py --bbox -50.2 69.05 -49.4 69.25 \
        --start 2024-02-01 --end 2024-03-01 --gap 12 --out dj_velocity \
        --crs EPSG:3413 --resolution 10

What it does:

1. ``trackoff_xr.io.asf.search_scenes`` finds IW GRD-HD scenes over the box;
   ``find_pairs`` keeps pairs on one relative orbit and frame ``--gap`` days apart.
2. ``trackoff_xr.io.asf.download`` fetches the first pair (complete files are skipped).
3. ``trackoff_xr.open_image`` opens both ``.zip`` products lazily (radar geometry);
   ``check_s1_pair`` refuses pairs from different orbits.
4. Both scenes are projected onto one map grid with their ground control points
   (``--crs``; this step loads the scenes into memory: about 2 GB each), then
   clipped to ``--bbox``. Without ``--crs`` they are tracked in radar geometry
   and the output names the components ``v_range``/``v_azimuth``.
5. ``trackoff_xr.offsets`` (NCC here) and ``trackoff_xr.velocity``
   give ``vx``, ``vy``, ``v`` in meter/year.
6. ``velocity.zarr`` (ITS_LIVE-style), one COG per component and the TrackOff CSV.

Steps 3-6 are :func:`process_pair`, which the test suite runs offline on
generated GeoTIFFs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import trackoff_xr
from trackoff_xr.io import to_csv, to_geotiff, to_zarr
from trackoff_xr.postprocess.velocity import pair_metadata, velocity


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


def _project(ref, sec, crs: str, resolution: float | None):
    """Put two radar-geometry scenes on one map grid using their ground control points."""
    ref_map = ref.rio.reproject(crs, resolution=resolution)
    sec_map = sec.rio.reproject_match(ref_map)
    for img in (ref_map, sec_map):
        img.attrs["geometry"] = "map"
    return ref_map, sec_map


def process_pair(
    ref_path: str | Path,
    sec_path: str | Path,
    out_dir: str | Path,
    *,
    dates: tuple[str, str] | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    patch_size: int = 64,
    spacing: int = 32,
    search_radius: int = 16,
    method: str = "ncc",
    chunks: Any = 2048,
) -> dict[str, Any]:
    """Open a pair, track it and write Zarr, GeoTIFFs and CSV into ``out_dir``."""
    ref = trackoff_xr.open_image(ref_path, chunks=chunks, date=dates[0] if dates else None)
    sec = trackoff_xr.open_image(sec_path, chunks=chunks, date=dates[1] if dates else None)
    if ref.attrs.get("geometry") == "radar":
        from trackoff_xr.io.safe import check_s1_pair

        check_s1_pair(ref, sec)
        if crs is not None:
            ref, sec = _project(ref, sec, crs, resolution)
        else:  # same orbit and frame: crop both to the common pixel extent
            rows, cols = min(ref.shape[0], sec.shape[0]), min(ref.shape[1], sec.shape[1])
            ref, sec = ref[:rows, :cols], sec[:rows, :cols]
    if bbox is not None and ref.attrs.get("geometry") != "radar":
        ref = ref.rio.clip_box(*bbox, crs="EPSG:4326")
        sec = sec.rio.clip_box(*bbox, crs="EPSG:4326")
    ds = trackoff_xr.offsets(
        ref, sec, patch_size=patch_size, spacing=spacing, search_radius=search_radius, method=method
    )
    ds = velocity(ds.assign_attrs(pair_metadata(ref, sec)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = ds.persist()  # track once, write three times
    components = ("vx", "vy", "v") if "vx" in ds else ("v_range", "v_azimuth", "v")
    return {
        "zarr": to_zarr(ds, out / "velocity.zarr", mode="w"),
        "geotiff": to_geotiff(ds, out / "geotiff", variables=(*components, "score"), mode="w"),
        "csv": to_csv(ds, out / "points.csv", mode="w"),
        "dataset": ds,
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
    parser.add_argument("--token", default=None, help="Earthdata token (else env/netrc)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    pair = find_pair(tuple(args.bbox), args.start, args.end, args.gap)
    print(f"pair: {pair.reference} -> {pair.secondary} ({pair.days:.1f} days)")
    ref_path, sec_path = fetch(pair, out / "downloads", token=args.token)
    result = process_pair(
        ref_path, sec_path, out, crs=args.crs, resolution=args.resolution, bbox=tuple(args.bbox)
    )
    print(f"wrote {result['zarr']}, {len(result['geotiff'])} GeoTIFFs and {result['csv']}")


if __name__ == "__main__":
    main()
