"""The Siamese feature extractor: local contrast normalisation + a small conv net.

Both images go through the same function (shared weights), once per dask
block, before correlation:

1. :func:`local_normalise` (numpy/OpenCV): subtract a Gaussian-weighted local
   mean and divide by the local standard deviation, with normalised
   convolution so NaN (nodata, outside the image) is simply left out. It
   makes the features independent of the images' units and brightness
   (8-bit, DN, sigma0 alike) and depends only on pixels within
   ``LCN_RADIUS`` -- so it is chunk-invariant.
2. a fully convolutional Keras network (``build_network``, run by
   :func:`extract_channels`) that turns the
   normalised image into one channel of matching features, learnt so that
   their correlation peaks sharply at the true offset despite speckle,
   filtering and small rotations/scalings.

TensorFlow is imported only inside the functions that need it, and the
network is built once per process (:func:`get_network`).
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ...kernels.threads import opencv_threads
from ...tf_runtime import tensorflow

__all__ = [
    "DEFAULT_WEIGHTS",
    "LCN_SIGMA",
    "build_network",
    "get_network",
    "local_normalise",
    "model_metadata",
    "network_runtime",
    "filter_forward",
]

LCN_SIGMA = 4.0
LCN_RADIUS = int(math.ceil(3 * LCN_SIGMA))
#: layers of the network: (filters, kernel size); the last is linear
LAYERS: tuple[tuple[int, int], ...] = ((16, 5), (16, 3), (16, 3), (1, 3))
#: fixed Gaussian blur of the output features (pixels): band-limits them so
#: the sub-pixel refinement can interpolate them accurately
OUTPUT_BLUR = 0.7
DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "trackoff_cnn_v2.weights.h5"


def network_radius(layers: tuple[tuple[int, int], ...] = LAYERS, blur: float = OUTPUT_BLUR) -> int:
    """Pixels each output feature depends on, beyond its own, through the network."""
    return sum(k // 2 for _, k in layers) + (int(math.ceil(3 * blur)) if blur else 0)


NETWORK_RADIUS = network_radius()

_lock = threading.Lock()


#: rows of the image normalised at once, each strip with ``2 * LCN_RADIUS``
#: rows of context above and below: the float64 temporaries of a whole
#: 2312 x 2312 block took ~190 MB at once (peak RSS), those of strips ~30 MB,
#: and the result is identical to the bit
NORMALISE_ROWS = 256


def local_normalise(image: np.ndarray, sigma: float = LCN_SIGMA) -> np.ndarray:
    """Local contrast normalisation that ignores NaN pixels.

    Computed in strips of :data:`NORMALISE_ROWS` rows, each with the context
    its two Gaussian blurs need, so its temporaries do not grow with the
    image; the result is identical to one pass over the whole image.

    Examples
    --------
    >>> img = np.random.default_rng(0).random((64, 64)) * 200 + 50
    >>> a, b = local_normalise(img), local_normalise(3 * img + 7)
    >>> bool(np.allclose(a, b, atol=1e-4)), round(float(a[20:44, 20:44].std()), 1)
    (True, 1.0)
    """
    image = np.asarray(image)
    half = int(math.ceil(3 * sigma))
    rows = image.shape[0]
    out = np.empty(image.shape, dtype=np.float32)
    step = max(int(NORMALISE_ROWS), 1)
    for top in range(0, rows, step):
        bottom = min(top + step, rows)
        # the variance blur reads the mean 'half' rows away, which reads the
        # image 'half' rows further: 2 * half rows of context (zeros beyond
        # the image, as for the whole image)
        lo, hi = max(top - 2 * half, 0), min(bottom + 2 * half, rows)
        out[top:bottom] = _normalise(image[lo:hi], sigma)[top - lo : bottom - lo]
    return out


def _normalise(image: np.ndarray, sigma: float) -> np.ndarray:
    """:func:`local_normalise` of one strip in a single pass (float64 inside)."""
    import cv2

    size = 2 * int(math.ceil(3 * sigma)) + 1

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (size, size), sigma, borderType=cv2.BORDER_CONSTANT)

    # the same arithmetic as the plain formula (training reproduces the
    # shipped weights bit for bit), done in place: block-sized float64
    # temporaries cost more to page in than to compute
    valid = np.isfinite(image)
    everywhere = bool(valid.all())
    x = image.astype(np.float64)
    if everywhere:
        weight = _weight_of_ones(x.shape, size, sigma)
    else:
        x[~valid] = 0.0
        weight = np.maximum(blur(valid.astype(np.float64)), 1e-12)
    mean = blur(x)
    mean /= weight
    centred = x
    centred -= mean
    if not everywhere:
        centred[~valid] = 0.0
    var = blur(centred * centred)
    var /= weight
    np.abs(mean, out=mean)
    mean *= 1e-6
    np.square(mean, out=mean)
    var += mean
    var += 1e-30
    np.sqrt(var, out=var)
    centred /= var
    if not everywhere:
        centred[~valid] = 0.0
    return centred.astype(np.float32)


_WEIGHTS_OF_ONES: dict[tuple, np.ndarray] = {}
#: bytes of :func:`_weight_of_ones` kept (the oldest are dropped first)
WEIGHTS_KEPT_BYTES = 48 * 2**20


def _weight_of_ones(shape: tuple[int, ...], size: int, sigma: float) -> np.ndarray:
    """``max(blur(ones), 1e-12)`` for a strip shape, computed once (read-only)."""
    import cv2

    key = (shape, size, sigma)
    weight = _WEIGHTS_OF_ONES.get(key)
    if weight is None:
        ones = np.ones(shape, dtype=np.float64)
        weight = np.maximum(
            cv2.GaussianBlur(ones, (size, size), sigma, borderType=cv2.BORDER_CONSTANT), 1e-12
        )
        weight.setflags(write=False)
        with _lock:
            _WEIGHTS_OF_ONES[key] = weight
            while sum(w.nbytes for w in _WEIGHTS_OF_ONES.values()) > WEIGHTS_KEPT_BYTES:
                del _WEIGHTS_OF_ONES[next(iter(_WEIGHTS_OF_ONES))]
    return weight


def build_network(layers: Any = LAYERS, blur: float = OUTPUT_BLUR) -> Any:
    """Build the fully convolutional feature network (Keras 3, 'same' padding).

    ``layers`` lists ``(filters, kernel)`` per convolution (ReLU between,
    the last linear); ``blur`` adds a fixed, non-trainable Gaussian.
    """
    import keras

    inputs = keras.Input(shape=(None, None, 1), name="normalised_image")
    x = inputs
    for i, (filters, kernel) in enumerate(layers):
        last = i == len(layers) - 1
        x = keras.layers.Conv2D(
            int(filters),
            int(kernel),
            padding="same",
            activation=None if last else "relu",
            name=f"conv{i}",
        )(x)
    if blur:
        half = int(math.ceil(3 * blur))
        g = np.exp(-0.5 * (np.arange(-half, half + 1) / blur) ** 2)
        kernel = np.outer(g, g) / np.outer(g, g).sum()
        smooth = keras.layers.Conv2D(
            1, 2 * half + 1, padding="same", use_bias=False, trainable=False, name="output_blur"
        )
        x = smooth(x)
        smooth.set_weights([kernel[:, :, None, None].astype(np.float32)])
    return keras.Model(inputs, x, name="trackoff_features")


def architecture(weights: str | os.PathLike[str]) -> tuple[tuple[tuple[int, int], ...], float]:
    """Layers and output blur recorded beside ``weights`` (defaults if none)."""
    arch = model_metadata(weights).get("architecture", {})
    layers = tuple(tuple(layer) for layer in arch.get("layers", LAYERS))
    return layers, float(arch.get("output_blur", OUTPUT_BLUR if "layers" not in arch else 0.0))


_NETWORKS: dict[str, Any] = {}
_COMPILED: dict[str, Any] = {}


def get_network(weights: str) -> Any:
    """Build the network and load ``weights`` once per process, then reuse it.

    Thread-safe: dask's threads asking at the same time wait for one load.
    TensorFlow's thread pools are sized by :func:`trackoff_xr.set_options`
    (:mod:`trackoff_xr.tf_runtime`).
    """
    with _lock:
        network = _NETWORKS.get(weights)
        if network is not None:
            return network
        tensorflow("cnn")  # imported and configured once per process
        network = build_network(*architecture(weights))
        network.load_weights(weights)
        _NETWORKS[weights] = network
        layers, _ = architecture(weights)
        _COMPILED[weights] = (*_compile(network), network_radius(layers, blur=0.0))
        return network


def _compile(network: Any) -> tuple[Any, np.ndarray | None]:
    """Wrap the network in one TensorFlow graph for any image size (traced once).

    The fixed output blur, if the network has one, is split off and applied
    with OpenCV as two 1-D passes (it is separable): inside TensorFlow it
    was a 7 x 7 convolution costing 15 % of the network. Measured on a
    1160 x 1160 block: the compiled graph took 0.121 s against 0.174 s
    calling the Keras model eagerly (XLA, ``jit_compile=True``: 0.417 s).

    Returns the compiled function and the 1-D blur taps (or None).
    """
    import keras
    import tensorflow as tf

    names = [layer.name for layer in network.layers]
    taps = None
    if "output_blur" in names:
        kernel = network.get_layer("output_blur").get_weights()[0][:, :, 0, 0]
        row = kernel.sum(axis=0)  # the outer product of two normalised 1-D Gaussians
        taps = (row / row.sum()).astype(np.float32)
        network = keras.Model(
            network.inputs, network.get_layer(names[names.index("output_blur") - 1]).output
        )
    function = tf.function(
        lambda batch: network(batch, training=False),
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)],
        reduce_retracing=True,
    )
    return function, taps


#: rows of the image the network sees at once: its 16-channel activations of
#: a whole 2200 x 2200 block took ~500 MB per call (measured peak RSS 1530 MB
#: against 1033 MB in strips of 512 rows, same speed, identical output). Two
#: threads each running a 2344 x 2344 block: peak RSS 600 MB above the loaded
#: network in strips of 512 rows, 310 MB in 256 (~4 % slower), 250 MB in 128
#: (~20 % slower)
STRIP_ROWS = 256
#: rows per strip when OpenCV runs the network (:func:`filter_forward`): per
#: row of output, one thread, 2,200 columns, model v2: 0.47 ms in strips of
#: 32 rows, 0.39 in 128, 0.35 in 256; its two scratch buffers per thread
#: (8 x 266 x 2,200 float32 each, 19 MB) grow with the strip
OPENCV_STRIP_ROWS = 256


def run_network(weights: str, normalised: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Feature channel of one normalised image ``(rows, cols)``, by the trained network.

    The network runs on strips of :data:`STRIP_ROWS` rows (OpenCV:
    :data:`OPENCV_STRIP_ROWS`), each with the
    convolutions' radius of context above and below, so its memory does not
    grow with the block; the result is the same as one call on the whole
    image (zero padding only at the image's own edges, as before). ``out``,
    a C-contiguous float32 array of the image's shape, receives the result.
    What runs the network is :func:`network_runtime`'s choice: OpenCV's
    filters (:func:`filter_forward`) or TensorFlow's compiled graph (the same
    features to ~1e-5).
    """
    import cv2

    get_network(weights)
    function, taps, radius = _COMPILED[weights]
    layers = _filter_layers(weights) if network_runtime(weights) == "opencv" else None
    normalised = np.ascontiguousarray(normalised, dtype=np.float32)
    rows = normalised.shape[0]
    features: np.ndarray = np.empty(normalised.shape, dtype=np.float32)
    strip_rows = STRIP_ROWS if layers is None else OPENCV_STRIP_ROWS
    for top in range(0, rows, strip_rows):
        bottom = min(top + strip_rows, rows)
        lo, hi = max(top - radius, 0), min(bottom + radius, rows)
        if layers is not None:
            with opencv_threads(1):  # dask's threads are the parallelism
                strip = filter_forward(layers, normalised[lo:hi])
        else:
            strip = np.asarray(function(normalised[None, lo:hi, :, None]))[0, :, :, 0]
        features[top:bottom] = strip[top - lo : top - lo + bottom - top]
        del strip  # the strip's tensor goes before the next is made
    if out is None:
        out = np.empty(normalised.shape, dtype=np.float32)
    if taps is not None:  # 'same' padding in Keras: zeros beyond the block
        cv2.sepFilter2D(features, -1, taps, taps, dst=out, borderType=cv2.BORDER_CONSTANT)
    else:
        out[...] = features
    return out


