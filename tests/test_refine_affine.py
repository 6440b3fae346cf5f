"""``subpixel="affine"``: the template's centre under a fitted affine warp."""

import cv2
import numpy as np
import pytest

from trackoff_xr import InvalidParameterError
from trackoff_xr.kernels import refine_affine, refine_translation
from trackoff_xr.matchers import NCCMatcher
from trackoff_xr.testing.synthetic import fractal_texture

SIZE, RADIUS = 64, 8
#: the template's top-left pixel in the reference image and the window's in the secondary
T0, W0 = 48, 48 - RADIUS


def _warped_pair(gradient, centre_shift, *, lopsided=False, seed=0):
    """Template and window where the secondary is the reference under an affine warp.

    The warp moves the template's centre by ``centre_shift`` (dy, dx) and has
    displacement gradient ``gradient`` (2 x 2, rows: dy, dx; columns: d/dy,
    d/dx). ``lopsided`` confines the texture to the template's top-left
    quadrant (the rest flat): a rigid match then follows that quadrant,
    ``gradient @ (-16, -16)`` px away from the centre's displacement.
    """
    image = fractal_texture((160, 160), seed=seed).astype(np.float32)
    if lopsided:
        image[T0 + SIZE // 2 :, :] = 0.0
        image[:, T0 + SIZE // 2 :] = 0.0
        image = cv2.GaussianBlur(image, (0, 0), 1.0)
    centre = T0 + (SIZE - 1) / 2.0
    grad = np.asarray(gradient, np.float64)
    # sec(p) = ref(q) where p = q + u + G (q - c): solve for q, the inverse map
    forward = np.eye(2) + grad
    inverse = np.linalg.inv(forward)
    shift = np.asarray(centre_shift, np.float64)
    # q = c + inverse @ (p - c - u); cv2 uses (x, y) order
    yx_to_xy = np.array([[0, 1], [1, 0]])
    matrix = yx_to_xy @ inverse @ yx_to_xy
    offset = np.array([centre, centre]) - inverse @ (np.array([centre, centre]) + shift)
    affine = np.hstack([matrix, (yx_to_xy @ offset)[:, None]]).astype(np.float32)
    moved = cv2.warpAffine(
        image, affine, image.shape[::-1], flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    )
    template = image[None, T0 : T0 + SIZE, T0 : T0 + SIZE]
    window = moved[None, W0 : W0 + SIZE + 2 * RADIUS, W0 : W0 + SIZE + 2 * RADIUS]
    return template, window


@pytest.mark.parametrize(
    "gradient, shift",
    [
        ([[0.0, 0.05], [0.0, 0.0]], (0.4, -1.3)),  # simple shear
        ([[0.04, 0.0], [0.0, -0.035]], (-2.2, 0.7)),  # stretch and compression
        ([[0.0, -0.06], [0.06, 0.0]], (1.5, 2.5)),  # rotation by 3.4 degrees
    ],
)
def test_affine_recovers_the_centre_where_a_rigid_match_follows_the_texture(gradient, shift):
    template, window = _warped_pair(gradient, shift, lopsided=True)
    rigid = NCCMatcher()(template, window)
    affine = NCCMatcher(subpixel="affine")(template, window)
    rigid_error = np.hypot(rigid.dy[0] - shift[0], rigid.dx[0] - shift[1])
    affine_error = np.hypot(affine.dy[0] - shift[0], affine.dx[0] - shift[1])
    # the rigid match is off by about the texture's motion relative to the centre
    expected_bias = np.hypot(*(np.asarray(gradient) @ [-16.0, -16.0]))
    assert rigid_error > 0.5 * expected_bias > 0.3
    assert affine_error < 0.08
    assert affine.score[0] >= rigid.score[0] - 1e-6


def test_kernel_reports_the_motion_of_the_template_corners():
    gradient = [[0.0, 0.05], [0.0, 0.0]]
    template, window = _warped_pair(gradient, (0.4, -1.3))
    ty, tx, _ = refine_translation(template, window, np.array([0.0]), np.array([-1.0]))
    ay, ax, zncc, edge = refine_affine(template, window, ty, tx)
    assert (ay[0], ax[0]) == pytest.approx((0.4, -1.3), abs=0.05)
    # corner motion relative to the centre: 0.05 x 29.5 px (the inner template)
    assert edge[0] == pytest.approx(0.05 * 29.5, abs=0.1)
    assert zncc[0] > 0.99


def test_a_rigid_shift_is_left_to_the_translation_refinement():
    template, window = _warped_pair([[0.0, 0.0], [0.0, 0.0]], (1.25, -2.6))
    rigid = NCCMatcher()(template, window)
    affine = NCCMatcher(subpixel="affine")(template, window)
    assert (affine.dy[0], affine.dx[0]) == (rigid.dy[0], rigid.dx[0])
    assert (affine.dy[0], affine.dx[0]) == pytest.approx((1.25, -2.6), abs=0.03)
    np.testing.assert_array_equal(affine.dy_error, rigid.dy_error)


def test_unrefinable_items_keep_their_start():
    rng = np.random.default_rng(0)
    templates = np.stack([np.full((SIZE, SIZE), 2.0, np.float32), rng.random((SIZE, SIZE))])
    windows = rng.random((2, SIZE + 2 * RADIUS, SIZE + 2 * RADIUS)).astype(np.float32)
    # item 0 is flat; item 1 is noise unrelated to its window: no warp explains it
    dy, dx, zncc, edge = refine_affine(
        templates.astype(np.float32), windows, np.array([0.5, 1.0]), np.array([-0.5, 2.0])
    )
    assert (dy[0], dx[0]) == (0.5, -0.5) and np.isnan(zncc[0]) and np.isnan(edge[0])
    assert abs(dy[1] - 1.0) <= 1.5 and abs(dx[1] - 2.0) <= 1.5  # never beyond max_move


def test_both_matchers_accept_affine_and_errors_name_it():
    pytest.importorskip("tensorflow")
    from trackoff_xr.matchers.cnn.matcher import CNNMatcher

    assert NCCMatcher(subpixel="affine").subpixel == "affine"
    assert CNNMatcher(subpixel="affine").subpixel == "affine"
    with pytest.raises(InvalidParameterError, match="subpixel='shape'.*'affine'"):
        NCCMatcher(subpixel="shape")
