"""Neural-network building blocks as `tf.Module`s over `tf.Variable`s.

Every layer creates its variables lazily from the shape of its first input (as Sonnet 2 does), or
eagerly when the sizes are given up front. Build a network eagerly once (see `networks.build`) before
tracing it under `tf.function`, so that variables are never created inside compiled code.

All layers work eagerly and under `tf.function(jit_compile=True)`; tests check both.

Mixed precision: variables are always float32; a layer computes in its input's dtype (bfloat16 or
float16 when the network casts its input down, see `networks`), casting its weights to it at each
use, as Keras' mixed-precision policies do. The normalizations compute in float32 (as Keras'
do): their statistics, and the subtraction of the mean, would lose most of their digits in 16
bits. With a float32 input every cast is the identity.
"""

import math

import tensorflow as tf


def glorot_uniform(shape, fan_in, fan_out, dtype=tf.float32):
    """Glorot & Bengio (2010) uniform init: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).

    The default of Keras' Dense and Conv layers, so the seed's networks start from the same law.
    """
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return tf.random.uniform(shape, -limit, limit, dtype=dtype)


REPLICA_MEAN = tf.VariableAggregation.MEAN


def num_replicas():
    """How many replicas run this code in sync: 1 outside a `tf.distribute` replica context."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def replica_mean(x):
    """The mean of x over the replicas in sync (x itself with one). Differentiable: the gradient
    of an all-reduce mean is the all-reduce mean of the upstream gradients, so a loss on
    synchronized statistics gets the gradient it would have on one device."""
    if num_replicas() == 1:
        return x
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, x)


def leaky_relu(x, slope=0.2):
    """max(x, slope * x) for 0 <= slope <= 1 (Maas et al. 2013); the seed uses slope 0.2."""
    return tf.maximum(x, slope * x)


class Dense(tf.Module):
    """y = x @ W + b, with W ~ Glorot-uniform and b = 0."""

    def __init__(self, units, input_size=None, use_bias=True, name=None):
        super().__init__(name=name)
        if units <= 0:
            raise ValueError(f"Dense units must be positive, got {units}")
        self.units = int(units)
        self.use_bias = use_bias
        self.input_size = None
        if input_size is not None:
            self._build(int(input_size))

    @tf.Module.with_name_scope
    def _build(self, input_size):
        self.input_size = input_size
        self.kernel = tf.Variable(
            glorot_uniform([input_size, self.units], input_size, self.units), name="kernel")
        if self.use_bias:
            self.bias = tf.Variable(tf.zeros([self.units]), name="bias")

    def __call__(self, x):
        if self.input_size is None:
            self._build(int(x.shape[-1]))
        return self.apply_kernel(x, self.kernel)

    def apply_kernel(self, x, kernel):
        """The layer with `kernel` in place of its own (SpectralNorm passes W / sigma)."""
        y = tf.matmul(x, tf.cast(kernel, x.dtype))
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        return y


class BatchNorm(tf.Module):
    """Batch normalisation (Ioffe & Szegedy 2015) over every axis but the last.

    training=True:  y = scale * (x - mean_B) / sqrt(var_B + epsilon) + offset, with the batch's
                    (biased) mean and variance, and the moving statistics updated as
                    moving = momentum * moving + (1 - momentum) * batch_statistic.
    training=False: the same with the moving statistics in place of the batch's.

    Defaults (momentum 0.99, epsilon 1e-3) are Keras'; the seed sets momentum 0.8.

    Under a `tf.distribute` strategy with several replicas, `cross_replica` (the default) makes
    the batch statistics those of the global batch (synchronized BatchNorm: an all-reduce of the
    mean, then of the variance about it), so the layer computes what one device would on the
    whole batch; `cross_replica=False` keeps each replica's own statistics. The moving
    statistics are averaged over replicas when stored (identical values when synchronized).
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, num_features=None, cross_replica=True,
                 name=None):
        super().__init__(name=name)
        self.cross_replica = bool(cross_replica)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must be in [0, 1], got {momentum}")
        if epsilon <= 0:
            raise ValueError(f"BatchNorm epsilon must be positive, got {epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.num_features = None
        if num_features is not None:
            self._build(int(num_features))

    @tf.Module.with_name_scope
    def _build(self, num_features):
        self.num_features = num_features
        self.scale = tf.Variable(tf.ones([num_features]), name="scale")
        self.offset = tf.Variable(tf.zeros([num_features]), name="offset")
        # MEAN: replicas update these inside their forward pass (see the class docstring).
        self.moving_mean = tf.Variable(tf.zeros([num_features]), trainable=False,
                                       name="moving_mean", aggregation=REPLICA_MEAN)
        self.moving_variance = tf.Variable(tf.ones([num_features]), trainable=False,
                                           name="moving_variance", aggregation=REPLICA_MEAN)

    def __call__(self, x, training):
        if self.num_features is None:
            self._build(int(x.shape[-1]))
        if training:
            axes = list(range(len(x.shape) - 1))
            synchronized = self.cross_replica and num_replicas() > 1
            x32 = tf.cast(x, tf.float32)
            mean = tf.reduce_mean(x32, axis=axes)
            if synchronized:
                mean = replica_mean(mean)
            variance = tf.reduce_mean(tf.math.squared_difference(x32, tf.stop_gradient(mean)),
                                      axis=axes)
            if synchronized:
                # The gradient through the mean is left out, locally as globally: the deviations
                # from the global mean sum to zero over the global batch.
                variance = replica_mean(variance)
            m = self.momentum
            self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * tf.stop_gradient(mean))
            self.moving_variance.assign(
                m * self.moving_variance + (1.0 - m) * tf.stop_gradient(variance))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        # Folding scale and statistics into one multiply-add keeps the op count (and memory traffic)
        # at two elementwise passes over x.
        multiplier = self.scale * tf.math.rsqrt(variance + self.epsilon)
        # In float32 for a 16-bit x as well: x * multiplier and the shift nearly cancel when the
        # mean is large against the spread, and 16 bits would keep little of the difference.
        y = tf.cast(x, tf.float32) * multiplier + (self.offset - mean * multiplier)
        return tf.cast(y, x.dtype)


