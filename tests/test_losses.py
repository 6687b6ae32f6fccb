import numpy as np
import pytest
import tensorflow as tf

from conftest import run_in
from gan import losses


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


# The naive formulas, written from the papers with probabilities D = sigmoid(logit).
NAIVE_D = {
    "minimax": (lambda r: -np.mean(np.log(np_sigmoid(r))), lambda f: -np.mean(np.log(1 - np_sigmoid(f)))),
    "least_squares": (lambda r: 0.5 * np.mean((r - 1) ** 2), lambda f: 0.5 * np.mean(f ** 2)),
    "hinge": (lambda r: np.mean(np.maximum(0, 1 - r)), lambda f: np.mean(np.maximum(0, 1 + f))),
    "wasserstein": (lambda r: -np.mean(r), lambda f: np.mean(f)),
}
NAIVE_G = {
    "saturating": lambda f: np.mean(np.log(1 - np_sigmoid(f))),
    "non_saturating": lambda f: -np.mean(np.log(np_sigmoid(f))),
    "least_squares": lambda f: 0.5 * np.mean((f - 1) ** 2),
    "wasserstein": lambda f: -np.mean(f),
}


def test_every_registered_loss_has_a_reference():
    assert set(NAIVE_D) == set(losses.D_LOSSES)
    assert set(NAIVE_G) == set(losses.G_LOSSES)


@pytest.mark.parametrize("name", sorted(NAIVE_D))
def test_d_losses_match_naive_formulas(mode, name):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(0, 3, 64), rng.normal(0, 3, 64)
    loss = losses.get_d_loss(name)
    got_real = run_in(mode, loss.real_term, tf.constant(real))
    got_fake = run_in(mode, loss.fake_term, tf.constant(fake))
    np.testing.assert_allclose(got_real, NAIVE_D[name][0](real), rtol=1e-10)
    np.testing.assert_allclose(got_fake, NAIVE_D[name][1](fake), rtol=1e-10)


def test_minimax_d_loss_is_the_sum_of_its_terms():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=16), rng.normal(size=16)
    expected = -np.mean(np.log(np_sigmoid(real))) - np.mean(np.log(1 - np_sigmoid(fake)))
    np.testing.assert_allclose(losses.minimax_d_loss(tf.constant(real), tf.constant(fake)), expected,
                               rtol=1e-12)


@pytest.mark.parametrize("name", sorted(NAIVE_G))
def test_g_losses_match_naive_formulas(mode, name):
    fake = np.random.default_rng(2).normal(0, 3, 64)
    got = run_in(mode, losses.get_g_loss(name), tf.constant(fake))
    np.testing.assert_allclose(got, NAIVE_G[name](fake), rtol=1e-10)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_losses_and_gradients_are_finite_at_extreme_logits(dtype):
    logits = tf.constant([-100.0, 100.0, -1000.0, 1000.0], dtype)
    fns = [t for pair in losses.D_LOSSES.values() for t in pair] + list(losses.G_LOSSES.values())
    for fn in fns:
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = fn(logits)
        grad = tape.gradient(value, logits)
        assert np.isfinite(value.numpy()), fn.__name__
        assert np.all(np.isfinite(grad.numpy())), fn.__name__


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
                loss = losses.minimax_d_loss(tf.gather(logits, real_points),
                                             tf.gather(logits, fake_points))
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
