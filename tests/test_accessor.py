import pickle

import xarray as xr

import trackoff_xr
from trackoff_xr.accessor import TrackOffAccessor
from trackoff_xr.testing.synthetic import shifted_pair


def test_accessor_is_registered_and_cached():
    ref, _ = shifted_pair((64, 64))
    assert isinstance(ref.trackoff, TrackOffAccessor)
    assert ref.trackoff is ref.trackoff
    assert xr.DataArray.trackoff is TrackOffAccessor


def test_accessor_forwards_to_offsets():
    ref, sec = shifted_pair((160, 160), shift=(2.0, -1.0))
    kw = dict(patch_size=32, spacing=32, search_radius=6, method="ncc")
    a = ref.trackoff.offsets(sec, **kw)
    b = trackoff_xr.offsets(ref, sec, **kw)
    xr.testing.assert_identical(a, b)


def test_accessor_docstring_and_pickling():
    assert "trackoff_xr.offsets" in TrackOffAccessor.offsets.__doc__
    ref, _ = shifted_pair((64, 64))
    _ = ref.trackoff
    restored = pickle.loads(pickle.dumps(ref))
    assert isinstance(restored.trackoff, TrackOffAccessor)


def test_import_does_not_load_tensorflow():
    import subprocess
    import sys

    code = "import sys, trackoff_xr; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
