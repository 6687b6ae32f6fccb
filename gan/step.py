"""The GAN step: what one training iteration does, the part a researcher reads and edits.

One iteration = `d_steps` discriminator updates, then one generator update:

  D update, "joint" (the textbook step): one gradient step on the D loss's parts (e.g.
      real_term(D(x)) + fake_term(D(G(z)))) plus the weighted penalties, which take D's input
      gradients with nested tapes. A discriminator without batch statistics (`per_example`) runs
      once on x and G(z) stacked.
  D update, "split" (the seed's Keras loop, separable losses only): one step on real_term(D(x))
      with the penalties on real data, then a second, separate step on fake_term(D(G(z))) with
      the others, as two `train_on_batch` calls do.
  Weight clipping, when on, follows every D step.
  G update: one step on g_loss(D(G(z')), D(x')) with fresh noise z' (and, for the relativistic
      losses only, a fresh real batch x'), G in training mode.

Conditional networks (num_classes > 0): every real batch comes with its labels, and the fakes of
an update take the labels of a real batch (D's step: the batch D sees, so each penalty compares
images of the same classes; G's step: a fresh draw), so generated classes follow the data's
class frequencies.

With `g_ema_decay` > 0, after every G update the state's `generator_ema` moves towards G (see
`state.update_ema`); training itself never reads it.

The fake batch that D sees comes from G in training mode ("train") or with BatchNorm using its
moving averages ("inference", what the seed's `generator.predict` does).

Under N replicas (`gan.loop`), with synchronized BatchNorm (the default) and the batch statistics
inside losses (RaGAN, DRAGAN) taken over the global batch, a step computes what one device
computes on the same batch, up to float rounding. The one exception: a penalty that draws noise
(WGAN-GP, DRAGAN) draws it on each replica from that replica's own stream, so it sees other draws
of the same law than on one device.

Mixed precision: the networks compute in 16 bits and return float32 (see `networks`), so the
losses and penalties here are float32 as always. With float16, a penalty that declares
`takes_gradient_scale` takes its input gradients through D's loss scale (see `loop`).

The settings are a run's `gan.config.RunConfig`, read where they are used.
"""

import functools
import operator

import tensorflow as tf

from gan import latent, losses, penalties
from gan import loop as loop_lib
from gan import state as state_lib


def _accuracy(logits, real):
    correct = logits > 0 if real else logits < 0
    return tf.reduce_mean(tf.cast(correct, tf.float32))


def _sum(values):
    """Sum of a non-empty list of tensors, without a leading `0 +`."""
    return functools.reduce(operator.add, values)


