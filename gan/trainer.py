"""The GAN's training state as one tf.Module, and its compiled training iterations.

One iteration = `d_steps` discriminator updates, then one generator update:

  D update, "joint" (the textbook step): one gradient step on real_term(D(x)) + fake_term(D(G(z))).
      A discriminator without batch statistics (`per_example`) runs once on x and G(z) stacked.
  D update, "split" (the seed's Keras loop): one step on real_term(D(x)), then a second, separate
      step on fake_term(D(G(z))), as two `train_on_batch` calls do.
  G update: one step on g_loss(D(G(z'))) with fresh noise z', G in training mode.

The fake batch that D sees comes from G in training mode ("train") or with BatchNorm using its moving
averages ("inference", what the seed's `generator.predict` does).

`Trainer.run(n)` runs n iterations inside one compiled function: batches are drawn in-graph from the
resident training set with the state's own RNG, so there is no Python work and no host transfer per
iteration; the metrics come back as their means over the n iterations, as tensors that stay on
the device until they are logged.
"""

import dataclasses

import tensorflow as tf

from gan import data, losses

D_UPDATES = ("joint", "split")
FAKE_BATCHNORM_MODES = ("train", "inference")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    batch_size: int = 64
    latent_dim: int = 100
    d_loss: str = "minimax"
    g_loss: str = "non_saturating"
    d_steps: int = 1
    d_update: str = "joint"
    d_fake_batchnorm: str = "train"

    def __post_init__(self):
        losses.get_d_loss(self.d_loss)
        losses.get_g_loss(self.g_loss)
        if self.d_update not in D_UPDATES:
            raise ValueError(f"unknown d_update {self.d_update!r}; valid choices: "
                             f"{', '.join(D_UPDATES)}")
        if self.d_fake_batchnorm not in FAKE_BATCHNORM_MODES:
            raise ValueError(f"unknown d_fake_batchnorm {self.d_fake_batchnorm!r}; valid "
                             f"choices: {', '.join(FAKE_BATCHNORM_MODES)}")
        if self.batch_size < 1 or self.d_steps < 1 or self.latent_dim < 1:
            raise ValueError("batch_size, d_steps and latent_dim must be >= 1")


class GANState(tf.Module):
    """Everything a checkpoint must hold: both networks, both optimizers, the step and the RNG."""

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, seed):
        super().__init__(name="gan_state")
        self.generator = generator
        self.discriminator = discriminator
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # Philox state: saved in the checkpoint, so a resumed run draws the same numbers.
        self.rng = tf.random.Generator.from_seed(seed)
        g_optimizer.build(generator.trainable_variables)
        d_optimizer.build(discriminator.trainable_variables)


def _accuracy(logits, real):
    correct = logits > 0 if real else logits < 0
    return tf.reduce_mean(tf.cast(correct, tf.float32))


