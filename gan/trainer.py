"""The GAN's training state as one tf.Module, and its compiled training iterations.

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

Conditional networks (num_classes > 0): every real batch comes with its labels, and the fakes of an
update take the labels of a real batch (D's step: the batch D sees, so each penalty compares images of
the same classes; G's step: a fresh draw), so generated classes follow the data's class frequencies.

With `g_ema_decay` > 0, after every G update the state's `generator_ema` moves towards G (see
`update_ema`); training itself never reads it.

The fake batch that D sees comes from G in training mode ("train") or with BatchNorm using its moving
averages ("inference", what the seed's `generator.predict` does).

Under a `tf.distribute` strategy with N replicas (see `gan.distribute`), `batch_size` is the global
batch. Each iteration's batches and noise are drawn once, from the state's one RNG, exactly as on
one device, and replica r takes the r-th slice of each; every replica averages its loss over its own
examples, the gradients are averaged over replicas (one all-reduce per update) and the update is
applied once to the mirrored weights. With synchronized BatchNorm (the default) and the batch
statistics inside losses (RaGAN, DRAGAN) taken over the global batch, a step under N replicas
computes what one device computes on the same batch, up to float rounding. The one exception:
the WGAN-GP and DRAGAN noise is drawn by each replica from its own stream (seeded from the state's
RNG every step), so those two penalties see other draws of the same law than on one device.

Mixed precision: the networks compute in 16 bits and return float32 (see `networks`), so the
losses and penalties here are float32 as always. With float16 (`loss_scaling`), each update's loss
is multiplied by its network's dynamic loss scale before differentiation and the gradients divided
by it after (`optimizers.DynamicLossScale`); an update whose gradients overflow is skipped and
reported with gradient norm 0, which the finiteness check does not count as a divergence. The
gradient penalties' own input gradients through D are taken through D's scale the same way.

`Trainer.run(n)` runs n iterations inside one compiled function: batches are drawn in-graph from the
resident training set with the state's own RNG, so there is no Python work and no host transfer per
iteration; the metrics come back as their means over the n iterations, as tensors that stay on
the device until they are logged.
"""

import dataclasses
import functools
import inspect
import operator

import tensorflow as tf

try:
    from tensorflow.compiler.tf2xla.python import xla as tf2xla
except ImportError:  # a TensorFlow without it: norms fall back to tf.linalg.global_norm
    tf2xla = None

from gan import data, layers, losses, networks, optimizers

D_UPDATES = ("joint", "split")
FAKE_BATCHNORM_MODES = ("train", "inference")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """What one iteration does. `penalties`: ((name, weight), ...) of `losses.PENALTIES` entries
    to add to D's loss; with `penalty_every` = k > 1 they are computed on every k-th iteration
    only, weighted k times as much (lazy regularization)."""
    batch_size: int = 64
    latent_dim: int = 100
    latent_distribution: str = "normal"
    d_loss: str = "minimax"
    g_loss: str = "non_saturating"
    label_smoothing: float = 0.0
    penalties: tuple = ()
    penalty_every: int = 1
    weight_clip: float = 0.0
    d_steps: int = 1
    d_update: str = "joint"
    d_fake_batchnorm: str = "train"
    g_ema_decay: float = 0.0
    sync_batchnorm: bool = True
    loss_scaling: bool = False  # float16 mixed precision: the state's DynamicLossScales

    def __post_init__(self):
        losses.get_d_loss(self.d_loss)
        losses.get_g_loss(self.g_loss)
        for name, _ in self.penalties:
            if name not in losses.PENALTIES:
                raise ValueError(f"unknown penalty {name!r}; valid choices: "
                                 f"{', '.join(sorted(losses.PENALTIES))}")
        if self.d_update not in D_UPDATES:
            raise ValueError(f"unknown d_update {self.d_update!r}; valid choices: "
                             f"{', '.join(D_UPDATES)}")
        if self.d_fake_batchnorm not in FAKE_BATCHNORM_MODES:
            raise ValueError(f"unknown d_fake_batchnorm {self.d_fake_batchnorm!r}; valid "
                             f"choices: {', '.join(FAKE_BATCHNORM_MODES)}")
        if self.latent_distribution not in networks.LATENT_DISTRIBUTIONS:
            raise ValueError(f"unknown latent_distribution {self.latent_distribution!r}; valid "
                             f"choices: {', '.join(networks.LATENT_DISTRIBUTIONS)}")
        if not 0.0 <= self.g_ema_decay < 1.0:
            raise ValueError(f"g_ema_decay must be in [0, 1), got {self.g_ema_decay}")
        if min(self.batch_size, self.d_steps, self.latent_dim, self.penalty_every) < 1:
            raise ValueError("batch_size, d_steps, latent_dim and penalty_every must be >= 1")
        errors, _ = losses.combination_problems(
            self.d_loss, self.g_loss, dict(self.penalties), self.weight_clip,
            self.label_smoothing, self.d_update)
        if errors:
            raise ValueError("; ".join(errors))


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
                 generator_ema=None, loss_scaling=False):
        super().__init__(name="gan_state")
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

    @property
    def sampling_generator_name(self):
        return "ema" if getattr(self, "generator_ema", None) is not None else "raw"