class LayerNorm(tf.Module):
    """Layer normalisation (Ba et al. 2016): each example normalised over all its axes but the batch,
        y = scale * (x - mean_x) / sqrt(var_x + epsilon) + offset,
    with scale and offset per channel (the last axis), as compare_gan's `layer_norm` does for conv
    features. No batch statistics: an example's output depends on itself alone, and training and
    inference behave the same.
    """

    def __init__(self, epsilon=1e-5, num_features=None, name=None):
        super().__init__(name=name)
        if epsilon <= 0:
            raise ValueError(f"LayerNorm epsilon must be positive, got {epsilon}")
        self.epsilon = float(epsilon)
        self.num_features = None
        if num_features is not None:
            self._build(int(num_features))

    @tf.Module.with_name_scope
    def _build(self, num_features):
        self.num_features = num_features
        self.scale = tf.Variable(tf.ones([num_features]), name="scale")
        self.offset = tf.Variable(tf.zeros([num_features]), name="offset")

    def __call__(self, x, training=False):
        del training  # the same in training and inference
        if self.num_features is None:
            self._build(int(x.shape[-1]))
        axes = list(range(1, len(x.shape)))
        x32 = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x32, axes=axes, keepdims=True)
        y = (x32 - mean) * tf.math.rsqrt(variance + self.epsilon) * self.scale + self.offset
        return tf.cast(y, x.dtype)


def _l2_normalize(x, epsilon):
    return x * tf.math.rsqrt(tf.reduce_sum(tf.square(x)) + epsilon)


