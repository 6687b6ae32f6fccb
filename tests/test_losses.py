import numpy as np
import pytest
import tensorflow as tf

from conftest import run_in
from gan import losses, penalties


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))

# The naive formulas, written from the papers with probabilities D = sigmoid(logit). Each D loss
# maps (l_r, l_f) to its parts, as the library names them; each G loss maps (l_f, l_r) to a value.
NAIVE_D = {
    "minimax": lambda r, f: {"real": -np.mean(np.log(np_sigmoid(r))),
                             "fake": -np.mean(np.log(1 - np_sigmoid(f)))},
    "least_squares": lambda r, f: {"real": 0.5 * np.mean((r - 1) ** 2),
                                   "fake": 0.5 * np.mean(f ** 2)},
    "hinge": lambda r, f: {"real": np.mean(np.maximum(0, 1 - r)),
                           "fake": np.mean(np.maximum(0, 1 + f))},
    "wasserstein": lambda r, f: {"real": -np.mean(r), "fake": np.mean(f)},
    # Jolicoeur-Martineau 2018, eq. 9 with C the logit: -E log sigmoid(C(x_r) - C(x_f)).
    "relativistic": lambda r, f: {"pairs": -np.mean(np.log(np_sigmoid(r - f)))},
    # eq. 11: -E_r log D~(x_r) - E_f log(1 - D~(x_f)), D~(x_r) = sigmoid(C(x_r) - E C(x_f)).
    "relativistic_average": lambda r, f: {
        "real": -np.mean(np.log(np_sigmoid(r - f.mean()))),
        "fake": -np.mean(np.log(1 - np_sigmoid(f - r.mean())))},
}
NAIVE_G = {
    "saturating": lambda f, r: np.mean(np.log(1 - np_sigmoid(f))),
    "non_saturating": lambda f, r: -np.mean(np.log(np_sigmoid(f))),
    "least_squares": lambda f, r: 0.5 * np.mean((f - 1) ** 2),
    "hinge": lambda f, r: -np.mean(f),
    "wasserstein": lambda f, r: -np.mean(f),
    "relativistic": lambda f, r: -np.mean(np.log(np_sigmoid(f - r))),  # eq. 10
    "relativistic_average": lambda f, r: (-np.mean(np.log(np_sigmoid(f - r.mean())))
                                          - np.mean(np.log(1 - np_sigmoid(r - f.mean())))),
}


def test_every_registered_loss_has_a_reference():
    assert set(NAIVE_D) == set(losses.D_LOSSES)
    assert set(NAIVE_G) == set(losses.G_LOSSES)


def logit_pair(seed):
    rng = np.random.default_rng(seed)
    # Moderate logits, so that the naive log(sigmoid) formulas are still accurate in float64.
    return rng.normal(0.5, 2, 64), rng.normal(-0.5, 2, 64)


@pytest.mark.parametrize("name", sorted(losses.D_LOSSES))
def test_d_losses_match_naive_formulas(mode, name):
    real, fake = logit_pair(0)
    parts = run_in(mode, losses.get_d_loss(name), tf.constant(real), tf.constant(fake))
    expected = NAIVE_D[name](real, fake)
    assert set(parts) == set(expected)
    for part in expected:
        np.testing.assert_allclose(parts[part], expected[part], rtol=1e-10, err_msg=part)


@pytest.mark.parametrize("name", sorted(n for n, loss in losses.D_LOSSES.items() if loss.separable))
def test_separable_d_losses_split_into_their_real_and_fake_terms(name):
    real, fake = logit_pair(1)
    loss = losses.get_d_loss(name)
    parts = loss(tf.constant(real), tf.constant(fake))
    np.testing.assert_allclose(loss.real_term(tf.constant(real)), parts["real"], rtol=1e-12)
    np.testing.assert_allclose(loss.fake_term(tf.constant(fake)), parts["fake"], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(losses.G_LOSSES))
def test_g_losses_match_naive_formulas(mode, name):
    real, fake = logit_pair(2)
    got = run_in(mode, losses.get_g_loss(name), tf.constant(fake), tf.constant(real))
    np.testing.assert_allclose(got, NAIVE_G[name](fake, real), rtol=1e-10)


def test_one_sided_label_smoothing_lowers_only_the_real_target(mode):
    """Salimans et al. 2016, 3.4: cross-entropy against 1 - a for reals, 0 for fakes."""
    real, fake = logit_pair(3)
    a = 0.1
    parts = run_in(mode, losses.get_d_loss("minimax", label_smoothing=a), tf.constant(real),
                   tf.constant(fake))
    d_real = np_sigmoid(real)
    expected_real = -np.mean((1 - a) * np.log(d_real) + a * np.log(1 - d_real))
    np.testing.assert_allclose(parts["real"], expected_real, rtol=1e-10)
    np.testing.assert_allclose(parts["fake"], NAIVE_D["minimax"](real, fake)["fake"], rtol=1e-10)


