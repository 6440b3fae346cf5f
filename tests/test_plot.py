"""Figures: built without pyplot, right units, arrows pointing the way the image moved."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

import trackoff_xr
from trackoff_xr.exceptions import InvalidParameterError
from trackoff_xr.plot import filter_comparison, offset_histogram, score_map, velocity_map
from trackoff_xr.postprocess.filters import fill_gaps, filter_offsets
from trackoff_xr.testing.synthetic import shifted_pair


@pytest.fixture(scope="module")
def pair():
    return shifted_pair((192, 256), shift=(3.0, 2.0), looks=8, seed=1)


@pytest.fixture(scope="module")
def result(pair):
    ref, sec = pair
    return trackoff_xr.offsets(
        ref.chunk(96), sec.chunk(96), patch_size=32, spacing=16, search_radius=6, method="ncc"
    )


def _quiver(fig):
    from matplotlib.quiver import Quiver

    return [c for c in fig.axes[0].get_children() if isinstance(c, Quiver)][0]


def test_velocity_map_on_pixel_grid(result, pair, tmp_path):
    fig = velocity_map(result, background=pair[0])
    assert isinstance(fig, Figure)
    ax, cbar = fig.axes
    assert cbar.get_ylabel() == "offset magnitude (pixel)"
    # row 0 on top: y axis runs downward
    bottom, top = ax.get_ylim()
    assert bottom > top
    q = _quiver(fig)
    assert np.all(q.V > 0) and np.all(q.U > 0)  # +dy is passed as is (axis inverted)
    fig.savefig(tmp_path / "v.png")
    assert (tmp_path / "v.png").stat().st_size > 10_000


def test_velocity_map_north_up_grid(pair):
    ref, sec = pair
    geo = {"y": 5000.0 - 10.0 * ref.y.values, "x": 1000.0 + 10.0 * ref.x.values}
    ds = trackoff_xr.offsets(
        ref.assign_coords(**geo),
        sec.assign_coords(**geo),
        patch_size=32,
        spacing=16,
        search_radius=6,
        method="ncc",
    )
    fig = velocity_map(ds)
    bottom, top = fig.axes[0].get_ylim()
    assert bottom < top  # north up, first row still on top
    q = _quiver(fig)
    assert np.all(q.V < 0)  # moving down the image is moving south


def test_velocity_map_uses_velocity_units(result):
    ds = result.compute()
    ds["v"] = (np.hypot(ds.dx, ds.dy) * 36.5).assign_attrs(units="meter/year")
    assert velocity_map(ds).axes[1].get_ylabel() == "velocity (meter/year)"


def test_other_figures(result):
    filtered = fill_gaps(filter_offsets(result))
    for fig in (
        score_map(filtered),
        filter_comparison(result, filtered),
        offset_histogram(filtered),
    ):
        assert isinstance(fig, Figure)
        fig.canvas.draw()


def test_plot_does_not_touch_pyplot_state(result):
    import matplotlib

    backend = matplotlib.get_backend()
    velocity_map(result)
    assert matplotlib.get_backend() == backend
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []


def test_bad_input_is_refused(result):
    with pytest.raises(InvalidParameterError, match="got DataArray"):
        velocity_map(result.dx)
    with pytest.raises(InvalidParameterError, match="background must be a 2-D"):
        velocity_map(result, background=np.zeros((4, 4)))


def test_the_demo_leaves_the_users_matplotlib_backend_alone(tmp_path):
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg')\n"
        "import trackoff_xr.demo as demo\n"
        f"demo.run_demo({str(tmp_path / 'out')!r}, size=256, method='ncc')\n"
        "print(matplotlib.get_backend())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "svg"
    assert (tmp_path / "out" / "offsets.png").stat().st_size > 0
