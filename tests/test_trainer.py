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


def replay_iteration(state, rng, images, config, lazy_factor=1.0):
    """One iteration written out step by step from the losses and penalties registries, drawing
    from `rng`, a copy of the state's RNG, in the order the trainer draws. `lazy_factor`: what
    the penalties are multiplied by at this step (k when due every k steps, else 0)."""
    g, d = state.generator, state.discriminator
    d_loss = losses.get_d_loss(config.d_loss, config.label_smoothing)
    g_loss = losses.get_g_loss(config.g_loss)
    batch, latent = config.batch_size, config.latent_dim
    real = data.sample_batch(images, batch, rng)
    z = rng.normal([batch, latent])
    fake = g(z, training=config.d_fake_batchnorm == "train")

    def penalties(uses_fake):
        terms = [weight * lazy_factor * losses.PENALTIES[name].function(d, real, fake, rng)
                 for name, weight in config.penalties
                 if uses_fake is None or losses.PENALTIES[name].uses_fake == uses_fake]
        return sum(terms) if terms and lazy_factor else 0.0

    d_vars = d.trainable_variables
    if config.d_update == "split":
        sgd_step(lambda: d_loss.real_term(d(real, True)) + penalties(False), d_vars)
        clip(d_vars, config.weight_clip)
        sgd_step(lambda: d_loss.fake_term(d(fake, True)) + penalties(True), d_vars)
    else:
        sgd_step(lambda: sum(d_loss(d(real, True), d(fake, True)).values()) + penalties(None),
                 d_vars)
    clip(d_vars, config.weight_clip)
    z2 = rng.normal([batch, latent])
    real2 = data.sample_batch(images, batch, rng) if g_loss.needs_real_logits else None
    sgd_step(lambda: g_loss(d(g(z2, True), True), None if real2 is None else d(real2, True)),
             g.trainable_variables)


def clip(variables, limit):
    if limit:
        for v in variables:
            v.assign(tf.clip_by_value(v, -limit, limit))


def assert_trainer_matches_replay(state, images, config, jit):
    start_g, start_d = snapshot(state.generator), snapshot(state.discriminator)
    # XLA draws other random numbers than the TF kernels do, so the replay compiles as the trainer.
    rng = tf.random.Generator.from_state(state.rng.state.numpy(), state.rng.algorithm)
    due = int(state.step.numpy()) % config.penalty_every == 0
    tf.function(replay_iteration, jit_compile=jit)(state, rng, images, config,
                                                   float(config.penalty_every) if due else 0.0)
    expected_g, expected_d = snapshot(state.generator), snapshot(state.discriminator)
    restore(state.generator, start_g)
    restore(state.discriminator, start_d)

    metrics = trainer.Trainer(state, config, images, jit_compile=jit).run(1)
    for got, want in zip(snapshot(state.generator) + snapshot(state.discriminator),
                         expected_g + expected_d):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)
    return metrics


REPLAY_CASES = {
    "seed quirks, split + inference BN": (dict(d_update="split", d_fake_batchnorm="inference"),
                                          True),
    "joint + train BN": (dict(d_update="joint", d_fake_batchnorm="train"), True),
    "split + train BN, no XLA": (dict(d_update="split", d_fake_batchnorm="train"), False),
    "joint + inference BN, no XLA": (dict(d_update="joint", d_fake_batchnorm="inference"), False),
    "WGAN-GP + R1, joint": (dict(d_loss="wasserstein", g_loss="wasserstein",
                                 penalties=(("gp", 10.0), ("r1", 1.0))), True),
    "R1 + R2 + DRAGAN, split, no XLA": (dict(d_update="split", penalties=(
        ("r1", 0.5), ("r2", 2.0), ("dragan", 1.0))), False),
    "lazy R1 every 2 (due at step 0)": (dict(penalties=(("r1", 3.0),), penalty_every=2), True),
    "WGAN with weight clipping, no XLA": (dict(d_loss="wasserstein", g_loss="wasserstein",
                                               weight_clip=0.02), False),
    "RaGAN": (dict(d_loss="relativistic_average", g_loss="relativistic_average"), True),
    "RSGAN, no XLA": (dict(d_loss="relativistic", g_loss="relativistic"), False),
    "hinge": (dict(d_loss="hinge", g_loss="hinge"), True),
    "least squares": (dict(d_loss="least_squares", g_loss="least_squares"), True),
    "label smoothing, split": (dict(label_smoothing=0.2, d_update="split"), True),
}


@pytest.mark.parametrize("case", sorted(REPLAY_CASES))
def test_iteration_matches_hand_written_replay(case):
    settings, jit = REPLAY_CASES[case]
    images = tf.constant(data.load("mnist", "test").images[:512])
    config = trainer.TrainerConfig(batch_size=16, latent_dim=8, **settings)
    state = make_state()
    metrics = assert_trainer_matches_replay(state, images, config, jit)
    assert state.step.numpy() == 1
    assert state.d_optimizer.iterations.numpy() == (2 if config.d_update == "split" else 1)
    assert state.g_optimizer.iterations.numpy() == 1
    assert bool(metrics["all_finite"])
    if config.weight_clip:
        assert max(np.abs(v.numpy()).max() for v in state.discriminator.trainable_variables) <= (
            config.weight_clip)
    for name, _ in config.penalties:
        assert float(metrics[f"penalty_{name}"]) > 0


def test_lazy_penalty_is_skipped_between_due_steps():
    """penalty_every=2: at step 1 no penalty enters the update (the replay without it matches)
    and the logged value is 0; at step 2 it counts twice."""
    images = tf.constant(data.load("mnist", "test").images[:512])
    config = trainer.TrainerConfig(batch_size=16, latent_dim=8, penalties=(("r1", 3.0),),
                                   penalty_every=2)
    state = make_state()
    state.step.assign(1)
    metrics = assert_trainer_matches_replay(state, images, config, jit=False)
    assert float(metrics["penalty_r1"]) == 0.0
    due = assert_trainer_matches_replay(state, images, config, jit=False)
    assert float(due["penalty_r1"]) > 0


@pytest.mark.parametrize("d_loss,g_loss", [("minimax", "non_saturating"), ("hinge", "hinge")])
def test_diagnostics_fit_the_loss(d_loss, g_loss):
    """Probabilities and accuracies only where the logits are log-odds; logits and their gap
    for every loss, equal to what D gives on the batch."""
    images = tf.constant(data.load("mnist", "test").images[:512])
    config = trainer.TrainerConfig(batch_size=16, latent_dim=8, d_loss=d_loss, g_loss=g_loss)
    metrics = trainer.Trainer(make_state(), config, images).run(3)
    has_probabilities = losses.D_LOSSES[d_loss].probabilities
    for name in ("d_real_prob", "d_fake_prob", "d_real_accuracy", "d_fake_accuracy"):
        assert (name in metrics) == has_probabilities, name
    np.testing.assert_allclose(metrics["d_logit_gap"],
                               metrics["d_real_logit"] - metrics["d_fake_logit"], rtol=1e-5)
    assert float(metrics["g_logit_grad"]) > 0


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
    tf.function(replay_iteration, jit_compile=True)(state, rng, images, config)
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
