"""Choose ``CNNMatcher(fusion=...)`` on generated pairs only.

``fusion`` weighs the learnt features' ZNCC against that of the lightly
smoothed normalised image in the surface ``method="cnn"`` searches. It was
first chosen on the real-texture evaluation, which the evaluation's rules
forbid; this re-chooses it where hyper-parameters belong: the generated
pairs of ``choose_coarse.py`` (Sentinel-1-like pairs with radiometric edges,
saturation, scatterers, decorrelation and fields up to 10 px on shifts up to
40 px, and fractal glacier pairs; seeds 3000+, never ``../shared/data``),
matched with the ``offsets()`` defaults.

Reported per weight, for the Sentinel-1-like pairs, the fractal ones and
all pooled: > 1 px outliers and RMSE over the returned points (these do not
depend on the confidence), and the share kept by
:func:`trackoff_xr.filter_offsets` with the outliers among kept points. Only
0.3 and 1.0 have a fitted confidence in the shipped weights; elsewhere
``score`` is the raw peak, so the kept columns compare less fairly.

Run: ``python benchmarks/choose_fusion.py [--fusions 0 0.3 0.5 0.7 1] [--pairs 12]``.
"""

from __future__ import annotations

import argparse
import json

try:  # run as a script or imported as benchmarks.choose_fusion
    from .choose_coarse import generated_pairs, pair_errors, summary
except ImportError:
    from choose_coarse import generated_pairs, pair_errors, summary  # type: ignore[no-redef]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusions", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7, 1.0])
    parser.add_argument("--pairs", type=int, default=12)
    args = parser.parse_args(argv)
    pairs = list(generated_pairs(args.pairs))
    rows = []
    for fusion in args.fusions:
        parts = {
            name: pair_errors(ref, sec, truth, {}, "cnn", fusion=fusion)
            for name, ref, sec, truth in pairs
        }
        row: dict = {"fusion": fusion}
        for kind, prefix in (("S1-like", "S1-like"), ("fractal", "fractal"), ("all", "")):
            chosen = [p for name, p in parts.items() if name.startswith(prefix)]
            if not chosen:  # e.g. --pairs 1 has no fractal pair
                continue
            row[kind] = r = summary(chosen)
            print(
                f"fusion {fusion:.2f} {kind:8s}: >1px {r['gt1px']:.2%} rmse {r['rmse_px']:.3f} "
                f"kept {r['kept']:.1%} >1px among kept {r['gt1px_among_kept']:.2%}",
                flush=True,
            )
        rows.append(row)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