def network_runtime(weights: str | None = None) -> str:
    """Return what runs the network now: ``"opencv"`` or ``"tensorflow"``.

    The ``cnn_runtime`` option (:func:`trackoff_xr.set_options`), with
    ``"auto"`` (the default) resolved: TensorFlow where it runs on a GPU
    (:func:`trackoff_xr.tf_runtime.device`); on the CPU, whichever of
    OpenCV's filters (:func:`filter_forward`) and TensorFlow's compiled graph
    ran ``weights`` (default: the shipped ones) faster on one strip, timed
    once per process (:func:`fastest_cpu_runtime`). Which wins depends on
    the CPU: OpenCV on 2026-12-03's AVX2-only machine (89 vs 194 ms per
    266 x 2,200 strip), TensorFlow (oneDNN) on 2026-12-04's AVX-512/AMX
    machine (17-18 vs 38-40 ms per 266 x 1,200 strip).

    Examples
    --------
    >>> import trackoff_xr
    >>> with trackoff_xr.set_options(cnn_runtime="tensorflow"):
    ...     network_runtime()
    'tensorflow'
    """
    from ...options import get_options
    from ...tf_runtime import device

    choice = str(get_options()["cnn_runtime"])
    if choice == "auto":
        if device() == "gpu":
            return "tensorflow"
        return fastest_cpu_runtime(str(DEFAULT_WEIGHTS) if weights is None else weights)
    return choice


