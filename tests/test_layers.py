import numpy as np
import pytest
import tensorflow as tf

from conftest import run_in
from gan import layers


def np_same_pad(size, kernel, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def np_conv2d(x, w, stride, padding):
    """Cross-correlation from its definition: y[b,i,j,o] = sum_{a,c,d} x[b, i*s+a, j*s+c, d] w[a,c,d,o]."""
    k = w.shape[0]
    if padding == "SAME":
        (top, bottom), (left, right) = np_same_pad(x.shape[1], k, stride), np_same_pad(x.shape[2], k, stride)
        x = np.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)])
    out_h = (x.shape[1] - k) // stride + 1
    out_w = (x.shape[2] - k) // stride + 1
    y = np.zeros((x.shape[0], out_h, out_w, w.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            y[:, i, j, :] = np.einsum("bacd,acdo->bo", patch, w)
    return y


def np_conv2d_transpose(x, w, stride, padding, out_h, out_w):
    """Scatter form: every input pixel adds w[a, c, :, :] @ x[b, i, j] at (i*s+a-pad, j*s+c-pad)."""
    k = w.shape[0]
    pad_top = np_same_pad(out_h, k, stride)[0] if padding == "SAME" else 0
    pad_left = np_same_pad(out_w, k, stride)[0] if padding == "SAME" else 0
    y = np.zeros((x.shape[0], out_h, out_w, w.shape[2]))
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            for a in range(k):
                for c in range(k):
                    r, q = i * stride + a - pad_top, j * stride + c - pad_left
                    if 0 <= r < out_h and 0 <= q < out_w:
                        y[:, r, q, :] += x[:, i, j, :] @ w[a, c].T
    return y


def test_dense_matches_numpy(mode):
    rng = np.random.default_rng(0)
    layer = layers.Dense(7, input_size=5)
    layer.bias.assign(rng.normal(size=7).astype(np.float32))
    x = rng.normal(size=(4, 5)).astype(np.float32)
    y = run_in(mode, layer, tf.constant(x))
    np.testing.assert_allclose(y, x @ layer.kernel.numpy() + layer.bias.numpy(), rtol=1e-5, atol=1e-6)


def test_dense_init_is_glorot_uniform_with_zero_bias():
    tf.random.set_seed(1)
    layer = layers.Dense(300, input_size=200)
    limit = np.sqrt(6.0 / 500)
    w = layer.kernel.numpy()
    assert np.abs(w).max() <= limit
    # A uniform on [-l, l] has variance l^2 / 3.
    np.testing.assert_allclose(w.var(), limit ** 2 / 3, rtol=0.02)
    assert not layer.bias.numpy().any()


def test_dense_builds_lazily_from_input_shape():
    layer = layers.Dense(3)
    assert not layer.variables
    layer(tf.zeros([2, 6]))
    assert layer.kernel.shape == (6, 3)


def np_batch_norm(x, scale, offset, mean, var, eps):
    return scale * (x - mean) / np.sqrt(var + eps) + offset


@pytest.mark.parametrize("shape", [(16, 5), (4, 3, 3, 5)])
def test_batch_norm_training_mode_and_moving_average_update(mode, shape):
    rng = np.random.default_rng(0)
    bn = layers.BatchNorm(momentum=0.8, epsilon=1e-3, num_features=5)
    bn.scale.assign(rng.uniform(0.5, 2, 5).astype(np.float32))
    bn.offset.assign(rng.normal(size=5).astype(np.float32))
    moving_mean = rng.normal(size=5).astype(np.float32)
    moving_var = rng.uniform(0.5, 2, 5).astype(np.float32)
    bn.moving_mean.assign(moving_mean)
    bn.moving_variance.assign(moving_var)
    x = (3 * rng.normal(size=shape) + 1).astype(np.float32)
    y = run_in(mode, lambda t: bn(t, training=True), tf.constant(x))

    axes = tuple(range(len(shape) - 1))
    batch_mean, batch_var = x.mean(axis=axes), x.var(axis=axes)  # biased variance
    expected = np_batch_norm(x, bn.scale.numpy(), bn.offset.numpy(), batch_mean, batch_var, 1e-3)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_mean, 0.8 * moving_mean + 0.2 * batch_mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance, 0.8 * moving_var + 0.2 * batch_var, rtol=1e-5)


def test_batch_norm_inference_mode_uses_moving_statistics(mode):
    rng = np.random.default_rng(1)
    bn = layers.BatchNorm(momentum=0.5, epsilon=1e-2, num_features=4)
    bn.moving_mean.assign(rng.normal(size=4).astype(np.float32))
    bn.moving_variance.assign(rng.uniform(0.5, 2, 4).astype(np.float32))
    before = bn.moving_mean.numpy().copy()
    x = rng.normal(size=(8, 4)).astype(np.float32)
    y = run_in(mode, lambda t: bn(t, training=False), tf.constant(x))
    expected = np_batch_norm(x, 1.0, 0.0, bn.moving_mean.numpy(), bn.moving_variance.numpy(), 1e-2)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(bn.moving_mean, before)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_matches_numpy(mode, padding, stride):
    rng = np.random.default_rng(2)
    conv = layers.Conv2D(4, 3, stride=stride, padding=padding)
    x = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)
    conv(tf.constant(x))  # build
    conv.bias.assign(rng.normal(size=4).astype(np.float32))
    y = run_in(mode, conv, tf.constant(x))
    expected = np_conv2d(x, conv.kernel.numpy(), stride, padding) + conv.bias.numpy()
    out_h = layers.conv_output_size(7, 3, stride, padding)
    out_w = layers.conv_output_size(6, 3, stride, padding)
    assert y.shape == (2, out_h, out_w, 4) == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("stride,kernel", [(1, 3), (2, 3), (2, 5)])
