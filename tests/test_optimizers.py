import inspect

import numpy as np
import pytest
import tensorflow as tf

from gan import optimizers


def run_steps(optimizer, w0, grads):
    w = tf.Variable(w0)
    for g in grads:
        optimizer.apply([tf.constant(g)], [w])
    return w.numpy()


# Closed-form references, written from each optimizer's docstring formula. The learning rate is
# held in a float32 variable, so references use the float32-rounded value (F32).
def F32(x):
    return float(np.float32(x))


def np_sgd(w, grads, lr, momentum=0.0, nesterov=False):
    v = np.zeros_like(w)
    for g in grads:
        if momentum == 0:
            w = w - lr * g
            continue
        v = momentum * v - lr * g
        w = w + (momentum * v - lr * g if nesterov else v)
    return w


def np_adam(w, grads, lr, b1, b2, eps):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        w = w - lr_t * m / (np.sqrt(v) + eps)
    return w


def np_adam_algorithm1(w, grads, lr, b1, b2, eps):
    """Kingma & Ba's Algorithm 1 with bias-corrected moments."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return w


def np_rmsprop(w, grads, lr, rho, eps, momentum=0.0):
    s, u = np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        s = rho * s + (1 - rho) * g * g
        increment = lr * g / np.sqrt(s + eps)
        if momentum:
            u = momentum * u + increment
            increment = u
        w = w - increment
    return w


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    return rng.normal(size=6), [rng.normal(size=6) for _ in range(5)]


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_closed_form(problem, momentum, nesterov):
    w0, grads = problem
    got = run_steps(optimizers.SGD(0.1, momentum, nesterov), w0, grads)
    np.testing.assert_allclose(got, np_sgd(w0, grads, F32(0.1), momentum, nesterov), rtol=1e-12)


def test_sgd_one_step_is_w_minus_lr_g():
    w = tf.Variable([1.0, -2.0], dtype=tf.float64)
    optimizers.SGD(0.5).apply([tf.constant([2.0, 4.0], tf.float64)], [w])
    np.testing.assert_array_equal(w.numpy(), [0.0, -4.0])


def test_adam_matches_closed_form_and_algorithm_1_with_epsilon_hat(problem):
    w0, grads = problem
    lr, b1, b2, eps = 0.01, 0.5, 0.999, 1e-7
    got = run_steps(optimizers.Adam(lr, b1, b2, eps), w0, grads)
    np.testing.assert_allclose(got, np_adam(w0, grads, F32(lr), b1, b2, eps), rtol=1e-12)
    # The docstring's claim: Algorithm 1 with epsilon_hat = epsilon * sqrt(1 - b2^t). With eps -> 0
    # the two forms coincide.
    got_tiny_eps = run_steps(optimizers.Adam(lr, b1, b2, 1e-300), w0, grads)
    np.testing.assert_allclose(got_tiny_eps, np_adam_algorithm1(w0, grads, F32(lr), b1, b2, 0.0), rtol=1e-12)


def test_adam_first_step_moves_each_weight_by_lr():
    w = tf.Variable(np.zeros(3))
    optimizers.Adam(0.1, epsilon=1e-12).apply([tf.constant([3.0, -0.2, 50.0], tf.float64)], [w])
    np.testing.assert_allclose(w.numpy(), np.array([-1, 1, -1]) * F32(0.1), rtol=1e-9)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop_matches_closed_form(problem, momentum):
    w0, grads = problem
    got = run_steps(optimizers.RMSprop(0.01, 0.9, momentum, 1e-7), w0, grads)
    np.testing.assert_allclose(got, np_rmsprop(w0, grads, F32(0.01), 0.9, 1e-7, momentum), rtol=1e-12)


def test_none_gradients_are_skipped():
    a, b = tf.Variable([1.0]), tf.Variable([2.0])
    opt = optimizers.Adam(0.1)
    opt.apply([None, tf.constant([1.0])], [a, b])
    assert a.numpy() == 1.0 and b.numpy() != 2.0


def test_state_round_trips_through_checkpoint(tmp_path, problem):
    w0, grads = problem
    w = tf.Variable(w0)
    opt = optimizers.Adam(0.01)
    for g in grads[:3]:
        opt.apply([tf.constant(g)], [w])
    path = tf.train.Checkpoint(w=w, opt=opt).save(str(tmp_path / "ckpt"))

    w2 = tf.Variable(np.zeros_like(w0))
    opt2 = optimizers.Adam(0.01)
    opt2.build([w2])
    tf.train.Checkpoint(w=w2, opt=opt2).restore(path).assert_consumed()
    assert opt2.iterations.numpy() == 3
    for g in grads[3:]:
        opt.apply([tf.constant(g)], [w])
        opt2.apply([tf.constant(g)], [w2])
    np.testing.assert_array_equal(w.numpy(), w2.numpy())


def test_apply_works_under_xla():
    w = tf.Variable(tf.ones([4]))
    opt = optimizers.Adam(0.1)
    opt.build([w])

    @tf.function(jit_compile=True)
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(w ** 2)
        opt.apply(tape.gradient(loss, [w]), [w])

    step()
    step()
    np.testing.assert_allclose(w.numpy(), np_adam(np.ones(4), [2 * np.ones(4), 2 * (1 - 0.1) * np.ones(4)],
                                                   0.1, 0.5, 0.999, 1e-7), rtol=1e-5)


def test_bad_hyper_parameters_are_rejected():
    with pytest.raises(ValueError, match="learning rate"):
        optimizers.SGD(0.0)
    with pytest.raises(ValueError, match="beta1"):
        optimizers.Adam(1e-3, beta1=1.0)
    with pytest.raises(ValueError, match="valid choices"):
        optimizers.make_optimizer("adagrad", 0.1)


# --- Keras as an oracle (allowed in tests only) ----------------------------------------------------

# The Keras oracle of each registered optimizer, by name: one missing is a KeyError, never a
# silent stand-in.
KERAS_ORACLES = {
    "sgd": lambda keras, lr, kw: keras.optimizers.SGD(lr, momentum=kw["momentum"],
                                                      nesterov=kw["nesterov"]),
    "adam": lambda keras, lr, kw: keras.optimizers.Adam(lr, beta_1=kw["beta1"],
                                                        beta_2=kw["beta2"], epsilon=kw["epsilon"]),
    "rmsprop": lambda keras, lr, kw: keras.optimizers.RMSprop(lr, rho=kw["rho"],
                                                              momentum=kw["momentum"],
                                                              epsilon=kw["epsilon"]),
}


def keras_optimizer(name, lr, **kw):
    import keras
    return KERAS_ORACLES[name](keras, lr, kw)


@pytest.mark.parametrize("name", sorted(optimizers.OPTIMIZERS))
def test_every_registered_optimizer_is_built_as_itself_with_its_own_hyperparameters(name):
    """make_optimizer builds the registered class and hands it exactly the hyper-parameters it
    declares (with their values); every registered optimizer has a Keras oracle and a case."""
    cls = optimizers.OPTIMIZERS[name]
    values = dict(beta1=0.25, beta2=0.75, momentum=0.5, nesterov=True, epsilon=1e-5, rho=0.8)
    built = optimizers.make_optimizer(name, 0.1, **values)
    assert type(built) is cls
    parameters = set(inspect.signature(cls.__init__).parameters) - {"self", "learning_rate",
                                                                     "name"}
    assert parameters == set(cls.HYPERPARAMETERS), (name, parameters)
    for key in cls.HYPERPARAMETERS:
        stored = getattr(built, key)
        stored = stored.numpy() if hasattr(stored, "numpy") else stored
        assert stored == pytest.approx(values[key]), (name, key)
    assert name in KERAS_ORACLES and any(case == name for case, _ in ORACLE_CASES)


ORACLE_CASES = [
    ("sgd", dict(momentum=0.0, nesterov=False)),
    ("sgd", dict(momentum=0.9, nesterov=False)),
    ("sgd", dict(momentum=0.5, nesterov=True)),
    # Keras computes beta powers in float32 even for float64 variables, so the betas here are
    # exactly representable in float32 (0.875 ~ 0.9, 1 - 2^-10 ~ 0.999).
    ("adam", dict(beta1=0.875, beta2=1 - 2 ** -10, epsilon=1e-7)),
    ("adam", dict(beta1=0.5, beta2=1 - 2 ** -10, epsilon=1e-7)),
    ("adam", dict(beta1=0.0, beta2=0.875, epsilon=1e-4)),
    ("rmsprop", dict(rho=0.9, momentum=0.0, epsilon=1e-7)),
    ("rmsprop", dict(rho=0.99, momentum=0.5, epsilon=1e-6)),
]


@pytest.mark.parametrize("lr", [1e-3, 1e-2, 5e-2])
@pytest.mark.parametrize("case", range(len(ORACLE_CASES)))
def test_matches_keras_on_random_quadratics(case, lr):
    """100 steps on f(w) = 1/2 w'Aw - b'w with random SPD A; trajectories agree to 1e-5 relative.

    The start is far from the optimum (|w0 - w*| ~ 20 > 100 * lr): Adam and RMSprop take sign-like
    steps of size ~lr, and once at the optimum they would bounce around it in a chaotic way in which
    the rounding differences of two correct implementations (Keras writes v + (g^2 - v)(1 - b2), we
    write b2 v + (1 - b2) g^2) grow to ~lr. In float64 for the same reason.
    """
    name, kw = ORACLE_CASES[case]
    rng = np.random.default_rng([case, int(lr * 1e6)])
    dim = 8
    q = rng.normal(size=(dim, dim))
    a = q @ q.T / dim + 0.1 * np.eye(dim)
    w_star = rng.normal(size=dim)
    b = a @ w_star
    w0 = w_star + 20 * rng.normal(size=dim) / np.sqrt(dim)

    ours_w, keras_w = tf.Variable(w0), tf.Variable(w0)
    kwargs = dict(beta1=0.9, beta2=0.999, epsilon=1e-7, momentum=0.0, nesterov=False, rho=0.9)
    kwargs.update(kw)
    ours = optimizers.make_optimizer(name, lr, **kwargs)
    theirs = keras_optimizer(name, lr, **kwargs)

    def grad(w):
        return tf.linalg.matvec(a, w) - b

    for _ in range(100):
        ours.apply([grad(ours_w)], [ours_w])
        theirs.apply_gradients([(grad(keras_w), keras_w)])
    scale = np.maximum(np.abs(keras_w.numpy()), 1e-3)
    assert np.max(np.abs(ours_w.numpy() - keras_w.numpy()) / scale) < 1e-5
    assert not np.allclose(ours_w.numpy(), w0)  # it really moved
