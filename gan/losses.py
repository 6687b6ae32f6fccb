"""Adversarial losses as explicit formulas on discriminator logits, with registries by name.

Notation: l_r = D's logit on real x, l_f = D's logit on G(z); D(.) = sigmoid(logit).
Stability comes from the softplus identities
    log sigmoid(l)     = -softplus(-l)
    log (1 - sigmoid(l)) = -softplus(l)
which are finite for any finite logit (no log(0), no clipping).

A discriminator loss is a pair of terms, one on real logits and one on fake logits, whose sum is the
loss; keeping them apart lets the seed's split update (one step on real, one on fake) share the code.
A generator loss is a function of fake logits. Every value is a batch mean.
"""

import collections

import tensorflow as tf

DiscriminatorLoss = collections.namedtuple("DiscriminatorLoss", ["real_term", "fake_term"])


def _mean(x):
    return tf.reduce_mean(x)


# --- minimax (Goodfellow et al. 2014, "Generative Adversarial Nets", eq. 1) -----------------------

def minimax_d_real(real_logits):
    """-E[log D(x)] = E[softplus(-l_r)]."""
    return _mean(tf.nn.softplus(-real_logits))


def minimax_d_fake(fake_logits):
    """-E[log(1 - D(G(z)))] = E[softplus(l_f)]."""
    return _mean(tf.nn.softplus(fake_logits))


def minimax_d_loss(real_logits, fake_logits):
    """D minimises -[E log D(x) + E log(1 - D(G(z)))] (Goodfellow et al. 2014, eq. 1).

    For fixed p_data and p_g its minimiser is D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Prop. 1).
    """
    return minimax_d_real(real_logits) + minimax_d_fake(fake_logits)


def saturating_g_loss(fake_logits):
    """G minimises E[log(1 - D(G(z)))] = -E[softplus(l_f)]: the minimax game itself.

    d/dl_f = -sigmoid(l_f) -> 0 as D(G(z)) -> 0, so G learns nothing while D rejects its samples
    (Goodfellow et al. 2014, section 3).
    """
    return -_mean(tf.nn.softplus(fake_logits))


def non_saturating_g_loss(fake_logits):
    """G minimises -E[log D(G(z))] = E[softplus(-l_f)] (Goodfellow et al. 2014, section 3).

    Same fixed point as the minimax game, but d/dl_f = sigmoid(l_f) - 1 -> -1 as D(G(z)) -> 0:
    strong gradients early in training. Equal to BCE against "real" labels, as the seed computes it.
    """
    return _mean(tf.nn.softplus(-fake_logits))


# --- least squares (Mao et al. 2017, "Least Squares GANs", eq. 2 with a=0, b=c=1) -----------------

def least_squares_d_real(real_logits):
    """1/2 E[(D(x) - 1)^2] with D the raw output (no sigmoid)."""
    return 0.5 * _mean(tf.square(real_logits - 1.0))


def least_squares_d_fake(fake_logits):
    """1/2 E[D(G(z))^2]."""
    return 0.5 * _mean(tf.square(fake_logits))


def least_squares_g_loss(fake_logits):
    """1/2 E[(D(G(z)) - 1)^2]."""
    return 0.5 * _mean(tf.square(fake_logits - 1.0))


# --- hinge (Lim & Ye 2017; Miyato et al. 2018, eq. 16-17) ------------------------------------------

def hinge_d_real(real_logits):
    """E[max(0, 1 - D(x))]."""
    return _mean(tf.nn.relu(1.0 - real_logits))


def hinge_d_fake(fake_logits):
    """E[max(0, 1 + D(G(z)))]."""
    return _mean(tf.nn.relu(1.0 + fake_logits))


# --- Wasserstein (Arjovsky et al. 2017, eq. 3); the critic needs a Lipschitz constraint ------------

def wasserstein_d_real(real_logits):
    """-E[D(x)]."""
    return -_mean(real_logits)


def wasserstein_d_fake(fake_logits):
    """E[D(G(z))]."""
    return _mean(fake_logits)


def wasserstein_g_loss(fake_logits):
    """-E[D(G(z))]; also the generator loss of the hinge GAN (Miyato et al. 2018, eq. 17)."""
    return -_mean(fake_logits)


D_LOSSES = {
    "minimax": DiscriminatorLoss(minimax_d_real, minimax_d_fake),
    "least_squares": DiscriminatorLoss(least_squares_d_real, least_squares_d_fake),
    "hinge": DiscriminatorLoss(hinge_d_real, hinge_d_fake),
    "wasserstein": DiscriminatorLoss(wasserstein_d_real, wasserstein_d_fake),
}

G_LOSSES = {
    "saturating": saturating_g_loss,
    "non_saturating": non_saturating_g_loss,
    "least_squares": least_squares_g_loss,
    "wasserstein": wasserstein_g_loss,
}


def get_d_loss(name):
    if name not in D_LOSSES:
        raise ValueError(f"unknown discriminator loss {name!r}; valid choices: "
                         f"{', '.join(sorted(D_LOSSES))}")
    return D_LOSSES[name]


def get_g_loss(name):
    if name not in G_LOSSES:
        raise ValueError(f"unknown generator loss {name!r}; valid choices: "
                         f"{', '.join(sorted(G_LOSSES))}")
    return G_LOSSES[name]
