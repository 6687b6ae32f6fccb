"""gan: a low-level, pure-TensorFlow research codebase for studying Generative Adversarial Networks."""

from gan import _startup

_startup.prepare()  # the console filter, then TensorFlow (see gan._startup)
