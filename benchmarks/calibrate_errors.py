"""Fit (and check) the per-point offset error model of ``ncc`` and ``cnn`` on generated pairs.

Generated pairs with known truth only (never ``/work/shared/data``):
glacier-like fields (:func:`trackoff_xr.testing.sar_pair`, 2-8 looks of
speckle) and uniform sub-pixel shifts with speckle
(:func:`trackoff_xr.testing.shifted_pair`), templates of 32 and 64 px. Every
point the engine reports as valid counts, mismatches included.

The model (:mod:`trackoff_xr.kernels.uncertainty`) is fitted by quantile
regression at the 68th percentile of ``|error|`` on the seeds of the fit split
(100-105), both components pooled, then the floor is tuned so that 68 % of the
fit split's errors lie within 1 sigma. The check split (seeds 200-205) reports
the fraction within 1 sigma per pair and overall. Paste the printed
``ErrorModel`` into :data:`trackoff_xr.kernels.uncertainty.COEFFICIENTS`.

Run: ``python benchmarks/calibrate_errors.py [--methods ncc cnn] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import namedtuple
from dataclasses import dataclass
from typing import Any

import numpy as np

FIT_SEEDS = tuple(range(100, 106))
CHECK_SEEDS = tuple(range(200, 206))
LOOKS = (2.0, 3.0, 4.0, 6.0, 8.0)
FEATURES = ("rho", "inv_yy", "inv_xx")


def _feature_matcher(method: str) -> Any:
    """The method's matcher, emitting the raw peak statistics as extra outputs."""
    from trackoff_xr.kernels.uncertainty import patch_size_of, peak_statistics
    from trackoff_xr.matchers import NCCMatcher
    from trackoff_xr.matchers.cnn.matcher import CNNMatcher

    base = NCCMatcher if method == "ncc" else CNNMatcher

    result = namedtuple("Result", "dy dx score rho inv_yy inv_xx patch spread")  # noqa: PYI024

    @dataclass(frozen=True)
    class Features(base):  # type: ignore[misc, valid-type]
        extra_outputs = ("rho", "inv_yy", "inv_xx", "patch", "spread")
        output_attrs = {}  # noqa: RUF012

        def __call__(self, templates: Any, windows: Any) -> Any:
            dy, dx, score, surfaces = self.match_surfaces(templates, windows)
            rho, inv_yy, inv_xx = peak_statistics(surfaces)
            patch = np.full(dy.shape, patch_size_of(templates), np.float32)
            return result(dy, dx, score, rho, inv_yy, inv_xx, patch, surface_spread(surfaces))

    return Features()


def surface_spread(surfaces: np.ndarray, exclusion: int = 2) -> np.ndarray:
    """Standard deviation of each surface outside ``exclusion`` px of its maximum."""
    n, rows, cols = surfaces.shape
    flat = np.where(np.isfinite(surfaces), surfaces, -np.inf).reshape(n, -1)
    r, c = np.divmod(flat.argmax(axis=1), cols)
    yy, xx = np.mgrid[0:rows, 0:cols].reshape(2, 1, -1)
    near = (np.abs(yy - r[:, None]) <= exclusion) & (np.abs(xx - c[:, None]) <= exclusion)
    values = np.where(near, np.nan, surfaces.reshape(n, -1))
    with np.errstate(invalid="ignore"):
        return np.nanstd(values, axis=1).astype(np.float32)


