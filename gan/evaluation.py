"""Evaluating a generator: samples -> classifier features -> every metric in gan.metrics.

The reference is the dataset's whole training set: its feature mean and covariance for FID, and a
fixed random subset of `num_samples` of its features for KID and precision/recall.
"""

import functools
import hashlib
import io
import os

import numpy as np
import tensorflow as tf

from gan import classifier as classifier_lib
from gan import data, images, metrics

NOISE_SALT = 7654321  # evaluation noise is its own stream, apart from training and sample grids


@functools.lru_cache(maxsize=4)
def _reference(dataset, data_dir):
    """(classifier, features of the training set). The features are cached on disk under the
    hash of the classifier's weights, since computing them takes tens of seconds on a CPU."""
    weights = classifier_lib.weights_path(dataset)
    net = classifier_lib.load_classifier(dataset)
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    cache = os.path.join(data.DEFAULT_CACHE_DIR, "reference_features", f"{dataset}_{digest}.npy")
    if os.path.isfile(cache):
        try:
            return net, np.load(cache).astype(np.float64)
        except (OSError, ValueError):
            pass  # a damaged cache file is recomputed below
    features, _ = classifier_lib.predict(net, data.load(dataset, "train", data_dir).images)
    try:
        buffer = io.BytesIO()
        np.save(buffer, features.astype(np.float32))
        images.write_atomically(cache, buffer.getvalue())
    except OSError:
        pass  # an unwritable cache only costs time
    return net, features


def compile_sampler(generator):
    return tf.function(lambda z: generator(z, training=False), jit_compile=True)


def generate(generator, latent_dim, num_samples, seed=0, batch_size=1000, sampler=None):
    """num_samples images in [-1, 1] from G in inference mode, with noise fixed by `seed`.
    `sampler` is compile_sampler(generator), when the caller keeps one across calls."""
    noise = tf.random.stateless_normal([num_samples, latent_dim], seed=[seed, NOISE_SALT])
    run = sampler or compile_sampler(generator)
    return np.concatenate([run(noise[start:start + batch_size]).numpy()
                           for start in range(0, num_samples, batch_size)])


class Evaluator:
    def __init__(self, dataset, num_samples=10000, data_dir=None, kid_subsets=100):
        self.dataset = dataset
        self.num_samples = num_samples
        self.kid_subsets = kid_subsets
        self.classifier, reference = _reference(dataset, data_dir)
        self.reference_mu, self.reference_sigma = metrics.gaussian_statistics(reference)
        rng = np.random.default_rng(0)
        subset = rng.choice(len(reference), min(num_samples, len(reference)), replace=False)
        self.reference_subset = reference[subset]
        self._sampler = (None, None)  # (generator, its compiled sampler), kept between evaluations

    def evaluate_images(self, images):
        """Every metric for a set of images in [-1, 1], [N, 28, 28, 1]."""
        features, probs = classifier_lib.predict(self.classifier, images)
        mu, sigma = metrics.gaussian_statistics(features)
        kid_mean, kid_std = metrics.kid(self.reference_subset, features,
                                        num_subsets=self.kid_subsets)
        precision, recall = metrics.precision_recall(self.reference_subset, features)
        histogram, covered, coverage_kl = metrics.class_coverage(probs)
        return {
            "fid": metrics.frechet_distance(self.reference_mu, self.reference_sigma, mu, sigma),
            "kid": kid_mean,
            "kid_std": kid_std,
            "classifier_score": metrics.classifier_score(probs),
            "precision": precision,
            "recall": recall,
            "classes_covered": covered,
            "coverage_kl": coverage_kl,
            "class_histogram": [float(h) for h in histogram],
            "num_samples": int(len(images)),
        }

    def evaluate_generator(self, generator, latent_dim, seed=0):
        if self._sampler[0] is not generator:
            self._sampler = (generator, compile_sampler(generator))
        return self.evaluate_images(generate(generator, latent_dim, self.num_samples, seed,
                                             sampler=self._sampler[1]))


def evaluate_state(evaluator, state, config, seed=0):
    """Metrics of a training state's generator (the run config gives its latent size)."""
    return evaluator.evaluate_generator(state.generator, config.model.latent_dim, seed)


SCALAR_METRICS = ("fid", "kid", "kid_std", "classifier_score", "precision", "recall",
                  "classes_covered", "coverage_kl")


def format_metrics(results):
    return "  ".join(f"{name} {results[name]:.4g}" for name in SCALAR_METRICS)
