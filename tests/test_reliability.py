"""Reliability of `python -m gan.train` as a process: bad input, faults, signals, kills, resumes."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from gan import data
from helpers import (SMALL, assert_clean_failure, checkpoint_values, run_module,
                     run_train_in_one_process, scalar_events, summary_records)


def refusal_cases(folder):
    """Bad command lines for gan.train ({case: argv}), and the files they refer to."""
    folder.mkdir()
    data_dir = folder / "mnist"
    shutil.copytree(os.path.join(data.PACKAGE_DATA_DIR, "mnist"), data_dir)
    truncated = data_dir / "train-labels-idx1-ubyte.gz"
    os.chmod(truncated, 0o644)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    unknown_flag = folder / "bad.flags"
    unknown_flag.write_text("--num_steps=10\n--learning_rate=0.1\n")
    blocker = folder / "file"
    blocker.write_text("x")
    # Should a refusal regress, the run trains two steps and its test fails, rather than a
    # whole recipe training inside the driver.
    small = [*SMALL, "--num_steps=2"]
    cases = {
        "many bad flags": [*small, f"--logdir={folder / 'never'}", "--batch_size=0",
                           "--g_learning_rate=-1", "--d_beta1=1.0", "--d_steps=0",
                           "--g_hidden=64,x"],
        "batch too large": [*small, f"--logdir={folder / 'large'}", "--batch_size=70000"],
        "missing flagfile": ["--flagfile=experiments/nope.flags", f"--logdir={folder / 'x'}"],
        "unknown flag": [f"--flagfile={unknown_flag}", f"--logdir={folder / 'y'}"],
        "truncated data": [*small, f"--logdir={folder / 'data'}", f"--data_dir={data_dir}"],
        "logdir is a file": [*small, f"--logdir={blocker}"],
        "logdir under a file": [*small, f"--logdir={blocker / 'sub'}"],
    }
    return cases, dict(folder=folder, truncated=truncated)


@pytest.fixture(scope="module")
def refused(trainings):
    """gan.train's answers to bad command lines, {case: result} (run with `trainings`)."""
    _, results, refusals = trainings
    return {name: results[name] for name in refusals["cases"]}, refusals


def test_every_bad_flag_gets_its_own_line_before_any_work(refused):
    results, paths = refused
    result = results["many bad flags"]
    assert_clean_failure(result, "--batch_size=0: expected an integer in [1, 1048576]",
                         "--g_learning_rate=-1.0: expected a value > 0",
                         "--d_beta1=1.0: expected a value in [0, 1)",
                         "--d_steps=0: expected an integer >= 1",
                         "--g_hidden=64,x: expected a comma-separated list")
    assert len([l for l in result.stderr.splitlines() if "gan.train: error" in l]) == 5
    assert not os.path.exists(paths["folder"] / "never")  # nothing was created


def test_batch_larger_than_the_training_set(refused):
    assert_clean_failure(refused[0]["batch too large"],
                         "--batch_size=70000 is larger than the 60000 training images")


def test_missing_flagfile_and_unknown_flag(refused):
    missing, unknown = refused[0]["missing flagfile"], refused[0]["unknown flag"]
    assert missing.returncode not in (0, None) and "nope.flags" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert unknown.returncode not in (0, None) and "learning_rate" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_corrupted_data_file_is_named(refused):
    results, paths = refused
    assert_clean_failure(results["truncated data"], f"{paths['truncated']}: cannot be read as gzip")


def test_logdir_that_cannot_be_a_directory(refused):
    assert_clean_failure(refused[0]["logdir is a file"], "is not a directory")
    assert_clean_failure(refused[0]["logdir under a file"], "is not writable")


# The run several tests start from (each on its own copy): SMALL with D on SGD at 0.01,
# checkpoints at steps 10 and 20.
TWENTY_STEPS = [*SMALL, "--checkpoint_every=10", "--d_optimizer=sgd", "--d_learning_rate=0.01"]


DIVERGING_D = ["--d_optimizer=sgd", "--d_learning_rate=1e12"]


