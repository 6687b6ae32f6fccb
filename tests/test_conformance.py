"""Conformance over the registries themselves: every architecture (unconditional and conditional,
under every normalization), every loss and penalty, and every optimizer works eagerly and under
XLA alike, survives a checkpoint round trip, trains a finite step that changes exactly what it
should, and (generators) exports to a SavedModel. A new registry entry is covered without editing
this file. Networks are tiny: the point is the contract, not the quality."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from gan import config, data, distribute, export, losses, networks, normalizations, optimizers
from gan import penalties
from gan import state as state_lib
from gan import step as step_lib
import helpers
from helpers import assert_same_images

NETWORK_CASES = [(architecture, conditional)
                 for architecture in sorted(networks.ARCHITECTURES)
                 for conditional in (False, True)]
NORM_CASES = [(architecture, norm) for architecture in sorted(networks.ARCHITECTURES)
              for norm in normalizations.NORMALIZATIONS]


def tiny_config(conditional=False, **overrides):
    return helpers.network_config(latent_dim=6, g_hidden=(8, 16), d_hidden=(16, 8), width=2,
                                  d_width=2, num_classes=10 if conditional else 0, **overrides)


def tiny_state(architecture, conditional=False, ema=True, seed=0, g_optimizer="adam",
               d_optimizer="adam", **overrides):
    tf.random.set_seed(seed)
    config = tiny_config(conditional, **overrides)
    g, d = networks.make_networks(architecture, config)
    g_ema = networks.make_generator(architecture, config) if ema else None
    return state_lib.GANState(g, d, optimizers.make_optimizer(g_optimizer, 1e-2),
                              optimizers.make_optimizer(d_optimizer, 1e-2), seed=seed,
                              generator_ema=g_ema)


def inputs(state, batch=4):
    z = tf.random.stateless_normal([batch, state.generator.latent_dim], seed=[1, 2])
    labels = tf.constant([0, 3, 9, 3][:batch]) if state.generator.num_classes else None
    return z, labels


def outputs(state):
    """G's, G's average's and D's outputs on fixed inputs, in inference mode."""
    z, labels = inputs(state)
    images = state.generator(z, training=False, labels=labels)
    return [images, state.sampling_generator(z, training=False, labels=labels),
            state.discriminator(images, training=False, labels=labels)]


TRAINING_IMAGES = None


def training_data():
    global TRAINING_IMAGES
    if TRAINING_IMAGES is None:
        test = data.load("mnist", "test")
        TRAINING_IMAGES = (test.images[:256], test.labels[:256])
    return TRAINING_IMAGES


@pytest.mark.parametrize("architecture,conditional", NETWORK_CASES)
def test_networks_eager_equals_xla(architecture, conditional):
    state = tiny_state(architecture, conditional)
    z, labels = inputs(state)
    for training in (False, True):
        def run(z, labels=labels, training=training):
            images = state.generator(z, training=training, labels=labels)
            return images, state.discriminator(images, training=training, labels=labels)
        snapshot = [v.numpy() for v in state.variables]
        eager = run(z)
        for v, value in zip(state.variables, snapshot):  # training mode moves statistics
            v.assign(value)
        compiled = tf.function(run, jit_compile=True)(z)
        for a, b in zip(eager, compiled):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("architecture,conditional", NETWORK_CASES)
def test_checkpoint_round_trip_restores_identical_outputs(architecture, conditional, tmp_path):
    state = tiny_state(architecture, conditional)
    # Every float variable (weights, statistics, u, slots, the average) gets values of its own
    # (positive, so that BatchNorm variances stay valid),
    # as after training, without paying for a compiled step.
    rng = np.random.default_rng(0)
    for v in state.variables:
        if v.dtype.is_floating:
            v.assign(rng.uniform(0.1, 0.5, v.shape).astype(v.dtype.as_numpy_dtype))
    state.step.assign(2)
    path = tf.train.Checkpoint(state=state).write(str(tmp_path / "ckpt"))
    other = tiny_state(architecture, conditional, seed=7)
    assert any(np.abs(a.numpy() - b.numpy()).max() > 0 for a, b in zip(outputs(state),
                                                                       outputs(other)))
    tf.train.Checkpoint(state=other).read(path).assert_consumed()
    for a, b in zip(outputs(state), outputs(other)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(other.step.numpy()) == 2


def changed(before, after):
    return [bool(np.any(a != b)) for a, b in zip(before, after)]


def assert_step_changes_exactly_what_it_should(state, config, labels=None):
    """After one iteration: nothing moves outside G, D, their optimizers' slots and counters, the
    step, the RNG and (when on) G's average; every BatchNorm moving statistic and spectral-norm u
    moves; G, D, both optimizers and the average each move. (A single weight may legitimately
    stay put: e.g. with the hinge loss at initialisation, D's first bias gets exactly opposite
    gradients from the real and the fake half of the batch.)"""
    images, all_labels = training_data()
    g, d = state.generator, state.discriminator
    everything = list(state.variables)
    if all(v is not state.rng.state for v in everything):
        everything.append(state.rng.state)  # tf.Module does not list a tf.random.Generator's
    before = {id(v): v.numpy().copy() for v in everything}
    metrics = step_lib.Trainer(state, config, images, all_labels if labels else None,
                               jit_compile=False).run(1)
    assert bool(metrics["all_finite"])
    for name, value in metrics.items():
        assert np.all(np.isfinite(value.numpy())), name
    moved = {id(v) for v in everything if np.any(v.numpy() != before[id(v)])}
    names = {id(v): v.name for v in everything}
    groups = {"G": g.trainable_variables, "D": d.trainable_variables,
              "G's optimizer": state.g_optimizer.variables,
              "D's optimizer": state.d_optimizer.variables, "step and RNG": [state.step,
                                                                          state.rng.state]}
    if config.model.g_ema_decay > 0:
        groups["G's average"] = state.generator_ema.variables
    statistics = [v for network in (g, d) for v in network.variables if not v.trainable]
    allowed = {id(v) for group in groups.values() for v in group} | {id(v) for v in statistics}
    allowed -= {id(state.g_optimizer.learning_rate), id(state.d_optimizer.learning_rate)}
    assert moved <= allowed, sorted(names[i] for i in moved - allowed)
    for group, variables in groups.items():
        assert any(id(v) in moved for v in variables), f"nothing of {group} moved"
    # (Spectral norm's u of a 1-unit output layer is always the unit scalar: it cannot move.)
    assert all(id(v) in moved for v in statistics if v.shape.num_elements() > 1), sorted(
        v.name for v in statistics if id(v) not in moved)


@pytest.mark.parametrize("architecture,norm", NORM_CASES)
def test_training_step_under_every_normalization(architecture, norm):
    state = tiny_state(architecture, g_norm=norm, d_norm=norm)
    assert_step_changes_exactly_what_it_should(
        state, helpers.run_config(batch_size=4, latent_dim=6, g_ema_decay=0.9))


@pytest.mark.parametrize("architecture,conditional", NETWORK_CASES)
def test_generator_exports_to_a_savedmodel_plain_tensorflow_samples(architecture, conditional,
                                                                    tmp_path):
    state = tiny_state(architecture, conditional)
    export.export(state.sampling_generator, 6, str(tmp_path / "saved"))
    model = tf.saved_model.load(str(tmp_path / "saved"))
    z, labels = inputs(state)
    args = (z,) if labels is None else (z, tf.cast(labels, tf.int32))
    got = model.generate(*args).numpy()
    want = np.clip(np.round((state.sampling_generator(z, training=False, labels=labels).numpy()
                             + 1) * 127.5), 0, 255).astype(np.uint8)
    assert_same_images(got, want)
    assert int(model.num_classes.numpy()) == state.generator.num_classes


# --- losses and penalties -------------------------------------------------------------------------

def loss_pairs():
    """Few (d_loss, g_loss) pairs that cover every entry of both registries with combinations the
    losses' own rules accept (a Wasserstein critic gets its gradient penalty): same-named pairs
    first, then the first accepted partner of whatever is left."""
    penalties = {"gp": 10.0}

    def accepted(d_name, g_name):
        errors, unstable = losses.combination_problems(d_name, g_name, penalties)
        return not errors and not unstable
    pairs = [(name, name) for name in sorted(losses.D_LOSSES)
             if name in losses.G_LOSSES and accepted(name, name)]
    for d_name, g_name in itertools.product(sorted(losses.D_LOSSES), sorted(losses.G_LOSSES)):
        if accepted(d_name, g_name) and (d_name not in {d for d, _ in pairs}
                                         or g_name not in {g for _, g in pairs}):
            pairs.append((d_name, g_name))
    assert {d for d, _ in pairs} == set(losses.D_LOSSES)
    assert {g for _, g in pairs} == set(losses.G_LOSSES)
    return pairs


@pytest.mark.parametrize("name", sorted(losses.D_LOSSES))
def test_d_losses_eager_equal_xla(name):
    loss = losses.get_d_loss(name)
    real, fake = tf.random.normal([16], seed=1), tf.random.normal([16], seed=2)
    eager = loss(real, fake)
    compiled = tf.function(loss, jit_compile=True)(real, fake)
    for part in eager:
        np.testing.assert_allclose(eager[part].numpy(), compiled[part].numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(losses.G_LOSSES))
def test_g_losses_eager_equal_xla(name):
    loss = losses.get_g_loss(name)
    real, fake = tf.random.normal([16], seed=1), tf.random.normal([16], seed=2)
    np.testing.assert_allclose(loss(fake, real).numpy(),
                               tf.function(loss, jit_compile=True)(fake, real).numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(penalties.PENALTIES))
def test_penalties_eager_equal_xla(name):
    """Eager and XLA agree for the same random draws. XLA's random-number kernels draw other
    numbers than TensorFlow's, so a penalty that draws (interpolates, perturbations) is compared
    for the draws of each mode: repeatable from the same RNG state, and equal across modes when
    it draws nothing."""
    state = tiny_state("mlp", ema=False)
    images, _ = training_data()
    real, fake = tf.constant(images[:8]), tf.constant(images[8:16]) * 0.5
    rng = tf.random.Generator.from_seed(3)

    def value():
        return penalties.PENALTIES[name].function(state.discriminator, real, fake, rng)
    compiled = tf.function(value, jit_compile=True)
    results = {}
    for mode, run in (("eager", value), ("xla", compiled)):
        rng.reset_from_seed(3)
        first = float(run())
        rng.reset_from_seed(3)
        assert float(run()) == pytest.approx(first, rel=1e-6), mode
        assert np.isfinite(first) and first > 0, mode
        results[mode] = first
    if not draws_noise(penalties.PENALTIES[name]):
        assert results["eager"] == pytest.approx(results["xla"], rel=1e-4)


@pytest.mark.parametrize("d_loss,g_loss", loss_pairs())
def test_training_step_with_every_loss(d_loss, g_loss):
    config = helpers.run_config(batch_size=4, latent_dim=6, d_loss=d_loss, g_loss=g_loss,
                                penalties=(("gp", 10.0),) if d_loss == "wasserstein" else ())
    assert_step_changes_exactly_what_it_should(tiny_state("mlp", ema=False), config)


@pytest.mark.parametrize("name", sorted(penalties.PENALTIES))
def test_training_step_with_every_penalty(name):
    config = helpers.run_config(batch_size=4, latent_dim=6, penalties=((name, 1.0),))
    state = tiny_state("dcgan", conditional=True, ema=False, d_norm="spectral")
    assert_step_changes_exactly_what_it_should(state, config, labels=True)


# --- optimizers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(optimizers.OPTIMIZERS))
def test_optimizers_eager_equal_xla_and_round_trip_their_slots(name, tmp_path):
    def fresh():
        optimizer = optimizers.make_optimizer(name, 0.1, momentum=0.9)
        variable = tf.Variable([1.0, -2.0, 3.0])
        optimizer.build([variable])
        return optimizer, variable
    grads = [tf.constant([0.5, -1.0, 0.25]), tf.constant([0.1, 0.2, -0.3])]
    eager, compiled = fresh(), fresh()
    step = tf.function(lambda g: compiled[0].apply([g], [compiled[1]]), jit_compile=True)
    for grad in grads:
        eager[0].apply([grad], [eager[1]])
        step(grad)
        np.testing.assert_allclose(eager[1].numpy(), compiled[1].numpy(), rtol=1e-6)
    path = tf.train.Checkpoint(optimizer=eager[0], variable=eager[1]).write(str(tmp_path / "c"))
    restored = fresh()
    tf.train.Checkpoint(optimizer=restored[0], variable=restored[1]).read(path).assert_consumed()
    eager[0].apply([grads[0]], [eager[1]])
    restored[0].apply([grads[0]], [restored[1]])
    np.testing.assert_array_equal(eager[1].numpy(), restored[1].numpy())


@pytest.mark.parametrize("name", sorted(optimizers.OPTIMIZERS))
def test_training_step_with_every_optimizer(name):
    state = tiny_state("mlp", ema=False, g_optimizer=name, d_optimizer=name)
    assert_step_changes_exactly_what_it_should(
        state, helpers.run_config(batch_size=4, latent_dim=6))


# --- tf.distribute: two replicas compute what one device computes ----------------------------------

def mirrored_strategy():
    """MirroredStrategy over the two logical CPUs that conftest makes: gan.train's own, as
    `--strategy=mirrored --cpu_replicas=2` makes it (one per process, see gan.distribute)."""
    if len(tf.config.list_logical_devices("CPU")) != 2:
        pytest.skip("needs 2 logical CPU devices (GAN_TEST_CPU_REPLICAS=1 turns them off)")
    return distribute.make_strategy(
        config.RunConfig().replace(strategy="mirrored", cpu_replicas=2).runtime)


def draws_noise(penalty):
    """Whether a penalty draws random numbers (WGAN-GP's interpolates, DRAGAN's perturbations):
    under several replicas each draws its own, so its values cannot match one device's."""
    state = tiny_state("mlp", ema=False)
    images, _ = training_data()
    rng = tf.random.Generator.from_seed(3)
    before = rng.state.numpy().copy()
    penalty.function(state.discriminator, tf.constant(images[:4]), tf.constant(images[4:8]), rng)
    return bool(np.any(rng.state.numpy() != before))