class Trainer(loop_lib.Loop):
    """Compiles and runs training iterations of a GANState with a run's settings (a RunConfig;
    see `loop.Loop` for images, labels, jit_compile and strategy). With `penalty_every` = k > 1
    the penalties are computed on every k-th iteration only, weighted k times as much (lazy
    regularization)."""

    def __init__(self, state, config, images, labels=None, jit_compile=True, strategy=None):
        super().__init__(state, config.schedule.batch_size, images, labels, jit_compile,
                         strategy)
        self.config = config
        self.game = game = config.game
        if config.model.g_ema_decay > 0 and getattr(state, "generator_ema", None) is None:
            raise ValueError("g_ema_decay > 0 needs a state made with a generator_ema")
        self.d_loss = losses.get_d_loss(game.d_loss, game.label_smoothing)
        self.g_loss = losses.get_g_loss(game.g_loss)
        self.penalties = [(name, weight, penalties.PENALTIES[name])
                          for name, weight in game.active_penalties()]

    def _d_step(self, loss_fn, *args):
        """One D update on loss_fn(*args) -> (loss, extras), followed by weight clipping when on;
        returns (extras averaged over replicas, gradient norm)."""
        extras, norm = self._update(self.state.discriminator, self.state.d_optimizer, loss_fn,
                                    *args)
        if self.game.weight_clip > 0:
            penalties.clip_weights(self.state.discriminator.trainable_variables,
                                   self.game.weight_clip)
        return extras, norm

    def _discriminator(self, labels):
        """D as a function of (images, training), conditioned on `labels` when conditional."""
        d = self.state.discriminator
        if labels is None:
            return d
        return lambda images, training: d(images, training=training, labels=labels)

    def _penalties(self, active, real, fake, labels, rng, due=None):
        """(the weighted sum to add to D's loss, or None; {"penalty_<name>": value}) of the
        `active` penalties, ((name, weight, Penalty), ...).

        Lazily (penalty_every = k > 1) a penalty is computed on every k-th iteration only, as k
        times its value, and is 0 in between: its mean over k iterations is the mean of the
        values computed, and its weighted sum is what the loss gets. `due`, a Python bool, says
        whether this is such an iteration when the caller has decided it already.
        """
        d, every = self._discriminator(labels), self.game.penalty_every
        loss_scale = self._loss_scale("d")
        scale = None if loss_scale is None else loss_scale.scale
        values = {}
        for name, _, penalty in active:
            # Only under float16, and only to penalties that declare they take it.
            extra = ({"gradient_scale": scale}
                     if scale is not None and penalty.takes_gradient_scale else {})

            def compute(function=penalty.function, extra=extra):
                return function(d, real, fake, rng, **extra)
            if every == 1:
                values[f"penalty_{name}"] = compute()
            elif due is not None:  # decided outside, in cross-replica context
                values[f"penalty_{name}"] = (float(every) * compute() if due
                                             else tf.zeros([], real.dtype))
            else:
                values[f"penalty_{name}"] = tf.cond(
                    tf.equal(self.state.step % every, 0),
                    lambda compute=compute: float(every) * compute(),
                    lambda: tf.zeros([], real.dtype))
        if not active:
            return None, values
        weighted = _sum([weight * values[f"penalty_{name}"] for name, weight, _ in active])
        return weighted, values

    def _discriminate_both(self, real, fake, labels):
        """D's logits on the real and the fake batch, in training mode.

        A discriminator whose logits depend on each example alone (`per_example = True`: no batch
        statistics) sees both halves as one batch of 2B: the same values, but every matmul twice
        as tall and each weight gradient one matmul instead of two, which is what makes a small
        batch run faster. Any other discriminator sees each half on its own, as usual.
        """
        d = self.state.discriminator
        if not getattr(d, "per_example", False):
            conditioned = self._discriminator(labels)
            return conditioned(real, training=True), conditioned(fake, training=True)
        both = None if labels is None else tf.concat([labels, labels], axis=0)
        logits = self._discriminator(both)(tf.concat([real, fake], axis=0), training=True)
        return logits[:self.local_batch], logits[self.local_batch:]

    def _verdicts(self, logits, side):
        """The batch means that the metrics report of D's verdicts on one side ("real" or
        "fake"): per replica, then averaged over replicas with the rest."""
        stats = {f"d_{side}_logit": tf.reduce_mean(logits)}
        if self.d_loss.probabilities:
            stats[f"d_{side}_prob"] = tf.reduce_mean(tf.sigmoid(logits))
            stats[f"d_{side}_accuracy"] = _accuracy(logits, real=side == "real")
        return stats

    def _d_update(self, real, fake, labels, due=None):
        """One D update (joint, or the seed's two split steps) on the global real batch and its
        labels and each replica's own `fake`s; returns (loss parts, penalty values, verdict
        statistics, gradient norm)."""
        seed = self._noise_seed(needed=any(p[2].draws_noise for p in self.penalties))
        if self.game.d_update == "joint":
            def joint_loss(real, fake, labels, seed):
                real, labels = self._local(real), self._local(labels)
                real_logits, fake_logits = self._discriminate_both(real, fake, labels)
                parts = self.d_loss(real_logits, fake_logits)
                penalty, penalty_values = self._penalties(self.penalties, real, fake, labels,
                                                          self._noise_rng(seed), due)
                loss = _sum(list(parts.values()) + ([penalty] if penalty is not None else []))
                verdicts = {**self._verdicts(real_logits, "real"),
                            **self._verdicts(fake_logits, "fake")}
                return loss, (parts, penalty_values, verdicts)
            return self._d_step(joint_loss, real, fake, labels, seed)

        def half_step(side, term, active):
            def loss_fn(real, fake, labels, seed):
                real, labels = self._local(real), self._local(labels)
                logits = self._discriminator(labels)(real if side == "real" else fake,
                                                     training=True)
                loss = term(logits)
                penalty, penalty_values = self._penalties(active, real, fake, labels,
                                                          self._noise_rng(seed), due)
                total = loss if penalty is None else loss + penalty
                return total, (loss, penalty_values, self._verdicts(logits, side))
            return loss_fn

        (loss_real, real_penalties, real_verdicts), norm_real = self._d_step(
            half_step("real", self.d_loss.real_term,
                      [p for p in self.penalties if not p[2].uses_fake]),
            real, fake, labels, seed)
        (loss_fake, fake_penalties, fake_verdicts), norm_fake = self._d_step(
            half_step("fake", self.d_loss.fake_term,
                      [p for p in self.penalties if p[2].uses_fake]),
            real, fake, labels, None if seed is None else seed + 1)
        grad_norm = tf.sqrt(tf.square(norm_real) + tf.square(norm_fake))
        return ({"real": loss_real, "fake": loss_fake}, {**real_penalties, **fake_penalties},
                {**real_verdicts, **fake_verdicts}), grad_norm

    def _fake_batch(self, z, labels, training):
        """Each replica's fakes from its slice of the global noise (and labels)."""
        def replica_fakes(z, labels):
            return tf.stop_gradient(self.state.generator(
                self._local(z), training=training, labels=self._local(labels)))
        return self.strategy.run(replica_fakes, args=(z, labels))

    def _g_update(self, z, real, labels):
        """One G update from the global noise (and, for the losses that need them, real batch and
        labels); returns (G's loss, |dL_G/dl_f| per example, gradient norm)."""
        g, loss_scale = self.state.generator, self._loss_scale("g")

        def replica_step(z, real, labels):
            z, real, labels = self._local(z), self._local(real), self._local(labels)
            with tf.GradientTape() as tape:
                fake = g(z, training=True, labels=labels)
                if self.g_loss.needs_real_logits:
                    real_logits, fake_logits = self._discriminate_both(real, fake, labels)
                else:
                    real_logits = None
                    fake_logits = self._discriminator(labels)(fake, training=True)
                g_loss = self.g_loss(fake_logits, real_logits)
                scaled_loss = self._scaled(g_loss, loss_scale)
            *grads, logit_grads = self._gradients(
                tape, scaled_loss, g.trainable_variables + (fake_logits,), loss_scale)
            # Per example, how strongly G's loss pulls on D's verdict: |dL_G/dl_f| with the
            # batch mean undone. Near 0 for the saturating loss while D rejects the fakes.
            logit_grad = tf.reduce_mean(tf.abs(logit_grads)) * float(self.local_batch)
            return self._replica_mean((grads, g_loss, logit_grad))
        grads, g_loss, logit_grad = self._in_replicas(replica_step, z, real, labels)
        norm = self._apply(self.state.g_optimizer, grads, g.trainable_variables, loss_scale)
        return g_loss, logit_grad, norm

    def _iteration(self, images):
        state, game, model = self.state, self.game, self.config.model
        batch = self.batch_size
        fake_in_training = game.d_fake_batchnorm == "train"
        for _ in range(game.d_steps):
            real, labels = self._real_batch(images)
            z = latent.draw(state.rng, batch, model.latent_dim, model.latent_distribution)
            fake = self._fake_batch(z, labels, fake_in_training)
            if self.num_replicas > 1 and self.penalties and game.penalty_every > 1:
                # Lazy penalties branch here, around the replicas' steps: a replica may not
                # all-reduce (synchronized BatchNorm in D) inside a tf.cond of its own.
                due = tf.equal(state.step % game.penalty_every, 0)
                update = tf.cond(
                    due, lambda: self._d_update(real, fake, labels, due=True),
                    lambda: self._d_update(real, fake, labels, due=False))
            else:
                update = self._d_update(real, fake, labels)
            (parts, penalty_values, verdicts), d_grad_norm = update

        z = latent.draw(state.rng, batch, model.latent_dim, model.latent_distribution)
        g_real = g_labels = None
        if self.g_loss.needs_real_logits or self.conditional:
            g_real, g_labels = self._real_batch(images)
        g_loss, logit_grad, g_grad_norm = self._g_update(
            z, g_real if self.g_loss.needs_real_logits else None, g_labels)
        if model.g_ema_decay > 0:
            state_lib.update_ema(state.generator_ema, state.generator, model.g_ema_decay)
        state.step.assign_add(1)

        metrics = {
            "d_loss": _sum(list(parts.values())),
            **{f"d_loss_{part}": value for part, value in parts.items()},
            **penalty_values,
            "g_loss": g_loss,
            "d_real_logit": verdicts["d_real_logit"],
            "d_fake_logit": verdicts["d_fake_logit"],
            "d_logit_gap": verdicts["d_real_logit"] - verdicts["d_fake_logit"],
            "g_logit_grad": logit_grad,
            "g_grad_norm": g_grad_norm,
            "d_grad_norm": d_grad_norm,
        }
        metrics.update({name: value for name, value in verdicts.items() if name not in metrics})
        if self._loss_scale("d") is not None:
            metrics["d_loss_scale"] = tf.identity(self._loss_scale("d").scale)
            metrics["g_loss_scale"] = tf.identity(self._loss_scale("g").scale)
        return metrics