def _accuracy(logits, real):
    correct = logits > 0 if real else logits < 0
    return tf.reduce_mean(tf.cast(correct, tf.float32))


def _sum(values):
    """Sum of a non-empty list of tensors, without a leading `0 +`."""
    return functools.reduce(operator.add, values)


class ReplicaStream:
    """A replica's own random stream for one update: stateless draws from (a seed read from the
    state's RNG, the replica's id, a per-call counter), for the penalties' noise under several
    replicas, where the state's RNG is drawn from in cross-replica context only."""

    def __init__(self, seed):
        context = tf.distribute.get_replica_context()
        self.seed = tf.random.experimental.stateless_fold_in(
            seed, tf.cast(context.replica_id_in_sync_group, tf.int32))
        self.calls = 0

    def uniform(self, shape, minval=0.0, maxval=1.0, dtype=tf.float32):
        self.calls += 1
        seed = tf.random.experimental.stateless_fold_in(self.seed, self.calls)
        return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype=dtype)


NORM_BLOCK = (32, 16)  # XLA's CPU compiler leaves a sum alone when every summed dimension is <= 32


def global_norm(tensors, compiled=False):
    """sqrt(sum of every element's square): tf.linalg.global_norm, summed so that XLA makes one
    pass over each tensor (`compiled`: inside an XLA cluster).

    XLA's CPU compiler rewrites any longer sum into a reduce-window over blocks of 32 and a short
    sum (its tree_reduction_rewriter, for precision). The reduce-window cannot take the square
    in, so every gradient's squares would be written out and read back, a large share of the
    b32 step's time (experiments/profile_step.py). Here each tensor is cut into blocks of
    32 x 16 and summed over the 32, which that rewrite skips and which XLA vectorizes along the
    16 (docs/performance.md); the partial sums go
    through an optimization barrier, without which XLA folds the two sums back into one long
    one. The norm is only logged and checked for finiteness, never used by an update, so this
    changes no weight; its value moves by float rounding only. None entries (variables without
    a gradient) are skipped, as tf.linalg.global_norm and the optimizers skip them.
    """
    if not compiled or tf2xla is None:
        return tf.linalg.global_norm(tensors)
    block = NORM_BLOCK[0] * NORM_BLOCK[1]
    with tf.name_scope("global_norm"):  # the name experiments/profile_step.py files them under
        total = []
        for tensor in (t for t in tensors if t is not None):
            flat = tf.reshape(tensor, [-1])
            size = flat.shape[0]
            if size > block:
                flat = tf.pad(flat, [[0, -size % block]])
                partial = tf.reduce_sum(tf.square(tf.reshape(flat, [-1, *NORM_BLOCK])), axis=1)
                total.append(tf.reduce_sum(tf2xla.optimization_barrier(partial)[0]))
            else:
                total.append(tf.reduce_sum(tf.square(flat)))
        return tf.sqrt(tf.add_n(total))


def _after(norm, grads):
    """The gradients, made to depend on their global norm: multiplied by 1 + 0 * norm, which is
    exactly 1 for a finite norm (and NaN for a non-finite one, when the iteration is a divergence
    anyway), so every value is unchanged.

    Why: XLA's copy insertion orders a while loop's instructions by their dependencies only. The
    update of a weight read by its own step's input-gradient matmul (δ W^T; every layer but the
    first) has no dependency on that read, so XLA copied those 8 weights at the top of every
    iteration to update them in place: 2.6% of the b32 step. The norm depends on every gradient,
    hence on every backward matmul, so an update that waits for it comes after the weight's last
    read, and the copies go (22 copy instructions in the loop's HLO -> 6)."""
    one = 1.0 + 0.0 * norm
    return [None if grad is None else grad * tf.cast(one, grad.dtype) for grad in grads]


