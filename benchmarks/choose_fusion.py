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

import numpy as np

try:  # run as a script or imported as benchmarks.choose_fusion
    from .choose_coarse import generated_pairs
except ImportError:
    from choose_coarse import generated_pairs  # type: ignore[no-redef]


def pair_errors(ref, sec, truth, **options) -> tuple[np.ndarray, np.ndarray, int]:
    """Errors of the returned points, errors of the kept points, and the usable points."""
    import trackoff_xr
    from trackoff_xr.testing.synthetic import truth_at_points

    ds = trackoff_xr.offsets(
        ref.chunk(512), sec.chunk(512), patch_size=64, spacing=32, method="cnn", **options
    ).compute()
    expected = truth_at_points(truth, ds)
    usable = np.ones(ds.dx.shape, bool)
    if "changed" in expected:  # changed texture cannot be matched: left out
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusions", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7, 1.0])
    parser.add_argument("--pairs", type=int, default=12)
    args = parser.parse_args(argv)
    pairs = list(generated_pairs(args.pairs))
    rows = []
    for fusion in args.fusions:
        parts = {
            name: pair_errors(ref, sec, truth, fusion=fusion) for name, ref, sec, truth in pairs
        }
        row: dict = {"fusion": fusion}
        for kind, prefix in (("S1-like", "S1-like"), ("fractal", "fractal"), ("all", "")):
            row[kind] = summary([p for name, p in parts.items() if name.startswith(prefix)])
            r = row[kind]
            print(
                f"fusion {fusion:.2f} {kind:8s}: >1px {r['gt1px']:.2%} rmse {r['rmse_px']:.3f} "
                f"kept {r['kept']:.1%} >1px among kept {r['gt1px_among_kept']:.2%}",
                flush=True,
            )
        rows.append(row)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