def all_loss_functions():
    for name, loss in losses.D_LOSSES.items():
        yield f"d:{name}", lambda x, loss=loss: sum(loss(x, x[::-1]).values())
    for name, loss in losses.G_LOSSES.items():
        yield f"g:{name}", lambda x, loss=loss: loss(x, x[::-1])


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_losses_and_gradients_are_finite_at_extreme_logits(dtype):
    logits = tf.constant([-100.0, 100.0, -1000.0, 1000.0], dtype)
    for label, fn in all_loss_functions():
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = fn(logits)
        grad = tape.gradient(value, logits)
        assert np.isfinite(value.numpy()), label
        assert np.all(np.isfinite(grad.numpy())), label


def per_example_gradient(loss_fn, logits):
    logits = tf.constant(logits, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        total = loss_fn(logits) * tf.cast(tf.size(logits), tf.float64)  # undo the batch mean
    return tape.gradient(total, logits).numpy()


def test_saturating_gradient_vanishes_and_non_saturating_does_not_when_d_rejects_fakes():
    # D(G(z)) = sigmoid(logit) -> 0 as the logit -> -inf.
    logits = np.array([-2.0, -5.0, -10.0, -20.0, -40.0])
    saturating = per_example_gradient(losses.saturating_g_loss, logits)
    non_saturating = per_example_gradient(losses.non_saturating_g_loss, logits)
    # Theory: d/dl log(1 - sigmoid(l)) = -sigmoid(l);  d/dl -log sigmoid(l) = sigmoid(l) - 1.
    np.testing.assert_allclose(saturating, -np_sigmoid(logits), rtol=1e-9)
    np.testing.assert_allclose(non_saturating, np_sigmoid(logits) - 1, rtol=1e-9)
    assert np.all(np.diff(np.abs(saturating)) < 0) and abs(saturating[-1]) < 1e-16
    np.testing.assert_allclose(non_saturating[-1], -1.0, atol=1e-15)


def test_minimax_d_loss_is_minimised_at_the_optimal_discriminator():
    """Goodfellow et al. 2014, Prop. 1: D*(x) = p_data(x) / (p_data(x) + p_g(x)).

    A discrete space of 4 points; the 'batches' hold each point in proportion to its probability,
    and D is a free logit per point, trained on the library's own loss.
    """
    p_data = np.array([0.5, 0.3, 0.15, 0.05])
    p_g = np.array([0.1, 0.2, 0.3, 0.4])
    real_points = np.repeat(np.arange(4), np.rint(p_data * 100).astype(int))
    fake_points = np.repeat(np.arange(4), np.rint(p_g * 100).astype(int))
    logits = tf.Variable(tf.zeros(4, tf.float64))

    @tf.function
    def descend():
        for _ in tf.range(3000):
            with tf.GradientTape() as tape:
                parts = losses.get_d_loss("minimax")(tf.gather(logits, real_points),
                                                     tf.gather(logits, fake_points))
                loss = parts["real"] + parts["fake"]
            logits.assign_sub(2.0 * tf.convert_to_tensor(tape.gradient(loss, logits)))
        return loss

    loss = descend()
    np.testing.assert_allclose(np_sigmoid(logits.numpy()), p_data / (p_data + p_g), atol=1e-6)
    # Its value there is -V(D*, G) = log 4 - 2 JSD(p_data || p_g) (proof of Theorem 1).
    m = (p_data + p_g) / 2
    jsd = 0.5 * np.sum(p_data * np.log(p_data / m)) + 0.5 * np.sum(p_g * np.log(p_g / m))
    np.testing.assert_allclose(loss.numpy(), np.log(4) - 2 * jsd, rtol=1e-6)


def test_unknown_loss_names_list_the_choices():
    with pytest.raises(ValueError, match="valid choices: .*minimax"):
        losses.get_d_loss("bce")
    with pytest.raises(ValueError, match="valid choices: .*non_saturating"):
        losses.get_g_loss("nonsat")


# --- penalties, on discriminators whose input gradient is known in closed form -------------------

class LinearCritic(tf.Module):
    """D(x) = <w, x> + b: its input gradient is w at every x."""

    per_example = True

    def __init__(self, w):
        super().__init__()
        self.w = tf.Variable(w)
        self.b = tf.Variable(tf.constant(0.3, w.dtype))

    def __call__(self, images, training):
        return tf.reduce_sum(images * self.w, axis=[1, 2, 3]) + self.b


class QuadraticCritic(tf.Module):
    """D(x) = sum_j a_j x_j^2: its input gradient is 2 a x."""

    per_example = True

    def __init__(self, a):
        super().__init__()
        self.a = tf.Variable(a)

    def __call__(self, images, training):
        return tf.reduce_sum(self.a * tf.square(images), axis=[1, 2, 3])


SHAPE = (6, 4, 4, 1)


def penalty_inputs(seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=SHAPE), rng.normal(size=SHAPE), rng.normal(0, 0.2, SHAPE[1:])


# Each penalty on a linear D, from its paper's formula with grad D = w.
LINEAR_EXPECTED = {
    "gp": lambda w: (np.linalg.norm(w) - 1) ** 2,
    "r1": lambda w: 0.5 * np.sum(w ** 2),
    "r2": lambda w: 0.5 * np.sum(w ** 2),
    "dragan": lambda w: (np.linalg.norm(w) - 1) ** 2,
}
# ... and d(penalty)/dw, which the trainer's outer tape gets by double back-propagation.
LINEAR_WEIGHT_GRADIENT = {
    "gp": lambda w: 2 * (np.linalg.norm(w) - 1) * w / np.linalg.norm(w),
    "r1": lambda w: w,
    "r2": lambda w: w,
    "dragan": lambda w: 2 * (np.linalg.norm(w) - 1) * w / np.linalg.norm(w),
}


def test_every_registered_penalty_has_a_reference():
    assert set(LINEAR_EXPECTED) == set(penalties.PENALTIES) == set(LINEAR_WEIGHT_GRADIENT)


@pytest.mark.parametrize("name", sorted(penalties.PENALTIES))
def test_penalty_on_a_linear_discriminator_and_its_weight_gradient(mode, name):
    real, fake, w = penalty_inputs(0)
    critic = LinearCritic(tf.constant(w))
    rng = tf.random.Generator.from_seed(1)

    def value_and_gradient(real, fake):
        with tf.GradientTape() as tape:
            value = penalties.PENALTIES[name].function(critic, real, fake, rng)
        return value, tape.gradient(value, critic.w)
    value, gradient = run_in(mode, value_and_gradient, tf.constant(real), tf.constant(fake))
    np.testing.assert_allclose(value, LINEAR_EXPECTED[name](w), rtol=1e-9)
    np.testing.assert_allclose(gradient, LINEAR_WEIGHT_GRADIENT[name](w), rtol=1e-8, atol=1e-12)


def replayed_uniform(mode, rng, shape):
    """The numbers `rng` will draw next for `shape`, from a copy (XLA draws other numbers than the
    TF kernels, so the copy draws in the same mode)."""
    copy = tf.random.Generator.from_state(rng.state.numpy(), rng.algorithm)
    return run_in(mode, lambda: copy.uniform(shape, dtype=tf.float64)).numpy()


def quadratic_gradient_norms(a, points):
    return np.sqrt(np.sum((2 * a * points) ** 2, axis=(1, 2, 3)))


@pytest.mark.parametrize("name", sorted(penalties.PENALTIES))
def test_penalty_on_a_quadratic_discriminator_where_it_is_taken(mode, name):
    """Where each penalty looks: real data (R1), fakes (R2), random interpolates (WGAN-GP) or
    perturbed real data (DRAGAN); with grad D(x) = 2 a x the value depends on the points."""
    real, fake, a = penalty_inputs(2)
    critic = QuadraticCritic(tf.constant(a))
    rng = tf.random.Generator.from_seed(3)
    if name == "gp":
        eps = replayed_uniform(mode, rng, (SHAPE[0], 1, 1, 1))
        points = eps * real + (1 - eps) * fake
        expected = np.mean((quadratic_gradient_norms(a, points) - 1) ** 2)
    elif name == "dragan":
        u = replayed_uniform(mode, rng, SHAPE)
        points = real + real.std() * (u - 0.5)
        expected = np.mean((quadratic_gradient_norms(a, points) - 1) ** 2)
    else:
        points = real if name == "r1" else fake
        expected = 0.5 * np.mean(quadratic_gradient_norms(a, points) ** 2)
    got = run_in(mode, lambda r, f: penalties.PENALTIES[name].function(critic, r, f, rng),
                 tf.constant(real), tf.constant(fake))
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_weight_clipping_bounds_every_weight():
    variables = [tf.Variable(np.linspace(-1, 1, 11)), tf.Variable(np.array([[0.005, -0.5]]))]
    penalties.clip_weights(variables, 0.01)
    np.testing.assert_array_equal(variables[0].numpy(), np.clip(np.linspace(-1, 1, 11), -0.01, 0.01))
    np.testing.assert_array_equal(variables[1].numpy(), [[0.005, -0.01]])


def test_known_broken_combinations_are_named_with_the_reason():
    errors, unstable = losses.combination_problems("wasserstein", "wasserstein", {})
    assert not errors and len(unstable) == 1 and "--gp_weight=10" in unstable[0]
    for fix in ({"penalty_weights": {"gp": 10.0}}, {"penalty_weights": {}, "weight_clip": 0.01}):
        weights = fix.pop("penalty_weights")
        assert losses.combination_problems("wasserstein", "wasserstein", weights, **fix) == ([], [])
    _, unstable = losses.combination_problems("relativistic_average", "non_saturating", {})
    assert "expected --g_loss=relativistic_average" in unstable[0]
    _, unstable = losses.combination_problems("minimax", "relativistic", {})
    assert "expected --d_loss=relativistic" in unstable[0]
    errors, _ = losses.combination_problems("relativistic", "relativistic", {}, d_update="split")
    assert "expected --d_update=joint" in errors[0]
    errors, _ = losses.combination_problems("hinge", "hinge", {}, label_smoothing=0.1)
    assert "expected --d_loss=minimax" in errors[0]
    assert losses.combination_problems("minimax", "non_saturating", {"r1": 1.0},
                                       label_smoothing=0.1, d_update="split") == ([], [])