def _pairs(seed: int, quick: bool) -> list[tuple[str, Any, Any, Any, dict]]:
    """The generated pairs of one seed: (label, ref, sec, truth or shift, grid)."""
    from trackoff_xr.testing.synthetic import sar_pair, shifted_pair

    rng = np.random.default_rng(seed)
    size = 320 if quick else 448
    looks = LOOKS[seed % len(LOOKS)]
    out = []
    for patch in (32, 64):
        grid = dict(patch_size=patch, spacing=patch // 2, search_radius=10)
        ref, sec, truth = sar_pair(
            (size, size), max_displacement=float(rng.uniform(3, 8)), looks=looks, seed=seed
        )
        out.append((f"glacier L={looks:g} P={patch}", ref, sec, truth, grid))
        shift = tuple(rng.uniform(-4, 4, 2))
        looks2 = LOOKS[(seed + 2) % len(LOOKS)]
        ref, sec = shifted_pair((size, size), shift=shift, looks=looks2, seed=seed + 1000)
        out.append((f"shifted L={looks2:g} P={patch}", ref, sec, shift, grid))
    return out


def collect(method: str, seeds: tuple[int, ...], quick: bool = False) -> dict[str, np.ndarray]:
    """Per valid point: peak statistics, template size, errors; and a pair index."""
    import trackoff_xr
    from trackoff_xr.matchers import register_matcher
    from trackoff_xr.testing.synthetic import truth_at_points

    name = f"_{method}_error_features"
    register_matcher(name, lambda: _feature_matcher(method))
    rows: dict[str, list[np.ndarray]] = {
        k: [] for k in (*FEATURES, "patch", "spread", "ey", "ex", "pair")
    }
    labels = []
    for seed in seeds:
        for label, ref, sec, truth, grid in _pairs(seed, quick):
            ds = trackoff_xr.offsets(ref, sec, method=name, **grid).compute()
            if isinstance(truth, tuple):
                ty, tx = np.full(ds.dy.shape, truth[0]), np.full(ds.dx.shape, truth[1])
            else:
                t = truth_at_points(truth, ds)
                ty, tx = t.dy.values, t.dx.values
            ok = ds.valid.values & np.isfinite(ty) & np.isfinite(tx)
            for k in (*FEATURES, "patch", "spread"):
                rows[k].append(ds[k].values[ok])
            rows["ey"].append((ds.dy.values - ty)[ok])
            rows["ex"].append((ds.dx.values - tx)[ok])
            rows["pair"].append(np.full(int(ok.sum()), len(labels)))
            labels.append(f"seed {seed} {label}")
    data = {k: np.concatenate(v) for k, v in rows.items()}
    data["labels"] = np.array(labels)
    return data


def _design(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack both components: design matrix rows and |error|."""
    rho = np.clip(data["rho"], 1e-3, 1 - 1e-6)
    noise = np.log((1 - rho) / rho)
    size = np.log(data["patch"].astype(np.float64) ** 2)
    xs, ys = [], []
    for inv, err in ((data["inv_yy"], data["ey"]), (data["inv_xx"], data["ex"])):
        ok = np.isfinite(inv) & (inv > 0)
        xs.append(np.stack([np.ones(ok.sum()), noise[ok], np.log(inv[ok]), size[ok]], axis=1))
        ys.append(np.abs(err[ok]))
    return np.concatenate(xs), np.concatenate(ys)


def fit(data: dict[str, np.ndarray], quantile: float = 0.6827) -> Any:
    """Quantile regression of log |error|; then the floor that makes the coverage ``quantile``."""
    from scipy.optimize import brentq, minimize

    from trackoff_xr.kernels.uncertainty import ErrorModel

    x, y = _design(data)
    target = np.log(np.maximum(y, 1e-6))

    def pinball(beta: np.ndarray) -> float:
        r = target - x @ beta
        return float(np.mean(np.maximum(quantile * r, (quantile - 1) * r)))

    start = np.linalg.lstsq(x, target, rcond=None)[0]
    beta = minimize(pinball, start, method="Nelder-Mead", options={"maxiter": 8000}).x
    sigma = np.exp(x @ beta)

    def excess(floor: float) -> float:
        return float(np.mean(y <= np.hypot(sigma, floor))) - quantile

    floor = 0.0 if excess(0.0) >= 0 else brentq(excess, 0.0, 2.0)
    return ErrorModel(*(round(float(b), 4) for b in beta), floor=round(float(floor), 4))


def coverage(data: dict[str, np.ndarray], model: Any) -> dict[str, Any]:
    """Fraction of |err_y|, |err_x| within the model's 1 sigma: overall and per pair."""
    from trackoff_xr.kernels.uncertainty import ErrorModel

    assert isinstance(model, ErrorModel)
    rho = np.clip(data["rho"], 1e-3, 1 - 1e-6)
    base = model.intercept + model.noise * np.log((1 - rho) / rho)
    base = base + model.size * np.log(data["patch"].astype(np.float64) ** 2)
    within = {}
    for axis, inv, err in (("y", data["inv_yy"], data["ey"]), ("x", data["inv_xx"], data["ex"])):
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma = np.hypot(np.exp(base + model.curvature * np.log(inv)), model.floor)
        sigma = np.where(np.isfinite(sigma), np.minimum(sigma, 10.0), 10.0)
        within[axis] = np.abs(err) <= sigma
    per_pair = {
        str(label): (
            round(float(within["y"][data["pair"] == i].mean()), 3),
            round(float(within["x"][data["pair"] == i].mean()), 3),
        )
        for i, label in enumerate(data["labels"])
    }
    return {
        "y": round(float(within["y"].mean()), 4),
        "x": round(float(within["x"].mean()), 4),
        "points": int(within["y"].size),
        "per_pair": per_pair,
    }


def main() -> None:
    """Fit on the fit split, check on the check split, print the models and coverages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["ncc", "cnn"])
    parser.add_argument("--quick", action="store_true", help="smaller pairs")
    args = parser.parse_args()
    report = {}
    for method in args.methods:
        t0 = time.perf_counter()
        fit_data = collect(method, FIT_SEEDS, args.quick)
        check_data = collect(method, CHECK_SEEDS, args.quick)
        model = fit(fit_data)
        report[method] = {
            "model": model._asdict(),
            "fit": coverage(fit_data, model),
            "check": coverage(check_data, model),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(f"{method}: {model!r}")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
