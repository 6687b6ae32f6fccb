"""The law of z, and the fixed noise streams a run keeps apart from its training.

Training draws z from the state's RNG (`draw`). Everything else that samples G uses noise fixed
by a seed (`fixed`), each with its own salt so that no two streams share numbers:

  SAMPLE_GRID_SALT  the sample grids of a run: seed [run seed, salt];
  EVALUATION_SALT   the samples an evaluation scores: seed [evaluation seed, salt];
  MOSAIC_SEED       the samples a study report shows for each of its runs;
  BATCHNORM_SALT    the batches over which G's moving average has its BatchNorm statistics
                    recomputed: seed [run seed, salt].
"""

import dataclasses
from typing import Callable

import tensorflow as tf

from gan import registry

SAMPLE_GRID_SALT = 1234567
EVALUATION_SALT = 7654321
BATCHNORM_SALT = 2468013
MOSAIC_SEED = (2024, 11)


@dataclasses.dataclass(frozen=True)
class Distribution:
    """draw(rng, shape): from a tf.random.Generator; fixed(shape, seed): from a [2] seed."""
    draw: Callable
    fixed: Callable
    help: str


DISTRIBUTIONS = {
    "normal": Distribution(lambda rng, shape: rng.normal(shape),
                           lambda shape, seed: tf.random.stateless_normal(shape, seed=seed),
                           "N(0, I)"),
    "uniform": Distribution(lambda rng, shape: rng.uniform(shape, -1.0, 1.0),
                            lambda shape, seed: tf.random.stateless_uniform(
                                shape, seed=seed, minval=-1.0, maxval=1.0),
                            "U(-1, 1)^d"),
}


def draw(rng, count, latent_dim, distribution):
    """z for training, [count, latent_dim], from a tf.random.Generator."""
    return registry.lookup(DISTRIBUTIONS, distribution, "latent distribution").draw(
        rng, [count, latent_dim])


def fixed(count, latent_dim, distribution, seed):
    """z fixed by a [2] integer seed: the same seed, the same noise."""
    return registry.lookup(DISTRIBUTIONS, distribution, "latent distribution").fixed(
        [count, latent_dim], seed)
