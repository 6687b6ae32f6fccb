"""Evaluating a generator: samples -> classifier features -> every metric in gan.metrics.

The reference is the dataset's whole training set: its feature mean and covariance for FID, and a
fixed random subset of `num_samples` of its features for KID and precision/recall.
"""

import dataclasses
import functools
import hashlib
import io
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from gan import data, files, latent, metrics
from gan import classifier as classifier_lib


@dataclasses.dataclass(frozen=True)
class Metric:
    """One scalar of an evaluation, as training logs it (eval/<name>), the study report shows it
    and TensorBoard's HParams dashboard lists it.

    label: its column in a study's results.md; digits: the decimals shown there;
    lower_is_better: the direction of "better" (FID: lower); reported: a column of the study
    report and an HParams metric (else only logged); conditional: computed for a conditional
    generator only; compute(features, probs, labels, evaluator) -> float: how to compute it,
    for a metric the Evaluator does not compute itself (None for the built-in ones)."""
    label: str
    digits: int
    lower_is_better: bool
    reported: bool = True
    conditional: bool = False
    compute: Optional[Callable] = None


# In the order they are logged and shown.
METRICS = {
    "fid": Metric("FID", 1, lower_is_better=True),
    "kid": Metric("KID", 2, lower_is_better=True),
    "kid_std": Metric("KID sd", 3, lower_is_better=True, reported=False),  # over its subsets
    "classifier_score": Metric("score", 2, lower_is_better=False),
    "precision": Metric("precision", 3, lower_is_better=False),
    "recall": Metric("recall", 3, lower_is_better=False),
    "classes_covered": Metric("classes", 1, lower_is_better=False),
    "coverage_kl": Metric("coverage KL", 3, lower_is_better=True),
    "conditional_accuracy": Metric("cond. acc.", 3, lower_is_better=False, conditional=True),
    "intra_fid": Metric("intra-FID", 1, lower_is_better=True, conditional=True),
}


def metric_names(reported=None, conditional=None):
    """The names of the metrics table, in order, optionally only those reported (or not) and
    conditional (or not)."""
    return tuple(name for name, metric in METRICS.items()
                 if (reported is None or metric.reported == reported)
                 and (conditional is None or metric.conditional == conditional))


# Names the layout of the reference-share cache file: bump it when what the file holds changes.
SHARE_VERSION = 1


def _cache_path(dataset, digest, suffix):
    return os.path.join(data.DEFAULT_CACHE_DIR, "reference_features",
                        f"{dataset}_{digest}{suffix}")


def _write_cache(path, save):
    """Writes what save(buffer) puts in a buffer to `path`, whole or not at all."""
    try:
        buffer = io.BytesIO()
        save(buffer)
        files.write_atomically(path, buffer.getvalue())
    except OSError:
        pass  # an unwritable cache only costs time


@functools.lru_cache(maxsize=4)
def _reference(dataset, data_dir):
    """(classifier, features of the training set, the classifier's digest). The features are
    cached on disk under the hash of the classifier's weights, since computing them takes tens
    of seconds on a CPU."""
    weights = classifier_lib.weights_path(dataset)
    net = classifier_lib.load_classifier(dataset)
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    cache = _cache_path(dataset, digest, ".npy")
    if os.path.isfile(cache):
        try:
            return net, np.load(cache).astype(np.float64), digest
        except (OSError, ValueError):
            pass  # a damaged cache file is recomputed below
    features, _ = classifier_lib.predict(net, data.load(dataset, "train", data_dir).images)
    _write_cache(cache, lambda buffer: np.save(buffer, features.astype(np.float32)))
    return net, features, digest


def compile_sampler(generator):
    """G in inference mode as one traced function for any batch size. Not XLA: TensorFlow's own
    kernels draw the MLP's samples as fast and DCGAN's faster, and tracing takes a fraction of
    XLA's compile (docs/performance.md)."""
    noise = tf.TensorSpec([None, generator.latent_dim], tf.float32)
    if generator.num_classes:
        return tf.function(lambda z, labels: generator(z, training=False, labels=labels),
                           autograph=False,
                           input_signature=[noise, tf.TensorSpec([None], tf.int32)])
    return tf.function(lambda z: generator(z, training=False), autograph=False,
                       input_signature=[noise])


def balanced_labels(num_samples, num_classes):
    """0, 1, ..., C-1, 0, 1, ...: every class equally often (to within one)."""
    return np.arange(num_samples, dtype=np.int32) % num_classes


def generate(generator, num_samples, seed=0, batch_size=1000, sampler=None, labels=None):
    """num_samples images in [-1, 1] from G in inference mode, with noise fixed by `seed`. A
    conditional G gets `labels` (default: balanced). `sampler` is compile_sampler(generator), when
    the caller keeps one across calls."""
    noise = latent.fixed(num_samples, generator.latent_dim, generator.latent_distribution,
                         seed=[seed, latent.EVALUATION_SALT])
    run = sampler or compile_sampler(generator)
    if not generator.num_classes:
        return np.concatenate([run(noise[start:start + batch_size]).numpy()
                               for start in range(0, num_samples, batch_size)])
    if labels is None:
        labels = balanced_labels(num_samples, generator.num_classes)
    return np.concatenate([run(noise[start:start + batch_size],
                               tf.constant(labels[start:start + batch_size], tf.int32)).numpy()
                           for start in range(0, num_samples, batch_size)])


