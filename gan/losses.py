"""Adversarial losses as explicit formulas on logits, with registries by name.

Notation: l_r = D's logit on real x, l_f = D's logit on G(z); D(.) = sigmoid(logit) where the loss
reads logits as log-odds; E_r, E_f = batch means over real and fake examples.
Stability comes from the softplus identities
    log sigmoid(l)       = -softplus(-l)
    log (1 - sigmoid(l)) = -softplus(l)
which are finite for any finite logit (no log(0), no clipping).

Two registries, each of which the trainer reads by name and nothing else:
  D_LOSSES:  a `DiscriminatorLoss`: named parts whose sum is D's loss. A separable loss (a real
             term on l_r plus a fake term on l_f) also serves the seed's split update, one step
             on each term. Relativistic losses compare l_r with l_f inside one term.
  G_LOSSES:  a `GeneratorLoss`: a function of (l_f, l_r); l_r is computed only for losses that
             read it (the relativistic ones).
The penalties on D are in `gan.penalties`. `combination_problems` refuses pairings of losses and
penalties known not to work, each with the reason in one line.
Every value is a batch mean.
"""

import dataclasses
from typing import Callable, Optional

import tensorflow as tf

from gan import layers, registry
from gan.penalties import PENALTIES


def _mean(x):
    return tf.reduce_mean(x)


# A loss is the mean of per-example terms; under several replicas each takes its own examples' mean
# and the trainer averages the gradients. A batch *statistic* inside a term (RaGAN's mean logit) is
# instead taken over the global batch, so the loss does not depend on the replica count.

def _batch_mean(x):
    return layers.replica_mean(tf.reduce_mean(x))


# --- minimax (Goodfellow et al. 2014, "Generative Adversarial Nets", eq. 1) -----------------------

def minimax_d_real(real_logits):
    """-E_r[log D(x)] = E_r[softplus(-l_r)]."""
    return _mean(tf.nn.softplus(-real_logits))


def minimax_d_fake(fake_logits):
    """-E_f[log(1 - D(G(z)))] = E_f[softplus(l_f)].

    With minimax_d_real, D minimises -[E log D(x) + E log(1 - D(G(z)))] (eq. 1), whose minimiser
    for fixed p_data and p_g is D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Prop. 1).
    """
    return _mean(tf.nn.softplus(fake_logits))


def smoothed_minimax_d_real(smoothing):
    """One-sided label smoothing (Salimans et al. 2016, "Improved Techniques for Training GANs",
    section 3.4): the real target is 1 - a instead of 1, fakes keep target 0. Binary cross-entropy
    against 1 - a:  -E_r[(1 - a) log D(x) + a log(1 - D(x))]
                  =  E_r[(1 - a) softplus(-l_r) + a softplus(l_r)]."""
    def real_term(real_logits):
        return _mean((1.0 - smoothing) * tf.nn.softplus(-real_logits)
                     + smoothing * tf.nn.softplus(real_logits))
    return real_term


def saturating_g_loss(fake_logits, real_logits=None):
    """G minimises E_f[log(1 - D(G(z)))] = -E_f[softplus(l_f)]: the minimax game itself.

    d/dl_f = -sigmoid(l_f) -> 0 as D(G(z)) -> 0, so G learns nothing while D rejects its samples
    (Goodfellow et al. 2014, section 3).
    """
    return -_mean(tf.nn.softplus(fake_logits))


def non_saturating_g_loss(fake_logits, real_logits=None):
    """G minimises -E_f[log D(G(z))] = E_f[softplus(-l_f)] (Goodfellow et al. 2014, section 3).

    Same fixed point as the minimax game, but d/dl_f = sigmoid(l_f) - 1 -> -1 as D(G(z)) -> 0:
    strong gradients early in training. Equal to BCE against "real" labels, as the seed computes it.
    """
    return _mean(tf.nn.softplus(-fake_logits))


# --- least squares (Mao et al. 2017, "Least Squares GANs", eq. 2 with a=0, b=c=1) -----------------

def least_squares_d_real(real_logits):
    """1/2 E_r[(D(x) - 1)^2] with D the raw output (no sigmoid)."""
    return 0.5 * _mean(tf.square(real_logits - 1.0))


def least_squares_d_fake(fake_logits):
    """1/2 E_f[D(G(z))^2]."""
    return 0.5 * _mean(tf.square(fake_logits))


def least_squares_g_loss(fake_logits, real_logits=None):
    """1/2 E_f[(D(G(z)) - 1)^2]."""
    return 0.5 * _mean(tf.square(fake_logits - 1.0))


# --- hinge (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, eq. 16-17) -------------------------

def hinge_d_real(real_logits):
    """E_r[max(0, 1 - D(x))]."""
    return _mean(tf.nn.relu(1.0 - real_logits))


def hinge_d_fake(fake_logits):
    """E_f[max(0, 1 + D(G(z)))]."""
    return _mean(tf.nn.relu(1.0 + fake_logits))


