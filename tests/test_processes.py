"""Reliability of `python -m gan.train` as a process under faults from outside: signals, kills at
random moments, a full disk, a second writer; and bitwise determinism. (Split from
test_reliability.py so that the two test workers share the load.)"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from gan import rundir

from helpers import (REPO, SMALL, assert_clean_failure, assert_same_weights, checkpoint_values,
                     run_module, user_environment)


def start_training(logdir, *args):
    env = user_environment()
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
    """Also the determinism test: two processes given the same seed end with bitwise-identical
    weights, however the second one was interrupted. Conditional, with G's moving average: the
    labels drawn, the average and the RNG all come back from the checkpoint."""
    common = ["--num_steps=100", "--checkpoint_every=5", "--steps_per_loop=5",
              "--log_every=5", "--deterministic", "--conditional", "--g_ema_decay=0.9"]
    straight = str(tmp_path / "straight")
    run_module("gan.train", *SMALL, f"--logdir={straight}", *common)

    killed = str(tmp_path / "killed")
    rng = random.Random(0)
    for attempt in range(2):
        process = start_training(killed, *common)
        wait_for_line(process, "step ")  # training (and checkpointing every 5 steps) under way
        time.sleep(rng.uniform(0.0, 1.5))
        process.kill()
        process.communicate()
    final = run_module("gan.train", *SMALL, f"--logdir={killed}", *common)
    assert "Done at step 100" in final.stdout
    assert_same_weights(os.path.join(straight, "checkpoints", "ckpt-100"),
                        os.path.join(killed, "checkpoints", "ckpt-100"))
    names = [name for name, _ in tf.train.list_variables(
        os.path.join(straight, "checkpoints", "ckpt-100"))]
    assert any("generator_ema" in name for name in names)


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
    leftovers = [name for name in os.listdir(os.path.join(logdir, "checkpoints"))
                 if "_temp" in name]
    assert leftovers == [], leftovers  # the failed save's temporary shards are gone


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
    # A probe sees the holder and leaves its record, which names it, in place.
    assert rundir.LogdirLock(logdir).is_held()
    with open(os.path.join(logdir, ".writer.lock")) as f:
        assert json.load(f)["pid"] == holder.pid

    holder.kill()
    holder.communicate()
    assert not rundir.LogdirLock(logdir).is_held()
    # The newest checkpoint by its files: a SIGKILL between a save and its index update leaves
    # the state file one behind, and the resume takes the newer, complete one.
    checkpoint = rundir.latest_checkpoint(os.path.join(logdir, "checkpoints"))
    step = int(checkpoint.rsplit("-", 1)[1])
    resumed = run_module("gan.train", *SMALL, f"--logdir={logdir}", f"--num_steps={step + 10}")
    assert f"took over the writer lock of {logdir} from pid {holder.pid}" in resumed.stdout
    assert f"Resumed from {checkpoint} at step {step}" in resumed.stdout
    # A run that ends releases the lock: its file is emptied, so the next run has nothing to
    # take over.
    with open(os.path.join(logdir, ".writer.lock")) as f:
        assert f.read() == ""
