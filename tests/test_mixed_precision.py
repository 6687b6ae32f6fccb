"""Mixed precision (--mixed_precision=bfloat16|float16): the networks compute in 16 bits on float32
variables and return float32; the normalizations keep float32 statistics; float16 training
scales its losses dynamically, skipping the updates whose gradients overflow; the float32 path
is unchanged; a bfloat16 run trains on MNIST and checkpoints like any other."""

import numpy as np
import pytest
import tensorflow as tf

from gan import config as config_lib
from gan import step as step_lib
from gan import build, data, layers, networks, optimizers, penalties, rundir
from gan import run as run_lib
import helpers
from helpers import scalar_events

LOW = [tf.bfloat16, tf.float16]


def rounded(x, dtype):
    """x as the 16-bit dtype holds it, back in float64 for NumPy."""
    return tf.cast(tf.cast(x, dtype), tf.float64).numpy()


@pytest.mark.parametrize("dtype", LOW)
def test_dense_computes_in_its_input_dtype_on_float32_weights(dtype):
    dense = layers.Dense(8, input_size=5)
    x = tf.random.stateless_normal([4, 5], seed=[0, 1])
    y = dense(tf.cast(x, dtype))
    assert y.dtype == dtype and dense.kernel.dtype == tf.float32
    # The product of the rounded operands, to the output dtype's precision (8 bits for bf16).
    expected = rounded(x, dtype) @ rounded(dense.kernel, dtype)
    np.testing.assert_allclose(tf.cast(y, tf.float64).numpy(), expected,
                               rtol=2 ** -7, atol=2 ** -7)


@pytest.mark.parametrize("dtype", LOW)
def test_normalizations_take_float32_statistics_of_low_precision_input(dtype):
    # Features far from zero with a small spread: what 16-bit statistics would get wrong.
    x = 100.0 + tf.random.stateless_normal([64, 3], seed=[2, 3])
    x_low = tf.cast(x, dtype)
    x64 = rounded(x, dtype)
    batchnorm = layers.BatchNorm(momentum=0.0, num_features=3)
    y = batchnorm(x_low, training=True)
    assert y.dtype == dtype and batchnorm.moving_mean.dtype == tf.float32
    np.testing.assert_allclose(batchnorm.moving_mean.numpy(), x64.mean(0), rtol=1e-6)
    np.testing.assert_allclose(batchnorm.moving_variance.numpy(), x64.var(0), rtol=1e-4)
    normalized = (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-3)
    np.testing.assert_allclose(tf.cast(y, tf.float64).numpy(), normalized, atol=0.03)

    layernorm = layers.LayerNorm(num_features=3)
    y = layernorm(x_low)
    assert y.dtype == dtype
    rows = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(tf.cast(y, tf.float64).numpy(), rows, atol=0.03)