def hinge_g_loss(fake_logits, real_logits=None):
    """-E_f[D(G(z))] (Miyato et al. 2018, eq. 17): the hinge GAN's G does not hinge."""
    return -_mean(fake_logits)


# --- Wasserstein (Arjovsky et al. 2017, "Wasserstein GAN", eq. 3) ---------------------------------

def wasserstein_d_real(real_logits):
    """-E_r[D(x)]."""
    return -_mean(real_logits)


def wasserstein_d_fake(fake_logits):
    """E_f[D(G(z))]. The critic's loss E_f[D] - E_r[D] estimates -W(p_data, p_g) only for a
    1-Lipschitz D, so it needs weight clipping or a gradient penalty."""
    return _mean(fake_logits)


def wasserstein_g_loss(fake_logits, real_logits=None):
    """-E_f[D(G(z))] (Arjovsky et al. 2017, Algorithm 1)."""
    return -_mean(fake_logits)


# --- relativistic (Jolicoeur-Martineau 2018, "The relativistic discriminator") --------------------

def relativistic_d_loss(real_logits, fake_logits):
    """RSGAN, eq. 9: -E_(x_r, x_f)[log sigmoid(C(x_r) - C(x_f))] = E[softplus(l_f - l_r)], over
    the pairs (i-th real, i-th fake) of the batch: D learns that reals look more real than fakes."""
    return {"pairs": _mean(tf.nn.softplus(fake_logits - real_logits))}


def relativistic_g_loss(fake_logits, real_logits):
    """RSGAN, eq. 10: -E[log sigmoid(C(x_f) - C(x_r))] = E[softplus(l_r - l_f)]."""
    return _mean(tf.nn.softplus(real_logits - fake_logits))


def relativistic_average_d_loss(real_logits, fake_logits):
    """RaGAN, eq. 11 with the standard GAN's f: each logit is compared with the mean logit of the
    other side,  D~(x_r) = sigmoid(l_r - E_f[l_f]),  D~(x_f) = sigmoid(l_f - E_r[l_r]):
        -E_r[log D~(x_r)] - E_f[log(1 - D~(x_f))]
      = E_r[softplus(E_f[l_f] - l_r)] + E_f[softplus(l_f - E_r[l_r])]."""
    return {"real": _mean(tf.nn.softplus(_batch_mean(fake_logits) - real_logits)),
            "fake": _mean(tf.nn.softplus(fake_logits - _batch_mean(real_logits)))}


def relativistic_average_g_loss(fake_logits, real_logits):
    """RaGAN, eq. 12: the D loss with real and fake swapped:
        E_f[softplus(E_r[l_r] - l_f)] + E_r[softplus(l_r - E_f[l_f])].
    G's gradient flows through l_f only; l_r depends on G through E_f[l_f]."""
    return (_mean(tf.nn.softplus(_batch_mean(real_logits) - fake_logits))
            + _mean(tf.nn.softplus(real_logits - _batch_mean(fake_logits))))


# --- registries of losses --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DiscriminatorLoss:
    """D's loss as named parts (summed for the update, logged as d_loss_<part>).

    Separable losses give `real_term` and `fake_term`: the parts are {"real", "fake"}, and the
    split update takes one step on each. Others give `joint`, a function (l_r, l_f) -> parts.
    `probabilities`: the logits are log-odds of "real", so D(x) = sigmoid(l) and an accuracy at
    l = 0 mean something. `partner`: the only generator loss this D loss is meant to be trained
    against, if any. `smoothed_real(a)`: the real term with one-sided label smoothing a, for a
    loss that has a real target to smooth (None: --label_smoothing does not apply).
    `needs_lipschitz`: the loss is only meaningful for a Lipschitz D (a gradient-bounding penalty
    or weight clipping), as a Wasserstein critic's.
    """
    reference: str
    real_term: Optional[Callable] = None
    fake_term: Optional[Callable] = None
    joint: Optional[Callable] = None
    probabilities: bool = False
    partner: Optional[str] = None
    smoothed_real: Optional[Callable] = None
    needs_lipschitz: bool = False

    @property
    def separable(self):
        return self.joint is None

    def __call__(self, real_logits, fake_logits):
        if self.separable:
            return {"real": self.real_term(real_logits), "fake": self.fake_term(fake_logits)}
        return self.joint(real_logits, fake_logits)

    def with_label_smoothing(self, smoothing):
        """The loss with its real target lowered by `smoothing` (see `smoothed_real`)."""
        if not smoothing:
            return self
        return dataclasses.replace(self, real_term=self.smoothed_real(smoothing))


@dataclasses.dataclass(frozen=True)
class GeneratorLoss:
    """G's loss, a function (l_f, l_r) -> scalar; `needs_real_logits` says whether it reads l_r
    (the trainer then runs D on a real batch in G's step too). `partner`: the only D loss it is
    meant for, if any."""
    function: Callable
    reference: str
    needs_real_logits: bool = False
    partner: Optional[str] = None

    def __call__(self, fake_logits, real_logits=None):
        return self.function(fake_logits, real_logits)


