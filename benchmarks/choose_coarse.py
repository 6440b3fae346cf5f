"""Choose the coarse pass (:class:`trackoff_xr.search.CoarseSearch`) on generated pairs only.

The coarse pass centres every fine search; it costs about as much as the fine
pass itself with its old default (a 32-px coarse template every 8 coarse
pixels). This script measures what a sparser or smaller coarse grid costs in
accuracy, on generated data only (never ``../shared/data``, which is for
evaluation): Sentinel-1-like pairs (:func:`trackoff_xr.testing.sar_scenes.sar_pair_layers`:
radiometric edges, saturated and featureless areas, point scatterers,
decorrelation, radiometric change; affine, glacier and smooth fields up to
10 px on top of a uniform shift up to 40 px) and fractal glacier pairs
(:func:`trackoff_xr.testing.sar_pair`). Seeds 3000+ are used nowhere else.

Per variant and method: > 1 px outliers and RMSE over returned points, and
after :func:`trackoff_xr.filter_offsets` the share kept and the outliers among
kept points, pooled over all pairs; plus the seconds of the coarse pass alone
on a 4096 x 4096 generated pair.

Run: ``python benchmarks/choose_coarse.py [--pairs 12] [--methods ncc cnn]``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

try:  # run as a script or imported as benchmarks.choose_coarse
    from .bench_ncc import best_of_rounds, dense_offsets
except ImportError:
    from bench_ncc import best_of_rounds, dense_offsets  # type: ignore[no-redef]

#: name -> CoarseSearch keyword arguments (coarse pixels; factor 4)
VARIANTS = {
    "P32 S8 (old default)": {"patch_size": 32, "spacing": 8},
    "P32 S16": {"patch_size": 32, "spacing": 16},
    "P24 S12": {"patch_size": 24, "spacing": 12},
}
FIELDS = ("affine", "glacier", "smooth")
SEED0 = 3000


def generated_pairs(count: int, size: int = 1024):
    """Yield ``(name, ref, sec, truth)``: SAR-like pairs with large shifts, then fractal ones."""
    import xarray as xr

    from trackoff_xr.testing.sar_scenes import sar_pair_layers
    from trackoff_xr.testing.synthetic import _as_pair, sar_pair

    for i in range(count):
        seed = SEED0 + i
        if i % 3 == 2:  # every third pair: fractal texture, glacier field
            ref, sec, truth = sar_pair(
                (size, size), max_displacement=10.0, looks=float(2 + i % 5), seed=seed
            )
            yield f"fractal glacier {seed}", ref, sec, truth
            continue
        rng = np.random.default_rng(seed)
        shift = (float(rng.uniform(-40, 40)), float(rng.uniform(-40, 40)))
        pair = sar_pair_layers(
            (size, size), rng, field=FIELDS[i % 3], max_displacement=10.0, shift=shift
        )
        ref, sec = _as_pair(pair.ref, pair.sec, {})
        truth = xr.Dataset(
            {"dy": (("y", "x"), pair.dy.astype(np.float32)), "dx": (("y", "x"), pair.dx)},
            coords=ref.coords,
        )
        changed = xr.DataArray(np.asarray(pair.changed, np.float32), coords=ref.coords)
        yield f"S1-like {FIELDS[i % 3]} {seed}", ref, sec, truth.assign(changed=changed)


def pair_errors(
    ref, sec, truth, variant: dict, method: str, **options
) -> tuple[np.ndarray, np.ndarray, int]:
    """Errors of the returned points, errors of the points kept, and the usable points.

    ``offsets()`` runs with the grid of these benchmarks and the coarse pass
    ``variant``; ``options`` go to it (e.g. ``weights=`` for the cnn).
    Changed texture cannot be matched: it is left out.
    """
    import trackoff_xr
    from trackoff_xr.search import CoarseSearch
    from trackoff_xr.testing.synthetic import truth_at_points

    ds = dense_offsets(ref, sec, method, coarse=CoarseSearch(**variant), **options)
    expected = truth_at_points(truth, ds)
    usable = np.ones(ds.dx.shape, bool)
    if "changed" in expected:
        usable = expected.changed.values < 0.5
    err = np.hypot(ds.dx - expected.dx, ds.dy - expected.dy).values
    keep = trackoff_xr.filter_offsets(ds).compute().valid.values & usable
    return err[ds.valid.values & usable], err[keep], int(usable.sum())


def summary(parts: list) -> dict:
    """Pooled > 1 px, RMSE (errors capped at 10 px), kept share and > 1 px among kept."""
    err = np.concatenate([p[0] for p in parts])
    among = np.concatenate([p[1] for p in parts])
    return {
        "gt1px": float(np.mean(err > 1)),
        "rmse_px": float(np.sqrt(np.mean(np.minimum(err, 10) ** 2))),
        "kept": among.size / sum(p[2] for p in parts),
        "gt1px_among_kept": float(np.mean(among > 1)) if among.size else float("nan"),
    }


def evaluate(pairs: list, variant: dict, method: str, **options) -> dict:
    """Pooled accuracy of ``method`` with the coarse pass ``variant`` over ``pairs``.

    ``options`` go to ``offsets()`` (e.g. ``weights=`` for the cnn).
    """
    return summary(
        [pair_errors(ref, sec, truth, variant, method, **options) for _, ref, sec, truth in pairs]
    )


def coarse_seconds(variant: dict, size: int = 4096, rounds: int = 3) -> float:
    """Best seconds of the coarse pass alone on a generated ``size`` x ``size`` pair."""
    import trackoff_xr
    from trackoff_xr.search import CoarseSearch, coarse_centres
    from trackoff_xr.testing.synthetic import shifted_pair

    ref, sec = shifted_pair((size, size), shift=(-4.37, 6.81), looks=4.0, seed=600)
    grid, search = trackoff_xr.GridSpec(64, 32, 6), CoarseSearch(**variant)
    best, _ = best_of_rounds(
        {"coarse": lambda: coarse_centres(ref.data, sec.data, grid, search).compute()}, rounds
    )
    return best["coarse"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--methods", nargs="+", default=["ncc", "cnn"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = parser.parse_args(argv)
    pairs = list(generated_pairs(args.pairs))
    rows = []
    for name in args.variants:
        row = {"variant": name, "coarse_seconds_4096": coarse_seconds(VARIANTS[name])}
        for method in args.methods:
            for key, value in evaluate(pairs, VARIANTS[name], method).items():
                row[f"{method}_{key}"] = value
        rows.append(row)
        cells = ", ".join(
            f"{m}: >1px {row[f'{m}_gt1px']:.2%} rmse {row[f'{m}_rmse_px']:.3f} "
            f"kept {row[f'{m}_kept']:.1%} >1px among kept {row[f'{m}_gt1px_among_kept']:.2%}"
            for m in args.methods
        )
        print(f"{name}: coarse pass {row['coarse_seconds_4096']:.2f} s; {cells}", flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