_FASTEST: dict[str, str] = {}
_timing_lock = threading.Lock()
#: the strip :func:`fastest_cpu_runtime` times: an OpenCV strip with context
_TIMING_SHAPE = (OPENCV_STRIP_ROWS + 10, 1024)


def fastest_cpu_runtime(weights: str, rounds: int = 3) -> str:
    """Time both CPU runtimes on one strip of ``weights``' network; return the faster.

    Each runs once to warm up (TensorFlow traces its graph), then
    ``rounds`` times, alternately, on one thread; the best times are
    compared. The answer is kept for the rest of the process (one dask
    worker measures once, ~0.1-0.3 s); concurrent first callers wait for
    one measurement.

    Examples
    --------
    >>> fastest_cpu_runtime(str(DEFAULT_WEIGHTS)) in ("opencv", "tensorflow")
    True
    """
    import time

    with _timing_lock:
        if weights in _FASTEST:
            return _FASTEST[weights]
        get_network(weights)
        function = _COMPILED[weights][0]
        layers = _filter_layers(weights)
        strip = np.random.default_rng(0).standard_normal(_TIMING_SHAPE).astype(np.float32)

        def with_opencv() -> None:
            with opencv_threads(1):
                filter_forward(layers, strip)

        def with_tensorflow() -> None:
            np.asarray(function(strip[None, :, :, None]))

        runs = {"opencv": with_opencv, "tensorflow": with_tensorflow}
        best = dict.fromkeys(runs, math.inf)
        for round_ in range(rounds + 1):  # round 0 warms up
            for name, run in runs.items():
                t0 = time.perf_counter()
                run()
                if round_:
                    best[name] = min(best[name], time.perf_counter() - t0)
        _FASTEST[weights] = min(best, key=best.__getitem__)
        return _FASTEST[weights]


