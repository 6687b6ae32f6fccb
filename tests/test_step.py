"""The compiled training iteration against a hand-written replay of the same iteration."""

import re

import numpy as np
import pytest
import tensorflow as tf

from gan import data, latent, layers, losses, networks, optimizers, penalties
from gan import state as state_lib
from gan import step as step_lib
from gan import loop as loop_lib
import helpers
from helpers import compiled_dots


def make_state(seed=0, architecture="mlp", ema=False, **network_settings):
    tf.random.set_seed(seed)
    network_config = helpers.network_config(latent_dim=8, g_hidden=(16, 32), d_hidden=(32, 16),
                                            width=4, **network_settings)
    g, d = networks.make_networks(architecture, network_config)
    g_ema = networks.make_generator(architecture, network_config) if ema else None
    return state_lib.GANState(g, d, optimizers.SGD(0.05), optimizers.SGD(0.05), seed=seed,
                              generator_ema=g_ema)


# Name -> make_state's arguments, for the networks the replay also covers.
NETWORKS = {
    "mlp": {},
    "dcgan, SN in D, LN in G": dict(architecture="dcgan", d_norm="spectral", g_norm="layer"),
    "conditional mlp, projection D, BN in D": dict(num_classes=10, d_norm="batch"),
    "conditional dcgan, concat D, SN in D": dict(architecture="dcgan", num_classes=10,
                                                 d_conditioning="concat", d_norm="spectral"),
}


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


def real_batch(images, labels, batch, rng):
    """(images, labels or None) of one draw, as the trainer draws them."""
    indices = data.sample_indices(tf.shape(images, out_type=tf.int64)[0], batch, rng)
    return tf.gather(images, indices), None if labels is None else tf.gather(labels, indices)


def replay_iteration(state, rng, images, config, lazy_factor=1.0, labels=None):
    """One iteration written out step by step from the losses and penalties registries, drawing
    from `rng`, a copy of the state's RNG, in the order the trainer draws. `lazy_factor`: what
    the penalties are multiplied by at this step (k when due every k steps, else 0). A
    conditional state gets the training `labels`: fakes take the labels of the real batch."""
    g, network = state.generator, state.discriminator
    d_loss = losses.get_d_loss(config.game.d_loss, config.game.label_smoothing)
    g_loss = losses.get_g_loss(config.game.g_loss)
    batch, latent = config.schedule.batch_size, config.model.latent_dim
    real, y = real_batch(images, labels, batch, rng)

    def conditioned(x, training, labels=None):
        return network(x, training, labels=y if labels is None else labels)
    d = network if labels is None else conditioned
    z = rng.normal([batch, latent])
    fake = g(z, training=config.game.d_fake_batchnorm == "train", labels=y)

    def on(images, labels):
        """D in training mode (an unconditional D is called without labels, as the trainer does)."""
        return network(images, True) if labels is None else network(images, True, labels=labels)

    def d_on_both(real, fake, y=y):
        # Spectral norm takes one power-iteration step per training call, so where the trainer
        # runs D once on [real; fake] the replay must too; elsewhere two calls in the trainer's
        # order (which BatchNorm's moving averages see) give the same.
        if getattr(network, "norm", None) != "spectral":
            return on(real, y), on(fake, y)
        both = network(tf.concat([real, fake], 0), True,
                       labels=None if y is None else tf.concat([y, y], 0))
        return both[:batch], both[batch:]

    def penalty_sum(uses_fake):
        terms = [weight * lazy_factor * penalties.PENALTIES[name].function(d, real, fake, rng)
                 for name, weight in config.game.active_penalties()
                 if uses_fake is None or penalties.PENALTIES[name].uses_fake == uses_fake]
        return sum(terms) if terms and lazy_factor else 0.0

    d_vars = network.trainable_variables
    if config.game.d_update == "split":
        sgd_step(lambda: d_loss.real_term(d(real, True)) + penalty_sum(False), d_vars)
        clip(d_vars, config.game.weight_clip)
        sgd_step(lambda: d_loss.fake_term(d(fake, True)) + penalty_sum(True), d_vars)
    else:
        sgd_step(lambda: sum(d_loss(*d_on_both(real, fake)).values()) + penalty_sum(None),
                 d_vars)
    clip(d_vars, config.game.weight_clip)
    z2 = rng.normal([batch, latent])
    real2, y2 = None, None
    if g_loss.needs_real_logits or labels is not None:
        real2, y2 = real_batch(images, labels, batch, rng)
    if not g_loss.needs_real_logits:
        real2 = None

    def g_objective():
        fake2 = g(z2, True, labels=y2)
        if real2 is None:
            return g_loss(on(fake2, y2))
        real_logits, fake_logits = d_on_both(real2, fake2, y2)
        return g_loss(fake_logits, real_logits)
    sgd_step(g_objective, g.trainable_variables)


