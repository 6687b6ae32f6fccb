"""Hand-written optimizers as `tf.Module`s, their state in `tf.Variable`s.

`optimizer.apply(grads, variables)` updates `variables` in place, skipping any whose gradient is None.
Slot variables are created eagerly by `build(variables)` (or on the first eager `apply`), so that a
compiled training step never creates variables, and `tf.train.Checkpoint` saves and restores them
together with the step count and the learning rate.

The learning rate is a variable, so a run can change it (e.g. after a roll-back) without retracing.
"""

import tensorflow as tf

from gan import registry


UPDATE_SCOPE = "optimizer_update"


class Optimizer(tf.Module):
    """Common state and bookkeeping; subclasses define `_slot_names` and `_update`."""

    _slot_names = ()

    def __init__(self, learning_rate, name=None):
        super().__init__(name=name)
        if not learning_rate > 0:
            raise ValueError(f"learning rate must be > 0, got {learning_rate}")
        self.learning_rate = tf.Variable(float(learning_rate), trainable=False, name="learning_rate")
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.slots = []  # one dict of slot variables per variable, in `build` order
        self._slot_index = {}

    @property
    def slot_names(self):
        """The names of the state variables kept per weight; they fix a checkpoint's structure."""
        return tuple(self._slot_names)

    def build(self, variables):
        """Creates the slot variables for `variables` (idempotent)."""
        with self.name_scope:
            for variable in variables:
                key = variable.ref()
                if key in self._slot_index:
                    continue
                self._slot_index[key] = len(self.slots)
                base_name = variable.name.split(":")[0].replace("/", "_")
                self.slots.append({
                    slot: tf.Variable(tf.zeros_like(variable), trainable=False,
                                      name=f"{base_name}_{slot}")
                    for slot in self._slot_names})

    def apply(self, grads, variables):
        grads_and_vars = [(g, v) for g, v in zip(grads, variables) if g is not None]
        if tf.executing_eagerly():
            self.build([v for _, v in grads_and_vars])
        # The scope names the update's ops, so that a profile (experiments/profile_step.py) can
        # tell them from the rest of the step.
        with tf.name_scope(UPDATE_SCOPE):
            step = self.iterations.assign_add(1)
            for grad, variable in grads_and_vars:
                index = self._slot_index.get(variable.ref())
                if index is None:
                    raise ValueError(f"{self.name}: variable {variable.name} was not built; call "
                                     "build(variables) before compiling the training step")
                # Hyper-parameters follow each variable's dtype, so float64 problems stay float64.
                lr = tf.cast(self.learning_rate, variable.dtype)
                self._update(grad, variable, self.slots[index], lr, tf.cast(step, variable.dtype))

    def _update(self, grad, variable, slots, lr, step):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, Keras' formulation.

    momentum = 0:   w <- w - lr * g
    momentum > 0:   v <- momentum * v - lr * g;  w <- w + v
    nesterov:       v <- momentum * v - lr * g;  w <- w + momentum * v - lr * g
                    (Sutskever et al. 2013, in the form of Bengio et al. 2012)
    """

    HYPERPARAMETERS = ("momentum", "nesterov")  # what make_optimizer passes on

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="sgd"):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self._slot_names = ("velocity",) if momentum > 0 else ()
        super().__init__(learning_rate, name=name)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _update(self, grad, variable, slots, lr, step):
        if self.momentum == 0.0:
            variable.assign_sub(lr * grad)
            return
        velocity = slots["velocity"]
        velocity.assign(self.momentum * velocity - lr * grad)
        if self.nesterov:
            variable.assign_add(self.momentum * velocity - lr * grad)
        else:
            variable.assign_add(velocity)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), in the paper's own "more efficient" ordering (end of section 2):

        m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
        lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)
        w <- w - lr_t * m / (sqrt(v) + epsilon_hat)

    This is Algorithm 1 with epsilon replaced by epsilon_hat = epsilon * sqrt(1 - b2^t); it is also
    what Keras and TF1 compute, so runs compare one-to-one with the tutorial's Keras optimizer.
    """

    _slot_names = ("m", "v")

    HYPERPARAMETERS = ("beta1", "beta2", "epsilon")

    def __init__(self, learning_rate=2e-4, beta1=0.5, beta2=0.999, epsilon=1e-7, name="adam"):
        for label, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Adam {label} must be in [0, 1), got {beta}")
        if not epsilon > 0:
            raise ValueError(f"Adam epsilon must be > 0, got {epsilon}")
        super().__init__(learning_rate, name=name)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)

    def _update(self, grad, variable, slots, lr, step):
        m, v = slots["m"], slots["v"]
        m.assign(self.beta1 * m + (1.0 - self.beta1) * grad)
        v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(grad))
        lr_t = lr * tf.sqrt(1.0 - tf.pow(self.beta2, step)) / (
            1.0 - tf.pow(self.beta1, step))
        variable.assign_sub(lr_t * m / (tf.sqrt(v) + self.epsilon))


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012, lecture 6.5), Keras/TF's formulation:

        s <- rho s + (1 - rho) g^2
        w <- w - lr * g / sqrt(s + epsilon)
    With momentum > 0:  u <- momentum * u + lr * g / sqrt(s + epsilon);  w <- w - u.
    """

    HYPERPARAMETERS = ("rho", "momentum", "epsilon")

    def __init__(self, learning_rate=1e-3, rho=0.9, momentum=0.0, epsilon=1e-7, name="rmsprop"):
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"RMSprop rho must be in [0, 1), got {rho}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"RMSprop momentum must be in [0, 1), got {momentum}")
        self._slot_names = ("mean_square", "momentum") if momentum > 0 else ("mean_square",)
        super().__init__(learning_rate, name=name)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)

    def _update(self, grad, variable, slots, lr, step):
        mean_square = slots["mean_square"]
        mean_square.assign(self.rho * mean_square + (1.0 - self.rho) * tf.square(grad))
        increment = lr * grad * tf.math.rsqrt(mean_square + self.epsilon)
        if self.momentum > 0:
            slots["momentum"].assign(self.momentum * slots["momentum"] + increment)
            increment = slots["momentum"]
        variable.assign_sub(increment)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def make_optimizer(name, learning_rate, label="optimizer", **settings):
    """Builds an optimizer by name from a run's optimizer settings ({beta1: ..., momentum: ...}):
    each takes the hyper-parameters its class declares in HYPERPARAMETERS, so a new registry
    entry is built as itself, never as another optimizer. A class that does not declare them
    cannot be built."""
    cls = registry.lookup(OPTIMIZERS, name, label)
    declared = getattr(cls, "HYPERPARAMETERS", None)
    if declared is None:
        raise TypeError(f"optimizer {name!r} ({cls.__name__}) declares no HYPERPARAMETERS, so "
                        "make_optimizer cannot build it")
    return cls(learning_rate, **{key: settings[key] for key in declared if key in settings},
               name=label)


class DynamicLossScale(tf.Module):
    """Dynamic loss scaling for float16 training (Micikevicius et al. 2018, "Mixed Precision
    Training"; the schedule of Keras' LossScaleOptimizer).

    float16 flushes gradients below about 6e-8 to zero. The loss is multiplied by a scale S
    before differentiation, which shifts every gradient into float16's range, and the gradients
    are divided by S before the update. When a scaled gradient overflows (inf/NaN), the update is
    skipped and S halves; after `growth_interval` finite updates in a row, S doubles. Both live
    in variables, so checkpoints hold them and a resumed run goes on with the same scale.
    """

    def __init__(self, initial_scale=2.0 ** 15, growth_interval=2000, name="loss_scale"):
        super().__init__(name=name)
        if not initial_scale >= 1 or growth_interval < 1:
            raise ValueError("the initial loss scale must be >= 1 and the growth interval >= 1")
        self.growth_interval = int(growth_interval)
        self.scale = tf.Variable(float(initial_scale), trainable=False, name="scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")

    def scale_loss(self, loss):
        return loss * tf.cast(self.scale, loss.dtype)

    def unscale(self, grads):
        return [None if g is None else g / tf.cast(self.scale, g.dtype) for g in grads]

    @staticmethod
    def all_finite(grads):
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])

    def update(self, finite):
        """Moves the scale after an update whose gradients were (not) all finite."""
        grown = self.good_steps + 1 >= self.growth_interval
        self.scale.assign(tf.where(finite, tf.where(grown, self.scale * 2.0, self.scale),
                                   tf.maximum(self.scale * 0.5, 1.0)))
        self.good_steps.assign(tf.where(finite & ~grown, self.good_steps + 1,
                                        tf.zeros([], tf.int64)))

    def apply(self, optimizer, grads, variables):
        """optimizer.apply(grads, variables) when every gradient is finite, else nothing; then
        the scale moves. `grads` are unscaled already. Returns whether the update was applied."""
        finite = self.all_finite(grads)

        def step():
            optimizer.apply(grads, variables)
            return tf.constant(True)
        applied = tf.cond(finite, step, lambda: tf.constant(False))
        self.update(finite)
        return applied