def _filter_layers(
    weights: str,
) -> tuple[tuple[tuple[tuple[np.ndarray, ...], ...], np.ndarray], ...]:
    """Each convolution of ``weights`` as 2-D float32 kernels ``[out][in]`` and its bias."""
    with _lock:
        layers = _FILTER_LAYERS.get(weights)
    if layers is None:
        network = get_network(weights)
        built = []
        for i in range(len(architecture(weights)[0])):
            kernel, bias = (
                np.asarray(a, np.float32) for a in network.get_layer(f"conv{i}").get_weights()
            )
            kernels = tuple(
                tuple(np.ascontiguousarray(kernel[:, :, c, o]) for c in range(kernel.shape[2]))
                for o in range(kernel.shape[3])
            )
            built.append((kernels, bias))
        layers = tuple(built)
        with _lock:
            _FILTER_LAYERS[weights] = layers
    return layers


_FILTER_LAYERS: dict[str, Any] = {}
_filter_scratch = threading.local()


def _scratch(channels: int, rows: int, cols: int) -> list[np.ndarray]:
    """Return two activation buffers and one plane of this thread, at least this large.

    Reused from call to call (strips differ in rows only at a block's ends):
    each is a view of rows ``:rows`` of a buffer of the same columns.
    """
    held = getattr(_filter_scratch, "buffers", None)
    if (
        held is None
        or held[0].shape[0] < channels
        or held[0].shape[1] < rows
        or held[0].shape[2] != cols
    ):
        shape = (channels, rows, cols)
        held = [
            np.empty(shape, np.float32),
            np.empty(shape, np.float32),
            np.empty(shape[1:], np.float32),
        ]
        _filter_scratch.buffers = held
    return [held[0][:, :rows], held[1][:, :rows], held[2][:rows]]