class Trainer:
    """Compiles and runs training iterations over a GANState."""

    def __init__(self, state, config, images, jit_compile=True):
        self.state = state
        self.config = config
        self.images = tf.convert_to_tensor(images)
        self.d_loss = losses.get_d_loss(config.d_loss)
        self.g_loss = losses.get_g_loss(config.g_loss)
        self._run = tf.function(self._run_iterations, jit_compile=jit_compile)

    def run(self, num_iterations):
        """Runs up to num_iterations >= 1 iterations; returns each metric's mean over them.

        The loop stops right after an iteration whose losses or gradient norms are not finite; then
        `all_finite` is False and the other `*_finite` entries say which quantity went bad (the
        state has already taken that iteration's update: restore a checkpoint to go on).
        """
        return self._run(self.images, tf.constant(num_iterations, tf.int32))

    def _run_iterations(self, images, num_iterations):
        totals = self._iteration(images)
        finite = self._finiteness(totals)

        # The finiteness test sits in the loop condition rather than in an `if ...: break` in the
        # body: AutoGraph turns that break into a conditional that carries every weight through
        # it, and XLA then copies all of them once per iteration.
        def keep_going(done, totals, finite):
            return (done < num_iterations) & finite["all_finite"]

        def next_iteration(done, totals, finite):
            metrics = self._iteration(images)
            totals = {name: totals[name] + metrics[name] for name in totals}
            return done + 1, totals, self._finiteness(metrics)

        done, totals, finite = tf.while_loop(
            keep_going, next_iteration, (tf.constant(1, tf.int32), totals, finite))
        count = tf.cast(done, tf.float32)
        means = {name: total / count for name, total in totals.items()}
        means.update(finite)
        return means

    @staticmethod
    def _finiteness(metrics):
        """Which of an iteration's losses and gradient norms are finite: if both gradient norms
        are, so is every gradient, and weights stay finite after a finite update."""
        checked = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")
        flags = {f"{name}_finite": tf.math.is_finite(metrics[name]) for name in checked}
        flags["all_finite"] = tf.reduce_all(list(flags.values()))
        return flags

    def _d_step(self, loss_fn):
        d = self.state.discriminator
        with tf.GradientTape() as tape:
            outputs = loss_fn()
        grads = tape.gradient(outputs[0], d.trainable_variables)
        self.state.d_optimizer.apply(grads, d.trainable_variables)
        return outputs, tf.linalg.global_norm(grads)

    def _discriminate_both(self, real, fake):
        """D's logits on the real and the fake batch, in training mode.

        A discriminator whose logits depend on each example alone (`per_example = True`: no batch
        statistics) sees both halves as one batch of 2B: the same values, but every matmul twice
        as tall and each weight gradient one matmul instead of two, which is what makes a small
        batch run faster. Any other discriminator sees each half on its own, as usual.
        """
        d = self.state.discriminator
        if not getattr(d, "per_example", False):
            return d(real, training=True), d(fake, training=True)
        logits = d(tf.concat([real, fake], axis=0), training=True)
        return logits[:self.config.batch_size], logits[self.config.batch_size:]

    def _iteration(self, images):
        state, config = self.state, self.config
        g, d = state.generator, state.discriminator
        batch = config.batch_size
        fake_in_training = config.d_fake_batchnorm == "train"
        for _ in range(config.d_steps):
            real = data.sample_batch(images, batch, state.rng)
            z = state.rng.normal([batch, config.latent_dim])
            fake = tf.stop_gradient(g(z, training=fake_in_training))
            if config.d_update == "joint":
                def joint_loss():
                    real_logits, fake_logits = self._discriminate_both(real, fake)
                    loss_real = self.d_loss.real_term(real_logits)
                    loss_fake = self.d_loss.fake_term(fake_logits)
                    return loss_real + loss_fake, loss_real, loss_fake, real_logits, fake_logits
                (_, loss_real, loss_fake, real_logits, fake_logits), d_grad_norm = self._d_step(
                    joint_loss)
            else:
                def real_loss():
                    real_logits = d(real, training=True)
                    return self.d_loss.real_term(real_logits), real_logits

                def fake_loss():
                    fake_logits = d(fake, training=True)
                    return self.d_loss.fake_term(fake_logits), fake_logits
                (loss_real, real_logits), norm_real = self._d_step(real_loss)
                (loss_fake, fake_logits), norm_fake = self._d_step(fake_loss)
                d_grad_norm = tf.sqrt(tf.square(norm_real) + tf.square(norm_fake))

        z = state.rng.normal([batch, config.latent_dim])
        with tf.GradientTape() as tape:
            g_fake_logits = d(g(z, training=True), training=True)
            g_loss = self.g_loss(g_fake_logits)
        g_grads = tape.gradient(g_loss, g.trainable_variables)
        state.g_optimizer.apply(g_grads, g.trainable_variables)
        state.step.assign_add(1)

        d_loss = loss_real + loss_fake
        return {
            "d_loss": d_loss,
            "d_loss_real": loss_real,
            "d_loss_fake": loss_fake,
            "g_loss": g_loss,
            "d_real_prob": tf.reduce_mean(tf.sigmoid(real_logits)),
            "d_fake_prob": tf.reduce_mean(tf.sigmoid(fake_logits)),
            "d_real_accuracy": _accuracy(real_logits, real=True),
            "d_fake_accuracy": _accuracy(fake_logits, real=False),
            "g_grad_norm": tf.linalg.global_norm(g_grads),
            "d_grad_norm": d_grad_norm,
        }
