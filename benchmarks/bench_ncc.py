"""Points/s of ``method="ncc"`` through ``offsets()`` against a plain OpenCV loop.

Both run in the same process on the same generated pair and the same grid,
so the ratio measures what the xarray/dask engine costs (or gains, through
dask's threads) over a hand-written ``cv2.matchTemplate`` loop.

Run: ``make bench`` (or ``python benchmarks/bench_ncc.py --size 4096``);
``--smoke`` runs it on a tiny pair (the test suite does).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def best_of_rounds(jobs: dict, rounds: int) -> tuple[dict[str, float], dict[str, object]]:
    """Run ``jobs`` (name -> callable) in ``rounds`` interleaved rounds after a warm-up one.

    Return each job's best seconds and its last result. Interleaving lets a
    slow spell of a shared machine hit every contender alike.

    Examples
    --------
    >>> best, results = best_of_rounds({"sum": lambda: sum(range(10))}, rounds=2)
    >>> results["sum"], best["sum"] >= 0
    (45, True)
    """
    best = dict.fromkeys(jobs, np.inf)
    results: dict[str, object] = {}
    for round_ in range(rounds + 1):  # round 0 warms up (imports, pools, first allocations)
        for name, job in jobs.items():
            t0 = time.perf_counter()
            results[name] = job()
            if round_:
                best[name] = min(best[name], time.perf_counter() - t0)
    return best, results


def dense_offsets(ref, sec, method: str, chunks: int = 512, **options):
    """``offsets()`` on the benchmarks' dense grid (64 px templates every 32 px), computed."""
    import trackoff_xr

    return trackoff_xr.offsets(
        ref.chunk(chunks), sec.chunk(chunks), patch_size=64, spacing=32, method=method, **options
    ).compute()


def plain_opencv_loop(
    ref: np.ndarray, sec: np.ndarray, patch: int, spacing: int, radius: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """What a script would do: matchTemplate + minMaxLoc per grid point (integer peaks)."""
    import cv2

    from trackoff_xr import GridSpec

    grid = GridSpec(patch, spacing, radius)
    starts_y = grid.template_starts(ref.shape[0])[grid.window_fits(ref.shape[0])]
    starts_x = grid.template_starts(ref.shape[1])[grid.window_fits(ref.shape[1])]
    dy = np.empty((starts_y.size, starts_x.size), np.float32)
    dx = np.empty_like(dy)
    for i, r0 in enumerate(starts_y):
        for j, c0 in enumerate(starts_x):
            tmpl = ref[r0 : r0 + patch, c0 : c0 + patch]
            win = sec[r0 - radius : r0 + patch + radius, c0 - radius : c0 + patch + radius]
            surface = cv2.matchTemplate(win, tmpl, cv2.TM_CCOEFF_NORMED)
            _, _, _, (col, row) = cv2.minMaxLoc(surface)
            dy[i, j], dx[i, j] = row - radius, col - radius
    return dy, dx, dy.size


def run(
    size: int = 4096,
    patch: int = 64,
    spacing: int = 32,
    radius: int = 16,
    chunks: int = 1024,
    repeat: int = 5,
) -> dict:
    """Time both paths; return points/s, ratios and accuracy against the known shift."""
    import trackoff_xr
    from trackoff_xr.testing.synthetic import shifted_pair

    shift = (-4.37, 6.81)
    ref, sec = shifted_pair((size, size), shift=shift, looks=4.0, seed=123)
    ref_np, sec_np = ref.values, sec.values
    import cv2

    def plain(threads: int):
        def job():
            saved = cv2.getNumThreads()
            cv2.setNumThreads(threads)
            try:
                return plain_opencv_loop(ref_np, sec_np, patch, spacing, radius)
            finally:
                cv2.setNumThreads(saved)

        return job

    # inputs ready before the clock starts, as the loop has its numpy arrays
    ref_chunked, sec_chunked = ref.chunk(chunks), sec.chunk(chunks)

    def through_offsets(subpixel: str):
        def job():
            ds = trackoff_xr.offsets(
                ref_chunked,
                sec_chunked,
                patch_size=patch,
                spacing=spacing,
                search_radius=radius,
                method="ncc",
                subpixel=subpixel,
            )
            return ds.compute()

        return job

    # the plain loop as a script would run it (OpenCV's default thread pool),
    # and with OpenCV on one thread, which is faster for such small calls;
    # ratios are against the faster of the two
    jobs = {f"plain_opencv_threads_{n}": plain(n) for n in sorted({cv2.getNumThreads(), 1})}
    jobs |= {f"offsets_{sp}": through_offsets(sp) for sp in ("none", "gaussian", "gauss-newton")}
    best, results = best_of_rounds(jobs, repeat)

    plain_names = [name for name in jobs if name.startswith("plain")]
    fastest = min(plain_names, key=best.__getitem__)
    pdy, pdx, n_points = results[fastest]
    plain_rate = n_points / best[fastest]
    report: dict[str, object] = {
        "size": size,
        "patch_size": patch,
        "spacing": spacing,
        "search_radius": radius,
        "chunks": chunks,
        "rounds": repeat,
        "points": n_points,
        "plain_opencv_points_per_s": plain_rate,
        **{f"{name}_points_per_s": n_points / best[name] for name in plain_names},
        "plain_opencv_rmse_px": float(
            np.sqrt(np.mean((pdy - shift[0]) ** 2 + (pdx - shift[1]) ** 2))
        ),
    }
    for name in jobs:
        if name in plain_names:
            continue
        ds = results[name]
        ok = np.isfinite(ds.dy.values)
        rate = n_points / best[name]  # the same grid points as the loop
        report[f"{name}_points_per_s"] = rate
        report[f"{name}_ratio_vs_plain"] = rate / plain_rate
        report[f"{name}_rmse_px"] = float(
            np.sqrt(
                np.mean((ds.dy.values[ok] - shift[0]) ** 2 + (ds.dx.values[ok] - shift[1]) ** 2)
            )
        )
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed rounds; each contender keeps its best"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny pair, one round: checks that it runs"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.chunks, args.repeat = 192, 96, 1
    report = run(size=args.size, chunks=args.chunks, repeat=args.repeat)
    print(json.dumps(_rounded(report), indent=2))


def _rounded(value):
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    return round(value, 3) if isinstance(value, float) else value


if __name__ == "__main__":
    main()