def filter_forward(layers: Any, image: np.ndarray) -> np.ndarray:
    """Run a stack of 'same' convolutions (ReLU between, the last linear) by OpenCV.

    Every output channel is the sum over input channels of one
    :func:`cv2.filter2D` each, the bias added by the first as its ``delta``;
    zeros beyond the image at every layer, as Keras' ``'same'`` padding. The
    result is a view of this thread's scratch buffer, valid until its next call.

    Why not OpenCV's ``dnn`` module (which ran this network, converted to
    TFLite, until session 11): on a 266 x 2,200 strip of one thread, model v2,
    this took 89 ms against 116 ms for ``dnn`` (138 rows: 50 ms against 62), the
    features equal to 3e-6; six channels: 59 ms against 88. ``dnn`` is slow
    where a layer has one channel in or out, and it needs a TFLite conversion.

    Examples
    --------
    >>> box = np.full((3, 3), 1 / 9, np.float32)
    >>> layers = [(((box,),), np.zeros(1, np.float32))]
    >>> out = filter_forward(layers, np.ones((4, 5), np.float32))
    >>> float(out[0, 0]), float(out[2, 2])
    (0.4444444477558136, 1.0)
    """
    import cv2

    border = cv2.BORDER_CONSTANT
    widest = max(len(kernels) for kernels, _ in layers)
    first, second, plane = _scratch(widest, *image.shape)
    inputs: Any = (image,)
    buffers = (first, second)
    for depth, (kernels, bias) in enumerate(layers):
        out = buffers[depth % 2]
        for o, row in enumerate(kernels):
            cv2.filter2D(inputs[0], -1, row[0], dst=out[o], delta=float(bias[o]), borderType=border)
            for channel, kernel in zip(inputs[1:], row[1:], strict=True):
                cv2.filter2D(channel, -1, kernel, dst=plane, borderType=border)
                cv2.add(out[o], plane, dst=out[o])
        if depth < len(layers) - 1:
            np.maximum(out[: len(kernels)], 0.0, out=out[: len(kernels)])
        inputs = out[: len(kernels)]
    return inputs[0]


def clear_networks() -> None:
    """Forget the loaded networks (the next call loads again)."""
    with _lock:
        _NETWORKS.clear()
        _COMPILED.clear()
        _FILTER_LAYERS.clear()


def model_metadata(weights: str | os.PathLike[str] = DEFAULT_WEIGHTS) -> dict[str, Any]:
    """Read the JSON beside the weights: version, training set-up, calibration."""
    path = Path(weights)
    meta = path.with_name(path.name.replace(".weights.h5", ".json"))
    return json.loads(meta.read_text()) if meta.exists() else {}


#: smoothing of the normalised image on which offsets are refined to sub-pixel
REFINE_SIGMA = 0.7


def extract_channels(image: np.ndarray, weights: str) -> np.ndarray:
    """Both channels the CNN matcher uses, stacked ``(rows, cols, 2)``.

    Channel 0: the learnt features, for the integer search (robust to
    speckle, filtering, rotation). Channel 1: the normalised image lightly
    smoothed (Gaussian, ``REFINE_SIGMA``), for the sub-pixel refinement: a
    linear filter commutes with sub-pixel shifts, a ReLU network on a pixel
    grid does not (measured: Gauss-Newton on the learnt features alone was
    biased by 0.02-0.03 px on a uniform shift).
    """
    import cv2

    normalised = local_normalise(image)
    # one contiguous plane per channel: the matcher correlates each channel
    # as a 2-D image, which is then a view, not a copy of the block
    planes = np.empty((2,) + image.shape, dtype=np.float32)
    run_network(weights, normalised, out=planes[0])
    cv2.GaussianBlur(normalised, (0, 0), REFINE_SIGMA, dst=planes[1])
    return np.moveaxis(planes, 0, -1)
