"""The GAN's training state as one tf.Module (what a checkpoint holds), and G's moving average."""

import numpy as np
import tensorflow as tf

from gan import latent, layers, optimizers

# Batches of fresh noise whose mean BatchNorm statistics the averaged G gets.
EMA_BATCHNORM_BATCHES = 50


def update_ema(average, source, decay):
    """One step of G's exponential moving average (Yazici et al. 2019, "The Unusual Effectiveness
    of Averaging in GAN Training", eq. 2):  theta_ema <- decay * theta_ema + (1 - decay) * theta
    for every trainable variable. The non-trainable ones (BatchNorm's moving statistics, spectral
    norm's u) are copied, not averaged: they describe G's current activations, and an average
    of past statistics matches no network."""
    for ema, value in zip(average.trainable_variables, source.trainable_variables):
        ema.assign(decay * ema + (1.0 - decay) * value)
    for ema, value in zip(_non_trainable(average), _non_trainable(source)):
        ema.assign(value)


def recompute_batchnorm(generator, batch_size, seed, num_batches=EMA_BATCHNORM_BATCHES):
    """Sets every BatchNorm's moving statistics in `generator` to the mean of its batch
    statistics over `num_batches` training-mode passes of `batch_size` fresh samples: the
    statistics of these weights' own activations (for G's moving average, whose weights are not
    G's). The noise is fixed by `seed`, so the result depends on the weights only."""
    norms = [m for m in generator.submodules if isinstance(m, layers.BatchNorm)]
    if not norms:
        return
    noise = latent.fixed(batch_size * num_batches, generator.latent_dim,
                         generator.latent_distribution, seed=[seed, latent.BATCHNORM_SALT])
    labels = None
    if generator.num_classes:
        labels = tf.constant(np.arange(batch_size * num_batches) % generator.num_classes,
                             tf.int32)
    momenta = [norm.momentum for norm in norms]
    try:
        for k in range(num_batches):
            for norm in norms:  # moving <- (k * moving + batch) / (k + 1): the running mean
                norm.momentum = k / (k + 1)
            batch = slice(k * batch_size, (k + 1) * batch_size)
            generator(noise[batch], training=True,
                      labels=None if labels is None else labels[batch])
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum


def copy_weights(target, source):
    for destination, value in zip(target.variables, source.variables):
        destination.assign(value)


def _non_trainable(module):
    return [v for v in module.variables if not v.trainable]


class GANState(tf.Module):
    """Everything a checkpoint must hold: both networks, both optimizers, the step, the RNG and,
    when on, G's moving average (which starts as a copy of G) and, for float16 training
    (`loss_scaling`), one dynamic loss scale per network."""

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, seed,
                 generator_ema=None, loss_scaling=False, ema_batchnorm_batch_size=0):
        super().__init__(name="gan_state")
        self._seed = int(seed)
        # > 0: the averaged G's BatchNorm statistics are recomputed on batches of this size.
        self._ema_batchnorm_batch_size = int(ema_batchnorm_batch_size)
        # The step whose averaged weights the statistics were last fitted to: a checkpoint, a
        # grid and an evaluation at one step need one fit (the weights change only by stepping).
        self._ema_batchnorm_step = None
        if loss_scaling:
            self.g_loss_scale = optimizers.DynamicLossScale(name="g_loss_scale")
            self.d_loss_scale = optimizers.DynamicLossScale(name="d_loss_scale")
        if generator_ema is not None:
            shapes = [v.shape for v in generator.variables]
            if [v.shape for v in generator_ema.variables] != shapes:
                raise ValueError("generator_ema must be a generator of the same architecture")
            copy_weights(generator_ema, generator)
            self.generator_ema = generator_ema
        self.generator = generator
        self.discriminator = discriminator
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # Philox state: saved in the checkpoint, so a resumed run draws the same numbers.
        self.rng = tf.random.Generator.from_seed(seed)
        g_optimizer.build(generator.trainable_variables)
        d_optimizer.build(discriminator.trainable_variables)

    @property
    def sampling_generator(self):
        """The generator that samples, evaluation and export use: the moving average when on."""
        return getattr(self, "generator_ema", None) or self.generator

    def fit_ema_batchnorm(self):
        """Before the averaged G samples or is saved: its own BatchNorm statistics, when the run
        recomputes them (G's copied ones otherwise)."""
        if getattr(self, "generator_ema", None) is None or not self._ema_batchnorm_batch_size:
            return
        step = int(self.step.numpy())
        if step != self._ema_batchnorm_step:
            recompute_batchnorm(self.generator_ema, self._ema_batchnorm_batch_size, self._seed)
            self._ema_batchnorm_step = step

    @property
    def sampling_generator_name(self):
        return "ema" if getattr(self, "generator_ema", None) is not None else "raw"
