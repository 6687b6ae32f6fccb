"""Conditional models and G's moving average, end to end on real MNIST: training, evaluation
(conditional accuracy, intra-class FID, either generator), gan.sample --label, the SavedModel's
labels. (Exact resume with the moving average in the checkpoint: tests/test_train.py.)"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from gan import classifier, data, sample

from gan import evaluator as evaluator_lib
from helpers import assert_same_images, read_png, run_module, scalar_events


def test_conditional_metrics_on_real_images_with_true_and_shuffled_labels():
    """The test set with its own labels: the classifier's accuracy and a small intra-class FID;
    with shuffled labels: chance accuracy and a far larger intra-class FID."""
    evaluator = evaluator_lib.Evaluator("mnist", num_samples=2000, kid_subsets=2)  # KID: not here
    test = data.load("mnist", "test")
    images, labels = test.images[:2000], test.labels[:2000]
    true = evaluator.evaluate_images(images, labels)
    shuffled = evaluator.evaluate_images(images, np.random.default_rng(0).permutation(labels))
    assert true["conditional_accuracy"] > 0.98
    assert shuffled["conditional_accuracy"] < 0.2
    assert true["intra_fid"] < 20 and shuffled["intra_fid"] > 5 * true["intra_fid"]
    assert "conditional_accuracy" not in evaluator.evaluate_images(images)


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """A conditional MLP (projection D) with G's moving average, 1,000 steps, on narrow
    networks."""
    logdir = str(tmp_path_factory.mktemp("conditional"))
    run_module("gan.train", "--flagfile=experiments/mnist_mlp.flags", f"--logdir={logdir}",
               "--g_hidden=64,128", "--d_hidden=128,64", "--g_learning_rate=1e-3",
               "--d_learning_rate=1e-3", "--conditional", "--g_ema_decay=0.99",
               "--num_steps=1000", "--eval_every=1000", "--eval_num_samples=1000",
               "--log_every=500", "--sample_every=1000", "--grid_size=10",
               "--checkpoint_every=1000")
    return logdir


def test_conditional_generator_draws_the_requested_classes(conditional_run, tmp_path):
    """Both generators, measured by gan.evaluate --generator=both: the classifier reads the
    requested class far above chance (0.1) after 1,000 steps."""
    output = str(tmp_path / "eval.json")
    run_module("gan.evaluate", f"--logdir={conditional_run}", "--num_samples=1000",
               "--generator=both", f"--output={output}")
    with open(output) as f:
        results = json.load(f)
    for which in ("raw", "ema"):
        assert results[which]["generator"] == which
        assert results[which]["conditional_accuracy"] > 0.4, results[which]
        assert results[which]["intra_fid"] > 0
    # Training evaluated the moving average and logged the conditional metrics.
    events = scalar_events(conditional_run)
    assert events["eval/conditional_accuracy"][1000] == pytest.approx(
        results["ema"]["conditional_accuracy"], abs=1e-6)
    # The 10x10 grid: one class per row.
    assert read_png(os.path.join(conditional_run, "samples", "step_001000.png")).shape == (
        10 * 29 + 1, 10 * 29 + 1, 1)


def test_sample_label_and_the_savedmodel_take_the_class(conditional_run, tmp_path):
    out = str(tmp_path / "threes.npy")
    run_module("gan.sample", f"--logdir={conditional_run}", "--label=3", "--num_samples=200",
               f"--output={out}")
    threes = np.load(out)
    images = threes[..., None].astype(np.float32) / 127.5 - 1
    _, probs = classifier.predict(classifier.load_classifier("mnist"), images)
    assert np.mean(np.argmax(probs, axis=1) == 3) > 0.4

    export_dir = str(tmp_path / "saved")
    run_module("gan.export", f"--logdir={conditional_run}", f"--output={export_dir}")
    model = tf.saved_model.load(export_dir)
    assert int(model.num_classes.numpy()) == 10
    noise = sample.latent_noise(int(model.latent_dim.numpy()), 200, seed=0)
    generated = model.generate(tf.constant(noise), tf.fill([200], 3)).numpy()
    # The EMA generator, as gan.sample (which runs G eagerly; the SavedModel runs a graph).
    assert_same_images(generated[..., 0], threes)
    served = model.signatures["serving_default"](
        noise=tf.constant(noise), labels=tf.fill([200], 3))["images"].numpy()
    assert_same_images(served, generated)


def test_label_errors_name_the_flag(conditional_run, tmp_path):
    result = run_module("gan.sample", f"--logdir={conditional_run}", "--label=10",
                        f"--output={tmp_path / 'x.npy'}", check=False)
    assert result.returncode == 2
    assert "--label=10: expected a class in [0, 9]" in result.stderr