def test_conv2d_transpose_matches_numpy(mode, padding, stride, kernel):
    rng = np.random.default_rng(3)
    conv = layers.Conv2DTranspose(3, kernel, stride=stride, padding=padding)
    x = rng.normal(size=(2, 4, 5, 2)).astype(np.float32)
    conv(tf.constant(x))
    conv.bias.assign(rng.normal(size=3).astype(np.float32))
    y = run_in(mode, conv, tf.constant(x))
    if padding == "SAME":
        out_h, out_w = 4 * stride, 5 * stride
    else:
        out_h, out_w = (4 - 1) * stride + kernel, (5 - 1) * stride + kernel
    expected = np_conv2d_transpose(x, conv.kernel.numpy(), stride, padding, out_h, out_w)
    assert y.shape == (2, out_h, out_w, 3)
    np.testing.assert_allclose(y, expected + conv.bias.numpy(), rtol=1e-4, atol=1e-4)


def test_conv2d_transpose_is_the_adjoint_of_conv2d():
    """<conv(x), y> == <x, conv_transpose(y)> for the same kernel: the defining property."""
    rng = np.random.default_rng(4)
    conv = layers.Conv2D(3, 5, stride=2, use_bias=False)
    x = tf.constant(rng.normal(size=(1, 8, 8, 2)).astype(np.float32))
    y = conv(x)
    deconv = layers.Conv2DTranspose(2, 5, stride=2, use_bias=False)
    deconv(y)
    deconv.kernel.assign(conv.kernel)
    z = tf.constant(rng.normal(size=y.shape).astype(np.float32))
    np.testing.assert_allclose(tf.reduce_sum(conv(x) * z), tf.reduce_sum(x * deconv(z)), rtol=1e-4)


def test_leaky_relu_matches_definition(mode):
    x = np.linspace(-3, 3, 13).astype(np.float32)
    y = run_in(mode, lambda t: layers.leaky_relu(t, 0.2), tf.constant(x))
    np.testing.assert_allclose(y, np.where(x > 0, x, 0.2 * x), rtol=1e-6)


def test_dropout_keeps_expectation_and_is_identity_at_inference():
    dropout = layers.Dropout(0.25)
    x = tf.ones([200, 100])
    y = dropout(x, training=True, seed=tf.constant([1, 2])).numpy()
    kept = y != 0
    np.testing.assert_allclose(kept.mean(), 0.75, atol=0.01)
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(dropout(x, training=False), x)
    np.testing.assert_array_equal(y, dropout(x, training=True, seed=tf.constant([1, 2])))