@pytest.mark.parametrize("architecture", sorted(networks.ARCHITECTURES))
@pytest.mark.parametrize("compute_dtype", ["bfloat16", "float16"])
def test_networks_return_float32_close_to_their_float32_selves(architecture, compute_dtype):
    small = dict(g_hidden=(32, 64), d_hidden=(64, 32), width=4, d_width=4, d_norm="batch",
                 num_classes=10)
    tf.random.set_seed(0)
    g32, d32 = networks.make_networks(architecture, helpers.network_config(**small))
    tf.random.set_seed(0)
    g16, d16 = networks.make_networks(
        architecture, helpers.network_config(**small, compute_dtype=compute_dtype))
    assert all(v.dtype == tf.float32 for v in g16.variables + d16.variables)
    for a, b in zip(g32.variables + d32.variables, g16.variables + d16.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # same seed, same float32 weights
    z = tf.random.stateless_normal([8, 100], seed=[4, 5])
    labels = tf.range(8) % 10
    images32 = g32(z, training=False, labels=labels)
    images16 = g16(z, training=False, labels=labels)
    assert images16.dtype == tf.float32
    np.testing.assert_allclose(images16.numpy(), images32.numpy(), atol=0.05)
    logits32 = d32(images32, training=True, labels=labels)
    logits16 = d16(images32, training=True, labels=labels)
    assert logits16.dtype == tf.float32
    error = np.abs(logits16.numpy() - logits32.numpy()).max()
    assert error <= 0.05 * (1 + np.abs(logits32.numpy()).max()), error


def test_the_loss_scale_follows_its_schedule():
    scale = optimizers.DynamicLossScale(initial_scale=8.0, growth_interval=3)
    expected, good = 8.0, 0
    for finite in [True, True, True, True, False, False, True, True, True] + [False] * 5:
        scale.update(tf.constant(finite))
        # The schedule written out: halve (not below 1) on overflow, double after 3 good steps.
        if not finite:
            expected, good = max(expected / 2, 1.0), 0
        elif good + 1 >= 3:
            expected, good = expected * 2, 0
        else:
            good += 1
        assert scale.scale.numpy() == expected and scale.good_steps.numpy() == good


def small_state(mixed_precision, **overrides):
    run = config_lib.RunConfig().replace(g_hidden=(32,), d_hidden=(32,), batch_size=16,
                                         mixed_precision=mixed_precision, **overrides)
    return run, build.make_state(run)


def test_float16_skips_an_overflowing_update_and_halves_its_scale():
    run, state = small_state("float16")
    images = data.load("mnist", "test").images[:256]
    runner = step_lib.Trainer(state, run, images, jit_compile=False)
    runner.run(1)
    assert state.d_loss_scale.scale.numpy() == 2.0 ** 15
    # A scale whose product with D's loss gradient overflows float16 (max 65504) at D's output.
    state.d_loss_scale.scale.assign(2.0 ** 40)
    before = [v.numpy() for v in state.discriminator.trainable_variables]
    d_updates = state.d_optimizer.iterations.numpy()
    metrics = runner.run(1)
    assert bool(metrics["all_finite"]), "an overflow skip is not a divergence"
    assert metrics["d_grad_norm"].numpy() == 0.0
    assert state.d_loss_scale.scale.numpy() == 2.0 ** 39
    assert state.d_optimizer.iterations.numpy() == d_updates  # the update was skipped
    for old, variable in zip(before, state.discriminator.trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())
    # G's own scale was fine: G was updated.
    assert state.g_loss_scale.scale.numpy() == 2.0 ** 15


def test_float16_penalties_take_d_input_gradients_through_the_loss_scale():
    # D's logits times 1e-7 (in float32, outside the network): the gradient entering D's float16
    # backward pass is then below float16's normal range, as a small loss weight makes it.
    discriminators = {}
    for dtype in ("float32", "float16"):
        tf.random.set_seed(0)
        _, d = networks.make_networks(
            "mlp", helpers.network_config(d_hidden=(64, 32), compute_dtype=dtype))
        discriminators[dtype] = lambda x, training, d=d: 1e-7 * d(x, training=training)
    real = tf.constant(data.load("mnist", "test").images[:16])
    exact = penalties.input_gradients(discriminators["float32"], real).numpy()

    def relative_error(scale):
        got = penalties.input_gradients(discriminators["float16"], real, scale).numpy()
        return np.linalg.norm(got - exact) / np.linalg.norm(exact)
    assert relative_error(tf.constant(2.0 ** 15)) < 0.01
    assert relative_error(None) > 0.1  # what the scale saves
    r1 = {dtype: penalties.r1_penalty(discriminators[dtype], real, real, None,
                                   gradient_scale=tf.constant(2.0 ** 15) if dtype == "float16"
                                   else None).numpy() for dtype in discriminators}
    assert r1["float16"] == pytest.approx(r1["float32"], rel=0.01)


def test_the_trainer_hands_penalties_d_loss_scale(monkeypatch):
    scales = []
    original = penalties.input_gradients

    def recording(discriminator, inputs, scale=None):
        scales.append(scale)
        return original(discriminator, inputs, scale)
    monkeypatch.setattr(penalties, "input_gradients", recording)
    for precision in ("float16", "none"):
        run, state = small_state(precision, r1_weight=1.0, d_loss="minimax")
        metrics = step_lib.Trainer(state, run,
                                   data.load("mnist", "test").pixels[:256], jit_compile=False).run(1)
        assert bool(metrics["all_finite"]) and metrics["penalty_r1"].numpy() > 0
        if precision == "float16":
            assert float(scales[-1]) == 2.0 ** 15
        else:
            assert scales[-1] is None


@pytest.mark.parametrize("mixed_precision", ["bfloat16", "float16"])
def test_one_low_precision_step_follows_the_float32_gradient(mixed_precision):
    """From the same state and batch, one SGD step in 16 bits moves the weights along the float32
    step's direction (loss scaling included for float16)."""
    images = data.load("mnist", "test").images[:256]
    moves = {}
    for precision in ("none", mixed_precision):
        run, state = small_state(precision, g_optimizer="sgd", d_optimizer="sgd")
        before = [v.numpy() for v in state.discriminator.trainable_variables
                  + state.generator.trainable_variables]
        step_lib.Trainer(state, run, images,
                         jit_compile=False).run(1)
        after = [v.numpy() for v in state.discriminator.trainable_variables
                 + state.generator.trainable_variables]
        moves[precision] = np.concatenate([(b - a).ravel() for a, b in zip(before, after)])
    cosine = moves["none"] @ moves[mixed_precision] / (
        np.linalg.norm(moves["none"]) * np.linalg.norm(moves[mixed_precision]))
    assert cosine > 0.99, cosine


def test_a_bfloat16_run_trains_on_mnist_and_resumes(tmp_path):
    logdir = str(tmp_path / "bf16")
    settings = dict(g_hidden=(64, 128), d_hidden=(128, 64), batch_size=32, num_steps=200,
                    log_every=50, sample_every=1000, checkpoint_every=100, eval_every=0,
                    steps_per_loop=50, mixed_precision="bfloat16", jit_compile="false")
    run = config_lib.RunConfig().replace(**settings).validate()
    result = run_lib.train(run, logdir)
    assert result.step == 200
    saved, state, _ = rundir.load_run(logdir)
    assert saved.runtime.mixed_precision == "bfloat16"
    assert state.generator.compute_dtype == tf.bfloat16
    assert all(v.dtype == tf.float32 for v in state.variables if v.dtype.is_floating)
    # D has learned, in bfloat16, to tell MNIST digits from G's samples (its loss falls from near
    # 1.39 = 2 ln 2, that of a D that cannot, to about 0.2 by step 200 in this configuration).
    images = data.load("mnist", "test").images[:512]
    z = tf.random.stateless_normal([512, 100], seed=[6, 7])
    fakes = state.generator(z, training=False)
    real_logits = state.discriminator(images, training=False).numpy()
    fake_logits = state.discriminator(fakes, training=False).numpy()
    assert real_logits.mean() > fake_logits.mean() + 1.0
    d_losses = scalar_events(logdir)["train/d_loss"]
    assert d_losses[200] < 0.5 * d_losses[50], d_losses
    # Resumes in bfloat16 to a longer budget.
    result = run_lib.train(run.replace(num_steps=250), logdir)
    assert result.step == 250


def test_float16_and_float32_checkpoints_do_not_mix():
    old = config_lib.RunConfig()
    lines = build.structural_differences(old, old.replace(mixed_precision="float16"))
    assert len(lines) == 1 and "mixed_precision" in lines[0] and "loss scale" in lines[0]
    assert not build.structural_differences(old, old.replace(mixed_precision="bfloat16"))


def test_the_default_leaves_a_runs_identity_alone():
    default = config_lib.RunConfig()
    assert "mixed_precision" not in default.to_flagfile(identity=True)
    assert "--mixed_precision=bfloat16" in default.replace(
        mixed_precision="bfloat16").to_flagfile(identity=True)