def clip(variables, limit):
    if limit:
        for v in variables:
            v.assign(tf.clip_by_value(v, -limit, limit))


def assert_trainer_matches_replay(state, images, config, jit, labels=None):
    start_g, start_d = snapshot(state.generator), snapshot(state.discriminator)
    # XLA draws other random numbers than the TF kernels do, so the replay compiles as the trainer.
    rng = tf.random.Generator.from_state(state.rng.state.numpy(), state.rng.algorithm)
    due = int(state.step.numpy()) % config.game.penalty_every == 0
    tf.function(replay_iteration, jit_compile=jit)(state, rng, images, config,
                                                   float(config.game.penalty_every) if due else 0.0,
                                                   labels)
    expected_g, expected_d = snapshot(state.generator), snapshot(state.discriminator)
    restore(state.generator, start_g)
    restore(state.discriminator, start_d)

    metrics = step_lib.Trainer(state, config, images, labels, jit_compile=jit).run(1)
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
    config = helpers.run_config(batch_size=16, latent_dim=8, **settings)
    state = make_state()
    metrics = assert_trainer_matches_replay(state, images, config, jit)
    assert state.step.numpy() == 1
    assert state.d_optimizer.iterations.numpy() == (2 if config.game.d_update == "split" else 1)
    assert state.g_optimizer.iterations.numpy() == 1
    assert bool(metrics["all_finite"])
    if config.game.weight_clip:
        assert max(np.abs(v.numpy()).max() for v in state.discriminator.trainable_variables) <= (
            config.game.weight_clip)
    for name, _ in config.game.active_penalties():
        assert float(metrics[f"penalty_{name}"]) > 0


NETWORK_CASES = {
    "dcgan, SN in D, LN in G; WGAN-GP": ("dcgan, SN in D, LN in G", dict(
        d_loss="wasserstein", g_loss="wasserstein", penalties=(("gp", 10.0),)), False),
    "conditional mlp, BN in D; R1, split": ("conditional mlp, projection D, BN in D", dict(
        d_update="split", penalties=(("r1", 1.0),)), True),
    "conditional mlp; RaGAN + R2": ("conditional mlp, projection D, BN in D", dict(
        d_loss="relativistic_average", g_loss="relativistic_average",
        penalties=(("r2", 1.0),)), False),
    "conditional dcgan, concat D, SN; hinge": ("conditional dcgan, concat D, SN in D", dict(
        d_loss="hinge", g_loss="hinge"), False),
}


@pytest.mark.parametrize("case", sorted(NETWORK_CASES))
def test_iteration_matches_replay_for_dcgan_and_conditional_networks(case):
    """Spectral norm's power iteration, layer norm and the labels of conditional networks take the
    same path in the trainer and in the replay (per_example stacking included)."""
    network, settings, jit = NETWORK_CASES[case]
    dataset = data.load("mnist", "test")
    images = tf.constant(dataset.images[:512])
    state = make_state(**NETWORKS[network])
    labels = tf.constant(dataset.labels[:512]) if state.generator.num_classes else None
    config = helpers.run_config(batch_size=16, latent_dim=8, **settings)
    metrics = assert_trainer_matches_replay(state, images, config, jit, labels)
    assert bool(metrics["all_finite"])
    sn_vectors = [v for v in state.discriminator.variables if v.name.endswith("u:0")]
    assert bool(sn_vectors) == (state.discriminator.norm == "spectral")


