"""Training the shared CNN matcher, reproducibly from a seed.

Run ``trackoff train --seed 0 --steps 3000 --out trackoff_weights`` (or
:func:`train`) to rebuild the shipped weights in a folder of your own (the
installed package's ``weights`` folder is never written); :func:`fine_tune`
adapts them to one scene, self-supervised.

The loss: for each example the zero-normalised cross-correlation of the
template's features with the window's features at every integer offset
within ``radius`` is turned into a distribution by a softmax with a learnt
sharpness, and compared (cross-entropy) with the true offset split
bilinearly over its four neighbouring integer offsets. The network thus
learns features whose correlation peaks sharply, and in the right sub-pixel
proportions, at the true offset.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .features import (
    DEFAULT_WEIGHTS,
    LAYERS,
    LCN_SIGMA,
    NETWORK_RADIUS,
    OUTPUT_BLUR,
    architecture,
    build_network,
)
from .training_data import DEFAULT_SPEC, TrainingSpec, make_batch

__all__ = [
    "build_outputs",
    "check_out_folder",
    "check_weights_output",
    "correlation_surface",
    "fine_tune",
    "prune_and_tune",
    "prune_network",
    "train",
]

MODEL_VERSION = "trackoff_cnn_v2"
#: channels per hidden layer of the shipped network: the 16-channel network
#: :func:`train` makes is pruned to this many (:func:`prune_and_tune`)
SHIPPED_WIDTH = 8
#: fine-tuning steps after pruning, in :func:`build_model`
TUNE_STEPS = 600
#: where :func:`train` and :func:`build_model` write by default (relative to the current folder)
DEFAULT_OUT = Path("trackoff_weights")


def check_out_folder(out: str | Path) -> Path:
    """Refuse to write weights into the installed package (its shipped weights among them).

    Parameters
    ----------
    out : path
        Folder asked for.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ProtectedOutputError
        ``out`` is, or lies inside, the trackoff_xr package folder.

    Examples
    --------
    >>> str(check_out_folder("trackoff_weights"))
    'trackoff_weights'
    """
    from ...exceptions import ProtectedOutputError

    folder = Path(out)
    package = Path(__file__).resolve().parents[2]
    resolved = folder.resolve()
    if resolved == package or package in resolved.parents:
        raise ProtectedOutputError(
            f"{str(out)!r} is inside the installed trackoff_xr package "
            f"({DEFAULT_WEIGHTS.parent} holds the shipped weights), which is never written; "
            f"write the weights to a folder of your own (e.g. {str(DEFAULT_OUT)!r}) and pass "
            "the .weights.h5 file as weights= to offsets()"
        )
    return folder


def _protected_weights(initial_weights: str | Path | None) -> tuple[str, ...]:
    if not initial_weights:
        return ()
    from ...io.safety import weights_json

    try:
        return (str(initial_weights), str(weights_json(initial_weights)))
    except Exception:  # not a .weights.h5 name: Keras refuses it when loading
        return (str(initial_weights),)


def check_weights_output(
    out: str | Path,
    name: str = MODEL_VERSION,
    *,
    mode: str = "w-",
    initial_weights: str | Path | None = None,
) -> Path:
    """Refuse, before training, weights that must not be written; return the weights path.

    Parameters
    ----------
    out : path
        Folder asked for (:func:`check_out_folder`: never the package).
    name : str
        The weights are ``<out>/<name>.weights.h5`` with ``<name>.json``.
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses existing files; ``"w"`` replaces them only when the
        JSON says trackoff_xr wrote them.
    initial_weights : path, optional
        Starting weights, never replaced.

    Returns
    -------
    pathlib.Path
        ``<out>/<name>.weights.h5``.

    Raises
    ------
    ProtectedOutputError, OutputExistsError, OutputLocationError
        As :func:`trackoff_xr.io.check_output` with ``kind="weights"``.
    """
    from ...io.safety import check_output

    weights = check_out_folder(out) / f"{name}.weights.h5"
    check_output(weights, kind="weights", mode=mode, protect=_protected_weights(initial_weights))
    return weights


def correlation_surface(template_features: Any, window_features: Any) -> Any:
    """ZNCC of each template against every offset in its window (TensorFlow).

    ``template_features``: (B, P, P, 1); ``window_features``: (B, P+2r, P+2r, 1).
    Returns (B, 2r+1, 2r+1).
    """
    import tensorflow as tf

    t = template_features[..., 0]
    w = window_features[..., 0]
    b = tf.shape(t)[0]
    p = tf.shape(t)[1]
    n = tf.cast(p * p, tf.float32)
    t = t - tf.reduce_mean(t, axis=[1, 2], keepdims=True)
    t = t / (tf.norm(tf.reshape(t, [b, -1]), axis=1)[:, None, None] + 1e-6)
    # batch as channels: one depthwise correlation computes every example's surface
    w_c = tf.transpose(w, [1, 2, 0])[None]  # (1, H, W, B)
    t_c = tf.transpose(t, [1, 2, 0])[..., None]  # (P, P, B, 1)
    num = tf.nn.depthwise_conv2d(w_c, t_c, strides=[1, 1, 1, 1], padding="VALID")
    ones = tf.ones(tf.stack([p, p, b, 1]))
    s1 = tf.nn.depthwise_conv2d(w_c, ones, strides=[1, 1, 1, 1], padding="VALID")
    s2 = tf.nn.depthwise_conv2d(w_c * w_c, ones, strides=[1, 1, 1, 1], padding="VALID")
    var = tf.maximum(s2 - s1 * s1 / n, 1e-6)
    return tf.transpose((num / tf.sqrt(var))[0], [2, 0, 1])


def _make_step(network: Any, spec: TrainingSpec, optimizer: Any, sharpness: Any) -> Any:
    import tensorflow as tf

    m = NETWORK_RADIUS

    @tf.function(reduce_retracing=True)
    def step(ref: Any, sec: Any, target: Any) -> Any:
        with tf.GradientTape() as tape:
            ft = network(ref, training=True)[:, m:-m, m:-m, :]
            fw = network(sec, training=True)[:, m:-m, m:-m, :]
            surface = correlation_surface(ft, fw)
            logits = tf.reshape(surface * sharpness, [tf.shape(surface)[0], -1])
            labels = tf.reshape(target, [tf.shape(target)[0], -1])
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels, logits))
        variables = network.trainable_variables + [sharpness]
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=False))
        return loss

    return step


def train(
    out: str | Path = DEFAULT_OUT,
    *,
    seed: int = 0,
    steps: int = 3000,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    initial_weights: str | Path | None = None,
    batch_source: Any = None,
    spec: TrainingSpec = DEFAULT_SPEC,
    log_every: int = 100,
    name: str = MODEL_VERSION,
    mode: str = "w-",
) -> Path:
    """Train the feature network on generated pairs and write ``<name>.weights.h5`` + ``.json``.

    Parameters
    ----------
    out : path
        Folder for the weights and their metadata (default ``./trackoff_weights``);
        never the installed package (:func:`check_out_folder`).
    seed : int
        Seeds the data generator, TensorFlow and Keras: the same seed, steps
        and versions give the same weights.
    steps, batch_size, learning_rate
        Optimisation (Adam, cosine-decayed learning rate).
    initial_weights : path, optional
        Start from these weights (fine-tuning) instead of a fresh network.
    batch_source : callable, optional
        ``batch_source(rng, n) -> dict`` supplying examples; default
        :func:`~trackoff_xr.matchers.cnn.training_data.make_batch`.
    name : str
        Files ``<name>.weights.h5`` and ``<name>.json``.
    mode : {"w-", "w"}, default "w-"
        ``"w-"`` refuses existing files; ``"w"`` replaces weights trackoff_xr
        wrote (their JSON says so), never other files. Checked before training.

    Returns
    -------
    Path of the written weights.
    """
    from ...io.files import save_weights

    weights = check_weights_output(out, name, mode=mode, initial_weights=initial_weights)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(seed)
    layers, blur = (
        (LAYERS, OUTPUT_BLUR) if initial_weights is None else architecture(initial_weights)
    )
    network = build_network(layers, blur)
    if initial_weights is not None:
        network.load_weights(str(initial_weights))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.05)
    optimizer = keras.optimizers.Adam(schedule)
    sharpness = tf.Variable(10.0, name="sharpness")
    step = _make_step(network, spec, optimizer, sharpness)
    source = batch_source or (lambda g, n: make_batch(g, n, spec))

    started = time.perf_counter()
    history = []
    running = None
    for i in range(steps):
        batch = source(rng, batch_size)
        loss = float(
            step(tf.constant(batch["ref"]), tf.constant(batch["sec"]), tf.constant(batch["target"]))
        )
        running = loss if running is None else 0.98 * running + 0.02 * loss
        if log_every and (i + 1) % log_every == 0:
            history.append({"step": i + 1, "loss": round(running, 4)})
            print(
                f"step {i + 1:5d}  loss {running:.4f}  sharpness {float(sharpness):.1f}  "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )

    meta = {
        "version": name,
        "architecture": {
            "lcn_sigma": LCN_SIGMA,
            "layers": [list(layer) for layer in layers],
            "output_blur": blur,
        },
        "training": {
            "seed": seed,
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "patch": spec.patch,
            "radius": spec.radius,
            "max_shift": spec.max_shift,
            "initial_weights": Path(initial_weights).name if initial_weights else "",
            "seconds": round(time.perf_counter() - started, 1),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "history": history,
    }
    return save_weights(
        network.save_weights,
        meta,
        weights,
        mode=mode,
        protect=_protected_weights(initial_weights),
    )


def fine_tune(
    image: Any,
    out: str | Path,
    *,
    weights: str | Path = DEFAULT_WEIGHTS,
    steps: int = 300,
    seed: int = 0,
    looks: tuple[float, float] = (3.0, 8.0),
    learning_rate: float = 5e-4,
    spec: TrainingSpec = DEFAULT_SPEC,
    mode: str = "w-",
) -> Path:
    """Adapt the shipped network to one scene, self-supervised.

    Training pairs are cut from ``image`` (your reference image) and moved
    by known random sub-pixel shifts, rotations, scalings and shears, with
    fresh speckle in each; no displacement truth is needed. Pass the
    returned path as ``offsets(..., method="cnn", weights=path)``.

    Parameters
    ----------
    image : array-like or DataArray, 2-D
        A scene at least ``spec.scene`` pixels on each side.
    out : path
        Folder for the fine-tuned ``<name>.weights.h5`` and ``.json``.
    weights : path
        Starting weights (the shipped model by default).
    steps, seed, learning_rate
        Optimisation; a few hundred steps take a few minutes on a laptop.
    looks : (float, float)
        Range of the number of looks of the speckle added to each copy.
    mode : {"w-", "w"}, default "w-"
        As :func:`train`.
    """
    from ...exceptions import ImageTooSmallError
    from .features import local_normalise
    from .training_data import _radiometry, make_scene_pair

    scene = np.asarray(getattr(image, "values", image), dtype=np.float64)
    if scene.ndim != 2 or min(scene.shape) < spec.scene:
        raise ImageTooSmallError(
            f"fine_tune needs a 2-D image of at least {spec.scene} x {spec.scene} pixels, got "
            f"shape {scene.shape}; pass a larger crop of your reference image"
        )
    finite = np.isfinite(scene)
    lo = np.nanpercentile(scene[finite], 1)
    positive = np.clip(np.where(finite, scene - lo, 0.0), 0.0, None) + 1e-3 * (
        np.nanstd(scene[finite]) + 1e-12
    )

    def batch_source(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        half = spec.scene // 2
        refs = np.empty((n, spec.ref_size, spec.ref_size, 1), np.float32)
        secs = np.empty((n, spec.sec_size, spec.sec_size, 1), np.float32)
        targets = np.empty((n, 2 * spec.radius + 1, 2 * spec.radius + 1), np.float32)
        for i in range(n):
            r0 = rng.integers(0, scene.shape[0] - spec.scene + 1)
            c0 = rng.integers(0, scene.shape[1] - spec.scene + 1)
            crop = positive[r0 : r0 + spec.scene, c0 : c0 + spec.scene]
            shift = tuple(rng.uniform(-spec.max_shift, spec.max_shift, 2))
            ref, sec = make_scene_pair(
                rng,
                spec.scene,
                shift,
                rotation=rng.uniform(-5, 5),
                scale=1 + rng.uniform(-0.02, 0.02),
                looks=rng.uniform(*looks),
                texture=crop,
            )
            ref, sec = (
                local_normalise(_radiometry(rng, ref)),
                local_normalise(_radiometry(rng, sec)),
            )
            a, b = half - spec.ref_size // 2, half - spec.sec_size // 2
            refs[i, ..., 0] = ref[a : a + spec.ref_size, a : a + spec.ref_size]
            secs[i, ..., 0] = sec[b : b + spec.sec_size, b : b + spec.sec_size]
            targets[i] = _bilinear_target(shift, spec.radius)
        return {"ref": refs, "sec": secs, "target": targets}

    from .training_data import _bilinear_target

    return train(
        out,
        seed=seed,
        steps=steps,
        learning_rate=learning_rate,
        initial_weights=weights,
        batch_source=batch_source,
        spec=spec,
        log_every=max(steps // 10, 1),
        name=f"{MODEL_VERSION}_finetuned",
        mode=mode,
    )


#: seed of the generated batch on which :func:`prune_network` ranks channels
PRUNE_SEED = 12345


def prune_network(network: Any, width: int, batch: np.ndarray, blur: float = OUTPUT_BLUR) -> Any:
    """Keep the ``width`` most useful channels of every hidden layer of ``network``.

    A channel's use is its mean activation (after the ReLU) over ``batch``
    times the root sum of squares of the next layer's weights that read it.
    The channels are ranked layer by layer and kept in their order; the
    weights of what is kept are copied unchanged, so the pruned network
    starts close to the wide one and is then fine-tuned
    (:func:`prune_and_tune`).

    Parameters
    ----------
    network : keras.Model
        A network of :func:`~trackoff_xr.matchers.cnn.features.build_network`.
    width : int
        Channels to keep per hidden layer (at most the layer's own).
    batch : ndarray, shape (n, rows, cols, 1)
        Normalised images the channels are ranked on.
    blur : float
        The output blur of ``network`` (:func:`~trackoff_xr.matchers.cnn.features.architecture`).

    Returns
    -------
    keras.Model
        The pruned network, with the same output blur.
    """
    import keras

    from ...exceptions import InvalidParameterError

    convs = [layer for layer in network.layers if layer.name.startswith("conv")]
    narrowest = min(int(layer.filters) for layer in convs[:-1])
    if not 1 <= width <= narrowest:
        raise InvalidParameterError(
            f"width={width!r} cannot be kept: the hidden layers have {narrowest} channels or "
            "fewer; pass a width from 1 to that"
        )
    weights = [layer.get_weights() for layer in convs]
    kept = []
    for i, layer in enumerate(convs[:-1]):
        activation = keras.Model(network.input, layer.output)(batch, training=False)
        mean = np.maximum(np.asarray(activation), 0.0).mean(axis=(0, 1, 2))
        reads = np.sqrt((weights[i + 1][0].astype(np.float64) ** 2).sum(axis=(0, 1, 3)))
        kept.append(np.sort(np.argsort(-(mean * reads), kind="stable")[:width]))
    layers = tuple((width, int(layer.kernel_size[0])) for layer in convs[:-1]) + (
        (int(convs[-1].filters), int(convs[-1].kernel_size[0])),
    )
    pruned = build_network(layers, blur)
    previous = np.arange(1)
    for i, (kernel, bias) in enumerate(weights):
        out = kept[i] if i < len(kept) else np.arange(kernel.shape[-1])
        pruned.get_layer(convs[i].name).set_weights([kernel[:, :, previous][..., out], bias[out]])
        previous = out
    return pruned


def prune_and_tune(
    weights: str | Path,
    out: str | Path = DEFAULT_OUT,
    *,
    width: int = 8,
    steps: int = 600,
    seed: int = 0,
    learning_rate: float = 5e-4,
    calibration_seed: int = 1000,
    calibration_scenes: int = 96,
    name: str = MODEL_VERSION,
    mode: str = "w-",
) -> Path:
    """Prune trained weights to ``width`` channels, fine-tune on generated pairs, calibrate.

    Writes ``<name>_pruned`` (the pruned start) and ``<name>`` (fine-tuned
    by :func:`train` on :func:`~trackoff_xr.matchers.cnn.training_data.make_batch`
    from ``seed``, then calibrated as in :func:`build_model`) into ``out``.
    Measured (2026-12-03, 2 cores): the 16-channel weights of model v1 pruned to 8
    and tuned 600 steps in 614 s; on generated pairs the result matched them
    (``benchmarks/choose_network.py``: > 1 px 22.04 % against 21.91 %) with a
    network 2.1x (OpenCV) to 1.3x (TensorFlow) faster.
    """
    from ...io.files import save_weights

    start = check_weights_output(out, f"{name}_pruned", mode=mode)
    check_weights_output(out, name, mode=mode)
    wide_layers, blur = architecture(weights)
    wide = build_network(wide_layers, blur)
    wide.load_weights(str(weights))
    batch = make_batch(np.random.default_rng(PRUNE_SEED), 64)["ref"]
    pruned = prune_network(wide, width, batch, blur=blur)
    layers = _layers_of(pruned)
    meta = {
        "version": f"{name}_pruned",
        "architecture": {
            "lcn_sigma": LCN_SIGMA,
            "layers": [list(layer) for layer in layers],
            "output_blur": blur,
        },
        "pruned_from": Path(weights).name,
        "prune_seed": PRUNE_SEED,
    }
    save_weights(pruned.save_weights, meta, start, mode=mode)
    tuned = train(
        out,
        seed=seed,
        steps=steps,
        learning_rate=learning_rate,
        initial_weights=start,
        name=name,
        mode=mode,
    )
    _calibrate(tuned, calibration_seed, calibration_scenes)
    return tuned


def _layers_of(network: Any) -> list[tuple[int, int]]:
    return [
        (int(layer.filters), int(layer.kernel_size[0]))
        for layer in network.layers
        if layer.name.startswith("conv")
    ]


def _calibrate(weights: Path, seed: int, scenes: int) -> None:
    """Fit both confidence models of ``weights`` and write them into its JSON."""
    from ...io.files import write_weights_meta
    from ...io.safety import weights_json
    from .calibrate import fit_calibration
    from .matcher import FUSION

    meta = json.loads(weights_json(weights).read_text())
    # one confidence model per searched surface: the learnt features alone, and the default mix
    for key, fusion in (("calibration", 1.0), ("calibration_fused", FUSION)):
        meta[key] = fit_calibration(str(weights), seed=seed, scenes=scenes, fusion=fusion)
    write_weights_meta(meta, weights, mode="w")  # the JSON train() has just written


def build_outputs(width: int = SHIPPED_WIDTH) -> tuple[str, ...]:
    """Names of the weights :func:`build_model` writes for ``width``, the final one last.

    Examples
    --------
    >>> build_outputs(8)
    ('trackoff_cnn_v2_wide', 'trackoff_cnn_v2_pruned', 'trackoff_cnn_v2')
    >>> build_outputs(16)
    ('trackoff_cnn_v2',)
    """
    if width == LAYERS[0][0]:
        return (MODEL_VERSION,)
    return (f"{MODEL_VERSION}_wide", f"{MODEL_VERSION}_pruned", MODEL_VERSION)


def build_model(
    out: str | Path = DEFAULT_OUT,
    *,
    seed: int = 0,
    steps: int = 3000,
    width: int = SHIPPED_WIDTH,
    tune_steps: int = TUNE_STEPS,
    calibration_seed: int = 1000,
    calibration_scenes: int = 96,
    mode: str = "w-",
) -> Path:
    """Train, prune, fine-tune, then calibrate the confidence: the recipe of the shipped weights.

    1. :func:`train` the 16-channel network for ``steps`` from ``seed``
       (written as ``<MODEL_VERSION>_wide``);
    2. :func:`prune_and_tune` it to ``width`` channels per hidden layer,
       ``tune_steps`` more steps from the same seed (``<MODEL_VERSION>_pruned``
       is the pruned start), and calibrate both confidences. ``width=16``
       skips the pruning: the wide network itself is calibrated and written
       as ``<MODEL_VERSION>``.

    The calibration (see :mod:`trackoff_xr.matchers.cnn.calibrate`) is fitted on scenes
    from ``calibration_seed``, disjoint from the training data, and written
    into the JSON beside the weights together with its held-out check.
    ``mode`` is as in :func:`train`: existing weights are refused (``"w-"``)
    or replaced only if trackoff_xr wrote them (``"w"``), checked before training.
    Measured (2 CPU cores, 2026-12-03): 3000 steps in 15-25 min, the pruning
    and 600 steps in 11 min.
    """
    from ...exceptions import InvalidParameterError

    wide_width = LAYERS[0][0]
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= wide_width:
        raise InvalidParameterError(
            f"width={width!r} is not a channel count in 1..{wide_width}; pass e.g. "
            f"width={SHIPPED_WIDTH} (the shipped network)"
        )
    for name in build_outputs(width):
        check_weights_output(out, name, mode=mode)  # all before minutes of training
    if width == wide_width:
        weights = train(out, seed=seed, steps=steps, mode=mode)
        _calibrate(weights, calibration_seed, calibration_scenes)
        return weights
    wide = train(out, seed=seed, steps=steps, name=f"{MODEL_VERSION}_wide", mode=mode)
    return prune_and_tune(
        wide,
        out,
        width=width,
        steps=tune_steps,
        seed=seed,
        calibration_seed=calibration_seed,
        calibration_scenes=calibration_scenes,
        mode=mode,
    )
