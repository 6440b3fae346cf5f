"""Choose the sub-pixel refinement (``subpixel=``) on generated pairs only.

``"gauss-newton"`` refines a rigid shift of the template; ``"affine"`` then
refits where the template deforms (:mod:`trackoff_xr.kernels.refine_affine`).
This script measures both, for ``ncc`` and ``cnn``, on the generated pairs of
``choose_coarse.py`` (Sentinel-1-like scenes with affine, glacier and smooth
fields up to 10 px, and fractal glacier pairs; seeds 3000+), never on
``../shared/data`` (evaluation only). Per method and refinement: > 1 px
outliers and RMSE over returned points, the share kept by
:func:`trackoff_xr.filter_offsets` and the outliers among kept points (pooled
over the pairs), and the seconds of the whole run.

Run: ``python benchmarks/choose_subpixel.py [--pairs 12] [--methods ncc cnn]``.
"""

from __future__ import annotations

import argparse
import json
import time

try:  # run as a script or imported as benchmarks.choose_subpixel
    from .choose_coarse import evaluate, generated_pairs
except ImportError:  # pragma: no cover - script mode
    from choose_coarse import evaluate, generated_pairs  # type: ignore[no-redef]

REFINEMENTS = ("gauss-newton", "affine")


def main(argv: list[str] | None = None) -> list[dict]:
    """Print and return one row per method and refinement."""
    from trackoff_xr.search import CoarseSearch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--methods", nargs="+", default=["ncc", "cnn"])
    args = parser.parse_args(argv)
    pairs = list(generated_pairs(args.pairs, args.size))
    default = CoarseSearch()
    variant = {"patch_size": default.patch_size, "spacing": default.spacing}
    rows = []
    for method in args.methods:
        for subpixel in REFINEMENTS:
            t0 = time.perf_counter()
            row = evaluate(pairs, variant, method, subpixel=subpixel)
            row.update(method=method, subpixel=subpixel, seconds=time.perf_counter() - t0)
            print(
                f"{method} {subpixel}: > 1 px {100 * row['gt1px']:.2f} %, RMSE "
                f"{row['rmse_px']:.3f} px, kept {100 * row['kept']:.1f} %, > 1 px among kept "
                f"{100 * row['gt1px_among_kept']:.2f} %, {row['seconds']:.0f} s",
                flush=True,
            )
            rows.append(row)
    print(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
