"""Compare CNN weights on generated pairs only: accuracy, and the network's speed.

The same generated pairs as ``choose_coarse.py`` (Sentinel-1-like pairs with
radiometric edges, saturation, scatterers, decorrelation and fields up to
10 px on shifts up to 40 px, and fractal glacier pairs; seeds 3000+, used
nowhere else, never ``../shared/data``), matched with the ``offsets()``
defaults by ``method="cnn"`` with each set of weights. Reported per weights:
> 1 px outliers and RMSE over the returned points, the share kept by
:func:`trackoff_xr.filter_offsets` and the outliers among kept points (changed
texture left out), and the milliseconds one thread takes to run the network
on a 266 x 1,200 strip with each runtime (``cnn_runtime``).

Run: ``python benchmarks/choose_network.py WEIGHTS [WEIGHTS ...] [--pairs 12]``
(``default`` names the shipped weights).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

try:  # run as a script or imported as benchmarks.choose_network
    from .bench_ncc import best_of_rounds
    from .choose_coarse import evaluate, generated_pairs
except ImportError:
    from bench_ncc import best_of_rounds  # type: ignore[no-redef]
    from choose_coarse import evaluate, generated_pairs  # type: ignore[no-redef]


def network_milliseconds(weights: str, runtime: str, rounds: int = 5) -> float:
    """Best milliseconds of one thread running the network on a 266 x 1,200 strip."""
    import trackoff_xr
    from trackoff_xr.matchers.cnn import features

    strip = np.random.default_rng(0).standard_normal((266, 1200)).astype(np.float32)
    with trackoff_xr.set_options(cnn_runtime=runtime):  # round 0 loads and warms up
        best, _ = best_of_rounds({"network": lambda: features.run_network(weights, strip)}, rounds)
    return 1000 * best["network"]


def main(argv: list[str] | None = None) -> None:
    from trackoff_xr.matchers.cnn.features import DEFAULT_WEIGHTS, architecture

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="weights files; 'default' is the shipped one")
    parser.add_argument("--pairs", type=int, default=12)
    args = parser.parse_args(argv)
    pairs = list(generated_pairs(args.pairs))
    rows = []
    for name in args.weights:
        weights = str(DEFAULT_WEIGHTS) if name == "default" else name
        row: dict = {"weights": name, "layers": [list(layer) for layer in architecture(weights)[0]]}
        for runtime in ("tensorflow", "opencv"):
            row[f"network_ms_{runtime}"] = network_milliseconds(weights, runtime)
        row.update(evaluate(pairs, {}, "cnn", weights=weights))
        rows.append(row)
        print(
            f"{name} {row['layers']}: network {row['network_ms_tensorflow']:.0f} ms (tensorflow), "
            f"{row['network_ms_opencv']:.0f} ms (opencv); >1px {row['gt1px']:.2%} rmse "
            f"{row['rmse_px']:.3f} kept {row['kept']:.1%} >1px among kept "
            f"{row['gt1px_among_kept']:.2%}",
            flush=True,
        )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