def test_ema_follows_its_closed_form_and_starts_as_a_copy_of_g():
    """theta_ema after n updates = decay^n theta_0 + (1 - decay) sum_k decay^(n-k) theta_k, with
    theta_k G's trainable weights after update k; moving statistics are G's own."""
    images = tf.constant(data.load("mnist", "test").images[:256])
    decay = 0.9
    state = make_state(ema=True)
    for ema, value in zip(state.generator_ema.variables, state.generator.variables):
        np.testing.assert_array_equal(ema.numpy(), value.numpy())
    expected = [v.numpy().astype(np.float64) for v in state.generator.trainable_variables]
    runner = step_lib.Trainer(state, helpers.run_config(batch_size=8, latent_dim=8,
                                                        g_ema_decay=decay), images)
    for _ in range(4):
        runner.run(1)
        expected = [decay * e + (1 - decay) * v.numpy()
                    for e, v in zip(expected, state.generator.trainable_variables)]
    for got, want in zip(state.generator_ema.trainable_variables, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-7)
    moving = [v for v in state.generator.variables if not v.trainable]
    for got, want in zip([v for v in state.generator_ema.variables if not v.trainable], moving):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert state.sampling_generator is state.generator_ema
    assert any(np.abs(g.numpy() - e.numpy()).max() > 1e-6 for g, e in zip(
        state.generator.trainable_variables, state.generator_ema.trainable_variables))


def test_the_averaged_gs_batchnorm_statistics_are_recomputed_for_its_own_weights():
    """recompute_batchnorm: each moving statistic becomes the mean of the batch statistics over
    the fixed noise batches, computed here in NumPy for the first BatchNorm (whose input,
    LeakyReLU(z W + b), depends on no other BatchNorm); G's own statistics are left alone."""
    state = make_state(ema=True)
    ema = state.generator_ema
    for variable in ema.trainable_variables:  # weights of its own, unlike G's
        variable.assign(variable * 1.5 + 0.01)
    raw_statistics = [v.numpy().copy() for v in state.generator.variables if not v.trainable]
    momenta = [n.momentum for n in ema.norm_layers]
    batch, batches, seed = 16, 4, 3
    state_lib.recompute_batchnorm(ema, batch, seed, num_batches=batches)
    z = latent.fixed(batch * batches, ema.latent_dim, ema.latent_distribution,
                     seed=[seed, latent.BATCHNORM_SALT]).numpy().astype(np.float64)
    dense = ema.dense_layers[0]
    h = z @ dense.kernel.numpy() + dense.bias.numpy()
    h = np.where(h > 0, h, 0.2 * h).reshape(batches, batch, -1)
    norm = ema.norm_layers[0]
    np.testing.assert_allclose(norm.moving_mean.numpy(), h.mean(axis=1).mean(axis=0),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), h.var(axis=1).mean(axis=0),
                               rtol=1e-4, atol=1e-5)
    assert [n.momentum for n in ema.norm_layers] == momenta  # the layers' own, restored
    for got, want in zip([v for v in state.generator.variables if not v.trainable],
                         raw_statistics):
        np.testing.assert_array_equal(got.numpy(), want)
    # The deeper layers were refitted too: none keeps the copied statistics of G.
    for got, copied in zip([n.moving_mean for n in ema.norm_layers[1:]],
                           [n.moving_mean for n in state.generator.norm_layers[1:]]):
        assert np.abs(got.numpy() - copied.numpy()).max() > 1e-3


