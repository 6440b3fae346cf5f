"""No hidden state in package code, one error class per wrong input, and the tooling contract.

* ``open_image`` leaves the process's warning filters alone, and reading a
  plain PNG still raises no ``NotGeoreferencedWarning`` (in dask's threads);
* the same wrong input raises the same class in velocity, the filters and
  the figures;
* tests share helpers through ``tests/helpers.py`` only;
* ``make lint`` runs ruff check, ruff format --check and mypy; CI runs it.
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from PIL import Image

import trackoff_xr
from trackoff_xr import plot
from trackoff_xr.exceptions import TrackOffError
from trackoff_xr.postprocess import filters

from .helpers import write_geotiff_pair

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


# -- warnings ----------------------------------------------------------------------------------


def _png(path: Path) -> Path:
    pixels = (np.random.default_rng(0).random((80, 100)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_open_image_leaves_the_warning_filters_alone_and_a_png_reads_quietly(tmp_path):
    from rasterio.errors import NotGeoreferencedWarning

    # a georeferenced file first: the libraries' own import-time filters are set by then
    trackoff_xr.open_image(write_geotiff_pair(tmp_path)[0]).compute()
    before = list(warnings.filters)
    image = trackoff_xr.open_image(_png(tmp_path / "plain.png"), chunks=32)
    assert warnings.filters == before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # whatever the suite's settings: show everything
        values = image.compute(scheduler="threads", num_workers=2).values
    assert not [w for w in caught if issubclass(w.category, NotGeoreferencedWarning)]
    assert warnings.filters == before
    # the pixels are the file's, on pixel-index coordinates
    with Image.open(tmp_path / "plain.png") as png:
        np.testing.assert_array_equal(values, np.asarray(png, dtype=np.float32))
    assert image.x.values[:3].tolist() == [0.0, 1.0, 2.0] and "spatial_ref" not in image.coords


def test_package_code_sets_no_process_wide_warning_filter():
    # warnings.filterwarnings/simplefilter outside a catch_warnings block change the
    # caller's process for good
    offenders = []
    for path in sorted((ROOT / "trackoff_xr").rglob("*.py")):
        tree = ast.parse(path.read_text())
        scoped: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.With) and any(
                "catch_warnings" in ast.unparse(item.context_expr) for item in node.items
            ):
                scoped.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("filterwarnings", "simplefilter")
                and id(node) not in scoped
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


# -- one error class for one wrong input -------------------------------------------------------


NOT_OFFSETS = {
    "DataArray": xr.DataArray(np.zeros((2, 2)), dims=("y", "x")),
    "Dataset without dx": xr.Dataset({"a": (("y", "x"), np.zeros((2, 2)))}),
    "ndarray": np.zeros((2, 2)),
}
FUNCTIONS = {
    "velocity": lambda ds: trackoff_xr.velocity(ds, days=1, pixel_size=1),
    "filter_offsets": filters.filter_offsets,
    "filter_score": filters.filter_score,
    "filter_median": filters.filter_median,
    "fill_gaps": filters.fill_gaps,
    "score_map": plot.score_map,
}


@pytest.mark.parametrize("what", sorted(NOT_OFFSETS))
def test_the_same_wrong_input_raises_the_same_class_everywhere(what):
    raised = {}
    for name, func in FUNCTIONS.items():
        with pytest.raises(TrackOffError) as info:
            func(NOT_OFFSETS[what])
        assert "offsets()" in str(info.value) and "dx and dy" in str(info.value), info.value
        raised[name] = type(info.value).__name__
    assert len(set(raised.values())) == 1, raised


# -- tests share helpers through helpers.py ----------------------------------------------------


def test_tests_import_helpers_from_helpers_py_only():
    modules = {p.stem for p in TESTS.glob("*.py")}
    offenders = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = (node.module or "").removeprefix("tests.")
                local = node.level > 0 or (node.module or "").startswith("tests.")
                if local and (name == "conftest" or (name in modules and name.startswith("test"))):
                    offenders.append(f"{path.name}:{node.lineno} imports from {name}")
    assert not offenders, offenders


# -- make lint ---------------------------------------------------------------------------------


def test_make_lint_runs_ruff_format_check_and_mypy_and_ci_runs_it():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert recipe, "no lint target in the Makefile"
    lines = recipe.group(1)
    for command in ("ruff check", "ruff format --check", "mypy"):
        assert re.search(rf"\$\(BIN\)/{command}", lines), f"make lint does not run {command}"
    assert 'packages = ["trackoff_xr"]' in (ROOT / "pyproject.toml").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "make lint" in ci and ci.index("make lint") > ci.index("make test")
