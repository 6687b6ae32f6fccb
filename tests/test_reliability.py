"""Reliability of `python -m gan.train` as a process: bad input, faults, signals, kills, resumes."""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from gan import data
from helpers import REPO, assert_same_weights, checkpoint_values, run_module, scalar_events

# Small networks keep each subprocess quick; the code paths are the full ones. XLA is off: in
# runs this short its compilation is most of the time (a quarter of the test file's), and the
# compiled path is covered by the trainer's replays and tests/test_train.py's resume test.
SMALL = ["--flagfile=experiments/mnist_mlp.flags", "--g_hidden=64,128", "--d_hidden=128,64",
         "--batch_size=16", "--eval_every=0", "--log_every=10", "--sample_every=1000",
         "--jit_compile=false"]


def assert_clean_failure(result, *fragments, exit_code=2):
    assert result.returncode == exit_code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr[-3000:])


def test_every_bad_flag_gets_its_own_line_before_any_work(tmp_path):
    result = run_module("gan.train", *SMALL, f"--logdir={tmp_path / 'run'}", "--batch_size=0",
                        "--g_learning_rate=-1", "--d_beta1=1.0", "--d_steps=0",
                        "--g_hidden=64,x", check=False)
    assert_clean_failure(result, "--batch_size=0: expected an integer >= 1",
                         "--g_learning_rate=-1.0: expected a value > 0",
                         "--d_beta1=1.0: expected a value in [0, 1)",
                         "--d_steps=0: expected an integer >= 1",
                         "--g_hidden=64,x: expected a comma-separated list")
    assert len([l for l in result.stderr.splitlines() if "gan.train: error" in l]) == 5
    assert not os.path.exists(tmp_path / "run")  # nothing was created


def test_batch_larger_than_the_training_set(tmp_path):
    result = run_module("gan.train", *SMALL, f"--logdir={tmp_path}", "--batch_size=70000",
                        check=False)
    assert_clean_failure(result, "--batch_size=70000 is larger than the 60000 training images")


def test_missing_flagfile_and_unknown_flag(tmp_path):
    missing = run_module("gan.train", "--flagfile=experiments/nope.flags", f"--logdir={tmp_path}",
                         check=False)
    assert missing.returncode != 0 and "nope.flags" in missing.stderr
    assert "Traceback" not in missing.stderr
    flagfile = tmp_path / "bad.flags"
    flagfile.write_text("--num_steps=10\n--learning_rate=0.1\n")
    unknown = run_module("gan.train", f"--flagfile={flagfile}", f"--logdir={tmp_path}", check=False)
    assert unknown.returncode != 0 and "learning_rate" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_corrupted_data_file_is_named(tmp_path):
    data_dir = tmp_path / "mnist"
    shutil.copytree(os.path.join(data.PACKAGE_DATA_DIR, "mnist"), data_dir)
    target = data_dir / "train-labels-idx1-ubyte.gz"
    os.chmod(target, 0o644)
    target.write_bytes(target.read_bytes()[:1000])
    result = run_module("gan.train", *SMALL, f"--logdir={tmp_path / 'run'}",
                        f"--data_dir={data_dir}", check=False)
    assert_clean_failure(result, f"{target}: cannot be read as gzip")


def test_logdir_that_cannot_be_a_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_module("gan.train", *SMALL, f"--logdir={blocker}", check=False)
    assert_clean_failure(result, "is not a directory")
    result = run_module("gan.train", *SMALL, f"--logdir={blocker / 'sub'}", check=False)
    assert_clean_failure(result, "is not writable")


def test_checkpoint_of_another_model_is_refused_then_restart_archives_it(tmp_path):
    logdir = str(tmp_path)
    run_module("gan.train", *SMALL, f"--logdir={logdir}", "--num_steps=10")
    before = checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-10"))
    result = run_module("gan.train", *SMALL, f"--logdir={logdir}", "--num_steps=20",
                        "--g_hidden=32,64", "--latent_dim=50", check=False)
    assert_clean_failure(result, "g_hidden: checkpoint has [64, 128], this run has [32, 64]",
                         "latent_dim: checkpoint has 100, this run has 50", "--restart")
    after = checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-10"))
    assert all(np.array_equal(before[k], after[k]) for k in before)  # untouched

    restarted = run_module("gan.train", *SMALL, f"--logdir={logdir}", "--num_steps=20",
                           "--g_hidden=32,64", "--latent_dim=50", "--restart")
    assert "moved the previous run to" in restarted.stdout and "Resumed" not in restarted.stdout
    archives = [d for d in os.listdir(logdir) if d.startswith("archived-")]
    assert len(archives) == 1
    assert os.path.exists(os.path.join(logdir, archives[0], "checkpoints", "ckpt-10.index"))
    assert os.path.exists(os.path.join(logdir, "checkpoints", "ckpt-20.index"))


