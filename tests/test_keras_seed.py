"""The Keras yardstick (experiments/keras_seed.py) is the tutorial's loop: D learns in its own
steps and is frozen in G's. (Under Keras 3 the tutorial's single `trainable = False` froze D in
both, and the yardstick trained G against a D that never learned.)"""

import numpy as np
import pytest

from helpers import load_experiment_script

keras = pytest.importorskip("keras", reason="Keras is only a yardstick; not installed")


def weights(model):
    return [np.array(w) for w in model.weights]


def moved(before, model):
    return [not np.array_equal(a, np.array(b)) for a, b in zip(before, model.weights)]


def test_d_learns_in_its_steps_and_is_frozen_in_gs():
    seed = load_experiment_script("keras_seed")
    keras.utils.set_random_seed(0)
    discriminator = seed.build_discriminator()
    discriminator.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD())
    generator = seed.build_generator()
    combined = seed.build_combined(generator, discriminator, keras.optimizers.SGD())
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (8, 28, 28, 1)).astype(np.float32)
    noise = rng.normal(size=(8, seed.LATENT_DIM)).astype(np.float32)
    ones, zeros = np.ones((8, 1)), np.zeros((8, 1))
    for _ in range(2):  # the second round runs the already-compiled steps
        d_before, g_before = weights(discriminator), weights(generator)
        seed.train_discriminator(discriminator, real, generator.predict(noise, verbose=0),
                                 ones, zeros)
        assert all(moved(d_before, discriminator))
        assert not any(moved(g_before, generator))

        d_before, g_before = weights(discriminator), weights(generator)
        seed.train_generator(combined, discriminator, noise, ones)
        assert not any(moved(d_before, discriminator))
        # G's dense kernels and biases move; its BatchNorm moving statistics move as well.
        assert sum(moved(g_before, generator)) >= 8
