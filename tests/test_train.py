"""End-to-end: `python -m gan.train` as a user runs it, on the real MNIST."""

import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from gan import build, latent, losses, optimizers, rundir
from gan import run as run_lib
from helpers import REPO, read_png, run_module, run_train_in_one_process, scalar_events

# Every loss logs these; the minimax D adds PROBABILITY_SCALARS, a penalty its penalty_<name>.
EXPECTED_SCALARS = ["train/d_loss", "train/d_loss_real", "train/d_loss_fake", "train/g_loss",
                    "train/d_real_logit", "train/d_fake_logit", "train/d_logit_gap",
                    "train/g_logit_grad", "train/g_grad_norm", "train/d_grad_norm",
                    "train/g_learning_rate", "train/d_learning_rate", "perf/steps_per_sec"]
PROBABILITY_SCALARS = ["train/d_real_prob", "train/d_fake_prob", "train/d_real_accuracy",
                       "train/d_fake_accuracy"]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """The seed's flagfile, shortened to 300 steps."""
    logdir = str(tmp_path_factory.mktemp("seed"))
    result = run_module("gan.train", "--flagfile=experiments/seed.flags", f"--logdir={logdir}",
                        "--num_steps=300", "--log_every=50", "--sample_every=100",
                        "--checkpoint_every=100", "--keep_checkpoints=2", "--eval_every=0")
    return logdir, result


def test_seed_run_writes_events_samples_checkpoints_and_config(seed_run):
    logdir, result = seed_run
    events = scalar_events(logdir)
    for tag in EXPECTED_SCALARS + PROBABILITY_SCALARS:
        assert sorted(events[tag]) == [50, 100, 150, 200, 250, 300], tag
    assert "samples" in events["__images__"] and "flags" in events["__text__"]
    assert events["train/g_learning_rate"][300] == pytest.approx(0.01)
    for step in (50, 300):
        assert 0 <= events["train/d_real_prob"][step] <= 1
        assert np.isfinite(events["train/d_loss"][step])

    for step in (100, 200, 300):
        grid = read_png(os.path.join(logdir, "samples", f"step_{step:06d}.png"))
        assert grid.shape == (5 * 29 + 1, 5 * 29 + 1, 1) and grid.dtype == np.uint8
    # Only the two newest checkpoints are kept, and the last is at the final step.
    ckpts = tf.train.get_checkpoint_state(rundir.checkpoint_dir(logdir)).all_model_checkpoint_paths
    assert [os.path.basename(p) for p in ckpts] == ["ckpt-200", "ckpt-300"]
    with open(os.path.join(logdir, "config.json")) as f:
        saved = json.load(f)
    assert saved["d_update"] == "split" and saved["d_fake_batchnorm"] == "inference"
    assert saved["batch_size"] == 32 and saved["g_optimizer"] == "sgd"
    assert saved["num_steps"] == 300 and saved["log_every"] == 50
    assert "step     300/300" in result.stdout and "steps/s" in result.stdout


def test_samples_come_from_one_fixed_noise_batch(seed_run):
    """The step-200 and step-300 grids, regenerated from those steps' checkpoints and the
    documented noise (stateless normal, seed [--seed, latent.SAMPLE_GRID_SALT]), are the very
    PNGs written during training; the step-200 weights with other noise are not."""
    from gan import config
    from gan import run as run_lib
    logdir, _ = seed_run
    with open(os.path.join(logdir, "config.json")) as f:
        run_config = config.RunConfig.from_flat(json.load(f))
    size = run_config.output.grid_size
    noise = tf.random.stateless_normal([size * size, run_config.model.latent_dim],
                                       seed=[run_config.schedule.seed, latent.SAMPLE_GRID_SALT])
    for step in (200, 300):
        state = build.make_state(run_config)
        path = os.path.join(rundir.checkpoint_dir(logdir), f"ckpt-{step}")
        tf.train.Checkpoint(state=state).read(path).expect_partial()
        written = read_png(os.path.join(logdir, "samples", f"step_{step:06d}.png"))
        np.testing.assert_array_equal(run_lib.sample_grid(state.generator, noise, size), written)
        other = tf.random.stateless_normal(noise.shape, seed=[run_config.schedule.seed + 1, 5])
        assert not np.array_equal(run_lib.sample_grid(state.generator, other, size), written)


UNKNOWN_NAMES = [("--d_loss", "bce", losses.D_LOSSES), ("--g_optimizer", "adagrad",
                                                        optimizers.OPTIMIZERS)]


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """gan.train's answers to unknown names and a known broken combination, from one process."""
    folder = tmp_path_factory.mktemp("refused")
    # 2 steps: should a refusal regress, its test fails fast instead of training in the driver.
    cases = {flag: [f"--logdir={folder / flag[2:]}", f"{flag}={value}", "--num_steps=2"]
             for flag, value, _ in UNKNOWN_NAMES}
    cases["broken"] = ["--flagfile=experiments/mnist_mlp.flags", f"--logdir={folder / 'broken'}",
                       "--d_loss=wasserstein", "--g_loss=wasserstein", "--num_steps=2"]
    return run_train_in_one_process(cases, str(folder)), folder


