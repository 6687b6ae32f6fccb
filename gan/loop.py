"""The machinery under the GAN step, which an engineer maintains and a researcher need not read:
the compiled loop of n iterations, the finiteness check, loss-scaled updates, the replicas'
slices, all-reduces and random streams, and XLA helpers. `gan.step.Trainer` builds the GAN's
iteration on top of `Loop`.

`Loop.run(n)` runs n iterations inside one compiled function: batches are drawn in-graph from the
resident training set with the state's own RNG, so there is no Python work and no host transfer
per iteration; the metrics come back as their means over the n iterations, as tensors that stay
on the device until they are logged.

Under a `tf.distribute` strategy with N replicas (see `gan.distribute`), the batch size is the
global batch. Each iteration's batches and noise are drawn once, from the state's one RNG,
exactly as on one device, and replica r takes the r-th slice of each (`_local`); every replica
averages its loss over its own examples, the gradients are averaged over replicas (one
all-reduce per update, `_replica_mean`) and the update is applied once to the mirrored weights.
A penalty's own noise is drawn by each replica from its own `ReplicaStream`.

Mixed precision (float16): each update's loss is multiplied by its network's dynamic loss scale
before differentiation and the gradients divided by it after (`optimizers.DynamicLossScale`); an
update whose gradients overflow is skipped and reported with gradient norm 0, which the
finiteness check does not count as a divergence.
"""

import tensorflow as tf

try:
    from tensorflow.compiler.tf2xla.python import xla as tf2xla
except ImportError:  # a TensorFlow without it: norms fall back to tf.linalg.global_norm
    tf2xla = None

from gan import data


class ReplicaStream:
    """A replica's own random stream for one update: stateless draws from (a seed read from the
    state's RNG, the replica's id, a per-call counter), for the penalties' noise under several
    replicas, where the state's RNG is drawn from in cross-replica context only."""

    def __init__(self, seed):
        context = tf.distribute.get_replica_context()
        self.seed = tf.random.experimental.stateless_fold_in(
            seed, tf.cast(context.replica_id_in_sync_group, tf.int32))
        self.calls = 0

    def _next_seed(self):
        self.calls += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.calls)

    # The draws of tf.random.Generator that a penalty may make, with its signatures.
    def uniform(self, shape, minval=0.0, maxval=1.0, dtype=tf.float32):
        return tf.random.stateless_uniform(shape, self._next_seed(), minval, maxval, dtype=dtype)

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=tf.float32):
        return tf.random.stateless_normal(shape, self._next_seed(), mean, stddev, dtype=dtype)

    def truncated_normal(self, shape, mean=0.0, stddev=1.0, dtype=tf.float32):
        return tf.random.stateless_truncated_normal(shape, self._next_seed(), mean, stddev,
                                                    dtype=dtype)

    def binomial(self, shape, counts, probs, dtype=tf.int32):
        return tf.random.stateless_binomial(shape, self._next_seed(), counts, probs,
                                            output_dtype=dtype)


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


class Loop:
    """Compiles and runs iterations over a GANState; a subclass defines `_iteration(images)`.

    `images`: the training set, float32 [N, 28, 28, 1] in [-1, 1], or its uint8 pixels [N, 28, 28]
    (a quarter of the memory), which each batch converts in-graph to exactly the same floats.
    `strategy`: the `tf.distribute.Strategy` whose scope made the state (default: the current
    one, i.e. one device outside any scope). Several replicas compile without XLA (`strategy.run`
    cannot live inside an XLA cluster); TPUStrategy compiles each replica's step itself.
    """

    def __init__(self, state, batch_size, images, labels=None, jit_compile=True, strategy=None):
        self.state = state
        self.batch_size = batch_size
        self.strategy = strategy or tf.distribute.get_strategy()
        self.num_replicas = self.strategy.num_replicas_in_sync
        if batch_size % self.num_replicas:
            raise ValueError(f"the global batch of {batch_size} does not split evenly over "
                             f"{self.num_replicas} replicas")
        self.local_batch = batch_size // self.num_replicas
        self.images = tf.convert_to_tensor(images)
        self.conditional = state.generator.num_classes > 0
        if self.conditional and labels is None:
            raise ValueError("a conditional GAN needs the training labels")
        self.labels = tf.convert_to_tensor(labels) if self.conditional else None
        # No AutoGraph: the control flow here is explicit (tf.while_loop, tf.cond; Python `if`s
        # test Python values only), and converting every layer's source took about a third of a
        # short run's CPU time before its first step.
        self.jit_compile = jit_compile and self.num_replicas == 1
        self._run = tf.function(self._run_iterations, jit_compile=self.jit_compile,
                                autograph=False)

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

    def _noise_rng(self, seed):
        return self.state.rng if seed is None else ReplicaStream(seed)

    def _noise_seed(self, needed=True):
        """A seed for the replicas' own noise (None with one replica: the state's RNG is
        used directly). Read from the RNG's state without advancing it, so
        that every other draw stays the one a single device makes; the state moves on with each
        batch, and so does the seed."""
        if self.num_replicas == 1 or not needed:
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
        return getattr(self.state, f"{network}_loss_scale", None)

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

    def _update(self, network, optimizer, loss_fn, *args):
        """One update of `network` on loss_fn(*args) -> (loss, extras), run by every replica on
        its share; returns (extras averaged over replicas, gradient norm)."""
        loss_scale = self._loss_scale("d" if network is self.state.discriminator else "g")

        def replica_step(*replica_args):
            with tf.GradientTape() as tape:
                loss, extras = loss_fn(*replica_args)
                scaled_loss = self._scaled(loss, loss_scale)
            grads = self._gradients(tape, scaled_loss, network.trainable_variables, loss_scale)
            return self._replica_mean((grads, extras))
        grads, extras = self._in_replicas(replica_step, *args)
        return extras, self._apply(optimizer, grads, network.trainable_variables, loss_scale)

    def _real_batch(self, images):
        """(a real batch, its labels or None)."""
        state, batch = self.state, self.batch_size
        indices = data.sample_indices(tf.shape(images, out_type=tf.int64)[0], batch, state.rng)
        labels = tf.gather(self.labels, indices) if self.conditional else None
        return data.gather_batch(images, indices), labels
