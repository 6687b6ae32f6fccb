"""Penalties on the discriminator, as explicit formulas, with their registry by name.

PENALTIES maps a name to a `Penalty`: a function (discriminator, real, fake, rng) -> unweighted
value, which may take D's input gradients with a nested tape, and the rules the trainer and the
validation follow (see `Penalty`). Its weight is the flag --<name>_weight; the run schema makes
that flag from this registry, so a new penalty is one function and one entry here.
Every value is a batch mean.
"""

import dataclasses
from typing import Callable

import tensorflow as tf

from gan import layers


def _batch_std(x):
    """The std over the global batch (all replicas), so that a penalty does not depend on the
    replica count."""
    if layers.num_replicas() == 1:
        return tf.math.reduce_std(x)
    mean = layers.replica_mean(tf.reduce_mean(x))
    return tf.sqrt(layers.replica_mean(tf.reduce_mean(tf.square(x - tf.stop_gradient(mean)))))


# --- penalties on D (each unweighted; the trainer multiplies by --<name>_weight) ---------------

def _flat_squared_norms(gradients):
    """||g_i||^2 of each example's gradient, summed over all but the batch axis."""
    return tf.reduce_sum(tf.square(gradients), axis=list(range(1, gradients.shape.rank)))


def input_gradients(discriminator, inputs, scale=None):
    """dD/dx at each input, by a tape nested inside the caller's: the caller's tape then
    differentiates the penalty with respect to D's weights (double back-propagation).
    grad of sum_i D(x_i) gives each example's own gradient, since D's logits are per example.

    `scale`: float16 training's loss scale. D's backward pass then runs in float16, where small
    gradients flush to zero, so it is taken of scale * sum D and divided by scale after, as the
    outer loss is (PyTorch's AMP recipe for gradient penalties). An overflow shows as a
    non-finite penalty, and the loss scale skips that update as any other."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        total = tf.reduce_sum(discriminator(inputs, training=True))
        if scale is not None:
            total = total * scale
    gradients = tape.gradient(total, inputs)
    return gradients if scale is None else gradients / scale


# Keeps sqrt differentiable where a gradient is exactly zero (d sqrt(s)/ds is infinite at 0).
NORM_EPSILON = 1e-12


def _unit_norm_penalty(discriminator, points, gradient_scale):
    gradients = input_gradients(discriminator, points, gradient_scale)
    norms = tf.sqrt(_flat_squared_norms(gradients) + NORM_EPSILON)
    return tf.reduce_mean(tf.square(norms - 1.0))


def wgan_gp_penalty(discriminator, real, fake, rng, gradient_scale=None):
    """WGAN-GP (Gulrajani et al. 2017, eq. 3 and Algorithm 1):
        E[(||grad_x D(x^)||_2 - 1)^2],  x^ = e x + (1 - e) G(z),  e ~ U[0, 1] per example,
    on random interpolates between a real and a fake example. Paper weight: 10."""
    shape = [tf.shape(real)[0]] + [1] * (real.shape.rank - 1)
    epsilon = rng.uniform(shape, dtype=real.dtype)
    return _unit_norm_penalty(discriminator, epsilon * real + (1.0 - epsilon) * fake,
                              gradient_scale)


def r1_penalty(discriminator, real, fake, rng, gradient_scale=None):
    """R1 (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?", eq. 9):
        1/2 E_r[||grad_x D(x)||^2]  on real data; the weight is the paper's gamma."""
    gradients = input_gradients(discriminator, real, gradient_scale)
    return 0.5 * tf.reduce_mean(_flat_squared_norms(gradients))


def r2_penalty(discriminator, real, fake, rng, gradient_scale=None):
    """R2 (Mescheder et al. 2018, eq. 10): 1/2 E_f[||grad_x D(G(z))||^2] on fake data."""
    gradients = input_gradients(discriminator, fake, gradient_scale)
    return 0.5 * tf.reduce_mean(_flat_squared_norms(gradients))


def dragan_penalty(discriminator, real, fake, rng, gradient_scale=None):
    """DRAGAN (Kodali et al. 2017, "On Convergence and Stability of GANs", eq. 7):
        E[(||grad_x D(x~)||_2 - 1)^2],  x~ = x + std(x) * (u - 1/2),  u ~ U[0, 1] per pixel,
    around the real data only (the perturbation of compare_gan's implementation; std over the
    whole batch). Paper weight: 10."""
    noise = rng.uniform(tf.shape(real), dtype=real.dtype) - 0.5
    return _unit_norm_penalty(discriminator, real + _batch_std(real) * noise, gradient_scale)


@dataclasses.dataclass(frozen=True)
class Penalty:
    """A penalty on D: `function(discriminator, real, fake, rng)` -> unweighted value, with the
    rules the trainer and the validation follow:
    `uses_fake`: in the split update it joins the fake step (else the real step);
    `bounds_gradient`: it bounds D's input gradient, which makes a Wasserstein critic's loss
        meaningful;
    `draws_noise`: it draws from `rng` (a tf.random.Generator, or under several replicas a
        `loop.ReplicaStream`, which has the same draws);
    `takes_gradient_scale`: it takes `gradient_scale=None` (see input_gradients), which the
        trainer passes under float16;
    `help`: the text of its weight flag --<name>_weight."""
    function: Callable
    uses_fake: bool
    help: str
    bounds_gradient: bool = True
    draws_noise: bool = False
    takes_gradient_scale: bool = True


PENALTIES = {
    "gp": Penalty(wgan_gp_penalty, True,
                  "Weight of the WGAN-GP penalty E[(||grad D(x^)|| - 1)^2] on real/fake "
                  "interpolates (Gulrajani et al. 2017; paper: 10). 0 = off.", draws_noise=True),
    "r1": Penalty(r1_penalty, False,
                  "Weight gamma of the R1 penalty gamma/2 E[||grad D(x)||^2] on real data "
                  "(Mescheder et al. 2018). 0 = off."),
    "r2": Penalty(r2_penalty, True,
                  "Weight gamma of the R2 penalty gamma/2 E[||grad D(G(z))||^2] on fake data "
                  "(Mescheder et al. 2018). 0 = off."),
    "dragan": Penalty(dragan_penalty, False,
                      "Weight of the DRAGAN penalty E[(||grad D(x~)|| - 1)^2] around perturbed "
                      "real data (Kodali et al. 2017; paper: 10). 0 = off.", draws_noise=True),
}


def clip_weights(variables, limit):
    """Weight clipping (Arjovsky et al. 2017, Algorithm 1): every weight into [-c, c] after
    each critic update, a crude Lipschitz constraint."""
    for variable in variables:
        variable.assign(tf.clip_by_value(variable, -limit, limit))
