import numpy as np
import pytest
import tensorflow as tf

from gan import networks


def test_seed_mlp_parameter_counts_match_the_keras_tutorial():
    g, d = networks.make_networks("mlp")
    assert networks.count_parameters(g) == 1_489_936
    assert networks.count_parameters(g, trainable=False) == 3_584
    assert networks.count_parameters(d) == 533_505


def test_mlp_layer_order_is_dense_leaky_relu_batchnorm():
    """Recompute the generator by hand from its variables, in the seed's order."""
    tf.random.set_seed(0)
    g = networks.MLPGenerator(latent_dim=4, hidden=(6, 5), image_shape=(2, 2, 1))
    z = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    h = z
    for dense, bn in zip(g.dense_layers, g.norm_layers):
        h = h @ dense.kernel.numpy() + dense.bias.numpy()
        h = np.where(h > 0, h, 0.2 * h)
        h = (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-3) * bn.scale.numpy() + bn.offset.numpy()
    out = np.tanh(h @ g.output_layer.kernel.numpy() + g.output_layer.bias.numpy()).reshape(8, 2, 2, 1)
    np.testing.assert_allclose(g(tf.constant(z), training=True), out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("architecture", sorted(networks.ARCHITECTURES))
def test_shapes_ranges_and_compiled_equals_eager(architecture):
    g, d = networks.make_networks(architecture, networks.NetworkConfig(latent_dim=16))
    z = tf.random.normal([5, 16])
    images = g(z, training=False)
    assert images.shape == (5, 28, 28, 1)
    assert np.all(np.abs(images.numpy()) <= 1.0)
    logits = d(images, training=True)
    assert logits.shape == (5,)
    compiled_g = tf.function(lambda t: g(t, training=False), jit_compile=True)
    compiled_d = tf.function(lambda t: d(t, training=True), jit_compile=True)
    np.testing.assert_allclose(compiled_g(z), images, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(compiled_d(images), logits, rtol=1e-4, atol=1e-4)


def test_sizes_are_configurable():
    config = networks.NetworkConfig(latent_dim=8, g_hidden=(32,), d_hidden=(16, 16, 16))
    g, d = networks.make_networks("mlp", config)
    assert networks.count_parameters(g) == (8 * 32 + 32) + 2 * 32 + (32 * 784 + 784)
    assert networks.count_parameters(d) == (784 * 16 + 16) + 2 * (16 * 16 + 16) + 17


def test_unknown_architecture_lists_choices():
    with pytest.raises(ValueError, match="valid choices: dcgan, mlp"):
        networks.make_networks("resnet")
