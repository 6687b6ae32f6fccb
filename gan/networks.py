"""Generators and discriminators, chosen by name from a registry.

Contract shared by every network, which is what lets the trainer stay generic:
  generator(z, training, labels=None) -> images in [-1, 1], shape [B, H, W, C]
  discriminator(images, training, labels=None) -> logits, shape [B]  (the sigmoid lives in the losses)
  generator.latent_dim, generator.latent_distribution: the law of z (see `gan.latent`).
  network.num_classes: 0 for an unconditional network; else `labels` (int [B]) is required.
  discriminator.per_example: True when each logit depends on its own image alone (no batch
      statistics); the trainer then runs D once on real and fake stacked, which is faster.

Normalization is chosen per network (`g_norm`, `d_norm`) from `gan.normalizations`. Batch and
layer norm sit on the hidden layers: G's output layer and D's first and last layers are never
normalized (Radford et al. 2016's rule).

Conditioning (num_classes > 0):
  G, "concat": z is concatenated with the one-hot label. G's first layer then adds a learned
      per-class vector (its rows for the one-hot part), which is exactly a label embedding
      concatenated with z (Mirza & Osindero 2014).
  D, "concat": the one-hot label is concatenated with D's input: to the flattened image (MLP), or as
      constant image planes (DCGAN).
  D, "projection" (Miyato & Koyama 2018, eq. 3): logit = psi(phi(x)) + <embed(y), phi(x)>, phi(x)
      D's last features before its output layer.

Mixed precision (`NetworkConfig.compute_dtype` bfloat16 or float16): a network casts its input
to that dtype, its layers compute in it (see `layers`), and it returns float32, so that losses and
penalties are always computed in float32 on float32 logits and images. Variables stay float32.

To add an architecture, write the two classes here and register them; nothing else changes.
"""

import dataclasses
import math
from typing import Callable, Optional

import tensorflow as tf

from gan import layers, registry
from gan.normalizations import apply, feature_norm, linear, normalization, normalize


G_CONDITIONINGS = ("concat",)
D_CONDITIONINGS = ("projection", "concat")


def _check_choice(what, value, choices):
    registry.lookup(choices, value, what)


class _Conditional(tf.Module):
    """What every network shares: its class count and the check that labels come when needed."""

    num_classes = 0
    compute_dtype = tf.float32  # set by `_make` from NetworkConfig.compute_dtype

    def _input(self, x):
        return tf.cast(x, self.compute_dtype)

    @staticmethod
    def _output(y):
        return tf.cast(y, tf.float32)

    def _labels(self, labels, batch_like):
        if not self.num_classes:
            if labels is not None:
                raise ValueError(f"{self.name} is unconditional but was given labels")
            return None
        if labels is None:
            raise ValueError(f"{self.name} is conditional ({self.num_classes} classes) and needs "
                             "labels")
        return tf.one_hot(labels, self.num_classes, dtype=batch_like.dtype)


class _Discriminator(_Conditional):
    """Projection and concat conditioning on top of phi(x), D's last features."""

    def _make_head(self, num_features, num_classes, conditioning, norm, lazy_output=False):
        self.num_classes = int(num_classes)
        self.conditioning = conditioning
        # lazy_output sizes the output layer on first call, after the layers below it (the order in
        # which the initial weights are drawn, which a seeded run's reproducibility depends on).
        self.output_layer = linear(
            layers.Dense(1, input_size=None if lazy_output else num_features), norm)
        if self.num_classes and conditioning == "projection":
            self.embed = linear(layers.Embedding(self.num_classes, num_features), norm)

    def _head(self, features, training, labels):
        logits = tf.squeeze(apply(self.output_layer, features, training), axis=-1)
        if self.num_classes and self.conditioning == "projection":
            embedding = tf.cast(apply(self.embed, labels, training), features.dtype)
            logits += tf.reduce_sum(embedding * features, axis=-1)
        return logits

    @property
    def per_example(self):
        """No batch statistics: the trainer may stack real and fake in one batch."""
        return normalization(self.norm).per_example


