import numpy as np
import pytest
from hypothesis import given

from trackoff_xr import GridSpec, ImageTooSmallError, InvalidParameterError, TrackOffError

from .strategies import axis_lengths, patch_sizes, spacings


def test_first_point_is_centre_of_first_template():
    grid = GridSpec(64, 32, 16)
    coords = grid.point_coordinates(np.arange(1950.0))
    assert coords[0] == 31.5
    assert np.all(np.diff(coords) == 32)
    assert coords.size == (1950 - 64) // 32 + 1


def test_coordinates_follow_input_coordinates():
    grid = GridSpec(8, 4, 2)
    x = 1000.0 + 10.0 * np.arange(20)  # e.g. 10 m pixels
    assert grid.point_coordinates(x)[0] == pytest.approx(1035.0)


def test_window_fits_marks_points_whose_search_window_leaves_the_image():
    grid = GridSpec(64, 32, 16)
    fits = grid.window_fits(256)
    starts = grid.template_starts(256)
    assert not fits[0]  # window starts at -16
    assert fits[1]
    assert np.array_equal(fits, (starts >= 16) & (starts + 80 <= 256))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (
            dict(patch_size=7, spacing=4, search_radius=2),
            "patch_size=7 is smaller than the minimum of 8",
        ),
        (dict(patch_size=16, spacing=0, search_radius=2), "spacing=0 must be at least 1"),
        (dict(patch_size=16, spacing=4, search_radius=-1), "search_radius=-1 is negative"),
        (dict(patch_size=16.5, spacing=4, search_radius=1), "patch_size=16.5 is not an integer"),
    ],
)
def test_bad_parameters_name_value_and_fix(kwargs, fragment):
    with pytest.raises(InvalidParameterError, match=fragment) as info:
        GridSpec(**kwargs)
    assert isinstance(info.value, TrackOffError)
    assert "use" in str(info.value)


def test_image_too_small():
    with pytest.raises(ImageTooSmallError, match=r"shape \(90, 200\).*96 x 96"):
        GridSpec(64, 32, 16).check_image_shape((90, 200))


@given(length=axis_lengths, patch=patch_sizes, spacing=spacings)
def test_every_template_lies_inside_the_axis(length, patch, spacing):
    grid = GridSpec(patch, spacing, 0)
    starts = grid.template_starts(length)
    assert np.all(starts + patch <= length)
    # one more template would not fit
    assert (starts.size and starts[-1] + spacing + patch > length) or (
        starts.size == 0 and length < patch
    )
