"""Every benchmark runs, at a tiny size, and prints its report: benchmarks cannot rot unseen.

Each ``benchmarks/bench_*.py`` has ``main(argv)`` with a ``--smoke`` flag
(a tiny pair, one round); its report lines are checked here, not its
numbers (those are the benchmark's business, on a quiet machine).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

from .helpers import shared_file

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

#: per benchmark: shared data it reads, and patterns its smoke report must print
EXPECTED = {
    "bench_ncc": {
        "data": (),
        "lines": [r'"plain_opencv_points_per_s": \d', r'"offsets_gauss-newton_ratio_vs_plain": \d'],
    },
    "bench_cnn": {
        "data": (("glacier_synthetic", "DJ_before.tiff"), ("cat", "CAT1.png")),
        "lines": [
            r"glacier field, 4 looks: RMSE ncc \d+\.\d{3}  cnn \d+\.\d{3}",
            r"real texture \(P=64, S=32; loop R=16, offsets\(\) defaults\)",
            r"    cnn:  \d+\.\d{3} / ",
            r"real-texture speed 256\^2: loop \d+, ncc \d+",
            r"speed 256\^2: ncc \d+ pts/s, cnn \d+ pts/s",
        ],
    },
    "bench_geocode": {
        "data": (
            ("s1_grd", "S1B_IW_GRDH_1SDV_20210401T052623_20210401T052648_026269_032297_ECC8.SAFE"),
        ),
        "lines": [
            r'^  "output_shape": \[$',
            r'^  "seconds_build_graph": \d+\.\d+,$',
            r'^  "seconds_total": \d+\.\d+,$',
            r'^  "peak_rss_gb": \d+\.\d+,$',
            r'^  "target_peak_rss_gb": 2\.0$',
        ],
    },
    "bench_memory": {
        "data": (),
        "lines": [r"scene\s+pair MiB\s+numpy load\s+offsets", r"^\s+256\^2\s+0\s+-?\d+\s+-?\d+$"],
    },
    "bench_scene": {
        "data": (("glacier_synthetic", "DJ_before.tiff"),),
        "lines": [r"ncc/threads/quarter: \d+ s, \d+ pts/s, peak \d+\.\d\d GiB"],
    },
}


def _benchmarks() -> list[str]:
    return sorted(p.stem for p in BENCHMARKS.glob("bench_*.py"))


def test_every_benchmark_has_a_smoke_check():
    assert _benchmarks(), f"no benchmarks found in {BENCHMARKS}"
    unchecked = sorted(set(_benchmarks()) - set(EXPECTED))
    assert not unchecked, (
        f"{unchecked} have no smoke check: give each main(argv) a --smoke flag and add "
        "its report lines to EXPECTED in tests/test_benchmarks_smoke.py"
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_benchmark_smoke_run_prints_its_report(name, capsys):
    for parts in EXPECTED[name]["data"]:
        shared_file(*parts)
    module = importlib.import_module(f"benchmarks.{name}")
    module.main(["--smoke"])
    out = capsys.readouterr().out
    assert out.strip(), f"{name} --smoke printed nothing"
    for pattern in EXPECTED[name]["lines"]:
        assert re.search(pattern, out, flags=re.MULTILINE), f"{name}: no {pattern!r} in\n{out}"
    # the machine-readable report comes first and parses
    document, _ = json.JSONDecoder().raw_decode(out.lstrip())
    assert document
