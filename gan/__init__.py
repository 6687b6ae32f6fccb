"""gan: a low-level, pure-TensorFlow research codebase for studying Generative Adversarial Networks."""