def test_resume_may_change_momentum_but_not_the_optimizer_slots(tmp_path):
    logdir = str(tmp_path)
    sgd = ["--g_optimizer=sgd", "--d_optimizer=sgd", "--g_learning_rate=0.01",
           "--d_learning_rate=0.01", "--d_momentum=0.5"]
    run_module("gan.train", *SMALL, *sgd, f"--logdir={logdir}", "--num_steps=10",
               "--g_momentum=0.9")
    before = checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-10"))
    assert any(name.endswith("velocity/.ATTRIBUTES/VARIABLE_VALUE") for name in before)

    refused = run_module("gan.train", *SMALL, *sgd, f"--logdir={logdir}", "--num_steps=20",
                         "--g_momentum=0", check=False)
    assert_clean_failure(refused, "g_momentum: checkpoint has 0.9, this run has 0.0",
                         "['velocity'] to []", "--restart")
    assert "d_momentum" not in refused.stderr

    resumed = run_module("gan.train", *SMALL, *sgd, f"--logdir={logdir}", "--num_steps=20",
                         "--g_momentum=0.5")
    assert "Resumed from" in resumed.stdout and "at step 10" in resumed.stdout
    assert os.path.exists(os.path.join(logdir, "checkpoints", "ckpt-20.index"))


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    logdir = str(tmp_path)
    run_module("gan.train", *SMALL, f"--logdir={logdir}", "--num_steps=20",
               "--checkpoint_every=20", "--d_optimizer=sgd", "--d_learning_rate=0.01")
    good = checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-20"))
    result = run_module("gan.train", *SMALL, f"--logdir={logdir}", "--num_steps=200",
                        "--checkpoint_every=20", "--d_optimizer=sgd", "--d_learning_rate=1e12",
                        check=False)
    assert_clean_failure(result, "non-finite", "at step 21", "last good checkpoint is",
                         "ckpt-20", exit_code=3)
    assert tf.train.latest_checkpoint(os.path.join(logdir, "checkpoints")).endswith("ckpt-20")
    kept = checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-20"))
    assert all(np.array_equal(good[k], kept[k]) for k in good)


def test_rollback_restores_and_continues_with_lower_learning_rate(tmp_path):
    logdir = str(tmp_path)
    run_module("gan.train", *SMALL, f"--logdir={logdir}", "--num_steps=20",
               "--checkpoint_every=20", "--d_optimizer=sgd", "--d_learning_rate=0.01")
    result = run_module("gan.train", *SMALL, f"--logdir={logdir}", "--num_steps=60",
                        "--checkpoint_every=20", "--d_optimizer=sgd", "--d_learning_rate=1e12",
                        "--on_nonfinite=rollback", "--rollback_lr_factor=1e-13")
    assert "rolled back to" in result.stdout and "d_optimizer learning rate -> 0.1" in result.stdout
    final = checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-60"))
    assert all(np.all(np.isfinite(v)) for v in final.values() if v.dtype.kind == "f")
    events = scalar_events(logdir)
    assert events["train/d_learning_rate"][60] == pytest.approx(0.1, rel=1e-5)
    assert "rollback" in events["__text__"]


