"""Generators and discriminators, chosen by name from a registry.

Contract shared by every network, which is what lets the trainer stay generic:
  generator(z, training) -> images in [-1, 1], shape [B, H, W, C]
  discriminator(images, training) -> logits, shape [B]  (the sigmoid lives in the losses)
  discriminator.per_example: True when each logit depends on its own image alone (no batch
      statistics); the trainer then runs D once on real and fake stacked, which is faster.
To add an architecture, write the two classes here and register them; nothing else changes.
"""

import dataclasses
import math

import tensorflow as tf

from gan import layers


class MLPGenerator(tf.Module):
    """The seed's generator: z -> [Dense -> LeakyReLU(0.2) -> BatchNorm] x len(hidden) -> Dense -> tanh.

    With the defaults (hidden 256, 512, 1024; momentum 0.8; 28x28x1) it has 1,489,936 trainable
    parameters plus 3,584 moving statistics, as the Keras tutorial's model.
    """

    def __init__(self, latent_dim=100, hidden=(256, 512, 1024), image_shape=(28, 28, 1),
                 leaky_slope=0.2, bn_momentum=0.8, bn_epsilon=1e-3, name="generator"):
        super().__init__(name=name)
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.leaky_slope = leaky_slope
        with self.name_scope:
            self.dense_layers = []
            self.norm_layers = []
            fan_in = self.latent_dim
            for width in hidden:
                self.dense_layers.append(layers.Dense(width, input_size=fan_in))
                self.norm_layers.append(
                    layers.BatchNorm(bn_momentum, bn_epsilon, num_features=width))
                fan_in = width
            self.output_layer = layers.Dense(math.prod(self.image_shape), input_size=fan_in)
            self.reshape = layers.Reshape(self.image_shape)

    def __call__(self, z, training):
        h = z
        for dense, norm in zip(self.dense_layers, self.norm_layers):
            h = norm(layers.leaky_relu(dense(h), self.leaky_slope), training)
        return self.reshape(tf.tanh(self.output_layer(h)))


class MLPDiscriminator(tf.Module):
    """The seed's discriminator: flatten -> [Dense -> LeakyReLU(0.2)] x len(hidden) -> Dense 1 (logit).

    With the defaults (hidden 512, 256; 28x28x1) it has 533,505 parameters.
    """

    per_example = True  # no batch statistics: the trainer may stack real and fake in one batch

    def __init__(self, hidden=(512, 256), image_shape=(28, 28, 1), leaky_slope=0.2,
                 name="discriminator"):
        super().__init__(name=name)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.leaky_slope = leaky_slope
        with self.name_scope:
            self.flatten = layers.Flatten()
            self.dense_layers = []
            fan_in = math.prod(self.image_shape)
            for width in hidden:
                self.dense_layers.append(layers.Dense(width, input_size=fan_in))
                fan_in = width
            self.output_layer = layers.Dense(1, input_size=fan_in)

    def __call__(self, images, training):
        del training  # no layer here behaves differently in training
        h = self.flatten(images)
        for dense in self.dense_layers:
            h = layers.leaky_relu(dense(h), self.leaky_slope)
        return tf.squeeze(self.output_layer(h), axis=-1)