class Evaluator:
    def __init__(self, dataset, num_samples=10000, data_dir=None, kid_subsets=100):
        self.dataset = dataset
        self.data_dir = data_dir
        self.num_samples = num_samples
        self.kid_subsets = kid_subsets
        self.classifier, self.reference, digest = _reference(dataset, data_dir)
        self.reference_mu, self.reference_sigma = metrics.gaussian_statistics(self.reference)
        rng = np.random.default_rng(0)
        subset = rng.choice(len(self.reference), min(num_samples, len(self.reference)),
                            replace=False)
        self.reference_subset = self.reference[subset]
        # The reference's share of KID and of precision/recall (its subsets' own kernel terms
        # and its points' k-NN radii: about 2 s for 10,000 points) is done once, for every
        # evaluation of every run that scores as many samples, and kept on disk beside the
        # features; the values loaded are the float64s computed.
        # Keyed by the subset's own bytes, so that features computed again (on another CPU, to
        # float rounding) never meet the radii of the old ones.
        subset_digest = hashlib.sha256(self.reference_subset.tobytes()).hexdigest()[:16]
        self._share_cache = _cache_path(
            dataset, digest, f"_share_v{SHARE_VERSION}_{subset_digest}_kid{kid_subsets}.npz")
        self._kid_subsets = metrics.KIDSubsets(self.reference_subset, num_subsets=kid_subsets)
        self._reference_radii = None
        self._share_saved = self._load_share()
        self._class_statistics = None
        # (generator, its compiled sampler) per generator scored (G and its moving average),
        # kept between evaluations.
        self._samplers = []

    def _load_share(self):
        """Takes the radii and KID terms from the cache; returns whether it could (False when
        the file is absent, damaged or of other sizes: they are then computed and saved)."""
        try:
            with np.load(self._share_cache) as stored:
                radii, terms = stored["radii"], stored["kid_terms"]
            if radii.shape != (len(self.reference_subset),):
                return False
            self._kid_subsets.keep_terms(self.num_samples, terms)  # checks their number
        except (OSError, ValueError, KeyError, TypeError):
            return False
        self._reference_radii = radii
        return True

    def _save_share(self, num_generated):
        if self._share_saved or num_generated != self.num_samples:
            return
        terms = self._kid_subsets.reference_terms(num_generated)
        _write_cache(self._share_cache, lambda buffer: np.savez(
            buffer, radii=self._reference_radii, kid_terms=terms))
        self._share_saved = True

    def evaluate_images(self, images, labels=None):
        """Every metric for a set of images in [-1, 1], [N, 28, 28, 1]. With the labels they were
        generated for, also the conditional ones:
          conditional_accuracy: the classifier's accuracy on them (how often G draws the class
              it was asked for);
          intra_fid: the mean over classes of the FID between the class's samples and the
              class's training images (Miyato & Koyama 2018)."""
        features, probs = classifier_lib.predict(self.classifier, images)
        mu, sigma = metrics.gaussian_statistics(features)
        kid_mean, kid_std = self._kid_subsets.kid(features)
        if self._reference_radii is None:
            self._reference_radii = metrics.knn_squared_radii(self.reference_subset)
        precision, recall = metrics.precision_recall(self.reference_subset, features,
                                                     real_radii=self._reference_radii)
        self._save_share(len(features))
        histogram, covered, coverage_kl = metrics.class_coverage(probs)
        results = {
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
        if labels is not None:
            labels = np.asarray(labels)
            results["conditional_accuracy"] = float(np.mean(np.argmax(probs, axis=1) == labels))
            results["intra_fid"] = self.intra_class_fid(features, labels)
        for name, metric in METRICS.items():
            if metric.compute is not None and (labels is not None or not metric.conditional):
                results[name] = float(metric.compute(features=features, probs=probs,
                                                     labels=labels, evaluator=self))
        return results

    def intra_class_fid(self, features, labels):
        if self._class_statistics is None:
            reference_labels = data.load(self.dataset, "train", self.data_dir).labels
            self._class_statistics = {
                c: metrics.gaussian_statistics(self.reference[reference_labels == c])
                for c in np.unique(reference_labels)}
        distances = [metrics.frechet_distance(*self._class_statistics[c],
                                              *metrics.gaussian_statistics(features[labels == c]))
                     for c in np.unique(labels)]
        return float(np.mean(distances))

    def evaluate_generator(self, generator, seed=0):
        sampler = next((s for g, s in self._samplers if g is generator), None)
        if sampler is None:
            sampler = compile_sampler(generator)
            self._samplers.append((generator, sampler))
        labels = (balanced_labels(self.num_samples, generator.num_classes)
                  if generator.num_classes else None)
        samples = generate(generator, self.num_samples, seed, sampler=sampler,
                           labels=labels)
        return self.evaluate_images(samples, labels)


def evaluate_state(evaluator, state, seed=0, which=None):
    """Metrics of a training state's generator: `which` is "raw" (G), "ema" (its moving average)
    or None (the one samples use: the average when on). results["generator"] says which."""
    which = which or state.sampling_generator_name
    generator = state.generator_ema if which == "ema" else state.generator
    return dict(evaluator.evaluate_generator(generator, seed), generator=which)


def format_metrics(results):
    return "  ".join(f"{name} {results[name]:.4g}" for name in METRICS if name in results)