def start_training(logdir, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "gan.train", *SMALL, f"--logdir={logdir}",
                             *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_line(process, fragment, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if fragment in line:
            return line
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"never printed {fragment!r}: {process.stderr.read()[-2000:]}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_and_exits_cleanly(tmp_path, signum):
    """SIGTERM is followed by a resume; SIGINT (Ctrl-C) shares the handler, so its check stops at
    the saved checkpoint."""
    logdir = str(tmp_path)
    process = start_training(logdir, "--num_steps=100000", "--steps_per_loop=10")
    wait_for_line(process, "step ")
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    assert f"stopped by signal {signum.name}" in out
    step = int(out.split("at step ")[-1].split(";")[0])
    assert os.path.exists(os.path.join(logdir, "checkpoints", f"ckpt-{step}.index"))
    if signum == signal.SIGINT:
        return
    resumed = run_module("gan.train", *SMALL, f"--logdir={logdir}", f"--num_steps={step + 10}")
    assert f"at step {step}" in resumed.stdout


def test_sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run(tmp_path):
    common = ["--num_steps=150", "--checkpoint_every=5", "--steps_per_loop=5",
              "--log_every=5", "--deterministic"]
    straight = str(tmp_path / "straight")
    run_module("gan.train", *SMALL, f"--logdir={straight}", *common)

    killed = str(tmp_path / "killed")
    rng = random.Random(0)
    for attempt in range(3):
        process = start_training(killed, *common)
        wait_for_line(process, "step ")  # training (and checkpointing every 5 steps) under way
        time.sleep(rng.uniform(0.0, 1.5))
        process.kill()
        process.communicate()
    final = run_module("gan.train", *SMALL, f"--logdir={killed}", *common)
    assert "Done at step 150" in final.stdout
    assert_same_weights(os.path.join(straight, "checkpoints", "ckpt-150"),
                        os.path.join(killed, "checkpoints", "ckpt-150"))


def test_same_seed_gives_bitwise_identical_weights(tmp_path):
    args = ["--num_steps=30", "--deterministic", "--checkpoint_every=30"]
    run_module("gan.train", *SMALL, f"--logdir={tmp_path / 'a'}", *args)
    run_module("gan.train", *SMALL, f"--logdir={tmp_path / 'b'}", *args)
    assert_same_weights(str(tmp_path / "a" / "checkpoints" / "ckpt-30"),
                        str(tmp_path / "b" / "checkpoints" / "ckpt-30"))


@pytest.fixture
def tiny_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield str(mount_point)
    subprocess.run(["umount", str(mount_point)], capture_output=True)


def test_full_disk_gives_a_clear_error_and_keeps_the_last_checkpoint(tiny_disk):
    logdir = os.path.join(tiny_disk, "run")
    result = run_module("gan.train", *SMALL, f"--logdir={logdir}", "--num_steps=100",
                        "--checkpoint_every=10", "--keep_checkpoints=5", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "No space left on device" in result.stderr
    assert "last complete checkpoint is intact" in result.stderr
    last = tf.train.latest_checkpoint(os.path.join(logdir, "checkpoints"))
    assert last is not None
    values = checkpoint_values(last)  # readable, complete
    assert values


# --- one writer per logdir, damaged checkpoints, roll-back from step 0 ----------------------------

def test_a_second_writer_is_refused_and_a_killed_writers_lock_is_taken_over(tmp_path):
    logdir = str(tmp_path)
    holder = start_training(logdir, "--num_steps=100000", "--steps_per_loop=10",
                            "--checkpoint_every=20")
    wait_for_line(holder, "step ")
    second = run_module("gan.train", *SMALL, f"--logdir={logdir}", "--num_steps=10", check=False)
    assert_clean_failure(second, f"pid {holder.pid} on host {socket.gethostname()}",
                         "being written by another training")
    assert holder.poll() is None  # the holder is untouched and still training

    holder.kill()
    holder.communicate()
    checkpoint = tf.train.latest_checkpoint(os.path.join(logdir, "checkpoints"))
    step = int(checkpoint.rsplit("-", 1)[1])
    resumed = run_module("gan.train", *SMALL, f"--logdir={logdir}", f"--num_steps={step + 10}")
    assert f"took over the writer lock of {logdir} from pid {holder.pid}" in resumed.stdout
    assert f"Resumed from {checkpoint} at step {step}" in resumed.stdout
    # A run that ends releases the lock: its file is emptied, so the next run has nothing to
    # take over.
    with open(os.path.join(logdir, ".writer.lock")) as f:
        assert f.read() == ""


@pytest.fixture(scope="module")
def run_with_a_truncated_latest_checkpoint(tmp_path_factory):
    """A run with checkpoints at steps 10 and 20, whose ckpt-20 data file was cut short."""
    logdir = str(tmp_path_factory.mktemp("truncated"))
    run_module("gan.train", *SMALL, f"--logdir={logdir}", "--num_steps=20",
               "--checkpoint_every=10")
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


def test_training_resumes_from_the_previous_checkpoint_when_the_latest_is_truncated(
        run_with_a_truncated_latest_checkpoint, tmp_path):
    logdir = str(tmp_path / "copy")
    shutil.copytree(run_with_a_truncated_latest_checkpoint, logdir)
    result = run_module("gan.train", *SMALL, f"--logdir={logdir}", "--num_steps=30",
                        "--checkpoint_every=10")
    assert "ckpt-20 cannot be read" in result.stdout and "resuming from the previous one" in (
        result.stdout)
    assert "at step 10" in result.stdout and "Done at step 30" in result.stdout
    checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-30"))  # complete and readable


def test_rollback_works_before_the_first_checkpoint(tmp_path):
    """The seed's SGD at learning rate 0.3 diverges within the first 100 steps, before any
    periodic checkpoint: the run rolls back to the checkpoint written at step 0."""
    result = run_module("gan.train", "--flagfile=experiments/seed.flags", f"--logdir={tmp_path}",
                        "--g_hidden=64,128", "--d_hidden=128,64", "--g_learning_rate=0.3",
                        "--d_learning_rate=0.3", "--on_nonfinite=rollback", "--num_steps=300",
                        "--eval_every=0")
    assert "rolled back to" in result.stdout and "ckpt-0 (step 0)" in result.stdout
    assert "Done at step 300 after" in result.stdout and "roll-back" in result.stdout
    final = checkpoint_values(os.path.join(tmp_path, "checkpoints", "ckpt-300"))
    assert all(np.all(np.isfinite(v)) for v in final.values() if v.dtype.kind == "f")


def test_when_roll_backs_run_out_the_advice_is_not_the_flag_already_set(tmp_path):
    result = run_module("gan.train", *SMALL, f"--logdir={tmp_path}", "--num_steps=60",
                        "--d_optimizer=sgd", "--d_learning_rate=1e12", "--on_nonfinite=rollback",
                        "--rollback_lr_factor=0.9", "--max_rollbacks=2", check=False)
    assert_clean_failure(result, "after 2 roll-backs", "--max_rollbacks", exit_code=3)
    assert "--on_nonfinite=rollback" not in result.stderr
