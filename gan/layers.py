"""Neural-network building blocks as `tf.Module`s over `tf.Variable`s.

Every layer creates its variables lazily from the shape of its first input (as Sonnet 2 does), or
eagerly when the sizes are given up front. Build a network eagerly once (see `networks.build`) before
tracing it under `tf.function`, so that variables are never created inside compiled code.

All layers work eagerly and under `tf.function(jit_compile=True)`; tests check both.
"""

import math

import tensorflow as tf


def glorot_uniform(shape, fan_in, fan_out, dtype=tf.float32):
    """Glorot & Bengio (2010) uniform init: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).

    The default of Keras' Dense and Conv layers, so the seed's networks start from the same law.
    """
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return tf.random.uniform(shape, -limit, limit, dtype=dtype)


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
        y = tf.matmul(x, self.kernel)
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        return y


class BatchNorm(tf.Module):
    """Batch normalisation (Ioffe & Szegedy 2015) over every axis but the last.

    training=True:  y = scale * (x - mean_B) / sqrt(var_B + epsilon) + offset, with the batch's
                    (biased) mean and variance, and the moving statistics updated as
                    moving = momentum * moving + (1 - momentum) * batch_statistic.
    training=False: the same with the moving statistics in place of the batch's.

    Defaults (momentum 0.99, epsilon 1e-3) are Keras'; the seed sets momentum 0.8.
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, num_features=None, name=None):
        super().__init__(name=name)
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
        self.moving_mean = tf.Variable(tf.zeros([num_features]), trainable=False, name="moving_mean")
        self.moving_variance = tf.Variable(
            tf.ones([num_features]), trainable=False, name="moving_variance")

    def __call__(self, x, training):
        if self.num_features is None:
            self._build(int(x.shape[-1]))
        if training:
            axes = list(range(len(x.shape) - 1))
            mean = tf.reduce_mean(x, axis=axes)
            variance = tf.reduce_mean(tf.math.squared_difference(x, tf.stop_gradient(mean)), axis=axes)
            m = self.momentum
            self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * tf.stop_gradient(mean))
            self.moving_variance.assign(
                m * self.moving_variance + (1.0 - m) * tf.stop_gradient(variance))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        # Folding scale and statistics into one multiply-add keeps the op count (and memory traffic)
        # at two elementwise passes over x.
        multiplier = self.scale * tf.math.rsqrt(variance + self.epsilon)
        return x * multiplier + (self.offset - mean * multiplier)


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
        y = self._convolve(x)
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        return y


class Conv2D(_Convolution):
    """2-D convolution on NHWC input: y = conv(x, W) + b; W [k, k, C_in, C_out], Glorot-uniform."""

    def _kernel_shape(self, input_channels):
        return [self.kernel_size, self.kernel_size, input_channels, self.filters]

    def _convolve(self, x):
        return tf.nn.conv2d(x, self.kernel, strides=self.stride, padding=self.padding)


class Conv2DTranspose(_Convolution):
    """Transposed 2-D convolution (the gradient of Conv2D w.r.t. its input), NHWC.

    W has shape [k, k, C_out, C_in] as tf.nn.conv2d_transpose expects; the output's spatial size is
    H * stride for SAME padding and (H - 1) * stride + k for VALID.
    """

    def _kernel_shape(self, input_channels):
        return [self.kernel_size, self.kernel_size, self.filters, input_channels]

    def _convolve(self, x):
        height, width = int(x.shape[1]), int(x.shape[2])
        out_h = conv_transpose_output_size(height, self.kernel_size, self.stride, self.padding)
        out_w = conv_transpose_output_size(width, self.kernel_size, self.stride, self.padding)
        output_shape = tf.stack([tf.shape(x)[0], out_h, out_w, self.filters])
        return tf.nn.conv2d_transpose(x, self.kernel, output_shape, strides=self.stride,
                                      padding=self.padding)
