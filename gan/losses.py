"""Adversarial losses and discriminator penalties as explicit formulas, with registries by name.

Notation: l_r = D's logit on real x, l_f = D's logit on G(z); D(.) = sigmoid(logit) where the loss
reads logits as log-odds; E_r, E_f = batch means over real and fake examples.
Stability comes from the softplus identities
    log sigmoid(l)       = -softplus(-l)
    log (1 - sigmoid(l)) = -softplus(l)
which are finite for any finite logit (no log(0), no clipping).

Three registries, each of which the trainer reads by name and nothing else:
  D_LOSSES:  a `DiscriminatorLoss`: named parts whose sum is D's loss. A separable loss (a real
             term on l_r plus a fake term on l_f) also serves the seed's split update, one step
             on each term. Relativistic losses compare l_r with l_f inside one term.
  G_LOSSES:  a `GeneratorLoss`: a function of (l_f, l_r); l_r is computed only for losses that
             read it (the relativistic ones).
  PENALTIES: a `Penalty`: a function (discriminator, real, fake, rng) -> unweighted value, which
             may take D's input gradients with a nested tape. Its weight is the flag
             --<name>_weight; the run schema makes that flag from this registry, so a new penalty
             is one function and one entry here.
`combination_problems` refuses pairings known not to work, each with the reason in one line.
Every value is a batch mean.
"""

import dataclasses
from typing import Callable, Optional

import tensorflow as tf

from gan import layers, registry


def _mean(x):
    return tf.reduce_mean(x)


# A loss is the mean of per-example terms; under several replicas each takes its own examples' mean
# and the trainer averages the gradients. A batch *statistic* inside a term (RaGAN's mean logit,
# DRAGAN's std) is instead taken over the global batch, so the loss does not depend on the replica
# count.

def _batch_mean(x):
    return layers.replica_mean(tf.reduce_mean(x))


def _batch_std(x):
    if layers.num_replicas() == 1:
        return tf.math.reduce_std(x)
    return tf.sqrt(_batch_mean(tf.square(x - tf.stop_gradient(_batch_mean(x)))))


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


# --- penalties on D (each unweighted; the trainer multiplies by --<name>_weight) -------------------

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
    return _mean(tf.square(norms - 1.0))


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
    return 0.5 * _mean(_flat_squared_norms(input_gradients(discriminator, real, gradient_scale)))


def r2_penalty(discriminator, real, fake, rng, gradient_scale=None):
    """R2 (Mescheder et al. 2018, eq. 10): 1/2 E_f[||grad_x D(G(z))||^2] on fake data."""
    return 0.5 * _mean(_flat_squared_norms(input_gradients(discriminator, fake, gradient_scale)))


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
