"""The warm start of a study's trainings (`gan.study.warm`): a training forked from the warm
server is the same program as `python -m gan.train` (bit for bit), and stops like it on
SIGTERM, also when its server is killed. Also the suite's own warm start (tests/fork_server.py,
behind helpers.run_module), held to the same."""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from gan import rundir
from helpers import REPO, run_module, user_environment

SETTINGS = """--flagfile={repo}/experiments/mnist_mlp.flags
--g_hidden=32,64
--d_hidden=64,32
--batch_size=16
--num_steps={steps}
--eval_every=40
--eval_num_samples=200
--log_every=10
--sample_every=40
--checkpoint_every=10
--steps_per_loop=10
--jit_compile=false
"""


def flagfile(folder, steps=40):
    path = os.path.join(folder, f"run{steps}.flags")
    with open(path, "w") as f:
        f.write(SETTINGS.format(repo=REPO, steps=steps))
    return path


def start_server():
    server = subprocess.Popen([sys.executable, "-m", "gan.study.warm"], cwd=REPO,
                              env=user_environment(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert json.loads(server.stdout.readline()) == {"ready": True}
    return server


def ask(server, flags, logdir):
    server.stdin.write(json.dumps({"argv": [f"--flagfile={flags}", f"--logdir={logdir}"],
                                   "log": logdir + ".log"}) + "\n")
    server.stdin.flush()
    return json.loads(server.stdout.readline())["pid"]


def variables(logdir):
    reader = tf.train.load_checkpoint(rundir.latest_checkpoint(rundir.checkpoint_dir(logdir)))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def test_a_warm_training_is_gan_train_bit_for_bit(tmp_path):
    flags = flagfile(str(tmp_path))
    server = start_server()
    warm = [str(tmp_path / name) for name in ("warm1", "warm2")]
    for logdir in warm:  # the second shows that one training leaves nothing to the next
        ask(server, flags, logdir)
        assert json.loads(server.stdout.readline()) == {"returncode": 0}
    server.stdin.close()
    assert server.wait(timeout=60) == 0
    cold = str(tmp_path / "cold")
    subprocess.run([sys.executable, "-m", "gan.train", f"--flagfile={flags}", f"--logdir={cold}"],
                   cwd=REPO, env=user_environment(), check=True, capture_output=True)
    expected = variables(cold)
    for logdir in warm:
        got = variables(logdir)
        assert set(got) == set(expected)
        for name, value in expected.items():
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        with open(logdir + ".log") as f:
            assert f"Done at step 40; logdir {logdir}" in f.read()


def test_a_warm_training_checkpoints_and_stops_when_its_server_dies(tmp_path):
    flags = flagfile(str(tmp_path), steps=100000)
    server = start_server()
    logdir = str(tmp_path / "run")
    pid = ask(server, flags, logdir)
    deadline = time.time() + 120
    while rundir.latest_checkpoint(rundir.checkpoint_dir(logdir)) is None:
        assert time.time() < deadline, "no checkpoint"
        time.sleep(0.2)
    server.kill()  # as when its runner is SIGKILLed: the training gets SIGTERM
    server.wait()
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.time() < deadline, "the training outlived its server"
        time.sleep(0.2)
    with open(logdir + ".log") as f:
        log = f.read()
    assert "SIGTERM" in log
    assert not rundir.LogdirLock(logdir).is_held()
    assert rundir.step_of(rundir.latest_checkpoint(rundir.checkpoint_dir(logdir))) > 0


def test_the_suites_forked_commands_are_python_dash_m(tmp_path, monkeypatch):
    """helpers.run_module forks its commands from tests/fork_server.py: forked, gan.train trains
    the same weights and prints the same lines as a fresh `python -m gan.train` (but for its
    rates), and a refused command exits with the same code and message."""
    flags = flagfile(str(tmp_path))
    seen = {}
    for how in ("forked", "fresh"):
        if how == "fresh":
            monkeypatch.setenv("GAN_TEST_FRESH_PROCESSES", "1")
        logdir = str(tmp_path / how)
        trained = run_module("gan.train", f"--flagfile={flags}", f"--logdir={logdir}")
        refused = run_module("gan.train", f"--flagfile={flags}", "--batch_size=0",
                             f"--logdir={logdir}-refused", check=False)
        lines = re.sub(r"\S+ steps/s +ETA \S+", "", trained.stdout.replace(logdir, "<logdir>"))
        seen[how] = (variables(logdir), lines, trained.stderr, refused.returncode,
                     refused.stdout, refused.stderr)
    (weights, *output), (expected_weights, *expected_output) = seen["forked"], seen["fresh"]
    assert output == expected_output
    lines, trained_stderr, refused_code, _, refused_stderr = output
    assert "Done at step 40; logdir <logdir>" in lines and not trained_stderr
    assert refused_code == 2 and refused_stderr.startswith("gan.train: error: --batch_size")
    assert set(weights) == set(expected_weights)
    for name, value in expected_weights.items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)
