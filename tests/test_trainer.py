"""The compiled training iteration against a hand-written replay of the same iteration."""

import numpy as np
import pytest
import tensorflow as tf

from gan import data, layers, losses, networks, optimizers, trainer


def make_state(seed=0):
    tf.random.set_seed(seed)
    g, d = networks.make_networks("mlp", networks.NetworkConfig(latent_dim=8, g_hidden=(16, 32),
                                                                d_hidden=(32, 16)))
    return trainer.GANState(g, d, optimizers.SGD(0.05), optimizers.SGD(0.05), seed=seed)


def snapshot(module):
    return [v.numpy().copy() for v in module.variables]


def restore(module, values):
    for v, value in zip(module.variables, values):
        v.assign(value)


def sgd_step(loss_fn, variables, lr=0.05):
    with tf.GradientTape() as tape:
        loss = loss_fn()
    for v, g in zip(variables, tape.gradient(loss, variables)):
        v.assign_sub(lr * g)


def replay_iteration(state, rng, images, batch, latent, d_update, fake_bn):
    """One iteration written out step by step, drawing from `rng`, a copy of the state's RNG."""
    g, d = state.generator, state.discriminator
    real = data.sample_batch(images, batch, rng)
    z = rng.normal([batch, latent])
    fake = g(z, training=fake_bn == "train")
    d_vars = d.trainable_variables
    if d_update == "split":
        sgd_step(lambda: losses.minimax_d_real(d(real, True)), d_vars)
        sgd_step(lambda: losses.minimax_d_fake(d(fake, True)), d_vars)
    else:
        sgd_step(lambda: losses.minimax_d_loss(d(real, True), d(fake, True)), d_vars)
    z2 = rng.normal([batch, latent])
    sgd_step(lambda: losses.non_saturating_g_loss(d(g(z2, True), True)), g.trainable_variables)


@pytest.mark.parametrize("d_update,fake_bn,jit", [("split", "inference", True),
                                                  ("joint", "train", True),
                                                  ("split", "train", False),
                                                  ("joint", "inference", False)])
def test_iteration_matches_hand_written_replay(d_update, fake_bn, jit):
    images = tf.constant(data.load("mnist", "test").images[:512])
    config = trainer.TrainerConfig(batch_size=16, latent_dim=8, d_update=d_update,
                                   d_fake_batchnorm=fake_bn)
    state = make_state()
    start_g, start_d = snapshot(state.generator), snapshot(state.discriminator)

    # XLA draws other random numbers than the TF kernels do, so the replay compiles as the trainer.
    rng = tf.random.Generator.from_state(state.rng.state.numpy(), state.rng.algorithm)
    tf.function(replay_iteration, jit_compile=jit)(state, rng, images, 16, 8, d_update, fake_bn)
    expected_g, expected_d = snapshot(state.generator), snapshot(state.discriminator)
    restore(state.generator, start_g)
    restore(state.discriminator, start_d)

    metrics = trainer.Trainer(state, config, images, jit_compile=jit).run(1)
    for got, want in zip(snapshot(state.generator) + snapshot(state.discriminator),
                         expected_g + expected_d):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)
    assert state.step.numpy() == 1
    assert state.d_optimizer.iterations.numpy() == (2 if d_update == "split" else 1)
    assert state.g_optimizer.iterations.numpy() == 1
    assert 0 <= metrics["d_real_prob"] <= 1 and bool(metrics["all_finite"])


def test_inference_mode_fakes_leave_batchnorm_statistics_to_the_g_update():
    """With the seed's generator.predict, only the G update moves the moving averages: one
    update per iteration, vs two when D's fakes come from G in training mode."""
    images = tf.constant(data.load("mnist", "test").images[:256])
    moved = {}
    for mode in ("inference", "train"):
        state = make_state()
        bn = state.generator.norm_layers[0]
        bn.moving_mean.assign(tf.fill(bn.moving_mean.shape, 100.0))
        trainer.Trainer(state, trainer.TrainerConfig(batch_size=16, latent_dim=8,
                                                     d_fake_batchnorm=mode), images).run(1)
        moved[mode] = bn.moving_mean.numpy()
    # From 100, each update multiplies the distance to the batch mean (|mean| << 100) by 0.8.
    np.testing.assert_allclose(moved["inference"], 80.0, atol=2.0)
    np.testing.assert_allclose(moved["train"], 64.0, atol=2.0)