@pytest.fixture(scope="module")
def trainings(tmp_path_factory):
    """The module's gan.train commands, in order, in one process (tests/fuzz_driver.py --given:
    each is parsed afresh, as its own process would): the refusals, a 20-step run, then
    commands on copies of it and on fresh logdirs. Returns ({name: logdir}, {name: result},
    the refusals' files and names)."""
    folder = tmp_path_factory.mktemp("trainings")
    refusals, refusal_files = refusal_cases(folder / "refused")
    logdirs = {name: str(folder / name) for name in (
        "twenty", "another_model", "nonfinite", "rollback", "before_first", "run_out",
        "truncated", "momentum")}
    twenty, another = logdirs["twenty"], logdirs["another_model"]
    smaller = ["--g_hidden=32,64", "--latent_dim=50"]
    cases = {
        **refusals,
        "twenty": [*TWENTY_STEPS, f"--logdir={twenty}", "--num_steps=20"],
        **{f"copy {name}": {"copy": [twenty, logdirs[name]]}
           for name in ("another_model", "nonfinite", "rollback", "truncated")},
        "truncate": {"truncate": os.path.join(logdirs["truncated"], "checkpoints",
                                              "ckpt-20.data-00000-of-00001")},
        "truncated": [*TWENTY_STEPS, f"--logdir={logdirs['truncated']}", "--num_steps=30"],
        "another_model_refused": [*TWENTY_STEPS, f"--logdir={another}", "--num_steps=30",
                                  *smaller],
        "another_model_restarted": [*TWENTY_STEPS, f"--logdir={another}", "--num_steps=30",
                                    *smaller, "--restart"],
        "nonfinite": [*SMALL, f"--logdir={logdirs['nonfinite']}", "--num_steps=200",
                      "--checkpoint_every=20", *DIVERGING_D],
        "rollback": [*SMALL, f"--logdir={logdirs['rollback']}", "--num_steps=60",
                     "--checkpoint_every=20", *DIVERGING_D, "--on_nonfinite=rollback",
                     "--rollback_lr_factor=1e-13"],
        # The seed's SGD at learning rate 0.3 diverges within the first 100 steps.
        "before_first": ["--flagfile=experiments/seed.flags", f"--logdir={logdirs['before_first']}",
                         "--g_hidden=64,128", "--d_hidden=128,64", "--g_learning_rate=0.3",
                         "--d_learning_rate=0.3", "--on_nonfinite=rollback", "--num_steps=300",
                         "--eval_every=0"],
        **momentum_cases(logdirs["momentum"]),
        "run_out": [*SMALL, f"--logdir={logdirs['run_out']}", "--num_steps=60", *DIVERGING_D,
                    "--on_nonfinite=rollback", "--rollback_lr_factor=0.9", "--max_rollbacks=2"],
    }
    results = run_train_in_one_process(cases, str(folder))
    assert results["twenty"].returncode == 0, results["twenty"].stderr[-3000:]
    return logdirs, results, dict(refusal_files, cases=list(refusals))


@pytest.fixture(scope="module")
def twenty_steps(trainings):
    return trainings[0]["twenty"]


def copy_of(logdir, parent):
    copy = os.path.join(str(parent), "run")
    shutil.copytree(logdir, copy)
    return copy