def assert_mirrored_step_matches_one_device(make_state, config, labels=False, iterations=1):
    """An iteration (or more) from the same initial state, on one device and under
    MirroredStrategy over 2 replicas (each half the global batch), give the same weights,
    optimizer slots, BatchNorm statistics and metrics, up to float rounding. With a penalty that
    draws noise, the first iteration's D verdicts (computed before any noise is drawn) match,
    and everything stays finite."""
    images, all_labels = training_data()
    noisy = any(draws_noise(penalties.PENALTIES[name]) for name, _ in config.game.active_penalties())
    results = []
    for strategy in (tf.distribute.get_strategy(), mirrored_strategy()):
        with strategy.scope():
            state = make_state()
        run = step_lib.Trainer(state, config, images, all_labels if labels else None,
                               jit_compile=False, strategy=strategy)
        # Eagerly: the same Python code and all-reduces as the compiled loop (which
        # test_distribute runs under both strategies through gan.train), without the ~15 s
        # that tracing and placing a mirrored graph costs for each of these cases.
        with strategy.scope():
            for _ in range(1 if noisy else iterations):
                metrics = {name: value.numpy() for name, value in run._iteration(run.images).items()}
        results.append(([(v.name, v.numpy()) for v in state.variables], metrics))
    (one_vars, one_metrics), (two_vars, two_metrics) = results
    assert all(np.all(np.isfinite(value)) for value in two_metrics.values())
    if noisy:
        for name in ("d_real_logit", "d_fake_logit"):
            np.testing.assert_allclose(two_metrics[name], one_metrics[name], rtol=1e-5,
                                       atol=1e-6, err_msg=name)
        return
    for (name, one), (_, two) in zip(one_vars, two_vars):
        np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-5, err_msg=name)
    for name, one in one_metrics.items():
        np.testing.assert_allclose(two_metrics[name], one, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("architecture,conditional", NETWORK_CASES)
def test_mirrored_step_matches_one_device_for_every_network(architecture, conditional):
    """Synchronized BatchNorm in G (always) and in D (unconditional: d_norm=batch), spectral
    norm's u and the split D update with G's BatchNorm in inference mode (the seed's scheme;
    conditional), and G's moving average."""
    d_norm = "spectral" if conditional else "batch"
    config = helpers.run_config(batch_size=8, latent_dim=6, g_ema_decay=0.9,
                                d_update="split" if conditional else "joint",
                                d_fake_batchnorm="inference" if conditional else "train")
    assert_mirrored_step_matches_one_device(
        lambda: tiny_state(architecture, conditional, d_norm=d_norm, g_optimizer="sgd",
                           d_optimizer="sgd"), config, labels=conditional)


@pytest.mark.parametrize("d_loss,g_loss", loss_pairs())
def test_mirrored_step_matches_one_device_for_every_loss(d_loss, g_loss):
    """RaGAN's batch means are taken over the global batch."""
    config = helpers.run_config(batch_size=8, latent_dim=6, d_loss=d_loss, g_loss=g_loss,
                                penalties=(("r1", 1.0),) if d_loss == "wasserstein" else ())
    assert_mirrored_step_matches_one_device(
        lambda: tiny_state("mlp", ema=False, g_optimizer="sgd", d_optimizer="sgd"), config)


@pytest.mark.parametrize("name", sorted(penalties.PENALTIES))
def test_mirrored_step_matches_one_device_for_every_penalty(name):
    """Lazily (every 2nd iteration), with D's BatchNorm synchronized inside the penalty."""
    config = helpers.run_config(batch_size=8, latent_dim=6, penalties=((name, 1.0),),
                                penalty_every=2)
    assert_mirrored_step_matches_one_device(
        lambda: tiny_state("mlp", ema=False, d_norm="batch", g_optimizer="sgd",
                           d_optimizer="sgd"), config)


@pytest.mark.parametrize("name", sorted(optimizers.OPTIMIZERS))
def test_mirrored_step_matches_one_device_for_every_optimizer(name):
    assert_mirrored_step_matches_one_device(
        lambda: tiny_state("mlp", ema=False, g_optimizer=name, d_optimizer=name),
        helpers.run_config(batch_size=8, latent_dim=6))


def test_unsynchronized_batchnorm_is_a_different_computation():
    """--nosync_batchnorm (each replica normalizes by its own half-batch's statistics, as the
    networks are built with it) is a real ablation: the same step then differs from one
    device's."""
    config = helpers.run_config(batch_size=8, latent_dim=6, sync_batchnorm=False)
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        assert_mirrored_step_matches_one_device(
            lambda: tiny_state("mlp", ema=False, d_norm="batch", g_optimizer="sgd",
                               d_optimizer="sgd", sync_batchnorm=False), config)