def test_lazy_penalty_is_skipped_between_due_steps():
    """penalty_every=2: at step 1 no penalty enters the update (the replay without it matches)
    and the logged value is 0; at step 2 it counts twice."""
    images = tf.constant(data.load("mnist", "test").images[:512])
    config = helpers.run_config(batch_size=16, latent_dim=8, penalties=(("r1", 3.0),),
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
    config = helpers.run_config(batch_size=16, latent_dim=8, d_loss=d_loss, g_loss=g_loss)
    metrics = step_lib.Trainer(make_state(), config, images).run(3)
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
        step_lib.Trainer(state, helpers.run_config(batch_size=16, latent_dim=8,
                                                   d_fake_batchnorm=mode), images).run(1)
        moved[mode] = bn.moving_mean.numpy()
    # From 100, each update multiplies the distance to the batch mean (|mean| << 100) by 0.8.
    np.testing.assert_allclose(moved["inference"], 80.0, atol=2.0)
    np.testing.assert_allclose(moved["train"], 64.0, atol=2.0)


def test_d_steps_runs_several_discriminator_updates():
    images = tf.constant(data.load("mnist", "test").images[:256])
    state = make_state()
    step_lib.Trainer(state, helpers.run_config(batch_size=8, latent_dim=8, d_steps=3),
                     images).run(2)
    assert state.d_optimizer.iterations.numpy() == 6 and state.g_optimizer.iterations.numpy() == 2


def test_run_of_n_iterations_in_one_call_equals_n_calls():
    images = tf.constant(data.load("mnist", "test").images[:256])
    config = helpers.run_config(batch_size=8, latent_dim=8)
    a, b = make_state(), make_state()
    step_lib.Trainer(a, config, images).run(6)
    runner = step_lib.Trainer(b, config, images)
    for _ in range(3):
        runner.run(2)
    for x, y in zip(a.variables, b.variables):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["mlp", "conditional mlp, projection D, BN in D"])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_training_on_uint8_pixels_equals_training_on_float_images(case, jit_compile):
    """The step converts uint8 pixels to [-1, 1] itself. The two trainings are two programs
    (the conversion inside the step or ahead of it), so they agree to float32 rounding carried
    through 5 updates: the tolerance of test_run_of_n_iterations_in_one_call_equals_n_calls."""
    test = data.load("mnist", "test")
    pixels, labels = test.pixels[:512], test.labels[:512]
    assert pixels.dtype == np.uint8 and pixels.shape == (512, 28, 28)
    config = helpers.run_config(batch_size=16, latent_dim=8, d_fake_batchnorm="train")
    states = []
    for images in (data.to_unit_range(pixels), pixels):
        state = make_state(**NETWORKS[case])
        step_lib.Trainer(state, config, images, labels, jit_compile=jit_compile).run(5)
        states.append(state)
    for x, y in zip(states[0].variables, states[1].variables):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6, err_msg=x.name)


def test_bad_names_are_refused_by_the_schema_with_their_choices():
    with pytest.raises(ValueError, match="--d_update=both: expected one of joint, split"):
        helpers.run_config(d_update="both")
    with pytest.raises(ValueError, match="--g_loss=nonsat: expected one of .*non_saturating"):
        helpers.run_config(g_loss="nonsat")


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
    config = helpers.run_config(batch_size=16, latent_dim=8, d_update="joint")
    state = make_state()
    if not per_example:
        tf.random.set_seed(1)
        d = BatchStatisticsDiscriminator()
        state = state_lib.GANState(state.generator, d, optimizers.SGD(0.05), optimizers.SGD(0.05),
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
        step_lib.Trainer(state, config, images).run(1)
    finally:
        type(state.discriminator).__call__ = original_call
    for got, want in zip(snapshot(state.generator) + snapshot(state.discriminator), expected):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)
    # D step (one stacked call of 32, or two of 16) then the G step's call of 16; the loop body
    # is traced a second time by tf.while_loop, so only the first iteration's calls are checked.
    expected_calls = [32, 16] if per_example else [16, 16, 16]
    assert calls[:len(expected_calls)] == expected_calls


def test_global_norm_is_the_square_root_of_the_sum_of_squares_compiled_or_not():
    """The XLA path sums in padded blocks behind an optimization barrier: it must still be the
    norm (sizes below, at and above a block, and not multiples of it), and propagate a NaN or an
    inf, which the finiteness check relies on."""
    rng = np.random.default_rng(0)
    tensors = [rng.normal(size=shape).astype(np.float32)
               for shape in [(100, 256), (784,), (33,), (512,), (3, 171), (1,), (1024, 3, 3)]]
    want = np.sqrt(sum(np.sum(np.float64(t) ** 2) for t in tensors))
    compiled = tf.function(lambda ts: loop_lib.global_norm(ts, compiled=True), jit_compile=True)
    np.testing.assert_allclose(float(compiled(tensors)), want, rtol=1e-6)
    np.testing.assert_allclose(float(loop_lib.global_norm(tensors)), want, rtol=1e-6)
    # A variable without a gradient (None) counts for nothing, as in tf.linalg.global_norm.
    np.testing.assert_allclose(float(compiled([*tensors, None])), want, rtol=1e-6)
    hlo = compiled.experimental_get_compiler_ir(tensors)(stage="optimized_hlo")
    # XLA's tree-reduction rewrite (a reduce-window) may only meet the short sums of partial sums,
    # never a whole tensor's squares, which would then take a second pass.
    windowed = [int(np.prod([int(d) for d in dims.split(",")])) for dims in re.findall(
        r"reduce-window_computation[.\d]* \(param_[\d.]+: f32\[([\d,]+)\]", hlo)]
    assert max(windowed, default=0) <= max(t.size for t in tensors) / loop_lib.NORM_BLOCK[0]
    for bad in (np.nan, np.inf):
        spoiled = [t.copy() for t in tensors]
        spoiled[0][57, 3] = bad
        assert not np.isfinite(float(compiled(spoiled)))


