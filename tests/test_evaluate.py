"""Evaluation during training, gan.evaluate, gan.sample and gan.export, end to end on real MNIST."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from gan import classifier, data, sample

from gan import evaluator as evaluator_lib
from helpers import assert_clean_failure, assert_same_images, read_png, run_module, scalar_events

METRIC_TAGS = [f"eval/{name}" for name in evaluator_lib.metric_names(conditional=False)]


@pytest.mark.parametrize("dataset,target", [("mnist", 0.993), ("fashion_mnist", 0.91)])
def test_shipped_classifier_reaches_its_accuracy(dataset, target):
    if dataset == "fashion_mnist" and not os.path.isdir(data.DEBIAN_FASHION_DIR):
        pytest.skip("needs Debian's dataset-fashion-mnist (.ci/run installs it)")
    net = classifier.load_classifier(dataset)
    assert classifier.accuracy(net, data.load(dataset, "test")) >= target


def test_classifier_features_do_not_depend_on_the_batch_size():
    """predict's batches (small, for memory) give the features of one call on all the images,
    a last short batch included."""
    net = classifier.load_classifier("mnist")
    images = data.load("mnist", "test").images[:1100]
    whole_features, whole_logits = net.compiled_features_and_logits(tf.constant(images))
    features, probs = classifier.predict(net, images)  # 4 batches of 250, then one of 100
    np.testing.assert_allclose(features, whole_features.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probs, tf.nn.softmax(whole_logits).numpy(), atol=1e-6)


def test_classifier_weights_round_trip(tmp_path):
    net = classifier.load_classifier("mnist")
    net.save(str(tmp_path / "w.npz"))
    other = classifier.Classifier().load(str(tmp_path / "w.npz"))
    x = tf.constant(data.load("mnist", "test").images[:8])
    np.testing.assert_array_equal(net(x), other(x))


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    """600 steps of mnist_mlp.flags on narrow networks, evaluated at steps 300 and 600 on 1,000
    samples; the tests below share it. (That training learns is test_learning.py's job.)"""
    logdir = str(tmp_path_factory.mktemp("eval_run"))
    run_module("gan.train", "--flagfile=experiments/mnist_mlp.flags", f"--logdir={logdir}",
               "--g_hidden=64,128", "--d_hidden=128,64", "--g_learning_rate=1e-3",
               "--d_learning_rate=1e-3", "--num_steps=600", "--eval_every=300",
               "--eval_num_samples=1000", "--log_every=300", "--sample_every=600",
               "--checkpoint_every=300")
    return logdir


def test_training_logs_metrics_and_keeps_the_best_fid_checkpoint(evaluated_run):
    events = scalar_events(evaluated_run)
    for tag in METRIC_TAGS:
        assert sorted(events[tag]) == [300, 600], tag
    fids = events["eval/fid"]
    with open(os.path.join(evaluated_run, "best_checkpoint", "best.json")) as f:
        best = json.load(f)
    best_step = min(fids, key=fids.get)
    assert best["step"] == best_step
    assert best["fid"] == pytest.approx(fids[best_step], rel=1e-6)
    assert os.path.exists(os.path.join(evaluated_run, "best_checkpoint", best["checkpoint"] + ".index"))
    assert 0 < events["eval/precision"][600] <= 1 and 1 <= events["eval/classifier_score"][600] <= 10


def test_evaluate_reproduces_the_training_time_numbers_and_writes_json(evaluated_run, tmp_path):
    output = str(tmp_path / "metrics.json")
    result = run_module("gan.evaluate", f"--logdir={evaluated_run}", "--num_samples=1000",
                        f"--output={output}")
    with open(output) as f:
        metrics = json.load(f)
    assert metrics["step"] == 600 and metrics["checkpoint"].endswith("ckpt-600")
    for name in evaluator_lib.metric_names(conditional=False):
        assert name in result.stdout
        assert metrics[name] == pytest.approx(scalar_events(evaluated_run)[f"eval/{name}"][600],
                                              rel=1e-4, abs=1e-6), name
    assert len(metrics["class_histogram"]) == 10
    assert sum(metrics["class_histogram"]) == pytest.approx(1.0)

    best = run_module("gan.evaluate", f"--logdir={evaluated_run}", "--checkpoint=best",
                      "--num_samples=1000")
    assert "best_checkpoint" in best.stdout
    # This run keeps no moving average of G, so there is none to measure.
    refused = run_module("gan.evaluate", f"--logdir={evaluated_run}", "--generator=ema",
                         check=False)
    assert refused.returncode == 2 and "--generator=ema:" in refused.stderr


def test_reference_floor_is_far_below_the_noise_ceiling(tmp_path):
    output = str(tmp_path / "reference.json")
    run_module("gan.evaluate", "--reference", "--dataset=mnist", "--num_samples=1000",
               f"--output={output}")
    with open(output) as f:
        reference = json.load(f)
    real, noise = reference["real_test"], reference["uniform_noise"]
    assert real["fid"] * 50 < noise["fid"]
    assert real["classifier_score"] > 8 and real["classes_covered"] == 10
    assert real["precision"] > 0.5 and noise["precision"] < 0.05

    # The same test images, as another implementation would hand them over: uint8 [N, 28, 28].
    test = data.load("mnist", "test").images[:1000, ..., 0]
    samples = str(tmp_path / "samples.npy")
    np.save(samples, np.rint((test + 1) * 127.5).astype(np.uint8))
    scored = str(tmp_path / "scored.json")
    run_module("gan.evaluate", f"--samples={samples}", f"--output={scored}")
    with open(scored) as f:
        external = json.load(f)
    for name in ("fid", "kid", "classifier_score", "precision", "recall", "classes_covered"):
        assert external[name] == pytest.approx(real[name], rel=1e-5, abs=1e-9), name
    np.save(samples, test)  # floats in [-1, 1]: not images as promised
    result = run_module("gan.evaluate", f"--samples={samples}", f"--output={scored}",
                        check=False)
    assert_clean_failure(result, f"--samples={samples}: expected uint8 images [N, 28, 28], "
                         "found float32 [1000, 28, 28]")


@pytest.fixture(scope="module")
def sampled(evaluated_run, tmp_path_factory):
    """gan.sample outputs: 20 samples with seed 0 and with seed 1, a grid, an interpolation."""
    out = tmp_path_factory.mktemp("samples")
    paths = {name: str(out / name) for name in ("seed0.npy", "seed1.npy", "grid.png", "walk.png")}
    run_module("gan.sample", f"--logdir={evaluated_run}", "--num_samples=20",
               f"--output={paths['seed0.npy']}")
    run_module("gan.sample", f"--logdir={evaluated_run}", "--num_samples=20",
               f"--output={paths['seed1.npy']}", "--seed=1")
    run_module("gan.sample", f"--logdir={evaluated_run}", "--num_samples=20",
               f"--output={paths['grid.png']}")
    run_module("gan.sample", f"--logdir={evaluated_run}", "--interpolate=3",
               "--interpolation_steps=6", f"--output={paths['walk.png']}")
    return paths


def test_sample_writes_uint8_npy_and_png(sampled):
    a, c = np.load(sampled["seed0.npy"]), np.load(sampled["seed1.npy"])
    assert a.shape == (20, 28, 28) and a.dtype == np.uint8
    assert not np.array_equal(a, c)  # the seed matters (and repeats: see the export test)
    assert read_png(sampled["grid.png"]).shape == (4 * 29 + 1, 5 * 29 + 1, 1)
    assert read_png(sampled["walk.png"]).shape == (3 * 29 + 1, 6 * 29 + 1, 1)


def test_slerp_follows_the_great_circle_at_constant_speed():
    """Between endpoints of equal norm r, every point of the path has norm r and its angle to the
    start grows linearly, t * omega (Shoemake 1985): the whole profile, not just the endpoints."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1, 50)), rng.normal(size=(1, 50))
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    t = np.linspace(0, 1, 9)[:, None]
    path = sample.slerp(a, b, t)
    np.testing.assert_allclose(path[0], a[0])
    np.testing.assert_allclose(path[-1], b[0])
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-10)
    omega = np.arccos(np.sum(a * b) / np.sum(a * a))
    angles = np.arccos(np.clip(path @ a[0] / np.sum(a * a), -1, 1))
    np.testing.assert_allclose(angles, t[:, 0] * omega, atol=1e-7)


def test_export_round_trip_with_tensorflow_only(evaluated_run, sampled, tmp_path):
    """The SavedModel, fed the noise that gan.sample draws for seed 0, reproduces gan.sample's
    uint8 samples (to the rounding of two programs): the export is faithful."""
    export_dir = str(tmp_path / "saved")
    run_module("gan.export", f"--logdir={evaluated_run}", f"--output={export_dir}")
    model = tf.saved_model.load(export_dir)
    noise = sample.latent_noise(int(model.latent_dim.numpy()), 20, seed=0)
    generated = model.generate(tf.constant(noise)).numpy()
    assert generated.dtype == np.uint8 and generated.shape == (20, 28, 28, 1)
    assert_same_images(generated[..., 0], np.load(sampled["seed0.npy"]))
    served = model.signatures["serving_default"](noise=tf.constant(noise))["images"].numpy()
    assert_same_images(served, generated)


def test_tools_explain_a_missing_run(tmp_path):
    result = run_module("gan.evaluate", f"--logdir={tmp_path}", check=False)
    assert result.returncode != 0 and "config.json not found" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def test_the_references_share_is_kept_on_disk_and_gives_the_same_metrics(monkeypatch, tmp_path):
    """The reference's k-NN radii and KID subset terms, computed by the first evaluator of a
    size and kept on disk, are read back by the next one, which then scores the same images
    to the same bits; a damaged file is computed again."""
    cache_path = evaluator_lib._cache_path
    monkeypatch.setattr(evaluator_lib, "_cache_path", lambda dataset, digest, suffix: (
        str(tmp_path / f"{dataset}{suffix}") if suffix.startswith("_share")
        else cache_path(dataset, digest, suffix)))
    images = data.load("mnist", "test").images[:1500]  # KID: 100 subsets of 1,000 of 1,500
    first = evaluator_lib.Evaluator("mnist", num_samples=1500)
    assert first._reference_radii is None
    expected = first.evaluate_images(images)
    [kept] = [p for p in tmp_path.iterdir() if p.name.startswith("mnist_share")]
    with np.load(kept) as stored:
        np.testing.assert_array_equal(
            stored["radii"], evaluator_lib.metrics.knn_squared_radii(first.reference_subset))
        assert len(stored["kid_terms"]) == 100

    second = evaluator_lib.Evaluator("mnist", num_samples=1500)
    np.testing.assert_array_equal(second._reference_radii, first._reference_radii)
    np.testing.assert_array_equal(second._kid_subsets.reference_terms(1500),
                                  first._kid_subsets.reference_terms(1500))
    assert second.evaluate_images(images) == expected

    kept.write_bytes(b"not an npz file")
    third = evaluator_lib.Evaluator("mnist", num_samples=1500)
    assert third._reference_radii is None
    assert third.evaluate_images(images) == expected
    with np.load(kept) as stored:  # written again, whole
        assert stored["radii"].shape == (1500,)