# --- MLP ------------------------------------------------------------------------------------------

class MLPGenerator(_Conditional):
    """The seed's generator: z -> [Dense -> LeakyReLU(0.2) -> norm] x len(hidden) -> Dense -> tanh.

    The seed's order (activation, then BatchNorm) is kept for every normalization. With the
    defaults (hidden 256, 512, 1024; batch norm, momentum 0.8; 28x28x1) it has 1,489,936 trainable
    parameters plus 3,584 moving statistics, as the Keras tutorial's model.
    """

    def __init__(self, config, bn_momentum, leaky_slope=0.2, name="generator"):
        super().__init__(name=name)
        self.norm = norm = config.g_norm
        normalization(norm)
        self.latent_dim = int(config.latent_dim)
        self.latent_distribution = config.latent_distribution
        self.num_classes = int(config.num_classes)
        self.image_shape = tuple(int(d) for d in config.image_shape)
        self.leaky_slope = leaky_slope
        with self.name_scope:
            self.dense_layers = []
            self.norm_layers = []
            fan_in = self.latent_dim + self.num_classes
            for width in config.g_hidden:
                self.dense_layers.append(linear(layers.Dense(width, input_size=fan_in), norm))
                self.norm_layers.append(feature_norm(norm, width, config, bn_momentum))
                fan_in = width
            self.output_layer = linear(
                layers.Dense(math.prod(self.image_shape), input_size=fan_in), norm)
            self.reshape = layers.Reshape(self.image_shape)

    def __call__(self, z, training, labels=None):
        z = self._input(z)
        one_hot = self._labels(labels, z)
        h = z if one_hot is None else tf.concat([z, one_hot], axis=-1)
        for dense, norm in zip(self.dense_layers, self.norm_layers):
            h = normalize(norm, layers.leaky_relu(apply(dense, h, training), self.leaky_slope),
                           training)
        return self._output(self.reshape(tf.tanh(apply(self.output_layer, h, training))))


class MLPDiscriminator(_Discriminator):
    """The seed's discriminator: flatten -> [Dense -> norm -> LeakyReLU(0.2)] x len(hidden) -> Dense 1.

    With the defaults (hidden 512, 256; no normalization; 28x28x1) it has 533,505 parameters. The
    first hidden layer is never batch/layer normalized (Radford et al. 2016).
    """

    def __init__(self, config, bn_momentum, leaky_slope=0.2, name="discriminator"):
        super().__init__(name=name)
        self.norm = norm = config.d_norm
        normalization(norm)
        num_classes, conditioning = config.num_classes, config.d_conditioning
        _check_choice("D conditioning", conditioning, D_CONDITIONINGS)
        self.image_shape = tuple(int(d) for d in config.image_shape)
        self.leaky_slope = leaky_slope
        with self.name_scope:
            self.flatten = layers.Flatten()
            self.dense_layers = []
            self.norm_layers = []
            fan_in = math.prod(self.image_shape)
            if num_classes and conditioning == "concat":
                fan_in += num_classes
            for i, width in enumerate(config.d_hidden):
                self.dense_layers.append(linear(layers.Dense(width, input_size=fan_in), norm))
                self.norm_layers.append(
                    feature_norm(norm, width, config, bn_momentum) if i > 0 else None)
                fan_in = width
            self._make_head(fan_in, num_classes, conditioning, norm)

    def __call__(self, images, training, labels=None):
        images = self._input(images)
        one_hot = self._labels(labels, images)
        h = self.flatten(images)
        if one_hot is not None and self.conditioning == "concat":
            h = tf.concat([h, one_hot], axis=-1)
        for dense, norm in zip(self.dense_layers, self.norm_layers):
            h = layers.leaky_relu(normalize(norm, apply(dense, h, training), training),
                                  self.leaky_slope)
        return self._output(self._head(h, training, labels))


