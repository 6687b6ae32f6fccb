"""Short real trainings that must measurably learn: one per loss family and one per architecture,
taken from the registries, on real MNIST. After training, the shipped classifier's score of G's
samples must at least double from the initial generator's, and the samples must cover at least
half of the digits: a grey blur of the right brightness, a generator replaced by its mean image,
or one digit drawn well all fail. (Measured: the mean training image repeated scores 1.00 and
covers 1 class; with N(0, 0.1) noise added, 1.04 and 2.)

Each recipe keeps its loss, optimizer and update settings, on narrow networks with both learning
rates at 1e-3, so that 2,000 D updates (600 steps for DCGAN) learn within the suite's time budget.
"""

import functools
import glob
import os

import pytest

from gan import classifier, config, data, losses, metrics, networks

from gan import evaluator as evaluator_lib
from gan import build
from gan import step as step_lib
from helpers import REPO

# The budget, in D updates: a recipe with k D steps per G step gets STEPS / k G steps. A
# convolutional G learns in fewer steps, and each costs several MLP steps.
STEPS = 2000
CONVOLUTIONAL_STEPS = 600
EVAL_SAMPLES = 1000
# Narrow networks and a learning rate that learn within the budget (found by trying: at the
# recipes' own 2e-4, these networks were still on 2-4 digits after 2,000 steps).
SHRUNK = dict(g_hidden=(64, 128), d_hidden=(128, 64), dcgan_width=8, dcgan_d_width=0,
              g_learning_rate=1e-3, d_learning_rate=1e-3)


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


@functools.lru_cache(maxsize=None)
def mnist_classifier():
    return classifier.load_classifier("mnist")


def score(generator):
    """The shipped classifier's score of EVAL_SAMPLES samples and the digits they cover (the
    evaluator's definitions; FID, KID and precision/recall are left out to save time)."""
    samples = evaluator_lib.generate(generator, EVAL_SAMPLES)
    _, probs = classifier.predict(mnist_classifier(), samples)
    _, covered, _ = metrics.class_coverage(probs)
    return {"classifier_score": metrics.classifier_score(probs), "classes_covered": covered}


def assert_learns(run):
    """Seed 0 must learn, or else seed 1. A short GAN run can collapse on one seed on one
    instruction set and not on another, since XLA's rounding, and so the run, differ between
    them: RaGAN's seed 0 scored 1.90 with 5 digits on an AVX-512 CPU, where its seeds 1 and 2
    scored 3.50 and 3.31 with all 10. A recipe that does not learn fails on both seeds."""
    try:
        learns(run, seed=0)
    except AssertionError as first:
        print(f"seed 0 did not learn ({first}); trying seed 1")
        learns(run, seed=1)


def learns(run, seed):
    budget = STEPS if run.model.architecture == "mlp" else CONVOLUTIONAL_STEPS
    num_steps = budget // run.game.d_steps
    run = run.replace(seed=seed, num_steps=num_steps, **SHRUNK).validate()
    state = build.make_state(run)
    before = score(state.generator)
    train = data.load("mnist", "train")
    loop = step_lib.Trainer(state, run, train.images,
                            jit_compile=build.jit_compile(run))
    for _ in range(num_steps // 100):
        outcome = loop.run(100)
        assert bool(outcome["all_finite"]), "a loss or gradient went non-finite"
    after = score(state.generator)
    print(f"score {before['classifier_score']:.2f} -> {after['classifier_score']:.2f}, classes "
          f"{before['classes_covered']} -> {after['classes_covered']}")
    assert after["classifier_score"] >= 2 * before["classifier_score"], (before, after)
    assert after["classes_covered"] >= 5, after


@pytest.mark.parametrize("d_loss", sorted(losses.D_LOSSES))
def test_every_loss_family_learns(d_loss):
    assert_learns(loss_family_config(d_loss))


@pytest.mark.parametrize("architecture", sorted(networks.ARCHITECTURES))
def test_every_architecture_learns(architecture):
    assert_learns(architecture_config(architecture))