def test_d_steps_runs_several_discriminator_updates():
    images = tf.constant(data.load("mnist", "test").images[:256])
    state = make_state()
    trainer.Trainer(state, trainer.TrainerConfig(batch_size=8, latent_dim=8, d_steps=3),
                    images).run(2)
    assert state.d_optimizer.iterations.numpy() == 6 and state.g_optimizer.iterations.numpy() == 2


def test_run_of_n_iterations_in_one_call_equals_n_calls():
    images = tf.constant(data.load("mnist", "test").images[:256])
    config = trainer.TrainerConfig(batch_size=8, latent_dim=8)
    a, b = make_state(), make_state()
    trainer.Trainer(a, config, images).run(6)
    runner = trainer.Trainer(b, config, images)
    for _ in range(3):
        runner.run(2)
    for x, y in zip(a.variables, b.variables):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6)


def test_bad_config_names_list_choices():
    with pytest.raises(ValueError, match="valid choices"):
        trainer.TrainerConfig(d_update="both")
    with pytest.raises(ValueError, match="valid choices"):
        trainer.TrainerConfig(g_loss="nonsat")


class BatchStatisticsDiscriminator(tf.Module):
    """A discriminator whose logits depend on the whole batch (BatchNorm in training mode), so
    stacking real and fake into one batch would change them."""

    per_example = False

    def __init__(self):
        super().__init__(name="discriminator")
        self.hidden = layers.Dense(32, input_size=784)
        self.norm = layers.BatchNorm(num_features=32)
        self.out = layers.Dense(1, input_size=32)

    def __call__(self, images, training):
        h = self.norm(self.hidden(tf.reshape(images, [-1, 784])), training)
        return tf.squeeze(self.out(layers.leaky_relu(h)), axis=-1)


@pytest.mark.parametrize("per_example", [True, False])
def test_joint_step_stacks_real_and_fake_only_for_per_example_discriminators(per_example):
    """The joint D step runs D once on [real; fake] when D declares per_example, and once per half
    otherwise; either way the update equals the replay with two separate D calls."""
    images = tf.constant(data.load("mnist", "test").images[:512])
    config = trainer.TrainerConfig(batch_size=16, latent_dim=8, d_update="joint")
    state = make_state()
    if not per_example:
        tf.random.set_seed(1)
        d = BatchStatisticsDiscriminator()
        state = trainer.GANState(state.generator, d, optimizers.SGD(0.05), optimizers.SGD(0.05),
                                 seed=0)
    assert getattr(state.discriminator, "per_example", False) == per_example
    calls = []
    original_call = type(state.discriminator).__call__

    def counting_call(module, images, training):
        calls.append(int(images.shape[0]))
        return original_call(module, images, training)

    start_g, start_d = snapshot(state.generator), snapshot(state.discriminator)
    rng = tf.random.Generator.from_state(state.rng.state.numpy(), state.rng.algorithm)
    tf.function(replay_iteration, jit_compile=True)(state, rng, images, 16, 8, "joint", "train")
    expected = snapshot(state.generator) + snapshot(state.discriminator)
    restore(state.generator, start_g)
    restore(state.discriminator, start_d)

    type(state.discriminator).__call__ = counting_call
    try:
        trainer.Trainer(state, config, images).run(1)
    finally:
        type(state.discriminator).__call__ = original_call
    for got, want in zip(snapshot(state.generator) + snapshot(state.discriminator), expected):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)
    # D step (one stacked call of 32, or two of 16) then the G step's call of 16; the loop body
    # is traced a second time by tf.while_loop, so only the first iteration's calls are checked.
    expected_calls = [32, 16] if per_example else [16, 16, 16]
    assert calls[:len(expected_calls)] == expected_calls