@pytest.mark.parametrize("flag,value,registry", UNKNOWN_NAMES)
def test_unknown_names_fail_at_start_up_listing_choices(refused, flag, value, registry):
    result = refused[0][flag]
    assert result.returncode not in (0, None)
    assert "<" + "|".join(sorted(registry)) + ">" in result.stderr and value in result.stderr
    assert "Traceback" not in result.stderr


def test_a_known_broken_combination_is_refused_in_one_line_before_any_work(refused):
    results, folder = refused
    result = results["broken"]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "gan.train: error" in line]
    assert len(errors) == 1 and "--gp_weight=10" in errors[0] and "--allow_unstable" in errors[0]
    assert not (folder / "broken").exists()


def test_hinge_with_a_lazy_penalty_logs_logits_not_probabilities(tmp_path):
    logdir = str(tmp_path)
    result = run_module("gan.train", "--flagfile=experiments/mlp_hinge.flags", f"--logdir={logdir}",
                        "--g_hidden=64,128", "--d_hidden=128,64", "--batch_size=16",
                        "--num_steps=40", "--log_every=20", "--sample_every=40",
                        "--eval_every=0", "--r2_weight=0.1", "--penalty_every=4")
    events = scalar_events(logdir)
    for tag in EXPECTED_SCALARS + ["train/penalty_r2"]:
        assert sorted(events[tag]) == [20, 40], tag
    for tag in PROBABILITY_SCALARS:
        assert tag not in events
    assert events["train/penalty_r2"][40] > 0
    assert "logit gap" in result.stdout and "D(x)" not in result.stdout
    with open(os.path.join(logdir, "config.json")) as f:
        saved = json.load(f)
    assert saved["d_loss"] == "hinge" and saved["r2_weight"] == 0.1 and saved["penalty_every"] == 4


def test_every_flagfile_loads_and_the_dcgan_ones_train(tmp_path):
    """Each flagfile of experiments/ is a valid run; the DCGAN ones (shrunk to width 4) train a
    few steps end to end, grids and evaluation included."""
    from gan import config
    from gan import run as run_lib
    flagfiles = sorted(glob.glob(os.path.join(REPO, "experiments", "*.flags")))
    assert len(flagfiles) >= 13
    for path in flagfiles:
        loaded = config.from_flagfile(path)
        name = os.path.basename(path)[:-len(".flags")]
        assert loaded.data.dataset == ("fashion_mnist" if name.startswith("fashion") else "mnist")
        if "dcgan" not in name or name.startswith("fashion"):
            continue
        small = loaded.replace(dcgan_width=4, batch_size=8, num_steps=4, log_every=2,
                               sample_every=4, checkpoint_every=4, eval_every=4,
                               eval_num_samples=100)
        result = run_lib.train(small, str(tmp_path / name))
        assert result.step == 4 and result.eval_metrics["fid"] > 0
        assert ("conditional_accuracy" in result.eval_metrics) == loaded.model.conditional


def test_the_tuned_flagfile_is_the_setting_its_study_measured():
    """experiments/mnist_mlp_tuned.flags quotes g_ema_tuned's FIDs: it must be the very run that
    study trained (seed aside), so that a change to either one fails here."""
    from gan import config
    from gan.study import plan
    flagfile = config.from_flagfile(os.path.join(REPO, "experiments", "mnist_mlp_tuned.flags"))
    runs = plan.plan(plan.load_study(
        os.path.join(REPO, "experiments", "ablations", "g_ema_tuned.toml")))
    assert len(runs) == 10
    for run in runs:
        assert run.config == flagfile.replace(seed=run.seed), run.name


OLD_RUN = os.path.join(REPO, "tests", "data", "old_run")


def test_a_run_directory_of_the_layout_before_the_engine_split_resumes(tmp_path):
    """tests/data/old_run is a tiny run (Adam, BatchNorm in G, spectral norm in D, G's moving
    average) that gan.train wrote at step 2 when the engine was still one module (gan.trainer):
    every value of its checkpoint loads into today's state, and the run trains on from there."""
    logdir = str(tmp_path / "old_run")
    shutil.copytree(OLD_RUN, logdir)
    config = rundir.load_config(logdir)
    state = build.make_state(config)
    path = tf.train.latest_checkpoint(rundir.checkpoint_dir(logdir))
    tf.train.Checkpoint(state=state).restore(path).assert_consumed()
    reader = tf.train.load_checkpoint(path)
    assert int(state.step.numpy()) == 2
    assert reader.get_tensor("state/step/.ATTRIBUTES/VARIABLE_VALUE") == 2
    result = run_lib.train(config.replace(num_steps=4, log_every=2, sample_every=2,
                                          checkpoint_every=2), logdir)
    assert result.step == 4 and np.isfinite(result.train_metrics["d_loss"])
    assert rundir.latest_checkpoint(rundir.checkpoint_dir(logdir)).endswith("ckpt-4")

