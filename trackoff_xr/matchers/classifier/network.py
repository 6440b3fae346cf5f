"""Per-tile classifier networks, trained for many tiles at once.

Every tile has its own network (its own weights), but the networks of a
group of ``T`` tiles are stacked into one TensorFlow computation: tile ``t``
owns channels ``[t C, (t + 1) C)`` of every convolution (a grouped
convolution; a depthwise one for the first layer), batch normalisation and
pooling act per channel anyway, and dense layers are batched matrix products
(``einsum``) with one weight matrix per tile. The tiles never share a weight
or a gradient, so the result is the same as training ``T`` separate models
with the same initial weights and batches, while one training loop (one
Python step per batch) serves the whole group.

Training is a plain functional loop (parameters in, parameters out) with
Adam, compiled once per shape with ``tf.function`` and reused across dask
blocks. TensorFlow is imported lazily, through :mod:`trackoff_xr.tf_runtime`,
which sizes its thread pools from :func:`trackoff_xr.set_options`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ...exceptions import InvalidParameterError
from ...tf_runtime import tensorflow

__all__ = [
    "ALEXNET",
    "SMALL",
    "NetworkSpec",
    "TrainedTiles",
    "predict",
    "resolve_layers",
    "train_tiles",
]

_lock = threading.Lock()

#: Layers of the AlexNet-style network of Łucka (2025): (kind, arguments...).
ALEXNET: tuple[tuple[Any, ...], ...] = (
    ("conv", 96, 11, 4, "valid"),
    ("bn",),
    ("pool", 3, 2),
    ("conv", 256, 5, 1, "same"),
    ("bn",),
    ("pool", 3, 2),
    ("conv", 384, 3, 1, "same"),
    ("bn",),
    ("conv", 384, 3, 1, "same"),
    ("bn",),
    ("conv", 256, 3, 1, "same"),
    ("bn",),
    ("pool", 3, 2),
    ("dense", 4096),
    ("dropout", 0.5),
)

#: A small network: one strided convolution (8 filters, kernel = stride) and
#: max-pooling down to about 8 x 8 x 8 features before the softmax layer;
#: its strides follow the patch size (see :func:`resolve_layers`).
SMALL = "small"


def resolve_layers(layers: Any, patch: int) -> tuple[tuple[Any, ...], ...]:
    """Return the layers for a patch size (``SMALL`` adapts its strides to it).

    Examples
    --------
    >>> resolve_layers(SMALL, 100)
    (('conv', 8, 4, 4, 'valid'), ('pool', 3, 3))
    >>> resolve_layers(SMALL, 32)
    (('conv', 8, 1, 1, 'valid'), ('pool', 4, 4))
    """
    if layers != SMALL:
        return tuple(tuple(layer) for layer in layers)
    stride = max(1, round(patch / 25))
    size = patch // stride
    pool = size // 8
    conv: tuple[Any, ...] = ("conv", 8, stride, stride, "valid")
    return (conv, ("pool", pool, pool)) if pool >= 2 else (conv,)


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture and training schedule of the per-tile classifier.

    Parameters
    ----------
    layers : tuple
        ``("conv", filters, kernel, stride, padding)``, ``("bn",)``,
        ``("pool", size, stride)``, ``("dense", units)``, ``("dropout", rate)``;
        a final dense softmax layer over the classes is always added. Or
        :data:`SMALL`, sized to the patch by :func:`resolve_layers`.
    normalise : {"minmax", "standard"}
        Per-image input scaling: to [0, 1] (the paper, ``cv2.NORM_MINMAX``) or
        to zero mean and unit variance.
    learning_rate, batch_size, epochs
        Adam's step, images per tile per step, most passes over the data.
    train_fraction : float
        Share of the images trained on (the paper trains on 60 %: a 75 %
        train/test split, then a 20 % validation split).
    patience : int or None
        Early stopping: stop when the mean training loss of the group has not
        improved by ``min_delta`` for ``patience`` epochs (None: never).
    min_delta : float
        See ``patience``.
    stop_accuracy : float or None
        Also stop once every tile classifies at least this share of its plain
        (unaugmented) candidate tiles correctly, checked after each epoch: the
        network then tells every candidate apart, which is what classifying
        the reference tile needs.
    imprint : bool
        Start the softmax layer from the features of each class's plain tile
        ("weight imprinting", Qi et al. 2018) instead of random weights: the
        untrained network already ranks the classes by feature similarity
        (logit 30 at each class's own tile), and training refines it in a
        few epochs.
    restore_best : bool
        Keep the weights of the epoch with the best training accuracy (the
        paper's ``ModelCheckpoint(monitor="accuracy")``).
    tiles_per_group : int
        Tiles trained together in one loop.
    seed : int
        Seeds weights, batches and dropout (results are reproducible).
    """

    layers: Any = SMALL
    normalise: str = "standard"
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 100
    train_fraction: float = 1.0
    patience: int | None = None
    min_delta: float = 1e-3
    stop_accuracy: float | None = None
    imprint: bool = False
    restore_best: bool = False
    tiles_per_group: int = 8
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.normalise not in ("minmax", "standard"):
            raise InvalidParameterError(
                f"normalise={self.normalise!r} is not one of 'minmax', 'standard'"
            )
        if not 0 < self.train_fraction <= 1:
            raise InvalidParameterError(
                f"train_fraction={self.train_fraction!r} is not in (0, 1]; use e.g. 1.0"
            )
        for name in ("batch_size", "epochs", "tiles_per_group"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidParameterError(f"{name}={value!r} is not an integer >= 1")


# --------------------------------------------------------------------------
# parameters (numpy; shapes for T tiles)
# --------------------------------------------------------------------------


def _shapes(
    layers: tuple[tuple[Any, ...], ...], tiles: int, classes: int, patch: int
) -> tuple[list[tuple[str, tuple[int, ...], float]], list[tuple[int, ...]]]:
    """Parameter (name, shape, glorot limit) and state shapes of the stacked network."""
    params: list[tuple[str, tuple[int, ...], float]] = []
    state: list[tuple[int, ...]] = []
    size, channels, flat = patch, 1, None
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            _, filters, kernel, stride, padding = layer
            fan = (kernel * kernel * channels, kernel * kernel * filters)
            limit = math.sqrt(6.0 / sum(fan))
            if channels == 1:
                params.append(("w", (kernel, kernel, tiles, filters), limit))
            else:
                params.append(("w", (kernel, kernel, channels, tiles * filters), limit))
            params.append(("b", (tiles * filters,), 0.0))
            size = (size - kernel) // stride + 1 if padding == "valid" else -(-size // stride)
            channels = filters
        elif kind == "bn":
            params += [("g", (tiles * channels,), -1.0), ("b", (tiles * channels,), 0.0)]
            state += [(tiles * channels,), (tiles * channels,)]
        elif kind == "pool":
            size = (size - layer[1]) // layer[2] + 1
        elif kind == "dense":
            fan_in = size * size * channels if flat is None else flat
            flat = int(layer[1])
            limit = math.sqrt(6.0 / (fan_in + flat))
            params += [("w", (tiles, fan_in, flat), limit), ("b", (tiles, flat), 0.0)]
        elif kind != "dropout":
            raise InvalidParameterError(f"layer {layer!r} is not a known layer kind")
        if size < 1:
            raise InvalidParameterError(
                f"patch_size={patch} is too small for the classifier's layers {layers}; "
                "use a larger patch_size or the 'fast' preset"
            )
    fan_in = size * size * channels if flat is None else flat
    params += [
        ("w", (tiles, fan_in, classes), math.sqrt(6.0 / (fan_in + classes))),
        ("b", (tiles, classes), 0.0),
    ]
    return params, state


def _initial(
    layers: tuple[tuple[Any, ...], ...], tiles: int, classes: int, patch: int, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    params, state = _shapes(layers, tiles, classes, patch)
    values = []
    for _, shape, limit in params:
        if limit > 0:
            values.append(rng.uniform(-limit, limit, shape).astype(np.float32))
        elif limit < 0:
            values.append(np.ones(shape, np.float32))
        else:
            values.append(np.zeros(shape, np.float32))
    moving = [
        np.zeros(s, np.float32) if i % 2 == 0 else np.ones(s, np.float32)
        for i, s in enumerate(state)
    ]
    return values, moving


# --------------------------------------------------------------------------
# TensorFlow functions, built once per shape and cached
# --------------------------------------------------------------------------


def _needs_xla(layers: tuple[tuple[Any, ...], ...], tiles: int) -> bool:
    convs = [layer for layer in layers if layer[0] == "conv"]
    return tiles > 1 and len(convs) > 1  # grouped convolutions run on CPU only through XLA


@lru_cache(maxsize=16)
def _functions(
    layers: tuple[tuple[Any, ...], ...],
    normalise: str,
    tiles: int,
    classes: int,
    patch: int,
    lr: float,
) -> tuple[Any, Any, Any]:
    tf = tensorflow("classifier")
    jit = _needs_xla(layers, tiles)

    def prepare(x: Any) -> Any:
        x = tf.cast(x, tf.float32)
        if normalise == "minmax":
            lo = tf.reduce_min(x, axis=(1, 2), keepdims=True)
            hi = tf.reduce_max(x, axis=(1, 2), keepdims=True)
            return (x - lo) / tf.maximum(hi - lo, 1e-6)
        mean, var = tf.nn.moments(x, axes=(1, 2), keepdims=True)
        return (x - mean) / tf.sqrt(var + 1e-6)

    def forward(
        params: list[Any], state: list[Any], x: Any, training: bool, seed: Any
    ) -> tuple[Any, list[Any]]:
        p, s, new_state = 0, 0, []
        channels, flat = 1, False
        x = prepare(x)
        for i, layer in enumerate(layers):
            kind = layer[0]
            if kind == "conv":
                _, filters, kernel, stride, padding = layer
                w, b = params[p], params[p + 1]
                pad = padding.upper()
                if channels == 1:
                    x = tf.nn.depthwise_conv2d(x, w, (1, stride, stride, 1), pad)
                else:
                    x = tf.nn.conv2d(x, w, stride, pad)
                x = tf.nn.relu(x + b)
                p, channels = p + 2, filters
            elif kind == "bn":
                gamma, beta = params[p], params[p + 1]
                if training:
                    mean, var = tf.nn.moments(x, axes=(0, 1, 2))
                    new_state += [0.99 * state[s] + 0.01 * mean, 0.99 * state[s + 1] + 0.01 * var]
                else:
                    mean, var = state[s], state[s + 1]
                    new_state += [state[s], state[s + 1]]
                x = tf.nn.batch_normalization(x, mean, var, beta, gamma, 1e-3)
                p, s = p + 2, s + 2
            elif kind == "pool":
                x = tf.nn.max_pool2d(x, layer[1], layer[2], "VALID")
            elif kind == "dense":
                if not flat:
                    x = _flatten(tf, x, tiles, channels)
                    flat = True
                x = tf.nn.relu(tf.einsum("btf,tfu->btu", x, params[p]) + params[p + 1])
                p += 2
            elif kind == "dropout" and training:
                keep = tf.random.stateless_uniform(tf.shape(x), seed=seed + i) >= layer[1]
                x = tf.where(keep, x / (1.0 - layer[1]), 0.0)
        if not flat:
            x = _flatten(tf, x, tiles, channels)
        logits = tf.einsum("btf,tfk->btk", x, params[p]) + params[p + 1]
        return logits, new_state

    def train_step(
        params: list[Any],
        m: list[Any],
        v: list[Any],
        state: list[Any],
        step: Any,
        x: Any,
        y: Any,
        seed: Any,
    ) -> tuple[Any, ...]:
        with tf.GradientTape() as tape:
            tape.watch(params)
            logits, new_state = forward(params, state, x, True, seed)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)  # (B, T)
            per_tile = tf.reduce_mean(losses, axis=0)
            total = tf.reduce_sum(per_tile)
        grads = tape.gradient(total, params)
        t = tf.cast(step + 1, tf.float32)
        rate = lr * tf.sqrt(1.0 - 0.999**t) / (1.0 - 0.9**t)
        new_m = [0.9 * a + 0.1 * g for a, g in zip(m, grads, strict=True)]
        new_v = [0.999 * a + 0.001 * g * g for a, g in zip(v, grads, strict=True)]
        new_p = [
            w - rate * a / (tf.sqrt(b) + 1e-7) for w, a, b in zip(params, new_m, new_v, strict=True)
        ]
        hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32)
        return new_p, new_m, new_v, new_state, per_tile, tf.reduce_mean(hits, axis=0)

    def predict(params: list[Any], state: list[Any], x: Any) -> Any:
        logits, _ = forward(params, state, x, False, tf.constant([0, 0], tf.int32))
        return tf.nn.softmax(logits, axis=-1)

    def features(params: list[Any], state: list[Any], x: Any) -> Any:
        # inputs of the softmax layer: a zero last layer and unit "weights" per feature
        fan_in = params[-2].shape[1]
        eye = tf.eye(fan_in, batch_shape=(tiles,))
        head = [*params[:-2], eye, tf.zeros((tiles, fan_in))]
        out, _ = forward(head, state, x, False, tf.constant([0, 0], tf.int32))
        return out

    return (
        tf.function(train_step, jit_compile=jit, reduce_retracing=True),
        tf.function(predict, jit_compile=jit, reduce_retracing=True),
        tf.function(features, jit_compile=jit, reduce_retracing=True),
    )