def batchnorm_layers(*modules):
    return [layer for module in modules for layer in module.submodules
            if isinstance(layer, layers.BatchNorm)]


class Trainer:
    """Compiles and runs training iterations over a GANState.

    `images`: the training set, float32 [N, 28, 28, 1] in [-1, 1], or its uint8 pixels [N, 28, 28]
    (a quarter of the memory), which each batch converts in-graph to exactly the same floats.
    `strategy`: the `tf.distribute.Strategy` whose scope made the state (default: the current
    one, i.e. one device outside any scope). Several replicas compile without XLA (`strategy.run`
    cannot live inside an XLA cluster); TPUStrategy compiles each replica's step itself.
    """

    def __init__(self, state, config, images, labels=None, jit_compile=True, strategy=None):
        self.state = state
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        self.num_replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % self.num_replicas:
            raise ValueError(f"the global batch of {config.batch_size} does not split evenly over "
                             f"{self.num_replicas} replicas")
        self.local_batch = config.batch_size // self.num_replicas
        if self.num_replicas > 1:
            jit_compile = False
        modules = [state.generator, state.discriminator, getattr(state, "generator_ema", None)]
        for layer in batchnorm_layers(*[module for module in modules if module is not None]):
            layer.cross_replica = config.sync_batchnorm
        self.images = tf.convert_to_tensor(images)
        self.conditional = state.generator.num_classes > 0
        if self.conditional and labels is None:
            raise ValueError("a conditional GAN needs the training labels")
        self.labels = tf.convert_to_tensor(labels) if self.conditional else None
        if config.g_ema_decay > 0 and getattr(state, "generator_ema", None) is None:
            raise ValueError("g_ema_decay > 0 needs a state made with a generator_ema")
        if config.loss_scaling and getattr(state, "d_loss_scale", None) is None:
            raise ValueError("loss_scaling needs a state made with loss_scaling=True")
        self.d_loss = losses.get_d_loss(config.d_loss, config.label_smoothing)
        self.g_loss = losses.get_g_loss(config.g_loss)
        self.penalties = [(name, weight, losses.PENALTIES[name])
                          for name, weight in config.penalties]
        # No AutoGraph: the control flow here is explicit (tf.while_loop, tf.cond; Python `if`s
        # test Python values only), and converting every layer's source took about a third of a
        # short run's CPU time before its first step.
        self.jit_compile = jit_compile
        self._run = tf.function(self._run_iterations, jit_compile=jit_compile, autograph=False)

    def run(self, num_iterations):
        """Runs up to num_iterations >= 1 iterations; returns each metric's mean over them.

        The loop stops right after an iteration whose losses or gradient norms are not finite; then
        `all_finite` is False and the other `*_finite` entries say which quantity went bad (the
        state has already taken that iteration's update: restore a checkpoint to go on).
        """
        if num_iterations < 1:  # the loop would run none, and every mean would be 0 / 0
            raise ValueError(f"num_iterations must be at least 1, got {num_iterations}")
        with self.strategy.scope():
            return self._run(self.images, tf.constant(num_iterations, tf.int32))

    # --- replicas: with one, each of these is the identity, and the graph is the one-device graph.

    def _local(self, tensor):
        """This replica's slice of a global-batch tensor."""
        if tensor is None or self.num_replicas == 1:
            return tensor
        start = (tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int32)
                 * self.local_batch)
        return tensor[start:start + self.local_batch]

    def _replica_mean(self, values):
        """A nest of tensors averaged over replicas, in one batched all-reduce."""
        if self.num_replicas == 1:
            return values
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, values)

    def _in_replicas(self, fn, *args):
        """fn(*args) on every replica. `fn` returns values already averaged over replicas (see
        `_replica_mean`), identical on each: this returns them once, as plain tensors."""
        results = self.strategy.run(fn, args=args)
        if self.num_replicas == 1:
            return results
        return tf.nest.map_structure(
            lambda value: self.strategy.experimental_local_results(value)[0], results)

    def _penalty_rng(self, seed):
        return self.state.rng if seed is None else ReplicaStream(seed)

    def _penalty_seed(self):
        """A seed for the replicas' own penalty noise (None with one replica: the state's RNG is
        used directly). Read from the RNG's state without advancing it, so
        that every other draw stays the one a single device makes; the state moves on with each
        batch, and so does the seed."""
        if self.num_replicas == 1 or not self.penalties:
            return None
        return tf.identity(self.state.rng.state[:2])

    def _run_iterations(self, images, num_iterations):
        # The iteration is traced once, as a function the loop calls (XLA inlines it), and the
        # loop starts from zeros shaped like its metrics: a first iteration run ahead of the loop
        # to give the totals their structure would trace and compile every matmul twice.
        iteration = tf.function(self._iteration, autograph=False).get_concrete_function(images)
        zeros = tf.nest.map_structure(lambda metric: tf.zeros(metric.shape, metric.dtype),
                                      iteration.structured_outputs)
        not_yet_checked = self._finiteness(zeros)  # every flag True: zeros are finite

        # The finiteness test sits in the loop condition rather than in an `if ...: break` in the
        # body: AutoGraph turns that break into a conditional that carries every weight through
        # it, and XLA then copies all of them once per iteration.
        def keep_going(done, totals, finite):
            return (done < num_iterations) & finite["all_finite"]

        def next_iteration(done, totals, finite):
            metrics = iteration(images)
            totals = {name: totals[name] + metrics[name] for name in totals}
            return done + 1, totals, self._finiteness(metrics)

        done, totals, finite = tf.while_loop(
            keep_going, next_iteration, (tf.constant(0, tf.int32), zeros, not_yet_checked))
        count = tf.cast(done, tf.float32)
        means = {name: total / count for name, total in totals.items()}
        means.update(finite)
        return means

    @staticmethod
    def _finiteness(metrics):
        """Which of an iteration's losses and gradient norms are finite: if both gradient norms
        are, so is every gradient (penalties included), and weights stay finite after a finite
        update."""
        checked = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")
        flags = {f"{name}_finite": tf.math.is_finite(metrics[name]) for name in checked}
        flags["all_finite"] = tf.reduce_all(list(flags.values()))
        return flags

    def _loss_scale(self, network):
        """The network's DynamicLossScale (float16), or None."""
        if not self.config.loss_scaling:
            return None
        return getattr(self.state, f"{network}_loss_scale")

    @staticmethod
    def _scaled(loss, loss_scale):
        """The loss to differentiate (inside the tape): scaled when there is a loss scale."""
        return loss if loss_scale is None else loss_scale.scale_loss(loss)

    @staticmethod
    def _gradients(tape, scaled_loss, sources, loss_scale):
        """d loss / d sources from the scaled loss: unscaled when there is a loss scale."""
        grads = tape.gradient(scaled_loss, sources)
        return grads if loss_scale is None else loss_scale.unscale(grads)

    def _apply(self, optimizer, grads, variables, loss_scale):
        """Applies the update (with a loss scale: only if every gradient is finite); returns the
        gradient norm (0 for an update skipped for overflow, which is not a divergence)."""
        norm = global_norm(grads, compiled=self.jit_compile)
        if self.jit_compile:
            grads = _after(norm, grads)
        if loss_scale is None:
            optimizer.apply(grads, variables)
            return norm
        applied = loss_scale.apply(optimizer, grads, variables)
        return tf.where(applied, norm, tf.zeros_like(norm))

    def _d_step(self, loss_fn, *args):
        """One D update on loss_fn(*args) -> (loss, extras), run by every replica on its
        share; returns (extras averaged over replicas, gradient norm)."""
        d, loss_scale = self.state.discriminator, self._loss_scale("d")

        def replica_step(*replica_args):
            with tf.GradientTape() as tape:
                loss, extras = loss_fn(*replica_args)
                scaled_loss = self._scaled(loss, loss_scale)
            grads = self._gradients(tape, scaled_loss, d.trainable_variables, loss_scale)
            return self._replica_mean((grads, extras))
        grads, extras = self._in_replicas(replica_step, *args)
        norm = self._apply(self.state.d_optimizer, grads, d.trainable_variables, loss_scale)
        if self.config.weight_clip > 0:
            losses.clip_weights(d.trainable_variables, self.config.weight_clip)
        return extras, norm

    def _discriminator(self, labels):
        """D as a function of (images, training), conditioned on `labels` when conditional."""
        d = self.state.discriminator
        if labels is None:
            return d
        return lambda images, training: d(images, training=training, labels=labels)

    def _real_batch(self, images):
        """(a real batch, its labels or None)."""
        state, batch = self.state, self.config.batch_size
        indices = data.sample_indices(tf.shape(images, out_type=tf.int64)[0], batch, state.rng)
        labels = tf.gather(self.labels, indices) if self.conditional else None
        return data.gather_batch(images, indices), labels

    def _penalties(self, penalties, real, fake, labels, rng, due=None):
        """(the weighted sum to add to D's loss, or None; {"penalty_<name>": value}).

        Lazily (penalty_every = k > 1) a penalty is computed on every k-th iteration only, as k
        times its value, and is 0 in between: its mean over k iterations is the mean of the
        values computed, and its weighted sum is what the loss gets. `due`, a Python bool, says
        whether this is such an iteration when the caller has decided it already.
        """
        d, every = self._discriminator(labels), self.config.penalty_every
        loss_scale = self._loss_scale("d")
        scale = None if loss_scale is None else loss_scale.scale
        values = {}
        for name, _, penalty in penalties:
            # Only under float16, and only to penalties that take it: a penalty is still any
            # function(d, real, fake, rng).
            extra = ({"gradient_scale": scale} if scale is not None
                     and "gradient_scale" in inspect.signature(penalty.function).parameters
                     else {})

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
        if not penalties:
            return None, values
        weighted = _sum([weight * values[f"penalty_{name}"] for name, weight, _ in penalties])
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
        seed = self._penalty_seed()
        if self.config.d_update == "joint":
            def joint_loss(real, fake, labels, seed):
                real, labels = self._local(real), self._local(labels)
                real_logits, fake_logits = self._discriminate_both(real, fake, labels)
                parts = self.d_loss(real_logits, fake_logits)
                penalty, penalty_values = self._penalties(self.penalties, real, fake, labels,
                                                          self._penalty_rng(seed), due)
                loss = _sum(list(parts.values()) + ([penalty] if penalty is not None else []))
                verdicts = {**self._verdicts(real_logits, "real"),
                            **self._verdicts(fake_logits, "fake")}
                return loss, (parts, penalty_values, verdicts)
            return self._d_step(joint_loss, real, fake, labels, seed)

        def half_step(side, term, penalties):
            def loss_fn(real, fake, labels, seed):
                real, labels = self._local(real), self._local(labels)
                logits = self._discriminator(labels)(real if side == "real" else fake,
                                                     training=True)
                loss = term(logits)
                penalty, penalty_values = self._penalties(penalties, real, fake, labels,
                                                          self._penalty_rng(seed), due)
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
        state, config = self.state, self.config
        batch = config.batch_size
        fake_in_training = config.d_fake_batchnorm == "train"
        for _ in range(config.d_steps):
            real, labels = self._real_batch(images)
            z = networks.draw_latent(state.rng, batch, config.latent_dim,
                                     config.latent_distribution)
            fake = self._fake_batch(z, labels, fake_in_training)
            if self.num_replicas > 1 and self.penalties and config.penalty_every > 1:
                # Lazy penalties branch here, around the replicas' steps: a replica may not
                # all-reduce (synchronized BatchNorm in D) inside a tf.cond of its own.
                due = tf.equal(state.step % config.penalty_every, 0)
                update = tf.cond(
                    due, lambda: self._d_update(real, fake, labels, due=True),
                    lambda: self._d_update(real, fake, labels, due=False))
            else:
                update = self._d_update(real, fake, labels)
            (parts, penalty_values, verdicts), d_grad_norm = update

        z = networks.draw_latent(state.rng, batch, config.latent_dim, config.latent_distribution)
        g_real = g_labels = None
        if self.g_loss.needs_real_logits or self.conditional:
            g_real, g_labels = self._real_batch(images)
        g_loss, logit_grad, g_grad_norm = self._g_update(
            z, g_real if self.g_loss.needs_real_logits else None, g_labels)
        if config.g_ema_decay > 0:
            update_ema(state.generator_ema, state.generator, config.g_ema_decay)
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
        if config.loss_scaling:
            metrics["d_loss_scale"] = tf.identity(state.d_loss_scale.scale)
            metrics["g_loss_scale"] = tf.identity(state.g_loss_scale.scale)
        return metrics
