"""Short real trainings that must measurably learn: one per loss family and one per architecture,
taken from the registries, on real MNIST. After training, the shipped classifier's score of G's
samples must at least double from the initial generator's, and the samples must cover at least
half of the digits: a grey blur of the right brightness, a generator replaced by its mean image,
or one digit drawn well all fail.

These trainings take several minutes, beyond the 15 minutes the default suite is held to on 2
cores, so they are a tier of their own:

    python -m pytest -q --learning tests/test_learning.py

(The default suite's own learning check is test_evaluate's really-learns test, on one recipe.)
Measured 2026-11-28 on the 2-core AMD EPYC VM, 2,000 steps each, about 11 minutes in all; the
classifier score went from 1.00 (one class) to: hinge 4.22 (10 classes), least_squares 2.99 (9),
minimax with R1 (mlp_ns_r1.flags) 4.58 (10), relativistic 2.70 (8), relativistic_average 2.96
(9), wasserstein with GP 4.92 (10); architectures: dcgan 6.02 (10), mlp (mnist_mlp.flags) 2.72
(8).
"""

import functools
import glob
import os

import numpy as np
import pytest

from gan import config, data, evaluation, losses, networks, trainer
from helpers import REPO

pytestmark = pytest.mark.learning

STEPS = 2000  # G updates per training
EVAL_SAMPLES = 1000


@functools.lru_cache(maxsize=None)
def mnist_flagfiles():
    """{path: RunConfig} of the shipped unconditional MNIST flagfiles that use Adam."""
    found = {}
    for path in sorted(glob.glob(os.path.join(REPO, "experiments", "*.flags"))):
        run = config.from_flagfile(path)
        if (run.data.dataset == "mnist" and not run.model.conditional
                and run.g_opt.optimizer == "adam"):
            found[path] = run
    return found


def loss_family_config(d_loss):
    """The family's own shipped MLP flagfile if there is one (the first by name), else
    mnist_mlp.flags with D's loss and its own G loss (the same name, or the non-saturating one);
    a family the config refuses alone (an unconstrained critic) gets the gradient penalty the
    refusal suggests."""
    for run in mnist_flagfiles().values():
        if run.model.architecture == "mlp" and run.game.d_loss == d_loss:
            return run
    g_loss = d_loss if d_loss in losses.G_LOSSES else "non_saturating"
    base = os.path.join(REPO, "experiments", "mnist_mlp.flags")
    try:
        return config.from_flagfile(base, d_loss=d_loss, g_loss=g_loss)
    except config.ConfigError:
        return config.from_flagfile(base, d_loss=d_loss, g_loss=g_loss, gp_weight=10.0)


def architecture_config(architecture):
    """The architecture's own shipped flagfile (<architecture>.flags or mnist_<architecture>.flags),
    else mnist_mlp.flags with the architecture swapped in."""
    for name in (f"{architecture}.flags", f"mnist_{architecture}.flags"):
        path = os.path.join(REPO, "experiments", name)
        if path in mnist_flagfiles():
            return mnist_flagfiles()[path]
    return config.from_flagfile(os.path.join(REPO, "experiments", "mnist_mlp.flags"),
                                architecture=architecture)


_EVALUATOR = []


def evaluator():
    if not _EVALUATOR:
        _EVALUATOR.append(evaluation.Evaluator("mnist", EVAL_SAMPLES))
    return _EVALUATOR[0]


def assert_learns(run):
    run = run.replace(seed=0, num_steps=STEPS).validate()
    state = config.make_state(run)
    before = evaluation.evaluate_state(evaluator(), state)
    train = data.load("mnist", "train")
    loop = trainer.Trainer(state, config.trainer_config(run), train.images,
                           jit_compile=config.jit_compile(run))
    for _ in range(STEPS // 100):
        metrics = loop.run(100)
        assert bool(metrics["all_finite"]), "a loss or gradient went non-finite"
    after = evaluation.evaluate_state(evaluator(), state)
    print(f"score {before['classifier_score']:.2f} -> {after['classifier_score']:.2f}, classes "
          f"{before['classes_covered']} -> {after['classes_covered']}, FID {after['fid']:.1f}")
    assert after["classifier_score"] >= 2 * before["classifier_score"], (before, after)
    assert after["classes_covered"] >= 5, after
    assert np.isfinite(after["fid"]) and after["fid"] < before["fid"]


@pytest.mark.parametrize("d_loss", sorted(losses.D_LOSSES))
def test_every_loss_family_learns(d_loss):
    assert_learns(loss_family_config(d_loss))


@pytest.mark.parametrize("architecture", sorted(networks.ARCHITECTURES))
def test_every_architecture_learns(architecture):
    assert_learns(architecture_config(architecture))