def _flatten(tf: Any, x: Any, tiles: int, channels: int) -> Any:
    shape = tf.shape(x)
    x = tf.reshape(x, (shape[0], shape[1], shape[2], tiles, channels))
    x = tf.transpose(x, (0, 3, 1, 2, 4))
    return tf.reshape(x, (shape[0], tiles, -1))


# --------------------------------------------------------------------------
# training loop
# --------------------------------------------------------------------------


@dataclass
class TrainedTiles:
    """Weights of a group of tile classifiers and how their training went."""

    params: list[Any]
    state: list[Any]
    spec: NetworkSpec
    classes: int
    patch: int
    epochs_run: int
    loss: list[float]
    accuracy: list[float]
    plain_accuracy: list[float] = field(default_factory=list)


def train_tiles(images: np.ndarray, spec: NetworkSpec) -> TrainedTiles:
    """Train one classifier per tile, all tiles in one loop.

    Parameters
    ----------
    images : ndarray, shape (T, classes, per_class, P, P), uint8
        Training images (:func:`trackoff_xr.matchers.classifier.augmentation.training_images`).
    spec : NetworkSpec

    Returns
    -------
    TrainedTiles
    """
    tiles, classes, per_class, patch = (
        images.shape[0],
        images.shape[1],
        images.shape[2],
        images.shape[-1],
    )
    layers = resolve_layers(spec.layers, patch)
    with _lock:
        train_step, _, features = _functions(
            layers, spec.normalise, tiles, classes, patch, float(spec.learning_rate)
        )
    import tensorflow as tf

    rng = np.random.default_rng(spec.seed)
    flat = images.reshape(tiles, classes * per_class, patch, patch)
    labels = np.repeat(np.arange(classes, dtype=np.int32), per_class)
    n_total = classes * per_class
    n_train = max(1, int(round(spec.train_fraction * n_total)))
    subset = np.stack([rng.permutation(n_total)[:n_train] for _ in range(tiles)])
    batch = min(spec.batch_size, n_train)
    steps = math.ceil(n_train / batch)
    init, state0 = _initial(layers, tiles, classes, patch, spec.seed)
    params = [tf.constant(a) for a in init]
    state = [tf.constant(a) for a in state0]
    if spec.imprint:
        params[-2:] = _imprint(features, params, state, images[:, :, 0])
    m = [tf.zeros_like(a) for a in params]
    v = [tf.zeros_like(a) for a in params]
    rows = np.arange(tiles)[:, None]
    best = (-1.0, params, state)
    losses: list[float] = []
    accuracies: list[float] = []
    since_best, best_loss, step = 0, np.inf, 0
    plain: list[float] = []
    for epoch in range(spec.epochs):
        order = np.stack([rng.permutation(subset[t]) for t in range(tiles)])
        order = np.concatenate([order, order[:, : steps * batch - n_train]], axis=1)
        loss_sum = np.zeros(tiles)
        acc_sum = np.zeros(tiles)
        for s in range(steps):
            idx = order[:, s * batch : (s + 1) * batch]
            x = np.ascontiguousarray(flat[rows, idx].transpose(1, 2, 3, 0))
            y = np.ascontiguousarray(labels[idx].T)
            seed = tf.constant([spec.seed, step], tf.int32)
            params, m, v, state, loss, acc = train_step(
                params, m, v, state, tf.constant(step, tf.int32), x, y, seed
            )
            loss_sum += loss.numpy()
            acc_sum += acc.numpy()
            step += 1
        tile_loss, tile_acc = loss_sum / steps, acc_sum / steps
        losses.append(float(tile_loss.mean()))
        accuracies.append(float(tile_acc.mean()))
        if spec.restore_best and accuracies[-1] > best[0]:
            best = (accuracies[-1], params, state)
        if spec.stop_accuracy is not None:
            trained = TrainedTiles(
                params, state, spec, classes, patch, epoch + 1, losses, accuracies
            )
            plain.append(float(_plain_accuracy(trained, images).min()))
            if plain[-1] >= spec.stop_accuracy:
                break
        if spec.patience is not None:
            if losses[-1] < best_loss - spec.min_delta:
                best_loss, since_best = losses[-1], 0
            else:
                since_best += 1
                if since_best >= spec.patience:
                    break
    if spec.restore_best and best[0] >= 0:
        params, state = best[1], best[2]
    return TrainedTiles(
        params=params,
        state=state,
        spec=spec,
        classes=classes,
        patch=patch,
        epochs_run=len(losses),
        loss=losses,
        accuracy=accuracies,
        plain_accuracy=plain,
    )


