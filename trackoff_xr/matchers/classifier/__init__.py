"""``method="classifier"``: the per-tile CNN classifier of Łucka (2025), the original TrackOff.

* :mod:`.classes` -- candidate offsets and the class <-> offset mapping;
* :mod:`.augmentation` -- the paper's training images, in memory, batched;
* :mod:`.network` -- per-tile networks (``paper``: AlexNet-style; ``fast``:
  one convolution), many tiles trained in one loop; TensorFlow is imported
  only when training runs;
* :mod:`.matcher` -- :class:`ClassifierMatcher`, registered as
  ``method="classifier"``;
* :mod:`.filter` -- :func:`filter_probability`, the paper's filter.

>>> from trackoff_xr.matchers.classifier import class_offsets
>>> class_offsets(1, 1)[4].tolist()   # the centre class: no motion
[0, 0]
"""

from .augmentation import AugmentConfig, training_images
from .classes import candidate_steps, class_of_offset, class_offsets
from .matcher import PRESETS, ClassifierMatcher, ClassifierResult
from .probability_filter import filter_probability

__all__ = [
    "PRESETS",
    "AugmentConfig",
    "ClassifierMatcher",
    "ClassifierResult",
    "candidate_steps",
    "class_of_offset",
    "class_offsets",
    "filter_probability",
    "training_images",
]