D_LOSSES = {
    "minimax": DiscriminatorLoss(
        "Goodfellow et al. 2014, eq. 1", minimax_d_real, minimax_d_fake, probabilities=True,
        smoothed_real=smoothed_minimax_d_real),
    "least_squares": DiscriminatorLoss(
        "Mao et al. 2017, eq. 2 (a=0, b=1)", least_squares_d_real, least_squares_d_fake),
    "hinge": DiscriminatorLoss("Lim & Ye 2017; Miyato et al. 2018, eq. 16", hinge_d_real,
                               hinge_d_fake),
    "wasserstein": DiscriminatorLoss("Arjovsky et al. 2017, eq. 3", wasserstein_d_real,
                                     wasserstein_d_fake, needs_lipschitz=True),
    "relativistic": DiscriminatorLoss("Jolicoeur-Martineau 2018, eq. 9 (RSGAN)",
                                      joint=relativistic_d_loss, partner="relativistic"),
    "relativistic_average": DiscriminatorLoss(
        "Jolicoeur-Martineau 2018, eq. 11 (RaGAN)", joint=relativistic_average_d_loss,
        partner="relativistic_average"),
}

G_LOSSES = {
    "saturating": GeneratorLoss(saturating_g_loss, "Goodfellow et al. 2014, eq. 1"),
    "non_saturating": GeneratorLoss(non_saturating_g_loss, "Goodfellow et al. 2014, section 3"),
    "least_squares": GeneratorLoss(least_squares_g_loss, "Mao et al. 2017, eq. 2 (c=1)"),
    "hinge": GeneratorLoss(hinge_g_loss, "Miyato et al. 2018, eq. 17"),
    "wasserstein": GeneratorLoss(wasserstein_g_loss, "Arjovsky et al. 2017, Algorithm 1"),
    "relativistic": GeneratorLoss(relativistic_g_loss, "Jolicoeur-Martineau 2018, eq. 10",
                                  needs_real_logits=True, partner="relativistic"),
    "relativistic_average": GeneratorLoss(
        relativistic_average_g_loss, "Jolicoeur-Martineau 2018, eq. 12", needs_real_logits=True,
        partner="relativistic_average"),
}


def get_d_loss(name, label_smoothing=0.0):
    return registry.lookup(D_LOSSES, name, "discriminator loss").with_label_smoothing(
        label_smoothing)


def get_g_loss(name):
    return registry.lookup(G_LOSSES, name, "generator loss")


def combination_problems(d_loss, g_loss, penalty_weights, weight_clip=0.0, label_smoothing=0.0,
                         d_update="joint"):
    """(errors, unstable): one line each for settings that cannot work together, and for
    combinations that run but are known to train badly (refused unless the user insists)."""
    errors, unstable = [], []
    d_entry, g_entry = D_LOSSES.get(d_loss), G_LOSSES.get(g_loss)
    if d_entry is None or g_entry is None:
        return errors, unstable  # an unknown name is reported by the flag's own check
    if label_smoothing and d_entry.smoothed_real is None:
        smoothable = sorted(name for name, entry in D_LOSSES.items() if entry.smoothed_real)
        errors.append(f"--label_smoothing={label_smoothing} with --d_loss={d_loss}: one-sided "
                      "label smoothing lowers the real target of a cross-entropy, which this "
                      f"loss does not have; expected --d_loss={' or '.join(smoothable)} or "
                      "--label_smoothing=0")
    if d_update == "split" and not d_entry.separable:
        errors.append(f"--d_update=split with --d_loss={d_loss}: this loss compares real and fake "
                      "logits in one term, so it has no separate real and fake steps; expected "
                      "--d_update=joint")
    lipschitz = [name for name, weight in penalty_weights.items()
                 if weight > 0 and PENALTIES[name].bounds_gradient]
    if d_entry.needs_lipschitz and not lipschitz and not weight_clip > 0:
        unstable.append(f"--d_loss={d_loss} with no gradient penalty and no --weight_clip: the "
                        "critic is unconstrained, so its loss has no finite optimum and does not "
                        "estimate a distance (Arjovsky et al. 2017); set --gp_weight=10 (WGAN-GP) "
                        "or --weight_clip=0.01 (WGAN)")
    if d_entry.partner and d_entry.partner != g_loss:
        unstable.append(f"--d_loss={d_loss} with --g_loss={g_loss}: a relativistic D is trained "
                        f"against its own generator loss; expected --g_loss={d_entry.partner}")
    elif g_entry.partner and g_entry.partner != d_loss:
        unstable.append(f"--g_loss={g_loss} with --d_loss={d_loss}: the relativistic generator "
                        "loss assumes D was trained to compare real with fake; expected "
                        f"--d_loss={g_entry.partner}")
    return errors, unstable