def _imprint(
    features: Any, params: list[Any], state: list[Any], plain: np.ndarray, sharpness: float = 30.0
) -> list[Any]:
    """Softmax weights and biases whose logits are ``sharpness`` at each class's own tile.

    With ``g_k`` the centred features of class ``k``'s plain tile, the logit
    of class ``k`` for an input with centred features ``g`` is
    ``sharpness * <g, g_k> / |g_k|^2``.
    """
    import tensorflow as tf

    feats = []
    for k0 in range(0, plain.shape[1], 64):  # (T, k, P, P) -> batches of classes
        x = np.ascontiguousarray(plain[:, k0 : k0 + 64].transpose(1, 2, 3, 0))
        feats.append(np.asarray(features(params, state, x)))
    f = np.concatenate(feats, axis=0).transpose(1, 0, 2).astype(np.float64)  # (T, K, F)
    mean = f.mean(axis=1, keepdims=True)
    g = f - mean
    w = sharpness * g / np.maximum((g * g).sum(axis=2, keepdims=True), 1e-12)  # (T, K, F)
    b = -(w * mean).sum(axis=2)
    return [tf.constant(w.transpose(0, 2, 1).astype(np.float32)), tf.constant(b.astype(np.float32))]


def _plain_accuracy(trained: TrainedTiles, images: np.ndarray) -> np.ndarray:
    """Share of each tile's plain candidate tiles classified as their own class."""
    tiles, classes = images.shape[:2]
    correct = np.zeros(tiles)
    for k0 in range(0, classes, 64):
        block = images[:, k0 : k0 + 64, 0]  # (T, k, P, P)
        probs = _predict_batch(trained, np.ascontiguousarray(block.transpose(1, 2, 3, 0)))
        correct += (probs.argmax(axis=-1) == np.arange(k0, k0 + block.shape[1])[:, None]).sum(0)
    return correct / classes


def _predict_batch(trained: TrainedTiles, x: np.ndarray) -> np.ndarray:
    spec = trained.spec
    with _lock:
        _, predict_fn, _ = _functions(
            resolve_layers(spec.layers, trained.patch),
            spec.normalise,
            x.shape[-1],
            trained.classes,
            trained.patch,
            float(spec.learning_rate),
        )
    return np.asarray(predict_fn(trained.params, trained.state, x))


def predict(trained: TrainedTiles, templates: np.ndarray) -> np.ndarray:
    """Class probabilities of each tile's reference template: ``(T, classes)``."""
    x = np.ascontiguousarray(np.asarray(templates, dtype=np.uint8).transpose(1, 2, 0)[None])
    return _predict_batch(trained, x)[0]
