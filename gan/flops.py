"""The analytic compute of a training: FLOPs and images per iteration of a RunConfig, counted
from its networks' matmuls and convolutions (the benchmark's GFLOP/s and a study's compute axis
use it).

One multiply-add is 2 FLOPs. A forward pass costs 2 * MACs per example; its backward pass twice
that (the gradients of the inputs and of the weights), less the input gradient of the first
layer, which nothing uses. Per iteration:
- each of the d_steps D updates: G's forward pass on a batch of noise, D's forward and backward
  passes on the real and the fake batch (the split update does the same work in two halves);
- each input-gradient penalty on (its share of, with penalty_every) those D updates: D's forward
  and input-gradient passes on one batch, and the double back-propagation through them, which
  costs as much again: 2 * (forward + input gradient), as XLA compiles it
  (tests/test_benchmark.py);
- the G update: G's forward pass, D's forward pass and its input gradient, and G's backward pass.
Elementwise work (activations, normalizations, the losses, the optimizers) is left out: the
matmuls dominate every shipped architecture.
"""

import math


def layer_macs(network, inputs, labels=None):
    """Multiply-adds per example of each matmul and convolution of a network, in call order,
    recorded while it runs on `inputs`: a*b for a Dense [a, b]; for a convolution, its kernel's
    size times the positions it is applied at (the output's for Conv2D, the input's for the
    transposed one, which scatters each input pixel through the whole kernel)."""
    from gan import layers
    macs = []
    originals = {cls: cls.apply_kernel for cls in (layers.Dense, layers.Conv2D,
                                                   layers.Conv2DTranspose)}

    def recording(cls):
        def apply_kernel(self, x, kernel):
            y = originals[cls](self, x, kernel)
            positions = {layers.Dense: 1, layers.Conv2D: math.prod(y.shape[1:3]),
                         layers.Conv2DTranspose: math.prod(x.shape[1:3])}[cls]
            macs.append(positions * math.prod(kernel.shape))
            return y
        return apply_kernel
    for cls in originals:
        cls.apply_kernel = recording(cls)
    try:
        output = network(inputs, training=False, labels=labels)
    finally:
        for cls, original in originals.items():
            cls.apply_kernel = original
    return macs, output


def _forward(macs, n):
    return 2 * n * sum(macs)


def _input_gradients(macs, n, skip_first):
    return 2 * n * sum(macs[1 if skip_first else 0:])


def network_macs(config):
    """(G's MACs per example by layer, D's)."""
    import tensorflow as tf
    from gan import build, networks
    generator, discriminator = networks.make_networks(config.model.architecture,
                                                      build.network_config(config))
    labels = tf.zeros([2], tf.int32) if config.model.conditional else None
    g_macs, fakes = layer_macs(generator, tf.zeros([2, config.model.latent_dim]), labels)
    d_macs, _ = layer_macs(discriminator, fakes, labels)
    return g_macs, d_macs


def flops_per_iteration(config):
    """FLOPs of one training iteration of a RunConfig (see the module docstring)."""
    g_macs, d_macs = network_macs(config)
    batch = config.schedule.batch_size
    g_fwd, d_fwd = _forward(g_macs, batch), _forward(d_macs, batch)
    d_step = (g_fwd + 2 * _forward(d_macs, 2 * batch)
              + _input_gradients(d_macs, 2 * batch, True))
    penalty = 2 * (d_fwd + _input_gradients(d_macs, batch, False))
    penalties = len(config.game.active_penalties()) * penalty / config.game.penalty_every
    g_step = (g_fwd + d_fwd + _input_gradients(d_macs, batch, False) + g_fwd
              + _input_gradients(g_macs, batch, True))
    return config.game.d_steps * (d_step + penalties) + g_step


def images_per_iteration(config):
    """Real images D sees per iteration: a batch per D update."""
    return config.game.d_steps * config.schedule.batch_size
