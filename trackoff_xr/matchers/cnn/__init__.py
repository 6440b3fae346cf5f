"""The shared CNN matcher (``method="cnn"``): features, training, inference.

Nothing here imports TensorFlow at import time.

>>> from trackoff_xr.matchers.cnn import fine_tune, train, CNNMatcher   # no TensorFlow loaded yet
"""

from .matcher import CNNMatcher
from .train import build_model, fine_tune, train

__all__ = ["CNNMatcher", "build_model", "fine_tune", "train"]