# --- DCGAN ----------------------------------------------------------------------------------------

class DCGANGenerator(_Conditional):
    """DCGAN generator (Radford et al. 2016) for 28x28 images.

    z -> Dense(7*7*4w) -> norm -> ReLU -> ConvT(2w, 5, stride 2) -> norm -> ReLU
      -> ConvT(C, 5, stride 2) -> tanh.   (w = `width`)
    """

    def __init__(self, config, bn_momentum, name="generator"):
        super().__init__(name=name)
        self.norm = norm = config.g_norm
        width = config.width
        self.latent_dim = int(config.latent_dim)
        self.latent_distribution = config.latent_distribution
        self.num_classes = int(config.num_classes)
        self.image_shape = tuple(int(d) for d in config.image_shape)
        height, width_px, channels = self.image_shape
        if height % 4 or width_px % 4:
            raise ValueError(f"DCGAN needs image sides divisible by 4, got {self.image_shape}")
        self.base_shape = (height // 4, width_px // 4, 4 * width)
        bias = not normalization(norm).cancels_bias
        with self.name_scope:
            self.project = linear(layers.Dense(math.prod(self.base_shape),
                                                input_size=self.latent_dim + self.num_classes,
                                                use_bias=bias), norm)
            self.norm0 = feature_norm(norm, self.base_shape[-1], config, bn_momentum)
            self.up1 = linear(layers.Conv2DTranspose(2 * width, 5, stride=2, use_bias=bias), norm)
            self.norm1 = feature_norm(norm, 2 * width, config, bn_momentum)
            self.up2 = linear(layers.Conv2DTranspose(channels, 5, stride=2), norm)

    def __call__(self, z, training, labels=None):
        z = self._input(z)
        one_hot = self._labels(labels, z)
        h = z if one_hot is None else tf.concat([z, one_hot], axis=-1)
        h = tf.reshape(apply(self.project, h, training), (-1,) + self.base_shape)
        h = tf.nn.relu(normalize(self.norm0, h, training))
        h = tf.nn.relu(normalize(self.norm1, apply(self.up1, h, training), training))
        return self._output(tf.tanh(apply(self.up2, h, training)))


class DCGANDiscriminator(_Discriminator):
    """DCGAN discriminator: Conv(w, 5, s2) -> LReLU -> Conv(2w, 5, s2) -> norm -> LReLU -> flatten
    -> Dense 1. The first conv is never batch/layer normalized (Radford et al. 2016)."""

    def __init__(self, config, bn_momentum, leaky_slope=0.2, name="discriminator"):
        super().__init__(name=name)
        self.norm = norm = config.d_norm
        width, num_classes, conditioning = config.d_width, config.num_classes, config.d_conditioning
        _check_choice("D conditioning", conditioning, D_CONDITIONINGS)
        self.image_shape = tuple(int(d) for d in config.image_shape)
        self.leaky_slope = leaky_slope
        height, width_px, _ = self.image_shape
        features = -(-height // 4) * -(-width_px // 4) * 2 * width
        with self.name_scope:
            self.conv1 = linear(layers.Conv2D(width, 5, stride=2), norm)
            self.conv2 = linear(layers.Conv2D(2 * width, 5, stride=2,
                                               use_bias=not normalization(norm).cancels_bias),
                                 norm)
            self.norm2 = feature_norm(norm, 2 * width, config, bn_momentum)
            self.flatten = layers.Flatten()
            self._make_head(features, num_classes, conditioning, norm, lazy_output=True)

    def __call__(self, images, training, labels=None):
        images = self._input(images)
        one_hot = self._labels(labels, images)
        h = images
        if one_hot is not None and self.conditioning == "concat":
            planes = tf.ones_like(images[..., :1]) * one_hot[:, None, None, :]
            h = tf.concat([h, planes], axis=-1)
        h = layers.leaky_relu(apply(self.conv1, h, training), self.leaky_slope)
        h = normalize(self.norm2, apply(self.conv2, h, training), training)
        h = self.flatten(layers.leaky_relu(h, self.leaky_slope))
        return self._output(self._head(h, training, labels))


# --- the registry ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Sizes and choices of a generator/discriminator pair; each architecture reads what it uses.
    Made from a run's settings by `gan.build.network_config`, where every default lives.
    bn_momentum None = the architecture's own default."""
    latent_dim: int
    latent_distribution: str
    image_shape: tuple
    g_hidden: tuple  # mlp
    d_hidden: tuple  # mlp
    width: int  # dcgan generator
    d_width: int  # dcgan discriminator
    bn_momentum: Optional[float]
    bn_epsilon: float
    g_norm: str
    d_norm: str
    num_classes: int
    g_conditioning: str
    d_conditioning: str
    compute_dtype: str  # bfloat16 / float16: mixed precision (see the module doc)
    sync_batchnorm: bool  # under several replicas, BatchNorm on the global batch


COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def _make_mlp(config, momentum):
    return MLPGenerator(config, momentum), MLPDiscriminator(config, momentum)


def _make_dcgan(config, momentum):
    return DCGANGenerator(config, momentum), DCGANDiscriminator(config, momentum)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """make(NetworkConfig, bn_momentum) -> (generator, discriminator); bn_momentum: the default
    when the config leaves it None; xla: whether its training loop runs faster under XLA on CPU
    (what --jit_compile=auto follows; XLA's CPU convolutions and their gradients are many times
    slower than TensorFlow's own kernels, see experiments/benchmark.py)."""
    make: Callable
    bn_momentum: float
    xla: bool
    help: str


ARCHITECTURES = {
    "mlp": Architecture(_make_mlp, 0.8, True,
                        "the seed's MLPs (BatchNorm momentum 0.8, the Keras tutorial's)"),
    "dcgan": Architecture(_make_dcgan, 0.9, False,
                          "DCGAN (Radford et al. 2016; BatchNorm momentum 0.9, its code's decay)"),
}


def get_architecture(name):
    return registry.lookup(ARCHITECTURES, name, "architecture")


def _make(architecture, config):
    """(generator, discriminator) of an architecture, unbuilt, with its own BatchNorm momentum
    unless the config sets one."""
    entry = get_architecture(architecture)
    _check_choice("compute dtype", config.compute_dtype, COMPUTE_DTYPES)
    momentum = entry.bn_momentum if config.bn_momentum is None else config.bn_momentum
    networks = entry.make(config, momentum)
    for network in networks:
        network.compute_dtype = tf.as_dtype(config.compute_dtype)
    return networks


def make_networks(architecture, config):
    """Builds (generator, discriminator) by architecture name, with every variable created."""
    generator, discriminator = _make(architecture, config)
    build(generator, discriminator)
    return generator, discriminator


def make_generator(architecture, config):
    """A generator alone (e.g. the EMA copy), built."""
    generator, _ = _make(architecture, config)
    generator(tf.zeros([2, generator.latent_dim]), training=False,
              labels=_build_labels(generator))
    return generator


def _build_labels(network):
    return tf.zeros([2], tf.int32) if network.num_classes else None


def build(generator, discriminator):
    """Runs each network once eagerly so that lazily created variables exist before tracing."""
    z = tf.zeros([2, generator.latent_dim])
    images = generator(z, training=False, labels=_build_labels(generator))
    discriminator(images, training=False, labels=_build_labels(discriminator))


def count_parameters(module, trainable=True):
    """Number of scalars in the module's trainable (or non-trainable) variables."""
    variables = module.trainable_variables if trainable else [
        v for v in module.variables if not v.trainable]
    return sum(math.prod(v.shape) for v in variables)