def test_flatten_and_reshape_round_trip(mode):
    x = tf.reshape(tf.range(2 * 28 * 28, dtype=tf.float32), [2, 28, 28, 1])
    flat = run_in(mode, layers.Flatten(), x)
    assert flat.shape == (2, 784)
    np.testing.assert_array_equal(run_in(mode, layers.Reshape((28, 28, 1)), flat), x)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="padding"):
        layers.Conv2D(3, 3, padding="FULL")
    with pytest.raises(ValueError, match="momentum"):
        layers.BatchNorm(momentum=1.5)
    with pytest.raises(ValueError, match="Dropout rate"):
        layers.Dropout(1.0)


@pytest.mark.parametrize("shape", [(5, 12), (3, 4, 4, 6)])
def test_layer_norm_matches_numpy(mode, shape):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, shape).astype(np.float32)
    norm = layers.LayerNorm(epsilon=1e-5, num_features=shape[-1])
    scale = rng.normal(size=shape[-1]).astype(np.float32)
    offset = rng.normal(size=shape[-1]).astype(np.float32)
    norm.scale.assign(scale)
    norm.offset.assign(offset)
    axes = tuple(range(1, len(shape)))
    mean = x.mean(axis=axes, keepdims=True)
    variance = x.var(axis=axes, keepdims=True)
    expected = (x - mean) / np.sqrt(variance + 1e-5) * scale + offset
    got = run_in(mode, lambda t: norm(t, training=True), tf.constant(x))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)
    # Per example: one example's output does not depend on the rest of the batch.
    alone = run_in(mode, lambda t: norm(t, training=True), tf.constant(x[:1]))
    np.testing.assert_allclose(alone.numpy(), expected[:1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make_layer,input_shape", [
    (lambda: layers.Dense(7), (4, 13)),
    (lambda: layers.Conv2D(6, 3, stride=2), (2, 8, 8, 5)),
    (lambda: layers.Conv2DTranspose(4, 5, stride=2), (2, 4, 4, 9)),
])
def test_spectral_norm_estimate_converges_to_the_largest_singular_value(make_layer, input_shape):
    """After enough training calls (one power iteration each) sigma is NumPy's largest singular
    value of the kernel as a [-1, out] matrix, and the layer's output is that of W / sigma."""
    tf.random.set_seed(0)
    sn = layers.SpectralNorm(make_layer())
    x = tf.random.normal(input_shape)
    sn(x, training=True)
    kernel = sn.layer.kernel.numpy()
    sigma = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    step = tf.function(lambda t: sn(t, training=True), jit_compile=True)
    for _ in range(200):
        step(x)
    np.testing.assert_allclose(float(sn.sigma()), sigma, rtol=1e-4)
    expected = sn.layer.apply_kernel(x, sn.layer.kernel / sigma)
    np.testing.assert_allclose(sn(x, training=False).numpy(), expected.numpy(), rtol=1e-3,
                               atol=1e-5)


def test_spectral_norm_updates_u_in_training_only_and_passes_gradients_through_sigma():
    tf.random.set_seed(1)
    sn = layers.SpectralNorm(layers.Dense(3, input_size=5))
    x = tf.random.normal([4, 5])
    u0 = sn.u.numpy().copy()
    sn(x, training=False)
    np.testing.assert_array_equal(sn.u.numpy(), u0)
    sn(x, training=True)
    assert not np.allclose(sn.u.numpy(), u0)
    assert not sn.u.trainable
    # d/dW of sum(x W / sigma(W)) differs from that of x W / sigma with sigma held constant.
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(sn(x, training=False))
    full = tape.gradient(y, sn.layer.kernel)
    sigma = tf.constant(float(sn.sigma()))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(sn.layer.apply_kernel(x, sn.layer.kernel / sigma))
    frozen = tape.gradient(y, sn.layer.kernel)
    assert np.abs(full.numpy() - frozen.numpy()).max() > 1e-4


def test_embedding_rows_and_dense_gradient(mode):
    table = layers.Embedding(4, 3)
    labels = tf.constant([2, 0, 2], tf.int32)
    got = run_in(mode, table, labels)
    np.testing.assert_array_equal(got.numpy(), table.kernel.numpy()[[2, 0, 2]])
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(table(labels))
    gradient = tape.gradient(total, table.kernel)
    assert isinstance(gradient, tf.Tensor)  # dense, which every optimizer here takes
    np.testing.assert_array_equal(gradient.numpy()[:, 0], [1, 0, 2, 0])
