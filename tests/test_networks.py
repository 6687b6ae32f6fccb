import numpy as np
import pytest
import tensorflow as tf

from gan import latent, networks
import helpers


def test_seed_mlp_parameter_counts_match_the_keras_tutorial():
    g, d = networks.make_networks("mlp", helpers.network_config())
    assert networks.count_parameters(g) == 1_489_936
    assert networks.count_parameters(g, trainable=False) == 3_584
    assert networks.count_parameters(d) == 533_505


def test_mlp_layer_order_is_dense_leaky_relu_batchnorm():
    """Recompute the generator by hand from its variables, in the seed's order."""
    tf.random.set_seed(0)
    g = networks.MLPGenerator(
        helpers.network_config(latent_dim=4, g_hidden=(6, 5), image_shape=(2, 2, 1)), 0.8)
    z = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    h = z
    for dense, bn in zip(g.dense_layers, g.norm_layers):
        h = h @ dense.kernel.numpy() + dense.bias.numpy()
        h = np.where(h > 0, h, 0.2 * h)
        h = (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-3) * bn.scale.numpy() + bn.offset.numpy()
    out = np.tanh(h @ g.output_layer.kernel.numpy() + g.output_layer.bias.numpy()).reshape(8, 2, 2, 1)
    np.testing.assert_allclose(g(tf.constant(z), training=True), out, rtol=1e-4, atol=1e-5)