class SpectralNorm(tf.Module):
    """Spectral normalisation (Miyato et al. 2018, "Spectral Normalization for GANs", Algorithm 1):
    the wrapped layer runs with W / sigma(W), sigma the largest singular value of its kernel seen as a
    matrix [-1, last axis] (for a convolution: [k * k * C_in, C_out]).

    sigma is estimated by power iteration with a vector u kept between calls in a non-trainable
    variable (so checkpoints hold it): v = normalize(u W^T), u' = normalize(v W), sigma = v W u'^T.
    Every call with training=True does one iteration and stores u'; gradients flow through sigma but
    not through u and v, as in the paper. With training=False, u is read and left unchanged.

    Wraps any layer with a `kernel` and `apply_kernel(x, kernel)`: Dense, Conv2D, Conv2DTranspose,
    Embedding.
    """

    takes_training = True  # its call takes `training` (see normalizations.apply)

    def __init__(self, layer, epsilon=1e-12, name=None):
        super().__init__(name=name)
        self.layer = layer
        self.epsilon = float(epsilon)
        self.u = None
        if getattr(layer, "kernel", None) is not None:
            self._build()

    @tf.Module.with_name_scope
    def _build(self):
        out_dim = int(self.layer.kernel.shape[-1])
        # Every replica computes the same u' from the same weights; MEAN lets each store it.
        self.u = tf.Variable(_l2_normalize(tf.random.normal([1, out_dim]), self.epsilon),
                             trainable=False, name="u", aggregation=REPLICA_MEAN)

    def _matrix(self):
        return tf.reshape(self.layer.kernel, [-1, int(self.layer.kernel.shape[-1])])

    def sigma(self, update=False):
        """The power-iteration estimate of sigma(W); update=True stores the new u."""
        w = self._matrix()
        v = tf.stop_gradient(_l2_normalize(tf.matmul(self.u, w, transpose_b=True), self.epsilon))
        u = tf.stop_gradient(_l2_normalize(tf.matmul(v, w), self.epsilon))
        if update:
            self.u.assign(u)
        return tf.reduce_sum(tf.matmul(v, w) * u)

    def __call__(self, x, training=False):
        if self.u is None:
            self.layer(x)  # builds a lazily sized layer (eagerly, see networks.build)
            self._build()
        return self.layer.apply_kernel(x, self.layer.kernel / self.sigma(update=training))


class Embedding(tf.Module):
    """A lookup table: labels [B] int -> rows of a [num_classes, dim] table, Glorot-uniform.
    A label outside [0, num_classes) gives a row of zeros."""

    def __init__(self, num_classes, dim, name=None):
        super().__init__(name=name)
        if num_classes <= 0 or dim <= 0:
            raise ValueError(f"Embedding sizes must be positive, got {num_classes} x {dim}")
        self.num_classes, self.dim = int(num_classes), int(dim)
        with self.name_scope:
            self.kernel = tf.Variable(glorot_uniform([self.num_classes, self.dim],
                                                     self.num_classes, self.dim), name="kernel")

    def __call__(self, labels):
        return self.apply_kernel(labels, self.kernel)

    def apply_kernel(self, labels, kernel):
        # one_hot @ table rather than a gather: the gradient is then a dense tensor, which every
        # optimizer here takes (a gather's is IndexedSlices), at no real cost for a few classes.
        return tf.matmul(tf.one_hot(labels, self.num_classes, dtype=kernel.dtype), kernel)


class Dropout(tf.Module):
    """Inverted dropout (Srivastava et al. 2014): keep with prob 1 - rate, scale kept units by 1/(1-rate).

    `seed` is a shape-[2] int tensor for stateless sampling, so that runs are reproducible and the
    op compiles under XLA; draw it from the training state's `tf.random.Generator`.
    """

    def __init__(self, rate, name=None):
        super().__init__(name=name)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def __call__(self, x, training, seed=None):
        if not training or self.rate == 0.0:
            return x
        if seed is None:
            return tf.nn.dropout(x, rate=self.rate)
        return tf.nn.experimental.stateless_dropout(x, rate=self.rate, seed=seed)