class DCGANGenerator(tf.Module):
    """DCGAN generator (Radford et al. 2016) for 28x28 images.

    z -> Dense(7*7*4w) -> BN -> ReLU -> ConvT(2w, 5, stride 2) -> BN -> ReLU
      -> ConvT(C, 5, stride 2) -> tanh.   (w = `width`, default 64)
    """

    def __init__(self, latent_dim=100, width=64, image_shape=(28, 28, 1), bn_momentum=0.9,
                 bn_epsilon=1e-3, name="generator"):
        super().__init__(name=name)
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(d) for d in image_shape)
        height, width_px, channels = self.image_shape
        if height % 4 or width_px % 4:
            raise ValueError(f"DCGAN needs image sides divisible by 4, got {self.image_shape}")
        self.base_shape = (height // 4, width_px // 4, 4 * width)
        with self.name_scope:
            self.project = layers.Dense(math.prod(self.base_shape), input_size=self.latent_dim,
                                        use_bias=False)
            self.norm0 = layers.BatchNorm(bn_momentum, bn_epsilon, num_features=self.base_shape[-1])
            self.up1 = layers.Conv2DTranspose(2 * width, 5, stride=2, use_bias=False)
            self.norm1 = layers.BatchNorm(bn_momentum, bn_epsilon, num_features=2 * width)
            self.up2 = layers.Conv2DTranspose(channels, 5, stride=2)

    def __call__(self, z, training):
        h = tf.reshape(self.project(z), (-1,) + self.base_shape)
        h = tf.nn.relu(self.norm0(h, training))
        h = tf.nn.relu(self.norm1(self.up1(h), training))
        return tf.tanh(self.up2(h))


class DCGANDiscriminator(tf.Module):
    """DCGAN discriminator: Conv(w, 5, s2) -> LReLU -> Conv(2w, 5, s2) -> LReLU -> flatten -> Dense 1."""

    per_example = True  # no batch statistics: the trainer may stack real and fake in one batch

    def __init__(self, width=64, image_shape=(28, 28, 1), leaky_slope=0.2, name="discriminator"):
        super().__init__(name=name)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.leaky_slope = leaky_slope
        with self.name_scope:
            self.conv1 = layers.Conv2D(width, 5, stride=2)
            self.conv2 = layers.Conv2D(2 * width, 5, stride=2)
            self.flatten = layers.Flatten()
            self.output_layer = layers.Dense(1)

    def __call__(self, images, training):
        del training
        h = layers.leaky_relu(self.conv1(images), self.leaky_slope)
        h = layers.leaky_relu(self.conv2(h), self.leaky_slope)
        return tf.squeeze(self.output_layer(self.flatten(h)), axis=-1)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Sizes of a generator/discriminator pair; each architecture reads the fields it uses."""
    latent_dim: int = 100
    image_shape: tuple = (28, 28, 1)
    g_hidden: tuple = (256, 512, 1024)  # mlp
    d_hidden: tuple = (512, 256)  # mlp
    width: int = 64  # dcgan
    bn_momentum: float = 0.8
    bn_epsilon: float = 1e-3


def _make_mlp(config):
    return (MLPGenerator(config.latent_dim, config.g_hidden, config.image_shape,
                         bn_momentum=config.bn_momentum, bn_epsilon=config.bn_epsilon),
            MLPDiscriminator(config.d_hidden, config.image_shape))


def _make_dcgan(config):
    return (DCGANGenerator(config.latent_dim, config.width, config.image_shape,
                           bn_momentum=config.bn_momentum, bn_epsilon=config.bn_epsilon),
            DCGANDiscriminator(config.width, config.image_shape))


# Architecture name -> function(NetworkConfig) returning (generator, discriminator).
ARCHITECTURES = {
    "mlp": _make_mlp,
    "dcgan": _make_dcgan,
}


def make_networks(architecture, config=NetworkConfig()):
    """Builds (generator, discriminator) by architecture name, with every variable created."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; valid choices: "
                         f"{', '.join(sorted(ARCHITECTURES))}")
    generator, discriminator = ARCHITECTURES[architecture](config)
    build(generator, discriminator, config.latent_dim)
    return generator, discriminator


def build(generator, discriminator, latent_dim):
    """Runs each network once eagerly so that lazily created variables exist before tracing."""
    z = tf.zeros([2, latent_dim])
    images = generator(z, training=False)
    discriminator(images, training=False)


def count_parameters(module, trainable=True):
    """Number of scalars in the module's trainable (or non-trainable) variables."""
    variables = module.trainable_variables if trainable else [
        v for v in module.variables if not v.trainable]
    return sum(math.prod(v.shape) for v in variables)
