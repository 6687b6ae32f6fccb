"""Training under tf.distribute strategies as a user runs it: gan.train with --strategy=mirrored
over two logical CPUs (made by conftest), with --strategy=multi_worker as two local worker
processes with a real TF_CONFIG, checkpoints that move between strategies, and the refusals. That a
step under two replicas computes what one device computes is checked per registry entry in
test_conformance.py."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from gan import config as config_lib
from gan import build
from gan import distribute, rundir
from gan import run as run_lib
from helpers import REPO, checkpoint_values, user_environment

# SGD: its update is linear in the gradient, so float rounding between strategies stays rounding
# (Adam's first steps amplify it where a gradient is near zero).
TINY = dict(g_hidden=(32,), d_hidden=(32,), batch_size=16, log_every=5, sample_every=5,
            checkpoint_every=5, steps_per_loop=5, eval_every=0, g_optimizer="sgd",
            d_optimizer="sgd", g_learning_rate=0.01, d_learning_rate=0.01)



def two_logical_cpus():
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs 2 logical CPU devices (GAN_TEST_CPU_REPLICAS=1 turns them off)")


def tiny_run(**overrides):
    return config_lib.RunConfig().replace(**{**TINY, **overrides}).validate()


def test_a_checkpoint_moves_from_two_replicas_to_one_and_back(tmp_path, capsys):
    two_logical_cpus()
    logdir = str(tmp_path / "run")
    mirrored = dict(strategy="mirrored", cpu_replicas=2)
    result = run_lib.train(tiny_run(num_steps=5, **mirrored), logdir)
    assert result.step == 5
    assert "MirroredStrategy, 2 replicas" in capsys.readouterr().out
    saved = checkpoint_values(tf.train.latest_checkpoint(rundir.checkpoint_dir(logdir)))

    # The compiled loop on 2 replicas trained what one device trains from the same seed (without
    # XLA, which runs under several replicas, as XLA's random kernels draw other numbers).
    single = str(tmp_path / "single")
    run_lib.train(tiny_run(num_steps=5, jit_compile="false"), single)
    alone = checkpoint_values(tf.train.latest_checkpoint(rundir.checkpoint_dir(single)))
    assert alone.keys() == saved.keys()
    for name, value in alone.items():
        np.testing.assert_allclose(saved[name], value, rtol=1e-4, atol=1e-5, err_msg=name)

    # The 2-replica checkpoint restores exactly into a one-device state...
    one_device = build.make_state(tiny_run())
    rundir.restore(one_device, logdir)
    checkpoint = tf.train.Checkpoint(state=one_device)
    written = checkpoint.write(str(tmp_path / "copy" / "ckpt"))
    for name, value in checkpoint_values(written).items():
        if name in saved:
            np.testing.assert_array_equal(value, saved[name], err_msg=name)
    # ...training resumes from it on one device, then again on two replicas, where a diverging
    # D is caught by the non-finite check and rolled back to the last checkpoint, once, before
    # the run stops with its reason.
    assert run_lib.train(tiny_run(num_steps=10), logdir).step == 10
    out = capsys.readouterr().out
    assert "Resumed from" in out and "at step 5" in out and "one device" in out
    for step in (5, 10):
        assert os.path.exists(os.path.join(logdir, "samples", f"step_{step:06d}.png"))
    with pytest.raises(run_lib.StopTraining) as stopped:
        run_lib.train(tiny_run(num_steps=15, d_learning_rate=1e12, on_nonfinite="rollback",
                             max_rollbacks=1, **mirrored), logdir)
    out = capsys.readouterr().out
    assert "at step 10" in out and "MirroredStrategy" in out
    assert "rolled back to" in out and "ckpt-10 (step 10)" in out
    assert "after 1 roll-backs" in str(stopped.value) and "ckpt-10" in str(stopped.value)


def test_refusals_name_the_flag(tmp_path):
    two_logical_cpus()
    cases = {
        "odd batch": dict(strategy="mirrored", cpu_replicas=2, batch_size=15),
        "cpu replicas without a strategy": dict(cpu_replicas=2),
        "tpu without address": dict(strategy="tpu"),
        "address without tpu": dict(tpu="local"),
    }
    expected = {
        "odd batch": ["--batch_size=15", "2 replicas", "multiple of 2"],
        "cpu replicas without a strategy": ["--cpu_replicas=2", "--strategy is default"],
        "tpu without address": ["--strategy=tpu needs --tpu"],
        "address without tpu": ["--tpu=local", "--strategy=tpu"],
    }
    for name, overrides in cases.items():
        with pytest.raises(run_lib.StopTraining) as error:
            run_lib.train(tiny_run(num_steps=5, **overrides), str(tmp_path / name.replace(" ", "_")))
        for fragment in expected[name]:
            assert fragment in str(error.value), (name, str(error.value))
        assert error.value.exit_code == 2


def test_a_malformed_tf_config_is_refused_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}}')
    with pytest.raises(run_lib.StopTraining) as error:
        run_lib.train(tiny_run(num_steps=5, strategy="multi_worker"), str(tmp_path / "run"))
    message = str(error.value)
    assert "TF_CONFIG is not a valid cluster description" in message and "'task'" in message
    assert '"task": {"type": "worker"' in message  # what was expected
    assert not os.path.exists(tmp_path / "run")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_together_and_the_chief_checkpoint_restores_on_one_device(tmp_path):
    """Two local worker processes, a real TF_CONFIG each: they train in sync (the same losses
    on both consoles, the same weights in both checkpoints), only the chief writes the run, and
    its checkpoint restores into a single-device state."""
    logdir = str(tmp_path / "run")
    cluster = [f"localhost:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        env = user_environment(TF_CONFIG=json.dumps({"cluster": {"worker": cluster},
                                                     "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "gan.train",
             *tiny_run(strategy="multi_worker", num_steps=10, eval_every=10,
                       eval_num_samples=100).to_flagfile().splitlines(),
             f"--logdir={logdir}"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=300)[0])
    finally:
        for worker in workers:  # one that failed leaves the other waiting for it
            if worker.poll() is None:
                worker.kill()
    for worker, out in zip(workers, outputs):
        assert worker.returncode == 0, out[-4000:]
    for out in outputs:
        assert "CollectiveAllReduceStrategy, 2 replicas" in out, out[-2000:]
        assert "Done at step 10" in out
    losses = [[line.split("d_loss")[1].split("D(x)")[0] for line in out.splitlines()
               if line.startswith("step ")] for out in outputs]
    assert len(losses[0]) == 2 and losses[0] == losses[1]
    # Only the chief evaluates and writes events and samples; worker 1 keeps its checkpoints.
    assert "eval at step 10" in outputs[0] and "eval at step 10" not in outputs[1]
    assert os.path.exists(os.path.join(logdir, "samples", "step_000010.png"))
    worker_dir = os.path.join(logdir, "worker-1")
    assert not any(name.startswith("events") for name in os.listdir(worker_dir))
    chief = checkpoint_values(tf.train.latest_checkpoint(rundir.checkpoint_dir(logdir)))
    other = checkpoint_values(tf.train.latest_checkpoint(rundir.checkpoint_dir(worker_dir)))
    assert chief.keys() == other.keys()
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)

    state = build.make_state(rundir.load_config(logdir))
    assert rundir.restore(state, logdir).endswith("ckpt-10")
    assert int(state.step.numpy()) == 10
    samples = state.generator(tf.random.normal([4, 100]), training=False).numpy()
    assert samples.shape == (4, 28, 28, 1) and np.all(np.isfinite(samples))


def test_make_strategy_gives_what_each_name_promises():
    two_logical_cpus()
    runtime = config_lib.RunConfig().runtime
    assert distribute.make_strategy(runtime) is tf.distribute.get_strategy()
    mirrored = distribute.make_strategy(config_lib.RunConfig().replace(
        strategy="mirrored", cpu_replicas=2).runtime)
    assert mirrored.num_replicas_in_sync == 2
    # One per placement per process: a second MirroredStrategy over the same devices would
    # number its all-reduces afresh and collide with the first one's.
    assert distribute.make_strategy(config_lib.RunConfig().replace(
        strategy="mirrored", cpu_replicas=2).runtime) is mirrored
    assert distribute.is_chief(mirrored)
    assert distribute.worker_dir("/x", mirrored) == "/x"