class Flatten(tf.Module):
    """[B, d1, ..., dk] -> [B, d1 * ... * dk]."""

    def __call__(self, x):
        return tf.reshape(x, [-1, math.prod(int(d) for d in x.shape[1:])])


class Reshape(tf.Module):
    """[B, ...] -> [B, *shape]."""

    def __init__(self, shape, name=None):
        super().__init__(name=name)
        self.shape = tuple(int(d) for d in shape)

    def __call__(self, x):
        return tf.reshape(x, (-1,) + self.shape)


def _check_padding(padding):
    padding = padding.upper()
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    return padding


def conv_output_size(size, kernel, stride, padding):
    """Spatial output size of a strided convolution (TensorFlow's convention)."""
    if padding == "SAME":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def conv_transpose_output_size(size, kernel, stride, padding):
    """Spatial output size of a transposed convolution: the inverse of `conv_output_size`."""
    if padding == "SAME":
        return size * stride
    return (size - 1) * stride + kernel


class _Convolution(tf.Module):
    """Shared set-up of Conv2D and Conv2DTranspose: square kernel, stride, padding, optional bias."""

    def __init__(self, filters, kernel_size, stride=1, padding="SAME", use_bias=True, name=None):
        super().__init__(name=name)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.padding = _check_padding(padding)
        self.use_bias = use_bias
        self.input_channels = None

    def _kernel_shape(self, input_channels):
        raise NotImplementedError

    @tf.Module.with_name_scope
    def _build(self, input_channels):
        self.input_channels = input_channels
        k = self.kernel_size
        # Glorot fans of a convolution: each output sees k*k*C_in inputs, each input feeds
        # k*k*C_out outputs (the same for the transposed kernel, with the roles swapped).
        self.kernel = tf.Variable(
            glorot_uniform(self._kernel_shape(input_channels), k * k * input_channels,
                           k * k * self.filters), name="kernel")
        if self.use_bias:
            self.bias = tf.Variable(tf.zeros([self.filters]), name="bias")

    def __call__(self, x):
        if self.input_channels is None:
            self._build(int(x.shape[-1]))
        return self.apply_kernel(x, self.kernel)

    def apply_kernel(self, x, kernel):
        """The layer with `kernel` in place of its own (SpectralNorm passes W / sigma)."""
        y = self._convolve(x, tf.cast(kernel, x.dtype))
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        return y


class Conv2D(_Convolution):
    """2-D convolution on NHWC input: y = conv(x, W) + b; W [k, k, C_in, C_out], Glorot-uniform."""

    def _kernel_shape(self, input_channels):
        return [self.kernel_size, self.kernel_size, input_channels, self.filters]

    def _convolve(self, x, kernel):
        return tf.nn.conv2d(x, kernel, strides=self.stride, padding=self.padding)


class Conv2DTranspose(_Convolution):
    """Transposed 2-D convolution (the gradient of Conv2D w.r.t. its input), NHWC.

    W has shape [k, k, C_out, C_in] as tf.nn.conv2d_transpose expects; the output's spatial size is
    H * stride for SAME padding and (H - 1) * stride + k for VALID.
    """

    def _kernel_shape(self, input_channels):
        return [self.kernel_size, self.kernel_size, self.filters, input_channels]

    def _convolve(self, x, kernel):
        height, width = int(x.shape[1]), int(x.shape[2])
        out_h = conv_transpose_output_size(height, self.kernel_size, self.stride, self.padding)
        out_w = conv_transpose_output_size(width, self.kernel_size, self.stride, self.padding)
        output_shape = tf.stack([tf.shape(x)[0], out_h, out_w, self.filters])
        return tf.nn.conv2d_transpose(x, kernel, output_shape, strides=self.stride,
                                      padding=self.padding)