def succeeded(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_checkpoint_of_another_model_is_refused_then_restart_archives_it(trainings):
    logdirs, results, _ = trainings
    logdir = logdirs["another_model"]
    assert_clean_failure(results["another_model_refused"],
                         "g_hidden: checkpoint has [64, 128], this run has [32, 64]",
                         "latent_dim: checkpoint has 100, this run has 50", "--restart")
    restarted = succeeded(results["another_model_restarted"])
    assert "moved the previous run to" in restarted.stdout and "Resumed" not in restarted.stdout
    archives = [d for d in os.listdir(logdir) if d.startswith("archived-")]
    assert len(archives) == 1
    # The refused command left the old run untouched; the restart archived it whole.
    before = checkpoint_values(os.path.join(logdirs["twenty"], "checkpoints", "ckpt-20"))
    after = checkpoint_values(os.path.join(logdir, archives[0], "checkpoints", "ckpt-20"))
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert os.path.exists(os.path.join(logdir, "checkpoints", "ckpt-30.index"))


def momentum_cases(logdir):
    """Train with G's SGD momentum 0.9, then resume without it (refused: the velocity slot would
    go), with 0.5 (accepted), and the same finished command again."""
    sgd = [*SMALL, "--g_optimizer=sgd", "--d_optimizer=sgd", "--g_learning_rate=0.01",
           "--d_learning_rate=0.01", "--d_momentum=0.5", f"--logdir={logdir}"]
    return {
        "momentum first": [*sgd, "--num_steps=10", "--g_momentum=0.9"],
        "momentum refused": [*sgd, "--num_steps=20", "--g_momentum=0"],
        "momentum resumed": [*sgd, "--num_steps=20", "--g_momentum=0.5"],
        "momentum again": [*sgd, "--num_steps=20", "--g_momentum=0.5"],
    }


def test_resume_may_change_momentum_but_not_the_optimizer_slots(trainings):
    logdirs, results, _ = trainings
    logdir = logdirs["momentum"]
    for name in ("momentum first", "momentum resumed", "momentum again"):
        succeeded(results[name])
    before = checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-10"))
    assert any(name.endswith("velocity/.ATTRIBUTES/VARIABLE_VALUE") for name in before)

    refused = results["momentum refused"]
    assert_clean_failure(refused, "g_momentum: checkpoint has 0.9, this run has 0.0",
                         "['velocity'] to []", "--restart")
    assert "d_momentum" not in refused.stderr

    resumed = results["momentum resumed"].stdout
    assert "Resumed from" in resumed and "at step 10" in resumed and "step      20/20" in resumed
    # The same command again: the run is finished, nothing trains or changes.
    again = results["momentum again"].stdout
    assert "at step 20" in again and "Done at step 20" in again
    assert not any(line.startswith("step ") for line in again.splitlines()), again
    assert not os.path.exists(os.path.join(logdir, "checkpoints", "ckpt-21.index"))


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(trainings):
    logdirs, results, _ = trainings
    logdir = logdirs["nonfinite"]
    assert_clean_failure(results["nonfinite"], "non-finite", "at step 21",
                         "last good checkpoint is", "ckpt-20", exit_code=3)
    assert tf.train.latest_checkpoint(os.path.join(logdir, "checkpoints")).endswith("ckpt-20")
    good = checkpoint_values(os.path.join(logdirs["twenty"], "checkpoints", "ckpt-20"))
    kept = checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-20"))
    assert all(np.array_equal(good[k], kept[k]) for k in good)


def test_rollback_restores_and_continues_with_lower_learning_rate(trainings):
    logdirs, results, _ = trainings
    logdir = logdirs["rollback"]
    result = succeeded(results["rollback"])
    assert "rolled back to" in result.stdout and "d_optimizer learning rate -> 0.1" in result.stdout
    final = checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-60"))
    assert all(np.all(np.isfinite(v)) for v in final.values() if v.dtype.kind == "f")
    events = scalar_events(logdir)
    assert events["train/d_learning_rate"][60] == pytest.approx(0.1, rel=1e-5)
    assert "rollback" in events["__text__"]


@pytest.fixture(scope="module")
def run_with_a_truncated_latest_checkpoint(twenty_steps, tmp_path_factory):
    """A copy of twenty_steps whose ckpt-20 data file was cut short."""
    logdir = copy_of(twenty_steps, tmp_path_factory.mktemp("truncated"))
    data_file = os.path.join(logdir, "checkpoints", "ckpt-20.data-00000-of-00001")
    with open(data_file, "rb") as f:
        payload = f.read()
    with open(data_file, "wb") as f:
        f.write(payload[:len(payload) // 3])
    return logdir


def test_a_truncated_checkpoint_is_named_with_the_ones_that_load(
        run_with_a_truncated_latest_checkpoint, tmp_path):
    """gan.sample as the readers' example; tests/test_fuzz.py gives every reader a damaged
    --checkpoint too. The checkpoint offered then works."""
    logdir = run_with_a_truncated_latest_checkpoint
    output = f"--output={tmp_path}/s.npy"
    result = run_module("gan.sample", f"--logdir={logdir}", output, check=False)
    bad = os.path.join(logdir, "checkpoints", "ckpt-20")
    good = os.path.join(logdir, "checkpoints", "ckpt-10")
    assert_clean_failure(result, f"checkpoint {bad} cannot be read",
                         f"checkpoints that load: {good}", "--checkpoint=")
    assert len([line for line in result.stderr.splitlines()
                if line.startswith("gan.sample: error:")]) == 1
    run_module("gan.sample", f"--logdir={logdir}", f"--checkpoint={good}", output)
    assert np.load(f"{tmp_path}/s.npy").shape == (64, 28, 28)


def test_training_resumes_from_the_previous_checkpoint_when_the_latest_is_truncated(trainings):
    logdirs, results, _ = trainings
    logdir = logdirs["truncated"]
    result = succeeded(results["truncated"])
    assert "ckpt-20 cannot be read" in result.stdout and "resuming from the previous one" in (
        result.stdout)
    assert "at step 10" in result.stdout and "Done at step 30" in result.stdout
    checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-30"))  # complete and readable
    # Steps 11-20 were logged before the resume and again after it; TensorBoard sees them once.
    assert "removed" in result.stdout and "past step 10" in result.stdout
    records = summary_records(logdir)
    assert len(records) == len(set(records))
    assert sorted(step for tag, step in records if tag == "train/d_loss") == [10, 20, 30]


def test_rollback_works_before_the_first_checkpoint(trainings):
    """The seed's SGD at learning rate 0.3 diverges within the first 100 steps, before any
    periodic checkpoint: the run rolls back to the checkpoint written at step 0."""
    logdirs, results, _ = trainings
    result = succeeded(results["before_first"])
    assert "rolled back to" in result.stdout and "ckpt-0 (step 0)" in result.stdout
    assert "Done at step 300 after" in result.stdout and "roll-back" in result.stdout
    final = checkpoint_values(os.path.join(logdirs["before_first"], "checkpoints", "ckpt-300"))
    assert all(np.all(np.isfinite(v)) for v in final.values() if v.dtype.kind == "f")


def test_when_roll_backs_run_out_the_advice_is_not_the_flag_already_set(trainings):
    result = trainings[1]["run_out"]
    assert_clean_failure(result, "after 2 roll-backs", "--max_rollbacks", exit_code=3)
    assert "--on_nonfinite=rollback" not in result.stderr