VARIANTS = {
    "plain": {},
    "LN in G, BN in D": dict(g_norm="layer", d_norm="batch"),
    "SN in both, uniform z": dict(g_norm="spectral", d_norm="spectral",
                                  latent_distribution="uniform"),
    "conditional, projection, LN in D": dict(num_classes=10, d_norm="layer"),
    "conditional, concat, no norms": dict(num_classes=10, d_conditioning="concat", g_norm="none"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("architecture", sorted(networks.ARCHITECTURES))
def test_shapes_ranges_and_compiled_equals_eager(architecture, variant):
    g, d = networks.make_networks(architecture, helpers.network_config(
        latent_dim=16, width=8, d_width=8, **VARIANTS[variant]))
    z = tf.random.normal([5, 16])
    labels = tf.constant([0, 3, 9, 3, 1]) if g.num_classes else None
    images = g(z, training=False, labels=labels)
    assert images.shape == (5, 28, 28, 1)
    assert np.all(np.abs(images.numpy()) <= 1.0)
    # Inference mode, where spectral norm leaves u alone and BatchNorm its averages.
    logits = d(images, training=False, labels=labels)
    assert logits.shape == (5,)
    compiled_g = tf.function(lambda t, y: g(t, training=False, labels=y), jit_compile=True)
    compiled_d = tf.function(lambda t, y: d(t, training=False, labels=y), jit_compile=True)
    np.testing.assert_allclose(compiled_g(z, labels), images, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(compiled_d(images, labels), logits, rtol=1e-4, atol=1e-4)
    assert d.per_example == (d.norm != "batch")


@pytest.mark.parametrize("architecture", sorted(networks.ARCHITECTURES))
def test_conditional_networks_use_the_label(architecture):
    """Another label changes G's image and D's logit; a missing or extra label is refused."""
    tf.random.set_seed(0)
    g, d = networks.make_networks(architecture, helpers.network_config(
        latent_dim=16, width=8, d_width=8, num_classes=10))
    z = tf.random.normal([2, 16])
    same_z = tf.concat([z[:1], z[:1]], 0)
    images = g(same_z, training=False, labels=tf.constant([1, 7]))
    assert np.abs(images[0].numpy() - images[1].numpy()).max() > 1e-4
    logits = d(tf.concat([images[:1], images[:1]], 0), training=False,
               labels=tf.constant([1, 7]))
    assert abs(float(logits[0] - logits[1])) > 1e-6
    with pytest.raises(ValueError, match="needs labels"):
        g(z, training=False)
    unconditional, _ = networks.make_networks(architecture, helpers.network_config(
        latent_dim=16, width=8, d_width=8))
    with pytest.raises(ValueError, match="unconditional"):
        unconditional(z, training=False, labels=tf.constant([1, 2]))


def test_projection_discriminator_is_psi_plus_inner_product_with_the_class_embedding():
    """Miyato & Koyama 2018, eq. 3: logit = w . phi(x) + b + embed(y) . phi(x)."""
    tf.random.set_seed(0)
    d = networks.MLPDiscriminator(
        helpers.network_config(d_hidden=(6, 5), image_shape=(2, 2, 1), num_classes=3), 0.8)
    x = np.random.default_rng(0).normal(size=(4, 2, 2, 1)).astype(np.float32)
    y = np.array([0, 2, 1, 2])
    h = x.reshape(4, 4)
    for dense in d.dense_layers:
        h = h @ dense.kernel.numpy() + dense.bias.numpy()
        h = np.where(h > 0, h, 0.2 * h)
    expected = (h @ d.output_layer.kernel.numpy())[:, 0] + d.output_layer.bias.numpy()[0]
    expected += np.sum(d.embed.kernel.numpy()[y] * h, axis=1)
    got = d(tf.constant(x), training=True, labels=tf.constant(y))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_normalizations_change_the_variables_as_declared():
    base = dict(latent_dim=8, width=8, d_width=8)
    plain_g, plain_d = networks.make_networks("dcgan", helpers.network_config(**base))
    sn_g, sn_d = networks.make_networks("dcgan", helpers.network_config(
        g_norm="spectral", d_norm="spectral", **base))
    # Spectral norm: one non-trainable u per linear/conv layer (3 in G, 3 in D), no BN variables.
    assert [v.shape[-1] for v in sn_d.variables if not v.trainable] == [8, 16, 1]
    assert len([v for v in sn_g.variables if not v.trainable]) == 3
    assert len([v for v in plain_g.variables if not v.trainable]) == 4  # BN's moving statistics
    assert networks.count_parameters(plain_d) == networks.count_parameters(sn_d)
    bn_g, bn_d = networks.make_networks("dcgan", helpers.network_config(d_norm="batch", **base))
    # BatchNorm on D's second conv (16 channels) replaces that conv's bias with scale and offset.
    assert networks.count_parameters(bn_d) == networks.count_parameters(plain_d) - 16 + 32


def test_batchnorm_momentum_defaults_to_the_architectures_own():
    mlp_g, _ = networks.make_networks("mlp", helpers.network_config(latent_dim=4))
    dcgan_g, dcgan_d = networks.make_networks("dcgan", helpers.network_config(
        latent_dim=4, width=4, d_width=4, d_norm="batch"))
    assert mlp_g.norm_layers[0].momentum == 0.8
    assert dcgan_g.norm0.momentum == 0.9 and dcgan_d.norm2.momentum == 0.9
    chosen, _ = networks.make_networks("dcgan", helpers.network_config(
        latent_dim=4, width=4, bn_momentum=0.99))
    assert chosen.norm1.momentum == 0.99


@pytest.mark.parametrize("distribution", sorted(latent.DISTRIBUTIONS))
def test_latent_laws(distribution):
    rng = tf.random.Generator.from_seed(0)
    z = latent.draw(rng, 20000, 4, distribution).numpy()
    fixed = latent.fixed(20000, 4, distribution, seed=[1, 2]).numpy()
    for sample in (z, fixed):
        if distribution == "normal":
            assert abs(sample.std() - 1.0) < 0.02 and abs(sample.mean()) < 0.02
        else:
            assert sample.min() >= -1.0 and sample.max() <= 1.0
            assert abs(sample.std() - 1 / np.sqrt(3)) < 0.02


def test_sizes_are_configurable():
    config = helpers.network_config(latent_dim=8, g_hidden=(32,), d_hidden=(16, 16, 16))
    g, d = networks.make_networks("mlp", config)
    assert networks.count_parameters(g) == (8 * 32 + 32) + 2 * 32 + (32 * 784 + 784)
    assert networks.count_parameters(d) == (784 * 16 + 16) + 2 * (16 * 16 + 16) + 17


def test_unknown_architecture_lists_choices():
    choices = ", ".join(sorted(networks.ARCHITECTURES))
    with pytest.raises(ValueError, match=f"valid choices: {choices}"):
        networks.make_networks("resnet", helpers.network_config())
