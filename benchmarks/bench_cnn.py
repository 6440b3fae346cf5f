"""``method="cnn"`` against ``method="ncc"``: accuracy and speed, side by side, in one run.

Accuracy on generated pairs the network never saw (seeds 500+ and fixed
texture settings; training draws its own from seed 0): independent 3-5-look
speckle in both images, smooth random displacement fields up to 10 px, and
one glacier field (a plug-flow ice stream whose margins shear sharply).
Reported per case: RMSE (px) against the template-averaged true motion,
fraction of points off by more than 1 px, and, for the CNN, the fraction off
by more than 1 px among points it scores >= 0.5. Speed: points/s through
``offsets()`` on a 4096 x 4096 pair (P=64, S=32, default radius), both methods.

Real texture (``--only real``, part of every full run): pairs made from the
real Sentinel-1 amplitude in ``../shared/data`` (and the cat photograph as a
natural-image control), moved by known affine, glacier-band and smooth fields
with speckle in one or both images and 8-bit saturation
(``benchmarks/real_texture.py``; evaluation only, never trained on). Reported
for the plain OpenCV loop, ``ncc`` and ``cnn`` in one run: RMSE and > 1 px
outliers over the points returned, coverage, and after ``filter_offsets`` the
share of points kept and the outliers among them; then points/s of all three
on a 4096 x 4096 real-texture pair.

Run: ``make bench`` or ``python benchmarks/bench_cnn.py [--quick] [--only real]
[--subpixel affine]``;
``--smoke`` runs one case of each part on tiny images (the test suite does).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

try:  # run as a script (python benchmarks/bench_cnn.py) or imported as benchmarks.bench_cnn
    from . import real_texture
    from .bench_ncc import best_of_rounds, dense_offsets, plain_opencv_loop
except ImportError:
    import real_texture  # type: ignore[no-redef]
    from bench_ncc import (  # type: ignore[no-redef]
        best_of_rounds,
        dense_offsets,
        plain_opencv_loop,
    )

CASES = [
    # name, looks, beta, contrast, seed, field
    ("smooth field, 3 looks", 3.0, 2.6, 0.8, 501, "smooth"),
    ("smooth field, 4 looks", 4.0, 2.2, 1.0, 502, "smooth"),
    ("smooth field, 5 looks", 5.0, 3.0, 0.6, 503, "smooth"),
    ("smooth field, 4 looks, low contrast", 4.0, 2.6, 0.35, 504, "smooth"),
    ("glacier field, 4 looks", 4.0, 2.6, 0.8, 505, "glacier"),
]


def _truth(truth, ds):
    from trackoff_xr.testing.synthetic import truth_at_points

    return truth_at_points(truth, ds)


def accuracy(size: int = 1024, cases=CASES) -> list[dict]:
    """RMSE and outlier fractions of both methods on each case."""
    from trackoff_xr.testing.synthetic import sar_pair

    rows = []
    for name, looks, beta, contrast, seed, field in cases:
        ref, sec, truth = sar_pair(
            (size, size),
            max_displacement=10.0,
            looks=looks,
            seed=seed,
            beta=beta,
            contrast=contrast,
            field=field,
        )
        row = {"case": name}
        for method in ("ncc", "cnn"):
            ds = dense_offsets(ref, sec, method)
            expected = _truth(truth, ds)
            ok = ds.valid.values
            err = np.hypot(ds.dx - expected.dx, ds.dy - expected.dy).values[ok]
            row[f"{method}_rmse_px"] = float(np.sqrt(np.mean(err**2)))
            row[f"{method}_gt1px"] = float(np.mean(err > 1))
            if method == "cnn":
                confident = ds.score.values[ok] >= 0.5
                row["cnn_score_ge_0.5_fraction"] = float(confident.mean())
                row["cnn_gt1px_among_score_ge_0.5"] = float(np.mean(err[confident] > 1))
        row["rmse_ratio_cnn_over_ncc"] = row["cnn_rmse_px"] / row["ncc_rmse_px"]
        rows.append(row)
    return rows


def speed(size: int = 4096, chunks: int = 1024, rounds: int = 5) -> dict:
    """Points/s of both methods through offsets() on one generated pair.

    Rounds alternate the two methods (a slow spell of a shared machine hits
    both) and each keeps its best; the rate counts the grid points whose
    windows fit in the image, the same for both methods.
    """
    import trackoff_xr
    from trackoff_xr.testing.synthetic import shifted_pair

    ref, sec = shifted_pair((size, size), shift=(-4.37, 6.81), looks=4.0, seed=600)
    grid = trackoff_xr.GridSpec(64, 32, 16)
    points = int(grid.window_fits(size).sum()) ** 2
    out: dict = {"size": size, "chunks": chunks, "points": points, "rounds": rounds}
    ref, sec = ref.chunk(chunks), sec.chunk(chunks)  # inputs ready before the clock starts

    def job(method: str):
        return lambda: trackoff_xr.offsets(
            ref, sec, patch_size=64, spacing=32, method=method
        ).compute()

    # round 0 warms up: TensorFlow, the model, the pools
    best, _ = best_of_rounds({method: job(method) for method in ("ncc", "cnn")}, rounds)
    for method, elapsed in best.items():
        out[f"{method}_points_per_s"] = points / elapsed
    out["speed_ratio_cnn_over_ncc"] = out["cnn_points_per_s"] / out["ncc_points_per_s"]
    return out


#: ``offsets()`` runs with its defaults otherwise: the coarse pass, then a
#: fine search of 6 px around each centre (``search_radius=None``)
GRID = {"patch_size": 64, "spacing": 32}
#: the plain loop has no coarse pass: it searches 16 px around every point
LOOP_RADIUS = 16


def _errors(dy, dx, truth_dy, truth_dx, keep):
    """RMSE and > 1 px fraction over the points in ``keep`` (NaN offsets count as missing)."""
    err = np.hypot(dy - truth_dy, dx - truth_dx)[keep]
    err = err[np.isfinite(err)]
    if not err.size:
        return float("nan"), float("nan")
    return float(np.sqrt(np.mean(err**2))), float(np.mean(err > 1))


def real_accuracy(cases=None, quick: bool = False, **options) -> list[dict]:
    """The plain OpenCV loop, ``ncc`` and ``cnn`` on every real-texture case.

    ``options`` go to both methods' ``offsets()`` (e.g. ``subpixel="affine"``).
    """
    import trackoff_xr
    from trackoff_xr.testing.synthetic import truth_at_points

    grid = trackoff_xr.GridSpec(GRID["patch_size"], GRID["spacing"], LOOP_RADIUS)
    rows = []
    for case in cases or real_texture.CASES:
        ref, sec, truth = real_texture.make_pair(case)
        if quick:
            ref, sec, truth = (a.isel(y=slice(0, 512), x=slice(0, 512)) for a in (ref, sec, truth))
        fits = np.ix_(grid.window_fits(ref.shape[0]), grid.window_fits(ref.shape[1]))
        row: dict = {"case": case.name, "secondary_only": case.secondary_only}
        expected = None
        for method in ("ncc", "cnn"):
            ds = trackoff_xr.offsets(
                ref.chunk(512), sec.chunk(512), method=method, **GRID, **options
            ).compute()
            if expected is None:
                expected = truth_at_points(truth, ds)
                t_dy, t_dx = expected.dy.values[fits], expected.dx.values[fits]
            dy, dx = ds.dy.values[fits], ds.dx.values[fits]
            returned = np.isfinite(dy) & np.isfinite(dx)
            row[f"{method}_rmse_px"], row[f"{method}_gt1px"] = _errors(dy, dx, t_dy, t_dx, returned)
            row[f"{method}_coverage"] = float(returned.mean())
            kept = trackoff_xr.filter_offsets(ds).valid.values[fits]
            row[f"{method}_kept"] = float(kept.mean())
            row[f"{method}_gt1px_among_kept"] = _errors(dy, dx, t_dy, t_dx, kept)[1]
            if method == "cnn":
                confident = returned & (ds.score.values[fits] >= 0.5)
                row["cnn_gt1px_among_score_ge_0.5"] = _errors(dy, dx, t_dy, t_dx, confident)[1]
                row["cnn_score_ge_0.5_fraction"] = float(confident.mean())
        loop_dy, loop_dx, _ = plain_opencv_loop(
            ref.values, sec.values, GRID["patch_size"], GRID["spacing"], LOOP_RADIUS
        )
        everywhere = np.ones(loop_dy.shape, bool)
        row["loop_rmse_px"], row["loop_gt1px"] = _errors(loop_dy, loop_dx, t_dy, t_dx, everywhere)
        row["cnn_rmse_over_loop"] = row["cnn_rmse_px"] / row["loop_rmse_px"]
        row["cnn_gt1px_over_ncc"] = row["cnn_gt1px"] / max(row["ncc_gt1px"], 1e-9)
        rows.append(row)
    return rows


def real_speed(size: int = 4096, chunks: int = 1024, rounds: int = 3, **options) -> dict:
    """Points/s of the plain loop, ``ncc`` and ``cnn`` on one real-texture pair, interleaved.

    Every contender gets its inputs ready before the clock starts, as a
    script has its arrays: the loop numpy arrays, ``offsets()`` the pair
    chunked once (chunking a numpy-backed DataArray hashes all its pixels,
    ~0.15 s here, which is input preparation, not matching). The loop runs
    with OpenCV's default thread pool and with one thread, and the faster
    counts, as in ``bench_ncc.py``.
    """
    import cv2

    import trackoff_xr
    from trackoff_xr.matchers.cnn.features import network_runtime

    ref, sec = real_texture.tiled_scene(size, looks=4.0, shift=(-4.37, 6.81), seed=950)
    grid = trackoff_xr.GridSpec(GRID["patch_size"], GRID["spacing"], LOOP_RADIUS)
    points = int(grid.window_fits(size).sum()) ** 2
    ref_np, sec_np = ref.values, sec.values
    ref_chunked, sec_chunked = ref.chunk(chunks), sec.chunk(chunks)

    def loop(threads: int):
        def job() -> None:
            saved = cv2.getNumThreads()
            cv2.setNumThreads(threads)
            try:
                plain_opencv_loop(ref_np, sec_np, GRID["patch_size"], GRID["spacing"], LOOP_RADIUS)
            finally:
                cv2.setNumThreads(saved)

        return job

    def method(name: str):
        def job() -> None:
            trackoff_xr.offsets(ref_chunked, sec_chunked, method=name, **GRID, **options).compute()

        return job

    loops = {f"loop_threads_{n}": loop(n) for n in sorted({cv2.getNumThreads(), 1})}
    jobs = {**loops, "ncc": method("ncc"), "cnn": method("cnn")}
    best, _ = best_of_rounds(jobs, rounds)
    best["loop"] = min(best[name] for name in loops)
    out: dict = {"size": size, "points": points, "rounds": rounds}
    for name, elapsed in best.items():
        out[f"{name}_points_per_s"] = points / elapsed
    out["ncc_over_loop"] = out["ncc_points_per_s"] / out["loop_points_per_s"]
    out["cnn_over_ncc"] = out["cnn_points_per_s"] / out["ncc_points_per_s"]
    out["cnn_runtime"] = network_runtime()  # what cnn_runtime="auto" chose here
    return out


def _print_real(rows: list[dict], speed_row: dict | None) -> None:
    def pct(v: float) -> str:
        return "  -  " if v != v else f"{100 * v:5.1f}%"

    print(
        "real texture (P=64, S=32; loop R=16, offsets() defaults): "
        "RMSE px / >1px / coverage; kept / >1px among kept"
    )
    for row in rows:
        print(f"  {row['case']}")
        print(f"    loop: {row['loop_rmse_px']:.3f} / {pct(row['loop_gt1px'])}")
        for m in ("ncc", "cnn"):
            print(
                f"    {m}:  {row[f'{m}_rmse_px']:.3f} / {pct(row[f'{m}_gt1px'])} / "
                f"{pct(row[f'{m}_coverage'])};  kept {pct(row[f'{m}_kept'])} / "
                f"{pct(row[f'{m}_gt1px_among_kept'])}"
            )
    if speed_row:
        print(
            f"real-texture speed {speed_row['size']}^2: loop "
            f"{speed_row['loop_points_per_s']:.0f}, ncc {speed_row['ncc_points_per_s']:.0f} "
            f"({speed_row['ncc_over_loop']:.2f}x loop), cnn {speed_row['cnn_points_per_s']:.0f} "
            f"pts/s ({speed_row['cnn_over_ncc']:.2f}x ncc; network run by "
            f"{speed_row['cnn_runtime']})"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small images")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny images, one case of each part, one round: checks that it runs",
    )
    parser.add_argument(
        "--only", choices=("accuracy", "speed", "real"), help="run one part of the benchmark"
    )
    parser.add_argument(
        "--subpixel",
        help="sub-pixel refinement for both methods in the real-texture part (default: theirs)",
    )
    args = parser.parse_args(argv)
    options = {"subpixel": args.subpixel} if args.subpixel else {}
    size, big = (384, 768) if args.quick else (1024, 4096)
    cases, real_cases, rounds = CASES, None, {}
    if args.smoke:
        size, big = 192, 256
        cases, real_cases, rounds = CASES[-1:], real_texture.CASES[-1:], {"rounds": 1}
    report: dict = {}
    if args.only in (None, "accuracy"):
        report["accuracy"] = accuracy(size, cases=cases)
    if args.only in (None, "speed"):
        report["speed"] = speed(big, chunks=min(1024, big // 2), **rounds)
    if args.only in (None, "real"):
        report["real_texture"] = real_accuracy(
            real_cases, quick=args.quick or args.smoke, **options
        )
        report["real_texture_speed"] = real_speed(
            big, chunks=min(1024, big // 2), **rounds, **options
        )
    print(json.dumps(report, indent=2, default=lambda v: round(v, 4)))
    for row in report.get("accuracy", []):
        print(
            f"{row['case']:>36}: RMSE ncc {row['ncc_rmse_px']:.3f}  cnn {row['cnn_rmse_px']:.3f}"
            f"  (ratio {row['rmse_ratio_cnn_over_ncc']:.2f});  >1px ncc "
            f"{100 * row['ncc_gt1px']:.1f}%  cnn {100 * row['cnn_gt1px']:.1f}%"
        )
    if "real_texture" in report:
        _print_real(report["real_texture"], report.get("real_texture_speed"))
    if "speed" in report:
        s = report["speed"]
        print(
            f"speed {s['size']}^2: ncc {s['ncc_points_per_s']:.0f} pts/s, cnn "
            f"{s['cnn_points_per_s']:.0f} pts/s (ratio {s['speed_ratio_cnn_over_ncc']:.2f})"
        )


if __name__ == "__main__":
    main()