@pytest.mark.parametrize("jit", [True, False])
def test_logged_gradient_norms_are_the_norms_of_the_applied_gradients(jit):
    """With plain SGD an update moves the weights by lr * gradient, so the logged norms must be
    |weights after - weights before| / lr, network by network (the joint step updates D once)."""
    images = tf.constant(data.load("mnist", "test").images[:512])
    state = make_state()
    networks_before = {name: [v.numpy().astype(np.float64) for v in net.trainable_variables]
                       for name, net in (("d", state.discriminator), ("g", state.generator))}
    config = helpers.run_config(batch_size=16, latent_dim=8, d_update="joint")
    metrics = step_lib.Trainer(state, config, images, jit_compile=jit).run(1)
    for name, net in (("d", state.discriminator), ("g", state.generator)):
        moved = [v.numpy() - before
                 for v, before in zip(net.trainable_variables, networks_before[name])]
        want = np.sqrt(sum(np.sum(m ** 2) for m in moved)) / 0.05
        assert want > 0
        np.testing.assert_allclose(float(metrics[f"{name}_grad_norm"]), want, rtol=1e-3)


def test_compiled_loop_updates_every_weight_in_place_without_copying_it():
    """The updates wait for the gradient norm (`loop_lib._after`), so XLA can see each weight's
    last read before its update and update it in place, rather than copy the weights that the
    backward pass reads (every layer's but the first) at the top of every iteration."""
    images = tf.constant(data.load("mnist", "test").images[:512])
    state = make_state()
    # A batch of 24: no activation shares a weight's shape.
    config = helpers.run_config(batch_size=24, latent_dim=8, d_update="joint")
    runner = step_lib.Trainer(state, config, images, jit_compile=True)
    hlo = runner._run.experimental_get_compiler_ir(runner.images, tf.constant(3))(
        stage="optimized_hlo")
    weight_shapes = {tuple(v.shape) for v in state.generator.trainable_variables
                     + state.discriminator.trainable_variables if len(v.shape) == 2}
    copied = [tuple(int(d) for d in dims.split(",")) for dims in
              re.findall(r"= f32\[(\d+,\d+)\]\{1,0\} copy\(", hlo)]
    assert not [shape for shape in copied if shape in weight_shapes]


def test_compiled_loop_compiles_the_iteration_once():
    """The loop starts from zeros and calls one traced iteration, so XLA compiles every matmul of
    an iteration once. The means it returns still count every iteration: the first is not lost
    to the zeros."""
    images = tf.constant(data.load("mnist", "test").images[:512])
    config = helpers.run_config(batch_size=24, latent_dim=8)
    runner = step_lib.Trainer(make_state(), config, images, jit_compile=True)
    loop = runner._run.experimental_get_compiler_ir(runner.images, tf.constant(3))(
        stage="optimized_hlo")
    one = tf.function(runner._iteration, jit_compile=True, autograph=False)
    iteration = one.experimental_get_compiler_ir(runner.images)(stage="optimized_hlo")
    assert len(compiled_dots(loop)) == len(compiled_dots(iteration)) > 0
    singles = [runner.run(1) for _ in range(3)]
    again = step_lib.Trainer(make_state(), config, images, jit_compile=True)
    means = again.run(3)
    # The loop and the single iteration are two compiled programs, which may order and fuse their
    # float32 arithmetic differently on another instruction set (1 ulp apart on an AVX-512
    # CPU). Each value is a reduction over at most ~10^3 terms, whose float32 rounding
    # grows like sqrt(10^3) * 6e-8 = 2e-6 relative, and the weights entering iterations 2 and 3
    # carry that difference on; rtol 1e-5 covers it and still tells the mean of three values from
    # that of the last two, which differ by percents here.
    for name in ("d_loss", "g_loss", "d_grad_norm"):
        values = [float(single[name].numpy()) for single in singles]
        np.testing.assert_allclose(means[name].numpy(), np.mean(values), rtol=1e-5, err_msg=name)
        assert abs(np.mean(values) - np.mean(values[1:])) > 1e-3 * abs(np.mean(values)), values
    with pytest.raises(ValueError, match="num_iterations must be at least 1, got 0"):
        again.run(0)
